"""ESRGAN-family super-resolution networks, with BasicSR / Real-ESRGAN parameter names.

The BasicSR names are the canonical layout; the two older ESRGAN key styles are renamed to
them on load (see ``basicsr_keys``).

spandrel reads these two networks too, and gives the same outputs (tests/test_spandrel.py), but
they stay written here for training: what this project trains and ships keeps the BasicSR key
names, which Real-ESRGAN's and BasicSR's own scripts load (spandrel's RRDBNet writes the old
ESRGAN names they do not read), and RRDBNet here makes x2 and x1 models by pixel-unshuffle as
Real-ESRGAN does. Every other upscaler is spandrel's (spandrel_networks.py).
"""

from __future__ import annotations

import math
import re

import torch
import torch.nn.functional as F
from torch import nn

from translator import Architecture


class DenseBlock(nn.Module):
    """Five 3x3 convs, each seeing the block input and every earlier output (growth ``gc``)."""

    def __init__(self, nf: int, gc: int):
        super().__init__()
        for k in range(5):
            out = nf if k == 4 else gc
            setattr(self, f"conv{k + 1}", nn.Conv2d(nf + k * gc, out, 3, padding=1))
        self.lrelu = nn.LeakyReLU(0.2, inplace=True)

    def forward(self, x):
        features = [x]
        for k in range(1, 5):
            features.append(self.lrelu(getattr(self, f"conv{k}")(torch.cat(features, 1))))
        return self.conv5(torch.cat(features, 1)) * 0.2 + x


class RRDB(nn.Module):
    def __init__(self, nf: int, gc: int):
        super().__init__()
        self.rdb1, self.rdb2, self.rdb3 = DenseBlock(nf, gc), DenseBlock(nf, gc), DenseBlock(nf, gc)

    def forward(self, x):
        return self.rdb3(self.rdb2(self.rdb1(x))) * 0.2 + x


class RRDBNet(nn.Module):
    """ESRGAN's generator. ``unshuffle`` folds 2x2 (4x4) pixel blocks into channels first, which
    is how Real-ESRGAN makes its x2 (x1) models from the same two x2 upsampling stages."""

    def __init__(self, in_ch=3, out_ch=3, nf=64, nb=23, gc=32, unshuffle=1, upsamples=2):
        super().__init__()
        self.unshuffle = unshuffle
        self.upsamples = upsamples
        self.conv_first = nn.Conv2d(in_ch * unshuffle**2, nf, 3, padding=1)
        self.body = nn.Sequential(*[RRDB(nf, gc) for _ in range(nb)])
        self.conv_body = nn.Conv2d(nf, nf, 3, padding=1)
        for n in range(1, upsamples + 1):
            setattr(self, f"conv_up{n}", nn.Conv2d(nf, nf, 3, padding=1))
        self.conv_hr = nn.Conv2d(nf, nf, 3, padding=1)
        self.conv_last = nn.Conv2d(nf, out_ch, 3, padding=1)
        self.lrelu = nn.LeakyReLU(0.2, inplace=True)

    def forward(self, x):
        if self.unshuffle > 1:
            x = F.pixel_unshuffle(x, self.unshuffle)
        feat = self.conv_first(x)
        feat = feat + self.conv_body(self.body(feat))
        for n in range(1, self.upsamples + 1):
            up = getattr(self, f"conv_up{n}")
            feat = self.lrelu(up(F.interpolate(feat, scale_factor=2, mode="nearest")))
        return self.conv_last(self.lrelu(self.conv_hr(feat)))


