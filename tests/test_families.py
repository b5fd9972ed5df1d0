"""Run over every registered family (timm-style): a family added later is checked the day it lands.

For each family and each of its architectures reachable from its settings: build a network,
save it in the project's format, load it back, and get the same output; and ``recognise``
must read back exactly the architecture ``build`` was given.
"""

import dataclasses

import pytest
import torch

from translator.checkpoints import load_checkpoint, save_checkpoint
from translator.family import make_settings
from translator.plugins import registry

# Smaller-than-default settings keep the suite fast; each family's defaults are built below too.
VARIANTS = {
    "esrgan": [{"arch": "rrdbnet", "nf": "8", "nb": "2", "gc": "4", "scale": s} for s in ("1", "2", "4")] + [{"arch": "srvgg", "nf": "8", "num_conv": "3", "scale": "2"}],
    "pix2pix": [{"ngf": "8", "netG": "unet_128"}, {"ngf": "8", "netG": "resnet_6blocks", "norm": "instance", "dropout": "false"}],
    "cyclegan": [{"ngf": "8"}, {"ngf": "8", "netG": "unet_256", "norm": "batch"}],
}


def cases():
    for name, family in registry().families.items():
        # the full-size defaults take seconds each (pix2pix's U-Net is 54M parameters); the small
        # variants below go through the same code in the fast tier
        yield pytest.param(name, {}, id=f"{name}-defaults", marks=pytest.mark.slow)
        for i, overrides in enumerate(VARIANTS.get(name, [])):
            yield pytest.param(name, overrides, id=f"{name}-{i}")


@pytest.mark.parametrize("name, overrides", list(cases()))
def test_build_save_load_roundtrip(tmp_path, name, overrides):
    family = registry().family(name)
    arch = family.architecture(make_settings(family.Settings, overrides, name))
    net = family.build(arch).eval()
    recognised = family.recognise(net.state_dict())
    assert recognised is not None
    assert (recognised.name, recognised.scale, recognised.multiple) == (arch.name, arch.scale, arch.multiple)
    # the weights may leave out what they cannot show, but never disagree
    assert recognised.params.items() <= arch.params.items()

    path = save_checkpoint(tmp_path / f"{name}.safetensors", family, arch, net.state_dict())
    loaded = load_checkpoint(path)
    assert loaded.family is family and loaded.arch == arch
    low, high = family.input_range
    size = max(arch.multiple, 8)
    x = torch.rand(1, 3, size, size) * (high - low) + low
    with torch.no_grad():
        assert torch.equal(loaded.module.eval()(x), net(x))
    assert loaded.module(x).shape[-1] == size * arch.scale


def test_every_family_declares_what_the_core_needs():
    for family in registry().families.values():
        assert family.name and family.description and family.architectures
        assert family.input_range[0] < family.input_range[1]
        for field in dataclasses.fields(family.Settings):
            assert field.metadata.get("help"), f"{family.name}.{field.name} has no help text"


def test_no_family_is_another():
    # a family that inherits another's class inherits its task and training by accident
    # (pix2pix once did CycleGAN's); shared parts belong in a base that is no family
    families = list(registry().families.values())
    for family in families:
        for other in families:
            assert other is family or not isinstance(family, type(other)), f"{family.name} is a {other.name}"
