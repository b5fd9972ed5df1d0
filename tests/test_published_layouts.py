"""Every published key layout loads unchanged and computes what the original network computes."""

import numpy as np
import pytest
import torch
from PIL import Image

from tests.helpers import photo, save_pth
from tests.reference_networks import (
    BasicSRRRDBNet,
    BasicSRSRVGGNetCompact,
    HugganGeneratorResNet,
    HugganGeneratorUNet,
    NewArchRRDBNet,
    OldRRDBNet,
    RefResnetGenerator,
    RefUnetGenerator,
    randomize,
)
from translator.checkpoints import load_checkpoint
from translator.cli import main

LEGACY_BUFFERS = ("running_mean", "running_var", "num_batches_tracked")


def legacy_instance_norm_buffers(net: RefResnetGenerator) -> dict:
    """What files saved by PyTorch 0.3 hold: running statistics on every InstanceNorm layer."""
    state = dict(net.state_dict())
    for name, module in net.named_modules():
        if isinstance(module, torch.nn.InstanceNorm2d):
            state[f"{name}.running_mean"] = torch.zeros(module.num_features)
            state[f"{name}.running_var"] = torch.ones(module.num_features)
    return state


# (id, family, reference network, size of the test input, how the file is saved)
CASES = [
    ("resnet_9blocks", "cyclegan", lambda: RefResnetGenerator(3, 3, ngf=8, n_blocks=9), 36, {}),
    ("resnet_6blocks", "cyclegan", lambda: RefResnetGenerator(3, 3, ngf=8, n_blocks=6), 32, {}),
    ("resnet_9blocks_dropout", "pix2pix", lambda: RefResnetGenerator(3, 3, ngf=8, n_blocks=9, use_dropout=True), 24, {}),
    ("resnet_batchnorm", "cyclegan", lambda: RefResnetGenerator(3, 3, ngf=8, norm="batch", n_blocks=6), 24, {}),
    ("resnet_legacy_buffers", "cyclegan", lambda: RefResnetGenerator(3, 3, ngf=8, n_blocks=9), 28, {"legacy": True}),
    ("resnet_batchnorm_dropout", "pix2pix", lambda: RefResnetGenerator(3, 3, ngf=8, norm="batch", use_dropout=True, n_blocks=6), 24, {}),
    ("unet_128", "pix2pix", lambda: RefUnetGenerator(3, 3, 7, ngf=8, use_dropout=True), 128, {}),
    ("unet_256_pre_0.4_no_num_batches_tracked", "pix2pix", lambda: RefUnetGenerator(3, 3, 8, ngf=8), 256, {"drop_num_batches": True}),
    ("unet_instance_norm", "pix2pix", lambda: RefUnetGenerator(3, 3, 7, ngf=8, norm="instance"), 128, {}),
    ("unet_256", "pix2pix", lambda: RefUnetGenerator(3, 3, 8, ngf=8, use_dropout=True), 256, {}),
    ("esrgan_old_arch_x4", "esrgan", lambda: OldRRDBNet(nf=8, nb=2, gc=4, upscale=4), 12, {}),
    ("esrgan_old_arch_x2", "esrgan", lambda: OldRRDBNet(nf=8, nb=3, gc=4, upscale=2), 12, {}),
    ("esrgan_old_arch_x8", "esrgan", lambda: OldRRDBNet(nf=8, nb=1, gc=4, upscale=8), 6, {}),
    ("esrgan_new_arch_x4", "esrgan", lambda: NewArchRRDBNet(nf=8, nb=2, gc=4), 12, {}),
    ("basicsr_x4_params_ema", "esrgan", lambda: BasicSRRRDBNet(scale=4, num_feat=8, num_block=2, num_grow_ch=4), 12, {"wrapper": "params_ema"}),
    ("basicsr_x2_params", "esrgan", lambda: BasicSRRRDBNet(scale=2, num_feat=8, num_block=2, num_grow_ch=4), 12, {"wrapper": "params"}),
    ("basicsr_x1_module_prefix", "esrgan", lambda: BasicSRRRDBNet(scale=1, num_feat=8, num_block=1, num_grow_ch=4), 12, {"prefix": "module."}),
    ("basicsr_anime_6b_style", "esrgan", lambda: BasicSRRRDBNet(scale=4, num_feat=8, num_block=6, num_grow_ch=4), 8, {"wrapper": "params_ema"}),
    ("srvgg_general_x4v3_style", "esrgan", lambda: BasicSRSRVGGNetCompact(num_feat=8, num_conv=32, upscale=4), 12, {"wrapper": "params"}),
    ("srvgg_animevideov3_style", "esrgan", lambda: BasicSRSRVGGNetCompact(num_feat=8, num_conv=16, upscale=4), 12, {"wrapper": "params"}),
    ("srvgg_x2", "esrgan", lambda: BasicSRSRVGGNetCompact(num_feat=8, num_conv=3, upscale=2), 12, {}),
    ("srvgg_x3", "esrgan", lambda: BasicSRSRVGGNetCompact(num_feat=8, num_conv=1, upscale=3), 12, {"prefix": "module."}),
    ("srvgg_depth_0", "esrgan", lambda: BasicSRSRVGGNetCompact(num_feat=8, num_conv=0, upscale=4), 12, {}),
    ("srvgg_x1", "esrgan", lambda: BasicSRSRVGGNetCompact(num_feat=8, num_conv=2, upscale=1), 12, {}),
    # the Hub community's: huggan/pix2pix-* (pytorch_model.bin), huggan/sim2real_cyclegan (and its model.safetensors)
    ("huggan_pix2pix_unet", "pix2pix", lambda: HugganGeneratorUNet(width=8), 256, {"name": "pytorch_model.bin"}),
    ("huggan_cyclegan_resnet", "cyclegan", lambda: HugganGeneratorResNet(num_residual_blocks=9), 32, {"name": "pytorch_model.bin"}),
    ("huggan_pix2pix_unet_full_width", "pix2pix", lambda: HugganGeneratorUNet(), 256, {"name": "pytorch_model.bin"}),
    ("huggan_cyclegan_resnet_safetensors", "cyclegan", lambda: HugganGeneratorResNet(num_residual_blocks=9), 32, {"name": "model.safetensors"}),
    ("community_resnet_affine_instance_norm", "cyclegan", lambda: HugganGeneratorResNet(num_residual_blocks=6, affine=True, transposed=True), 32, {}),
    ("community_resnet_affine_nearest", "pix2pix", lambda: HugganGeneratorResNet(num_residual_blocks=3, affine=True), 24, {}),
]


