"""Quality of checkpoints on held-out images, as papers report it.

Super-resolution: each high-resolution photo is cropped to a multiple of the scale and
downscaled (antialiased bicubic, the degradation the classic benchmarks use; or damaged the
Real-ESRGAN way, as photos from phones and the web are); the checkpoint's
upscale and plain bicubic upscaling are then compared with the original on the Y channel, with
``scale`` pixels cropped from each border.

Translation (pix2pix, CycleGAN): the images of ``A/`` (or ``testA/``) are translated and the
set of outputs is compared with the real images of ``B/`` (or ``testB/``) by FID and KID; the
untranslated inputs are measured the same way, as the baseline a model has to beat.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .augment import degrade
from .checkpoints import load_checkpoint
from .data import Report, scan_images
from .errors import TranslatorError
from .images import Picture, read_image
from .inference import Engine, Options
from . import metrics
from .metrics import psnr_y, ssim_y


@dataclass
class Score:
    name: str
    psnr: list[float] = field(default_factory=list)
    ssim: list[float] = field(default_factory=list)

    def mean(self) -> tuple[float, float]:
        return float(np.mean(self.psnr)), float(np.mean(self.ssim))

    def as_dict(self) -> dict:
        psnr, ssim = self.mean()
        return {"psnr": self.psnr, "ssim": self.ssim, "mean_psnr": psnr, "mean_ssim": ssim}


@dataclass
class SetScore:
    """How close a set of images is to the real target images (lower is closer)."""

    name: str
    fid: float
    kid: float

    def as_dict(self) -> dict:
        return {"fid": self.fid, "kid": self.kid}


def evaluate(
    checkpoints: list[str | Path], folder: str | Path, device: str = "cpu", degradation: str = "bicubic", precision: str = "auto",
) -> tuple[list[str], dict[str, Score | SetScore]]:
    """Per-image PSNR/SSIM of each super-resolution checkpoint and of bicubic upscaling over the
    photos in ``folder``; or FID/KID of translation checkpoints and of their untranslated inputs.

    ``degradation`` "realesrgan" damages each low-resolution input as real photos are (blur,
    resize, noise, JPEG), drawn from a seed fixed per photo, so every run and model sees the
    same inputs; scores are still against the clean original. ``precision`` is the engine's: "auto"
    scores what a translation gives on this machine (on the CPU, int8 or bf16 where the gate lets
    it), "fp32" the network itself."""
    if degradation not in ("bicubic", "realesrgan"):
        raise TranslatorError(f"unknown degradation {degradation!r} (bicubic or realesrgan)")
    engines = []
    for path in checkpoints:
        loaded = load_checkpoint(path)
        engines.append((Path(path).name, Engine(loaded, options=Options(device=device, precision=precision))))
    restores = {engine.family.task.restores for _, engine in engines}
    if len(restores) != 1:
        raise TranslatorError("the checkpoints do different things (super-resolution and translation); evaluate one kind at a time")
    if not restores.pop():
        return _translation(engines, Path(folder))
    scales = {engine.scale for _, engine in engines}
    if len(scales) != 1:
        raise TranslatorError(f"the checkpoints upscale by different factors ({sorted(scales)}); compare one scale at a time")
    scale = scales.pop()
    photos = scan_images(Path(folder), Report())
    if not photos:
        raise TranslatorError(f"no images to evaluate in {folder}")
    scores = {"bicubic": Score("bicubic")} | {name: Score(name) for name, _ in engines}
    for index, photo in enumerate(photos):
        hr = torch.from_numpy(read_image(photo).rgb).permute(2, 0, 1)[None]
        hr = hr[:, :, : hr.shape[2] // scale * scale, : hr.shape[3] // scale * scale]
        with torch.random.fork_rng():
            torch.manual_seed(index)
            lr = degrade(hr, scale, degradation)
        _add(scores["bicubic"], metrics.bicubic(lr, scale), hr, scale)
        for name, engine in engines:
            sr = engine.translate(Picture(lr[0].permute(1, 2, 0).numpy()))
            _add(scores[name], torch.from_numpy(sr.rgb).permute(2, 0, 1)[None], hr, scale)
    return [p.name for p in photos], scores


def _add(score: Score, output: torch.Tensor, target: torch.Tensor, scale: int) -> None:
    score.psnr.append(psnr_y(output, target, scale))
    score.ssim.append(ssim_y(output, target, scale))


def _translation(engines: list[tuple[str, Engine]], folder: Path) -> tuple[list[str], dict[str, SetScore]]:
    from .fid import Distances, feature_network

    sides = next(((folder / a, folder / b) for a, b in (("A", "B"), ("testA", "testB")) if (folder / a).is_dir() and (folder / b).is_dir()), None)
    if sides is None:
        raise TranslatorError(f"{folder}: translation checkpoints are measured on held-out A/ and B/ folders (or testA/ and testB/): inputs, and real images of the target domain")
    inputs, targets = (scan_images(side, Report()) for side in sides)
    if len(inputs) < 2 or len(targets) < 2:
        raise TranslatorError(f"{folder}: FID and KID need at least two images on each side (found {len(inputs)} and {len(targets)})")
    baseline = Distances(feature_network(engines[0][1].device))
    for path in targets:
        baseline.add(real=_tensor(read_image(path)))
    sets = {"inputs": baseline} | {name: baseline.same_real() for name, _ in engines}
    for path in inputs:
        picture = read_image(path)
        sets["inputs"].add(generated=_tensor(picture))
        for name, engine in engines:
            sets[name].add(generated=_tensor(engine.translate(picture)))
    return [p.name for p in inputs], {name: SetScore(name, **distances.result()) for name, distances in sets.items()}


def _tensor(picture: Picture) -> torch.Tensor:
    return torch.from_numpy(picture.rgb).permute(2, 0, 1)[None]


def report(names: list[str], scores: dict[str, Score | SetScore]) -> str:
    """A plain-text table: one row per model, mean PSNR/SSIM and the gain over bicubic; or FID
    and KID, with the untranslated inputs as the baseline."""
    if isinstance(next(iter(scores.values())), SetScore):
        return _set_report(names, scores)
    base, _ = scores["bicubic"].mean()
    width = max(len(name) for name in scores)
    lines = [f"{'model':<{width}}  PSNR-Y (dB)  SSIM-Y  vs bicubic", f"{'-' * width}  -----------  ------  ----------"]
    for name, score in scores.items():
        psnr, ssim = score.mean()
        lines.append(f"{name:<{width}}  {psnr:11.2f}  {ssim:6.4f}  {psnr - base:+9.2f} dB")
    lines.append(f"({len(names)} photos: {', '.join(names)})")
    return "\n".join(lines)


def _set_report(names: list[str], scores: dict[str, SetScore]) -> str:
    width = max(len(name) for name in scores)
    lines = [f"{'model':<{width}}  {'FID':>9}  {'KID':>9}  FID vs inputs", f"{'-' * width}  ---------  ---------  -------------"]
    base = scores["inputs"].fid
    for name, score in scores.items():
        lines.append(f"{name:<{width}}  {score.fid:9.2f}  {score.kid:9.5f}  {score.fid - base:+13.2f}")
    lines.append(f"({len(names)} inputs translated; lower is closer to the real target images)")
    return "\n".join(lines)
