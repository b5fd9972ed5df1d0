"""Every network spandrel knows (HAT, DAT, SwinIR, SPAN, OmniSR, RealPLKSR, ... 42 in its main
registry), recognised, built and run through spandrel: the library chaiNNer and ComfyUI load
upscalers with. spandrel reads hyper-parameters from the weights, so a file loads as published.

An architecture is named by spandrel's id ("HAT"), or "id:Class" where one id covers several
network classes ("PLKSR:RealPLKSR"); its parameters are the network's own constructor
arguments, so ``build`` makes the same network fresh for training. What spandrel knows about
running it (sizes it needs, whether tiles give the whole image's result, precisions, a call
that differs from ``module(x)``) travels in the Architecture and in ``Called``.

spandrel_extra_arches (CodeFormer, DDColor, SRFormer, ...), where installed, is recognised too,
but its networks load only when the user sets TRANSLATOR_NONCOMMERCIAL=1: their code is
licensed for non-commercial use.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import threading
import typing
import warnings

import torch
from torch import nn

from translator import Architecture, TranslatorError

# The licence of each architecture's code (spandrel's own code is MIT; each network's code
# keeps its authors' licence: spandrel/architectures/<id>/__arch/LICENSE, read for 0.4.2).
LICENCES = {
    **dict.fromkeys(("ATD", "CRAFT", "DAT", "DCTLSA", "DITN", "ESRGAN", "FBCNN", "IPT", "LaMa", "OmniSR", "RGT", "SAFMN", "SAFMNBCIE",
                     "SCUNet", "SPAN", "SeemoRe", "Swin2SR", "SwinIR"), "Apache-2.0"),
    **dict.fromkeys(("DRCT", "DRUNet", "DnCNN", "FDAT", "FFTformer", "GRL", "HAT", "HVICIDNet", "KBNet", "MixDehazeNet", "MoESR", "MoSR",
                     "NAFNet", "PLKSR", "RCAN", "RealCUGAN", "RetinexFormer", "Uformer"), "MIT"),
    **dict.fromkeys(("Compact", "MMRealSR"), "BSD-3-Clause"),
    **dict.fromkeys(("GFPGAN", "RestoreFormer"), "Apache-2.0, with Tencent's terms for third-party parts"),
    "SwiftSRGAN": "CC0-1.0",
    "AuraSR": "CC-BY-SA-4.0 (share-alike)",
}
# spandrel_extra_arches: networks whose code is licensed for non-commercial use only, loaded
# only when the user says the use is (their __arch/LICENSE files, 0.2.0)
EXTRA_LICENCES = {
    "CodeFormer": "S-Lab License 1.0 (non-commercial)",
    "DDColor": "Alibaba: academic and non-commercial use only",
    **dict.fromkeys(("SRFormer", "MAT"), "CC-BY-NC-4.0 (non-commercial)"),
    **dict.fromkeys(("AdaCode", "FeMaSR"), "CC-BY-NC-SA-4.0 (non-commercial)"),
    **dict.fromkeys(("MPRNet", "MIRNet2", "Restormer", "M3SNet"), "Academic Public License (non-commercial)"),
}
OPT_IN = "TRANSLATOR_NONCOMMERCIAL"
# networks that fill a masked region: recognised, and refused in one line
INPAINTING = {"LaMa", "MAT"}


def recognise(state: dict) -> Architecture | None:
    """The spandrel architecture ``state`` is, None when it is none of them."""
    descriptor = _descriptor(state)
    return None if descriptor is None else describe(descriptor)


def describe(descriptor) -> Architecture:
    """The Architecture of a loaded spandrel model."""
    model = descriptor.model
    name = _name(descriptor.architecture.id, type(model))
    params = {key: value for key, value in model.hyperparameters.items() if _plain(value)}
    needs = descriptor.size_requirements
    multiple = max(1, needs.multiple_of)
    return Architecture(
        name,
        params,
        scale=descriptor.scale,
        multiple=multiple,
        minimum=-(-max(1, needs.minimum) // multiple) * multiple,
        square=needs.square,
        channels=(descriptor.input_channels, descriptor.output_channels),
        tiling="supported" if descriptor.tiling.name == "SUPPORTED" and not _whole(descriptor) else "discouraged",
        precisions=tuple(p for p, ok in (("bf16", descriptor.supports_bfloat16), ("fp16", descriptor.supports_half)) if ok),
    )


# networks spandrel lets tile whose tiles, measured here, do not give the whole image's result:
# IPT cuts its input into 48 px patches itself (28 dB from whole with 64 px tiles)
WHOLE = {"IPT"}


def _whole(descriptor) -> bool:
    # a face restorer sees an aligned face whole (RestoreFormer's tiles: 16 dB from whole)
    return descriptor.purpose == "FaceSR" or descriptor.architecture.id in WHOLE


def build(arch: Architecture) -> nn.Module:
    """A fresh network of ``arch``, initialised as its authors' code does."""
    cls = _classes().get(arch.name)
    if cls is None:
        raise TranslatorError(f"spandrel {_version()} has no architecture {arch.name!r}")
    try:
        with _quiet():
            return cls(**arch.params)
    except (TypeError, ValueError, AssertionError) as error:
        raise TranslatorError(f"cannot build a {arch.name} network from {arch.params} ({error})") from None