def _save(reference, path, how):
    state = legacy_instance_norm_buffers(reference) if how.get("legacy") else dict(reference.state_dict())
    if how.get("drop_num_batches"):
        state = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    path = path.with_name(how.get("name", path.name))
    if path.suffix == ".safetensors":  # as the Hub's conversion bot writes them: plain tensors, no metadata
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in state.items()}, path)
        return path
    return save_pth(state, path, wrapper=how.get("wrapper"), prefix=how.get("prefix", ""))


def _network_input(family: str, size: int) -> torch.Tensor:
    x = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(1))
    return x * 2 - 1 if family != "esrgan" else x


@pytest.mark.parametrize("case", [pytest.param(c, marks=pytest.mark.slow) if c[0].endswith("full_width") else c for c in CASES], ids=[c[0] for c in CASES])
def test_published_layout_matches_original_network(case, tmp_path):
    _, family, make, size, how = case
    reference = randomize(make())
    path = _save(reference, tmp_path / "weights.pth", how)
    loaded = load_checkpoint(path, family)
    loaded.module.eval()
    x = _network_input(family, size)
    with torch.no_grad():
        expected = reference(x)
        actual = loaded.module(x)
    assert actual.shape == expected.shape
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "case",
    [c for c in CASES if c[0] in {"resnet_legacy_buffers", "unet_256", "esrgan_old_arch_x4", "basicsr_x2_params", "srvgg_general_x4v3_style", "huggan_pix2pix_unet", "community_resnet_affine_instance_norm"}],
    ids=lambda c: c[0],
)
def test_translate_command_reproduces_the_original(case, tmp_path):
    _, family, make, size, how = case
    reference = randomize(make())
    checkpoint = _save(reference, tmp_path / "weights.pth", how)
    pixels = photo(size, size)
    Image.fromarray(pixels).save(tmp_path / "in.png")

    assert main(["translate", str(tmp_path / "in.png"), "--model", family, "--checkpoint", str(checkpoint), "--output", str(tmp_path / "out.png"), "--tile", "0"]) == 0

    low, high = (0.0, 1.0) if family == "esrgan" else (-1.0, 1.0)
    x = torch.from_numpy(pixels).permute(2, 0, 1)[None].float() / 255 * (high - low) + low
    with torch.no_grad():
        y = ((reference(x) - low) / (high - low)).clamp(0, 1)
    expected = (y[0].permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)
    actual = np.asarray(Image.open(tmp_path / "out.png"))
    assert actual.shape == expected.shape
    assert np.abs(actual.astype(int) - expected.astype(int)).max() <= 1


