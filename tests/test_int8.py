"""int8 on the CPU (OpenVINO's, quantized by NNCF): for each network whose int8 result passes
the quality gate against fp32, where the CPU has int8 dot products. CPU features are simulated:
the policy is tested, not this machine's hardware."""

import numpy as np
import pytest
import torch

from translator import TranslatorError, int8, precision
from translator.checkpoints import load_checkpoint, save_checkpoint
from translator.family import make_settings
from translator.images import Picture
from translator.inference import Engine, Options
from translator.plugins import registry

pytest.importorskip("openvino")
pytest.importorskip("nncf")


@pytest.fixture
def vnni_cpu(monkeypatch, tmp_path):
    """A CPU with int8 dot products and no native bf16: the float precision is fp32."""
    monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset({"avx512f", "avx512_vnni"}))
    monkeypatch.setenv("TRANSLATOR_CACHE", str(tmp_path / "cache"))


def compact(path, spread=1.0, seed=0, residual=10.0):
    """A small x2 compact network whose last layer is ``residual`` times torch's initial one, so
    that its residual counts as a trained upscaler's does. ``spread`` > 1 gives it the same function with one channel
    of its first layer ``spread`` times larger and the next layer reading it that much smaller
    (a PReLU passes a scale through): fp32 cannot tell, but int8's one range per activation
    spends its 256 steps on that channel, and the others drown."""
    family = registry().family("esrgan")
    arch = family.architecture(make_settings(family.Settings, {"arch": "srvgg", "nf": "16", "num_conv": "4", "scale": "2"}))
    torch.manual_seed(seed)
    net = family.build(arch)
    with torch.no_grad():
        first, second = net.body[0], net.body[2]
        first.weight[0] *= spread
        first.bias[0] *= spread
        second.weight[:, 0] /= spread
        net.body[-1].weight *= residual
        net.body[-1].bias *= residual
    return save_checkpoint(path, family, arch, net.state_dict(), {})


def photo_picture(side=40, alpha=False, bits=8) -> Picture:
    from tests.helpers import photo

    rgb = photo(side, side).astype(np.float32) / 255
    transparency = np.linspace(0, 1, side * side, dtype=np.float32).reshape(side, side) if alpha else None
    return Picture(rgb, transparency, bits=bits)


def test_without_int8_dot_products_or_openvino_nothing_changes(tmp_path, monkeypatch):
    path = compact(tmp_path / "net.safetensors")
    assert int8.unavailable() == "this CPU has no int8 dot products (VNNI or AMX)"
    assert Engine(load_checkpoint(path), options=Options(device="cpu")).dtype == torch.float32
    with pytest.raises(TranslatorError, match="--precision int8: this CPU has no int8 dot products"):
        Engine(load_checkpoint(path), options=Options(device="cpu", precision="int8"))
    monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset({"avx512_vnni"}))
    monkeypatch.setattr(int8.importlib.util, "find_spec", lambda name: None)
    assert "pip install 'image-translator[int8]'" in int8.unavailable()


def test_a_network_that_passes_the_gate_runs_int8_tiled_or_whole(vnni_cpu, tmp_path):
    engine = Engine(load_checkpoint(compact(tmp_path / "net.safetensors")), options=Options(device="cpu", tile=0))
    assert engine.dtype == torch.int8 and engine.precision.startswith("int8: ") and "off fp32 on the gate's photo" in engine.precision
    reference = Engine(load_checkpoint(tmp_path / "net.safetensors"), options=Options(device="cpu", precision="fp32"))
    picture = photo_picture()
    whole, exact = engine.translate(picture).rgb, reference.translate(picture).rgb
    assert 0 < np.abs(whole - exact).max() <= precision.GATE_MAX_LEVELS / 255
    # in tiles wide enough to overlap past the network's reach, as in fp32: the whole picture's result
    tiled = engine.with_options(tile=32, overlap=16).translate(picture).rgb
    assert np.abs(tiled - whole).max() <= 1 / 255


