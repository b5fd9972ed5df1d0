"""A pix2pix colouriser: one gray channel in, colour out, from any input mode."""

import numpy as np
import pytest
from PIL import Image

from tests.helpers import TINY_GAN, photo, trainer, write_images
from translator import TranslatorError
from translator.checkpoints import load_checkpoint
from translator.images import LUMA, Picture, read_image
from translator.inference import Engine, Options


@pytest.fixture(scope="module")
def colouriser(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("colouriser")
    for split, count in (("train", 3), ("val", 1)):
        for folder in ("A", "B"):
            (tmp_path / "pairs" / split / folder).mkdir(parents=True)
        for i in range(count):
            colour = Image.fromarray(photo(40, 40, seed=10 * i + len(split)))
            colour.save(tmp_path / "pairs" / split / "B" / f"{i}.png")
            colour.convert("L").save(tmp_path / "pairs" / split / "A" / f"{i}.png")
    run = tmp_path / "run"
    settings = {**TINY_GAN, "gray_input": "true", "netG": "resnet_6blocks", "load_size": 32, "crop_size": 32, "steps": 2, "sample_every": 2, "val_every": 2}
    trainer("pix2pix", tmp_path / "pairs", run, **settings).run()
    return run / "generator.safetensors"


def test_a_colouriser_trains_on_gray_inputs_and_records_one_channel(colouriser):
    loaded = load_checkpoint(colouriser)
    assert loaded.arch.channels == (1, 3) and loaded.arch.params["input_nc"] == 1
    first = next(v for k, v in loaded.module.state_dict().items() if k.endswith("weight") and v.ndim == 4)
    assert first.shape[1] == 1
    # the sample grid shows the gray input beside the colour output and target
    assert list((colouriser.parent / "samples").glob("*.png"))


def test_gray_16_bit_gray_and_colour_photos_all_colourise(colouriser, tmp_path):
    engine = Engine(load_checkpoint(colouriser), options=Options(device="cpu"))
    colour = photo(36, 44, seed=5)
    gray8 = np.asarray(Image.fromarray(colour).convert("L"))
    Image.fromarray(colour).save(tmp_path / "rgb.png")
    Image.fromarray(gray8).save(tmp_path / "gray.png")
    Image.fromarray((gray8.astype(np.uint16) * 257)).save(tmp_path / "gray16.png")
    results = {name: engine.translate(read_image(tmp_path / f"{name}.png")) for name in ("rgb", "gray", "gray16")}
    for name, result in results.items():
        assert result.rgb.shape == (36, 44, 3) and not result.grayscale, name
    # a colour photo is made gray first (BT.601, as Pillow does), so all three agree
    assert np.abs(results["rgb"].rgb - results["gray"].rgb).max() < 2.5 / 255
    assert np.abs(results["gray16"].rgb - results["gray"].rgb).max() < 2.5 / 255
    assert list(LUMA) == pytest.approx([0.299, 0.587, 0.114])
    # the network gives the colour; the tones stay the photo's own (but where a channel clips)
    luma = results["gray"].rgb @ np.array(LUMA, dtype=np.float32)
    assert np.median(np.abs(luma - gray8 / 255)) < 0.5 / 255 and np.mean(np.abs(luma - gray8 / 255)) < 4 / 255


def test_networks_that_give_other_than_rgb_are_refused(colouriser):
    loaded = load_checkpoint(colouriser)
    loaded.arch.channels = (3, 1)
    with pytest.raises(TranslatorError, match="maps 3-channel images to 1; only RGB results can be made"):
        Engine(loaded, options=Options(device="cpu"))


def test_training_validation_and_translation_show_a_colouriser_the_same_gray():
    """One luma for all three: a colour photo among the training or held-out images is seen as
    the translation sees it, not as the mean of its channels."""
    import torch

    from translator.family import Architecture

    colour = torch.tensor([1.0, 0.0, 0.0]).view(1, 3, 1, 1).expand(1, 3, 2, 2)  # pure red
    gray = Architecture("unet_128", {}, 1, 128, (1, 3)).network_input(colour)
    assert gray.shape == (1, 1, 2, 2) and torch.allclose(gray, torch.full_like(gray, 0.299))
    assert Architecture("unet_128", {}, 1, 128, (3, 3)).network_input(colour) is colour


def test_a_colouriser_keeps_the_share_of_its_colour_its_checkpoint_records(colouriser, tmp_path):
    """The shipped colouriser keeps part of its network's colour (its recipe measures how much
    scores best on photos it never saw): the tones stay the photo's, the colour shrinks toward gray."""
    from translator.checkpoints import save_checkpoint

    loaded = load_checkpoint(colouriser)
    gray = read_image_of(photo(40, 48, seed=3), tmp_path)
    full = Engine(loaded, options=Options(device="cpu")).translate(gray).rgb
    for share in (0.5, 0.0):
        loaded.arch.chroma = share
        path = save_checkpoint(tmp_path / f"chroma-{share}.safetensors", loaded.family, loaded.arch, loaded.module.state_dict(), {})
        reloaded = load_checkpoint(path)
        assert reloaded.arch.chroma == share
        result = Engine(reloaded, options=Options(device="cpu")).translate(gray).rgb
        luma = full @ np.array(LUMA, dtype=np.float32)
        unclipped = (full > 0.02).all(axis=2) & (full < 0.98).all(axis=2)
        expected = luma[..., None] + share * (full - luma[..., None])
        assert np.abs(result - expected)[unclipped].max() < 1e-4
    # none of its colour: the gray photo itself
    assert np.abs(result - result.mean(axis=2, keepdims=True)).max() < 1e-5


@pytest.mark.parametrize("chroma", ["1.5", '"much"', "true"])
def test_a_recorded_chroma_out_of_range_is_refused_in_one_line(colouriser, tmp_path, chroma):
    import json

    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    with safe_open(colouriser, "pt") as f:
        metadata = f.metadata()
    metadata["architecture"] = json.dumps({**json.loads(metadata["architecture"]), "chroma": json.loads(chroma)})
    save_file(load_file(colouriser), tmp_path / "bad.safetensors", metadata)
    with pytest.raises(TranslatorError, match=r"the recorded architecture is unreadable \(chroma .* is not a share from 0 to 1\)"):
        load_checkpoint(tmp_path / "bad.safetensors")


def read_image_of(rgb, folder):
    Image.fromarray(rgb).convert("L").save(folder / "gray.png")
    return read_image(folder / "gray.png")


def test_colour_strength_scales_the_colour_and_keeps_the_tones(colouriser, tmp_path):
    """`--set colour=K`: the model's colour times K, the photo's own luma kept; 0 gives the gray photo."""
    from translator.family import make_settings

    loaded = load_checkpoint(colouriser)
    gray = read_image_of(photo(40, 48, seed=3), tmp_path)

    def colourised(strength):
        settings = make_settings(loaded.family.Settings, {"colour": strength}, "pix2pix")
        return Engine(load_checkpoint(colouriser), settings, Options(device="cpu")).translate(gray).rgb

    own = colourised("1")
    luma = own @ np.array(LUMA, dtype=np.float32)
    for strength in (0.5, 2.0):
        result = colourised(str(strength))
        expected = luma[..., None] + strength * (own - luma[..., None])
        unclipped = (expected > 0.02).all(axis=2) & (expected < 0.98).all(axis=2)
        assert unclipped.mean() > 0.5
        assert np.abs(result - expected)[unclipped].max() < 1e-4
    grayed = colourised("0")
    assert np.abs(grayed - luma[..., None]).max() < 1e-4
    # the strength leaves the network deterministic (int8 and compiling stay open to it), or sampling
    from translator.acceleration import samples

    for sampling in ("eval", "train"):
        settings = make_settings(loaded.family.Settings, {"colour": "2", "sampling": sampling}, "pix2pix")
        assert samples(Engine(load_checkpoint(colouriser), settings, Options(device="cpu")).runner.module) == (sampling == "train")
    with pytest.raises(TranslatorError, match="colour"):
        make_settings(loaded.family.Settings, {"colour": "-1"}, "pix2pix")


def test_a_squared_error_leaves_what_the_input_cannot_tell_near_the_mean(tmp_path):
    # one gray input, coloured three times in X and once in its opposite: L1's best answer is X
    # itself (the median), the squared error's is their mean, half of X's colour
    luma = np.array(LUMA)
    x = np.array([150.0, 100.0, 100.0])
    chroma = x - x @ luma
    write_images(tmp_path / "pairs" / "A", [np.full((32, 32), 128, np.uint8)] * 4)
    write_images(tmp_path / "pairs" / "B", [np.full((32, 32, 3), 128 + sign * chroma, np.uint8) for sign in (1, 1, 1, -1)])
    run = tmp_path / "run"
    settings = {**TINY_GAN, "ngf": "4", "ndf": "4", "gray_input": "true", "netG": "resnet_6blocks", "dropout": "false", "load_size": 32, "crop_size": 32, "batch_size": 4}
    trainer("pix2pix", tmp_path / "pairs", run, lambda_l1=0, lambda_l2=1000, lr=2e-3, lr_constant_steps=80, lr_decay_steps=20, steps=100, **settings).run()
    engine = Engine(load_checkpoint(run / "generator.safetensors"), options=Options(device="cpu", precision="fp32"))
    colour = engine.translate(Picture(np.full((32, 32, 3), 128 / 255, np.float32))).rgb.reshape(-1, 3).mean(0) * 255
    share = (colour - colour @ luma) @ chroma / (chroma @ chroma)
    assert 0.3 < share < 0.7, f"{share:.2f} of X's colour"