def test_params_ema_is_preferred_over_params(tmp_path):
    ema, plain = randomize(BasicSRRRDBNet(num_feat=8, num_block=1, num_grow_ch=4), seed=1), randomize(BasicSRRRDBNet(num_feat=8, num_block=1, num_grow_ch=4), seed=2)
    path = tmp_path / "both.pth"
    torch.save({"params": plain.state_dict(), "params_ema": ema.state_dict()}, path)
    loaded = load_checkpoint(path, "esrgan").module
    x = torch.rand(1, 3, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), ema(x))


def test_hyper_parameters_come_from_the_weights(tmp_path):
    reference = randomize(BasicSRRRDBNet(scale=2, num_feat=16, num_block=3, num_grow_ch=8))
    arch = load_checkpoint(save_pth(reference.state_dict(), tmp_path / "x2.pth", "params_ema"), "esrgan").arch
    assert (arch.name, arch.scale, arch.multiple) == ("rrdbnet", 2, 2)
    assert arch.params | {} == {"in_ch": 3, "out_ch": 3, "nf": 16, "nb": 3, "gc": 8, "unshuffle": 2, "upsamples": 2}

    compact = randomize(BasicSRSRVGGNetCompact(num_feat=12, num_conv=5, upscale=4))
    arch = load_checkpoint(save_pth(compact.state_dict(), tmp_path / "c.pth"), "esrgan").arch
    assert (arch.name, arch.scale, arch.params["num_conv"], arch.params["nf"]) == ("srvgg", 4, 5, 12)

    unet = load_checkpoint(save_pth(RefUnetGenerator(3, 3, 7, ngf=8).state_dict(), tmp_path / "u.pth"), "pix2pix").arch
    assert (unet.name, unet.params["num_downs"], unet.multiple, unet.params["norm"]) == ("unet", 7, 128, "batch")

    resnet = load_checkpoint(save_pth(RefResnetGenerator(3, 3, ngf=8, n_blocks=6, use_dropout=True).state_dict(), tmp_path / "r.pth"), "cyclegan").arch
    assert (resnet.params["n_blocks"], resnet.params["use_dropout"], resnet.multiple) == (6, True, 4)


def test_denoise_strength_blends_realesr_general_x4v3_with_its_weak_denoise_companion(tmp_path, monkeypatch):
    """As Real-ESRGAN's --denoise_strength: strength x the model + (1 - strength) x realesr-general-wdn-x4v3."""
    import json

    general = randomize(BasicSRSRVGGNetCompact(num_feat=64, num_conv=32, upscale=4), seed=1)
    weak = randomize(BasicSRSRVGGNetCompact(num_feat=64, num_conv=32, upscale=4), seed=2)
    save_pth(general.state_dict(), tmp_path / "realesr-general-x4v3.pth", "params")
    save_pth(weak.state_dict(), tmp_path / "realesr-general-wdn-x4v3.pth", "params")
    # the companion comes from the catalog by name: here a catalog whose copy sits beside it
    entry = {"name": "realesr-general-wdn-x4v3", "family": "esrgan", "description": "weak denoise", "sources": ["realesr-general-wdn-x4v3.pth"], "sha256": None}
    (tmp_path / "catalog.json").write_text(json.dumps({"checkpoints": [entry]}))
    monkeypatch.setenv("TRANSLATOR_CATALOG", str(tmp_path / "catalog.json"))
    pixels = photo(12, 16)
    Image.fromarray(pixels).save(tmp_path / "in.png")

    assert main(["translate", str(tmp_path / "in.png"), "-c", str(tmp_path / "realesr-general-x4v3.pth"), "--set", "denoise=0.3", "-o", str(tmp_path / "out.png")]) == 0
    blended = BasicSRSRVGGNetCompact(num_feat=64, num_conv=32, upscale=4).eval()
    blended.load_state_dict({k: 0.3 * v + 0.7 * weak.state_dict()[k] for k, v in general.state_dict().items()})
    with torch.no_grad():
        y = blended(torch.from_numpy(pixels).permute(2, 0, 1)[None].float() / 255).clamp(0, 1)
    expected = (y[0].permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)
    assert np.abs(np.asarray(Image.open(tmp_path / "out.png")).astype(int) - expected.astype(int)).max() <= 1

    small = save_pth(randomize(BasicSRSRVGGNetCompact(num_feat=8, num_conv=2, upscale=4)).state_dict(), tmp_path / "other.pth", "params")
    assert main(["translate", str(tmp_path / "in.png"), "-c", str(small), "--set", "denoise=0.5", "-o", str(tmp_path / "x.png")]) == 1
