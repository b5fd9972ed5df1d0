"""What a model family is: the contract between the core and a plugin.

A plugin subclasses ``Family`` and registers an instance through the ``register_families``
hook. The core only ever talks to families through this class, so a new family needs no
change here.
"""

from __future__ import annotations

import dataclasses
import json
import math
import typing
from dataclasses import dataclass, field
from typing import Any, ClassVar

from .errors import TranslatorError
from .tasks import Task


@dataclass
class Architecture:
    """One concrete network of a family, as read from a state dict or chosen for training."""

    # the family's name for the network shape, e.g. "rrdbnet" or "unet"
    name: str
    # JSON-serialisable hyper-parameters; with ``name`` they rebuild the network exactly
    params: dict[str, Any] = field(default_factory=dict)
    # output size is input size times this
    scale: int = 1
    # height and width the network accepts must be multiples of this
    multiple: int = 1
    # image channels the network takes and gives
    channels: tuple[int, int] = (3, 3)
    # sides the network needs at least (smaller inputs are padded), and whether they must be equal
    minimum: int = 1
    square: bool = False
    # whether tiles give the whole image's result: "supported"; "discouraged" (the network looks
    # at the whole image, so it runs whole unless tiles are asked for or memory runs out)
    tiling: str = "supported"
    # the reduced precisions the network computes correctly in
    precisions: tuple[str, ...] = ("bf16", "fp16")
    # a colouriser's: the share of the network's colour its results keep, the rest gray. Below
    # one where photos it never trained on scored better so: a hue it is unsure of costs more
    # than none (the colouriser's recipe measures it)
    chroma: float = 1.0

    def network_input(self, images):
        """``images`` (N x 3 x H x W tensors) as the network takes them: as they are, or their
        luma for a one-channel network (a colouriser). Luma's weights add up to one, so it may
        be taken in the network's value range as well as in [0, 1]."""
        if self.channels[0] == 3:
            return images
        import torch

        from .images import LUMA

        return torch.einsum("nchw,c->nhw", images, torch.tensor(LUMA, dtype=images.dtype, device=images.device))[:, None]

    def with_input_luma(self, rgb, luma):
        """A colouriser's result (N x 3 x H x W in [0, 1]) given the input's own luma, as
        colourisation tools do: the network supplies the colour, and the tones and detail stay
        the photo's. An equal shift of R, G and B moves luma by the same amount and leaves the
        colour differences as they are; scaling those differences (``chroma``) keeps it too."""
        import torch

        from .images import LUMA

        weights = torch.tensor(LUMA, dtype=rgb.dtype, device=rgb.device).view(1, 3, 1, 1)
        colour = rgb - (rgb * weights).sum(1, keepdim=True)
        return (luma.to(rgb.dtype) + colour * self.chroma).clamp(0, 1)

    def describe(self) -> str:
        shown = ", ".join(f"{k}={v}" for k, v in self.params.items())
        return f"{self.name} x{self.scale} ({shown})" if shown else f"{self.name} x{self.scale}"

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Architecture:
        try:
            return cls.from_dict(json.loads(text))
        except ValueError as error:
            raise TranslatorError(f"the architecture recorded in the checkpoint is unreadable ({error})") from None

    @classmethod
    def from_dict(cls, fields: dict) -> Architecture:
        try:
            tuples = {key: tuple(fields[key]) for key in ("channels", "precisions") if key in fields}
            arch = cls(**{**fields, **tuples})
        except (TypeError, AttributeError) as error:
            raise TranslatorError(f"the recorded architecture is unreadable ({error})") from None
        if isinstance(arch.chroma, bool) or not isinstance(arch.chroma, (int, float)) or not 0 <= arch.chroma <= 1:
            raise TranslatorError(f"the recorded architecture is unreadable (chroma {arch.chroma!r} is not a share from 0 to 1)")
        return arch


def setting(
    default: Any,
    help: str,
    choices: tuple | None = None,
    low: float | None = None,
    high: float | None = None,
    translate: bool = False,
    checkpoint: bool = False,
    file: bool = False,
) -> Any:
    """A field of a family's Settings dataclass, with the help text the CLI and app show, and
    the values it accepts (``choices``, or a range from ``low`` to ``high`` inclusive).
    ``translate`` marks a setting that changes translation, which the app's Translate tab
    offers; the others only matter for training. ``checkpoint`` marks one that names a
    checkpoint (a file, ``hf://`` reference or catalog name): the app offers its checkpoint
    picker for it and takes nothing else. ``file`` marks one that names some other file on
    this machine, which only the command line takes."""
    metadata = {"help": help, "choices": choices, "low": low, "high": high, "translate": translate, "checkpoint": checkpoint, "file": file}
    return field(default=default, metadata=metadata)


@dataclass
class NoSettings:
    pass


