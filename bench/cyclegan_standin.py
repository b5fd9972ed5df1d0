"""A trained CycleGAN generator for the CPU-precision bench, made here because the published
ones cannot be downloaded on the project's machines: the precision gate judges a network's
weights, and random ones saturate its tanh and fail it whatever the precision.

    python -m bench.cyclegan_standin --corpus CORPUS --output runs/cyclegan-standin
    python -m bench.shipped --more --cyclegan runs/cyclegan-standin/generator.safetensors

Two domains from the corpus wallpapers.py builds: the training photos of Ubuntu's contests
(lomiri-wallpapers) and those of MATE and KDE, each cut into 96 px tiles of the photo at a
quarter of its size. The original default generator (ResNet, 9 blocks, 64 filters, instance
norm), 1,500 steps on 64 px crops: about 20 minutes on one CPU thread. Its translations are
not good (a short run on small tiles); its weights are what a trained generator's look like to
int8 and bf16.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from PIL import Image

from translator.plugins import registry
from translator.training import Trainer

TILE = 96


def domains(corpus: Path, data: Path) -> dict[str, int]:
    """trainA/ and trainB/ tiles of the corpus's training photos; how many each has."""
    counts = {"trainA": 0, "trainB": 0}
    for source in json.loads((corpus / "sources.json").read_text()):
        if source["split"] != "train":
            continue
        side = "trainA" if source["package"].startswith("lomiri") else "trainB"
        photo = Image.open(corpus / "train" / f"{source['name']}.png").convert("RGB")
        photo = photo.resize((photo.width // 4, photo.height // 4), Image.LANCZOS)
        (data / side).mkdir(parents=True, exist_ok=True)
        for top in range(0, photo.height - TILE + 1, TILE):
            for left in range(0, photo.width - TILE + 1, TILE):
                photo.crop((left, top, left + TILE, top + TILE)).save(data / side / f"{source['name']}-{top}-{left}.png")
                counts[side] += 1
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", required=True, help="a corpus checkpoints/recipes/wallpapers.py built")
    parser.add_argument("--output", required=True, help="the run folder (generator.safetensors is the A-to-B generator)")
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    output = Path(args.output)
    data = output.parent / f"{output.name}-data"
    print(domains(Path(args.corpus), data))
    settings = {
        "load_size": "72", "crop_size": "64", "steps": str(args.steps), "lr_constant_steps": str(args.steps * 2 // 3),
        "lr_decay_steps": str(args.steps - args.steps * 2 // 3), "workers": "0", "sample_every": "500", "val_every": "0", "log_every": "50",
    }
    Trainer(registry().family("cyclegan"), data, output, settings, device="cpu").run()
    print(f"wrote {output / 'generator.safetensors'}")


if __name__ == "__main__":
    main()
