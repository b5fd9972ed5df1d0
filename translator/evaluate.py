"""Quality of super-resolution checkpoints on held-out photos, as papers report it.

Each high-resolution photo is cropped to a multiple of the scale and downscaled (antialiased
bicubic, the degradation the classic benchmarks use); the checkpoint's upscale and plain
bicubic upscaling are then compared with the original on the Y channel, with ``scale`` pixels
cropped from each border.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .augment import degrade
from .checkpoints import load_checkpoint
from .data import Report, scan_images
from .errors import TranslatorError
from .images import Picture, read_image
from .inference import Engine, Options
from .metrics import psnr_y, ssim_y


@dataclass
class Score:
    name: str
    psnr: list[float] = field(default_factory=list)
    ssim: list[float] = field(default_factory=list)

    def mean(self) -> tuple[float, float]:
        return float(np.mean(self.psnr)), float(np.mean(self.ssim))


def evaluate(checkpoints: list[str | Path], folder: str | Path, device: str = "cpu") -> tuple[list[str], dict[str, Score]]:
    """Per-image PSNR/SSIM of each checkpoint and of bicubic upscaling, over the photos in ``folder``."""
    engines = []
    for path in checkpoints:
        loaded = load_checkpoint(path)
        if not loaded.family.task.restores:
            raise TranslatorError(f"{Path(path).name} is a {loaded.family.name} checkpoint; evaluation measures super-resolution")
        engines.append((Path(path).name, Engine(loaded, options=Options(device=device))))
    scales = {engine.scale for _, engine in engines}
    if len(scales) != 1:
        raise TranslatorError(f"the checkpoints upscale by different factors ({sorted(scales)}); compare one scale at a time")
    scale = scales.pop()
    photos = scan_images(Path(folder), Report())
    if not photos:
        raise TranslatorError(f"no images to evaluate in {folder}")
    scores = {"bicubic": Score("bicubic")} | {name: Score(name) for name, _ in engines}
    for photo in photos:
        hr = torch.from_numpy(read_image(photo).rgb).permute(2, 0, 1)[None]
        hr = hr[:, :, : hr.shape[2] // scale * scale, : hr.shape[3] // scale * scale]
        lr = degrade(hr, scale, "bicubic")
        bicubic = F.interpolate(lr, scale_factor=scale, mode="bicubic", align_corners=False).clamp(0, 1)
        _add(scores["bicubic"], bicubic, hr, scale)
        for name, engine in engines:
            sr = engine.translate(Picture(lr[0].permute(1, 2, 0).numpy()))
            _add(scores[name], torch.from_numpy(sr.rgb).permute(2, 0, 1)[None], hr, scale)
    return [p.name for p in photos], scores


def _add(score: Score, output: torch.Tensor, target: torch.Tensor, scale: int) -> None:
    score.psnr.append(psnr_y(output, target, scale))
    score.ssim.append(ssim_y(output, target, scale))


def report(names: list[str], scores: dict[str, Score]) -> str:
    """A plain-text table: one row per model, mean PSNR/SSIM and the gain over bicubic."""
    base, _ = scores["bicubic"].mean()
    width = max(len(name) for name in scores)
    lines = [f"{'model':<{width}}  PSNR-Y (dB)  SSIM-Y  vs bicubic", f"{'-' * width}  -----------  ------  ----------"]
    for name, score in scores.items():
        psnr, ssim = score.mean()
        lines.append(f"{name:<{width}}  {psnr:11.2f}  {ssim:6.4f}  {psnr - base:+9.2f} dB")
    lines.append(f"({len(names)} photos: {', '.join(names)})")
    return "\n".join(lines)
