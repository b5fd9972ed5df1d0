"""Time of the shipped models on a 1 MP photo, beside the published network their size is set against.

    python -m bench.shipped              # two CPU threads, as the models' cards state
    python -m bench.shipped --threads 1

Each shipped model (the catalog's entries that ship with the package) translates the app's
example photo scaled to 1000 x 1000 through the engine, as `translator translate` does, without
the PNG decode and encode. The reference row is realesr-general-x4v3's network
(SRVGGNetCompact, 64 features, 32 convolutions; random weights, its compute is the point) on the
same input. Each time is the best of three after a warm-up.
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
    for entry in catalog.entries():
        if entry.shipped is None:
            continue
        engine = Engine(load_checkpoint(entry.shipped), options=Options(device="cpu"))
        rows[entry.name] = round(best_of(lambda: engine.translate(photo)), 2)
    family = registry().family("esrgan")
    settings = make_settings(family.Settings, {"arch": "srvgg", "nf": "64", "num_conv": "32", "scale": "4"}, family.name)
    arch = family.architecture(settings)
    engine = Engine(Checkpoint(family, arch, family.build(arch), Path("reference")), options=Options(device="cpu"))
    rows["realesr-general-x4v3 size (reference)"] = round(best_of(lambda: engine.translate(photo)), 2)
    print(json.dumps({"threads": args.threads, "photo": "1000x1000", "seconds": rows}, indent=1))


if __name__ == "__main__":
    main()