class SRVGGNetCompact(nn.Module):
    """Real-ESRGAN's compact model: plain conv+PReLU stack at low resolution, a pixel shuffle,
    and the nearest-upsampled input added back, so the body only learns the residual."""

    def __init__(self, in_ch=3, out_ch=3, nf=64, num_conv=16, upscale=4):
        super().__init__()
        self.upscale = upscale
        layers = [nn.Conv2d(in_ch, nf, 3, padding=1), nn.PReLU(nf)]
        for _ in range(num_conv):
            layers += [nn.Conv2d(nf, nf, 3, padding=1), nn.PReLU(nf)]
        layers.append(nn.Conv2d(nf, out_ch * upscale**2, 3, padding=1))
        self.body = nn.ModuleList(layers)
        self.upsampler = nn.PixelShuffle(upscale)

    def forward(self, x):
        out = x
        for layer in self.body:
            out = layer(out)
        return self.upsampler(out) + F.interpolate(x, scale_factor=self.upscale, mode="nearest")


# Above BLOCKY, a picture shows JPEG's 8x8 blocks: just above every clean photo. On the 32 training
# photos downscaled x4, clean ones scored -0.12 to -0.01; saved as JPEG at quality 90, -0.11 to
# 0.32 (median 0.09); at quality 75, -0.02 to 0.61 (median 0.22). A hard edge that happens to
# lie on the grid barely moves the score: it counts every block edge once. Between 0 (no sign of
# blocks either way) and BLOCKY, the sign is faint, and the two networks' results are averaged:
# on the training photos that band raised the Real-ESRGAN-damaged set's mean from +1.14 to
# +1.18 dB over bicubic, and a wider one (to 0.04) gained no more there (BENCHMARKS.md).
FAINT = 0.0
BLOCKY = 0.02


def jpeg_blockiness(x: torch.Tensor) -> float:
    """Of the block edges of the 8-pixel grid JPEG compresses in, the share where the luma of
    ``x`` (N x 3 x H x W) steps more across the edge than beside it, less the share where it
    steps less: about 0 for a picture without blocks, up to 1 the more they show."""
    y = torch.einsum("nchw,c->nhw", x[:, :3].float(), torch.tensor([0.299, 0.587, 0.114], device=x.device))
    scores = []
    for steps in ((y[:, :, 1:] - y[:, :, :-1]).abs(), (y[:, 1:] - y[:, :-1]).abs().transpose(1, 2)):
        # steps[..., k] is between pixels k and k + 1: across a block edge where k % 8 == 7
        edges = (steps.shape[-1] - 1) // 8
        if edges < 1:
            continue
        across = steps[..., 7 : 8 * edges : 8]
        beside = (steps[..., 6 : 8 * edges : 8] + steps[..., 8 : 8 * edges + 1 : 8]) / 2
        scores.append(torch.sign(across - beside).mean())
    return float(sum(scores) / len(scores)) if scores else 0.0


class Halves(nn.Module):
    """The mean of two networks' results, for a picture neither suits alone. The engine runs
    each of its ``parts`` as it runs that network alone (in int8 where that one passed int8's
    gate); run as one network, each is clipped likewise."""

    def __init__(self, first: nn.Module, second: nn.Module):
        super().__init__()
        self.first, self.second = first, second

    def parts(self) -> tuple[nn.Module, nn.Module]:
        return self.first, self.second

    def forward(self, x):
        # each clipped as its own result would be, so the mean lies between the two results
        return (self.first(x).clamp(0, 1) + self.second(x).clamp(0, 1)) / 2


class Mirrored(nn.Module):
    """The mean of a network's results on a picture and on its three mirror images, each turned
    back (a self-ensemble): four runs for one result. The default x4's restorer gains 0.04 dB on
    Real-ESRGAN-damaged held-out photos with it (+1.02 over bicubic against +0.98), at 4x its
    time, which a damaged picture is worth: 6.3 s for a 1000 x 1000 photo x4 on two cores
    (BENCHMARKS.md). Mirrors only, no transposes: a tile keeps its shape."""

    FLIPS = ((), (3,), (2,), (2, 3))

    def __init__(self, network: nn.Module):
        super().__init__()
        # what the engine runs in the network's own precision (its int8 form, say), mirrored
        self.ensemble_of = network

    def forward(self, x):
        return self.around(self.ensemble_of)(x)

    def around(self, run):
        """``run`` (the network, or a form of it in another precision) mirrored, as one call."""

        def mirrored(x):
            total = None
            for dims in self.FLIPS:
                # each clipped as its own result would be, as Halves does
                y = (run(x.flip(dims)).flip(dims) if dims else run(x)).clamp(0, 1)
                total = y if total is None else total + y
            return total / len(self.FLIPS)

        return mirrored


