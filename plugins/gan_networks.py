"""The networks of the original pix2pix/CycleGAN release, with its exact parameter names, and
the community layouts published on the Hugging Face Hub.

Module names and Sequential indices are kept as the release has them, so its published
``latest_net_G*.pth`` files load without renaming. Both the pix2pix and the CycleGAN plugins
use these (through ``GeneratorFamily``), as the original code let either family train either
generator.
"""

from __future__ import annotations

import functools

import torch
from torch import nn

from translator import Architecture, Family, TranslatorError


def norm_layer(kind: str):
    if kind == "batch":
        return functools.partial(nn.BatchNorm2d, affine=True, track_running_stats=True)
    if kind == "instance":
        return functools.partial(nn.InstanceNorm2d, affine=False, track_running_stats=False)
    raise ValueError(f"unknown norm {kind!r}")


class ResnetBlock(nn.Module):
    def __init__(self, dim: int, norm, use_dropout: bool, use_bias: bool):
        super().__init__()
        layers = [nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=use_bias), norm(dim), nn.ReLU(True)]
        if use_dropout:
            layers.append(nn.Dropout(0.5))
        layers += [nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=use_bias), norm(dim)]
        self.conv_block = nn.Sequential(*layers)

    def forward(self, x):
        return x + self.conv_block(x)


class ResnetGenerator(nn.Module):
    """Two stride-2 downsamplings, ``n_blocks`` residual blocks, two upsamplings (CycleGAN)."""

    def __init__(self, input_nc=3, output_nc=3, ngf=64, norm="instance", use_dropout=False, n_blocks=9):
        super().__init__()
        make_norm = norm_layer(norm)
        # instance norm has no affine shift, so the convs carry the bias instead
        bias = norm == "instance"
        layers = [nn.ReflectionPad2d(3), nn.Conv2d(input_nc, ngf, 7, bias=bias), make_norm(ngf), nn.ReLU(True)]
        for mult in (1, 2):
            layers += [nn.Conv2d(ngf * mult, ngf * mult * 2, 3, stride=2, padding=1, bias=bias), make_norm(ngf * mult * 2), nn.ReLU(True)]
        layers += [ResnetBlock(ngf * 4, make_norm, use_dropout, bias) for _ in range(n_blocks)]
        for mult in (4, 2):
            layers += [
                nn.ConvTranspose2d(ngf * mult, ngf * mult // 2, 3, stride=2, padding=1, output_padding=1, bias=bias),
                make_norm(ngf * mult // 2),
                nn.ReLU(True),
            ]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, output_nc, 7), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, x):
        return self.model(x)


class UnetSkipConnectionBlock(nn.Module):
    def __init__(self, outer_nc, inner_nc, input_nc=None, submodule=None, outermost=False, innermost=False, norm=None, use_dropout=False, use_bias=False):
        super().__init__()
        self.outermost = outermost
        input_nc = input_nc or outer_nc
        downconv = nn.Conv2d(input_nc, inner_nc, 4, stride=2, padding=1, bias=use_bias)
        # In place, like the original: the skip connection below therefore carries the
        # LeakyReLU-activated input, and published weights expect exactly that.
        downrelu = nn.LeakyReLU(0.2, True)
        uprelu = nn.ReLU(True)
        if outermost:
            upconv = nn.ConvTranspose2d(inner_nc * 2, outer_nc, 4, stride=2, padding=1)
            layers = [downconv, submodule, uprelu, upconv, nn.Tanh()]
        elif innermost:
            upconv = nn.ConvTranspose2d(inner_nc, outer_nc, 4, stride=2, padding=1, bias=use_bias)
            layers = [downrelu, downconv, uprelu, upconv, norm(outer_nc)]
        else:
            upconv = nn.ConvTranspose2d(inner_nc * 2, outer_nc, 4, stride=2, padding=1, bias=use_bias)
            layers = [downrelu, downconv, norm(inner_nc), submodule, uprelu, upconv, norm(outer_nc)]
            if use_dropout:
                layers.append(nn.Dropout(0.5))
        self.model = nn.Sequential(*layers)

    def forward(self, x):
        if self.outermost:
            return self.model(x)
        return torch.cat([x, self.model(x)], 1)