def test_a_network_int8_cannot_keep_stays_in_its_float_precision_and_is_not_quantized_again(vnni_cpu, tmp_path, monkeypatch):
    path = compact(tmp_path / "spread.safetensors", spread=1000)
    fine, spread = (Engine(load_checkpoint(p), options=Options(device="cpu", precision="fp32")) for p in (compact(tmp_path / "fine.safetensors"), path))
    picture = photo_picture()
    np.testing.assert_allclose(spread.translate(picture).rgb, fine.translate(picture).rgb, atol=1e-4)  # the same function in fp32
    engine = Engine(load_checkpoint(path), options=Options(device="cpu"))
    assert engine.dtype == torch.float32 and engine.precision.startswith("fp32: this CPU has no native bf16; int8 was ")
    assert engine.precision.endswith("off fp32 on the gate's photo, outside the gate")
    # the verdict is kept: the next engine neither quantizes nor judges it again, and says why
    monkeypatch.setattr(int8, "_quantized", lambda *args: pytest.fail("quantized again"))
    again = Engine(load_checkpoint(path), options=Options(device="cpu"))
    assert again.dtype == torch.float32 and again.precision == engine.precision
    # asked for, int8 runs without the gate, as bf16 does
    monkeypatch.undo()
    monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset({"avx512_vnni"}))
    monkeypatch.setenv("TRANSLATOR_CACHE", str(tmp_path / "cache"))
    forced = Engine(load_checkpoint(path), options=Options(device="cpu", precision="int8"))
    assert forced.dtype == torch.int8 and forced.precision == "int8: as asked"
    assert np.abs(forced.translate(picture).rgb - fine.translate(picture).rgb).max() > precision.GATE_MAX_LEVELS / 255


def test_a_network_that_takes_minus_one_to_one_is_calibrated_on_that_range(vnni_cpu, tmp_path, monkeypatch):
    """pix2pix and CycleGAN take pictures in [-1, 1]: calibrated on [0, 1], the dark half of
    every picture was clipped (CycleGAN's generator came out 12 dB from fp32)."""
    family = registry().family("esrgan")
    monkeypatch.setattr(type(family), "input_range", (-1.0, 1.0))
    path = compact(tmp_path / "net.safetensors")
    engine = Engine(load_checkpoint(path), options=Options(device="cpu", precision="int8"))
    reference = Engine(load_checkpoint(path), options=Options(device="cpu", precision="fp32"))
    picture = photo_picture()
    dark = picture.with_pixels(picture.rgb * 0.3, None)
    for seen in (picture, dark):
        assert np.abs(engine.translate(seen).rgb - reference.translate(seen).rgb).max() <= precision.GATE_MAX_LEVELS / 255


@pytest.mark.slow
def test_the_int8_form_is_kept_by_checksum_and_made_again_when_the_file_changes(vnni_cpu, tmp_path, monkeypatch):
    made = []
    quantize = int8._quantized
    monkeypatch.setattr(int8, "_quantized", lambda *args: made.append(1) or quantize(*args))
    path = compact(tmp_path / "net.safetensors")
    first = Engine(load_checkpoint(path), options=Options(device="cpu")).translate(photo_picture()).rgb
    assert made == [1] and len(list((tmp_path / "cache" / "int8").glob("*.xml"))) == 1
    again = Engine(load_checkpoint(path), options=Options(device="cpu"))
    assert made == [1] and again.dtype == torch.int8
    np.testing.assert_array_equal(again.translate(photo_picture()).rgb, first)
    # other weights in the same file name: a new checksum, a new int8 form
    compact(path, seed=1)
    assert Engine(load_checkpoint(path), options=Options(device="cpu")).dtype == torch.int8
    assert made == [1, 1] and len(list((tmp_path / "cache" / "int8").glob("*.xml"))) == 2


def test_16_bit_pictures_keep_the_fp32_path_and_alpha_goes_through_int8(vnni_cpu, tmp_path):
    path = compact(tmp_path / "net.safetensors")
    engine = Engine(load_checkpoint(path), options=Options(device="cpu"))
    reference = Engine(load_checkpoint(path), options=Options(device="cpu", precision="fp32"))
    assert engine.dtype == torch.int8
    deep = photo_picture(bits=16)
    np.testing.assert_array_equal(engine.translate(deep).rgb, reference.translate(deep).rgb)
    clear = photo_picture(alpha=True)
    result, exact = engine.translate(clear), reference.translate(clear)
    assert result.alpha.shape == exact.alpha.shape and np.abs(result.alpha - exact.alpha).max() <= precision.GATE_MAX_LEVELS / 255


