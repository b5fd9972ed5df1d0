"""OpenModelDB as a catalog, against a stand-in index and download host on this machine."""

import hashlib
import io
import json
import os
import time

import pytest
import torch
from safetensors.torch import save

from tests.helpers import StandIn, serve
from tests.spandrel_cases import build
from translator import TranslatorError
from translator import openmodeldb
from translator.checkpoints import load_checkpoint
from translator.cli import main


class OpenModelDB(StandIn):
    """The site's index at /api/v1/models.json and model files under /files/."""

    files: dict[str, bytes] = {}

    def answer(self, body: bool):
        name = self.path.removeprefix("/files/")
        data = OpenModelDB.files.get(name if self.path.startswith("/files/") else self.path)
        if data is None:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if body:
            self.wfile.write(data)


def entry(name, arch, scale, licence, resources, tags=("photo",)):
    return {"name": name, "author": "someone", "license": licence, "tags": list(tags), "architecture": arch, "scale": scale,
            "description": f"# {name}\n[Link](https://example.org)\n\nA {arch} model for tests.", "date": "2026-01-01",
            "inputChannels": 3, "outputChannels": 3, "resources": resources}


@pytest.fixture
def site(tmp_path, monkeypatch):
    from huggingface_hub import constants

    span = save({k: v.contiguous() for k, v in build("SPAN").state_dict().items()})
    compact = io.BytesIO()
    torch.save(build("Compact").state_dict(), compact)
    server, url = serve(OpenModelDB)
    OpenModelDB.files = {"2x-span.safetensors": span, "2x-compact.pth": compact.getvalue()}
    models = {
        "2x-Tiny-SPAN": entry("2xTinySPAN", "span", 2, "CC0-1.0", [
            {"platform": "onnx", "type": "onnx", "size": 10, "sha256": "0" * 64, "urls": [f"{url}/files/2x-span.onnx"]},
            {"platform": "pytorch", "type": "safetensors", "size": len(span), "sha256": hashlib.sha256(span).hexdigest(),
             "urls": [f"{url}/files/2x-span.safetensors"]},
        ], tags=("photo", "general-upscaler")),
        "2x-Wrong-Hash": entry("2xWrongHash", "compact", 2, "MIT", [
            {"platform": "pytorch", "type": "pth", "size": len(compact.getvalue()), "sha256": "1" * 64, "urls": [f"{url}/files/2x-compact.pth"]},
        ]),
        "4x-Drive-Only": entry("4xDriveOnly", "esrgan", 4, "CC-BY-NC-SA-4.0", [
            {"platform": "pytorch", "type": "pth", "size": 67_000_000, "sha256": "2" * 64,
             "urls": ["https://drive.google.com/file/d/abc/view", "https://mega.nz/file/xyz"]},
        ], tags=("anime",)),
        "broken": "not an entry",
    }
    OpenModelDB.files["/api/v1/models.json"] = json.dumps(models).encode()
    monkeypatch.setenv("TRANSLATOR_OPENMODELDB_URL", f"{url}/api/v1/models.json")
    monkeypatch.setenv("TRANSLATOR_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    yield url
    server.shutdown()


def test_the_index_is_searched_and_says_what_pulls_and_what_needs_a_person(site, capsys):
    assert main(["catalog", "--source", "openmodeldb"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("OpenModelDB: 3 of 3 models match (index fetched moments ago)")  # the damaged entry is left out
    assert "2x-Tiny-SPAN  (span x2, " in out and "CC0-1.0) by someone" in out and "translator pull omdb:2x-Tiny-SPAN" in out
    assert "A span model for tests." in out
    assert "download it from https://openmodeldb.info/models/4x-Drive-Only, then use the file" in out
    assert main(["catalog", "--source", "openmodeldb", "--search", "general", "--scale", "2"]) == 0
    assert capsys.readouterr().out.startswith("OpenModelDB: 1 of 3 models match")
    index = openmodeldb.index()
    assert [m.id for m in index.search(arch="ESRGAN")] == ["4x-Drive-Only"]
    assert [m.id for m in index.search(licence="cc0")] == ["2x-Tiny-SPAN"]


def test_a_model_downloads_with_its_sha256_checked_and_loads_without_a_family(site, tmp_path, capsys):
    assert main(["pull", "omdb:2x-Tiny-SPAN"]) == 0
    path = capsys.readouterr().out.strip()
    assert path.endswith("2x-span.safetensors")
    checkpoint = load_checkpoint("omdb:2x-Tiny-SPAN")
    assert (checkpoint.family.name, checkpoint.arch.name, checkpoint.arch.scale) == ("esrgan", "SPAN", 2)
    # a file whose hash is not the index's is refused and removed
    with pytest.raises(TranslatorError, match="refused 2x-compact.pth: its SHA-256 is not the expected one; the download was removed"):
        load_checkpoint("omdb:2x-Wrong-Hash")
    assert not (tmp_path / "torch-home" / "checkpoints" / "2x-compact.pth").exists()
    with pytest.raises(TranslatorError, match=r"4x-Drive-Only is hosted only where a person must click through; download it from https://openmodeldb.info/models/4x-Drive-Only"):
        load_checkpoint("omdb:4x-Drive-Only")
    with pytest.raises(TranslatorError, match="OpenModelDB has no model 'nope'"):
        load_checkpoint("omdb:nope")


def test_offline_the_cached_index_serves_and_says_its_age(site, tmp_path, monkeypatch, capsys):
    from huggingface_hub import constants

    openmodeldb.index()
    cache = tmp_path / "cache" / "openmodeldb" / "models.json"
    two_days_ago = time.time() - 2 * 24 * 3600
    os.utime(cache, (two_days_ago, two_days_ago))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    assert main(["catalog", "--source", "openmodeldb", "--search", "span"]) == 0
    assert "index fetched 2 days ago; could not be refreshed, so it may miss newer models" in capsys.readouterr().out
    # online again, a broken answer does not replace the good copy
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    OpenModelDB.files["/api/v1/models.json"] = b"<html>maintenance</html>"
    index = openmodeldb.index(refresh=True)
    assert index.stale and len(index.models) == 3
    cache.unlink()
    with pytest.raises(TranslatorError, match="OpenModelDB's index is not cached here and cannot be fetched: .* is not JSON"):
        openmodeldb.index()


def test_the_app_searches_the_index_and_pulls_a_model_into_its_workspace(site, tmp_path):
    from translator.app.service import Studio
    from translator.app.workspace import Workspace

    studio = Studio(Workspace(tmp_path / "home"), device="cpu")
    rows, note = studio.openmodeldb("x2 arch:span")
    assert [row[0] for row in rows] == ["2x-Tiny-SPAN"] and rows[0][5] == "pull omdb:2x-Tiny-SPAN"
    assert note == "1 of 3 models (OpenModelDB's index, fetched moments ago)"
    assert studio.openmodeldb("anime")[0][0][5] == "by hand: https://openmodeldb.info/models/4x-Drive-Only"
    assert studio.pull("omdb:2x-Tiny-SPAN").startswith("2x-span.safetensors (esrgan SPAN x2")
