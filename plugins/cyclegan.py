"""CycleGAN (Zhu et al. 2017): unpaired translation between two image domains."""

from dataclasses import dataclass

from translator import Family, Task, hookimpl, setting

from . import gan_networks


@hookimpl
def register_families(register):
    register(CycleGAN())


@dataclass
class CycleGANSettings:
    netG: str = setting("resnet_9blocks", "generator of a new network", choices=("resnet_9blocks", "resnet_6blocks", "unet_256", "unet_128"))
    ngf: int = setting(64, "filters in the generator's first layer")
    norm: str = setting("instance", "normalisation layers of a new network", choices=("instance", "batch"))
    dropout: bool = setting(False, "dropout in the generator's residual blocks")


class CycleGAN(Family):
    name = "cyclegan"
    task = Task.UNPAIRED
    description = "unpaired image-to-image translation (horse to zebra, summer to winter, photo to painting)"
    architectures = gan_networks.GENERATORS
    input_range = (-1.0, 1.0)
    Settings = CycleGANSettings

    def recognise(self, state_dict):
        return gan_networks.recognise_generator(state_dict)

    def canonical_state_dict(self, state_dict, arch):
        return gan_networks.drop_legacy_buffers(state_dict, arch)

    def build(self, arch):
        return gan_networks.build_generator(arch)

    def architecture(self, settings):
        kind, size = settings.netG.split("_")
        depth = int(size.removesuffix("blocks")) if kind == "resnet" else {"256": 8, "128": 7}[size]
        return gan_networks.generator_architecture(kind, settings.ngf, settings.norm, settings.dropout, depth)