class UnetGenerator(nn.Module):
    """U-Net with ``num_downs`` stride-2 levels: 8 is ``unet_256``, 7 is ``unet_128`` (pix2pix)."""

    def __init__(self, input_nc=3, output_nc=3, num_downs=8, ngf=64, norm="batch", use_dropout=True):
        super().__init__()
        make_norm = norm_layer(norm)
        common = {"norm": make_norm, "use_bias": norm == "instance"}
        block = UnetSkipConnectionBlock(ngf * 8, ngf * 8, innermost=True, **common)
        for _ in range(num_downs - 5):
            block = UnetSkipConnectionBlock(ngf * 8, ngf * 8, submodule=block, use_dropout=use_dropout, **common)
        for mult in (4, 2, 1):
            block = UnetSkipConnectionBlock(ngf * mult, ngf * mult * 2, submodule=block, **common)
        self.model = UnetSkipConnectionBlock(output_nc, ngf, input_nc=input_nc, submodule=block, outermost=True, **common)

    def forward(self, x):
        return self.model(x)


class NLayerDiscriminator(nn.Module):
    """PatchGAN: a grid of real/fake scores, each seeing a 70x70 patch for ``n_layers=3``."""

    def __init__(self, input_nc=3, ndf=64, n_layers=3, norm="batch"):
        super().__init__()
        make_norm = norm_layer(norm)
        bias = norm == "instance"
        layers = [nn.Conv2d(input_nc, ndf, 4, stride=2, padding=1), nn.LeakyReLU(0.2, True)]
        mult = 1
        for n in range(1, n_layers + 1):
            previous, mult = mult, min(2**n, 8)
            stride = 2 if n < n_layers else 1
            layers += [nn.Conv2d(ndf * previous, ndf * mult, 4, stride=stride, padding=1, bias=bias), make_norm(ndf * mult), nn.LeakyReLU(0.2, True)]
        layers.append(nn.Conv2d(ndf * mult, 1, 4, stride=1, padding=1))
        self.model = nn.Sequential(*layers)

    def forward(self, x):
        return self.model(x)


def check_discriminator_input(crop_size: int, n_layers: int = 3) -> None:
    """The PatchGAN's stride-2 and 4x4 layers need at least 2**(n_layers + 2) pixels."""
    if crop_size < 2 ** (n_layers + 2):
        raise TranslatorError(f"the PatchGAN discriminator needs crop_size of at least {2 ** (n_layers + 2)}, got {crop_size}")


def init_weights(net: nn.Module, gain: float = 0.02) -> None:
    """The original release's default initialisation: N(0, 0.02) convs, N(1, 0.02) norm scales."""
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, gain)
            nn.init.zeros_(m.bias)


GENERATORS = ("resnet", "unet", "hub_resnet", "hub_unet")
LEGACY_BUFFERS = (".running_mean", ".running_var", ".num_batches_tracked")


def recognise_generator(state: dict) -> Architecture | None:
    """The generator architecture of a pix2pix/CycleGAN state dict, or None."""
    if _is_discriminator(state):
        raise TranslatorError("this is a PatchGAN discriminator; translating needs the generator file (latest_net_G*.pth)")
    return _recognise_resnet(state) or _recognise_unet(state) or _recognise_hub_resnet(state) or _recognise_hub_unet(state)


def build_generator(arch: Architecture) -> nn.Module:
    kinds = {"resnet": ResnetGenerator, "unet": UnetGenerator, "hub_resnet": HubResnetGenerator, "hub_unet": HubUnetGenerator}
    net = kinds[arch.name](**arch.params)
    init_weights(net)
    return net


def generator_architecture(kind: str, ngf: int, norm: str, use_dropout: bool, blocks_or_downs: int) -> Architecture:
    """A fresh generator's architecture from training settings."""
    if kind == "resnet":
        params = {"input_nc": 3, "output_nc": 3, "ngf": ngf, "norm": norm, "use_dropout": use_dropout, "n_blocks": blocks_or_downs}
        return Architecture("resnet", params, scale=1, multiple=4)
    params = {"input_nc": 3, "output_nc": 3, "num_downs": blocks_or_downs, "ngf": ngf, "norm": norm, "use_dropout": use_dropout}
    return Architecture("unet", params, scale=1, multiple=2**blocks_or_downs)


def canonical_generator_state(state: dict, arch: Architecture) -> dict:
    """Published files come from several PyTorch eras: those saved with PyTorch 0.3 carry running
    statistics on InstanceNorm layers (which have none today) and lack BatchNorm's
    ``num_batches_tracked`` (which PyTorch itself fills in for them)."""
    if arch.name.startswith("hub_"):
        return state  # saved by PyTorch 1.x and later, with the module names kept
    if arch.params.get("norm") == "instance":
        return {k: v for k, v in state.items() if not k.endswith(LEGACY_BUFFERS)}
    state = dict(state)
    for key in [k for k in state if k.endswith(".running_mean")]:
        state.setdefault(key.removesuffix("running_mean") + "num_batches_tracked", torch.tensor(0))
    return state


