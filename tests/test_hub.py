"""Hub references through the real huggingface_hub code paths, without reaching the Hub.

Offline: a cache seeded in the documented layout, with HF_HUB_OFFLINE=1. Online: a small local
HTTP server stands in for the Hub through HF_ENDPOINT and answers as the Hub does (commit and
ETag headers, X-Error-Code on errors), so downloads, errors and timeouts run for real.
huggingface_hub reads its environment at import, so each case runs the CLI in a fresh process.
"""

import hashlib
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from PIL import Image

from tests.helpers import COMMIT, MODEL, ROOT, Publisher, QuietServer, StandIn, photo, seed_cache, serve, trainer
from translator import TranslatorError
from translator.cli import main
from translator.refs import parse_hub as parse



def cli(*args, env: dict, cwd):
    full = {**os.environ, "HF_HUB_OFFLINE": "0", "HF_HUB_DISABLE_TELEMETRY": "1", **env}
    return subprocess.run([sys.executable, "-m", "translator", *map(str, args)], capture_output=True, text=True, env=full, cwd=cwd, timeout=120)


def test_references_name_their_repository_type():
    # copies of published weights live in dataset and Space repositories too
    assert parse("hf://datasets/org/name@v1/x.pth").repo_type == "dataset"
    assert str(parse("hf://spaces/org/demo@abc/weights/x.pth")) == "hf://spaces/org/demo@abc/weights/x.pth"
    assert parse("hf://org/name/x.pth").repo_type == "model"


def test_references_are_validated():
    assert str(parse("hf://org/name@v1.0/sub/model.safetensors")) == "hf://org/name@v1.0/sub/model.safetensors"
    for bad, message in [
        ("hf://noslash", "not a valid Hub reference"),
        ("hf://org/name", "names a repository but no file"),
        ("hf://org/name/../../../etc/passwd", "must stay inside the repository"),
    ]:
        with pytest.raises(TranslatorError, match=message):
            parse(bad)


@pytest.fixture
def offline_cache(tmp_path, monkeypatch):
    """A Hub cache in tmp_path, used in this process: huggingface_hub reads the cache folder from
    its constants on each download, and the tests run it offline (conftest)."""
    from huggingface_hub import constants

    cache = tmp_path / "hub-cache"
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    return cache


def test_offline_pull_from_a_seeded_cache(tmp_path, offline_cache, capsys):
    seed_cache(offline_cache, "someone/upscalers", "x2.safetensors", MODEL.read_bytes())
    seed_cache(offline_cache, "someone/upscalers", "x2.safetensors", MODEL.read_bytes(), commit="f" * 40, branch="v2")
    Image.fromarray(photo(10, 12)).save(tmp_path / "in.png")

    for ref in ("hf://someone/upscalers/x2.safetensors", f"hf://someone/upscalers@{COMMIT}/x2.safetensors", "hf://someone/upscalers@v2/x2.safetensors"):
        assert main(["translate", str(tmp_path / "in.png"), "--checkpoint", ref, "-o", str(tmp_path / "out.png")]) == 0, capsys.readouterr().err
        assert Image.open(tmp_path / "out.png").size == (24, 20)

    digest = hashlib.sha256(MODEL.read_bytes()).hexdigest()
    capsys.readouterr()
    assert main(["pull", "hf://someone/upscalers/x2.safetensors", "--sha256", digest]) == 0
    assert capsys.readouterr().out.strip().endswith("x2.safetensors")

    assert main(["pull", "hf://someone/upscalers/x4.safetensors"]) == 1
    assert capsys.readouterr().err.strip() == "error: hf://someone/upscalers/x4.safetensors is not in the local cache and the Hub cannot be reached (offline, or the network failed)"


