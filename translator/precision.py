"""Which precision a network runs in on the CPU when none is asked for.

bf16 where the CPU computes it natively (AVX512_BF16 or AMX: read from the CPU's flags, never
assumed) and the model's output stays within a quality gate of its fp32 output on a fixed
photo; fp32 otherwise. The gate's verdict is kept per checkpoint file (by its SHA-256), so it
is paid once. ``--precision fp32`` always takes the reference path.
"""

from __future__ import annotations

import functools
import io
import itertools
import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .errors import TranslatorError

log = logging.getLogger(__name__)

# the gate: the reduced-precision result against the fp32 one, in 8-bit levels
GATE_PSNR_DB = 45.0
GATE_MAX_LEVELS = 8
# the CPU flags that mean bf16 arithmetic in hardware
BF16_FLAGS = ("avx512_bf16", "amx_bf16")
# named for what the gate judges: verdicts of the earlier gates (one crop; four crops through
# only the branch a clean photo picks; no JPEG; no whole photo) are not reused
GATE_FILE = "precision-gate-crops-jpeg-and-whole-photo.json"
GATE_JPEG_QUALITY = 40
# the gate's photo: the app's example (never trained on by the shipped models), whole and in crops
GATE_SIDE = 64
# int8's verdicts, kept apart: a network may pass in one precision and fail in the other
INT8_GATE_FILE = "int8-gate-crops-jpeg-and-whole-photo.json"


@functools.cache
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags as the kernel reports them (empty where it does not say)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    line = next((line for line in text.splitlines() if line.startswith("flags")), "")
    return frozenset(line.partition(":")[2].split())


def native_bf16() -> bool:
    return any(flag in cpu_flags() for flag in BF16_FLAGS)


@dataclass(frozen=True)
class Choice:
    dtype: torch.dtype
    # why, in words for `translator models` and the app
    reason: str


def choose(engine) -> Choice:
    """The precision ``engine`` (an fp32 CPU engine) runs in under ``--precision auto``."""
    if not native_bf16():
        return Choice(torch.float32, "fp32: this CPU has no native bf16")
    verdict = _verdict(engine)
    shown = _shown(verdict)
    if verdict["passed"]:
        return Choice(torch.bfloat16, f"bf16: {shown}")
    return Choice(torch.float32, f"fp32: bf16 was {shown}, outside the gate ({GATE_PSNR_DB:.0f} dB, {GATE_MAX_LEVELS} levels)")


def _shown(verdict: dict) -> str:
    levels = verdict["levels"]
    return f"{verdict['psnr']:.1f} dB and at most {levels} level{'' if levels == 1 else 's'} off fp32 on the gate's photo"


def choose_int8(engine) -> tuple[dict, list[str]]:
    """``{network: (its int8 form, why)}`` for each network of ``engine`` whose int8 result
    passes the gate against fp32, and why the others do not. Verdicts are kept like bf16's, so
    a network that failed is not quantized again; one that passed is read back from the int8
    cache."""
    from .catalog import cache_folder
    from .int8 import RECIPE

    cache = cache_folder() / INT8_GATE_FILE
    known = _read(cache)
    chosen, refused = {}, []
    for branch in engine.each_branch():
        module = branch.runner.module
        key = engine.int8_key(module)
        verdict = known.get(f"{key}-{RECIPE}") if key else None
        if verdict is not None and not verdict["passed"]:
            refused.append(_refusal(verdict))
            continue
        fresh = verdict is None
        if fresh and not refused and not chosen:  # said once: the first translation waits for it
            log.warning("making and judging this model's int8 for this CPU: seconds, once per model (kept in %s)", cache.parent / "int8")
        try:
            runner = engine.int8_network(module)
        except TranslatorError as error:  # OpenVINO cannot take it: it runs as before
            log.warning("%s", error)
            runner, verdict = None, {"passed": False, "error": str(error)}
        if verdict is None:
            branch.int8 = runner
            verdict = _judge([branch], torch.int8)
        if fresh and key is not None:
            _remember(cache, f"{key}-{RECIPE}", verdict)
        if verdict["passed"]:
            chosen[module] = (runner, f"int8: {_shown(verdict)}")
        else:
            refused.append(_refusal(verdict))
    return chosen, refused


