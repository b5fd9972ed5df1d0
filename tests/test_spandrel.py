"""Every architecture of spandrel's main registry loads as it is published and translates through
the engine (any size, tiles, the formats people share) as spandrel itself runs it."""

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from tests.spandrel_cases import CASES, build
from translator import TranslatorError
from translator.checkpoints import load_checkpoint, save_checkpoint
from translator.images import read_image
from translator.inference import Engine, Options

# layouts spandrel reads only at full size: GFPGAN's 86M parameters on 512px faces, FBCNN's 30M
SLOW = {"GFPGAN", "FBCNN"}
# networks this project writes itself, for training; spandrel's files of them load as its own
OWN = {"ESRGAN": "rrdbnet", "Compact": "srvgg"}
# inpainting needs a mask, which the engine has no input for
REFUSED = {"LaMa"}


def cases():
    for arch_id in CASES:
        marks = [pytest.mark.slow] if arch_id in SLOW else []
        yield pytest.param(arch_id, marks=marks, id=arch_id)


def spandrel_result(state: dict, image: np.ndarray) -> np.ndarray:
    """spandrel's own output for an RGB uint8 image, in 8-bit levels."""
    from spandrel import ModelLoader

    descriptor = ModelLoader().load_from_state_dict(dict(state))
    x = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255
    torch.manual_seed(0)  # AuraSR draws noise as it runs: both draw the same
    with torch.no_grad():
        y = descriptor(x)
    return np.round(y[0].permute(1, 2, 0).numpy() * 255)


def photo_file(tmp_path, width=23, height=19):
    rng = np.random.default_rng(0)
    # smooth colour with some noise: what an upscaler sees, not white noise
    yy, xx = np.mgrid[0:height, 0:width]
    base = np.stack([xx / width, yy / height, (xx + yy) / (width + height)], -1) * 200 + 20
    pixels = np.clip(base + rng.normal(0, 8, base.shape), 0, 255).astype(np.uint8)
    path = tmp_path / "in.png"
    Image.fromarray(pixels).save(path)
    return path, pixels


@pytest.mark.parametrize("arch_id", list(cases()))
def test_every_spandrel_architecture_loads_and_translates_as_spandrel_runs_it(tmp_path, arch_id):
    model = build(arch_id)
    state = {key: value.contiguous() for key, value in model.state_dict().items()}
    # the two formats people share, taken in turn over the registry
    if list(CASES).index(arch_id) % 2:
        file = tmp_path / f"{arch_id}.safetensors"
        save_file(state, file)
    else:
        file = tmp_path / f"{arch_id}.pth"
        torch.save(state, file)
    if arch_id in REFUSED:
        with pytest.raises(TranslatorError, match="inpainting model: it needs a mask"):
            load_checkpoint(file)
        return
    path, pixels = photo_file(tmp_path)
    expected = spandrel_result(state, pixels)
    # no family given: the weights alone say what they are
    checkpoint = load_checkpoint(file)
    assert checkpoint.family.name == "esrgan" and checkpoint.arch.name.partition(":")[0] == OWN.get(arch_id, arch_id)
    engine = Engine(checkpoint, options=Options(device="cpu", precision="fp32", seed=0))
    result = np.round(engine.translate(read_image(path)).rgb * 255)
    assert result.shape == expected.shape
    assert np.abs(result - expected).max() <= 1, f"{file.name}: {np.abs(result - expected).max()} levels off spandrel's result"
    # written in the project's format, it is still a file spandrel (chaiNNer, ComfyUI) reads
    own = save_checkpoint(tmp_path / "own.safetensors", checkpoint.family, checkpoint.arch, checkpoint.module.state_dict())
    assert np.abs(spandrel_result(load_checkpoint(own).module.state_dict(), pixels) - expected).max() <= 1
    # and the recorded architecture builds the same network fresh, as training does
    fresh = checkpoint.family.build(checkpoint.arch)
    assert {k: v.shape for k, v in fresh.state_dict().items()} == {k: v.shape for k, v in checkpoint.module.state_dict().items()}


