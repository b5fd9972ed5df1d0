"""The training core: it learns, resumes exactly, checks its data, stops cleanly, survives kills."""

import json
import re
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from tests.helpers import ROOT, TINY_GAN, TINY_SR, metrics, photo, save_pth, shapes, trainer, write_images
from tests.reference_networks import BasicSRSRVGGNetCompact, randomize
from translator import TranslatorError
from translator.checkpoints import load_checkpoint
from translator.cli import main
from translator.events import Data, Done, Sample, Step, Validation
from translator.metrics import psnr_y
from translator.plugins import registry
from translator.training import Trainer



# ---- it learns ----


@pytest.mark.slow
def test_super_resolution_beats_bicubic_on_held_out_images(tmp_path):
    data = write_images(tmp_path / "sr", [shapes(96, 96, seed) for seed in range(16)])
    run = tmp_path / "run"
    settings = {"arch": "srvgg", "nf": 32, "num_conv": 2, "scale": 2, "lr": 4e-3, "lr_halve_every": 400, "ema_decay": 0, "steps": 800, "batch_size": 16, "crop_size": 16, "workers": 0, "sample_every": 0, "val_every": 0, "log_every": 100}
    trainer("esrgan", data, run, **settings).run()

    net = load_checkpoint(run / "generator.safetensors").module.eval()
    gains = []
    for seed in range(100, 106):  # never seen in training
        hr = torch.from_numpy(shapes(64, 64, seed)).permute(2, 0, 1)[None].float() / 255
        lr = F.interpolate(hr, scale_factor=0.5, mode="bicubic", antialias=True, align_corners=False).clamp(0, 1)
        with torch.no_grad():
            sr = net(lr).clamp(0, 1)
        bicubic = F.interpolate(lr, scale_factor=2, mode="bicubic", align_corners=False).clamp(0, 1)
        gains.append(psnr_y(sr, hr, 2) - psnr_y(bicubic, hr, 2))
    assert np.mean(gains) > 0.5, f"PSNR gain over bicubic {np.mean(gains):.2f} dB"


@pytest.mark.slow
def test_pix2pix_learns_a_paired_mapping(tmp_path):
    a = [photo(40, 40, seed) for seed in range(8)]
    write_images(tmp_path / "pairs" / "A", a)
    write_images(tmp_path / "pairs" / "B", [255 - x for x in a])  # the mapping: colour inversion
    run = tmp_path / "run"
    trainer("pix2pix", tmp_path / "pairs", run, netG="resnet_6blocks", norm="batch", dropout="false", lr=2e-3, lr_constant_steps=75, lr_decay_steps=75, steps=150, batch_size=4, load_size=40, crop_size=32, **TINY_GAN).run()
    l1 = [m["losses"]["G_l1"] / 100 for m in metrics(run) if m["event"] == "step"]
    assert np.mean(l1[-5:]) < 0.5 * np.mean(l1[:3]), f"L1 from {np.mean(l1[:3]):.3f} to {np.mean(l1[-5:]):.3f}"


@pytest.mark.slow
def test_cyclegan_cycle_error_falls(tmp_path):
    write_images(tmp_path / "d" / "trainA", [photo(36, 36, seed) for seed in range(6)])
    write_images(tmp_path / "d" / "trainB", [photo(36, 36, seed)[..., ::-1].copy() for seed in range(6, 12)])
    run = tmp_path / "run"
    trainer("cyclegan", tmp_path / "d", run, netG="resnet_6blocks", lr=2e-3, lr_constant_steps=20, lr_decay_steps=20, steps=40, load_size=36, crop_size=32, pool_size=4, **TINY_GAN).run()
    cycle = [m["losses"]["cycle"] for m in metrics(run) if m["event"] == "step"]
    assert np.mean(cycle[-5:]) < 0.8 * np.mean(cycle[:5]), f"cycle loss from {np.mean(cycle[:5]):.3f} to {np.mean(cycle[-5:]):.3f}"
    assert load_checkpoint(run / "generator_BA.safetensors").family.name == "cyclegan"


# ---- resume ----


@pytest.mark.parametrize("family", ["cyclegan", "esrgan"])
def test_resume_continues_exactly(tmp_path, family):
    if family == "cyclegan":
        write_images(tmp_path / "d" / "trainA", [photo(36, 36, s) for s in range(5)])
        write_images(tmp_path / "d" / "trainB", [photo(36, 36, s) for s in range(5, 9)])
        settings = dict(netG="resnet_6blocks", load_size=36, crop_size=32, pool_size=3, color_jitter=0.2, **TINY_GAN)
    else:
        write_images(tmp_path / "d", [photo(40, 40, s) for s in range(5)])
        # perceptual loss left out: its VGG weights cannot be downloaded here
        settings = dict(arch="rrdbnet", nf=8, nb=1, gc=4, scale=2, gan_weight=0.1, crop_size=32, batch_size=2, workers=0, log_every=1, sample_every=0, val_every=0, degradation="realesrgan")
    straight, split = tmp_path / "straight", tmp_path / "split"
    trainer(family, tmp_path / "d", straight, steps=6, **settings).run()
    # the same 6-step run, stopped after step 3 (Ctrl-C, the app's Stop button), then resumed
    holder = {}
    holder["t"] = Trainer(registry().family(family), tmp_path / "d", split, {k: str(v) for k, v in {**settings, "steps": 6}.items()}, device="cpu",
                          on_event=lambda e: isinstance(e, Step) and e.step == 3 and holder["t"].stop())
    assert holder["t"].run() == {"status": "stopped", "step": 3}
    Trainer(registry().family(family), tmp_path / "d", split, {k: str(v) for k, v in {**settings, "steps": 6}.items()}, resume=True, device="cpu").run()

    a = torch.load(straight / "resume.pt", weights_only=True)
    b = torch.load(split / "resume.pt", weights_only=True)
    assert a["step"] == b["step"] == 6
    for name in a["networks"]:
        for key, value in a["networks"][name].items():
            assert torch.equal(value, b["networks"][name][key]), f"{name}.{key} differs after resume"
    for name in a["ema"]:
        for key, value in a["ema"][name].items():
            assert torch.equal(value, b["ema"][name][key])
    losses_a = [m for m in metrics(straight) if m["event"] == "step"]
    losses_b = [m for m in metrics(split) if m["event"] == "step"]
    assert [m["step"] for m in losses_b] == list(range(1, 7))
    assert [m["losses"].get("D") for m in losses_a] == [m["losses"].get("D") for m in losses_b]


