"""Training from Hub datasets: parquet sets written here in the layout the Hub serves, read
through the real huggingface_hub code paths from a seeded cache (offline) and from a stand-in
endpoint (online), then trained on for a few steps."""

import hashlib
import io
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from tests.helpers import COMMIT, QuietServer, StandIn, TINY_GAN, photo, seed_cache
from translator import TranslatorError
from translator.cli import main
from translator.hub_data import KNOWN, parse
from translator.sources import data_source
from translator.plugins import registry
from translator.training import TrainConfig

REPO = "someone/pairs"


def png(seed: int, size: int = 20) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(photo(size, size, seed)).save(buffer, "PNG")
    return buffer.getvalue()


def parquet(columns: dict[str, list], features: dict[str, str] | None = None, row_group_size: int = 3) -> bytes:
    """A parquet file as the ``datasets`` library writes one: images as {bytes, path} structs,
    the column types in the schema's "huggingface" metadata."""
    image = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    arrays, fields = [], []
    for name, values in columns.items():
        if values and isinstance(values[0], (bytes, type(None))):
            arrays.append(pa.array([None if v is None else {"bytes": v, "path": None} for v in values], image))
            fields.append(pa.field(name, image))
        else:
            arrays.append(pa.array(values))
            fields.append(pa.field(name, arrays[-1].type))
    kinds = features or {name: ("Image" if f.type == image else "Value") for name, f in zip(columns, fields)}
    meta = {"info": {"features": {name: {"_type": kind} for name, kind in kinds.items()}}}
    table = pa.Table.from_arrays(arrays, schema=pa.schema(fields, metadata={"huggingface": json.dumps(meta)}))
    buffer = io.BytesIO()
    pq.write_table(table, buffer, row_group_size=row_group_size)
    return buffer.getvalue()


def paired_files(train: int = 6, test: int = 2, a: str = "imageA", b: str = "imageB") -> dict[str, bytes]:
    return {
        "data/train-00000-of-00001.parquet": parquet({a: [png(i) for i in range(train)], b: [png(100 + i) for i in range(train)], "label": list(range(train))}),
        "data/test-00000-of-00001.parquet": parquet({a: [png(50 + i) for i in range(test)], b: [png(150 + i) for i in range(test)], "label": list(range(test))}),
        "README.md": b"---\nlicense: cc-by-4.0\n---\n",
    }


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    """A Hub cache in tmp_path, read offline in this process (conftest sets HF_HUB_OFFLINE)."""
    from huggingface_hub import constants

    cache = tmp_path / "hub-cache"
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))

    def seed(repo: str, files: dict[str, bytes]):
        for name, data in files.items():
            seed_cache(cache, repo, name, data, kind="dataset")

    return seed


def open_data(text: str, task, cfg: TrainConfig):
    """A Hub dataset opened as a run opens its data."""
    return data_source(text).open(task, cfg)


def config(**values) -> TrainConfig:
    from translator.family import make_settings

    return make_settings(TrainConfig, {"load_size": "16", "crop_size": "16", **{k: str(v) for k, v in values.items()}})


def test_references_are_parsed():
    assert parse("hf://datasets/huggan/facades") == parse("hf://datasets/huggan/facades/")
    ref = parse("hf://datasets/huggan/horse2zebra@abc123/horse2zebra-aligned")
    assert (ref.repo_id, ref.revision, ref.subset) == ("huggan/horse2zebra", "abc123", "horse2zebra-aligned")
    assert str(ref) == "hf://datasets/huggan/horse2zebra@abc123/horse2zebra-aligned"
    assert parse("facades").repo_id == "huggan/facades"
    # the split and columns travel in the reference, so a run's record keeps them
    ref = parse("facades?split=test&columns=imageB,imageA")
    assert (ref.split, ref.columns, ref.dataset) == ("test", ("imageB", "imageA"), KNOWN["facades"])
    assert parse(str(ref)) == ref and str(ref).endswith("?split=test&columns=imageB,imageA")
    assert str(parse("hf://datasets/a/b?split=train")) == "hf://datasets/a/b"
    for bad, message in {"hf://datasets/a/b?colums=x": "unknown option 'colums'", "hf://datasets/a/b?columns=x,,y": "one or two column names",
                         "hf://datasets/a/b?split=": "a split name", "hf://datasets/a/b?split=a&split=b": "repeated option 'split'",
                         "hf://datasets/a/b?split": "cannot read 'split'"}.items():
        with pytest.raises(TranslatorError, match=message):
            parse(bad)
    for bad in ("hf://datasets/noslash", "hf://huggan/facades", "hf://datasets/a/b/../../etc"):
        with pytest.raises(TranslatorError, match="Hub dataset|inside the dataset"):
            parse(bad)