def tiled_cases():
    # convolutions, and attention in windows, in the fast tier; every other one in the slow
    for arch_id in CASES:
        if arch_id not in SLOW | REFUSED:
            yield pytest.param(arch_id, marks=[] if arch_id in ("SPAN", "DAT") else [pytest.mark.slow], id=arch_id)


@pytest.mark.parametrize("arch_id", list(tiled_cases()))
def test_tiles_give_the_whole_image_result_where_the_network_allows_them_and_others_run_whole(tmp_path, arch_id):
    path, _ = photo_file(tmp_path, 96, 72)
    save_file(build(arch_id).state_dict(), tmp_path / "model.safetensors")
    checkpoint = load_checkpoint(tmp_path / "model.safetensors")
    if checkpoint.arch.tiling != "supported":
        # it runs whole, however large, unless tiles are asked for
        assert Engine(checkpoint, options=Options(device="cpu", precision="fp32"))._tile_size(4000, 4000) == 0
        return
    engine = Engine(checkpoint, options=Options(device="cpu", precision="fp32", tile=0, seed=0))
    picture = read_image(path)
    whole = engine.translate(picture).rgb
    tiled = engine.with_options(tile=64, overlap=32, seed=0).translate(picture).rgb
    psnr = 10 * np.log10(1 / max(np.mean((whole - tiled) ** 2), 1e-12))
    assert psnr >= 40, f"tiled {psnr:.1f} dB from whole"


def test_what_spandrel_says_of_a_network_reaches_the_engine(tmp_path):
    # Uformer needs square sides of a multiple of 128; SwinIR advises against tiles; AuraSR
    # computes in neither half precision
    facts = {}
    for arch_id in ("Uformer", "SwinIR", "AuraSR"):
        save_file(build(arch_id).state_dict(), tmp_path / f"{arch_id}.safetensors")
        facts[arch_id] = load_checkpoint(tmp_path / f"{arch_id}.safetensors").arch
    assert (facts["Uformer"].multiple, facts["Uformer"].square) == (128, True)
    assert facts["SwinIR"].tiling == "discouraged" and facts["SwinIR"].minimum == 16
    assert facts["AuraSR"].precisions == ()
    checkpoint = load_checkpoint(tmp_path / "AuraSR.safetensors")
    with pytest.raises(TranslatorError, match=r"this AuraSR network does not compute in bf16 \(it does in fp32\)"):
        Engine(checkpoint, options=Options(device="cpu", precision="bf16"))
    swinir = Engine(load_checkpoint(tmp_path / "SwinIR.safetensors"), options=Options(device="cpu", precision="fp32"))
    assert swinir._tile_size(2000, 2000) == 0  # whole, unless asked for tiles


TRAIN = {"steps": "2", "crop_size": "32", "batch_size": "2", "workers": "0", "log_every": "1", "sample_every": "0", "val_every": "0", "ema_decay": "0.5"}


@pytest.mark.parametrize("arch_id", ["SPAN", "OmniSR", "PLKSR"])
def test_spandrel_networks_fine_tune_resume_and_stay_spandrel_files(tmp_path, arch_id):
    from tests.helpers import photo, write_images
    from translator.plugins import registry
    from translator.training import Trainer

    data = write_images(tmp_path / "d", [photo(48, 48, s) for s in range(3)])
    start = tmp_path / "published.pth"
    torch.save(build(arch_id).state_dict(), start)
    esrgan = registry().family("esrgan")
    # two steps, then two more on resume: the record's architecture rebuilds the network
    Trainer(esrgan, data, tmp_path / "run", TRAIN, checkpoint=start, device="cpu").run()
    Trainer(esrgan, data, tmp_path / "run", {**TRAIN, "steps": "4"}, resume=True, device="cpu").run()
    assert torch.load(tmp_path / "run" / "resume.pt", weights_only=True)["step"] == 4
    tuned = tmp_path / "run" / "generator.safetensors"
    from spandrel import ModelLoader

    descriptor = ModelLoader().load_from_file(tuned)
    assert descriptor.architecture.id == arch_id
    ours = load_checkpoint(tuned).module.state_dict()
    assert all(torch.equal(ours[k], v) for k, v in descriptor.model.state_dict().items())
    assert not all(torch.equal(ours[k], v) for k, v in build(arch_id).state_dict().items() if v.is_floating_point())