def test_resume_needs_a_run_and_a_run_is_not_overwritten(tmp_path):
    data = write_images(tmp_path / "d", [photo(40, 40, s) for s in range(3)])
    small = dict(arch="srvgg", nf=4, num_conv=1, scale=2, crop_size=16, batch_size=2, workers=0, sample_every=0, val_every=0)
    with pytest.raises(TranslatorError, match="nothing to resume"):
        Trainer(registry().family("esrgan"), data, tmp_path / "none", {k: str(v) for k, v in small.items()}, resume=True, device="cpu").run()
    trainer("esrgan", data, tmp_path / "run", steps=2, **small).run()
    with pytest.raises(TranslatorError, match="already holds a run"):
        trainer("esrgan", data, tmp_path / "run", steps=2, **small).run()


def test_runs_saved_before_a_setting_existed_still_resume(tmp_path):
    data = write_images(tmp_path / "d", [photo(40, 40, s) for s in range(3)])
    small = dict(arch="srvgg", nf=4, num_conv=1, scale=2, crop_size=16, batch_size=2, workers=0, sample_every=0, val_every=0)
    trainer("esrgan", data, tmp_path / "run", steps=1, **small).run()
    state = torch.load(tmp_path / "run" / "resume.pt", weights_only=True)
    # as written before the compile setting and the fused update were added
    record = json.loads((tmp_path / "run" / "config.json").read_text())
    del record["training"]["compile"]
    (tmp_path / "run" / "config.json").write_text(json.dumps(record))
    for group in state["optimizers"]["G"]["param_groups"]:
        group["fused"] = None
    for param_state in state["optimizers"]["G"]["state"].values():
        param_state["step"] = torch.tensor(1.0)
    torch.save(state, tmp_path / "run" / "resume.pt")
    resumed = Trainer(registry().family("esrgan"), data, tmp_path / "run", {k: str(v) for k, v in {**small, "steps": 2}.items()}, resume=True, device="cpu")
    assert resumed.run() == {"status": "done", "step": 2}
    optimizer = resumed.recipe.optimizers["G"]
    assert all(group["fused"] for group in optimizer.param_groups)  # it resumed with the fused update
    assert all(float(s["step"]) == 2 for s in optimizer.state.values())


