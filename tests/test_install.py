"""A plain install (a wheel, not editable) works outside the repository: one top-level package,
the built-in plugins inside it, and the shipped models and catalog as package data."""

import os
import subprocess
import sys
import zipfile

import pytest
from PIL import Image

from tests.helpers import ROOT, photo

pytestmark = pytest.mark.slow


def test_the_wheel_installs_whole_and_works_outside_the_repository(tmp_path):
    wheels = tmp_path / "wheels"
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "--wheel-dir", str(wheels), str(ROOT)],
        capture_output=True, text=True, cwd=tmp_path,
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = wheels.glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {name.split("/")[0] for name in names if not name.split("/")[0].endswith((".dist-info", ".data"))} == {"translator"}
    for expected in ("translator/default_plugins/esrgan.py", "translator/shipped/catalog.json", "translator/shipped/compact-sr-x4.safetensors",
                     "translator/shipped/compact-sr-x2.safetensors", "translator/app/chelsea.png"):
        assert expected in names, f"{expected} is not in the wheel"

    site = tmp_path / "site"
    installed = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(site), str(wheel)], capture_output=True, text=True)
    assert installed.returncode == 0, installed.stderr
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    Image.fromarray(photo(20, 24)).save(elsewhere / "in.png")
    # the installed copy comes first on the path, and nothing is run from the repository
    env = {**os.environ, "PYTHONPATH": str(site)}

    def translator(*args):
        return subprocess.run([sys.executable, "-m", "translator", *args], capture_output=True, text=True, env=env, cwd=elsewhere, timeout=300)

    where = subprocess.run([sys.executable, "-c", "import translator.default_plugins, translator.shipped as s; print(s.__file__)"],
                           capture_output=True, text=True, env=env, cwd=elsewhere)
    assert where.stdout.startswith(str(site)), where.stdout + where.stderr
    listed = translator("catalog")
    assert listed.returncode == 0 and "compact-sr-x4" in listed.stdout and "RealESRGAN_x4plus" in listed.stdout, listed.stderr
    done = translator("translate", "in.png", "--model", "esrgan", "-o", "out.png")
    assert done.returncode == 0, done.stderr
    assert Image.open(elsewhere / "out.png").size == (96, 80)