def test_paired_columns_splits_and_validation_are_detected(hub_cache):
    hub_cache(REPO, paired_files())
    paired = registry().family("pix2pix").task
    data = open_data(f"hf://datasets/{REPO}", paired, config())
    assert data.report.summary().startswith(f"hf://datasets/{REPO}: imageA -> imageB, split 'train', validation from 'test'; 6 training samples")
    assert len(data.train) == 6 and len(data.val) == 2
    a, b = data.train[(0, 0)]
    assert a.shape == b.shape == (3, 16, 16)
    # decoded from the rows themselves: row 0's A is png(0), its B png(100)
    expected = Image.open(io.BytesIO(png(0))).convert("RGB").resize((16, 16), Image.BICUBIC)
    assert (a.permute(1, 2, 0).numpy() == expected).all()


def test_columns_can_be_named_and_are_checked(hub_cache):
    hub_cache(REPO, paired_files(a="photo", b="sketch"))
    paired = registry().family("pix2pix").task
    # two image columns whose names say nothing: in the order the table has them
    assert "photo -> sketch" in open_data(f"hf://datasets/{REPO}", paired, config()).report.summary()
    data = open_data(f"hf://datasets/{REPO}?columns=sketch,photo", paired, config())
    assert "sketch -> photo" in data.report.summary()
    cases = {
        "label": "column 'label' of hf://datasets/someone/pairs holds int64, not images",
        "nope": "hf://datasets/someone/pairs has no column 'nope' (columns: photo (struct",
    }
    for column, message in cases.items():
        with pytest.raises(TranslatorError) as error:
            open_data(f"hf://datasets/{REPO}?columns={column}", paired, config())
        assert str(error.value).startswith(message)
    with pytest.raises(TranslatorError, match=r"has no split 'validation' \(it has test, train\)"):
        open_data(f"hf://datasets/{REPO}?split=validation", paired, config())
    hub_cache("someone/three", {"data/train-0.parquet": parquet({"x": [png(0)], "y": [png(1)], "z": [png(2)]})})
    with pytest.raises(TranslatorError, match=r"has 3 image columns \(x, y, z\); say which at the end of the reference: \?columns=INPUT,TARGET"):
        open_data("hf://datasets/someone/three", paired, config())


def test_a_parquet_decompression_bomb_is_refused_from_its_metadata(hub_cache, monkeypatch):
    """Four zstd cells of zeros that decompress far past their file's size: refused before any
    of them is read, from what the metadata says they decompress to. (The budgets are scaled
    down with the cells: 2 MB cells against 1 MB, where the real case was 400 MB against 64.)"""
    import translator.hub_data as hub_data

    image = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    cells = pa.array([{"bytes": bytes(2 * 2**20), "path": None} for _ in range(4)], image)
    meta = {"info": {"features": {"imageA": {"_type": "Image"}, "imageB": {"_type": "Image"}}}}
    table = pa.Table.from_arrays([cells, cells], schema=pa.schema([pa.field("imageA", image), pa.field("imageB", image)], metadata={"huggingface": json.dumps(meta)}))
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="zstd")
    assert len(buffer.getvalue()) < 20_000
    hub_cache("someone/bomb", {"data/train-00000-of-00001.parquet": buffer.getvalue()})
    from huggingface_hub import constants

    paired = registry().family("pix2pix").task
    # within the budgets, so every cell is read (and found to be no image)
    with pytest.raises(TranslatorError, match=r"no rows with images in imageA and imageB of split 'train' \(8 unreadable\)"):
        open_data("hf://datasets/someone/bomb", paired, config())
    # what is read stays as the file stores it: the four equal cells take the size of one
    path = next(Path(constants.HF_HUB_CACHE).rglob("*.parquet"))
    assert hub_data._cell_bytes(hub_data.Cell(str(path), 0, 3, "imageA")) == bytes(2 * 2**20)
    assert hub_data._GROUPS[(str(path), 0, "imageA")].nbytes < 3 * 2**20
    hub_data.clear_caches()  # as when a run ends
    assert not hub_data._GROUPS and not hub_data._FILES
    monkeypatch.setattr(hub_data, "MAX_CELL_BYTES", 2**20)
    with pytest.raises(TranslatorError, match=r"imageA\[0:3\]: an image of 2 MB, over the 1 MB an image may take"):
        hub_data._cell_bytes(hub_data.Cell(str(path), 0, 3, "imageA"))
    monkeypatch.setattr(hub_data, "MAX_GROUP_BYTES", 2**20)
    with pytest.raises(TranslatorError) as refused:
        open_data("hf://datasets/someone/bomb", paired, config())
    assert str(refused.value) == (
        "train-00000-of-00001.parquet: row group 0 holds 2 MB of 'imageA' once decompressed (4 rows), "
        "over the 1 MB a row group and 1 MB an image may take; refused before reading"
    )