def load(state: dict, what: str) -> nn.Module:
    """The network ``state`` holds, with every weight (spandrel loads strictly), ready to be
    wrapped by ``Called`` for inference."""
    descriptor = _descriptor(state)
    if descriptor is None:
        raise TranslatorError(f"{what}: spandrel recognises none of its architectures in these weights")
    model = descriptor.model
    bad = [name for name, tensor in model.state_dict().items() if tensor.is_floating_point() and not torch.isfinite(tensor).all()]
    if bad:
        raise TranslatorError(f"{what} holds NaN or infinite weights in {', '.join(bad[:3])}")
    # spandrel's own default is a plain call, made inside its descriptor
    plain = descriptor._call_fn.__qualname__.startswith("ImageModelDescriptor.")
    model.spandrel_call = None if plain else descriptor._call_fn
    return model


def trainable(module: nn.Module, name: str) -> None:
    """Refuse, in one line, a network trained here only as a feed-forward image to image map."""
    if getattr(module, "spandrel_call", None) is not None:
        raise TranslatorError(f"{name} networks run here but do not train here: spandrel calls them with more than an image "
                              "(a noise level, a scaled input or several outputs), which only their authors' code trains")


# New networks at their authors' published sizes: the name a user gives, spandrel's name, the
# constructor's scale argument and its other arguments (where the class defaults are not it).
_SIX = [6] * 6
FRESH = {
    "span": ("SPAN", "upscale", {"num_in_ch": 3, "num_out_ch": 3, "feature_channels": 48}),
    "realplksr": ("PLKSR:RealPLKSR", "upscaling_factor", {}),
    "omnisr": ("OmniSR", "up_scale", {}),
    "swinir": ("SwinIR", "upscale", {"img_size": 64, "window_size": 8, "depths": _SIX, "embed_dim": 180, "num_heads": _SIX, "mlp_ratio": 2.0,
                                    "upsampler": "pixelshuffle"}),
    "hat": ("HAT", "upscale", {"img_size": 64, "window_size": 16, "depths": _SIX, "embed_dim": 180, "num_heads": _SIX, "mlp_ratio": 2.0,
                              "upsampler": "pixelshuffle"}),
    "dat": ("DAT", "upscale", {"img_size": 64, "split_size": [8, 32], "depth": _SIX, "embed_dim": 180, "num_heads": _SIX, "expansion_factor": 2.0,
                              "upsampler": "pixelshuffle"}),
}


def fresh(key: str, scale: int) -> Architecture:
    """The Architecture of a new ``key`` network (a name of ``FRESH``) upscaling by ``scale``."""
    name, scale_argument, params = FRESH[key]
    if scale not in (2, 4):
        raise TranslatorError(f"a new {key} network upscales x2 or x4, not x{scale}")
    # built once to be described as spandrel describes a loaded one (sizes, tiling, precisions)
    arch = recognise(build(Architecture(name, {**params, scale_argument: scale})).state_dict())
    if arch is None or arch.name != name:
        raise TranslatorError(f"spandrel {_version()} does not recognise a new {key} network")
    return arch


