"""The shared inference engine: sizes, padding, tiling, devices, memory bounds, sampling modes."""

import math

import pytest
import torch

from tests.helpers import save_pth
from tests.reference_networks import BasicSRRRDBNet, BasicSRSRVGGNetCompact, RefResnetGenerator, RefUnetGenerator, randomize
from translator import TranslatorError
from translator.checkpoints import load_checkpoint
from translator.family import make_settings
from translator.inference import Engine, Options, blend_weights, pad_to_multiple, tile_starts


def engine_for(tmp_path, reference, family, name="w.pth", settings=None, **options):
    checkpoint = load_checkpoint(save_pth(reference.state_dict(), tmp_path / name), family)
    settings = make_settings(checkpoint.family.Settings, settings or {}, family)
    return Engine(checkpoint, settings, Options(device="cpu", **options))


def psnr(a: torch.Tensor, b: torch.Tensor, peak: float = 1.0) -> float:
    mse = torch.mean((a - b) ** 2).item()
    return math.inf if mse == 0 else 10 * math.log10(peak**2 / mse)


def test_whole_image_equals_one_plain_forward_pass(tmp_path):
    reference = randomize(BasicSRRRDBNet(scale=4, num_feat=8, num_block=2, num_grow_ch=4))
    engine = engine_for(tmp_path, reference, "esrgan", tile=0)
    x = torch.rand(1, 3, 20, 16)
    with torch.no_grad():
        # the engine's channels_last layout only reorders the sums: float rounding, nothing more
        torch.testing.assert_close(engine.run(x), reference(x), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "family, make, size",
    [
        ("esrgan", lambda: BasicSRRRDBNet(scale=2, num_feat=8, num_block=1, num_grow_ch=4), (13, 7)),
        ("esrgan", lambda: BasicSRRRDBNet(scale=1, num_feat=8, num_block=1, num_grow_ch=4), (1, 1)),
        ("esrgan", lambda: BasicSRSRVGGNetCompact(num_feat=8, num_conv=2, upscale=4), (5, 9)),
        ("cyclegan", lambda: RefResnetGenerator(3, 3, ngf=8, n_blocks=6), (37, 50)),
        ("pix2pix", lambda: RefUnetGenerator(3, 3, 7, ngf=8), (100, 3)),
    ],
)
def test_any_size_comes_back_at_input_size_times_scale(tmp_path, family, make, size):
    engine = engine_for(tmp_path, randomize(make()), family)
    y = engine.run(torch.rand(1, 3, *size) * (2 if family != "esrgan" else 1))
    assert tuple(y.shape[2:]) == (size[0] * engine.scale, size[1] * engine.scale)


def test_padding_reflects_even_when_the_image_is_smaller_than_the_pad():
    x = torch.arange(6.0).reshape(1, 1, 2, 3)
    padded = pad_to_multiple(x, 8)
    assert padded.shape == (1, 1, 8, 8)
    assert torch.equal(padded[:, :, :2, :3], x)
    assert torch.equal(padded[0, 0, :2, 3], x[0, 0, :, 1])  # first reflected column mirrors column 1
    assert pad_to_multiple(torch.ones(1, 3, 1, 1), 4).shape == (1, 3, 4, 4)


@pytest.mark.parametrize("length, tile, overlap, multiple", [(1000, 256, 32, 1), (1500, 512, 32, 1), (520, 128, 16, 4), (2048, 1024, 32, 256), (300, 300, 32, 1), (98, 64, 10, 2), (4096, 512, 64, 256)])
def test_tile_weights_partition_unity(length, tile, overlap, multiple):
    for scale in (1, 4):
        starts = tile_starts(length, tile, overlap, multiple)
        assert starts[0] == 0 and starts[-1] + tile == max(length, tile)
        assert all(s % multiple == 0 for s in starts)
        assert all(b - a <= tile - overlap for a, b in zip(starts, starts[1:]))
        weights = blend_weights(starts, tile, max(length, tile), overlap, scale)
        total = torch.zeros(max(length, tile) * scale)
        for s, w in zip(starts, weights):
            total[s * scale : (s + tile) * scale] += w
        torch.testing.assert_close(total, torch.ones_like(total))


