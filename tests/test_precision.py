"""The CPU's precision policy: bf16 where the CPU does it natively and the model passes the
quality gate against fp32, fp32 otherwise. CPU features are simulated: the policy is tested,
not this machine's hardware."""

import numpy as np
import pytest
import torch

from tests.helpers import MODEL
from translator import int8, precision
from translator.checkpoints import load_checkpoint, save_checkpoint
from translator.family import make_settings
from translator.images import Picture
from translator.inference import Engine, Options
from translator.plugins import registry


@pytest.fixture
def bf16_cpu(monkeypatch, tmp_path):
    monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset({"avx512f", "avx512_bf16"}))
    monkeypatch.setenv("TRANSLATOR_CACHE", str(tmp_path / "cache"))


def loud_network(path, gain=8):
    """A network whose large weights (``gain`` times torch's initial ones) turn bf16's rounding
    into visible errors."""
    family = registry().family("esrgan")
    arch = family.architecture(make_settings(family.Settings, {"arch": "srvgg", "nf": "16", "num_conv": "4", "scale": "2"}))
    net = family.build(arch)
    with torch.no_grad():
        for parameter in net.parameters():
            parameter.mul_(gain)
    save_checkpoint(path, family, arch, net.state_dict(), {})
    return path


def test_a_cpu_without_native_bf16_runs_fp32():
    engine = Engine(load_checkpoint(MODEL), options=Options(device="cpu"))
    assert engine.dtype == torch.float32 and engine.precision == "fp32: this CPU has no native bf16"


def test_with_native_bf16_a_model_that_passes_the_gate_runs_bf16_and_the_verdict_is_kept(bf16_cpu, tmp_path, monkeypatch):
    engine = Engine(load_checkpoint(MODEL), options=Options(device="cpu"))
    assert engine.dtype == torch.bfloat16 and engine.precision.startswith("bf16: ")
    # measured once per file: a second engine takes the kept verdict
    monkeypatch.setattr(precision, "measure", lambda *args: pytest.fail("measured again"))
    assert Engine(load_checkpoint(MODEL), options=Options(device="cpu")).dtype == torch.bfloat16
    # asked for fp32, it is the reference path whatever the CPU
    forced = Engine(load_checkpoint(MODEL), options=Options(device="cpu", precision="fp32"))
    assert forced.dtype == torch.float32 and forced.precision == "fp32: as asked"


def test_a_model_whose_bf16_output_is_off_fails_the_gate_and_runs_fp32(bf16_cpu, tmp_path):
    engine = Engine(load_checkpoint(loud_network(tmp_path / "loud.safetensors")), options=Options(device="cpu"))
    assert engine.dtype == torch.float32
    assert engine.precision.startswith("fp32: bf16 was ") and "outside the gate (45 dB, 8 levels)" in engine.precision
    # a changed file is a new verdict: the kept one is by the file's SHA-256
    good = tmp_path / "loud.safetensors"
    good.write_bytes(MODEL.read_bytes())
    assert Engine(load_checkpoint(good), options=Options(device="cpu")).dtype == torch.bfloat16


def test_the_gate_judges_every_branch_of_a_network_that_picks_per_picture(bf16_cpu, tmp_path):
    """The gate's photo is clean, so the default x4 takes its sharpener there; a restorer that
    is off in bf16 must still fail it."""
    family = registry().family("esrgan")
    loud, quiet = (load_checkpoint(loud_network(tmp_path / f"{gain}.safetensors", gain)).module.state_dict() for gain in (8, 1))
    state = {f"{branch}.{k}": v for branch, half in (("restore", loud), ("sharpen", quiet)) for k, v in half.items()}
    pair = save_checkpoint(tmp_path / "pair.safetensors", family, family.recognise(state), state, {})
    assert Engine(load_checkpoint(tmp_path / "1.safetensors"), options=Options(device="cpu")).dtype == torch.bfloat16
    assert Engine(load_checkpoint(pair), options=Options(device="cpu")).dtype == torch.float32


def test_16_bit_pictures_and_alpha_keep_the_fp32_path_under_bf16(bf16_cpu):
    rng = np.random.default_rng(0)
    picture = Picture(rng.random((12, 10, 3), dtype=np.float32), rng.random((12, 10), dtype=np.float32), bits=16)
    reduced = Engine(load_checkpoint(MODEL), options=Options(device="cpu"))
    reference = Engine(load_checkpoint(MODEL), options=Options(device="cpu", precision="fp32"))
    assert reduced.dtype == torch.bfloat16
    a, b = reduced.translate(picture), reference.translate(picture)
    assert np.array_equal(a.rgb, b.rgb) and np.array_equal(a.alpha, b.alpha) and a.bits == 16
    # 8-bit pictures take bf16: close to fp32, within the gate
    eight = Picture(picture.rgb, picture.alpha, bits=8)
    assert np.abs(reduced.translate(eight).rgb - reference.translate(eight).rgb).max() < 8 / 255


