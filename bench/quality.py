"""The shipped upscalers against their goals, on the held-out photos: clean bicubic downscales and
Real-ESRGAN-style damage (blur, resize, noise, JPEG; a fixed seed per photo), each against bicubic
upscaling of the same input.

    python -m bench.quality --corpus /path/to/corpus      # a corpus wallpapers.py built
    python -m bench.quality                               # builds it (apt-get download, 200 MB)
    python -m bench.quality --corpus C checkpoints/compact-sr-x4.safetensors other.safetensors
    python -m bench.quality --corpus C --precision fp32    # the networks themselves, not int8/bf16

The goal of the family's default x4 model (the first-impressions issue): at least +1.0 dB PSNR-Y
over bicubic on average both ways, and no photo below bicubic on either. Prints one markdown
table per model, as BENCHMARKS.md has them, and the verdict; then one table of damage those two
sets leave out (noise alone, JPEG alone, a JPEG resized), where a model of two networks (the
default's restorer and sharpener) is also shown with each network alone.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch

from translator.cli import PRECISIONS

ROOT = Path(__file__).resolve().parent.parent
GOAL_DB = 1.0


def table(name: str, photos: list[str], clean: dict, damaged: dict) -> tuple[str, bool]:
    """A markdown table of ``name``'s PSNR-Y per photo both ways, and whether it meets the goal."""
    rows = ["| photo | clean: bicubic / model / gain | damaged: bicubic / model / gain |", "|---|---|---|"]
    gains = {"clean": [], "damaged": []}
    for i, photo in enumerate(photos):
        cells = []
        for kind, scores in (("clean", clean), ("damaged", damaged)):
            base, ours = scores["bicubic"].psnr[i], scores[name].psnr[i]
            gains[kind].append(ours - base)
            cells.append(f"{base:.2f} / {ours:.2f} / {ours - base:+.2f} dB")
        rows.append(f"| {Path(photo).stem} | " + " | ".join(cells) + " |")
    means = {kind: sum(g) / len(g) for kind, g in gains.items()}
    rows.append(
        f"| **mean** | {clean['bicubic'].mean()[0]:.2f} / {clean[name].mean()[0]:.2f} / **{means['clean']:+.2f} dB** "
        f"| {damaged['bicubic'].mean()[0]:.2f} / {damaged[name].mean()[0]:.2f} / **{means['damaged']:+.2f} dB** |"
    )
    below = {kind: sum(g < 0 for g in gains[kind]) for kind in gains}
    met = all(means[k] >= GOAL_DB and below[k] == 0 for k in gains)
    verdict = (
        f"{name}: clean {means['clean']:+.2f} dB ({below['clean']} of {len(photos)} photos below bicubic), damaged {means['damaged']:+.2f} dB "
        f"({below['damaged']} below): {'meets' if met else 'misses'} the goal (+{GOAL_DB} dB both ways, none below)"
    )
    return "\n".join(rows) + "\n\n" + verdict, met