def _residual_blocks(state: dict, inner: str) -> int:
    """How many residual blocks (``model.10.{inner}...`` on) a ResNet generator's state holds
    after its 7x7 first conv; 0 when it is not that layout."""
    first = state.get("model.1.weight")
    if first is None or first.ndim != 4 or first.shape[-1] != 7:
        return 0
    count = 0
    while f"model.{10 + count}.{inner}.1.weight" in state:
        count += 1
    return count


def _recognise_resnet(state: dict) -> Architecture | None:
    n_blocks = _residual_blocks(state, "conv_block")
    if not n_blocks:
        return None
    first = state["model.1.weight"]
    last = state.get(f"model.{10 + n_blocks + 7}.weight")
    if last is None or last.ndim != 4:
        return None
    ngf, input_nc = first.shape[0], first.shape[1]
    norm = "batch" if "model.2.weight" in state else "instance"
    # with dropout the second conv moves from index 5 to 6 (with batch norm, 6 is otherwise a norm)
    second = state.get("model.10.conv_block.6.weight")
    use_dropout = second is not None and second.ndim == 4
    arch = generator_architecture("resnet", int(ngf), norm, use_dropout, n_blocks)
    arch.params.update(input_nc=int(input_nc), output_nc=int(last.shape[0]))
    arch.channels = (int(input_nc), int(last.shape[0]))
    return arch


def _recognise_unet(state: dict) -> Architecture | None:
    first, last = state.get("model.model.0.weight"), state.get("model.model.3.weight")
    if first is None or last is None or first.ndim != 4 or last.ndim != 4:
        return None
    num_downs, seq = 1, "model.model.1.model"
    while f"{seq}.1.weight" in state:
        num_downs += 1
        inner = f"{seq}.3.model."
        if not any(k.startswith(inner) for k in state):
            break
        seq = inner[:-1]
    if num_downs < 5:
        return None
    norm = "batch" if "model.model.1.model.2.weight" in state else "instance"
    arch = generator_architecture("unet", int(first.shape[0]), norm, True, num_downs)
    arch.params.update(input_nc=int(first.shape[1]), output_nc=int(last.shape[1]))
    arch.channels = (int(first.shape[1]), int(last.shape[1]))
    # Dropout leaves no trace in the weights: the generator's default (on, as pix2pix trains)
    # applies unless the project's own checkpoint recorded otherwise. It only acts in the
    # paper's train-mode sampling.
    del arch.params["use_dropout"]
    return arch


def _is_discriminator(state: dict) -> bool:
    first = state.get("model.0.weight")
    return first is not None and first.ndim == 4 and first.shape[-1] == 4 and not any(k.startswith("model.1.") for k in state)


# ---- generators the Hugging Face community publishes (the HugGAN sprint's, and re-implementations') ----


class HubUnetGenerator(nn.Module):
    """The HugGAN sprint's pix2pix U-Net (after PyTorch-GAN): blocks ``down1``..``down8`` and
    ``up1``..``up7`` each holding a Sequential ``model``, instance norm without parameters (none
    on ``down1``, ``down8``), dropout in the inner blocks, and a ``final`` nearest upsampling,
    zero pad and 4x4 conv instead of a transposed conv."""

    DOWN = (1, 2, 4, 8, 8, 8, 8, 8)

    def __init__(self, in_ch=3, out_ch=3, ngf=64):
        super().__init__()
        widths = [ngf * m for m in self.DOWN]
        for k, (before, after) in enumerate(zip([in_ch] + widths[:-1], widths), start=1):
            layers = [nn.Conv2d(before, after, 4, stride=2, padding=1, bias=False)]
            if k not in (1, 8):
                layers.append(nn.InstanceNorm2d(after))
            layers.append(nn.LeakyReLU(0.2))
            if k >= 4:
                layers.append(nn.Dropout(0.5))
            setattr(self, f"down{k}", _Block(*layers))
        # up k takes the previous output (with its skip, from up2 on) and mirrors down 8-k
        for k in range(1, 8):
            before = widths[7] if k == 1 else 2 * widths[8 - k]
            after = widths[7 - k]
            layers = [nn.ConvTranspose2d(before, after, 4, stride=2, padding=1, bias=False), nn.InstanceNorm2d(after), nn.ReLU(True)]
            if k <= 4:
                layers.append(nn.Dropout(0.5))
            setattr(self, f"up{k}", _Block(*layers))
        self.final = nn.Sequential(nn.Upsample(scale_factor=2), nn.ZeroPad2d((1, 0, 1, 0)), nn.Conv2d(2 * widths[0], out_ch, 4, padding=1), nn.Tanh())

    def forward(self, x):
        downs = []
        for k in range(1, 9):
            x = getattr(self, f"down{k}")(x)
            downs.append(x)
        for k in range(1, 8):
            x = torch.cat([getattr(self, f"up{k}")(x), downs[7 - k]], 1)
        return self.final(x)


