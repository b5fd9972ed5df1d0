"""What a kill -9 leaves behind is swept, and a run that failed or was torn can go on."""

import json
import subprocess
import sys

import pytest
from PIL import Image

from tests.helpers import TINY_SR, photo, save_pth, trainer, write_images
from tests.reference_networks import BasicSRSRVGGNetCompact, randomize
from translator.app import Studio
from translator.app.workspace import DELETING, Workspace
from translator.cli import main


def dead_pid() -> int:
    """The pid of a process that has ended."""
    process = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(process.stdout)


def test_a_killed_writers_temporary_files_are_swept_and_a_live_ones_kept(tmp_path):
    pth = save_pth(randomize(BasicSRSRVGGNetCompact(num_feat=4, num_conv=1, upscale=2)).state_dict(), tmp_path / "sr.pth", "params_ema")
    Image.fromarray(photo(8, 8)).save(tmp_path / "in.png")
    out = tmp_path / "out"
    out.mkdir()
    stale = out / f".in.png.{dead_pid()}.k2j4.tmp"
    writing = out / f".other.png.{__import__('os').getpid()}.x8a1.tmp"  # this process: still writing
    stale.write_bytes(b"partial")
    writing.write_bytes(b"partial")
    assert main(["translate", str(tmp_path / "in.png"), "-c", str(pth), "-o", str(out)]) == 0
    assert not stale.exists() and writing.exists() and (out / "in.png").is_file()


def test_a_run_with_a_torn_metrics_line_and_a_dead_writers_state_resumes(tmp_path):
    data = write_images(tmp_path / "d", [photo(40, 40, s) for s in range(3)])
    settings = {k: v for k, v in TINY_SR.items() if k != "sample_every"}
    trainer("esrgan", data, tmp_path / "run", steps=2, sample_every=0, **settings).run()
    with open(tmp_path / "run" / "metrics.jsonl", "a") as f:
        f.write('{"event": "step", "step": 3, "los')  # killed mid-line
    stale = tmp_path / "run" / f".resume.pt.{dead_pid()}.q1w2.tmp"
    stale.write_bytes(b"half a state")
    assert main(["train", "--resume", "--output", str(tmp_path / "run"), "--steps", "4", "--device", "cpu"]) == 0
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["event"] == "step"] == [1, 2, 3, 4]
    assert not stale.exists()


def test_the_app_sweeps_its_workspace_and_restarts_a_run_that_failed_early(tmp_path):
    home = tmp_path / "home"
    ws = Workspace(home)
    half_deleted = ws.runs / f"{DELETING}old.123"
    (half_deleted / "samples").mkdir(parents=True)
    stale = ws.checkpoints / f".mine.safetensors.{dead_pid()}.ab12.tmp"
    stale.write_bytes(b"partial upload")
    failed = ws.run("first")
    failed.mkdir()
    (failed / "config.json").write_text("{}")  # written, then the run failed before any checkpoint

    studio = Studio(Workspace(home), device="cpu")
    assert not half_deleted.exists() and not stale.exists()
    write_images(studio.workspace.datasets / "photos", [photo(48, 48, s) for s in range(3)])
    assert studio.start_training("esrgan", "photos", "first", "", {**TINY_SR, "steps": "2"}) == "first"
    studio.job.wait(60)
    assert studio.job.snapshot()["status"] == "done"
    assert json.loads((failed / "config.json").read_text())["family"] == "esrgan"


def test_a_full_disk_is_one_line_naming_the_file_and_leaves_nothing(tmp_path, monkeypatch):
    """Training checkpoints, results and records all write through atomic_path: a full disk there
    is "disk full writing NAME", not an unexpected OSError, and no partial file stays."""
    import errno
    import os

    from translator import TranslatorError
    from translator.files import atomic_write

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    (tmp_path / "run").mkdir()
    with pytest.raises(TranslatorError, match=r"^disk full writing generator\.safetensors \(in run\); free some space and try again$"):
        atomic_write(tmp_path / "run" / "generator.safetensors", b"weights")
    assert list((tmp_path / "run").iterdir()) == []
