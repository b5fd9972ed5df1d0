"""ESPCN (Shi et al. 2016, "Real-Time Single Image and Video Super-Resolution Using an
Efficient Sub-Pixel Convolutional Neural Network") as an image-translator plugin.

Everything a family needs is here and nothing in the core changes: install this package
and ``translator models`` lists it, ``translator translate --model espcn`` runs it.
"""

import math
from dataclasses import dataclass

from torch import nn

from translator import Architecture, Family, Task, hookimpl, setting


@hookimpl
def register_families(register):
    register(ESPCNFamily())


@dataclass
class ESPCNSettings:
    scale: int = setting(3, "upscaling factor of a new model", choices=(2, 3, 4))


class ESPCN(nn.Module):
    def __init__(self, channels=3, scale=3):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, 64, 5, padding=2)
        self.conv2 = nn.Conv2d(64, 32, 3, padding=1)
        self.conv3 = nn.Conv2d(32, channels * scale**2, 3, padding=1)
        self.shuffle = nn.PixelShuffle(scale)

    def forward(self, x):
        x = self.conv2(self.conv1(x).tanh()).tanh()
        return self.shuffle(self.conv3(x))


class ESPCNFamily(Family):
    name = "espcn"
    task = Task.SUPER_RESOLUTION
    description = "ESPCN: a tiny sub-pixel convolution super-resolution network"
    architectures = ("espcn",)
    input_range = (0.0, 1.0)
    Settings = ESPCNSettings

    def recognise(self, state_dict):
        if set(state_dict) != {f"conv{i}.{p}" for i in (1, 2, 3) for p in ("weight", "bias")}:
            return None
        channels = state_dict["conv1.weight"].shape[1]
        scale = math.isqrt(state_dict["conv3.weight"].shape[0] // channels)
        if scale**2 * channels != state_dict["conv3.weight"].shape[0]:
            return None
        return Architecture("espcn", {"channels": int(channels), "scale": scale}, scale=scale)

    def build(self, arch):
        return ESPCN(**arch.params)

    def architecture(self, settings):
        return Architecture("espcn", {"channels": 3, "scale": settings.scale}, scale=settings.scale)