def test_catalog_names_carry_their_family_without_model(tmp_path, offline_cache, capsys, monkeypatch):
    """A catalog name says its family: `translate -c NAME` needs no --model even where the file
    alone fits two families (the original scripts' latest_net_G.pth fits pix2pix and cyclegan),
    and a --model that disagrees is refused in one line. One name per family, each fetched through
    the Hub cache from the entry's pinned revision."""
    import io
    import json

    import torch

    from tests.reference_networks import BasicSRSRVGGNetCompact, HugganGeneratorUNet, RefResnetGenerator, randomize
    from translator import catalog

    networks = {
        "cyclegan-style_monet": RefResnetGenerator(3, 3, ngf=4, n_blocks=2),
        "huggan-pix2pix-night2day": HugganGeneratorUNet(width=8),
        "realesr-general-x4v3": BasicSRSRVGGNetCompact(num_feat=8, num_conv=1, upscale=4),
    }
    copy = json.loads(catalog.catalog_file().read_text())
    for item in copy["checkpoints"]:
        if item["name"] in networks:
            ref = parse(item["sources"][0])
            buffer = io.BytesIO()
            torch.save(randomize(networks[item["name"]]).state_dict(), buffer)
            seed_cache(offline_cache, ref.repo_id, ref.path, buffer.getvalue(), commit=ref.revision, kind=ref.repo_type)
            item["sha256"] = None  # stand-in bytes: the pinned hashes are tested elsewhere
    (tmp_path / "catalog.json").write_text(json.dumps(copy))
    monkeypatch.setenv("TRANSLATOR_CATALOG", str(tmp_path / "catalog.json"))
    monkeypatch.setenv("TRANSLATOR_CACHE", str(tmp_path / "trust"))
    Image.fromarray(photo(16, 16)).save(tmp_path / "in.png")
    # the file alone is ambiguous: that is what the catalog's family settles
    monet = next(offline_cache.glob("spaces--*/snapshots/*/**/latest_net_G.pth"))
    assert main(["translate", str(tmp_path / "in.png"), "-c", str(monet), "-o", str(tmp_path / "o.png")]) == 1
    assert "say which with --model" in capsys.readouterr().err
    for name, size in (("cyclegan-style_monet", 16), ("huggan-pix2pix-night2day", 16), ("realesr-general-x4v3", 64)):
        assert main(["translate", str(tmp_path / "in.png"), "-c", name, "-o", str(tmp_path / f"{name}.png")]) == 0, capsys.readouterr().err
        assert Image.open(tmp_path / f"{name}.png").size == (size, size)
    capsys.readouterr()
    assert main(["translate", str(tmp_path / "in.png"), "--model", "pix2pix", "-c", "cyclegan-style_monet", "-o", str(tmp_path / "x.png")]) == 1
    assert capsys.readouterr().err.strip() == "error: cyclegan-style_monet is a cyclegan model, not pix2pix"


def test_the_recommended_model_is_the_default_where_it_can_be_had(tmp_path, offline_cache, capsys, monkeypatch):
    """`translate --model esrgan` uses the catalog's recommended upscaler when it is on disk (or
    downloadable), and falls back to the shipped one at once, in one line, when it is not, or
    when the copy there fails its check."""
    import io
    import json

    import torch

    from tests.reference_networks import BasicSRSRVGGNetCompact, randomize
    from translator import catalog
    from translator.app import Studio
    from translator.app.workspace import Workspace

    best = catalog.recommended("esrgan")
    assert best.name == "realesr-general-x4v3" and best.group == "Upscale photos"
    Image.fromarray(photo(8, 8)).save(tmp_path / "in.png")
    translate = ["translate", str(tmp_path / "in.png"), "--model", "esrgan", "-o", str(tmp_path / "out.png")]
    assert main(translate) == 0  # not on disk, and offline (conftest)
    # the fallback's line first (then which of its networks the picture took)
    assert capsys.readouterr().err.splitlines()[0] == "offline: used the shipped compact-sr-x4"
    assert Studio(Workspace(tmp_path / "home"), device="cpu").default_checkpoint("esrgan") == "compact-sr-x4"

    ref = parse(best.source)
    buffer = io.BytesIO()
    torch.save(randomize(BasicSRSRVGGNetCompact(num_feat=8, num_conv=1, upscale=4)).state_dict(), buffer)
    seed_cache(offline_cache, ref.repo_id, ref.path, buffer.getvalue(), commit=ref.revision)
    # on disk, but not the published bytes: refused, and the shipped model used instead
    assert main(translate) == 0
    assert capsys.readouterr().err.splitlines()[0] == "couldn't get realesr-general-x4v3; used the shipped compact-sr-x4"
    # a copy that passes its check is used, and says nothing
    seed_cache(offline_cache, ref.repo_id, ref.path, buffer.getvalue(), commit=ref.revision)
    copy = json.loads(catalog.catalog_file().read_text())
    next(item for item in copy["checkpoints"] if item["name"] == best.name)["sha256"] = hashlib.sha256(buffer.getvalue()).hexdigest()
    (tmp_path / "catalog.json").write_text(json.dumps(copy))
    monkeypatch.setenv("TRANSLATOR_CATALOG", str(tmp_path / "catalog.json"))
    assert main(translate) == 0 and capsys.readouterr().err.strip() == ""
    assert Image.open(tmp_path / "out.png").size == (32, 32)
    studio = Studio(Workspace(tmp_path / "home"), device="cpu")
    assert studio.default_checkpoint("esrgan") == "realesr-general-x4v3"
    done = studio.translate(str(tmp_path / "in.png"), "esrgan", "")
    assert done.path.name == "in-realesr-general-x4v3.png" and done.describe().startswith("realesr-general-x4v3, ")


