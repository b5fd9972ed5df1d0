"""Time of the shipped models on a photo with a 1 MP result, beside the published networks their size is set against.

    python -m bench.shipped              # two CPU threads, as the models' cards state
    python -m bench.shipped --threads 1

Each shipped model (the catalog's entries that ship with the package) translates the app's
example photo, scaled so that the result is 1000 x 1000 (250 x 250 in for x4), through the
engine, as `translator translate` does, without the PNG decode and encode, in fp32 (the
reference path) and in the precision `--precision auto` picks on this CPU, side by side, with
the reason it gave. The reference row is realesr-general-x4v3's network (SRVGGNetCompact, 64
features, 32 convolutions; random weights, its compute is the point) on the same input;
``--more`` adds RealESRGAN_x4plus's RRDBNet and CycleGAN's default generator, random weights
too, or for CycleGAN trained ones (``--cyclegan cyclegan-style_monet``, a file or catalog name,
or what ``python -m bench.cyclegan_standin`` trains offline: the gate judges a network's
weights, and random ones saturate). Each time is the best of three after a warm-up (of up to
20 where a call takes under a third of a second). Beside each: its FLOPs and the floor they
set, the time at this CPU's measured fp32, bf16 and int8 peaks (a large matrix product).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image


def timed(fn) -> float:
    """Seconds of one call of ``fn``."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def times_of(fn, runs: int) -> list[float]:
    """Seconds of ``runs`` calls of ``fn``, after one call to warm up."""
    fn()
    return [timed(fn) for _ in range(runs)]


def best_of(fn, runs: int = 3, seconds: float = 1.0) -> float:
    """The best of ``runs`` timed calls after a warm-up, or of as many more as fit in ``seconds``
    (up to 20): a call of 30 ms is at the mercy of a shared machine's noise, and its best of
    three moved by up to 40% between runs."""
    warm_up = timed(fn)  # also says how many calls fit
    runs = max(runs, min(20, int(seconds / max(warm_up, 1e-3))))
    return min(timed(fn) for _ in range(runs))


def peaks(side: int = 2048) -> dict[str, float]:
    """This CPU's measured peak of a large matrix product, in operations a second, per number
    type: the floor a network's FLOPs cannot go under (int8 is what a quantized network would
    run; no route to it passed the quality gate here, see bench.int8)."""
    operands = {
        "fp32": (torch.randn(side, side), torch.randn(side, side), torch.matmul),
        "bf16": (torch.randn(side, side).bfloat16(), torch.randn(side, side).bfloat16(), torch.matmul),
        "int8": (torch.randint(-100, 100, (side, side), dtype=torch.int8), torch.randint(-100, 100, (side, side), dtype=torch.int8), torch._int_mm),
    }
    return {name: 2 * side**3 / best_of(lambda: product(a, b)) for name, (a, b, product) in operands.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--more", action="store_true", help="also RRDBNet (RealESRGAN_x4plus's size) and CycleGAN's default generator")
    parser.add_argument("--cyclegan", metavar="CHECKPOINT", help="with --more: CycleGAN's generator with these weights (a file or catalog name) instead of random ones")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from importlib.resources import files

    from translator import catalog
    from translator.checkpoints import Checkpoint, load_checkpoint
    from translator.family import make_settings
    from translator.images import Picture
    from translator.inference import Engine, Options
    from translator.plugins import registry

    with Image.open(files("translator.app") / "chelsea.png") as image:
        photo = Picture(np.asarray(image.convert("RGB").resize((1000, 1000), Image.BICUBIC), dtype=np.float32) / 255)
    rows = {}
    peak_ops = peaks()

    def sized(scale: int) -> Picture:
        """The photo's centre, cut so that an x``scale`` result is 1000 x 1000."""
        side, start = 1000 // scale, (1000 - 1000 // scale) // 2
        return photo.with_pixels(photo.rgb[start : start + side, start : start + side], None)

    def both(make) -> dict:
        fp32, auto = make("fp32"), make("auto")
        picture = sized(fp32.scale)
        fp32_s, auto_s = best_of(lambda: fp32.translate(picture)), best_of(lambda: auto.translate(picture))
        flops = fp32.flops(picture.width, picture.height)
        floors = {f"floor_{name}": round(flops / peak, 3) for name, peak in peak_ops.items()}
        row = {
            "fp32": round(fp32_s, 3), "auto": round(auto_s, 3), "speedup": round(fp32_s / auto_s, 2), "auto_precision": auto.precision,
            "gflop": round(flops / 1e9, 1), **floors,
        }
        print(json.dumps(row), file=sys.stderr, flush=True)  # a row at a time: the large networks take minutes
        return row

    def reference(name: str, overrides: dict[str, str]):
        """A published network's size with random weights: its compute is the point."""
        family = registry().family(name)
        arch = family.architecture(make_settings(family.Settings, overrides, family.name))
        network = family.build(arch)
        return lambda precision: Engine(Checkpoint(family, arch, network, Path("reference")), options=Options(device="cpu", precision=precision))

    for entry in catalog.entries():
        if entry.shipped is None:
            continue
        rows[entry.name] = both(lambda precision: Engine(load_checkpoint(entry.shipped), options=Options(device="cpu", precision=precision)))
    rows["realesr-general-x4v3 size (reference)"] = both(reference("esrgan", {"arch": "srvgg", "nf": "64", "num_conv": "32", "scale": "4"}))
    if args.more:
        rows["RealESRGAN_x4plus size"] = both(reference("esrgan", {"arch": "rrdbnet", "nf": "64", "nb": "23", "scale": "4"}))
        if args.cyclegan:
            rows[f"CycleGAN {Path(args.cyclegan).name}"] = both(
                lambda precision: Engine(load_checkpoint(args.cyclegan, "cyclegan"), options=Options(device="cpu", precision=precision)))
        else:
            rows["CycleGAN resnet_9blocks (original default)"] = both(reference("cyclegan", {}))
    print(json.dumps({"threads": args.threads, "result": "1000x1000", "peak_gops": {k: round(v / 1e9) for k, v in peak_ops.items()}, "seconds": rows}, indent=1))


if __name__ == "__main__":
    main()
