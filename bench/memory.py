"""Peak memory of a translation per output pixel: decode, tiled x4 upscale, PNG encode.

    python -m bench.memory                       # 2000x1500 -> 8000x6000 (48 MP), RGB and RGBA
    python -m bench.memory --size 1000x750 --json bench/memory.json

Each case runs in a fresh process. The network is a tiny compact SR model (random weights: its
compute is not the point), so what is measured is the engine's own buffers: the peak resident
memory during one translation written as PNG, minus the process's memory just before it (torch,
the network and a warm-up translation), over the output's pixels.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CASES = {"rgb": 3, "rgba": 4}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="2000x1500", help="input WIDTHxHEIGHT (default 2000x1500)")
    parser.add_argument("--case", choices=sorted(CASES), help="run one case in this process (what the driver starts)")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    if args.case:
        print(json.dumps(measure(args.case, *map(int, args.size.split("x")))))
        return
    rows = {}
    for case in CASES:
        done = subprocess.run([sys.executable, "-m", "bench.memory", "--case", case, "--size", args.size], capture_output=True, text=True, cwd=ROOT)
        if done.returncode != 0:
            raise SystemExit(done.stderr[-2000:])
        rows[case] = json.loads(done.stdout.strip().splitlines()[-1])
        r = rows[case]
        print(f"{case}: {r['output_mp']:.0f} MP out, {r['extra_mb']:.0f} MB over the loaded model, {r['bytes_per_output_pixel']:.1f} bytes per output pixel, {r['seconds']:.1f} s")
    if args.json:
        Path(args.json).write_text(json.dumps({"date": time.strftime("%Y-%m-%d"), "size": args.size, "rows": rows}, indent=2))


def measure(case: str, width: int, height: int) -> dict:
    import numpy as np
    import torch
    from PIL import Image

    from translator.checkpoints import Checkpoint
    from translator.images import read_image, write_image
    from translator.inference import Engine, Options
    from translator.plugins import registry

    torch.set_num_threads(2)
    family = registry().family("esrgan")
    arch = family.architecture(family.Settings(arch="srvgg", nf=8, num_conv=1, scale=4))
    engine = Engine(Checkpoint(family, arch, family.build(arch), Path("tiny.safetensors")), options=Options(device="cpu"))
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        channels = CASES[case]
        rng = np.random.default_rng(0)
        # a photo-like gradient with noise: not all zeros, so the PNG is not trivially small
        y, x = np.mgrid[0:height, 0:width]
        base = ((x + y) % 256).astype(np.uint8)
        pixels = np.dstack([base] * channels) ^ rng.integers(0, 16, (height, width, channels), dtype=np.uint8)
        Image.fromarray(pixels, "RGBA" if channels == 4 else "RGB").save(folder / "in.png", compress_level=1)
        Image.fromarray(pixels[:64, :64]).save(folder / "small.png")
        write_image(engine.translate(read_image(folder / "small.png")), folder / "small-out.png")  # warm-up
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        started = time.perf_counter()
        write_image(engine.translate(read_image(folder / "in.png")), folder / "out.png")
        seconds = time.perf_counter() - started
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    out_pixels = width * height * arch.scale**2
    return {
        "case": case, "input": f"{width}x{height}", "output_mp": out_pixels / 1e6, "seconds": seconds,
        "baseline_mb": before / 1e6, "peak_mb": peak / 1e6, "extra_mb": (peak - before) / 1e6,
        "bytes_per_output_pixel": (peak - before) / out_pixels,
    }


if __name__ == "__main__":
    main()