@pytest.mark.parametrize(
    "make",
    [
        lambda: BasicSRRRDBNet(scale=4, num_feat=8, num_block=2, num_grow_ch=4),
        lambda: BasicSRRRDBNet(scale=2, num_feat=8, num_block=2, num_grow_ch=4),
        lambda: BasicSRSRVGGNetCompact(num_feat=8, num_conv=8, upscale=4),
    ],
    ids=["rrdbnet_x4", "rrdbnet_x2", "srvgg_x4"],
)
def test_tiled_result_matches_untiled(tmp_path, make):
    reference = randomize(make())
    x = torch.rand(1, 3, 150, 101).clamp(0, 1)
    whole = engine_for(tmp_path, reference, "esrgan", tile=0).run(x)
    tiled = engine_for(tmp_path, reference, "esrgan", tile=48, overlap=16, batch=3).run(x)
    assert tiled.shape == whole.shape
    span = (whole.max() - whole.min()).item()
    assert psnr(tiled, whole, span) >= 40


def test_tile_batches_give_the_same_result_as_single_tiles(tmp_path):
    reference = randomize(BasicSRSRVGGNetCompact(num_feat=8, num_conv=3, upscale=2))
    x = torch.rand(1, 3, 70, 90)
    one = engine_for(tmp_path, reference, "esrgan", tile=32, batch=1).run(x)
    many = engine_for(tmp_path, reference, "esrgan", tile=32, batch=5).run(x)
    torch.testing.assert_close(one, many, rtol=1e-5, atol=1e-5)


class Recording(torch.nn.Module):
    """Wraps a network, remembers the largest batch it saw, and runs out of memory above a size."""

    def __init__(self, inner, oom_above=None):
        super().__init__()
        self.inner, self.oom_above, self.largest, self.seen = inner, oom_above, 0, 0

    def forward(self, x):
        self.largest = max(self.largest, x.numel())
        self.seen += x.shape[0]
        if self.oom_above and x.shape[2] * x.shape[3] > self.oom_above:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return self.inner(x)


def record(engine, **options) -> Recording:
    engine.runner.module = Recording(engine.module, **options)
    return engine.module


def test_only_one_batch_of_tiles_is_on_the_device_at_a_time(tmp_path):
    engine = engine_for(tmp_path, randomize(BasicSRSRVGGNetCompact(num_feat=8, num_conv=2, upscale=2)), "esrgan", tile=32, overlap=8, batch=2)
    record(engine)
    engine.run(torch.rand(1, 3, 170, 300))
    assert engine.module.largest == 2 * 3 * 32 * 32
    tiles = len(tile_starts(170, 32, 8)) * len(tile_starts(300, 32, 8))
    assert tiles % 2 == 1 and engine.module.seen == tiles  # the odd tile out is not filled up when nothing compiles


def test_out_of_memory_retries_with_smaller_tiles(tmp_path, caplog):
    reference = randomize(BasicSRSRVGGNetCompact(num_feat=8, num_conv=2, upscale=2))
    x = torch.rand(1, 3, 256, 256)
    expected = engine_for(tmp_path, reference, "esrgan", tile=64).run(x)
    engine = engine_for(tmp_path, reference, "esrgan")
    record(engine, oom_above=64 * 64)
    result = engine.run(x)
    assert "retrying with" in caplog.text
    torch.testing.assert_close(result, expected, rtol=1e-5, atol=1e-5)

    engine.module.oom_above = 1  # nothing fits
    with pytest.raises(TranslatorError, match="out of cpu memory even with 64px tiles; use a smaller image"):
        engine.run(x)
    with pytest.raises(TranslatorError, match="out of cpu memory even with the whole image"):
        engine.run(torch.rand(1, 3, 20, 20))


def test_automatic_tiling_only_for_large_outputs(tmp_path):
    engine = engine_for(tmp_path, randomize(BasicSRSRVGGNetCompact(num_feat=4, num_conv=1, upscale=4)), "esrgan")
    assert engine._tile_size(512, 512) == 0
    assert engine._tile_size(600, 512) == 256


def test_pix2pix_eval_mode_is_deterministic_and_train_mode_samples(tmp_path):
    reference = randomize(RefUnetGenerator(3, 3, 7, ngf=8, use_dropout=True))
    x = torch.rand(2, 3, 128, 128) * 2 - 1
    eval_engine = engine_for(tmp_path, reference, "pix2pix")
    first, second = eval_engine.run(x), eval_engine.run(x)
    assert torch.equal(first, second)
    with torch.no_grad():
        torch.testing.assert_close(first, reference.eval()(x))

    train_engine = engine_for(tmp_path, reference, "pix2pix", settings={"sampling": "train"})
    stats_before = {k: v.clone() for k, v in train_engine.module.state_dict().items()}
    torch.manual_seed(3)
    a = train_engine.run(x)
    torch.manual_seed(3)
    b = train_engine.run(x)
    c = train_engine.run(x)
    assert torch.equal(a, b) and not torch.equal(a, c) and not torch.allclose(a, first)
    for key, value in train_engine.module.state_dict().items():
        if "num_batches_tracked" not in key:
            assert torch.equal(value, stats_before[key]), f"{key} drifted during train-mode sampling"