def test_an_undecodable_cell_skips_its_row_and_a_nested_column_is_one_line(hub_cache, monkeypatch):
    broken = png(3)[:40]  # a PNG cut short: the header opens, the rest does not
    hub_cache("someone/broken", {"data/train-0.parquet": parquet({"imageA": [png(0), b"not an image", png(2), broken],
                                                                "imageB": [png(10), png(11), png(12), png(13)]})})
    paired = registry().family("pix2pix").task
    data = open_data("hf://datasets/someone/broken", paired, config())
    assert len(data.train) == 2  # rows 1 and 3 skipped, the run goes on
    summary = data.report.summary()
    assert "2 unreadable files skipped: train-0.parquet:imageA[0:1] (UnidentifiedImageError), train-0.parquet:imageA[1:0]" in summary
    # a row group too large to hold is read a few rows at a time, and none of it kept
    import translator.hub_data as hub_data
    from huggingface_hub import constants

    monkeypatch.setattr(hub_data, "CACHED_GROUP_BYTES", 1)
    hub_data.clear_caches()
    path = str(next(Path(constants.HF_HUB_CACHE).rglob("train-0.parquet")))
    assert hub_data._cell_bytes(hub_data.Cell(path, 0, 2, "imageA")) == png(2) and not hub_data._GROUPS
    # images nested in a list per row: not a column of images, said in one line
    nested = pa.table({"frames": pa.array([[{"bytes": png(0), "path": None}]], pa.list_(pa.struct([("bytes", pa.binary()), ("path", pa.string())]))),
                       "imageB": pa.array([{"bytes": png(1), "path": None}])})
    buffer = io.BytesIO()
    pq.write_table(nested, buffer)
    hub_cache("someone/nested", {"data/train-0.parquet": buffer.getvalue()})
    with pytest.raises(TranslatorError) as error:
        open_data("hf://datasets/someone/nested?columns=frames", paired, config())
    assert str(error.value).startswith("column 'frames' of hf://datasets/someone/nested holds list<element: struct<bytes: binary, path: string>>, not images")
    assert "\n" not in str(error.value)


def test_a_table_without_images_and_a_missing_cache_entry_are_one_line(hub_cache):
    hub_cache("someone/text", {"data/train-00000-of-00001.parquet": parquet({"text": ["a", "b"], "label": [0, 1]})})
    paired = registry().family("pix2pix").task
    with pytest.raises(TranslatorError, match=r"hf://datasets/someone/text has no image columns \(columns: text \(string\), label \(int64\)\)"):
        open_data("hf://datasets/someone/text", paired, config())
    with pytest.raises(TranslatorError, match=r"^hf://datasets/someone/absent is not in the local cache and the Hub cannot be reached"):
        open_data("hf://datasets/someone/absent", paired, config())
    with pytest.raises(TranslatorError, match="no subset 'missing'"):
        open_data("hf://datasets/someone/text/missing", paired, config())


def test_unpaired_domains_side_by_side_with_empty_cells(hub_cache):
    # as huggan/horse2zebra stores them: as many rows as the larger domain, the smaller one empty
    horses = [png(i) for i in range(3)] + [None] * 4
    zebras = [png(20 + i) for i in range(7)]
    hub_cache("someone/h2z", {"data/train-00000-of-00001.parquet": parquet({"imageA": horses, "imageB": zebras}, row_group_size=2)})
    unpaired = registry().family("cyclegan").task
    data = open_data("hf://datasets/someone/h2z", unpaired, config())
    assert (len(data.train.a), len(data.train.b)) == (3, 7)
    assert data.val is None and "no validation split" in data.report.summary()