def test_the_cli_says_when_it_runs_in_a_reduced_precision(bf16_cpu, tmp_path, capsys):
    from PIL import Image

    from tests.helpers import photo
    from translator.cli import main

    Image.fromarray(photo(10, 12)).save(tmp_path / "in.png")
    assert main(["translate", str(tmp_path / "in.png"), "-c", str(MODEL), "-o", str(tmp_path / "out.png")]) == 0
    assert capsys.readouterr().err.startswith("precision bf16: ")
    assert main(["translate", str(tmp_path / "in.png"), "-c", str(MODEL), "-o", str(tmp_path / "ref.png"), "--precision", "fp32"]) == 0
    assert "precision" not in capsys.readouterr().err


def test_training_on_a_cpu_with_native_bf16_runs_in_bf16_unless_told(bf16_cpu, tmp_path):
    from tests.helpers import TINY_SR, shapes, trainer, write_images

    data = write_images(tmp_path / "d", [shapes(48, 48, s) for s in range(2)])
    assert trainer("esrgan", data, tmp_path / "a", **TINY_SR).dtype == torch.bfloat16
    assert trainer("esrgan", data, tmp_path / "b", **{**TINY_SR, "precision": "fp32"}).dtype == torch.float32


def test_training_on_a_cpu_without_it_runs_in_fp32(tmp_path):
    from tests.helpers import TINY_SR, shapes, trainer, write_images

    data = write_images(tmp_path / "d", [shapes(48, 48, s) for s in range(2)])
    assert trainer("esrgan", data, tmp_path / "a", **TINY_SR).dtype == torch.float32


def test_translator_models_says_which_precision_the_cpu_runs(bf16_cpu, capsys, monkeypatch):
    from translator.cli import main

    assert main(["models"]) == 0
    assert ("CPU precision (--precision auto): bf16 for each model whose bf16 result is within 45 dB and 8 levels of fp32 on the "
            "gate's photos, fp32 for the rest; no int8: this CPU has no int8 dot products") in capsys.readouterr().out
    monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset())
    assert main(["models"]) == 0
    assert "CPU precision (--precision auto): fp32 (this CPU has no native bf16); no int8" in capsys.readouterr().out
    monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset({"avx512_vnni", "avx512_bf16"}))
    if int8.unavailable() is None:  # openvino and nncf are there (the test extras)
        assert main(["models"]) == 0
        assert "CPU precision (--precision auto): int8 for each network whose int8 result is within 45 dB" in capsys.readouterr().out


def test_the_gate_judges_four_crops_across_the_photo():
    corners = precision._gate_corners(150, 225)
    side = precision.GATE_SIDE
    assert len(set(corners)) == 4
    assert all(0 <= top <= 150 - side and 0 <= left <= 225 - side for top, left in corners)
    # spread over the photo, not stacked on the centre: between them they cover most of its width
    assert max(left for _, left in corners) - min(left for _, left in corners) >= 225 // 2 - side // 2


def test_the_gate_judges_the_whole_photo_too(bf16_cpu, monkeypatch):
    """A network that normalises each picture sees other statistics in a crop: an int8 CycleGAN
    generator within the gate on the crops was 23 levels off on the whole photo."""
    seen = []
    translate = Engine.translate
    monkeypatch.setattr(Engine, "translate", lambda self, picture, *a, **k: seen.append(picture.rgb.shape[:2]) or translate(self, picture, *a, **k))
    precision.measure(Engine(load_checkpoint(MODEL), options=Options(device="cpu", precision="fp32")), torch.bfloat16)
    side = precision.GATE_SIDE
    # each picture twice: fp32 and bf16; the crops of the photo as it is and as a JPEG
    assert sorted(set(seen)) == [(side, side), (150, 225)] and seen.count((side, side)) == 16 and seen.count((150, 225)) == 2


def test_an_instance_normalised_network_runs_bf16_cast_whole(bf16_cpu, tmp_path):
    """Autocast keeps InstanceNorm, and the padding and activations around it, in fp32: CycleGAN's
    generator ran 1.8x to 2.0x fp32 so, 2.4x cast to bf16 whole, within the same levels."""
    from tests.reference_networks import RefResnetGenerator

    family = registry().family("cyclegan")
    torch.manual_seed(0)
    net = RefResnetGenerator(3, 3, ngf=4, n_blocks=1).eval()
    path = save_checkpoint(tmp_path / "g.safetensors", family, family.recognise(net.state_dict()), net.state_dict())
    loaded = load_checkpoint(path)
    weights = []  # what the first convolution's weights are as it runs
    loaded.module.model[1].register_forward_pre_hook(lambda layer, args: weights.append(layer.weight.dtype))
    engine = Engine(loaded, options=Options(device="cpu", precision="bf16"))
    picture = Picture(np.random.default_rng(0).random((32, 48, 3), dtype=np.float32))
    x = torch.from_numpy(picture.rgb).permute(2, 0, 1)[None] * 2 - 1
    with torch.no_grad():
        whole = ((net.bfloat16()(x.bfloat16()).float() + 1) / 2).clamp(0, 1)[0].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(engine.translate(picture).rgb, whole, atol=1e-6)
    assert weights == [torch.bfloat16]
    # the network the engine loaded stays fp32: the gate's reference and --precision fp32 use it
    engine.with_options().translate(picture)
    with engine._in(torch.float32):
        engine.translate(picture)
    assert weights[-1] == torch.float32 and next(engine.runner.module.parameters()).dtype == torch.float32
