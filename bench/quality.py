"""The shipped upscalers against their goals, on the held-out photos: clean bicubic downscales and
Real-ESRGAN-style damage (blur, resize, noise, JPEG; a fixed seed per photo), each against bicubic
upscaling of the same input.

    python -m bench.quality --corpus /path/to/corpus      # a corpus wallpapers.py built
    python -m bench.quality                               # builds it (apt-get download, 200 MB)
    python -m bench.quality --corpus C checkpoints/compact-sr-x4.safetensors other.safetensors

The goal of the family's default x4 model (the first-impressions issue): at least +1.0 dB PSNR-Y
over bicubic on average both ways, and no photo below bicubic on either. Prints one markdown
table per model, as BENCHMARKS.md has them, and the verdict.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoints", nargs="*", help="x4 checkpoints (default: the shipped ones)")
    parser.add_argument("--corpus", help="a corpus wallpapers.py built (its held-out/ folder is used)")
    parser.add_argument("--threads", type=int, default=2)
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
        photos, clean = evaluate(checkpoints, corpus / "held-out")
        _, damaged = evaluate(checkpoints, corpus / "held-out", degradation="realesrgan")
    for path in checkpoints:
        text, _ = table(Path(path).name, photos, clean, damaged)
        print(f"### {Path(path).name}\n\n{text}\n")


if __name__ == "__main__":
    main()