class Called(nn.Module):
    """A spandrel network called as spandrel calls it: some take a noise level beside the image,
    scale their input or give several outputs, of which the image is one."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.call = getattr(model, "spandrel_call", None) or nn.Module.__call__

    def forward(self, image):
        return self.call(self.model, image)


def licence(name: str) -> str:
    arch_id = name.partition(":")[0]
    return LICENCES.get(arch_id) or EXTRA_LICENCES.get(arch_id, "see spandrel")


# The last state dict recognised, and what spandrel made of it: a checkpoint is recognised and
# then loaded, and spandrel builds the network (with its weights) to recognise it, so loading
# reuses it rather than building it twice. Per thread, as the app loads in several.
_last = threading.local()


def _descriptor(state: dict):
    if getattr(_last, "state", None) is state:
        return _last.descriptor
    from spandrel import ImageModelDescriptor, canonicalize_state_dict

    # a copy: spandrel renames and adds keys in the dictionary it is given
    state = canonicalize_state_dict(dict(state))
    support = next((support for registry in _registries() for support in registry.architectures("detection") if support.detect(state)), None)
    if support is None:
        return None
    if support.architecture.id in EXTRA_LICENCES and not noncommercial():
        raise TranslatorError(f"{support.architecture.name}'s code is licensed {EXTRA_LICENCES[support.architecture.id]}: "
                              f"set {OPT_IN}=1 to load it for such a use")
    if support.architecture.id in INPAINTING:  # refused before it is built: LaMa is 51M parameters
        raise TranslatorError(f"{support.architecture.name} is an inpainting model: it needs a mask, for which there is no input yet")
    try:
        with _quiet():
            descriptor = support.architecture.load(state)
    except Exception as error:  # spandrel's loaders raise what their checks and torch raise
        # torch's account of missing and unexpected keys starts on its second line
        shown = " ".join(str(error).split())
        shown = shown if len(shown) <= 240 else shown[:237] + "..."
        raise TranslatorError(f"the {support.architecture.name} network these weights look like does not fit them: {shown or type(error).__name__}") from None
    if not isinstance(descriptor, ImageModelDescriptor):  # a masked model INPAINTING does not know yet
        raise TranslatorError(f"{descriptor.architecture.name} is an inpainting model: it needs a mask, for which there is no input yet")
    _last.state, _last.descriptor = state, descriptor
    return descriptor


def noncommercial() -> bool:
    """Whether the user opted in to the non-commercial architectures."""
    return os.environ.get(OPT_IN, "").strip().lower() in ("1", "true", "yes")


def _registries() -> list:
    """spandrel's main registry, and its extra one where installed: detected so that a
    non-commercial file is named and refused rather than unknown."""
    from spandrel import MAIN_REGISTRY

    try:
        from spandrel_extra_arches import EXTRA_REGISTRY
    except ImportError:
        return [MAIN_REGISTRY]
    return [MAIN_REGISTRY, EXTRA_REGISTRY]


def _classes() -> dict[str, type]:
    """Architecture name -> network class, for every network that may load now."""
    return {name: cls for name, (arch_id, cls) in _every_class().items() if arch_id not in EXTRA_LICENCES or noncommercial()}


@functools.cache
def _every_class() -> dict[str, tuple[str, type]]:
    classes = {}
    for registry in _registries():
        for support in registry.architectures("insertion"):
            # each spandrel Architecture is generic in the network class(es) it loads
            (kind,) = typing.get_args(type(support.architecture).__orig_bases__[0])
            several = typing.get_args(kind)
            for cls in several or (kind,):
                arch_id = support.architecture.id
                classes[f"{arch_id}:{cls.__name__}" if several else arch_id] = (arch_id, cls)
    return classes


def _name(arch_id: str, cls: type) -> str:
    return next(name for name, (known, kind) in _every_class().items() if known == arch_id and kind is cls)


def names() -> tuple[str, ...]:
    """The networks that translate here: every one but the inpainting ones, which need a mask."""
    return tuple(sorted((name for name in _classes() if name.partition(":")[0] not in INPAINTING), key=str.lower))


def _plain(value) -> bool:
    # constructor defaults such as nn.LayerNorm are left out: the class supplies them again
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


def _version() -> str:
    import spandrel

    return spandrel.__version__


@contextlib.contextmanager
def _quiet():
    """Building some networks warns of torch's own future changes (meshgrid's indexing), which
    would reach a user's terminal between the tool's lines."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        yield