def test_image_folders_on_the_hub_use_the_local_layouts(hub_cache):
    files = {}
    for domain in ("trainA", "trainB"):
        for i in range(2):
            buffer = io.BytesIO()
            Image.fromarray(photo(18, 18, i)).save(buffer, "PNG")
            files[f"horse2zebra/{domain}/{i}.png"] = buffer.getvalue()
    hub_cache("someone/folders", files)
    data = open_data("hf://datasets/someone/folders/horse2zebra", registry().family("cyclegan").task, config())
    assert len(data.train) == 2 and "(image folders)" in data.report.summary()
    with pytest.raises(TranslatorError, match="is a dataset of image folders: \\?split= and \\?columns= apply to tables only"):
        open_data("hf://datasets/someone/folders/horse2zebra?columns=trainA", registry().family("cyclegan").task, config())


def test_cli_trains_from_a_hub_dataset_and_resumes_from_its_record(hub_cache, tmp_path, capsys):
    hub_cache(REPO, paired_files())
    run = tmp_path / "run"
    args = ["train", "pix2pix", "--data", f"hf://datasets/{REPO}", "--output", str(run), "--steps", "2", "--device", "cpu"]
    sets = [f"--set={k}={v}" for k, v in {**TINY_GAN, "netG": "resnet_6blocks", "load_size": 32, "crop_size": 32, "val_every": 2}.items()]
    assert main(args + sets) == 0, capsys.readouterr().err
    err = capsys.readouterr().err
    assert f"data: hf://datasets/{REPO}: imageA -> imageB, split 'train', validation from 'test'; 6 training samples" in err
    # validated on the test split; FID needs Inception weights this offline machine lacks, once
    assert "step 2 validation: l1 " in err and err.count("note: FID and KID are unavailable") == 1
    record = json.loads((run / "config.json").read_text())
    assert record["data"] == f"hf://datasets/{REPO}"
    assert (run / "generator.safetensors").is_file()
    # the record alone is enough to continue
    assert main(["train", "--resume", "--output", str(run), "--steps", "3"]) == 0, capsys.readouterr().err
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines() if '"event": "step"' in line]
    assert steps[-1] == 3


def test_the_apps_api_trains_from_a_hub_dataset_reference(hub_cache, app_server):
    from gradio_client import Client

    hub_cache(REPO, paired_files())
    url, studio = app_server
    client = Client(url, verbose=False)
    try:
        settings = {**TINY_GAN, "netG": "resnet_6blocks", "load_size": "32", "crop_size": "32", "steps": "2", "val_every": "2"}
        client.predict("pix2pix", f"hf://datasets/{REPO}", run_name="from-hub", settings=settings, api_name="/train")
        deadline = time.time() + 120
        while (status := client.predict(api_name="/training_status"))["status"] in ("starting", "running") and time.time() < deadline:
            time.sleep(0.2)
        with pytest.raises(Exception, match="column 'label' of hf://datasets/someone/pairs holds int64, not images"):
            client.predict("pix2pix", f"hf://datasets/{REPO}?columns=label", run_name="bad", settings=settings, api_name="/train")
    finally:
        client.close()
    assert status["status"] == "done" and status["step"] == 2, status
    assert status["data"].startswith(f"hf://datasets/{REPO}: imageA -> imageB") and "FID and KID are unavailable" in status["data"]
    assert json.loads((studio.workspace.run("from-hub") / "config.json").read_text())["data"] == f"hf://datasets/{REPO}"
    # known Hub datasets are offered by name beside the workspace's folders
    assert ("facades (Hub: huggan/facades, downloads on first use)", parse("facades").__str__()) in studio.dataset_choices()


