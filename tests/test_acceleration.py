"""The fast paths: compiling only shapes whose work repays it, falling back when compiling fails,
fused optimizer updates, and compiled training. These run real torch.compile on the CPU."""

import logging

import numpy as np
import pytest
import torch
from torch._dynamo.utils import counters

from tests.helpers import photo, save_pth
from tests.reference_networks import BasicSRSRVGGNetCompact, RefResnetGenerator, randomize
from tests.helpers import trainer, write_images
from translator import acceleration
from translator.acceleration import HotCompiler
from translator.checkpoints import load_checkpoint
from translator.family import make_settings
from translator.inference import Engine, Options, tile_starts
from translator.plugins import registry
from translator.training import TrainConfig


def tiny_engine(tmp_path, name, family="esrgan", **options) -> Engine:
    net = randomize(BasicSRSRVGGNetCompact(num_feat=8, num_conv=2, upscale=2) if family == "esrgan" else RefResnetGenerator(3, 3, ngf=8, n_blocks=2))
    checkpoint = load_checkpoint(save_pth(net.state_dict(), tmp_path / f"{name}.pth"), family)
    return Engine(checkpoint, options=Options(device="cpu", **options))


def graphs() -> int:
    return counters["stats"]["unique_graphs"]


def test_small_translations_never_wait_for_a_compile(tmp_path):
    engine = tiny_engine(tmp_path, "small", "cyclegan", tile=16, overlap=4)
    assert engine.runner.mode == "auto"
    before = graphs()
    for _ in range(3):
        engine.run(torch.rand(1, 3, 40, 40))
    assert graphs() == before
    assert not engine.runner.state["hot"]


@pytest.mark.slow
def test_a_shape_whose_work_repays_the_warm_up_is_compiled_and_gives_the_same_pixels(tmp_path, monkeypatch):
    x = torch.rand(1, 3, 40, 56) * 2 - 1
    eager = tiny_engine(tmp_path, "eager", "cyclegan", tile=16, overlap=4, compile="off").run(x)
    monkeypatch.setattr(acceleration, "COMPILE_AFTER_SECONDS", 0.0)  # every shape is worth it
    engine = tiny_engine(tmp_path, "hot", "cyclegan", tile=16, overlap=4)
    before = graphs()
    compiled = engine.run(x)
    assert graphs() > before, "torch.compile never ran"
    assert engine.runner.state["hot"] == {((1, 3, 16, 16), torch.float32, False)}
    torch.testing.assert_close(compiled, eager, rtol=1e-4, atol=1e-5)


def test_the_job_ahead_predicts_from_the_second_call_on():
    net = torch.nn.Conv2d(3, 3, 3, padding=1).eval()
    runner = HotCompiler(net)
    x = torch.rand(1, 3, 8, 8)
    with torch.inference_mode():
        runner(x, remaining=10**12)  # the first call may include one-off costs: no prediction
        assert not runner.state["hot"]
        runner(x, remaining=10**12)  # a trillion more calls of this shape will repay anything
    assert runner.state["hot"] == {((1, 3, 8, 8), torch.float32, False)}
    # another module is another story
    assert not HotCompiler(torch.nn.Conv2d(3, 3, 3, padding=1).eval()).state["hot"]


def test_a_failing_compiler_leaves_the_network_eager_with_one_warning(tmp_path, monkeypatch, caplog):
    def broken_compile(*args, **kwargs):  # what a machine without a C++ compiler gets
        def call(*a, **k):
            raise RuntimeError("InductorError: CppCompileError: C++ compile error")

        return call

    x = torch.rand(1, 3, 24, 24)
    expected = tiny_engine(tmp_path, "w", compile="off").run(x)
    monkeypatch.setattr(torch, "compile", broken_compile)
    with caplog.at_level(logging.WARNING):
        engine = tiny_engine(tmp_path, "w", compile="on")
        first = engine.run(x)
        again = Engine(load_checkpoint(tmp_path / "w.pth", "esrgan"), options=Options(device="cpu", compile="on"))
        again.runner = HotCompiler(engine.module, "on")  # the same loaded network, as the app keeps it
        second = again.run(x)
    assert torch.equal(first, expected) and torch.equal(second, expected)
    assert caplog.text.count("torch.compile failed") == 1
    assert "C++ compile error" in caplog.text


def test_train_mode_sampling_stays_eager_and_reproducible(tmp_path):
    # pix2pix's sampling=train: the network in eval mode, its dropout layers in train mode
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 3, 3, padding=1), torch.nn.Dropout(0.5)).eval()
    net[1].train()
    runner = HotCompiler(net, "on")
    assert runner.mode == "off"
    before = graphs()
    x = torch.rand(1, 3, 8, 8)
    torch.manual_seed(3)
    a = runner(x)
    torch.manual_seed(3)
    assert torch.equal(a, net(x))
    assert graphs() == before


