"""Plugin discovery: built-ins, entry points, broken plugins, and a real installed package."""

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from translator.plugins import Registry

ROOT = Path(__file__).resolve().parent.parent

GOOD = """
from dataclasses import dataclass
from torch import nn
from translator import Architecture, Family, Task, hookimpl

@hookimpl
def register_families(register):
    register(Identity())

class Identity(Family):
    name = "identity"
    task = Task.PAIRED
    architectures = ("identity",)

    def recognise(self, state_dict):
        return Architecture("identity") if set(state_dict) == {"scale"} else None

    def build(self, arch):
        return nn.Identity()
"""

BROKEN_IMPORT = "import a_module_that_does_not_exist\n"

RAISING_HOOK = """
from translator import hookimpl

@hookimpl
def register_families(register):
    raise RuntimeError("cannot find my weights")
"""

DUPLICATE = """
from translator import hookimpl
from translator.default_plugins.esrgan import ESRGAN

@hookimpl
def register_families(register):
    register(ESRGAN())
"""

MISSPELT_HOOK = """
from translator import hookimpl

@hookimpl
def register_family(register):
    pass
"""

NOT_A_FAMILY = """
from translator import hookimpl

@hookimpl
def register_families(register):
    register("esrgan")
"""


def fake_distribution(site: Path, modules: dict[str, str]) -> Path:
    """A folder that importlib.metadata sees as an installed distribution with entry points."""
    info = site / "fake_plugins-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fake-plugins\nVersion: 1.0\n")
    lines = ["[translator]"] + [f"{name} = {name}" for name in modules]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
    for name, source in modules.items():
        (site / f"{name}.py").write_text(textwrap.dedent(source))
    return site


@pytest.fixture
def site(tmp_path, monkeypatch):
    modules = {"good_plugin": GOOD, "broken_import": BROKEN_IMPORT, "raising_hook": RAISING_HOOK, "duplicate": DUPLICATE, "not_a_family": NOT_A_FAMILY, "misspelt": MISSPELT_HOOK}
    path = fake_distribution(tmp_path / "site", modules)
    monkeypatch.syspath_prepend(str(path))
    monkeypatch.delenv("TRANSLATOR_PLUGINS", raising=False)
    yield path
    for name in modules:
        sys.modules.pop(name, None)


def test_builtin_families_without_entry_points():
    registry = Registry(entry_points=False)
    assert set(registry.families) == {"pix2pix", "cyclegan", "esrgan"}
    assert registry.failures == []
    assert all(info.builtin for info in registry.plugins.values())


def test_broken_plugins_are_reported_and_the_rest_load(site):
    registry = Registry()
    failures = {f.name: f.error for f in registry.failures}
    assert failures["broken_import"] == "ModuleNotFoundError: No module named 'a_module_that_does_not_exist'"
    assert failures["raising_hook"] == "RuntimeError: cannot find my weights"
    assert "family 'esrgan' is already registered" in failures["duplicate"]
    assert "not a translator.Family" in failures["not_a_family"]
    assert "register_family" in failures["misspelt"]
    assert set(registry.families) == {"pix2pix", "cyclegan", "esrgan", "identity"}
    assert registry.plugins["good_plugin"].version == "1.0"
    assert registry.plugins["good_plugin"].families == ["identity"]
    assert registry.families["esrgan"].__module__ == "translator.default_plugins.esrgan"
    with pytest.raises(Exception, match="plugins that failed to load: broken_import: ModuleNotFoundError"):
        registry.family("espcn")


def test_environment_variable_restricts_entry_point_plugins(site, monkeypatch):
    monkeypatch.setenv("TRANSLATOR_PLUGINS", "good_plugin")
    registry = Registry()
    assert registry.failures == []
    assert "identity" in registry.families
    monkeypatch.setenv("TRANSLATOR_PLUGINS", "")
    assert "identity" not in Registry().families


def test_models_command_lists_failures(site, capsys):
    import translator.plugins as plugins
    from translator.cli import main

    previous, plugins._registry = plugins._registry, None
    try:
        assert main(["models"]) == 0
    finally:
        plugins._registry = previous
    out = capsys.readouterr().out
    assert "good_plugin 1.0 (plugin)" in out and "  identity:" in out
    assert "failed to load broken_import: ModuleNotFoundError" in out


@pytest.mark.slow
def test_example_plugin_package_installs_and_is_discovered(tmp_path):
    """The example package is installed for real (pip, its own pyproject and entry point) into a
    separate folder, and a fresh process finds and runs its family with no change to the core."""
    target = tmp_path / "site"
    source = shutil.copytree(ROOT / "examples" / "translator-espcn", tmp_path / "translator-espcn")  # builds write into the source
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--target", str(target), str(source)],
        capture_output=True,
        text=True,
    )
    assert install.returncode == 0, install.stderr
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(target), str(ROOT)])}

    models = subprocess.run([sys.executable, "-m", "translator", "models"], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert models.returncode == 0, models.stderr
    assert "espcn 0.2.0 (plugin)" in models.stdout and "espcn: ESPCN" in models.stdout

    script = textwrap.dedent(
        f"""
        import torch
        from PIL import Image
        import translator_espcn
        torch.save(translator_espcn.ESPCN(scale=3).state_dict(), {str(tmp_path / 'espcn_x3.pth')!r})
        Image.new("RGB", (20, 10), (200, 100, 50)).save({str(tmp_path / 'in.png')!r})
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True, env=env)
    run = subprocess.run(
        [sys.executable, "-m", "translator", "translate", "in.png", "--checkpoint", "espcn_x3.pth", "--output", "out.png"],
        capture_output=True, text=True, env=env, cwd=tmp_path,
    )
    assert run.returncode == 0, run.stderr
    from PIL import Image

    assert Image.open(tmp_path / "out.png").size == (60, 30)


def test_every_hook_is_documented():
    """Like datasette: a hook without its section (and exact signature) in the plugin guide fails."""
    import inspect

    from translator import hookspecs

    guide = (ROOT / "docs" / "plugins.md").read_text()
    for name, function in inspect.getmembers(hookspecs, inspect.isfunction):
        signature = f"{name}{inspect.signature(function)}"
        assert f"### {signature}" in guide, f"docs/plugins.md lacks a '### {signature}' section"
