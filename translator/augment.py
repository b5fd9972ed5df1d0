"""Per-batch augmentation on the device, and the degradations that make low-resolution inputs.

All randomness comes from torch's generator, so a seeded run (and a resumed one) repeats it.
"""

from __future__ import annotations

import kornia.augmentation as K
import kornia.filters
import torch
import torch.nn.functional as F

from .errors import TranslatorError
from .family import Task

DEGRADATIONS = ("bicubic", "realesrgan", "mixed")


class Augmenter:
    """Turns a loader batch (uint8 tensors on the device) into a float training batch in [0, 1].

    paired: one random crop, flip and colour change applied identically to A and B;
    unpaired: A and B augmented independently; super-resolution: flips and quarter turns of the
    high-resolution patch, then a degradation makes its low-resolution input.
    """

    def __init__(self, task: Task, crop_size: int, flip: bool = True, color_jitter: float = 0.0, scale: int = 1, degradation: str = "bicubic"):
        if degradation not in DEGRADATIONS:
            raise TranslatorError(f"unknown degradation {degradation!r} (use {', '.join(DEGRADATIONS)})")
        self.task, self.scale, self.degradation, self.flip = task, scale, degradation, flip
        steps = [] if task == Task.SUPER_RESOLUTION else [K.RandomCrop((crop_size, crop_size))]
        if flip:
            steps.append(K.RandomHorizontalFlip())
        if color_jitter:
            steps.append(K.ColorJiggle(color_jitter, color_jitter, color_jitter, 0.0, p=0.8))
        keys = ["input", "input"] if task == Task.PAIRED else ["input"]
        self.pipeline = K.AugmentationSequential(*steps, data_keys=keys) if steps else None

    def __call__(self, tensors: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        images = [t.float() / 255 for t in tensors]
        if self.task == Task.PAIRED:
            a, b = self.pipeline(*images) if self.pipeline else images
            return {"A": a, "B": b}
        if self.task == Task.UNPAIRED:
            a, b = (self.pipeline(x) if self.pipeline else x for x in images)
            return {"A": a, "B": b}
        hr = images[0]
        if self.pipeline:
            hr = self.pipeline(hr)
        if self.flip:
            turns = torch.randint(4, (hr.shape[0],)).tolist()
            hr = torch.stack([torch.rot90(x, k, (1, 2)) for x, k in zip(hr, turns)])
        return {"lr": degrade(hr, self.scale, self.degradation), "hr": hr}


def degrade(hr: torch.Tensor, scale: int, kind: str = "bicubic") -> torch.Tensor:
    """Low-resolution versions of ``hr`` (N x 3 x H x W in [0, 1]), H and W divisible by ``scale``.

    "bicubic" is the classic antialiased downscale. "realesrgan" follows Real-ESRGAN's recipe in
    one stage: random Gaussian blur, a random intermediate resize, Gaussian noise, the final
    resize, and JPEG compression, so that real photos, not only downscaled ones, improve.
    "mixed" picks one of the two for each batch.
    """
    size = (hr.shape[2] // scale, hr.shape[3] // scale)
    if kind == "mixed":  # half the batches each way: robust to real photos, still sharp on clean ones
        kind = "bicubic" if torch.rand(()) < 0.5 else "realesrgan"
    if kind == "bicubic":
        return _resize(hr, size, "bicubic")
    n = hr.shape[0]
    x = kornia.filters.gaussian_blur2d(hr, 21, (torch.rand(n, 1, device=hr.device) * 2.8 + 0.2).expand(n, 2))
    factor = float(torch.empty(()).uniform_(0.3, 1.2))
    mode = ("area", "bilinear", "bicubic")[int(torch.randint(3, ()))]
    x = _resize(x, (max(1, round(size[0] * factor * scale / 2)), max(1, round(size[1] * factor * scale / 2))), mode)
    sigma = torch.rand(n, 1, 1, 1, device=hr.device) * (25 / 255) + 1 / 255
    x = (x + torch.randn_like(x) * sigma).clamp(0, 1)
    x = _resize(x, size, ("area", "bilinear", "bicubic")[int(torch.randint(3, ()))])
    return K.RandomJPEG(jpeg_quality=(30.0, 95.0), p=1.0)(x).clamp(0, 1)


def _resize(x: torch.Tensor, size: tuple[int, int], mode: str) -> torch.Tensor:
    if mode == "area":
        return F.interpolate(x, size=size, mode="area").clamp(0, 1)
    return F.interpolate(x, size=size, mode=mode, align_corners=False, antialias=True).clamp(0, 1)
