"""The repository is a Hugging Face Space as it is: front matter, requirements, and `python app.py`."""

import pytest
import ast
import importlib.metadata
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import gradio
from huggingface_hub import RepoCard
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent
# imported only where they exist: ZeroGPU Spaces lend `spaces`; spandrel_extra_arches: non-commercial code a Space owner adds knowingly
OPTIONAL_IMPORTS = {"spaces", "spandrel_extra_arches"}


def requirements() -> list[Requirement]:
    lines = (ROOT / "requirements.txt").read_text().splitlines()
    return [Requirement(line) for line in (l.split("#")[0].strip() for l in lines) if line]


def app_package_dirs() -> dict:
    """app.py maps the repository's folders for a Space as pyproject.toml maps them for an install."""
    import tomllib

    mapped = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    assert ast.literal_eval(next(n.value for n in ast.parse((ROOT / "app.py").read_text()).body
                                 if isinstance(n, ast.Assign) and n.targets[0].id == "PACKAGE_DIRS")) == mapped
    return mapped


def test_front_matter_is_what_the_space_builder_reads():
    card = RepoCard.load(ROOT / "README.md", repo_type="space").data
    assert card.sdk == "gradio" and (ROOT / card.app_file).is_file() and card.app_file == "app.py"
    assert card.sdk_version.split(".")[0] == gradio.__version__.split(".")[0]
    assert card.python_version in ("3.10", "3.11", "3.12")  # the versions the project is tested on, and requires-python >= 3.10
    assert card.suggested_hardware in {"cpu-basic", "cpu-upgrade", "t4-small", "t4-medium", "l4x1", "a10g-small", "a10g-large", "zero-a10g"}
    assert card.license == "mit" and card.title and card.short_description and len(card.short_description) <= 60
    # the models the app pulls are the catalog's Hub sources
    catalog = json.loads((ROOT / "checkpoints" / "catalog.json").read_text())["checkpoints"]
    assert {"translator.default_plugins": "plugins", "translator.shipped": "checkpoints"} == app_package_dirs()
    from translator.refs import parse_hub as parse

    refs = [parse(source) for e in catalog for source in e["sources"] if source.startswith("hf://")]
    hub_repos = sorted({ref.repo_id for ref in refs if ref.repo_type == "model"})  # models: names model repositories
    assert sorted(card.models) == hub_repos


def test_requirements_cover_every_import_and_are_satisfied():
    names = {r.name.lower().replace("_", "-"): r for r in requirements()}
    for requirement in names.values():
        assert requirement.specifier.contains(importlib.metadata.version(requirement.name), prereleases=True), requirement
    distributions = importlib.metadata.packages_distributions()
    local = {"translator", "app"}
    sources = [ROOT / "app.py", *(ROOT / "translator").rglob("*.py"), *(ROOT / "plugins").glob("*.py")]
    missing = set()
    for source in sources:
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                modules = [node.module]
            else:
                continue
            for module in modules:
                top = module.split(".")[0]
                if top in sys.stdlib_module_names or top in local or top in OPTIONAL_IMPORTS:
                    continue
                dists = {d.lower().replace("_", "-") for d in distributions.get(top, [top])}
                if not dists & set(names):
                    missing.add(f"{top} (in {source.name})")
    assert not missing, f"imported but not in requirements.txt: {sorted(missing)}"


@pytest.mark.slow
def test_python_app_py_serves_the_page(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "GRADIO_SERVER_PORT": str(port), "GRADIO_ANALYTICS_ENABLED": "False", "TRANSLATOR_HOME": str(tmp_path / "home")}
    # a Space installs requirements.txt, not the project: the editable install's finder is left out
    as_a_space = (
        "import runpy, sys; "
        "sys.meta_path[:] = [f for f in sys.meta_path if not getattr(f, '__module__', '').startswith('__editable__')]; "
        "runpy.run_path('app.py', run_name='__main__')"
    )
    server = subprocess.Popen([sys.executable, "-c", as_a_space], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline, page = time.time() + 120, ""
        while time.time() < deadline and server.poll() is None:
            try:
                page = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5).read().decode()
                break
            except OSError:
                time.sleep(0.5)
        assert "Image translator" in page, server.stdout.read() if server.poll() is not None else "no answer"
        config = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/config", timeout=5).read())
        assert "translate" in {d.get("api_name") for d in config["dependencies"]}
        # the built-in families and the shipped default came from the repository's own folders
        assert "compact-sr-x4" in json.dumps(config)
    finally:
        server.terminate()
        server.wait(30)
