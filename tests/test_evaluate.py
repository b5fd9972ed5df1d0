"""The quality report and the shipped default model."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from tests.helpers import EXAMPLE, ROOT, photo, save_pth, write_images
from tests.reference_networks import BasicSRSRVGGNetCompact, RefResnetGenerator
from tests.test_fid import small_features
from translator import TranslatorError, catalog
from translator.checkpoints import load_checkpoint, save_checkpoint
from translator.cli import main
from translator.evaluate import evaluate
from translator.fid import Distances
from translator.plugins import registry



def zero_body(scale: int) -> dict:
    net = BasicSRSRVGGNetCompact(num_feat=4, num_conv=1, upscale=scale)
    for p in net.parameters():
        torch.nn.init.zeros_(p)
    return net.state_dict()  # computes exactly a nearest-neighbour upscale


def test_evaluate_compares_against_bicubic(tmp_path, capsys):
    photos = tmp_path / "held-out"
    photos.mkdir()
    for seed in range(3):
        Image.fromarray(photo(48, 64, seed)).save(photos / f"{seed}.png")
    nearest = save_pth(zero_body(2), tmp_path / "nearest.pth")
    names, scores = evaluate([nearest], photos)
    assert names == ["0.png", "1.png", "2.png"]
    # the same numbers computed independently: numpy, BT.601 luma, 2-pixel border cropped
    for i in range(3):
        hr = np.asarray(Image.open(photos / f"{i}.png"), dtype=np.float64) / 255
        lr = torch.nn.functional.interpolate(torch.from_numpy(hr).permute(2, 0, 1)[None].float(), scale_factor=0.5, mode="bicubic", antialias=True, align_corners=False).clamp(0, 1)
        up = {
            "nearest.pth": lr[0].numpy().repeat(2, axis=1).repeat(2, axis=2).transpose(1, 2, 0),
            "bicubic": torch.nn.functional.interpolate(lr, scale_factor=2, mode="bicubic", align_corners=False).clamp(0, 1)[0].permute(1, 2, 0).numpy(),
        }
        for name, image in up.items():
            luma = lambda x: (x.astype(np.float64) @ np.array([65.481, 128.553, 24.966]) / 255 + 16 / 255)[2:-2, 2:-2]
            expected = 10 * np.log10(1 / np.mean((luma(image) - luma(hr)) ** 2))
            assert abs(scores[name].psnr[i] - expected) < 0.02, (name, scores[name].psnr[i], expected)
        assert 0 < scores["bicubic"].ssim[i] <= 1

    assert main(["evaluate", str(nearest), "--data", str(photos), "--json", str(tmp_path / "scores.json")]) == 0
    out = capsys.readouterr().out
    assert "bicubic" in out and "nearest.pth" in out and "vs bicubic" in out
    saved = json.loads((tmp_path / "scores.json").read_text())
    assert len(saved["scores"]["nearest.pth"]["psnr"]) == 3


def test_evaluate_on_damaged_inputs_repeats_its_draws(tmp_path, capsys):
    photos = tmp_path / "held-out"
    write_images(photos, [photo(64, 64, seed) for seed in range(2)])
    nearest = save_pth(zero_body(4), tmp_path / "nearest.pth")
    clean = evaluate([nearest], photos)[1]
    torch.manual_seed(123)
    first = evaluate([nearest], photos, degradation="realesrgan")[1]
    torch.manual_seed(7)
    again = evaluate([nearest], photos, degradation="realesrgan")[1]
    # blur, noise and JPEG cost bicubic, the same draws whatever the caller's seed
    assert first["bicubic"].psnr == again["bicubic"].psnr and first["nearest.pth"].psnr == again["nearest.pth"].psnr
    assert all(d < c for d, c in zip(first["bicubic"].psnr, clean["bicubic"].psnr))
    with pytest.raises(TranslatorError, match="unknown degradation"):
        evaluate([nearest], photos, degradation="jpeg")
    assert main(["evaluate", str(nearest), "--data", str(photos), "--degradation", "realesrgan"]) == 0
    assert f"{first['bicubic'].mean()[0]:.2f}" in capsys.readouterr().out


def test_evaluate_scores_the_precision_asked_for(tmp_path, capsys):
    photos = tmp_path / "held-out"
    write_images(photos, [photo(64, 64, seed) for seed in range(2)])
    torch.manual_seed(0)
    net = save_pth(BasicSRSRVGGNetCompact(num_feat=8, num_conv=2, upscale=2).state_dict(), tmp_path / "net.pth")
    fp32 = evaluate([net], photos, precision="fp32")[1]["net.pth"].psnr
    bf16 = evaluate([net], photos, precision="bf16")[1]["net.pth"].psnr
    # bf16 rounds the network's sums: close to fp32, not the same numbers
    assert fp32 != bf16 and all(abs(a - b) < 1 for a, b in zip(fp32, bf16))
    assert main(["evaluate", str(net), "--data", str(photos), "--precision", "fp32", "--json", str(tmp_path / "s.json")]) == 0
    assert json.loads((tmp_path / "s.json").read_text())["scores"]["net.pth"]["psnr"] == fp32


def cyclegan_checkpoint(path):
    family = registry().family("cyclegan")
    g = RefResnetGenerator(3, 3, ngf=4, n_blocks=1)
    return save_checkpoint(path, family, family.recognise(g.state_dict()), g.state_dict())


def test_evaluate_refuses_mixed_scales_and_kinds(tmp_path):
    (tmp_path / "p").mkdir()
    Image.fromarray(photo(32, 32)).save(tmp_path / "p" / "a.png")
    x2, x4 = save_pth(zero_body(2), tmp_path / "x2.pth"), save_pth(zero_body(4), tmp_path / "x4.pth")
    with pytest.raises(TranslatorError, match="different factors"):
        evaluate([x2, x4], tmp_path / "p")
    own = cyclegan_checkpoint(tmp_path / "g.safetensors")
    with pytest.raises(TranslatorError, match="super-resolution and translation"):
        evaluate([x2, own], tmp_path / "p")
    with pytest.raises(TranslatorError, match="held-out A/ and B/ folders"):
        evaluate([own], tmp_path / "p")
    write_images(tmp_path / "q" / "A", [photo(32, 32)])
    write_images(tmp_path / "q" / "B", [photo(32, 32, 1), photo(32, 32, 2)])
    with pytest.raises(TranslatorError, match="at least two images on each side"):
        evaluate([own], tmp_path / "q")


def test_evaluate_measures_translation_by_fid_and_kid_against_the_inputs(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("translator.fid.feature_network", lambda device: small_features())
    inputs = [photo(32, 32, s) for s in range(5)]
    targets = [photo(32, 32, s) // 2 for s in range(5, 10)]  # a darker domain
    held = tmp_path / "held-out"
    write_images(held / "A", inputs)
    write_images(held / "B", targets)
    own = cyclegan_checkpoint(tmp_path / "g.safetensors")
    names, scores = evaluate([own], held)
    assert names == [f"{i:03d}.png" for i in range(5)] and list(scores) == ["inputs", "g.safetensors"]
    # the baseline is the untranslated inputs measured against the targets, as done by hand here
    unit = lambda images: torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255
    by_hand = Distances(small_features())
    by_hand.add(generated=unit(inputs), real=unit(targets))
    assert scores["inputs"].as_dict() == pytest.approx(by_hand.result(), abs=1e-4)
    assert scores["g.safetensors"].fid >= 0 and scores["g.safetensors"].fid != scores["inputs"].fid

    # CycleGAN's own held-out layout, from the command line
    write_images(tmp_path / "split" / "testA", inputs)
    write_images(tmp_path / "split" / "testB", targets)
    assert main(["evaluate", str(own), "--data", str(tmp_path / "split"), "--json", str(tmp_path / "scores.json")]) == 0
    out = capsys.readouterr().out
    assert "FID" in out and "KID" in out and "inputs" in out and "g.safetensors" in out
    saved = json.loads((tmp_path / "scores.json").read_text())
    assert saved["photos"] == names and saved["scores"]["g.safetensors"]["fid"] == pytest.approx(scores["g.safetensors"].fid, abs=1e-4)


def test_shipped_default_model_is_used_without_a_checkpoint(tmp_path):
    # the family names its default once, by catalog name; the catalog says where the file is
    default = registry().family("esrgan").default_checkpoint
    assert default == "compact-sr-x4" and catalog.find(default).shipped.parent == ROOT / "checkpoints"
    loaded = load_checkpoint(default)
    assert loaded.family.name == "esrgan" and loaded.arch.scale == 4
    assert loaded.metadata["description"] and loaded.metadata["data"]

    assert main(["translate", str(EXAMPLE), "--model", "esrgan", "-o", str(tmp_path / "x4.png")]) == 0
    out, source = Image.open(tmp_path / "x4.png"), Image.open(EXAMPLE)
    assert out.size == (source.width * 4, source.height * 4)
    # a trained model, not a resampler: it differs from bicubic, and stays close to it on average
    bicubic = np.asarray(source.convert("RGB").resize(out.size, Image.BICUBIC), dtype=np.float32)
    difference = np.abs(np.asarray(out, dtype=np.float32) - bicubic).mean()
    assert 0.5 < difference < 15


def test_the_shipped_colouriser_colours_a_gray_photo_offline(tmp_path):
    # pix2pix's default is the colouriser; a photo no model saw, made black and white
    assert registry().family("pix2pix").default_checkpoint == "colourise" and catalog.find("colourise").shipped
    colour = np.asarray(Image.open(EXAMPLE).convert("RGB"), dtype=np.float32) / 255
    Image.open(EXAMPLE).convert("L").save(tmp_path / "gray.png")
    assert main(["translate", str(tmp_path / "gray.png"), "--model", "pix2pix", "-o", str(tmp_path / "colour.png")]) == 0
    out = np.asarray(Image.open(tmp_path / "colour.png").convert("RGB"), dtype=np.float32) / 255
    assert out.shape == colour.shape
    # colour where there was none, in the photo's own tones
    spread = out.max(axis=2) - out.min(axis=2)
    assert spread.mean() > 0.03
    gray = np.asarray(Image.open(tmp_path / "gray.png"), dtype=np.float32) / 255
    assert np.median(np.abs(out @ np.array([0.299, 0.587, 0.114]) - gray)) < 1.5 / 255


def test_families_without_a_shipped_model_say_so(capsys):
    assert main(["translate", str(EXAMPLE), "--model", "cyclegan"]) == 1
    assert "cyclegan ships no default model; pass --checkpoint" in capsys.readouterr().err
    assert main(["translate", str(EXAMPLE)]) == 1
    assert "say which model" in capsys.readouterr().err


def test_models_lists_each_default(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "default checkpoint: compact-sr-x4" in out
    assert "default checkpoint: none shipped" in out
