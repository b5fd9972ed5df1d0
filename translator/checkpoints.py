"""Reading and writing checkpoints safely.

The project's own format is safetensors with the family and architecture in the metadata.
Published PyTorch files (.pth/.pt/.ckpt) are read only through ``torch.load(weights_only=True)``,
which refuses pickled code instead of running it. Whatever the source, the family works out the
architecture from the weights themselves, and the weights are loaded strictly: a silently
ignored key would be a wrong model.
"""

from __future__ import annotations

import os
import pickle
import re
import struct
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import torch

from . import units
from .errors import TranslatorError, one_line
from .family import Architecture, Family
from .files import atomic_write
from .plugins import Registry, registry as default_registry
from .refs import Ref, parse_ref

FORMAT = "image-translator"
FORMAT_VERSION = "1"
SUFFIXES = (".safetensors", ".pth", ".pt", ".ckpt", ".bin")
# The largest published generator is under 100 MB; a far larger file is not a checkpoint of ours.
MAX_BYTES = int(os.environ.get("TRANSLATOR_MAX_CHECKPOINT_BYTES", 2 * 1024**3))
# Real-ESRGAN/BasicSR wrap their weights; params_ema is the better of the two when both exist.
WRAPPER_KEYS = ("params_ema", "params", "state_dict")
# Weight types a network is loaded from (half precision is widened as it loads).
FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
# Prefixes added by DataParallel/DDP and torch.compile.
PREFIXES = ("module.", "_orig_mod.")


@dataclass
class Checkpoint:
    """A network ready to run, and where it came from."""

    family: Family
    arch: Architecture
    module: torch.nn.Module
    path: Path
    # the metadata of the project's own format ({} for foreign files)
    metadata: dict[str, str] = field(default_factory=dict)


def load_checkpoint(source: str | os.PathLike | Ref, family: str | None = None, registry: Registry | None = None) -> Checkpoint:
    """Read a checkpoint named any way ``refs.parse_ref`` knows (a file, a run folder, a catalog
    name, an ``hf://`` reference or URL, fetched and checked), find its family and architecture,
    and build the network with its weights. The family the name carries is the default for
    ``family``; both given, they must agree."""
    registry = registry or default_registry()
    ref = parse_ref(source)
    family = ref.family_for(family)
    path = ref.fetch()
    tensors, metadata = read_weights(path)
    if metadata.get("format") == FORMAT:
        # The metadata names the family; the architecture still comes from the weights themselves.
        owner = _own_family(metadata, registry, path)
        if family is not None and family != owner.name:
            raise TranslatorError(f"{path.name} is a {owner.name} checkpoint, not {family}")
        state = tensors
        owner, arch = identify(state, owner.name, registry, path.name)
        recorded = Architecture.from_json(metadata["architecture"]) if "architecture" in metadata else None
        if recorded and recorded.name == arch.name and isinstance(recorded.params, dict):
            # the record adds what the weights cannot show (dropout, a colouriser's chroma), never
            # overrides them
            arch.params = {**recorded.params, **arch.params}
            arch.chroma = float(recorded.chroma)
    else:
        metadata = {}
        state = unwrap(tensors, path.name)
        owner, arch = identify(state, family, registry, path.name)
    module = owner.load(state, arch, f"{path.name} ({owner.name} {arch.describe()})")
    return Checkpoint(owner, arch, module, path, metadata)


def read_weights(path: Path) -> tuple[object, dict[str, str]]:
    """The raw object a checkpoint file holds, and its safetensors metadata if any."""
    if not path.exists():
        raise TranslatorError(f"checkpoint not found: {path}")
    if not path.is_file():
        raise TranslatorError(f"checkpoint is not a file: {path}")
    if path.suffix.lower() not in SUFFIXES:
        raise TranslatorError(f"{path.name}: not a checkpoint file (expected one of {', '.join(SUFFIXES)})")
    size = path.stat().st_size
    if size == 0:
        raise TranslatorError(f"{path.name} is empty")
    if size > MAX_BYTES:
        raise TranslatorError(f"{path.name} is {units.size(size)}, over the {units.size(MAX_BYTES)} limit for a checkpoint")
    with open(path, "rb") as f:
        head = f.read(9)
    if _looks_like_safetensors(head, size):
        return _read_safetensors(path)
    return _read_pickle(path), {}