def test_offline_is_known_at_once_with_a_refused_endpoint(tmp_path, monkeypatch):
    """Online mode, but nothing answers (the Hub and the publisher refuse connections): the
    catalog marks what cannot be had, lists what works first, and a translation with a model
    that is not on disk fails in one short line, all within seconds."""
    import json
    import socket

    from huggingface_hub import constants

    from translator import hub
    from translator.app import Studio
    from translator.app.workspace import Workspace

    with socket.socket() as closed:  # a port nothing listens on: connections are refused
        closed.bind(("127.0.0.1", 0))
        refused = f"http://127.0.0.1:{closed.getsockname()[1]}"
    entries = [
        {"name": "remote-x4", "family": "esrgan", "description": "Remote x4", "group": "Upscale photos", "bytes": 5 * 1024 * 1024,
         "sources": ["hf://someone/upscalers@" + COMMIT + "/x4.pth"]},
        {"name": "publisher-x4", "family": "esrgan", "description": "Publisher x4", "group": "Upscale photos", "bytes": 6 * 1024 * 1024,
         "sources": [f"{refused}/x4.pth"]},
        {"name": "local-x2", "family": "esrgan", "description": "Shipped x2", "group": "Upscale photos", "sources": [MODEL.name]},
    ]
    (tmp_path / MODEL.name).write_bytes(MODEL.read_bytes())
    (tmp_path / "catalog.json").write_text(json.dumps({"checkpoints": [{"sha256": None, "origin": "x", **e} for e in entries]}))
    monkeypatch.setenv("TRANSLATOR_CATALOG", str(tmp_path / "catalog.json"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", refused)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub-cache"))
    monkeypatch.setattr(hub, "_reachable", {})
    started = time.monotonic()
    studio = Studio(Workspace(tmp_path / "home"), device="cpu")
    listed = studio.tasks()["Upscale photos"]
    assert [name for _, name in listed] == ["local-x2", "remote-x4", "publisher-x4"]
    assert listed[1][0] == "Remote x4 (needs internet, offline now)" and listed[0][0] == "Shipped x2 (on disk)"
    Image.fromarray(photo(8, 8)).save(tmp_path / "in.png")
    with pytest.raises(TranslatorError) as caught:
        studio.translate(str(tmp_path / "in.png"), "esrgan", "remote-x4")
    assert str(caught.value) == "can't download remote-x4 (5 MB): no internet connection; models marked 'on disk' work offline"
    assert studio.translate(str(tmp_path / "in.png"), "esrgan", "local-x2").path.is_file()
    assert time.monotonic() - started < 5