def test_unavailable_devices_and_bad_options_are_clear_errors(tmp_path):
    checkpoint = load_checkpoint(save_pth(BasicSRSRVGGNetCompact(num_feat=4, num_conv=1).state_dict(), tmp_path / "w.pth"), "esrgan")
    if not torch.cuda.is_available():
        with pytest.raises(TranslatorError, match="no CUDA GPU is available"):
            Engine(checkpoint, options=Options(device="cuda"))
    with pytest.raises(TranslatorError, match="unknown device 'tpu7'"):
        Engine(checkpoint, options=Options(device="tpu7"))
    with pytest.raises(TranslatorError, match="unknown precision"):
        Engine(checkpoint, options=Options(device="cpu", precision="fp8"))
    with pytest.raises(TranslatorError, match="--tile must be"):
        Engine(checkpoint, options=Options(device="cpu", tile=-3))


def test_networks_normalising_over_the_image_are_not_tiled_automatically(tmp_path, monkeypatch):
    import translator.inference as inference

    monkeypatch.setattr(inference, "AUTO_TILE_OUTPUT_PIXELS", 32 * 32)
    cyclegan = engine_for(tmp_path, randomize(RefResnetGenerator(3, 3, ngf=4, n_blocks=1)), "cyclegan")
    assert cyclegan.global_statistics and cyclegan._tile_size(400, 400) == 0
    sr = engine_for(tmp_path, randomize(BasicSRSRVGGNetCompact(num_feat=4, num_conv=1, upscale=1)), "esrgan", name="sr.pth")
    assert not sr.global_statistics and sr._tile_size(400, 400) > 0
    unet = randomize(RefUnetGenerator(3, 3, 7, ngf=4))
    assert not engine_for(tmp_path, unet, "pix2pix", name="u.pth").global_statistics  # eval-mode batch norm is fixed
    assert engine_for(tmp_path, unet, "pix2pix", name="u.pth", settings={"sampling": "train"}).global_statistics


def test_outscale_cannot_escape_the_output_budget(tmp_path, monkeypatch):
    import numpy as np
    import translator.inference as inference
    from translator.images import Picture

    monkeypatch.setattr(inference, "MAX_OUTPUT_PIXELS", 160_000)
    engine = engine_for(tmp_path, randomize(BasicSRSRVGGNetCompact(num_feat=4, num_conv=1, upscale=2)), "esrgan", outscale=16)
    picture = Picture(np.zeros((100, 100, 3), np.float32))
    with pytest.raises(TranslatorError, match="over the 0 MP limit|over the"):
        engine.translate(picture)
    engine.options.outscale = 0.001
    with pytest.raises(TranslatorError, match="would shrink"):
        engine.translate(picture)


@pytest.mark.slow  # a result large enough to be assembled in half precision takes seconds
def test_a_large_8_bit_result_is_assembled_in_half_precision_within_one_level(tmp_path):
    """Above 4 MP out, an 8-bit result is blended in float16 (half the memory); its PNG stays
    within one 8-bit level of the float32 result everywhere, and alpha comes out the same way."""
    import numpy as np

    from translator.images import Picture, to_pixels

    net = randomize(BasicSRSRVGGNetCompact(num_feat=8, num_conv=1, upscale=2))
    engine = Engine(load_checkpoint(save_pth(net.state_dict(), tmp_path / "sr.pth", "params_ema"), "esrgan"), options=Options(device="cpu"))
    rng = np.random.default_rng(0)
    picture = Picture(rng.random((1040, 1100, 3), dtype=np.float32), alpha=np.tile(np.linspace(0, 1, 1100, dtype=np.float32), (1040, 1)))
    half = engine.translate(picture)
    assert half.rgb.dtype == np.float16 and half.alpha.dtype == np.float16 and half.rgb.shape == (2080, 2200, 3)
    full = engine.translate(Picture(picture.rgb, picture.alpha, bits=16))  # 16-bit stays float32
    assert full.rgb.dtype == np.float32
    full.bits = 8
    difference = np.abs(to_pixels(half).astype(int) - to_pixels(full).astype(int))
    assert difference.max() <= 1 and difference.mean() < 0.01