def test_layout_and_compiling_follow_what_measured_faster_on_the_cpu(tmp_path):
    cpu = torch.device("cpu")
    sr = tiny_engine(tmp_path, "sr")  # plain convolutions: channels_last, and nothing left to compile
    assert sr.channels_last and sr.module.body[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert sr.runner.mode == "off"
    assert tiny_engine(tmp_path, "sr_on", compile="on").runner.mode == "on"  # asked for, it compiles
    gan = tiny_engine(tmp_path, "gan", "cyclegan")  # instance norm: contiguous, compiled when hot
    assert not gan.channels_last and gan.runner.mode == "auto"
    assert not acceleration.channels_last(sr.module, cpu, training=True)  # a CPU training step lost with it


def test_bad_compile_option_is_one_line():
    with pytest.raises(Exception, match="--compile must be one of auto, on, off"):
        Engine(load_checkpoint(registry().family("esrgan").default_checkpoint), options=Options(device="cpu", compile="fast"))


@pytest.mark.parametrize("family", ["pix2pix", "cyclegan", "esrgan"])
def test_every_family_trains_with_fused_optimizer_updates(family):
    fam = registry().family(family)
    settings = make_settings(fam.Settings, {"gan_weight": "0.1"} if family == "esrgan" else {}, family)
    arch = fam.architecture(settings)
    config = make_settings(TrainConfig, {"crop_size": "128", "load_size": "128"}, "training")
    recipe = fam.recipe(fam.build(arch), arch, settings, config, torch.device("cpu"))
    assert recipe.optimizers
    for name, optimizer in recipe.optimizers.items():
        assert optimizer.defaults["fused"] is True, f"{family} optimizer {name} loops over its parameters"


@pytest.mark.slow
def test_compiled_training_follows_the_eager_run(tmp_path):
    write_images(tmp_path / "d", [photo(32, 32, s) for s in range(4)])
    settings = dict(arch="srvgg", nf=8, num_conv=2, scale=2, ema_decay=0, crop_size=16, batch_size=2, steps=3, workers=0, log_every=1, sample_every=3, val_every=0)
    before = graphs()
    trainer("esrgan", tmp_path / "d", tmp_path / "compiled", compile="true", **settings).run()
    assert graphs() > before, "torch.compile never ran"
    trainer("esrgan", tmp_path / "d", tmp_path / "eager", **settings).run()

    compiled = load_checkpoint(tmp_path / "compiled" / "generator.safetensors").module.state_dict()
    eager = load_checkpoint(tmp_path / "eager" / "generator.safetensors").module.state_dict()
    assert compiled.keys() == eager.keys()  # no _orig_mod. prefixes in what is exported
    for key in eager:
        torch.testing.assert_close(compiled[key], eager[key], rtol=1e-3, atol=1e-4)
    assert (tmp_path / "compiled" / "samples" / "step_0000003.png").is_file()


@pytest.mark.slow
def test_a_compiled_job_keeps_one_shape_for_its_odd_last_batch_of_tiles(tmp_path):
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    assert len(tile_starts(32, 16, 4, 4)) ** 2 == 9  # in batches of 2, the last batch is short
    eager = tiny_engine(tmp_path, "odd_eager", "cyclegan", tile=16, overlap=4, batch=2, compile="off").run(x)
    engine = tiny_engine(tmp_path, "odd", "cyclegan", tile=16, overlap=4, batch=2, compile="on")
    before = graphs()
    torch.testing.assert_close(engine.run(x), eager, rtol=1e-4, atol=1e-5)
    assert graphs() - before == 1, "the short last batch was compiled as a shape of its own"


def test_prelus_with_slopes_on_one_side_of_one_run_as_max_or_min_with_the_same_numbers():
    from translator.acceleration import BoundedPReLU, fast_activations

    torch.manual_seed(0)
    x = torch.randn(2, 4, 9, 7).contiguous(memory_format=torch.channels_last) * 3
    slopes = {"below": torch.tensor([-0.5, 0.0, 0.25, 1.0]), "above": torch.tensor([1.0, 1.5, 3.0, 2.0]), "mixed": torch.tensor([0.5, 1.5, 0.1, 0.2])}
    net = torch.nn.Sequential(*(torch.nn.PReLU(4) for _ in slopes), torch.nn.Sequential(torch.nn.PReLU()))
    with torch.no_grad():
        for prelu, values in zip(net, slopes.values()):
            prelu.weight.copy_(values)
        expected = net(x)
        fast_activations(net)
        # the mixed one is left as it is; the shared-slope one (0.25) inside a nested block is found
        assert [type(m) for m in net[:3]] == [BoundedPReLU, BoundedPReLU, torch.nn.PReLU] and isinstance(net[3][0], BoundedPReLU)
        assert torch.equal(net(x), expected)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert net(x).dtype == torch.bfloat16
    # the weights are still the network's own: a state dict reads the same
    assert list(net.state_dict()) == ["0.weight", "1.weight", "2.weight", "3.0.weight"]


def test_the_engine_runs_the_compact_upscaler_with_fast_prelus_and_the_same_result():
    from tests.helpers import MODEL
    from translator.acceleration import BoundedPReLU
    from translator.images import Picture

    engine = Engine(load_checkpoint(MODEL), options=Options(device="cpu", precision="fp32"))
    assert any(isinstance(m, BoundedPReLU) for m in engine.module.modules())
    picture = Picture(np.random.default_rng(0).random((20, 24, 3), dtype=np.float32))
    plain = load_checkpoint(MODEL).module.eval()
    with torch.no_grad():
        expected = plain(torch.from_numpy(picture.rgb).permute(2, 0, 1)[None]).clamp(0, 1)[0].permute(1, 2, 0).numpy()
    assert np.abs(engine.translate(picture).rgb - expected).max() < 1e-5