@pytest.mark.slow
def test_a_fresh_process_reads_the_cache_from_the_environment(tmp_path):
    """The variables a user sets (HF_HUB_OFFLINE, HF_HUB_CACHE) reach huggingface_hub, which reads them at import."""
    cache = tmp_path / "hub-cache"
    seed_cache(cache, "someone/upscalers", "x2.safetensors", MODEL.read_bytes())
    Image.fromarray(photo(10, 12)).save(tmp_path / "in.png")
    result = cli("translate", "in.png", "--checkpoint", "hf://someone/upscalers/x2.safetensors", "-o", "out.png",
                 env={"HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(cache)}, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert Image.open(tmp_path / "out.png").size == (24, 20)


def test_a_file_whose_sha256_differs_is_refused_and_evicted(tmp_path):
    cache = tmp_path / "hub-cache"
    cached = seed_cache(cache, "someone/upscalers", "x2.safetensors", MODEL.read_bytes())
    result = cli("pull", "hf://someone/upscalers/x2.safetensors", "--sha256", "0" * 64, env={"HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(cache)}, cwd=tmp_path)
    # the line says what happened; the hashes follow on a line of their own
    message, details = result.stderr.strip().splitlines()
    assert result.returncode == 1 and message == "error: refused hf://someone/upscalers/x2.safetensors: its SHA-256 is not the expected one; the download was removed from the cache"
    assert details == f"  details: sha256 {hashlib.sha256(MODEL.read_bytes()).hexdigest()}, expected {'0' * 64}"
    assert not cached.exists()


class FakeHub(StandIn):
    """Answers /{org}/{name}/resolve/{revision}/{file} as the Hub does, by repository name."""

    data = MODEL.read_bytes()
    # the Authorization header of every request, in order: whose identity each one acted with
    identities: list[str | None] = []

    def do_HEAD(self):
        FakeHub.identities.append(self.headers.get("Authorization"))
        super().do_HEAD()

    def do_GET(self):
        FakeHub.identities.append(self.headers.get("Authorization"))
        path = self.path.split("?")[0]
        if path.startswith("/api/models/") and "/tree/" in path:
            return self.tree("/".join(path.split("/")[3:5]))
        self.answer(body=True)

    published: dict[str, dict[str, bytes]] = {}
    # licence ids the Hub accepts (some of its list); the stand-in refuses a card with another
    licences = frozenset({"mit", "apache-2.0", "bsd", "bsd-2-clause", "bsd-3-clause", "cc-by-4.0", "cc0-1.0", "openrail", "other"})

    def tree(self, repo: str):
        """A published repository's files, in one page; an unknown one is not found, as on the Hub."""
        if repo not in FakeHub.published:
            return self.reply(404, {"error": "Repository not found"}, {"X-Error-Code": "RepoNotFound"})
        files = FakeHub.published[repo]
        self.reply(200, [{"type": "file", "path": name, "size": len(data), "oid": hashlib.sha1(data).hexdigest()} for name, data in files.items()])

    def do_POST(self):
        """The publishing side: create a repository, say every file is a regular upload, commit."""
        import base64
        import json

        FakeHub.identities.append(self.headers.get("Authorization"))
        length = int(self.headers.get("Content-Length", 0))
        payload = self.rfile.read(length)
        path = self.path.split("?")[0]
        if path == "/api/repos/create":
            request = json.loads(payload)
            repo = f"{request.get('organization')}/{request['name']}" if request.get("organization") else request["name"]
            if repo.startswith("noauth/"):
                return self.reply(401, {"error": "Invalid username or password."}, {"X-Error-Message": "Invalid username or password."})
            FakeHub.published.setdefault(repo, {})
            return self.reply(200, {"url": f"http://{self.headers['Host']}/{repo}"})
        if path == "/api/validate-yaml":  # the model card's front matter
            problem = self.card_problem(json.loads(payload)["content"])
            if problem:  # the client asks for the Hub's message as plain text
                self.send_response(400)
                self.send_header("Content-Length", str(len(problem.encode())))
                self.end_headers()
                return self.wfile.write(problem.encode())
            return self.reply(200, {"errors": [], "warnings": []})
        repo = "/".join(path.split("/")[3:5])
        if "/preupload/" in path:
            files = [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in json.loads(payload)["files"]]
            return self.reply(200, {"files": files})
        if "/commit/" in path:
            for line in payload.decode().splitlines():
                item = json.loads(line)
                if item["key"] == "file":
                    FakeHub.published[repo][item["value"]["path"]] = base64.b64decode(item["value"]["content"])
                elif item["key"] == "deletedFile":
                    FakeHub.published[repo].pop(item["value"]["path"], None)
            return self.reply(200, {"commitUrl": f"http://{self.headers['Host']}/{repo}/commit/{COMMIT}", "commitOid": COMMIT})
        self.reply(404, {"error": "not found"})

    @staticmethod
    def card_problem(content: str) -> str | None:
        """What the Hub would object to in the front matter's fields that model cards use here."""
        import yaml
        from huggingface_hub.errors import HFValidationError
        from huggingface_hub.utils import validate_repo_id

        if not content.startswith("---\n"):
            return "no front matter"
        meta = yaml.safe_load(content.split("---\n")[1])
        if not isinstance(meta, dict):
            return "front matter is not a mapping"
        if meta.get("license") not in FakeHub.licences:
            return f"license must be one of the Hub's licence ids, got {meta.get('license')!r}"
        if not isinstance(meta.get("tags", []), list) or not isinstance(meta.get("pipeline_tag", ""), str):
            return '"tags" must be a list and "pipeline_tag" a string'
        for key in ("datasets", "base_model"):
            ids = meta.get(key, [])
            for repo_id in ids if isinstance(ids, list) else [ids]:
                try:
                    validate_repo_id(repo_id)
                except HFValidationError:
                    return f'"{key}" must hold Hub repository ids, got {repo_id!r}'
        return None

    def reply(self, status: int, body: dict | list, headers: dict | None = None):
        import json

        data = json.dumps(body).encode()
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def answer(self, body: bool):
        parts = self.path.split("?")[0].strip("/").split("/")
        if parts[0] in ("datasets", "spaces"):  # /{type}s/{org}/{name}/resolve/...
            parts = parts[1:]
        repo, filename = "/".join(parts[:2]), "/".join(parts[4:])
        if repo in FakeHub.published and filename in FakeHub.published[repo]:
            return self.serve(FakeHub.published[repo][filename], body)
        if repo == "org/slow":
            time.sleep(6)
        errors = {"org/missing": (404, "RepoNotFound"), "org/gated": (401, "GatedRepo")}
        if repo in errors or filename != "model.safetensors":
            status, code = errors.get(repo, (404, "EntryNotFound"))
            self.send_response(status)
            self.send_header("X-Error-Code", code)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.serve(self.data, body)


@pytest.fixture
def fake_hub():
    server = QuietServer(("127.0.0.1", 0), FakeHub)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture
def online_hub(fake_hub, tmp_path, monkeypatch):  # noqa: F811
    """huggingface_hub of this process pointed at the stand-in, online, with a cache of its own
    in tmp_path/hub-cache: it reads its endpoint when imported, so the constants are patched."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "ENDPOINT", fake_hub)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", fake_hub + "/{repo_id}/resolve/{revision}/{filename}")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub-cache"))
    monkeypatch.setenv("HF_TOKEN", "hf_test_token_not_real")
    return fake_hub


def test_online_download_and_the_errors_a_user_can_act_on(tmp_path, online_hub, capsys):
    assert main(["pull", "hf://org/good/model.safetensors"]) == 0, capsys.readouterr().err
    local = Path(capsys.readouterr().out.strip().splitlines()[-1])
    assert local.read_bytes() == MODEL.read_bytes()
    assert (tmp_path / "hub-cache" / "models--org--good" / "refs" / "main").read_text() == COMMIT

    Image.fromarray(photo(8, 8)).save(tmp_path / "in.png")
    assert main(["translate", str(tmp_path / "in.png"), "-c", "hf://org/good/model.safetensors", "-o", str(tmp_path / "o.png")]) == 0

    cases = {
        "hf://org/missing/model.safetensors": "error: repository org/missing not found on the Hub (if it is private, log in or set HF_TOKEN)",
        "hf://org/gated/model.safetensors": "error: org/gated is gated: accept its terms on the Hub, then log in (hf auth login) or set HF_TOKEN",
        "hf://org/good/other.pth": "error: org/good has no file 'other.pth' at main",
    }
    for ref, message in cases.items():
        capsys.readouterr()
        assert main(["pull", ref]) == 1
        assert capsys.readouterr().err.strip() == message


@pytest.mark.slow
def test_a_hub_that_does_not_answer_times_out(tmp_path, fake_hub):
    env = {"HF_ENDPOINT": fake_hub, "HF_HUB_CACHE": str(tmp_path / "cache"), "HF_HUB_ETAG_TIMEOUT": "1", "HF_HUB_DOWNLOAD_TIMEOUT": "1"}
    started = time.monotonic()
    result = cli("pull", "hf://org/slow/model.safetensors", env=env, cwd=tmp_path)
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1 and result.stderr.startswith("error: ")
    assert "timed out" in result.stderr or "cannot be reached" in result.stderr
    assert time.monotonic() - started < 60


def test_catalog_entries_are_usable():
    import json

    from translator import catalog, units
    from translator.plugins import registry

    entries = catalog.entries()
    names = [e.name for e in entries]
    assert len(names) == len(set(names)) >= 30
    assert {"RealESRGAN_x4plus", "realesr-general-x4v3", "cyclegan-horse2zebra", "pix2pix-facades_label2photo"} <= set(names)
    for entry in entries:
        assert entry.family in registry().families and entry.description
        assert entry.group != "Other" and entry.input and entry.licence and entry.size, f"{entry.name} lacks what a person needs to choose it"
        if entry.shipped:
            assert entry.shipped.parent == ROOT / "checkpoints"
            assert catalog.file_sha256(entry.shipped) == entry.sha256, f"{entry.name} changed without its catalog sha256"
            # shown in the unit of every other size on the page: the file listing's beside it
            assert entry.bytes == entry.shipped.stat().st_size and entry.size == units.size(entry.shipped.stat().st_size)
        if not entry.source:
            assert entry.origin.startswith("http")
    json.loads((ROOT / "checkpoints" / "catalog.json").read_text())


def test_the_catalog_is_listed_by_what_each_model_does(capsys):
    assert main(["catalog"]) == 0
    out = capsys.readouterr().out
    groups = [line for line in out.splitlines() if line and not line.startswith(" ")]
    assert groups[:2] == ["Upscale photos:", "Upscale anime and illustrations:"] and "Paint in a style:" in groups
    painting = out.split("Paint in a style:")[1].split("\n\n")[0]
    assert "cyclegan-style_monet" in painting and "Photo to Monet painting" in painting
    assert "downloads on first use from hf://huggan/pix2pix-night2day@" in out
    assert "ships with the package (works offline)" in out.split("  compact-sr-x4  ")[1].split("  compact-sr-x4-clean  ")[0]


def test_catalog_names_work_as_checkpoints(tmp_path, capsys):
    Image.fromarray(photo(8, 8)).save(tmp_path / "in.png")
    assert main(["translate", str(tmp_path / "in.png"), "-c", "compact-sr-x2", "-o", str(tmp_path / "o.png")]) == 0
    assert Image.open(tmp_path / "o.png").size == (16, 16)
    capsys.readouterr()  # the line saying which of its networks the picture took
    # offline, a model that is not downloaded yet says so in one short line
    assert main(["pull", "cyclegan-horse2zebra"]) == 1
    assert capsys.readouterr().err.strip() == (
        "error: can't download cyclegan-horse2zebra (about 43 MB): no internet connection; models marked 'on disk' work offline"
    )


def test_catalog_sha256_is_checked_on_every_pull(tmp_path):
    import json

    cache = tmp_path / "hub-cache"
    cached = seed_cache(cache, "someone/upscalers", "x2.safetensors", MODEL.read_bytes())
    catalog = tmp_path / "catalog.json"
    entry = {"name": "mirror-x2", "family": "esrgan", "description": "a mirror", "sources": ["hf://someone/upscalers/x2.safetensors"], "sha256": "1" * 64}
    catalog.write_text(json.dumps({"checkpoints": [entry]}))
    env = {"HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(cache), "TRANSLATOR_CATALOG": str(catalog)}
    for args in (("pull", "mirror-x2"), ("pull", "hf://someone/upscalers/x2.safetensors")):
        cached = seed_cache(cache, "someone/upscalers", "x2.safetensors", MODEL.read_bytes())
        result = cli(*args, env=env, cwd=tmp_path)
        assert result.returncode == 1 and "sha256" in result.stderr and "refused" in result.stderr, result.stderr
        assert not cached.exists()


@pytest.mark.slow
def test_push_a_trained_run_and_pull_it_back(tmp_path, fake_hub):
    """Publishing is exercised up to the requests huggingface_hub sends (create, preupload,
    commit) against the stand-in endpoint, which then serves the files back."""
    data = tmp_path / "photos"
    data.mkdir()
    for i in range(3):
        Image.fromarray(photo(40, 40, i)).save(data / f"{i}.png")
    env = {"HF_ENDPOINT": fake_hub, "HF_HUB_CACHE": str(tmp_path / "cache"), "HF_TOKEN": "hf_test_token_not_real"}
    # trained here; only the Hub's side needs a process of its own (huggingface_hub reads HF_ENDPOINT at import)
    trainer("esrgan", data, tmp_path / "run", steps=2, batch_size=2, arch="srvgg", nf=4, num_conv=1, crop_size=16, workers=0, val_every=0, sample_every=0).run()

    pushed = cli("push", tmp_path / "run", "me/tiny-upscaler", env=env, cwd=tmp_path)
    assert pushed.returncode == 0, pushed.stderr
    files = FakeHub.published["me/tiny-upscaler"]
    assert set(files) == {"generator.safetensors", "config.json", "README.md"}
    card = files["README.md"].decode()
    assert "library_name: image-translator" in card and "esrgan" in card and "Steps: 2" in card
    assert "translator translate photo.png --checkpoint hf://me/tiny-upscaler/generator.safetensors" in card
    assert files["generator.safetensors"] == (tmp_path / "run" / "generator.safetensors").read_bytes()

    Image.fromarray(photo(8, 8)).save(tmp_path / "in.png")
    back = cli("translate", "in.png", "-c", "hf://me/tiny-upscaler/generator.safetensors", "-o", "o.png", env=env, cwd=tmp_path)
    assert back.returncode == 0, back.stderr
    assert Image.open(tmp_path / "o.png").size == (32, 32)

    refused = cli("push", tmp_path / "run", "noauth/model", env=env, cwd=tmp_path)
    assert refused.returncode == 1 and refused.stderr.strip() == "error: the Hub needs you logged in to publish: run `hf auth login` or set HF_TOKEN"
    assert cli("push", tmp_path / "photos", "me/x", env=env, cwd=tmp_path).stderr.startswith("error: ")


def test_a_community_model_in_the_catalog_translates_from_its_pinned_revision(tmp_path, offline_cache, capsys):
    """huggan-pix2pix-night2day names a Hub file at a pinned commit; seeded in the cache there
    (with the sprint's layout, a narrow copy), it translates like the network it holds."""
    import io

    import numpy as np
    import torch

    from translator import catalog
    from tests.reference_networks import HugganGeneratorUNet, randomize

    entry = catalog.find("huggan-pix2pix-night2day")
    ref = parse(entry.source)
    assert ref.repo_id == "huggan/pix2pix-night2day" and len(ref.revision) == 40 and ref.path == "pytorch_model.bin"
    reference = randomize(HugganGeneratorUNet(width=8))
    buffer = io.BytesIO()
    torch.save(reference.state_dict(), buffer)
    seed_cache(offline_cache, ref.repo_id, ref.path, buffer.getvalue(), commit=ref.revision)

    pixels = photo(256, 256)
    Image.fromarray(pixels).save(tmp_path / "night.png")
    assert main(["translate", str(tmp_path / "night.png"), "--model", "pix2pix", "-c", "huggan-pix2pix-night2day", "-o", str(tmp_path / "day.png")]) == 0
    with torch.no_grad():
        y = (reference(torch.from_numpy(pixels).permute(2, 0, 1)[None].float() / 255 * 2 - 1) + 1) / 2
    expected = (y[0].clamp(0, 1).permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)
    assert np.abs(np.asarray(Image.open(tmp_path / "day.png")).astype(int) - expected.astype(int)).max() <= 1

    # the app offers it to the pix2pix family
    from translator.app import Studio
    from translator.app.workspace import Workspace

    choices = dict((ref, label) for label, ref in Studio(Workspace(tmp_path / "home"), device="cpu").checkpoint_choices("pix2pix"))
    assert "Night photo to day" in choices["huggan-pix2pix-night2day"]


@pytest.fixture
def publisher(tmp_path, monkeypatch):
    """The stand-in publisher, a catalog naming it, and a download cache and trust record of this test's own."""
    from huggingface_hub import constants

    Publisher.files = {"x2.safetensors": MODEL.read_bytes(), "tofu.safetensors": MODEL.read_bytes()}
    server, url = serve(Publisher)
    base = f"{url}/files"
    digest = hashlib.sha256(MODEL.read_bytes()).hexdigest()
    entries = [
        {"name": "fallback-x2", "sources": [f"{base}/missing.pth", f"{base}/x2.safetensors"], "sha256": digest},
        {"name": "tofu-x2", "sources": [f"{base}/tofu.safetensors"], "sha256": None},
        {"name": "cut-x2", "sources": [f"{base}/cut.safetensors"], "sha256": None},
    ]
    catalog = tmp_path / "catalog.json"
    catalog.write_text(__import__("json").dumps({"checkpoints": [{"family": "esrgan", "description": "x2", "origin": base, **e} for e in entries]}))
    monkeypatch.setenv("TRANSLATOR_CATALOG", str(catalog))
    monkeypatch.setenv("TRANSLATOR_CACHE", str(tmp_path / "translator-cache"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)  # the publisher is on this machine
    yield base
    server.shutdown()


def test_publisher_downloads_fall_back_check_and_trust_on_first_use(tmp_path, publisher, capsys):
    downloads = tmp_path / "torch-home" / "hub" / "checkpoints"
    # the first source answers 404; the next is downloaded, checked against the pinned SHA-256
    assert main(["pull", "fallback-x2"]) == 0
    assert capsys.readouterr().out.strip() == str(downloads / "x2.safetensors")

    # no published hash: the first download's is remembered and shown, and checked from then on
    assert main(["pull", "tofu-x2"]) == 0
    trusted = __import__("json").loads((tmp_path / "translator-cache" / "trusted-sha256.json").read_text())
    assert trusted == {"tofu-x2": hashlib.sha256(MODEL.read_bytes()).hexdigest()}
    capsys.readouterr()
    assert main(["catalog"]) == 0  # and shown, as the app's checkpoint table shows it
    assert f"sha256 {trusted['tofu-x2']} (recorded at its first download here" in capsys.readouterr().out
    from translator.app.workspace import Workspace

    assert next(e for e in Workspace(tmp_path / "home").entries("esrgan") if e.ref == "tofu-x2").sha256 == trusted["tofu-x2"]
    (downloads / "tofu.safetensors").unlink()
    Publisher.files["tofu.safetensors"] = MODEL.read_bytes()[:-1] + b" "  # the server now hands out other bytes
    capsys.readouterr()
    assert main(["pull", "tofu-x2"]) == 1
    message, details = capsys.readouterr().err.strip().splitlines()[-2:]  # after the download's progress bar
    assert message == "error: could not fetch tofu-x2 from its source"
    assert details.startswith("  details: http://") and "refused tofu.safetensors: its SHA-256 is not the expected one" in details
    assert f"expected {trusted['tofu-x2']}" in details
    assert not (downloads / "tofu.safetensors").exists()

    # a download cut short leaves nothing under the file's name, nor a partial file beside it
    assert main(["pull", "cut-x2"]) == 1
    assert "could not fetch cut-x2" in capsys.readouterr().err
    assert sorted(p.name for p in downloads.iterdir()) == ["x2.safetensors"]

    # a damaged trust record is an error, never an empty record that trusts any new bytes
    record = tmp_path / "translator-cache" / "trusted-sha256.json"
    for damaged in ('["tofu-x2"]', '{"tofu-x2": "ab', '{"tofu-x2": 7}'):
        record.write_text(damaged)
        assert main(["pull", "tofu-x2"]) == 1
        assert capsys.readouterr().err.strip().splitlines()[-1] == (
            f"error: {record} is damaged (not a record of SHA-256 digests); restore it or delete it to trust downloads anew"
        )
    assert not (downloads / "tofu.safetensors").exists()


def test_a_catalog_model_falls_back_from_the_hub_to_the_publisher(tmp_path, fake_hub, publisher):
    """A real process with HF_ENDPOINT at the stand-in Hub: the Hub copy is missing, the publisher's is used."""
    import json

    catalog = json.loads(Path(os.environ["TRANSLATOR_CATALOG"]).read_text())
    catalog["checkpoints"][0]["sources"].insert(0, "hf://org/missing@" + COMMIT + "/model.safetensors")
    (tmp_path / "hub-first.json").write_text(json.dumps(catalog))
    env = {"HF_ENDPOINT": fake_hub, "HF_HUB_CACHE": str(tmp_path / "cache"), "TRANSLATOR_CATALOG": str(tmp_path / "hub-first.json"),
           "TRANSLATOR_CACHE": os.environ["TRANSLATOR_CACHE"], "TORCH_HOME": os.environ["TORCH_HOME"]}
    Image.fromarray(photo(8, 8)).save(tmp_path / "in.png")
    # fp32: this CPU's first int8 of the model (seconds, once) is no part of the fallback
    result = cli("translate", "in.png", "-c", "fallback-x2", "-o", "out.png", "--precision", "fp32", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert Image.open(tmp_path / "out.png").size == (16, 16)
    assert (tmp_path / "torch-home" / "hub" / "checkpoints" / "x2.safetensors").is_file()


class ProxiedPublisher(StandIn):
    """Every publisher at once: an HTTP proxy that answers any URL with the file of that name."""

    files: dict[str, bytes] = {}

    def answer(self, body: bool):
        from urllib.parse import urlparse

        data = ProxiedPublisher.files.get(Path(urlparse(self.path).path).name)
        self.send_response(200 if data is not None else 404)
        self.send_header("Content-Length", str(len(data or b"")))
        self.end_headers()
        if body and data:
            self.wfile.write(data)


@pytest.mark.slow
def test_every_catalog_name_pulls_through_the_stand_ins_and_translates(tmp_path, fake_hub):
    """Each name is fetched from its first source: Hub copies from the stand-in Hub (HF_ENDPOINT),
    plain-HTTP publishers through a stand-in proxy (http_proxy), with a network of the entry's
    family in the layout its publisher uses. The stand-ins' bytes cannot have the published
    hashes, so this catalog copy drops them; hash checks are tested above."""
    import io
    import json

    import torch

    from tests.reference_networks import BasicSRSRVGGNetCompact, HugganGeneratorResNet, HugganGeneratorUNet, RefResnetGenerator, RefUnetGenerator, randomize
    from translator import catalog

    def weights(entry) -> bytes:
        if entry.family == "esrgan":
            net = BasicSRSRVGGNetCompact(num_feat=8, num_conv=1, upscale=4)
        elif entry.name == "huggan-cyclegan-sim2real":
            net = HugganGeneratorResNet(num_residual_blocks=2)
        elif entry.name.startswith("huggan-"):
            net = HugganGeneratorUNet(width=8)
        elif entry.family == "cyclegan":
            net = RefResnetGenerator(3, 3, ngf=4, n_blocks=2)
        else:
            net = RefUnetGenerator(3, 3, 8, ngf=4)
        buffer = io.BytesIO()
        torch.save(randomize(net).state_dict(), buffer)
        return buffer.getvalue()

    names, copy = [], json.loads(catalog.catalog_file().read_text())
    for item in copy["checkpoints"]:
        entry = catalog.find(item["name"])
        if entry.shipped:
            item["sources"] = [str(entry.shipped)]
        else:
            first = entry.sources[0]
            if first.startswith("hf://"):
                ref = parse(first)
                FakeHub.published.setdefault(ref.repo_id, {})[ref.path] = weights(entry)
            else:
                assert first.startswith("http://"), f"{entry.name}: an https publisher cannot be stood in for; give it a Hub copy first"
                ProxiedPublisher.files[Path(first).name] = weights(entry)
            item["sources"], item["sha256"] = [first], None
        names.append(entry.name)
    (tmp_path / "catalog.json").write_text(json.dumps(copy))
    proxy = QuietServer(("127.0.0.1", 0), ProxiedPublisher)
    threading.Thread(target=proxy.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    script = (
        "import sys; from translator.checkpoints import load_checkpoint\n"
        "from translator.images import Picture; from translator.inference import Engine, Options; import numpy as np\n"
        "for name in sys.argv[1:]:\n"
        "    engine = Engine(load_checkpoint(name), options=Options(device='cpu'))\n"
        "    print(name, engine.translate(Picture(np.random.default_rng(0).random((8, 8, 3), dtype=np.float32))).rgb.shape)\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "0", "HF_ENDPOINT": fake_hub, "HF_HUB_CACHE": str(tmp_path / "cache"), "TORCH_HOME": str(tmp_path / "torch"),
           "TRANSLATOR_CACHE": str(tmp_path / "trust"), "TRANSLATOR_CATALOG": str(tmp_path / "catalog.json"),
           "http_proxy": f"http://127.0.0.1:{proxy.server_address[1]}", "no_proxy": "127.0.0.1,localhost", "NO_PROXY": "127.0.0.1,localhost"}
    try:
        result = subprocess.run([sys.executable, "-c", script, *names], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    finally:
        proxy.shutdown()
    assert result.returncode == 0, result.stderr[-3000:]
    translated = dict(line.split(" ", 1) for line in result.stdout.splitlines())
    assert sorted(translated) == sorted(names) and len(names) == 41
    assert translated["compact-sr-x4"] == "(32, 32, 3)" and translated["cyclegan-style_monet"] == "(8, 8, 3)"