class SRVGGPair(nn.Module):
    """Two compact networks of one size, each picture upscaled by one: ``restore``, trained on
    damaged inputs, for pictures that show JPEG's blocks (it smooths blocks and noise), and
    ``sharpen``, trained on clean downscales, for the rest (it keeps fine texture that the
    restorer flattens); a picture with faint blocks gets the mean of both. Noise alone does not
    pick the restorer: told apart from fine texture in a downscaled photo by a blind estimate, it
    sent textured clean photos to the restorer, which flattens them. A picture the restorer
    takes goes through it mirrored too (``Mirrored``). Run as a single network (exported,
    timed), it is its restorer."""

    CHOICES = ("auto", "always", "never")

    def __init__(self, **params):
        super().__init__()
        self.restore, self.sharpen = SRVGGNetCompact(**params), SRVGGNetCompact(**params)
        self.choice = "auto"
        # kept out of the module tree (a plain list), so their weights are not saved twice
        self._restoring = [Mirrored(self.restore)]
        self._halves = [Halves(self._restoring[0], self.sharpen)]

    def forward(self, x):
        return self.restore(x)

    def branches(self) -> tuple[nn.Module, ...]:
        return self.restore, self.sharpen

    def branch_for(self, x: torch.Tensor) -> tuple[nn.Module, str]:
        """The network for the whole picture ``x`` (chosen once, before it is cut into tiles),
        and the choice in words."""
        if self.choice == "auto":
            blockiness = jpeg_blockiness(x)
            if blockiness > BLOCKY:
                return self._restoring[0], "restored: it shows JPEG blocks"
            if blockiness > FAINT:
                return self._halves[0], "half restored, half sharpened: faint JPEG blocks"
            return self.sharpen, "sharpened: no JPEG blocks"
        return (self._restoring[0], "restored, as asked") if self.choice == "always" else (self.sharpen, "sharpened, as asked")


# ---- recognising published layouts ----

_NEW_ARCH = [
    (re.compile(r"^RRDB_trunk\.(\d+)\.RDB(\d)\.conv(\d)\."), r"body.\1.rdb\2.conv\3."),
    (re.compile(r"^trunk_conv\."), "conv_body."),
    (re.compile(r"^upconv(\d)\."), r"conv_up\1."),
    (re.compile(r"^HRconv\."), "conv_hr."),
]
_OLD_BLOCK = re.compile(r"^model\.1\.sub\.(\d+)\.RDB(\d)\.conv(\d)\.0\.")
_OLD_TOP = re.compile(r"^model\.(\d+)\.(weight|bias)$")


def basicsr_keys(state: dict) -> dict | None:
    """``state`` renamed to the BasicSR layout, or None when it is no RRDBNet."""
    if "body.0.rdb1.conv1.weight" in state and "conv_first.weight" in state:
        return state
    if "RRDB_trunk.0.RDB1.conv1.weight" in state:
        renamed = {}
        for key, value in state.items():
            for pattern, replacement in _NEW_ARCH:
                key = pattern.sub(replacement, key)
            renamed[key] = value
        return renamed
    if "model.1.sub.0.RDB1.conv1.0.weight" in state:
        return _rename_old_arch(state)
    return None