def _jpeg(x: torch.Tensor, quality: int) -> torch.Tensor:
    import io

    import numpy as np
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray((x[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)).save(buffer, "JPEG", quality=quality)
    return torch.from_numpy(np.asarray(Image.open(buffer).convert("RGB")).copy()).permute(2, 0, 1)[None].float() / 255


def _resized(x: torch.Tensor, size) -> torch.Tensor:
    return torch.nn.functional.interpolate(x, size=size, mode="bicubic", antialias=True).clamp(0, 1)


# damage the goal's two sets do not cover, one kind at a time, as files often have it: a noisy
# PNG, a JPEG as saved, and a JPEG resized afterwards (its blocks no longer on the grid)
OTHER = {
    "noise of sigma 5 levels": lambda hr, lr: (lr + torch.randn(lr.shape, generator=torch.Generator().manual_seed(0)) * 5 / 255).clamp(0, 1),
    "JPEG quality 90": lambda hr, lr: _jpeg(lr, 90),
    "JPEG quality 70": lambda hr, lr: _jpeg(lr, 70),
    "JPEG quality 60, then resized x0.8": lambda hr, lr: _resized(_jpeg(_resized(hr, (lr.shape[2] * 5 // 4, lr.shape[3] * 5 // 4)), 60), lr.shape[2:]),
}


def other_damage(checkpoints: list[str], folder: Path, precision: str = "auto") -> str:
    """A markdown table: each model's PSNR-Y gain over bicubic (mean, and the worst photo) for
    each kind of damage in ``OTHER``; a model of two networks also with each one alone."""
    from translator import metrics
    from translator.augment import degrade
    from translator.checkpoints import load_checkpoint
    from translator.data import Report, scan_images
    from translator.family import make_settings
    from translator.images import Picture, read_image
    from translator.inference import Engine, Options

    engines = {}
    for path in checkpoints:
        loaded = load_checkpoint(path)
        choices = ("auto", "always", "never") if loaded.arch.params.get("pair") else ("auto",)
        for choice in choices:
            settings = make_settings(loaded.family.Settings, {"restore": choice}, loaded.family.name)
            name = Path(path).stem + ("" if choice == "auto" else f" restore={choice}")
            engines[name] = Engine(load_checkpoint(path), settings, Options(device="cpu", precision=precision))
    gains = {kind: {name: [] for name in engines} for kind in OTHER}
    scale = next(iter(engines.values())).scale
    for photo in scan_images(folder, Report()):
        hr = torch.from_numpy(read_image(photo).rgb).permute(2, 0, 1)[None]
        hr = hr[:, :, : hr.shape[2] // scale * scale, : hr.shape[3] // scale * scale]
        lr = degrade(hr, scale, "bicubic")
        for kind, damage in OTHER.items():
            damaged = damage(hr, lr)
            base = metrics.psnr_y(metrics.bicubic(damaged, scale), hr, scale)
            for name, engine in engines.items():
                sr = engine.translate(Picture(damaged[0].permute(1, 2, 0).numpy().copy())).rgb
                gains[kind][name].append(metrics.psnr_y(torch.from_numpy(sr).permute(2, 0, 1)[None], hr, scale) - base)
    rows = ["| damage | " + " | ".join(engines) + " |", "|---" * (len(engines) + 1) + "|"]
    for kind, by_model in gains.items():
        rows.append(f"| {kind} | " + " | ".join(f"{sum(g) / len(g):+.2f} dB (worst {min(g):+.2f})" for g in by_model.values()) + " |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoints", nargs="*", help="checkpoints of one scale (default: the shipped x4 ones)")
    parser.add_argument("--corpus", help="a corpus wallpapers.py built (its held-out/ folder is used)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--precision", default="auto", choices=PRECISIONS, help="default auto: what a translation on this machine computes in")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from translator.evaluate import evaluate

    shipped = ROOT / "checkpoints"
    checkpoints = args.checkpoints or [str(p) for p in (shipped / "compact-sr-x4.safetensors", shipped / "compact-sr-x4-clean.safetensors") if p.is_file()]
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(args.corpus) if args.corpus else Path(tmp) / "corpus"
        if not args.corpus:
            sys.path.insert(0, str(shipped / "recipes"))
            import wallpapers

            wallpapers.build(corpus)
        photos, clean = evaluate(checkpoints, corpus / "held-out", precision=args.precision)
        _, damaged = evaluate(checkpoints, corpus / "held-out", degradation="realesrgan", precision=args.precision)
        for path in checkpoints:
            text, _ = table(Path(path).name, photos, clean, damaged)
            print(f"### {Path(path).name}\n\n{text}\n", flush=True)
        print(f"### Other damage, one kind at a time (gain over bicubic of the same input)\n\n{other_damage(checkpoints, corpus / 'held-out', args.precision)}")


if __name__ == "__main__":
    main()
