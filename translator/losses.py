"""Loss pieces the families assemble: GAN objectives, perceptual VGG loss, the image pool."""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .errors import TranslatorError

GAN_MODES = ("vanilla", "lsgan", "hinge", "ragan")


class GANLoss(nn.Module):
    """Adversarial objectives on raw discriminator scores.

    ``vanilla`` is the original binary cross-entropy (pix2pix), ``lsgan`` least squares
    (CycleGAN), ``hinge`` the hinge loss, and ``ragan`` the relativistic average GAN of ESRGAN,
    which compares each score with the mean score of the other kind and so needs both.

    ``real_label`` below 1 is one-sided label smoothing (Salimans et al. 2016): the
    discriminator aims at that value for real images, so it cannot grow so sure of them that
    the generator's gradients vanish. Only the real side is smoothed: a target above 0 for fakes
    would move the discriminator's optimum towards the generator's current samples, and the
    generator would no longer be pushed away from them. It means something only where the loss
    has a target value (vanilla, lsgan).
    """

    def __init__(self, mode: str, real_label: float = 1.0):
        super().__init__()
        if mode not in GAN_MODES:
            raise TranslatorError(f"unknown GAN objective {mode!r} (use {', '.join(GAN_MODES)})")
        if real_label != 1.0 and mode not in ("vanilla", "lsgan"):
            raise TranslatorError(f"real_label {real_label} (label smoothing) needs gan_mode vanilla or lsgan: {mode} has no target value to smooth")
        self.mode = mode
        self.real_label = real_label

    @property
    def needs_real(self) -> bool:
        """Whether ``generator`` needs the real scores too (relativistic objectives)."""
        return self.mode == "ragan"

    def generator(self, fake: torch.Tensor, real: torch.Tensor | None = None) -> torch.Tensor:
        """Loss that pushes the generator's ``fake`` scores towards 'real'."""
        if self.mode == "ragan":
            real = real.detach()
            return (self._bce(real - fake.mean(), False) + self._bce(fake - real.mean(), True)) / 2
        if self.mode == "hinge":
            return -fake.mean()
        return self._plain(fake, 1.0)

    def discriminator(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        """Loss that teaches the discriminator ``real`` from ``fake`` (fake scores of detached images)."""
        if self.mode == "ragan":
            return (self._bce(real - fake.mean(), True) + self._bce(fake - real.mean(), False)) / 2
        if self.mode == "hinge":
            return (F.relu(1 - real).mean() + F.relu(1 + fake).mean()) / 2
        return (self._plain(real, self.real_label) + self._plain(fake, 0.0)) / 2

    def _plain(self, score: torch.Tensor, target: float) -> torch.Tensor:
        if self.mode == "lsgan":
            return F.mse_loss(score, torch.full_like(score, target))
        return F.binary_cross_entropy_with_logits(score, torch.full_like(score, target))

    @staticmethod
    def _bce(score: torch.Tensor, target_real: bool) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(score, torch.full_like(score, float(target_real)))


class ImagePool:
    """CycleGAN's history of generated images: the discriminator sees, half of the time, an
    older fake instead of the newest, which damps oscillation. Uses the torch RNG, so it is
    reproducible with the seed and resumes exactly."""

    def __init__(self, size: int):
        self.size = size
        self.images: list[torch.Tensor] = []

    def query(self, images: torch.Tensor) -> torch.Tensor:
        if self.size == 0:
            return images
        out = []
        for image in images.detach():
            image = image[None]
            if len(self.images) < self.size:
                self.images.append(image.clone())
                out.append(image)
            elif torch.rand(()) < 0.5:
                index = int(torch.randint(self.size, ()))
                out.append(self.images[index].clone())
                self.images[index] = image.clone()
            else:
                out.append(image)
        return torch.cat(out)

    def state_dict(self) -> dict:
        return {"images": [image.cpu() for image in self.images]}

    def load_state_dict(self, state: dict, device) -> None:
        self.images = [image.to(device) for image in state["images"]]


# VGG19 feature layers used by ESRGAN/Real-ESRGAN (conv1_2, conv2_2, conv3_4, conv4_4, conv5_4
# before activation) with Real-ESRGAN's weights.
VGG_LAYERS = {2: 0.1, 7: 0.1, 16: 1.0, 25: 1.0, 34: 1.0}
VGG_WEIGHTS_FILE = "vgg19-dcbb9e9d.pth"


class PerceptualLoss(nn.Module):
    """L1 distance between VGG19 features of two images in [0, 1] (ImageNet-normalised)."""

    def __init__(self, weights_path: str | os.PathLike | None = None):
        super().__init__()
        from torchvision.models import vgg19

        path = Path(weights_path) if weights_path else _torch_hub_file(VGG_WEIGHTS_FILE)
        if not path.is_file():
            raise TranslatorError(
                f"perceptual loss needs torchvision's VGG19 weights ({VGG_WEIGHTS_FILE}), not found at {path}; "
                "put the file there (it is torchvision's own download) or train with --set perceptual_weight=0"
            )
        with torch.device("meta"):  # the file's weights replace these: no 143M random values to draw first
            net = vgg19()
        net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True), assign=True)
        self.features = net.features[: max(VGG_LAYERS) + 1].eval().requires_grad_(False)
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        x, y = (output - self.mean) / self.std, (target.detach() - self.mean) / self.std
        loss = output.new_zeros(())
        for index, layer in enumerate(self.features):
            x, y = layer(x), layer(y)
            if index in VGG_LAYERS:
                loss = loss + VGG_LAYERS[index] * F.l1_loss(x, y)
        return loss


def _torch_hub_file(name: str) -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / name