def test_resume_reads_the_run_it_continues(tmp_path, capsys):
    """The issue's case: a run made with --set arch=srvgg --set nf=8 resumes from --output alone."""
    data = write_images(tmp_path / "d", [photo(40, 40, s) for s in range(3)])
    run = tmp_path / "run"
    loop = ["--device", "cpu", "--set", "workers=0", "--set", "log_every=1", "--set", "sample_every=0", "--set", "val_every=0"]
    assert main(["train", "esrgan", "--data", str(data), "--output", str(run), "--steps", "2", "--batch-size", "2",
                 "--set", "arch=srvgg", "--set", "nf=8", "--set", "num_conv=1", "--set", "scale=2", "--set", "crop_size=16", *loop]) == 0
    assert main(["train", "--resume", "--output", str(run), "--steps", "4", "--device", "cpu"]) == 0
    assert "done at step 4" in capsys.readouterr().out
    resumed = load_checkpoint(run / "generator.safetensors")
    assert resumed.arch.name == "srvgg" and resumed.arch.params["nf"] == 8 and resumed.metadata["steps"] == "4"
    record = json.loads((run / "config.json").read_text())
    assert record["settings"]["nf"] == 8 and record["training"]["batch_size"] == 2 and record["training"]["steps"] == 4
    assert [m["step"] for m in metrics(run) if m["event"] == "step"] == [1, 2, 3, 4]

    # what contradicts the record is refused, in one line saying what differs
    assert main(["train", "esrgan", "--resume", "--output", str(run), "--steps", "6", "--set", "nf=16", "--batch-size", "4"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: cannot resume with changed settings: nf 16 (was 8); batch_size 4 (was 2)") and "\n" not in err
    assert main(["train", "cyclegan", "--resume", "--output", str(run)]) == 1
    assert "the run trained esrgan, not cyclegan" in capsys.readouterr().err
    assert main(["train", "--resume", "--output", str(run), "--data", str(tmp_path)]) == 1
    assert f"the run trained on {data}" in capsys.readouterr().err
    assert main(["train", "--output", str(tmp_path / "new")]) == 1
    assert "a new run needs a family and its data" in capsys.readouterr().err


# ---- data checks ----


def test_data_problems_are_clear_before_training(tmp_path):
    with pytest.raises(TranslatorError, match="data folder not found"):
        trainer("esrgan", tmp_path / "missing", tmp_path / "r").run()
    (tmp_path / "empty").mkdir()
    with pytest.raises(TranslatorError, match="no usable training images"):
        trainer("esrgan", tmp_path / "empty", tmp_path / "r").run()
    (tmp_path / "u" / "trainA").mkdir(parents=True)
    with pytest.raises(TranslatorError, match="needs trainA/ and trainB/ folders"):
        trainer("cyclegan", tmp_path / "u", tmp_path / "r").run()
    (tmp_path / "u" / "trainB").mkdir()
    with pytest.raises(TranslatorError, match="trainA/ and trainB/ must both hold images"):
        trainer("cyclegan", tmp_path / "u", tmp_path / "r").run()
    with pytest.raises(TranslatorError, match="discriminator needs crop_size of at least 32"):
        trainer("esrgan", write_images(tmp_path / "sr", [photo(40, 40, 0)]), tmp_path / "r", gan_weight=0.1, crop_size=16, arch="srvgg", nf=4, num_conv=1).run()
    assert not (tmp_path / "r").exists()


def test_bad_files_are_skipped_and_mismatched_pairs_named(tmp_path):
    write_images(tmp_path / "p" / "A", [photo(40, 40, s) for s in range(4)])
    write_images(tmp_path / "p" / "B", [photo(40, 40, s) for s in range(3)])
    (tmp_path / "p" / "A" / "broken.png").write_bytes(b"\x89PNG not really")
    (tmp_path / "p" / "B" / "notes.txt").write_text("hello")
    events = []
    t = Trainer(registry().family("pix2pix"), tmp_path / "p", tmp_path / "run", {**TINY_GAN, "netG": "unet_128", "steps": "1", "load_size": "128", "crop_size": "128"}, device="cpu", on_event=events.append)
    t.run()
    summary = events[0].summary
    assert "3 training samples" in summary
    assert "2 unreadable files skipped" in summary and "broken.png" in summary and "notes.txt" in summary
    assert "1 files without a partner skipped: A/003.png" in summary


def test_bad_settings_are_one_line_errors(tmp_path):
    data = write_images(tmp_path / "d", [photo(40, 40, 0)])
    with pytest.raises(TranslatorError, match="unknown setting 'learning_rate' for training esrgan"):
        trainer("esrgan", data, tmp_path / "r", learning_rate=1)
    with pytest.raises(TranslatorError, match="crop_size 30 must be a multiple of 4"):
        trainer("esrgan", data, tmp_path / "r", crop_size=30, arch="srvgg", nf=4, num_conv=1).run()
    with pytest.raises(TranslatorError, match="crop_size 300 is larger than load_size 286"):
        trainer("pix2pix", data, tmp_path / "r", crop_size=300)
    with pytest.raises(TranslatorError, match="setting 'pool_size' must be at least 0, got '-1'"):
        trainer("cyclegan", data, tmp_path / "r", pool_size=-1)
    with pytest.raises(TranslatorError, match="setting 'steps' must be at least 1"):
        trainer("esrgan", data, tmp_path / "r", steps=0)
    with pytest.raises(TranslatorError, match="setting 'ema_decay' must be from 0.0 to 0.99999"):
        trainer("esrgan", data, tmp_path / "r", ema_decay=1.5)
    with pytest.raises(TranslatorError, match="setting 'color_jitter' must be from 0.0 to 1.0"):
        trainer("pix2pix", data, tmp_path / "r", color_jitter=2)


# ---- stopping, crashing, fine-tuning ----


def test_cooperative_stop_saves_and_resume_finishes(tmp_path):
    data = write_images(tmp_path / "d", [photo(40, 40, s) for s in range(3)])
    small = {"arch": "srvgg", "nf": "4", "num_conv": "1", "scale": "2", "crop_size": "16", "batch_size": "2", "workers": "0", "log_every": "1", "sample_every": "0", "val_every": "0", "steps": "50"}
    holder = {}

    def on_event(event):
        if isinstance(event, Step) and event.step == 3:
            holder["trainer"].stop()

    holder["trainer"] = Trainer(registry().family("esrgan"), data, tmp_path / "run", small, device="cpu", on_event=on_event)
    assert holder["trainer"].run() == {"status": "stopped", "step": 3}  # the step under way finishes
    assert torch.load(tmp_path / "run" / "resume.pt", weights_only=True)["step"] == 3
    assert Trainer(registry().family("esrgan"), data, tmp_path / "run", small, resume=True, device="cpu").run() == {"status": "done", "step": 50}


@pytest.mark.slow
def test_killed_run_leaves_the_last_checkpoint_loadable(tmp_path):
    data = write_images(tmp_path / "d", [photo(48, 48, s) for s in range(4)])
    run = tmp_path / "run"
    command = [sys.executable, "-m", "translator", "train", "esrgan", "--data", str(data), "-o", str(run), "--steps", "100000", "--device", "cpu",
               "--set", "arch=rrdbnet", "--set", "nf=8", "--set", "nb=1", "--set", "gc=4", "--set", "crop_size=32", "--set", "batch_size=2",
               "--set", "workers=0", "--set", "checkpoint_every=1", "--set", "sample_every=0", "--set", "val_every=0"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path)
    try:
        deadline = time.time() + 120
        while not (run / "resume.pt").exists() and time.time() < deadline:
            time.sleep(0.2)
        time.sleep(1.5)  # kill it somewhere in the middle of later steps and writes
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    state = torch.load(run / "resume.pt", weights_only=True)
    assert state["step"] >= 1
    assert load_checkpoint(run / "generator.safetensors").arch.name == "rrdbnet"


def test_fine_tuning_starts_from_a_published_checkpoint(tmp_path):
    reference = randomize(BasicSRSRVGGNetCompact(num_feat=8, num_conv=2, upscale=2))
    start = save_pth(reference.state_dict(), tmp_path / "published.pth", "params_ema")
    data = write_images(tmp_path / "d", [photo(40, 40, s) for s in range(3)])
    Trainer(registry().family("esrgan"), data, tmp_path / "run", {"lr": "0", "ema_decay": "0", "steps": "2", "crop_size": "16", "batch_size": "2", "workers": "0", "sample_every": "0", "val_every": "0"},
            checkpoint=start, device="cpu").run()
    tuned = load_checkpoint(tmp_path / "run" / "generator.safetensors").module
    for key, value in reference.state_dict().items():
        assert torch.equal(tuned.state_dict()[key], value)  # lr 0: the published weights, untouched


def test_samples_validation_and_metrics_log(tmp_path):
    write_images(tmp_path / "d" / "train", [shapes(48, 48, s) for s in range(4)])
    write_images(tmp_path / "d" / "val", [shapes(40, 52, s) for s in range(50, 52)])
    events = []
    Trainer(registry().family("esrgan"), tmp_path / "d", tmp_path / "run",
            {"arch": "srvgg", "nf": "8", "num_conv": "2", "scale": "2", "crop_size": "24", "batch_size": "2", "workers": "0", "steps": "4", "log_every": "2", "sample_every": "2", "val_every": "2"},
            device="cpu", on_event=events.append).run()
    assert isinstance(events[0], Data) and type(events[-1]) is Done
    validations = [e for e in events if isinstance(e, Validation)]
    assert validations and {"psnr", "ssim", "psnr_bicubic"} <= validations[0].scores.keys()
    samples = [e.path for e in events if isinstance(e, Sample)]
    # one early (a tenth of the way, at least step 1), then every sample_every steps, once a step
    assert [e.step for e in events if isinstance(e, Sample)] == [1, 2, 4]
    # input (nearest-upscaled), output and target side by side; the two sample images stacked
    assert Image.open(samples[0]).size == (3 * 24, 2 * 24)
    logged = metrics(tmp_path / "run")
    assert {"step", "validation", "done"} <= {m["event"] for m in logged}
    steps = [m for m in logged if m["event"] == "step"]
    assert all("pixel" in m["losses"] and {"lr", "images_per_s", "time"} <= m.keys() for m in steps)
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["family"] == "esrgan" and config["training"]["steps"] == 4

    # a run of 40 steps sampling every 20 shows one at step 4, and one where it is stopped
    events.clear()
    holder = {}
    holder["t"] = Trainer(registry().family("esrgan"), tmp_path / "d", tmp_path / "run2",
                          {"arch": "srvgg", "nf": "8", "num_conv": "2", "scale": "2", "crop_size": "24", "batch_size": "2", "workers": "0", "steps": "40", "log_every": "1",
                           "sample_every": "20", "val_every": "0"},
                          device="cpu", on_event=lambda e: (events.append(e), isinstance(e, Step) and e.step == 7 and holder["t"].stop()))
    assert holder["t"].run() == {"status": "stopped", "step": 7}
    assert [e.step for e in events if isinstance(e, Sample)] == [4, 7]


def test_perceptual_loss_without_vgg_weights_says_how_to_go_on(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    data = write_images(tmp_path / "d", [photo(40, 40, 0)])
    with pytest.raises(TranslatorError, match="perceptual_weight=0"):
        trainer("esrgan", data, tmp_path / "run", perceptual_weight=1, crop_size=16, arch="srvgg", nf=4, num_conv=1).run()


@pytest.mark.slow
def test_perceptual_loss_with_a_vgg_weights_file(tmp_path):
    from torchvision.models import vgg19

    weights = tmp_path / "vgg19.pth"
    with torch.device("meta"):
        layout = vgg19().state_dict()
    # torchvision's layout, random values: the loading path is what is tested
    torch.save({key: torch.randn(value.shape) * 0.01 for key, value in layout.items()}, weights)
    data = write_images(tmp_path / "d", [photo(40, 40, 0)])
    trainer("esrgan", data, tmp_path / "run", perceptual_weight=1, vgg_weights=weights, steps=2, crop_size=16, arch="srvgg", nf=4, num_conv=1, scale=2, batch_size=1, workers=0, log_every=1, sample_every=0, val_every=0).run()
    assert all("perceptual" in m["losses"] for m in metrics(tmp_path / "run") if m["event"] == "step")


def test_train_command(tmp_path, capsys):
    data = write_images(tmp_path / "d", [photo(40, 40, s) for s in range(2)])
    code = main(["train", "esrgan", "--data", str(data), "-o", str(tmp_path / "run"), "--steps", "2", "--batch-size", "2", "--device", "cpu",
                 "--set", "arch=srvgg", "--set", "nf=4", "--set", "num_conv=1", "--set", "crop_size=16", "--set", "workers=0"])
    assert code == 0
    assert "done at step 2" in capsys.readouterr().out
    assert main(["translate", str(data / "000.png"), "-c", str(tmp_path / "run" / "generator.safetensors"), "-o", str(tmp_path / "x.png")]) == 0
    assert Image.open(tmp_path / "x.png").size == (160, 160)
    assert main(["train", "nosuch", "--data", str(data), "-o", str(tmp_path / "r2")]) == 1
    assert "no model family named 'nosuch'" in capsys.readouterr().err


def test_train_help_lists_every_family_and_its_defaults(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["train", "--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    for expected in ("pix2pix (paired) settings", "cyclegan (unpaired) settings", "esrgan (super-resolution) settings", "lambda_l1=100.0", "crop_size=128", "pool_size=50"):
        assert expected in out
    # the layouts come from the tasks themselves
    assert re.search(r"super-resolution:\s+high-resolution images", out) and re.search(r"unpaired:\s+trainA/ and trainB/", out)


@pytest.mark.slow
def test_two_processes_keep_identical_replicas(tmp_path):
    """torchrun with the gloo backend on the CPU: after training, both replicas hold the same weights."""
    data = write_images(tmp_path / "d", [photo(40, 40, s) for s in range(6)])
    script = tmp_path / "replica.py"
    script.write_text(textwrap.dedent(f"""
        import os, torch
        from translator.plugins import registry
        from translator.training import Trainer
        rank = int(os.environ["RANK"])
        settings = {{"arch": "rrdbnet", "nf": "8", "nb": "1", "gc": "4", "scale": "2", "crop_size": "32", "batch_size": "2",
                    "workers": "0", "steps": "4", "sample_every": "0", "val_every": "0", "flip": "false", "ema_decay": "0", "precision": "fp32"}}
        trainer = Trainer(registry().family("esrgan"), {str(data)!r}, {str(tmp_path / 'run')!r}, settings, device="cpu")
        trainer.run()
        torch.save({{n: net.state_dict() for n, net in trainer.recipe.networks.items()}}, {str(tmp_path)!r} + f"/replica{{rank}}.pt")
    """))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29517", str(script)],
                            capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    first, second = (torch.load(tmp_path / f"replica{r}.pt", weights_only=True) for r in (0, 1))
    for name in first:
        for key, value in first[name].items():
            assert torch.equal(value, second[name][key]), f"replicas differ in {name}.{key}"
    # and they learnt what one process with both halves of every batch learns: averaged, not
    # summed, gradients, each process on its own share of the data
    single = {"arch": "rrdbnet", "nf": "8", "nb": "1", "gc": "4", "scale": "2", "crop_size": "32", "batch_size": "4",
              "workers": "0", "steps": "4", "sample_every": "0", "val_every": "0", "flip": "false", "ema_decay": "0", "precision": "fp32"}
    Trainer(registry().family("esrgan"), data, tmp_path / "single", single, device="cpu").run()
    reference = load_checkpoint(tmp_path / "single" / "generator.safetensors").module.state_dict()
    for key, value in reference.items():
        torch.testing.assert_close(first["G"][key], value, rtol=1e-4, atol=1e-5)


def test_gradient_accumulation_matches_a_larger_batch(tmp_path):
    data = write_images(tmp_path / "d", [photo(40, 40, s) for s in range(4)])
    common = {"arch": "srvgg", "nf": "8", "num_conv": "2", "scale": "2", "crop_size": "16", "flip": "false", "ema_decay": "0",
              "workers": "0", "steps": "3", "sample_every": "0", "val_every": "0"}
    Trainer(registry().family("esrgan"), data, tmp_path / "big", {**common, "batch_size": "4"}, device="cpu").run()
    Trainer(registry().family("esrgan"), data, tmp_path / "acc", {**common, "batch_size": "1", "accumulate": "4"}, device="cpu").run()
    big = load_checkpoint(tmp_path / "big" / "generator.safetensors").module.state_dict()
    acc = load_checkpoint(tmp_path / "acc" / "generator.safetensors").module.state_dict()
    for key in big:
        torch.testing.assert_close(acc[key], big[key], rtol=1e-4, atol=1e-5)


def test_resume_then_extend_equals_one_longer_run(tmp_path):
    """The issue's wording literally: --steps N, then --resume --steps 2N, equals --steps 2N.
    pix2pix brings dropout, batch norm and two optimizers; loader processes are used."""
    a = [photo(40, 40, s) for s in range(5)]
    write_images(tmp_path / "p" / "A", a)
    write_images(tmp_path / "p" / "B", [255 - x for x in a])
    settings = {**TINY_GAN, "workers": "1", "netG": "unet_128", "load_size": "140", "crop_size": "128", "batch_size": "2",
                "lr_constant_steps": "2", "lr_decay_steps": "4", "color_jitter": "0.2"}
    family = registry().family("pix2pix")
    Trainer(family, tmp_path / "p", tmp_path / "long", {**settings, "steps": "4"}, device="cpu").run()
    Trainer(family, tmp_path / "p", tmp_path / "short", {**settings, "steps": "2"}, device="cpu").run()
    Trainer(family, tmp_path / "p", tmp_path / "short", {**settings, "steps": "4"}, resume=True, device="cpu").run()
    a_state, b_state = (torch.load(tmp_path / r / "resume.pt", weights_only=True) for r in ("long", "short"))
    for name in a_state["networks"]:
        for key, value in a_state["networks"][name].items():
            assert torch.equal(value, b_state["networks"][name][key]), f"{name}.{key}"
    lrs = [m["lr"]["G"] for m in metrics(tmp_path / "short") if m["event"] == "step"]
    assert lrs == pytest.approx([2e-4, 2e-4, 1.5e-4, 1e-4])  # constant 2 steps, then linear decay over 4


def test_resume_refuses_changed_settings_and_corrupt_state(tmp_path):
    data = write_images(tmp_path / "d", [photo(40, 40, s) for s in range(3)])
    small = {"arch": "srvgg", "nf": "4", "num_conv": "1", "scale": "2", "crop_size": "16", "batch_size": "2", "workers": "0", "sample_every": "0", "val_every": "0", "steps": "2"}
    family = registry().family("esrgan")
    Trainer(family, data, tmp_path / "run", small, device="cpu").run()
    with pytest.raises(TranslatorError, match=r"cannot resume with changed settings: batch_size 4 \(was 2\)"):
        Trainer(family, data, tmp_path / "run", {**small, "batch_size": "4"}, resume=True, device="cpu").run()
    Trainer(family, data, tmp_path / "run", {**small, "steps": "3", "log_every": "1"}, resume=True, device="cpu").run()  # allowed
    (tmp_path / "run" / "resume.pt").write_bytes((tmp_path / "run" / "resume.pt").read_bytes()[:100])
    with pytest.raises(TranslatorError, match="resume.pt is corrupt or truncated"):
        Trainer(family, data, tmp_path / "run", {**small, "steps": "4"}, resume=True, device="cpu").run()


def test_resuming_a_fine_tuned_run_needs_no_checkpoint_again(tmp_path):
    start = save_pth(randomize(BasicSRSRVGGNetCompact(num_feat=8, num_conv=2, upscale=2)).state_dict(), tmp_path / "published.pth", "params")
    data = write_images(tmp_path / "d", [photo(40, 40, s) for s in range(3)])
    small = {"crop_size": "16", "batch_size": "2", "workers": "0", "sample_every": "0", "val_every": "0", "steps": "2"}
    Trainer(registry().family("esrgan"), data, tmp_path / "run", small, checkpoint=start, device="cpu").run()
    # the family's default settings describe an RRDBNet; the run is an SRVGG and resumes as one
    assert Trainer(registry().family("esrgan"), data, tmp_path / "run", {**small, "steps": "3"}, resume=True, device="cpu").run()["step"] == 3


def test_train_step_sums_micro_batch_gradients(tmp_path):
    """Gradients (not Adam-normalised updates) of 4 micro-batches of 1 equal those of one batch of 4."""
    import contextlib

    from translator.family import make_settings
    from translator.training import TrainConfig, train_step

    family = registry().family("esrgan")
    settings = make_settings(family.Settings, {"arch": "srvgg", "nf": "8", "num_conv": "2", "scale": "2", "lr": "0", "ema_decay": "0"}, "esrgan")
    arch = family.architecture(settings)
    torch.manual_seed(0)
    net = family.build(arch)
    lr, hr = torch.rand(4, 3, 8, 8), torch.rand(4, 3, 16, 16)
    grads = []
    for batches in ([{"lr": lr, "hr": hr}], [{"lr": lr[i : i + 1], "hr": hr[i : i + 1]} for i in range(4)]):
        recipe = family.recipe(net, arch, settings, TrainConfig(), torch.device("cpu"))
        train_step(recipe, batches, len(batches), contextlib.nullcontext())
        grads.append([p.grad.clone() for p in net.parameters()])
    for whole, summed in zip(*grads):
        torch.testing.assert_close(summed, whole, rtol=1e-5, atol=1e-7)


def test_accumulation_is_bounded_counted_and_stops_between_micro_batches(tmp_path, monkeypatch):
    """accumulate=100000 was admitted as "about 15 MB" and could not be stopped: it is refused,
    the estimate counts every micro-batch's graph, and Stop is heard inside a step, which is then
    dropped whole."""
    import contextlib

    from tests.helpers import TINY_SR
    from translator.training import estimate
    from translator.family import make_settings
    from translator.training import TrainConfig, Trainer, train_step

    data = write_images(tmp_path / "photos", [photo(40, 40, s) for s in range(3)])
    with pytest.raises(TranslatorError, match="setting 'accumulate' must be from 1 to 64, got '100000'"):
        trainer("esrgan", data, tmp_path / "refused", **{**TINY_SR, "accumulate": 100000})
    one, many = (trainer("esrgan", data, tmp_path / f"run{n}", **{**TINY_SR, "accumulate": n}) for n in (1, 16))
    one_estimate, many_estimate = (estimate.estimate(t, t.architecture(), measure=False) for t in (one, many))
    assert many_estimate.memory_bytes > 4 * one_estimate.memory_bytes

    family = registry().family("esrgan")
    settings = make_settings(family.Settings, {"arch": "srvgg", "nf": "8", "num_conv": "2", "scale": "2"}, "esrgan")
    arch = family.architecture(settings)
    recipe = family.recipe(family.build(arch), arch, settings, TrainConfig(), torch.device("cpu"))
    before = [p.detach().clone() for p in recipe.networks["G"].parameters()]
    asked = []

    def stop() -> bool:  # Stop pressed while the third micro-batch waits
        asked.append(1)
        return len(asked) == 3

    batches = [{"lr": torch.rand(1, 3, 8, 8), "hr": torch.rand(1, 3, 16, 16)} for _ in range(8)]
    assert train_step(recipe, batches, 8, contextlib.nullcontext(), stop=stop) is False
    assert len(asked) == 3 and all(torch.equal(a, b) for a, b in zip(before, recipe.networks["G"].parameters()))
    assert all(p.grad is None for p in recipe.networks["G"].parameters())

    # the loop: Stop pressed while a step's micro-batches load ends the run there, saved, unchanged
    run = trainer("esrgan", data, tmp_path / "stopped", **{**TINY_SR, "accumulate": 8, "steps": 5})
    loaded = Trainer._next_batch

    def next_batch(self, state):
        if state.step == 1 and not self._stop.is_set():
            self.stop()
        return loaded(self, state)

    monkeypatch.setattr(Trainer, "_next_batch", next_batch)
    assert run.run() == {"status": "stopped", "step": 1}

    # a step estimated over the limit is refused before it starts
    monkeypatch.setattr(estimate, "MAX_STEP_SECONDS", 1e-6)
    slow = trainer("esrgan", data, tmp_path / "slow", **{**TINY_SR, "accumulate": 64})
    with pytest.raises(TranslatorError, match=r"one step of this run would take about .* over the 0 s a step may take"):
        estimate.estimate(slow, slow.architecture())


def test_admission_sees_the_containers_limit_the_address_space_and_load_size(tmp_path, monkeypatch):
    """A 15.7 GB run was admitted under a 12 GB container cap because free memory was read from
    the host; load_size=20000 was estimated at 40 MB. Free memory is the least of the host's, the
    control group's (v2 or v1, test doubles of the kernel's files here) and RLIMIT_AS's."""
    import resource

    from tests.helpers import TINY_GAN
    from translator.training import estimate

    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal: 67108864 kB\nMemAvailable: 50331648 kB\n")  # 48 GiB available on the host
    monkeypatch.setattr(estimate, "MEMINFO", meminfo)
    monkeypatch.setattr(estimate, "CGROUP_ROOT", tmp_path / "cgroup")
    monkeypatch.setattr(estimate, "PROC_CGROUP", tmp_path / "proc-cgroup")
    cpu = torch.device("cpu")

    (tmp_path / "proc-cgroup").write_text("0::/user.slice/app\n")
    group = tmp_path / "cgroup" / "user.slice" / "app"
    group.mkdir(parents=True)
    (group / "memory.max").write_text("max\n")
    (group / "memory.current").write_text("1000\n")
    assert estimate.free_memory(cpu) == 48 * 2**30
    (group / "memory.max").write_text(f"{12 * 2**30}\n")  # a 12 GiB container, 1000 bytes in use
    assert estimate.free_memory(cpu) == 12 * 2**30 - 1000
    # cgroup v1, and the group mounted as the root, as inside a container
    (tmp_path / "proc-cgroup").write_text("4:memory:/docker/abc\n0::/\n")
    v1 = tmp_path / "cgroup" / "memory"
    v1.mkdir()
    (v1 / "memory.limit_in_bytes").write_text(f"{2 * 2**30}\n")
    (v1 / "memory.usage_in_bytes").write_text(f"{2**30}\n")
    assert estimate.free_memory(cpu) == 2**30

    monkeypatch.setattr(resource, "getrlimit", lambda kind: (2**50, resource.RLIM_INFINITY))
    assert estimate.free_memory(cpu) == 2**30  # a generous RLIMIT_AS changes nothing
    virtual = next(int(l.split()[1]) * 1024 for l in Path("/proc/self/status").read_text().splitlines() if l.startswith("VmSize:"))
    monkeypatch.setattr(resource, "getrlimit", lambda kind: (virtual + 2**20, resource.RLIM_INFINITY))
    assert 0 < estimate.free_memory(cpu) <= 2**20 + 2**22  # what the address space leaves is the least

    # load_size is bounded, and what it loads is counted
    pairs = tmp_path / "pairs"
    write_images(pairs / "A", [photo(40, 40, s) for s in range(2)])
    write_images(pairs / "B", [photo(40, 40, s) for s in range(2)])
    with pytest.raises(TranslatorError, match="setting 'load_size' must be from 1 to 4096, got '20000'"):
        trainer("pix2pix", pairs, tmp_path / "huge", **{**TINY_GAN, "load_size": 20000})
    small, large = (trainer("pix2pix", pairs, tmp_path / f"run{n}", **{**TINY_GAN, "netG": "resnet_6blocks", "load_size": n, "crop_size": 32}) for n in (36, 4096))
    monkeypatch.setattr(estimate, "free_memory", lambda device: None)
    grown = estimate.estimate(large, large.architecture(), measure=False).memory_bytes - estimate.estimate(small, small.architecture(), measure=False).memory_bytes
    assert grown >= 2 * 3 * 4096 * 4096 * 4  # at least the two sides of one image widened to float


def test_pix2pix_on_a_folder_of_ordinary_photos_is_refused_with_what_was_meant(tmp_path):
    """Split down the middle, a 4:3 photo teaches its left half to become its right: a folder of
    them, with no A/ and B/, is not a paired dataset."""
    write_images(tmp_path / "photos", [photo(48, 64, s) for s in range(3)])
    with pytest.raises(TranslatorError) as refused:
        trainer("pix2pix", tmp_path / "photos", tmp_path / "run", **TINY_GAN, netG="resnet_6blocks", load_size=36, crop_size=32, steps=1).run()
    assert str(refused.value).startswith("photos holds ordinary images (3 of 3 are not side-by-side A|B pairs about twice as wide as high)")
    assert "--set gray_input=true" in str(refused.value)
    # side-by-side pairs (twice as wide as high) are what the layout means, and train
    write_images(tmp_path / "pairs", [photo(36, 72, s) for s in range(3)])
    assert trainer("pix2pix", tmp_path / "pairs", tmp_path / "run2", **TINY_GAN, netG="resnet_6blocks", load_size=36, crop_size=32, steps=1).run()["status"] == "done"


def test_paired_augmentation_is_identical_on_both_sides():
    from translator import Task
    from translator.training import TrainConfig

    image = torch.from_numpy(photo(40, 40, 3)).permute(2, 0, 1)[None].repeat(4, 1, 1, 1)
    out = Task.PAIRED.augmenter(TrainConfig(crop_size=32, flip=True, color_jitter=0.5), 1)([image, image.clone()])
    assert out["A"].shape == (4, 3, 32, 32) and torch.equal(out["A"], out["B"])
    assert not all(torch.equal(out["A"][0], out["A"][i]) for i in range(1, 4))  # each sample its own draw


def test_realesrgan_degradation_shapes_and_range():
    from translator.augment import degrade

    hr = torch.rand(3, 3, 64, 48)
    for kind in ("bicubic", "realesrgan", "mixed"):
        lr = degrade(hr, 4, kind)
        assert lr.shape == (3, 3, 16, 12) and lr.min() >= 0 and lr.max() <= 1
    torch.manual_seed(1)
    noisy = degrade(hr, 4, "realesrgan")
    assert (noisy - degrade(hr, 4, "bicubic")).abs().mean() > 0.005
    clean = degrade(hr, 4, "bicubic")
    draws = [torch.equal(degrade(hr, 4, "mixed", share), clean) for share in (1.0, 0.0) for _ in range(8)]
    assert all(draws[:8]) and not any(draws[8:])  # clean_share chooses the kind of each batch
    # jpeg_share: the clean downscale, only compressed; within a few levels of it, where the
    # Real-ESRGAN kind is blurred and noisy as well
    photo_like = torch.nn.functional.interpolate(torch.rand(3, 3, 4, 3), size=(64, 48), mode="bilinear")
    clean = degrade(photo_like, 4, "bicubic")
    compressed = degrade(photo_like, 4, "mixed", 0.0, 1.0)
    assert not torch.equal(compressed, clean) and (compressed - clean).abs().mean() < 0.03
    from translator.tasks import Task
    from translator.training.config import TrainConfig

    with pytest.raises(TranslatorError, match="add up to more than 1"):
        Task.SUPER_RESOLUTION.check_config(TrainConfig(degradation="mixed", clean_share=0.8, jpeg_share=0.3))


def test_gan_objectives_on_known_scores():
    from translator.losses import GANLoss

    high, low = torch.full((2, 1, 3, 3), 5.0), torch.full((2, 1, 3, 3), -5.0)
    for mode in ("vanilla", "lsgan", "hinge", "ragan"):
        gan = GANLoss(mode)
        # a discriminator that is right scores a small loss; the generator it fools gets a small loss
        assert gan.discriminator(high, low) < gan.discriminator(low, high)
        assert gan.generator(high, low if gan.needs_real else None) < gan.generator(low, high if gan.needs_real else None)
    assert GANLoss("lsgan").discriminator(torch.ones(1), torch.zeros(1)) == 0
    assert GANLoss("hinge").discriminator(torch.full((1,), 2.0), torch.full((1,), -2.0)) == 0
    with pytest.raises(TranslatorError):
        GANLoss("wasserstein")


def test_learning_rate_schedules():
    from translator.training import halving, linear_decay

    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    schedule, seen = linear_decay(opt, 3, 4), []
    for _ in range(8):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        schedule.step()
    assert seen == pytest.approx([1, 1, 1, 1, 0.75, 0.5, 0.25, 0])
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    schedule, seen = halving(opt, 2), []
    for _ in range(5):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        schedule.step()
    assert seen == [1, 1, 0.5, 0.5, 0.25]


def test_training_images_share_the_translation_decoder(tmp_path):
    import pickle

    from translator.data import ImageFolderSet

    gray16 = (np.arange(40 * 40, dtype=np.uint16).reshape(40, 40) * 40)
    Image.fromarray(gray16).save(tmp_path / "g16.png")
    (tmp_path / "cut.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\0" * 50)
    dataset = ImageFolderSet([(tmp_path / "g16.png",), (tmp_path / "cut.jpg",)], "crop", 0, cache=4)
    (image,) = dataset[(0, 0)]
    expected = np.round(gray16.astype(np.float64) / 65535 * 255)
    assert np.abs(image[0].numpy().astype(float) - expected).max() <= 1  # not clipped to white
    assert pickle.loads(pickle.dumps(dataset)).cache == 4  # spawn-started loader processes need this
    with pytest.raises(TranslatorError, match="cut.jpg"):
        dataset[(1, 0)]


def test_cyclegan_fine_tunes_both_published_generators(tmp_path):
    from tests.reference_networks import RefResnetGenerator

    g_a, g_b = (randomize(RefResnetGenerator(3, 3, ngf=8, n_blocks=6), seed=s) for s in (1, 2))
    path_a, path_b = save_pth(g_a.state_dict(), tmp_path / "latest_net_G_A.pth"), save_pth(g_b.state_dict(), tmp_path / "latest_net_G_B.pth")
    write_images(tmp_path / "d" / "trainA", [photo(36, 36, s) for s in range(2)])
    write_images(tmp_path / "d" / "trainB", [photo(36, 36, s) for s in range(2, 4)])
    settings = {**TINY_GAN, "lr": "0", "steps": "1", "load_size": "36", "crop_size": "32", "checkpoint_b": str(path_b)}
    Trainer(registry().family("cyclegan"), tmp_path / "d", tmp_path / "run", settings, checkpoint=path_a, device="cpu").run()
    for exported, reference in (("generator", g_a), ("generator_BA", g_b)):
        weights = load_checkpoint(tmp_path / "run" / f"{exported}.safetensors").module.state_dict()
        for key, value in reference.state_dict().items():
            assert torch.equal(weights[key], value), f"{exported}.{key}"
    other = save_pth(randomize(RefResnetGenerator(3, 3, ngf=8, n_blocks=9)).state_dict(), tmp_path / "nine.pth")
    with pytest.raises(TranslatorError, match="checkpoint_b is a resnet"):
        Trainer(registry().family("cyclegan"), tmp_path / "d", tmp_path / "run2", {**settings, "checkpoint_b": str(other)}, checkpoint=path_a, device="cpu").run()


def test_logged_events_read_back_typed_and_what_a_newer_version_logs_is_left_out(tmp_path):
    from translator.runs import append_metrics, read_metrics

    append_metrics(tmp_path, Step(3, steps=10, losses={"l1": 0.5}))
    append_metrics(tmp_path, Validation(3, scores={"psnr": 30.1}))
    with open(tmp_path / "metrics.jsonl", "a") as log:
        log.write(json.dumps({"event": "step", "step": 4, "added_later": 1}) + "\n" + json.dumps({"event": "added_later", "step": 5}) + "\n")
    assert read_metrics(tmp_path) == [Step(3, steps=10, losses={"l1": 0.5}), Validation(3, scores={"psnr": 30.1}), Step(4)]


def test_a_new_kind_of_data_source_is_one_class_and_one_line(tmp_path, monkeypatch):
    """A list of image files as training data: the class below, and its line among the kinds."""
    from translator import sources
    from translator.data import ImageFolderSet, Report, TrainData

    class ListSource(sources.DataSource):
        kind = "file list"

        def __init__(self, text):
            self.list = Path(text.removeprefix("list:")).resolve()

        @classmethod
        def accepts(cls, text):
            return text.startswith("list:")

        def recorded(self):
            return f"list:{self.list}"

        def shown(self):
            return f"a list of images ({self.list.name})"

        def open(self, task, config):
            paths = [Path(line) for line in self.list.read_text().splitlines()]
            return TrainData(ImageFolderSet([(p,) for p in paths], "crop", config.crop_size), None, Report(source=self.shown(), used=len(paths)))

    kinds = sources._kinds()
    monkeypatch.setattr(sources, "_kinds", lambda: [*kinds, ListSource])
    images = write_images(tmp_path / "anywhere", [shapes(48, 48, s) for s in range(3)])
    (tmp_path / "photos.txt").write_text("\n".join(str(p) for p in sorted(images.iterdir())))
    run = tmp_path / "run"
    assert trainer("esrgan", f"list:{tmp_path / 'photos.txt'}", run, **{**TINY_SR, "steps": 2}).run()["status"] == "done"
    assert json.loads((run / "config.json").read_text())["data"] == f"list:{tmp_path / 'photos.txt'}"
    # the record names it again when the run is resumed
    resumed = Trainer(None, None, run, {"steps": "3"}, resume=True, device="cpu").run()
    assert resumed == {"status": "done", "step": 3}
