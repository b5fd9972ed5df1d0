"""Bad checkpoints get one clear line, and pickled code never runs."""

import os

import pytest
import torch
from safetensors.torch import save_file

from tests.helpers import save_pth
from tests.reference_networks import BasicSRRRDBNet, BasicSRSRVGGNetCompact, RefPatchDiscriminator, RefResnetGenerator, randomize
from translator import TranslatorError
from translator.checkpoints import FORMAT, load_checkpoint, save_checkpoint
from translator.plugins import registry


class RunsCode:
    """Unpickling this would create the marker file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.makedirs, (self.marker,))


def _one_line(error: pytest.ExceptionInfo) -> str:
    text = str(error.value)
    assert "\n" not in text and text
    return text


def test_pickle_that_would_run_code_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    torch.save({"params_ema": {"conv_first.weight": torch.zeros(1)}, "payload": RunsCode(marker)}, path)
    with pytest.raises(TranslatorError) as error:
        load_checkpoint(path, "esrgan")
    assert not marker.exists()
    assert "refused evil.pth" in _one_line(error) and "os.makedirs" in str(error.value)


def test_pickled_whole_module_is_refused(tmp_path):
    path = tmp_path / "module.pth"
    torch.save(BasicSRSRVGGNetCompact(num_feat=4, num_conv=1), path)
    with pytest.raises(TranslatorError, match="refused module.pth: it holds pickled code"):
        load_checkpoint(path, "esrgan")


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_truncated_checkpoint(tmp_path, suffix):
    state = randomize(BasicSRSRVGGNetCompact(num_feat=8, num_conv=2)).state_dict()
    path = tmp_path / f"cut{suffix}"
    if suffix == ".pth":
        torch.save(state, path)
    else:
        save_file(state, path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(TranslatorError) as error:
        load_checkpoint(path, "esrgan")
    assert "truncated" in _one_line(error)


def test_garbage_and_missing_and_empty_files(tmp_path):
    (tmp_path / "junk.pth").write_bytes(b"this is not a checkpoint at all" * 10)
    with pytest.raises(TranslatorError, match="cannot read junk.pth: not a PyTorch checkpoint"):
        load_checkpoint(tmp_path / "junk.pth")
    with pytest.raises(TranslatorError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "nope.pth")
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(TranslatorError, match="empty.pt is empty"):
        load_checkpoint(tmp_path / "empty.pt")
    (tmp_path / "weights.txt").write_text("x")
    with pytest.raises(TranslatorError, match="not a checkpoint file"):
        load_checkpoint(tmp_path / "weights.txt")


def test_wrong_family_names_what_the_file_is(tmp_path):
    path = save_pth(randomize(BasicSRRRDBNet(num_feat=8, num_block=1, num_grow_ch=4)).state_dict(), tmp_path / "sr.pth", "params_ema")
    with pytest.raises(TranslatorError) as error:
        load_checkpoint(path, "pix2pix")
    assert "sr.pth holds a network of the esrgan family (rrdbnet x4" in _one_line(error)
    assert "not pix2pix" in str(error.value)


def test_unknown_layout(tmp_path):
    path = save_pth({"encoder.weight": torch.zeros(3, 3)}, tmp_path / "other.pth")
    with pytest.raises(TranslatorError, match="other.pth matches no installed family's layout"):
        load_checkpoint(path)
    with pytest.raises(TranslatorError, match="not a cyclegan checkpoint"):
        load_checkpoint(path, "cyclegan")


def test_discriminator_is_named_as_such(tmp_path):
    path = save_pth(RefPatchDiscriminator(6, ndf=8).state_dict(), tmp_path / "latest_net_D.pth")
    with pytest.raises(TranslatorError, match="PatchGAN discriminator"):
        load_checkpoint(path, "pix2pix")


def test_resnet_generator_without_model_is_ambiguous(tmp_path):
    path = save_pth(RefResnetGenerator(3, 3, ngf=8, n_blocks=6).state_dict(), tmp_path / "g.pth")
    with pytest.raises(TranslatorError, match="fits pix2pix and cyclegan: say which with --model"):
        load_checkpoint(path)


def test_wrong_shapes_in_own_format(tmp_path):
    family = registry().family("esrgan")
    net = randomize(BasicSRRRDBNet(num_feat=8, num_block=1, num_grow_ch=4))
    state = dict(net.state_dict())
    state["body.0.rdb2.conv3.weight"] = torch.zeros(4, 7, 3, 3)
    arch = family.recognise(net.state_dict())
    path = save_checkpoint(tmp_path / "bad.safetensors", family, arch, state)
    with pytest.raises(TranslatorError) as error:
        load_checkpoint(path)
    assert "wrong shapes: body.0.rdb2.conv3.weight is (4, 7, 3, 3), expected (4, 16, 3, 3)" in _one_line(error)


def test_missing_key_is_an_error_not_a_silent_partial_load(tmp_path):
    state = dict(randomize(BasicSRSRVGGNetCompact(num_feat=8, num_conv=2)).state_dict())
    del state["body.3.weight"]  # a PReLU in the middle
    with pytest.raises(TranslatorError, match="missing body.3.weight"):
        load_checkpoint(save_pth(state, tmp_path / "partial.pth"), "esrgan")


def test_non_finite_weights(tmp_path):
    state = dict(randomize(BasicSRSRVGGNetCompact(num_feat=8, num_conv=2)).state_dict())
    state["body.2.weight"][0, 0, 0, 0] = float("nan")
    with pytest.raises(TranslatorError, match="NaN or infinite weights in body.2.weight"):
        load_checkpoint(save_pth(state, tmp_path / "nan.pth"), "esrgan")


def test_own_format_carries_family_and_loads_without_model(tmp_path):
    family = registry().family("esrgan")
    net = randomize(BasicSRSRVGGNetCompact(num_feat=8, num_conv=2, upscale=2))
    arch = family.recognise(net.state_dict())
    path = save_checkpoint(tmp_path / "own.safetensors", family, arch, net.state_dict(), {"note": "test"})
    loaded = load_checkpoint(path)
    assert loaded.family.name == "esrgan" and loaded.metadata["format"] == FORMAT and loaded.metadata["note"] == "test"
    with pytest.raises(TranslatorError, match="own.safetensors is a esrgan checkpoint, not cyclegan"):
        load_checkpoint(path, "cyclegan")
    assert not list(tmp_path.glob("*.tmp"))


def test_own_format_of_a_family_not_installed(tmp_path):
    family = registry().family("esrgan")
    net = BasicSRSRVGGNetCompact(num_feat=4, num_conv=1)
    path = save_checkpoint(tmp_path / "x.safetensors", family, family.recognise(net.state_dict()), net.state_dict())
    from safetensors import safe_open

    with safe_open(path, "pt") as f:
        meta = dict(f.metadata())
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    meta["family"] = "vanished"
    save_file(tensors, path, metadata=meta)
    with pytest.raises(TranslatorError, match="made by the 'vanished' family, which is not installed"):
        load_checkpoint(path)


def test_foreign_safetensors_without_metadata_is_recognised(tmp_path):
    net = randomize(BasicSRSRVGGNetCompact(num_feat=8, num_conv=2))
    save_file(net.state_dict(), tmp_path / "plain.safetensors")
    assert load_checkpoint(tmp_path / "plain.safetensors").arch.name == "srvgg"


def test_oversized_file_is_refused_before_reading(tmp_path, monkeypatch):
    import translator.checkpoints as checkpoints

    path = save_pth(BasicSRSRVGGNetCompact(num_feat=8, num_conv=2).state_dict(), tmp_path / "big.pth")
    monkeypatch.setattr(checkpoints, "MAX_BYTES", 1000)
    with pytest.raises(TranslatorError, match="over the .* limit for a checkpoint"):
        load_checkpoint(path)


def test_incomplete_published_files_get_a_clear_error(tmp_path):
    from tests.reference_networks import NewArchRRDBNet, OldRRDBNet

    old = {k: v for k, v in OldRRDBNet(nf=8, nb=1, gc=4).state_dict().items() if not k.startswith(("model.8.", "model.10."))}
    new = {k: v for k, v in NewArchRRDBNet(nf=8, nb=1, gc=4).state_dict().items() if not k.startswith("conv_first.")}
    for name, state in (("old.pth", old), ("new.pth", new)):
        with pytest.raises(TranslatorError) as error:
            load_checkpoint(save_pth(state, tmp_path / name), "esrgan")
        assert "not a esrgan checkpoint" in _one_line(error) or "does not fit" in str(error.value)


def test_a_plugin_whose_recognise_crashes_breaks_only_itself(tmp_path):
    from translator import Family, Task
    from translator.plugins import Registry

    class Buggy(Family):
        name, task, architectures = "buggy", Task.PAIRED, ("x",)

        def recognise(self, state_dict):
            raise KeyError("oops")

    reg = Registry(entry_points=False)
    reg.families["buggy"] = Buggy()
    path = save_pth(randomize(BasicSRSRVGGNetCompact(num_feat=8, num_conv=1)).state_dict(), tmp_path / "c.pth")
    assert load_checkpoint(path, registry=reg).family.name == "esrgan"
    with pytest.raises(TranslatorError, match="the buggy family could not read its layout .KeyError"):
        load_checkpoint(path, "buggy", registry=reg)


def test_networks_that_are_not_rgb_are_refused_by_the_engine(tmp_path):
    from translator.inference import Engine, Options

    gray = randomize(BasicSRRRDBNet(num_in_ch=1, num_out_ch=1, num_feat=8, num_block=1, num_grow_ch=4))
    checkpoint = load_checkpoint(save_pth(gray.state_dict(), tmp_path / "g.pth"), "esrgan")
    with pytest.raises(TranslatorError, match="maps 1-channel images to 1; only RGB results can be made"):
        Engine(checkpoint, options=Options(device="cpu"))


def test_a_plain_pickle_holding_code_is_named_as_code_and_torch_says_nothing(tmp_path, capfd):
    """A pickle written with protocol 4 (not torch.save) trips torch's refusal without a GLOBAL in
    its message, and makes torch warn about the protocol; the user still gets one line naming it."""
    import pickle

    marker = tmp_path / "pwned"
    path = tmp_path / "raw.pth"
    path.write_bytes(pickle.dumps({"conv_first.weight": RunsCode(marker)}, protocol=4))
    with pytest.raises(TranslatorError) as error:
        load_checkpoint(path, "esrgan")
    assert not marker.exists()
    assert "refused raw.pth: it holds pickled code (os.makedirs)" in _one_line(error)
    assert capfd.readouterr().err == ""


def test_a_deflated_archive_that_unpacks_past_the_limit_is_refused_before_loading(tmp_path, monkeypatch):
    import zipfile

    import translator.checkpoints as checkpoints

    plain = tmp_path / "plain.pth"
    torch.save({"w": torch.zeros(2 * 1024**2)}, plain)  # 8 MB of zeros
    bomb = tmp_path / "bomb.pth"
    with zipfile.ZipFile(plain) as source, zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as packed:
        for member in source.infolist():
            packed.writestr(member.filename, source.read(member.filename))
    assert bomb.stat().st_size < 100_000
    monkeypatch.setattr(checkpoints, "MAX_BYTES", 4 * 1024**2)  # the file itself is far under it
    with pytest.raises(TranslatorError, match=r"bomb.pth unpacks to 8 MB, over the 4 MB limit") as error:
        load_checkpoint(bomb, "esrgan")
    _one_line(error)


@pytest.mark.parametrize("dtype", [torch.bool, torch.int8, torch.uint8, torch.int64, torch.complex64, torch.float8_e4m3fn])
def test_weights_that_are_not_floating_point_are_refused(tmp_path, dtype):
    state = randomize(BasicSRSRVGGNetCompact(num_feat=4, num_conv=1, upscale=2)).state_dict()
    state = {k: v.to(dtype) for k, v in state.items()}
    path = save_pth(state, tmp_path / "odd.pth", "params_ema")
    with pytest.raises(TranslatorError) as error:
        load_checkpoint(path, "esrgan")
    assert "holds weights that are not floating point" in _one_line(error) and str(dtype).removeprefix("torch.") in str(error.value)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_weights_are_widened(tmp_path, dtype):
    reference = randomize(BasicSRSRVGGNetCompact(num_feat=4, num_conv=1, upscale=2))
    path = save_pth({k: v.to(dtype) for k, v in reference.state_dict().items()}, tmp_path / "half.pth", "params_ema")
    loaded = load_checkpoint(path, "esrgan").module
    assert all(p.dtype == torch.float32 for p in loaded.parameters())
