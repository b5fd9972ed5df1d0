"""FID and KID of generated against real images, in validation; one-sided label smoothing.

The measures run on a small network made here, never on downloaded Inception weights."""

import urllib.error

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tests.helpers import TINY_GAN, metrics, photo, trainer, write_images
from translator import TranslatorError
from translator.events import Note, Validation
from translator.fid import Distances
from translator.losses import GANLoss


def small_features() -> nn.Module:
    """A fixed random convolution pooled into 64 features: enough to tell two sets apart."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(7)
        net = nn.Sequential(nn.Conv2d(3, 64, 5, stride=2), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    return net.requires_grad_(False)


@pytest.fixture
def features(monkeypatch):
    monkeypatch.setattr("translator.fid.feature_network", lambda device: small_features())


def images(count: int, shift: float = 0.0) -> torch.Tensor:
    photos = torch.stack([torch.from_numpy(photo(32, 32, seed)).permute(2, 0, 1) for seed in range(count)])
    return (photos.float() / 255 + shift).clamp(0, 1)


def test_identical_sets_are_near_zero_and_a_brightness_shift_is_not():
    real = images(12)
    same = Distances(small_features())
    same.add(generated=real, real=real)
    shifted = Distances(small_features())
    shifted.add(generated=images(12, 0.25), real=real)
    near, far = same.result(), shifted.result()
    assert abs(near["fid"]) < 1e-3 and far["fid"] > 0.5
    # KID is unbiased: on identical sets it scatters around zero, below the shift's by far
    assert abs(near["kid"]) < far["kid"] / 10
    # one image has no spread to compare
    single = Distances(small_features())
    single.add(generated=real[:1], real=real)
    assert single.result() == {}


def test_kid_leaves_the_training_random_stream_alone():
    distances = Distances(small_features())
    distances.add(generated=images(6, 0.1), real=images(8))
    torch.manual_seed(3)
    first = distances.result()
    after = torch.rand(1)
    torch.manual_seed(3)
    assert distances.result() == first and torch.equal(torch.rand(1), after)


def pix2pix_data(root):
    a = [photo(36, 36, seed) for seed in range(7)]
    for split, seeds in (("train", range(4)), ("val", range(4, 7))):
        write_images(root / split / "A", [a[s] for s in seeds])
        write_images(root / split / "B", [255 - a[s] for s in seeds])
    return root


def cyclegan_data(root):
    for folder, seeds in (("trainA", range(3)), ("trainB", range(3, 6)), ("testA", range(6, 9)), ("testB", range(9, 12))):
        write_images(root / folder, [photo(36, 36, s) for s in seeds])
    return root


TINY_RUN = dict(netG="resnet_6blocks", load_size=36, crop_size=32, steps=2, **{**TINY_GAN, "val_every": "2"})


@pytest.mark.parametrize("family, data", [("pix2pix", pix2pix_data), ("cyclegan", cyclegan_data)])
def test_validation_reports_fid_and_kid(tmp_path, features, family, data):
    events = []
    run = trainer(family, data(tmp_path / "d"), tmp_path / "run", **TINY_RUN)
    run.on_event = events.append
    assert run.run()["status"] == "done"
    validations = [e for e in events if isinstance(e, Validation)]
    assert validations and {"fid", "kid"} <= validations[-1].scores.keys()
    assert all(isinstance(v, float) for v in validations[-1].scores.values())
    if family == "pix2pix":  # the per-pair measures stay
        assert {"l1", "psnr"} <= validations[-1].scores.keys()
    logged = [m for m in metrics(tmp_path / "run") if m["event"] == "validation"]
    assert logged[-1]["scores"] == validations[-1].scores


@pytest.mark.parametrize("how", ["offline", "download fails"])
def test_without_inception_weights_the_run_says_so_once_and_trains_on(tmp_path, monkeypatch, how):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))  # nothing cached
    if how == "download fails":
        from huggingface_hub import constants
        import torch_fidelity.feature_extractor_inceptionv3 as inception

        def no_network(*args, **kwargs):
            raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
        monkeypatch.setattr(inception, "load_state_dict_from_url", no_network)
    events = []
    run = trainer("pix2pix", pix2pix_data(tmp_path / "d"), tmp_path / "run", **{**TINY_RUN, "val_every": 1})
    run.on_event = events.append
    assert run.run()["status"] == "done"
    notes = [e for e in events if isinstance(e, Note)]
    assert len(notes) == 1 and "FID and KID are unavailable" in notes[0].message
    assert ("HF_HUB_OFFLINE" if how == "offline" else "name resolution") in notes[0].message
    validations = [e for e in events if isinstance(e, Validation)]
    assert len(validations) == 2 and all("fid" not in v.scores and "l1" in v.scores for v in validations)
    assert [m["event"] for m in metrics(tmp_path / "run")].count("note") == 1


# ---- one-sided label smoothing ----


def test_label_smoothing_moves_only_the_discriminators_real_target():
    real, fake = torch.randn(2, 1, 4, 4), torch.randn(2, 1, 4, 4)
    by_hand = {"lsgan": F.mse_loss, "vanilla": F.binary_cross_entropy_with_logits}
    for mode, loss in by_hand.items():
        smooth = GANLoss(mode, real_label=0.9)
        expected = (loss(real, torch.full_like(real, 0.9)) + loss(fake, torch.zeros_like(fake))) / 2
        assert torch.allclose(smooth.discriminator(real, fake), expected, atol=1e-6)
        # the generator still aims at 1
        assert torch.equal(smooth.generator(fake), GANLoss(mode).generator(fake))
    # a real score at the target is no loss for least squares, and the optimum of the logistic loss
    real, fake = torch.full((1, 1, 2, 2), 0.9), torch.zeros(1, 1, 2, 2)
    assert GANLoss("lsgan", 0.9).discriminator(real, fake) == 0
    assert GANLoss("lsgan").discriminator(real, fake) > 0
    logit = torch.full((3,), torch.logit(torch.tensor(0.9)).item(), requires_grad=True)
    GANLoss("vanilla", 0.9).discriminator(logit, torch.full((3,), -20.0)).backward()
    assert logit.grad.abs().max() < 1e-6


def test_label_smoothing_is_refused_where_there_is_no_target(tmp_path):
    for mode in ("hinge", "ragan"):
        with pytest.raises(TranslatorError, match=f"needs gan_mode vanilla or lsgan: {mode}"):
            GANLoss(mode, real_label=0.9)
    assert GANLoss("hinge", real_label=1.0).mode == "hinge"
    data = pix2pix_data(tmp_path / "d")
    with pytest.raises(TranslatorError, match="real_label"):
        trainer("pix2pix", data, tmp_path / "r", gan_mode="hinge", real_label=0.9, **TINY_RUN).run()
    with pytest.raises(TranslatorError, match="setting 'real_label' must be from 0.5 to 1.0"):
        trainer("cyclegan", data, tmp_path / "r", real_label=1.1)
