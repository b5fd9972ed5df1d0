"""ESRGAN-family super-resolution: RRDBNet (ESRGAN, Real-ESRGAN) and Real-ESRGAN's compact SRVGGNet."""

from dataclasses import dataclass

from translator import Architecture, Family, Task, hookimpl, setting

from . import sr_networks


@hookimpl
def register_families(register):
    register(ESRGAN())


@dataclass
class ESRGANSettings:
    arch: str = setting("rrdbnet", "network of a new model: rrdbnet (ESRGAN) or srvgg (compact)", choices=("rrdbnet", "srvgg"))
    scale: int = setting(4, "upscaling factor of a new model", choices=(1, 2, 4))
    nf: int = setting(64, "feature channels")
    nb: int = setting(23, "RRDB blocks (rrdbnet)")
    gc: int = setting(32, "growth channels of the dense blocks (rrdbnet)")
    num_conv: int = setting(32, "body convolutions (srvgg)")


class ESRGAN(Family):
    name = "esrgan"
    task = Task.SUPER_RESOLUTION
    description = "photo and anime super-resolution (ESRGAN, Real-ESRGAN, realesr-general/animevideo compact models)"
    architectures = ("rrdbnet", "srvgg")
    input_range = (0.0, 1.0)
    Settings = ESRGANSettings

    def recognise(self, state_dict):
        return sr_networks.recognise_rrdbnet(state_dict) or sr_networks.recognise_srvgg(state_dict)

    def canonical_state_dict(self, state_dict, arch):
        return sr_networks.basicsr_keys(state_dict) if arch.name == "rrdbnet" else state_dict

    def build(self, arch):
        if arch.name == "rrdbnet":
            return sr_networks.RRDBNet(**arch.params)
        return sr_networks.SRVGGNetCompact(**arch.params)

    def architecture(self, settings):
        s = settings
        if s.arch == "srvgg":
            params = {"in_ch": 3, "out_ch": 3, "nf": s.nf, "num_conv": s.num_conv, "upscale": s.scale}
            return Architecture("srvgg", params, scale=s.scale)
        # x2 and x1 fold pixels into channels and keep the two x2 upsampling stages
        unshuffle = 4 // s.scale
        params = {"in_ch": 3, "out_ch": 3, "nf": s.nf, "nb": s.nb, "gc": s.gc, "unshuffle": unshuffle, "upsamples": 2}
        return Architecture("rrdbnet", params, scale=s.scale, multiple=unshuffle)
