"""Which precision a network runs in on the CPU when none is asked for.

bf16 where the CPU computes it natively (AVX512_BF16 or AMX: read from the CPU's flags, never
assumed) and the model's output stays within a quality gate of its fp32 output on a fixed
photo; fp32 otherwise. The gate's verdict is kept per checkpoint file (by its SHA-256), so it
is paid once. ``--precision fp32`` always takes the reference path.
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

# the gate: the reduced-precision result against the fp32 one, in 8-bit levels
GATE_PSNR_DB = 45.0
GATE_MAX_LEVELS = 8
# the CPU flags that mean bf16 arithmetic in hardware
BF16_FLAGS = ("avx512_bf16", "amx_bf16")
# named for what the gate judges: verdicts of the earlier gates (one crop; four crops through
# only the branch a clean photo picks) are not reused
GATE_FILE = "precision-gate-4-crops-each-branch.json"
# the gate's photo: crops of the app's example (never trained on by the shipped models)
GATE_SIDE = 64


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
    levels = verdict["levels"]
    shown = f"{verdict['psnr']:.1f} dB and at most {levels} level{'' if levels == 1 else 's'} off fp32 on the gate's photo"
    if verdict["passed"]:
        return Choice(torch.bfloat16, f"bf16: {shown}")
    return Choice(torch.float32, f"fp32: bf16 was {shown}, outside the gate ({GATE_PSNR_DB:.0f} dB, {GATE_MAX_LEVELS} levels)")


def _verdict(engine) -> dict:
    from .catalog import cache_folder, file_sha256
    from .files import atomic_write

    path = Path(engine.source) if engine.source else None
    key = file_sha256(path) if path is not None and path.is_file() else None
    cache = cache_folder() / GATE_FILE
    known = _read(cache)
    if key in known:
        return known[key]
    verdict = measure(engine, torch.bfloat16)
    if key is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(cache, json.dumps({**_read(cache), key: verdict}, indent=1).encode())
    return verdict


def _read(cache: Path) -> dict:
    try:
        known = json.loads(cache.read_text())
    except (OSError, ValueError):  # none yet, or damaged: measured again, nothing is trusted blindly
        return {}
    return known if isinstance(known, dict) else {}


def measure(engine, dtype: torch.dtype) -> dict:
    """The gate's figures for ``engine`` run in ``dtype`` against fp32, over its crops, through
    each network a picture may go through."""
    from importlib.resources import files

    from .images import read_image

    photo = read_image(Path(str(files("translator.app") / "chelsea.png")))
    references, reduced = [], []
    for branch in engine.each_branch():
        for top, left in _gate_corners(photo.height, photo.width):
            crop = photo.with_pixels(photo.rgb[top : top + GATE_SIDE, left : left + GATE_SIDE], None)
            for run_in, results in ((torch.float32, references), (dtype, reduced)):
                torch.manual_seed(0)  # a network that samples (pix2pix's dropout) samples alike both times
                with branch._in(run_in):
                    results.append(branch.translate(crop).rgb)
    reference, result = np.stack(references), np.stack(reduced)
    levels = np.abs(np.round(reference * 255) - np.round(result * 255))
    mse = float(np.mean((reference - result) ** 2))
    psnr = 99.0 if mse == 0 else 10 * math.log10(1 / mse)
    return {"psnr": round(psnr, 2), "levels": int(levels.max()), "passed": bool(psnr >= GATE_PSNR_DB and levels.max() <= GATE_MAX_LEVELS)}


def _gate_corners(height: int, width: int) -> list[tuple[int, int]]:
    """Where the gate's crops start: the photo's centre and the centres of three of its
    quarters, so that fur, eyes and the smooth background are all judged (one crop let a
    reduced precision through that was far off elsewhere, BENCHMARKS.md)."""
    centres = [(height // 2, width // 2), (height // 4, width // 4), (height // 4, 3 * width // 4), (3 * height // 4, width // 2)]
    return [(min(max(0, y - GATE_SIDE // 2), height - GATE_SIDE), min(max(0, x - GATE_SIDE // 2), width - GATE_SIDE)) for y, x in centres]
