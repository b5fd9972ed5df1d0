"""Per-batch augmentation on the device, and the degradations that make low-resolution inputs.

All randomness comes from torch's generator, so a seeded run (and a resumed one) repeats it.
"""

from __future__ import annotations

from collections.abc import Callable

import kornia.augmentation as K
import kornia.filters
import torch
import torch.nn.functional as F

DEGRADATIONS = ("bicubic", "realesrgan", "mixed")


def augmentation(crop_size: int | None, flip: bool, color_jitter: float, inputs: int) -> Callable[..., torch.Tensor]:
    """A random crop (unless ``crop_size`` is None), horizontal flip and colour change of a batch
    in [0, 1]; with ``inputs`` 2 it takes two batches and applies the same draw to both. Without
    any step it returns its input."""
    steps = [] if crop_size is None else [K.RandomCrop((crop_size, crop_size))]
    if flip:
        steps.append(K.RandomHorizontalFlip())
    if color_jitter:
        steps.append(K.ColorJiggle(color_jitter, color_jitter, color_jitter, 0.0, p=0.8))
    if not steps:
        return lambda *images: images if len(images) > 1 else images[0]
    # "input" for both: "mask" would resample a target image with nearest neighbours
    return K.AugmentationSequential(*steps, data_keys=["input"] * inputs)


def degrade(hr: torch.Tensor, scale: int, kind: str = "bicubic", clean_share: float = 0.5, jpeg_share: float = 0.0) -> torch.Tensor:
    """Low-resolution versions of ``hr`` (N x 3 x H x W in [0, 1]), H and W divisible by ``scale``.

    "bicubic" is the classic antialiased downscale. "realesrgan" follows Real-ESRGAN's recipe in
    one stage: random Gaussian blur, a random intermediate resize, Gaussian noise, the final
    resize, and JPEG compression, so that real photos, not only downscaled ones, improve.
    "mixed" picks one of the two for each batch, "bicubic" for ``clean_share`` of them, and for
    ``jpeg_share`` of them "jpeg": the bicubic downscale saved as JPEG and nothing else, as most
    files people upload are.
    """
    size = (hr.shape[2] // scale, hr.shape[3] // scale)
    if kind == "mixed":  # both kinds of batch: robust to real photos, still sharp on clean ones
        draw = float(torch.rand(()))
        kind = "bicubic" if draw < clean_share else "jpeg" if draw < clean_share + jpeg_share else "realesrgan"
    if kind == "bicubic":
        return _resize(hr, size, "bicubic")
    if kind == "jpeg":
        return _jpeg(_resize(hr, size, "bicubic"))
    n = hr.shape[0]
    x = kornia.filters.gaussian_blur2d(hr, 21, (torch.rand(n, 1, device=hr.device) * 2.8 + 0.2).expand(n, 2))
    factor = float(torch.empty(()).uniform_(0.3, 1.2))
    mode = ("area", "bilinear", "bicubic")[int(torch.randint(3, ()))]
    x = _resize(x, (max(1, round(size[0] * factor * scale / 2)), max(1, round(size[1] * factor * scale / 2))), mode)
    sigma = torch.rand(n, 1, 1, 1, device=hr.device) * (25 / 255) + 1 / 255
    x = (x + torch.randn_like(x) * sigma).clamp(0, 1)
    x = _resize(x, size, ("area", "bilinear", "bicubic")[int(torch.randint(3, ()))])
    return _jpeg(x)


def _jpeg(x: torch.Tensor) -> torch.Tensor:
    return K.RandomJPEG(jpeg_quality=(30.0, 95.0), p=1.0)(x).clamp(0, 1)


def _resize(x: torch.Tensor, size: tuple[int, int], mode: str) -> torch.Tensor:
    if mode == "area":
        return F.interpolate(x, size=size, mode="area").clamp(0, 1)
    return F.interpolate(x, size=size, mode=mode, align_corners=False, antialias=True).clamp(0, 1)