def _looks_like_safetensors(head: bytes, size: int) -> bool:
    # safetensors starts with a little-endian u64 header length, then a JSON object
    if len(head) < 9:
        return False
    (header_length,) = struct.unpack("<Q", head[:8])
    return head[8:9] == b"{" and header_length < size


def _read_safetensors(path: Path) -> tuple[dict, dict[str, str]]:
    from safetensors import safe_open

    try:
        with safe_open(path, framework="pt", device="cpu") as f:
            metadata = f.metadata() or {}
            tensors = {key: f.get_tensor(key) for key in f.keys()}
    except Exception as error:  # safetensors raises its own error type, and OSError
        raise TranslatorError(f"{path.name} is not a readable safetensors file: truncated or corrupt ({one_line(error)})") from None
    return tensors, metadata


def _read_pickle(path: Path) -> object:
    _check_archive(path)
    try:
        with warnings.catch_warnings():  # its notes on pickle protocols would precede our one line
            warnings.simplefilter("ignore")
            # weights_only is the default since torch 2.6; spelled out because it is the safety line
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        match = re.search(r"GLOBAL ([\w.]+)", str(error))
        code = match.group(1) if match else _pickled_code(path)
        if code:
            raise TranslatorError(
                f"refused {path.name}: it holds pickled code ({code}) that would run on load; only plain weights are accepted"
            ) from None
        raise TranslatorError(f"cannot read {path.name}: not a PyTorch checkpoint, or truncated") from None
    except Exception:  # truncated zips, garbage bytes, ...: torch raises several types, all noisy
        raise TranslatorError(f"cannot read {path.name}: not a PyTorch checkpoint, or truncated") from None


def _check_archive(path: Path) -> None:
    """A zip checkpoint (torch.save's format) is refused when its members would unpack past the
    size limit: a deflated archive can hold gigabytes of zeros in a few megabytes."""
    if not zipfile.is_zipfile(path):
        return
    try:
        with zipfile.ZipFile(path) as archive:
            unpacked = sum(member.file_size for member in archive.infolist())
    except (zipfile.BadZipFile, OSError):
        return  # torch.load reports it as unreadable
    if unpacked > MAX_BYTES:
        raise TranslatorError(f"{path.name} unpacks to {units.size(unpacked)}, over the {units.size(MAX_BYTES)} limit for a checkpoint")


def _pickled_code(path: Path) -> str | None:
    """The first callable a pickle would import, found by reading its opcodes without running
    any (torch's refusal does not always name it, e.g. for a plain pickle of protocol 4)."""
    import pickletools

    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                name = next((n for n in archive.namelist() if n.endswith("data.pkl")), None)
                data = archive.read(name) if name else b""
        else:
            data = path.read_bytes()
        strings: list[str] = []
        for opcode, arg, _ in pickletools.genops(data):
            if opcode.name == "GLOBAL":
                return str(arg).replace(" ", ".")
            if isinstance(arg, str):
                strings.append(arg)
            if opcode.name == "STACK_GLOBAL" and len(strings) >= 2:
                return f"{strings[-2]}.{strings[-1]}"
    except Exception:  # not a pickle we can read: the caller's message stands
        return None
    return None


def unwrap(obj: object, name: str) -> dict[str, torch.Tensor]:
    """The flat state dict inside a published file: wrappers and prefixes removed."""
    if isinstance(obj, dict):
        for key in WRAPPER_KEYS:
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict):
        raise TranslatorError(f"{name} holds a {type(obj).__name__}, not a dictionary of weights")
    state = {}
    for key, value in obj.items():
        if isinstance(value, torch.Tensor):
            for prefix in PREFIXES:
                key = key.removeprefix(prefix)
            state[key] = value
    if not state:
        shown = ", ".join(map(str, list(obj)[:6]))
        raise TranslatorError(f"{name} holds no weights (top-level keys: {shown})")
    return state