def test_a_new_spandrel_network_trains_at_its_published_size_and_others_are_refused(tmp_path):
    from tests.helpers import photo, write_images
    from translator.plugins import registry
    from translator.training import Trainer

    data = write_images(tmp_path / "d", [photo(48, 48, s) for s in range(3)])
    esrgan = registry().family("esrgan")
    Trainer(esrgan, data, tmp_path / "omni", {**TRAIN, "arch": "omnisr", "scale": "2"}, device="cpu").run()
    arch = load_checkpoint(tmp_path / "omni" / "generator.safetensors").arch
    assert (arch.name, arch.scale, arch.params["num_feat"]) == ("OmniSR", 2, 64)
    with pytest.raises(TranslatorError, match="a new span network upscales x2 or x4, not x1"):
        Trainer(esrgan, data, tmp_path / "span", {**TRAIN, "arch": "span", "scale": "1"}, device="cpu").run()
    # DnCNN takes a noise level beside the image: it runs here, its authors' code trains it
    start = tmp_path / "dncnn.pth"
    torch.save(build("DnCNN").state_dict(), start)
    with pytest.raises(TranslatorError, match="DnCNN networks run here but do not train here"):
        Trainer(esrgan, data, tmp_path / "dncnn", TRAIN, checkpoint=start, device="cpu").run()


def test_non_commercial_architectures_load_only_when_the_user_opts_in(tmp_path, monkeypatch, capsys):
    from spandrel_extra_arches.architectures.SRFormer import SRFormer

    from translator.cli import main

    torch.manual_seed(0)
    small = SRFormer(embed_dim=16, depths=[2], num_heads=[2], window_size=8, upscale=2, upsampler="pixelshuffle", img_size=64)
    torch.save(small.state_dict(), tmp_path / "srformer.pth")
    monkeypatch.delenv("TRANSLATOR_NONCOMMERCIAL", raising=False)
    with pytest.raises(TranslatorError, match=r"^SRFormer's code is licensed CC-BY-NC-4.0 \(non-commercial\): set TRANSLATOR_NONCOMMERCIAL=1 to load it"):
        load_checkpoint(tmp_path / "srformer.pth")
    assert main(["models"]) == 0 and "SRFormer" not in capsys.readouterr().out
    monkeypatch.setenv("TRANSLATOR_NONCOMMERCIAL", "1")
    checkpoint = load_checkpoint(tmp_path / "srformer.pth")
    assert (checkpoint.arch.name, checkpoint.arch.scale) == ("SRFormer", 2)
    assert main(["models"]) == 0 and "CC-BY-NC-4.0 (non-commercial): SRFormer" in capsys.readouterr().out


def test_a_published_card_names_the_architecture_and_the_licence_of_its_code(tmp_path):
    from translator.publish import describe, model_card

    torch.save(build("SPAN").state_dict(), tmp_path / "span.pth")
    facts = describe(None, [("generator.safetensors", load_checkpoint(tmp_path / "span.pth"))], licence="CC0-1.0")
    assert facts.architecture.startswith("SPAN x2") and facts.code_licence == "Apache-2.0"
    card = str(model_card("me/span", facts))
    assert "CC0-1.0 The network's code (SPAN) is licensed Apache-2.0." in card and "license: cc0-1.0" in card


def test_the_app_takes_an_uploaded_spandrel_file_and_translates_with_it(tmp_path):
    from translator.app.service import Studio
    from translator.app.workspace import Workspace

    studio = Studio(Workspace(tmp_path / "home"), device="cpu")
    torch.save(build("OmniSR").state_dict(), tmp_path / "2x-omni.pth")
    assert studio.upload_checkpoint(str(tmp_path / "2x-omni.pth")).startswith("2x-omni (esrgan OmniSR x2")
    ref = next(ref for _, ref in studio.checkpoint_choices("esrgan") if "2x-omni" in ref)
    path, _ = photo_file(tmp_path)
    result = studio.translate(str(path), "esrgan", ref, None, None, {}, None, "png", 95)
    assert Image.open(result.path).size == (46, 38)