@pytest.mark.slow
def test_each_network_of_a_pair_gets_its_own_verdict(vnni_cpu, tmp_path, monkeypatch):
    """The default x4's restorer fails int8 where its sharpener passes: each picture runs in the
    precision of the network it goes through."""
    family = registry().family("esrgan")
    spread, fine = (load_checkpoint(compact(tmp_path / f"{s}.safetensors", spread=s)).module.state_dict() for s in (1000, 1))
    state = {f"{branch}.{k}": v for branch, half in (("restore", spread), ("sharpen", fine)) for k, v in half.items()}
    pair = Engine(load_checkpoint(save_checkpoint(tmp_path / "pair.safetensors", family, family.recognise(state), state, {})), options=Options(device="cpu"))
    assert pair.dtype == torch.int8 and pair.precision == "int8 for 1 of its 2 networks, fp32: this CPU has no native bf16 for the rest"
    restorer, sharpener = pair.each_branch()
    assert (restorer.dtype, sharpener.dtype) == (torch.float32, torch.int8)
    clean = photo_picture()
    chosen = pair.for_picture(clean)
    assert chosen.route == "sharpened: no JPEG blocks" and chosen.precision.startswith("int8: ")
    # faint blocks: the mean of both results, each network in its own precision
    import sys

    from tests.helpers import mirrored
    from translator.default_plugins.sr_networks import BLOCKY, FAINT, SRVGGPair

    # the restorer's part mirrored four ways, as a restored picture is (in fp32 here)
    both = (mirrored(restorer, clean) + sharpener.translate(clean).rgb) / 2
    monkeypatch.setattr(sys.modules[SRVGGPair.__module__], "jpeg_blockiness", lambda x: (FAINT + BLOCKY) / 2)
    assert pair.for_picture(clean).route == "half restored, half sharpened: faint JPEG blocks"
    np.testing.assert_allclose(pair.translate(clean).rgb, both, atol=1e-6)


def test_a_network_openvino_cannot_take_runs_as_before_and_says_why(vnni_cpu, tmp_path, monkeypatch):
    def refuse(*args):
        raise RuntimeError("Couldn't get TorchScript module by tracing.\nException: kernel larger than input")

    monkeypatch.setattr(int8, "_quantized", refuse)
    path = compact(tmp_path / "net.safetensors")
    engine = Engine(load_checkpoint(path), options=Options(device="cpu"))
    assert engine.dtype == torch.float32
    assert engine.precision == "fp32: this CPU has no native bf16; int8 could not be made of this network: Couldn't get TorchScript module by tracing."
    with pytest.raises(TranslatorError, match="^int8 could not be made of this network"):
        Engine(load_checkpoint(path), options=Options(device="cpu", precision="int8"))


def test_normalised_channels_residual_sums_and_the_last_convolution_stay_in_float(vnni_cpu):
    """One 8-bit range per activation: before an InstanceNorm, a channel the norm quiets again
    set it and the other channels drowned (CycleGAN's generator: 29 dB from fp32). The first
    channel here is 1000x louder, which the norm undoes in fp32."""
    torch.manual_seed(0)
    convolution = lambda into, out: torch.nn.Conv2d(into, out, 3, padding=1)
    net = torch.nn.Sequential(convolution(3, 8), torch.nn.InstanceNorm2d(8), torch.nn.ReLU(), convolution(8, 8), torch.nn.ReLU(), convolution(8, 3)).eval()
    with torch.no_grad():
        net[0].weight[0] *= 1000
        net[0].bias[0] *= 1000
    model = int8._quantized(net, 3, 8)
    quantized = [target.get_node() for op in model.get_ordered_ops() if op.get_type_name() == "FakeQuantize" for target in op.output(0).get_target_inputs()]
    last = [op.get_friendly_name() for op in model.get_ordered_ops() if op.get_type_name() == "Convolution"][-1]
    assert {op.get_type_name() for op in quantized} == {"Convolution"} and last not in {op.get_friendly_name() for op in quantized}
    x = torch.from_numpy(photo_picture().rgb).permute(2, 0, 1)[None]
    with torch.no_grad():
        # 228 levels off when the norm's input was quantized
        assert (int8.Int8Network(model)(x) - net(x)).abs().max() < 16 / 255


def test_a_mirrored_restorer_in_int8_is_mirrored_too(vnni_cpu, tmp_path):
    """The pair's restoring route runs its network on the picture and three mirror images; in
    int8 it runs the int8 form so, not once."""
    from tests.helpers import mirrored
    from tests.test_restoring_pair import jpeg

    family = registry().family("esrgan")
    halves = [load_checkpoint(compact(tmp_path / f"{seed}.safetensors", seed=seed)).module.state_dict() for seed in (1, 2)]
    state = {f"{branch}.{k}": v for branch, half in zip(("restore", "sharpen"), halves) for k, v in half.items()}
    pair = Engine(load_checkpoint(save_checkpoint(tmp_path / "pair.safetensors", family, family.recognise(state), state, {})), options=Options(device="cpu", precision="int8"))
    blocky = Picture(jpeg((photo_picture(48).rgb * 255).round().astype(np.uint8), 30).astype(np.float32) / 255)
    assert pair.for_picture(blocky).route == "restored: it shows JPEG blocks"
    restorer = Engine(load_checkpoint(tmp_path / "1.safetensors"), options=Options(device="cpu", precision="fp32"))
    result = pair.translate(blocky).rgb
    assert np.abs(result - mirrored(restorer, blocky)).max() <= precision.GATE_MAX_LEVELS / 255
    assert np.abs(result - restorer.translate(blocky).rgb).max() > 3 * precision.GATE_MAX_LEVELS / 255
