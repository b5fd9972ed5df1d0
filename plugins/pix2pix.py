"""pix2pix (Isola et al. 2017): translation learned from aligned image pairs."""

from dataclasses import dataclass

from torch import nn

from translator import Family, Task, hookimpl, setting

from . import gan_networks
from .cyclegan import CycleGAN


@hookimpl
def register_families(register):
    register(Pix2Pix())


@dataclass
class Pix2PixSettings:
    sampling: str = setting(
        "eval",
        "eval: deterministic output; train: the paper's test-time sampling (dropout on, batch statistics)",
        choices=("eval", "train"),
    )
    netG: str = setting("unet_256", "generator of a new network", choices=("unet_256", "unet_128", "resnet_9blocks", "resnet_6blocks"))
    ngf: int = setting(64, "filters in the generator's first layer")
    norm: str = setting("batch", "normalisation layers of a new network", choices=("batch", "instance"))
    dropout: bool = setting(True, "dropout in the generator (the paper's noise source)")


class Pix2Pix(CycleGAN):
    # Same generators as CycleGAN (the original code shares them); what differs is the task,
    # the defaults and the sampling mode.
    name = "pix2pix"
    task = Task.PAIRED
    description = "paired image-to-image translation (edges to photo, map to aerial, day to night)"
    Settings = Pix2PixSettings

    def prepare(self, module, settings):
        module.eval()
        if settings.sampling == "train":
            for layer in module.modules():
                if isinstance(layer, (nn.Dropout, nn.BatchNorm2d)):
                    layer.train()
                if isinstance(layer, nn.BatchNorm2d):
                    # batch statistics are used, but the stored running ones must not drift
                    layer.momentum = 0.0
