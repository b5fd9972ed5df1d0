"""The command line: translate, export, models, and its one-line errors."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.helpers import photo, save_pth
from tests.reference_networks import BasicSRSRVGGNetCompact, RefUnetGenerator, randomize
from translator.cli import main

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def sr_pth(tmp_path):
    return save_pth(randomize(BasicSRSRVGGNetCompact(num_feat=8, num_conv=2, upscale=2)).state_dict(), tmp_path / "sr.pth", "params_ema")


def cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "translator", *map(str, args)], capture_output=True, text=True, cwd=cwd)


def test_errors_are_one_line_without_traceback(tmp_path, sr_pth, capsys):
    Image.fromarray(photo(8, 8)).save(tmp_path / "in.png")
    cases = [
        ("translate", tmp_path / "missing.png", "--checkpoint", sr_pth),
        ("translate", tmp_path / "in.png", "--checkpoint", tmp_path / "missing.pth"),
        ("translate", tmp_path / "in.png", "--checkpoint", sr_pth, "--model", "cyclegan"),
        ("translate", tmp_path / "in.png", "--checkpoint", sr_pth, "--set", "colour=red"),
        ("translate", tmp_path / "in.png", "--checkpoint", sr_pth, "--device", "cuda:7" if not _has_cuda() else "tpu"),
        ("translate", tmp_path / "in.png", "--checkpoint", sr_pth, "--output", tmp_path / "out.gif"),
        ("export", sr_pth, "--output", tmp_path / "x.pth"),
        # no progress bar before a training error
        ("train", "esrgan", "--data", tmp_path / "no-such-data", "--output", tmp_path / "run"),
        ("train", "esrgan", "--data", tmp_path, "--output", tmp_path / "run", "--set", "workers=4096"),
    ]
    for args in cases:
        assert main([str(a) for a in args]) == 1, args
        err = capsys.readouterr().err
        assert "Traceback" not in err
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), err


@pytest.mark.slow
def test_a_real_process_prints_one_line_and_exits_non_zero(tmp_path, sr_pth):
    """The command as a user runs it: nothing from torch or the loader before the error line."""
    result = cli("translate", tmp_path / "missing.png", "--checkpoint", sr_pth)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [f"error: input not found: {tmp_path / 'missing.png'}"], result.stderr


def _has_cuda():
    import torch

    return torch.cuda.is_available()


def test_translate_single_file_and_folders(tmp_path, sr_pth, capsys):
    images = tmp_path / "photos"
    images.mkdir()
    for i in range(3):
        Image.fromarray(photo(10 + i, 12, seed=i)).save(images / f"p{i}.png")
    (images / "readme.txt").write_text("ignored: not an image")

    assert main(["translate", str(images / "p0.png"), "-c", str(sr_pth), "-o", str(tmp_path / "one.png")]) == 0
    assert Image.open(tmp_path / "one.png").size == (24, 20)

    assert main(["translate", str(images), "-c", str(sr_pth), "-o", str(tmp_path / "out")]) == 0
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == ["p0.png", "p1.png", "p2.png"]
    assert Image.open(tmp_path / "out" / "p2.png").size == (24, 24)


def test_results_are_written_as_png_webp_or_jpeg(tmp_path, sr_pth, capsys):
    source = tmp_path / "in.png"
    Image.fromarray(photo(10, 12)).save(source)
    assert main(["translate", str(source), "-c", str(sr_pth), "-o", str(tmp_path / "lossless.png")]) == 0
    assert main(["translate", str(source), "-c", str(sr_pth), "-o", str(tmp_path / "small.jpg"), "--quality", "80"]) == 0
    assert main(["translate", str(source), "-c", str(sr_pth), "-o", str(tmp_path / "out"), "--format", "webp", "--quality", "100"]) == 0
    with Image.open(tmp_path / "lossless.png") as png, Image.open(tmp_path / "small.jpg") as jpeg, Image.open(tmp_path / "out" / "in.webp") as webp:
        assert (jpeg.format, jpeg.size, webp.format, webp.size) == ("JPEG", (24, 20), "WEBP", (24, 20))
        assert (np.asarray(webp) == np.asarray(png)).all()  # WebP at 100 is lossless
    capsys.readouterr()
    for args, message in [(["-o", str(tmp_path / "x.gif")], "the output must be a .png, .webp, .jpg, .jpeg file or a folder"),
                          (["-o", str(tmp_path / "x.png"), "--format", "jpg"], "x.png does not end in .jpg, the --format asked for"),
                          (["-o", str(tmp_path / "x.jpg"), "--quality", "0"], "--quality must be from 1 to 100, not 0")]:
        assert main(["translate", str(source), "-c", str(sr_pth), *args]) == 1
        assert message in capsys.readouterr().err


def test_one_bad_image_in_a_batch_is_skipped_and_reported(tmp_path, sr_pth, capsys):
    images = tmp_path / "photos"
    images.mkdir()
    Image.fromarray(photo(8, 8)).save(images / "good.png")
    (images / "bad.png").write_bytes(b"garbage")
    assert main(["translate", str(images), "-c", str(sr_pth), "-o", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert "skipped" in err and "bad.png is not an image" in err and "1 of 2 images failed" in err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["good.png"]


def test_failed_translation_leaves_no_file(tmp_path, sr_pth, monkeypatch):
    import translator.images as images

    Image.fromarray(photo(8, 8)).save(tmp_path / "in.png")

    def explode(picture):
        raise RuntimeError("disk full")

    # the encoder has written part of its file when the disk fills up
    monkeypatch.setattr(images, "encode_png", lambda picture, target: target.write_bytes(b"partial") and explode(picture))
    assert main(["translate", str(tmp_path / "in.png"), "-c", str(sr_pth), "-o", str(tmp_path / "out" / "r.png")]) == 1
    assert not (tmp_path / "out" / "r.png").exists()
    assert not list((tmp_path / "out").glob("*")) if (tmp_path / "out").exists() else True


def test_outputs_may_not_collide_or_overwrite_inputs(tmp_path, sr_pth, capsys):
    Image.fromarray(photo(8, 8)).save(tmp_path / "a.png")
    Image.fromarray(photo(8, 8)).save(tmp_path / "a.jpg")
    assert main(["translate", str(tmp_path / "a.png"), str(tmp_path / "a.jpg"), "-c", str(sr_pth), "-o", str(tmp_path / "o")]) == 1
    assert "would both be written to" in capsys.readouterr().err
    assert main(["translate", str(tmp_path / "a.png"), "-c", str(sr_pth), "-o", str(tmp_path)]) == 1
    assert "would overwrite an input" in capsys.readouterr().err
    assert main(["translate", str(tmp_path / "a.png"), str(tmp_path / "a.jpg"), "-c", str(sr_pth), "-o", str(tmp_path / "x.png")]) == 1
    assert "need an output folder" in capsys.readouterr().err


def test_export_then_translate_without_model_gives_the_same_result(tmp_path, capsys):
    reference = randomize(RefUnetGenerator(3, 3, 7, ngf=8, use_dropout=True))
    pth = save_pth(reference.state_dict(), tmp_path / "latest_net_G.pth")
    Image.fromarray(photo(100, 130)).save(tmp_path / "in.png")

    assert main(["export", str(pth), "--model", "pix2pix", "--output", str(tmp_path / "p.safetensors")]) == 0
    assert "pix2pix unet x1" in capsys.readouterr().out
    assert main(["translate", str(tmp_path / "in.png"), "-m", "pix2pix", "-c", str(pth), "-o", str(tmp_path / "a.png")]) == 0
    assert main(["translate", str(tmp_path / "in.png"), "-c", str(tmp_path / "p.safetensors"), "-o", str(tmp_path / "b.png")]) == 0
    a, b = np.asarray(Image.open(tmp_path / "a.png")), np.asarray(Image.open(tmp_path / "b.png"))
    assert a.shape == (100, 130, 3) and np.array_equal(a, b)


def test_family_settings_reach_the_family(tmp_path, capsys):
    reference = randomize(RefUnetGenerator(3, 3, 7, ngf=8, use_dropout=True))
    pth = save_pth(reference.state_dict(), tmp_path / "g.pth")
    Image.fromarray(photo(128, 128)).save(tmp_path / "in.png")
    base = ["translate", str(tmp_path / "in.png"), "-m", "pix2pix", "-c", str(pth)]
    assert main([*base, "-o", str(tmp_path / "eval.png")]) == 0
    assert main([*base, "-o", str(tmp_path / "t1.png"), "--set", "sampling=train", "--seed", "1"]) == 0
    assert main([*base, "-o", str(tmp_path / "t2.png"), "--set", "sampling=train", "--seed", "1"]) == 0
    eval_, t1, t2 = (np.asarray(Image.open(tmp_path / n)) for n in ("eval.png", "t1.png", "t2.png"))
    assert np.array_equal(t1, t2) and not np.array_equal(t1, eval_)
    assert main([*base, "--set", "sampling=sometimes"]) == 1
    assert "setting 'sampling' must be one of eval, train" in capsys.readouterr().err


def test_models_lists_families_and_settings(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for expected in ("pix2pix:", "cyclegan:", "esrgan:", "task: super-resolution", "--set sampling=eval", "architectures: rrdbnet, srvgg"):
        assert expected in out


@pytest.mark.slow
def test_console_script_is_installed():
    script = Path(sys.executable).parent / "translator"
    assert script.exists(), "pip install -e . installs the translator command"
    assert subprocess.run([str(script), "--help"], capture_output=True, text=True).returncode == 0