def identify(state: dict, family: str | None, registry: Registry, name: str) -> tuple[Family, Architecture]:
    """The family and architecture a foreign state dict belongs to."""
    if family is not None:
        wanted = registry.family(family)
        arch = _recognise(wanted, state, name, strict=True)
        if arch is not None:
            return wanted, arch
        for other in registry.families.values():
            if other is not wanted and (found := _recognise(other, state, name)) is not None:
                raise TranslatorError(f"{name} holds a network of the {other.name} family ({found.describe()}), not {family}")
        raise TranslatorError(f"{name} is not a {family} checkpoint: its layout matches no known network ({_key_sample(state)})")
    matches = [(f, a) for f in registry.families.values() if (a := _recognise(f, state, name)) is not None]
    if not matches:
        raise TranslatorError(f"{name} matches no installed family's layout ({_key_sample(state)})")
    if len(matches) > 1:
        names = " and ".join(f.name for f, _ in matches)
        raise TranslatorError(f"{name} fits {names}: say which with --model")
    return matches[0]


def _recognise(family: Family, state: dict, name: str, strict: bool = False) -> Architecture | None:
    """``family.recognise``, with a plugin's own failure kept from breaking every other load."""
    try:
        return family.recognise(state)
    except TranslatorError:
        raise
    except Exception as error:
        if strict:
            raise TranslatorError(f"{name}: the {family.name} family could not read its layout ({one_line(error, named=True)})") from None
        return None


def load_strict(module: torch.nn.Module, state: dict, what: str) -> None:
    """Load every weight or none, with a one-line account of what does not fit."""
    expected = module.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [
        f"{k} is {tuple(state[k].shape)}, expected {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    problems = []
    if missing:
        problems.append(f"missing {_few(missing)}")
    if unexpected:
        problems.append(f"unexpected {_few(unexpected)}")
    if wrong:
        problems.append(f"wrong shapes: {_few(wrong)}")
    if problems:
        raise TranslatorError(f"{what} does not fit the network: " + "; ".join(problems))
    # integer, boolean or complex values in a float weight would load by casting, silently wrong
    odd = [f"{k} ({state[k].dtype})" for k, v in expected.items() if v.is_floating_point() and state[k].dtype not in FLOAT_DTYPES]
    if odd:
        raise TranslatorError(f"{what} holds weights that are not floating point: {_few(odd)}; only float16, bfloat16, float32 and float64 load")
    bad = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise TranslatorError(f"{what} holds NaN or infinite weights in {_few(bad)}")
    module.load_state_dict(state, strict=True)


def save_checkpoint(path: str | os.PathLike, family: Family, arch: Architecture, state: dict, extra: dict[str, str] | None = None) -> Path:
    """Write weights in the project's own format, atomically."""
    from safetensors.torch import save

    path = Path(path)
    if path.suffix != ".safetensors":
        raise TranslatorError(f"{path.name}: the project's checkpoints are .safetensors files")
    metadata = {"format": FORMAT, "format_version": FORMAT_VERSION, "family": family.name, "architecture": arch.to_json()}
    metadata.update(extra or {})
    tensors = {key: value.detach().to("cpu").contiguous() for key, value in state.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, save(tensors, metadata=metadata))
    return path


def _own_family(metadata: dict, registry: Registry, path: Path) -> Family:
    name = metadata.get("family", "")
    if name not in registry.families:
        known = ", ".join(sorted(registry.families)) or "none"
        raise TranslatorError(f"{path.name} was made by the {name!r} family, which is not installed (installed: {known})")
    return registry.families[name]



def _few(items: list[str], shown: int = 3) -> str:
    more = f" and {len(items) - shown} more" if len(items) > shown else ""
    return ", ".join(items[:shown]) + more


def _key_sample(state: dict) -> str:
    return f"{len(state)} tensors, first keys {_few(list(state))}"
