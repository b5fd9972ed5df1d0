"""Time of the shipped models on a 1 MP photo, beside the published network their size is set against.

    python -m bench.shipped              # two CPU threads, as the models' cards state
    python -m bench.shipped --threads 1

Each shipped model (the catalog's entries that ship with the package) translates the app's
example photo scaled to 1000 x 1000 through the engine, as `translator translate` does, without
the PNG decode and encode, in fp32 (the reference path) and in the precision `--precision auto`
picks on this CPU, side by side, with the reason it gave. The reference row is
realesr-general-x4v3's network (SRVGGNetCompact, 64 features, 32 convolutions; random weights,
its compute is the point) on the same input; ``--more`` adds RealESRGAN_x4plus's RRDBNet (on a
250 x 250 crop) and CycleGAN's default generator, random weights too. Each time is the best of
three after a warm-up.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image


def best_of(fn, runs: int = 3) -> float:
    fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--more", action="store_true", help="also RRDBNet (RealESRGAN_x4plus's size) and CycleGAN's default generator")
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

    def both(make, picture=photo) -> dict:
        fp32, auto = make("fp32"), make("auto")
        fp32_s, auto_s = best_of(lambda: fp32.translate(picture)), best_of(lambda: auto.translate(picture))
        return {"fp32": round(fp32_s, 2), "auto": round(auto_s, 2), "speedup": round(fp32_s / auto_s, 2), "auto_precision": auto.precision}

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
        # RRDBNet on a 250 x 250 crop (1 MP out: 16 MP would take minutes a run)
        crop = photo.with_pixels(photo.rgb[375:625, 375:625], None)
        rows["RealESRGAN_x4plus size, 250x250 in"] = both(reference("esrgan", {"arch": "rrdbnet", "nf": "64", "nb": "23", "scale": "4"}), crop)
        rows["CycleGAN resnet_9blocks (original default)"] = both(reference("cyclegan", {}))
    print(json.dumps({"threads": args.threads, "photo": "1000x1000", "seconds": rows}, indent=1))


if __name__ == "__main__":
    main()