class _Block(nn.Module):
    def __init__(self, *layers):
        super().__init__()
        self.model = nn.Sequential(*layers)

    def forward(self, x):
        return self.model(x)


class _Residual(nn.Module):
    def __init__(self, dim: int, affine: bool):
        super().__init__()
        self.block = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3), nn.InstanceNorm2d(dim, affine=affine), nn.ReLU(True),
            nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3), nn.InstanceNorm2d(dim, affine=affine),
        )

    def forward(self, x):
        return x + self.block(x)


class HubResnetGenerator(nn.Module):
    """The CycleGAN ResNet as the HugGAN sprint and many re-implementations publish it: one
    Sequential ``model`` with biased convs and residual Sequentials named ``block``; the up path
    is nearest upsampling and a 3x3 conv (``upsample="nearest"``, HugGAN) or a transposed conv
    (``"transpose"``), and instance norm has a learnt scale and shift where ``affine``."""

    def __init__(self, in_ch=3, out_ch=3, ngf=64, n_blocks=9, affine=False, upsample="nearest"):
        super().__init__()

        def norm(width):
            return nn.InstanceNorm2d(width, affine=affine)

        layers = [nn.ReflectionPad2d(in_ch), nn.Conv2d(in_ch, ngf, 7), norm(ngf), nn.ReLU(True)]
        for mult in (1, 2):
            layers += [nn.Conv2d(ngf * mult, ngf * mult * 2, 3, stride=2, padding=1), norm(ngf * mult * 2), nn.ReLU(True)]
        layers += [_Residual(ngf * 4, affine) for _ in range(n_blocks)]
        for mult in (4, 2):
            if upsample == "nearest":
                layers += [nn.Upsample(scale_factor=2), nn.Conv2d(ngf * mult, ngf * mult // 2, 3, stride=1, padding=1)]
            else:
                layers += [nn.ConvTranspose2d(ngf * mult, ngf * mult // 2, 3, stride=2, padding=1, output_padding=1)]
            layers += [norm(ngf * mult // 2), nn.ReLU(True)]
        layers += [nn.ReflectionPad2d(out_ch), nn.Conv2d(ngf, out_ch, 7), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, x):
        return self.model(x)


def _recognise_hub_unet(state: dict) -> Architecture | None:
    first, last = state.get("down1.model.0.weight"), state.get("final.2.weight")
    if first is None or last is None or first.ndim != 4 or "up7.model.0.weight" not in state:
        return None
    in_ch, out_ch, ngf = int(first.shape[1]), int(last.shape[0]), int(first.shape[0])
    return Architecture("hub_unet", {"in_ch": in_ch, "out_ch": out_ch, "ngf": ngf}, scale=1, multiple=256, channels=(in_ch, out_ch))


def _recognise_hub_resnet(state: dict) -> Architecture | None:
    n_blocks = _residual_blocks(state, "block")
    if not n_blocks:
        return None
    first = state["model.1.weight"]
    # a transposed conv sits right after the blocks; nearest upsampling has no weights there
    upsample = "transpose" if f"model.{10 + n_blocks}.weight" in state else "nearest"
    last_index = 10 + n_blocks + (7 if upsample == "transpose" else 9)
    last = state.get(f"model.{last_index}.weight")
    if last is None or last.ndim != 4:
        return None
    in_ch, out_ch = int(first.shape[1]), int(last.shape[0])
    params = {"in_ch": in_ch, "out_ch": out_ch, "ngf": int(first.shape[0]), "n_blocks": n_blocks, "affine": "model.2.weight" in state, "upsample": upsample}
    return Architecture("hub_resnet", params, scale=1, multiple=4, channels=(in_ch, out_ch))


class GeneratorFamily(Family):
    """What pix2pix and CycleGAN share: the original release's generators and the Hub's
    community layouts, read, built and described the same way. Each family is its own
    subclass; neither is the other, so neither inherits the other's task or training."""

    architectures = GENERATORS
    input_range = (-1.0, 1.0)

    def recognise(self, state_dict):
        return recognise_generator(state_dict)

    def canonical_state_dict(self, state_dict, arch):
        return canonical_generator_state(state_dict, arch)

    def build(self, arch):
        return build_generator(arch)

    def architecture(self, settings):
        kind, size = settings.netG.split("_")
        depth = int(size.removesuffix("blocks")) if kind == "resnet" else {"256": 8, "128": 7}[size]
        return generator_architecture(kind, settings.ngf, settings.norm, settings.dropout, depth)