class DatasetHub(StandIn):
    """The Hub's answers for one dataset repository, as snapshot_download asks for them: the
    revision's commit, the file tree, and each file with its commit and ETag headers."""

    files: dict[str, bytes] = {}

    def answer(self, body: bool):
        path = self.path.split("?")[0]
        prefix = f"/api/datasets/{REPO}"
        if path == prefix or path.startswith(f"{prefix}/revision/"):
            return self.json({"id": REPO, "sha": COMMIT, "siblings": [{"rfilename": name, "size": len(data)} for name, data in self.files.items()]})
        if path.startswith(f"{prefix}/tree/"):
            return self.json([{"type": "file", "path": name, "size": len(data), "oid": hashlib.sha1(data).hexdigest()} for name, data in self.files.items()])
        resolve = f"/datasets/{REPO}/resolve/"
        name = path[len(resolve):].split("/", 1)[-1] if path.startswith(resolve) else None
        if name not in self.files:
            self.send_response(404)
            self.send_header("X-Error-Code", "RepoNotFound" if not path.startswith(f"/datasets/{REPO}") and not path.startswith(prefix) else "EntryNotFound")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.serve(self.files[name], body)

    def json(self, value):
        data = json.dumps(value).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def test_a_dataset_download_is_refused_from_its_declared_size_and_counted_once_written(tmp_path, monkeypatch):
    from huggingface_hub import constants

    from translator.files import Storage, writing_within
    from translator.hub_data import fetch

    DatasetHub.files = paired_files()
    server = QuietServer(("127.0.0.1", 0), DatasetHub)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    monkeypatch.setattr(constants, "ENDPOINT", endpoint)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", endpoint + "/{repo_id}/resolve/{revision}/{filename}")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "cache"))
    parquets = sum(len(data) for name, data in DatasetHub.files.items() if name.endswith(".parquet"))
    written = []
    try:
        with writing_within(Storage(lambda: parquets - 1, written.append)), pytest.raises(TranslatorError) as refused:
            fetch(parse(f"hf://datasets/{REPO}"))
        assert str(refused.value).startswith(f"hf://datasets/{REPO} is ") and "storage quota has" in str(refused.value)
        assert not list((tmp_path / "cache").rglob("*.parquet")) and not written
        with writing_within(Storage(lambda: parquets, written.append)):
            folder = fetch(parse(f"hf://datasets/{REPO}"))
            assert fetch(parse(f"hf://datasets/{REPO}")) == folder  # from the cache: counted once
    finally:
        server.shutdown()
    assert written == [folder] and len(list(folder.rglob("*.parquet"))) == 2


@pytest.mark.slow
def test_a_dataset_downloads_through_the_hub_endpoint_and_trains(tmp_path):
    DatasetHub.files = paired_files()
    server = QuietServer(("127.0.0.1", 0), DatasetHub)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    env = {**os.environ, "HF_HUB_OFFLINE": "0", "HF_ENDPOINT": f"http://127.0.0.1:{server.server_address[1]}", "HF_HUB_CACHE": str(tmp_path / "cache"),
           "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_ETAG_TIMEOUT": "2", "HF_HUB_DOWNLOAD_TIMEOUT": "2"}
    sets = [f"--set={k}={v}" for k, v in {**TINY_GAN, "netG": "resnet_6blocks", "load_size": 32, "crop_size": 32}.items()]
    try:
        trained = subprocess.run([sys.executable, "-m", "translator", "train", "pix2pix", "--data", f"hf://datasets/{REPO}", "--output", str(tmp_path / "run"),
                                  "--steps", "1", "--device", "cpu", *sets], capture_output=True, text=True, env=env, timeout=120)
        missing = subprocess.run([sys.executable, "-m", "translator", "train", "pix2pix", "--data", "hf://datasets/someone/absent", "--output", str(tmp_path / "run2"),
                                  "--steps", "1", *sets], capture_output=True, text=True, env=env, timeout=120)
    finally:
        server.shutdown()
    assert trained.returncode == 0, trained.stderr
    assert (tmp_path / "run" / "generator.safetensors").is_file()
    # only the parquet files came down, into the standard cache
    snapshot = tmp_path / "cache" / "datasets--someone--pairs" / "snapshots" / COMMIT
    assert sorted(str(p.relative_to(snapshot)) for p in snapshot.rglob("*.parquet")) == ["data/test-00000-of-00001.parquet", "data/train-00000-of-00001.parquet"]
    assert not (snapshot / "README.md").exists()
    assert missing.returncode == 1 and missing.stderr.strip() == "error: dataset someone/absent not found on the Hub (if it is private, log in or set HF_TOKEN)"
