"""Image quality measures as super-resolution papers report them: on the Y channel (BT.601,
as MATLAB's rgb2ycbcr), with ``border`` pixels cropped from each side."""

import math

import kornia.metrics
import torch

_Y = torch.tensor([65.481, 128.553, 24.966]) / 255


def y_channel(rgb: torch.Tensor) -> torch.Tensor:
    """N x 1 x H x W luma in [16/255, 235/255] of an N x 3 x H x W image in [0, 1]."""
    return (rgb * _Y.to(rgb.device).view(1, 3, 1, 1)).sum(1, keepdim=True) + 16 / 255


def _crop(x: torch.Tensor, border: int) -> torch.Tensor:
    return x[..., border:-border, border:-border] if border else x


def psnr_y(output: torch.Tensor, target: torch.Tensor, border: int = 0) -> float:
    mse = torch.mean((_crop(y_channel(output.float()), border) - _crop(y_channel(target.float()), border)) ** 2).item()
    return math.inf if mse == 0 else 10 * math.log10(1 / mse)


def bicubic(lr: torch.Tensor, scale: int) -> torch.Tensor:
    """The baseline every super-resolution score is set against: ``lr`` upscaled bicubically."""
    return torch.nn.functional.interpolate(lr, scale_factor=scale, mode="bicubic", align_corners=False).clamp(0, 1)


def ssim_y(output: torch.Tensor, target: torch.Tensor, border: int = 0) -> float:
    a, b = _crop(y_channel(output.float()), border), _crop(y_channel(target.float()), border)
    return float(kornia.metrics.ssim(a, b, window_size=11, max_val=1.0, padding="valid").mean())
