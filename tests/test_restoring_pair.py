"""A pair of compact upscalers in one file (the default x4): each picture goes, whole, through
the restorer when it shows JPEG's 8x8 blocks and through the sharpener otherwise."""

import io

import numpy as np
import pytest
import torch
from PIL import Image

from tests.helpers import mirrored, photo
from translator import TranslatorError
from translator.app.service import Studio
from translator.app.workspace import Workspace
from translator.checkpoints import load_checkpoint, save_checkpoint
from translator.cli import main
from translator.family import make_settings
from translator.images import Picture, read_image
from translator.inference import Engine, Options
from translator.plugins import registry
from translator.default_plugins.sr_networks import BLOCKY, SRVGGNetCompact, jpeg_blockiness


def jpeg(pixels: np.ndarray, quality: int) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=quality)
    return np.asarray(Image.open(buffer).convert("RGB"))


def tensor(pixels: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(pixels.copy()).permute(2, 0, 1)[None].float() / 255


@pytest.fixture(scope="module")
def real_photo() -> np.ndarray:
    from importlib.resources import files

    return (read_image(files("translator.app") / "chelsea.png").rgb[:160, :200] * 255).round().astype(np.uint8)


def test_blockiness_tells_a_jpeg_from_a_clean_picture(real_photo):
    for pixels in (real_photo, photo(96, 120)):
        assert jpeg_blockiness(tensor(pixels)) < BLOCKY
        assert jpeg_blockiness(tensor(jpeg(pixels, 50))) > BLOCKY
    assert jpeg_blockiness(tensor(jpeg(real_photo, 75))) > BLOCKY
    # too small to have a block grid
    assert jpeg_blockiness(torch.rand(1, 3, 8, 8)) == 0.0


@pytest.fixture
def pair(tmp_path):
    """A pair file of two different random x2 networks, and each half as a file of its own."""
    family = registry().family("esrgan")
    torch.manual_seed(0)
    # torch's own initialisation: outputs near the input, far from saturating, and each its own
    halves = {name: SRVGGNetCompact(nf=8, num_conv=2, upscale=2).state_dict() for name in ("restore", "sharpen")}
    state = {f"{name}.{k}": v for name, half in halves.items() for k, v in half.items()}
    arch = family.recognise(state)
    assert arch.name == "srvgg" and arch.params["pair"] and arch.scale == 2
    files = {"pair": save_checkpoint(tmp_path / "pair.safetensors", family, arch, state)}
    for name, half in halves.items():
        files[name] = save_checkpoint(tmp_path / f"{name}.safetensors", family, family.recognise(half), half)
    return files


def engine(path, tile=None, **settings):
    checkpoint = load_checkpoint(path)
    chosen = make_settings(checkpoint.family.Settings, {k: str(v) for k, v in settings.items()}, "esrgan")
    return Engine(checkpoint, chosen, Options(device="cpu", precision="fp32", tile=tile))


def test_each_picture_goes_whole_through_the_branch_it_calls_for(pair, real_photo):
    clean, blocky = (Picture(p.astype(np.float32) / 255) for p in (real_photo, jpeg(real_photo, 40)))
    restorer, sharpener = engine(pair["restore"], tile=0), engine(pair["sharpen"], tile=0)
    # in 64 px tiles, all of them through the one branch: the whole-picture result of that
    # branch, the restorer's mirrored four ways
    tiled = engine(pair["pair"], tile=64)
    np.testing.assert_allclose(tiled.translate(blocky).rgb, mirrored(restorer, blocky), atol=2e-5)
    assert np.abs(mirrored(restorer, blocky) - restorer.translate(blocky).rgb).max() > 0.01
    np.testing.assert_allclose(tiled.translate(clean).rgb, sharpener.translate(clean).rgb, atol=2e-5)
    assert np.abs(restorer.translate(clean).rgb - sharpener.translate(clean).rgb).mean() > 0.01
    # and says why, for the result line
    assert [tiled.for_picture(p).route for p in (blocky, clean)] == ["restored: it shows JPEG blocks", "sharpened: no JPEG blocks"]
    # the setting overrides the choice
    np.testing.assert_allclose(engine(pair["pair"], restore="always").translate(clean).rgb, mirrored(restorer, clean), atol=2e-5)
    np.testing.assert_allclose(engine(pair["pair"], restore="never").translate(blocky).rgb, sharpener.translate(blocky).rgb, atol=2e-5)


def test_a_picture_with_faint_blocks_gets_the_mean_of_both(pair, real_photo, monkeypatch):
    """Between no sign of blocks (0) and BLOCKY, each network alone does worse than their mean
    on damaged photos; a score there is rare in real pictures, so it is set here."""
    import sys

    from translator.default_plugins.sr_networks import FAINT, SRVGGPair

    assert FAINT < BLOCKY
    picture = Picture(real_photo.astype(np.float32) / 255)
    restored, sharpened = mirrored(engine(pair["restore"], tile=0), picture), engine(pair["sharpen"], tile=0).translate(picture).rgb
    monkeypatch.setattr(sys.modules[SRVGGPair.__module__], "jpeg_blockiness", lambda x: (FAINT + BLOCKY) / 2)
    tiled = engine(pair["pair"], tile=64)
    counts = []
    np.testing.assert_allclose(tiled.translate(picture, lambda done, total: counts.append((done, total))).rgb, (restored + sharpened) / 2, atol=2e-5)
    # one count across both networks' tiles
    assert counts == [(done, len(counts)) for done in range(1, len(counts) + 1)] and len(counts) > 2
    assert tiled.for_picture(picture).route == "half restored, half sharpened: faint JPEG blocks"
    # the file still holds each network's weights once
    assert not any(key.startswith("_halves") for key in load_checkpoint(pair["pair"]).module.state_dict())


def test_the_pair_round_trips_and_refuses_what_it_cannot_do(pair, tmp_path, capsys):
    loaded = load_checkpoint(pair["pair"])
    assert loaded.arch.params["pair"] and set(loaded.module.state_dict()) == set(load_checkpoint(pair["pair"]).module.state_dict())
    # an ONNX file holds one network, not the choice between two
    assert main(["export", str(pair["pair"]), "-o", str(tmp_path / "pair.onnx")]) == 1
    assert "one of its networks per picture" in capsys.readouterr().err
    assert not (tmp_path / "pair.onnx").exists()
    # the setting means nothing to a single network
    with pytest.raises(TranslatorError, match="restore applies only to"):
        engine(pair["sharpen"], restore="never")


@pytest.mark.parametrize("pair", ["compact-sr-x4", "compact-sr-x2"])
def test_the_shipped_pairs_sharpen_with_the_shipped_clean_models(pair, tmp_path, real_photo, capsys):
    """Each shipped pair's sharpener is the shipped clean model, so a clean picture gets exactly
    what compact-sr-xN-clean makes of it, and a JPEG something else; the CLI and the app's
    result line say which."""
    clean_model = f"{pair}-clean"
    assert load_checkpoint(pair).arch.params.get("pair")
    small = real_photo[:48, :64]
    Image.fromarray(small).save(tmp_path / "clean.png")
    Image.fromarray(jpeg(real_photo, 40)[:48, :64]).save(tmp_path / "blocky.png")
    for name, model in (("clean", pair), ("clean", clean_model), ("blocky", pair), ("blocky", clean_model)):
        assert main(["translate", str(tmp_path / f"{name}.png"), "-c", model, "--precision", "fp32", "-o", str(tmp_path / f"{name}-{model}.png")]) == 0
    same = lambda a, b: np.array_equal(np.asarray(Image.open(tmp_path / a)), np.asarray(Image.open(tmp_path / b)))  # noqa: E731
    assert same(f"clean-{pair}.png", f"clean-{clean_model}.png")
    assert not same(f"blocky-{pair}.png", f"blocky-{clean_model}.png")
    assert "blocky.png: restored: it shows JPEG blocks" in capsys.readouterr().err
    studio = Studio(Workspace(tmp_path / "home"), device="cpu")
    assert "(sharpened: no JPEG blocks)" in studio.translate(str(tmp_path / "clean.png"), "esrgan", pair, None, None, {}).describe()


def test_a_video_takes_its_first_frames_branch_for_every_frame(pair, real_photo, tmp_path):
    """Frames that flickered between two networks would be worse than either: the first frame
    (here a blocky one, then clean ones) chooses for all."""
    import av

    from tests.helpers import write_clip

    crops = [jpeg(real_photo, 30)[:48, :64]] + [real_photo[8 * k : 8 * k + 48, :64] for k in range(1, 4)]
    clip = write_clip(tmp_path / "clip.mkv", list(enumerate(crops)), codec="ffv1", pix_fmt="yuv444p")
    out = tmp_path / "out.mkv"
    assert main(["translate", str(clip), "-c", str(pair["pair"]), "-o", str(out), "--codec", "ffv1", "--precision", "fp32"]) == 0
    with av.open(str(clip)) as source, av.open(str(out)) as made:
        pairs = list(zip(source.decode(video=0), made.decode(video=0)))
    assert len(pairs) == len(crops)
    restorer, sharpener = engine(pair["restore"]), engine(pair["sharpen"])
    for number, (frame, result) in enumerate(pairs):
        picture = Picture(frame.to_ndarray(format="rgb24").astype(np.float32) / 255)
        got = result.to_ndarray(format="rgb24").astype(float)
        restored, sharpened = np.round(mirrored(restorer, picture) * 255), np.round(sharpener.translate(picture).rgb * 255)
        assert np.abs(got - restored).mean() < 1.5, number
        assert np.abs(got - sharpened).mean() > 3, number