def _rename_old_arch(state: dict) -> dict | None:
    # model.0 first conv; model.1.sub the trunk; then one conv per x2 upsampling stage,
    # the HR conv and the last conv, at indices that depend on the number of stages.
    trunk = max(int(m.group(1)) for k in state if (m := _OLD_BLOCK.match(k))) + 1
    top = sorted({int(m.group(1)) for k in state if (m := _OLD_TOP.match(k))} - {0})
    if "model.0.weight" not in state or len(top) < 3:
        return None
    *ups, hr, last = top
    names = {0: "conv_first", hr: "conv_hr", last: "conv_last"}
    names.update({index: f"conv_up{n}" for n, index in enumerate(ups, 1)})
    renamed = {}
    for key, value in state.items():
        if m := _OLD_BLOCK.match(key):
            key = f"body.{m.group(1)}.rdb{m.group(2)}.conv{m.group(3)}." + key[m.end():]
        elif key.startswith(f"model.1.sub.{trunk}."):
            key = "conv_body." + key[len(f"model.1.sub.{trunk}."):]
        elif m := _OLD_TOP.match(key):
            key = f"{names[int(m.group(1))]}.{m.group(2)}"
        renamed[key] = value
    return renamed


def recognise_rrdbnet(state: dict) -> Architecture | None:
    state = basicsr_keys(state)
    needed = ("conv_first.weight", "conv_last.weight", "body.0.rdb1.conv1.weight")
    if state is None or any(state.get(k) is None or state[k].ndim != 4 for k in needed):
        return None
    first, last = state["conv_first.weight"], state["conv_last.weight"]
    out_ch = int(last.shape[0])
    unshuffle = math.isqrt(first.shape[1] // out_ch)
    upsamples = sum(1 for k in state if re.fullmatch(r"conv_up\d+\.weight", k))
    nb = 1 + max(int(k.split(".")[1]) for k in state if k.startswith("body."))
    if unshuffle**2 * out_ch != first.shape[1] or 2**upsamples % unshuffle:
        return None
    # a weight and a bias per convolution: any other key is a variant this network is not
    # (MM-RealSR's modulation, ESRGAN+'s noise), which spandrel reads instead
    if len(state) != 2 * (4 + 15 * nb + upsamples):
        return None
    params = {
        "in_ch": out_ch,
        "out_ch": out_ch,
        "nf": int(first.shape[0]),
        "nb": nb,
        "gc": int(state["body.0.rdb1.conv1.weight"].shape[0]),
        "unshuffle": unshuffle,
        "upsamples": upsamples,
    }
    return Architecture("rrdbnet", params, scale=2**upsamples // unshuffle, multiple=unshuffle, channels=(out_ch, out_ch))


def recognise_srvgg(state: dict) -> Architecture | None:
    first, act = state.get("body.0.weight"), state.get("body.1.weight")
    if first is None or act is None or first.ndim != 4 or act.ndim != 1:
        return None
    if not all(re.fullmatch(r"body\.\d+\.(weight|bias)", k) for k in state):
        return None
    last = max(int(m.group(1)) for k in state if (m := re.fullmatch(r"body\.(\d+)\.weight", k)))
    num_conv, odd = divmod(last - 2, 2)
    in_ch, out = int(first.shape[1]), state[f"body.{last}.weight"]
    if odd or num_conv < 0 or out.ndim != 4:
        return None
    upscale = math.isqrt(out.shape[0] // in_ch)
    if upscale < 1 or upscale**2 * in_ch != out.shape[0]:
        return None
    params = {"in_ch": in_ch, "out_ch": in_ch, "nf": int(first.shape[0]), "num_conv": num_conv, "upscale": upscale}
    return Architecture("srvgg", params, scale=upscale, multiple=1, channels=(in_ch, in_ch))


def recognise_srvgg_pair(state: dict) -> Architecture | None:
    """An ``SRVGGPair``: two compact networks of the same size under ``restore.`` and ``sharpen.``."""
    halves = {}
    for key, value in state.items():
        branch, _, rest = key.partition(".")
        if branch not in ("restore", "sharpen"):
            return None
        halves.setdefault(branch, {})[rest] = value
    if len(halves) != 2:
        return None
    restore, sharpen = (recognise_srvgg(halves[b]) for b in ("restore", "sharpen"))
    if restore is None or restore != sharpen:
        return None
    return Architecture("srvgg", {**restore.params, "pair": True}, scale=restore.scale, channels=restore.channels)