class Family:
    """Base class of a model family. Subclasses set the class attributes and override the methods."""

    # unique id used on the command line and in checkpoints, e.g. "esrgan"
    name: ClassVar[str]
    # what it learns: Task.PAIRED, Task.UNPAIRED or Task.SUPER_RESOLUTION
    task: ClassVar[Task]
    # one line for listings
    description: ClassVar[str] = ""
    # network shapes this family knows, for listings
    architectures: ClassVar[tuple[str, ...]] = ()
    # value range the networks take and give; images are mapped from and to [0, 1]
    input_range: ClassVar[tuple[float, float]] = (0.0, 1.0)

    @classmethod
    def to_network(cls, images):
        """Images in [0, 1] as the networks take them (``input_range``)."""
        low, high = cls.input_range
        return images * (high - low) + low

    @classmethod
    def from_network(cls, values):
        """What the networks give, back in [0, 1] (clamped)."""
        low, high = cls.input_range
        # one new tensor, worked on in place: a large image's result is not copied twice more
        return values.sub(low).div_(high - low).clamp_(0, 1)
    # a dataclass whose fields (made with ``setting``) are the family's options and their defaults
    Settings: ClassVar[type] = NoSettings
    # defaults of the training loop's own settings that differ for this family (see TrainConfig)
    train_defaults: ClassVar[dict[str, Any]] = {}
    # family and loop settings the app starts from on a machine without a GPU: a smaller network
    # and batch, so that a first run shows progress in seconds rather than minutes
    light_defaults: ClassVar[dict[str, Any]] = {}
    # the model used when no checkpoint is given: a catalog name, an hf:// reference or a file
    # the plugin ships (read like --checkpoint)
    default_checkpoint: ClassVar[str | None] = None

    def licence(self, name: str) -> str:
        """The licence of the code of network ``name`` when it is not the plugin's own ("" then)."""
        return ""

    def listed_architectures(self) -> str:
        """The family's networks for listings, grouped by the licence of their code."""
        groups: dict[str, list[str]] = {}
        for name in self.architectures:
            groups.setdefault(self.licence(name), []).append(name)
        return "; ".join(f"{licence}: {', '.join(names)}" if licence else ", ".join(names) for licence, names in groups.items())

    def recognise(self, state_dict: dict) -> Architecture | None:
        """The architecture of this family that ``state_dict`` fits, inferred from its keys and
        shapes, or None when it is not one of ours. Raise TranslatorError for a file that is
        recognisably ours but unusable (a discriminator, say)."""
        raise NotImplementedError

    def canonical_state_dict(self, state_dict: dict, arch: Architecture) -> dict:
        """Rename keys of older published layouts to the names ``build`` uses."""
        return state_dict

    def build(self, arch: Architecture):
        """A freshly initialised ``torch.nn.Module`` for ``arch``."""
        raise NotImplementedError

    def architecture(self, settings) -> Architecture:
        """The architecture a new network is built with, from the family's settings."""
        raise NotImplementedError

    def load(self, state_dict: dict, arch: Architecture, what: str):
        """The network for ``arch`` holding ``state_dict``'s weights, every one of them (``what``
        names it in errors). A family whose library builds and loads in one step overrides this."""
        from .checkpoints import load_strict

        module = self.build(arch)
        load_strict(module, self.canonical_state_dict(state_dict, arch), what)
        return module

    def prepare(self, module, settings):
        """Put a loaded network into the state inference wants; return what inference calls
        (the module itself, or a module wrapping it)."""
        module.eval()
        return module

    def recipe(self, generator, arch: Architecture, settings, config, device):
        """A ``translator.training.Recipe`` training ``generator`` (new or fine-tuned) with the
        family's other networks, losses and optimizers, created on ``device``."""
        raise TranslatorError(f"the {self.name} family cannot be trained")


def make_settings(settings_class: type, overrides: dict[str, str], family_name: str = ""):
    """Settings with ``overrides`` (text from the command line or a form) applied and checked."""
    hints = typing.get_type_hints(settings_class)
    known = {f.name: f for f in dataclasses.fields(settings_class)}
    values = {}
    for key, text in overrides.items():
        if key not in known:
            names = ", ".join(known) or "none"
            raise TranslatorError(f"unknown setting {key!r} for {family_name or 'this family'} (known: {names})")
        meta = known[key].metadata
        values[key] = _parse_value(key, text, hints[key], meta.get("choices"))
        low, high = meta.get("low"), meta.get("high")
        stated = low is not None and high is not None
        if hints[key] is int and high is None:
            high = MAX_INT_SETTING
        too_low, too_high = low is not None and values[key] < low, high is not None and values[key] > high
        if too_low or too_high:
            bounds = f"from {low} to {high}" if stated else (f"at least {low}" if too_low else f"at most {high}")
            raise TranslatorError(f"setting {key!r} must be {bounds}, got {text!r}")
    return settings_class(**values)


# the largest whole number any integer setting takes: a step count of 1e30 would never end, and
# a client (JSON in a browser) cannot even show it
MAX_INT_SETTING = 10**9


def _parse_value(key: str, text: Any, kind: Any, choices: tuple | None) -> Any:
    if not isinstance(text, str):
        value = _typed_value(key, text, kind)
    elif kind is bool:
        lowered = text.strip().lower()
        if lowered not in {"true", "false", "1", "0", "yes", "no", "on", "off"}:
            raise TranslatorError(f"setting {key!r} expects true or false, got {text!r}")
        value = lowered in {"true", "1", "yes", "on"}
    elif kind in (int, float):
        try:
            value = kind(text)
        except ValueError:
            noun = "an integer" if kind is int else "a number"
            raise TranslatorError(f"setting {key!r} expects {noun}, got {text!r}") from None
    else:
        value = text
    if kind is float and not math.isfinite(value):
        raise TranslatorError(f"setting {key!r} expects a finite number, got {text!r}")
    if choices and value not in choices:
        raise TranslatorError(f"setting {key!r} must be one of {', '.join(map(str, choices))}, got {text!r}")
    return value


def _typed_value(key: str, value: Any, kind: Any) -> Any:
    """A value that came typed (a JSON number from the API): a whole number for an integer
    setting (2.0 is 2; 1.5 and 1e30 are refused by value or range), a number for a float one."""
    if kind is int and isinstance(value, float) and not isinstance(value, bool):
        if not math.isfinite(value) or value != int(value):
            raise TranslatorError(f"setting {key!r} expects a whole number, got {value!r}")
        return int(value)
    if kind in (int, float) and (isinstance(value, bool) or not isinstance(value, (int, float))):
        raise TranslatorError(f"setting {key!r} expects {'an integer' if kind is int else 'a number'}, got {value!r}")
    return value