def _refusal(verdict: dict) -> str:
    if "error" in verdict:
        return verdict["error"]
    return f"int8 was {_shown(verdict)}, outside the gate"


def _verdict(engine) -> dict:
    from .catalog import cache_folder

    key = engine.source_sha256
    cache = cache_folder() / GATE_FILE
    known = _read(cache)
    if key in known:
        return known[key]
    verdict = measure(engine, torch.bfloat16)
    if key is not None:
        _remember(cache, key, verdict)
    return verdict


def _remember(cache: Path, key: str, verdict: dict) -> None:
    """``verdict`` kept in ``cache`` under ``key``, beside the others there."""
    from .files import atomic_write

    cache.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(cache, json.dumps({**_read(cache), key: verdict}, indent=1).encode())


def _read(cache: Path) -> dict:
    try:
        known = json.loads(cache.read_text())
    except (OSError, ValueError):  # none yet, or damaged: measured again, nothing is trusted blindly
        return {}
    return known if isinstance(known, dict) else {}


def measure(engine, dtype: torch.dtype) -> dict:
    """The gate's figures for ``engine`` run in ``dtype`` against fp32, over its crops, through
    each network a picture may go through."""
    return _judge(engine.each_branch(), dtype)


def _judge(branches: list, dtype: torch.dtype) -> dict:
    """The gate's figures for engines run in ``dtype`` against fp32, over the gate's crops and photo."""
    from importlib.resources import files

    from .images import read_image

    photo = read_image(Path(str(files("translator.app") / "chelsea.png")))
    # as it is, and saved as JPEG: a restorer's int8 that was within the gate on the clean photo
    # was 12 levels off on its JPEG (and 26 on held-out photos), where a sharpener's stayed at 3
    versions = [photo.rgb, _as_jpeg(photo.rgb, GATE_JPEG_QUALITY)]
    crops = [photo.with_pixels(rgb[top : top + GATE_SIDE, left : left + GATE_SIDE], None)
             for rgb, (top, left) in itertools.product(versions, _gate_corners(photo.height, photo.width))]
    # and the whole photo: a network that normalises each picture (CycleGAN's InstanceNorm) has
    # other statistics in a crop, and an int8 within the gate on four crops was 23 levels off
    # on the whole photo (150 on a held-out one)
    pictures = [*crops, photo]
    references, reduced = [], []
    for branch, picture in itertools.product(branches, pictures):
        for run_in, results in ((torch.float32, references), (dtype, reduced)):
            torch.manual_seed(0)  # a network that samples (pix2pix's dropout) samples alike both times
            with branch._in(run_in):
                results.append(branch.translate(picture).rgb.ravel())
    reference, result = np.concatenate(references), np.concatenate(reduced)
    levels = np.abs(np.round(reference * 255) - np.round(result * 255))
    mse = float(np.mean((reference - result) ** 2))
    psnr = 99.0 if mse == 0 else 10 * math.log10(1 / mse)
    return {"psnr": round(psnr, 2), "levels": int(levels.max()), "passed": bool(psnr >= GATE_PSNR_DB and levels.max() <= GATE_MAX_LEVELS)}


def _as_jpeg(rgb: np.ndarray, quality: int) -> np.ndarray:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.round(rgb * 255).astype(np.uint8)).save(buffer, "JPEG", quality=quality)
    return np.asarray(Image.open(buffer).convert("RGB"), dtype=np.float32) / 255


def _gate_corners(height: int, width: int) -> list[tuple[int, int]]:
    """Where the gate's crops start: the photo's centre and the centres of three of its
    quarters, so that fur, eyes and the smooth background are all judged (one crop let a
    reduced precision through that was far off elsewhere, BENCHMARKS.md)."""
    centres = [(height // 2, width // 2), (height // 4, width // 4), (height // 4, 3 * width // 4), (3 * height // 4, width // 2)]
    return [(min(max(0, y - GATE_SIDE // 2), height - GATE_SIDE), min(max(0, x - GATE_SIDE // 2), width - GATE_SIDE)) for y, x in centres]
