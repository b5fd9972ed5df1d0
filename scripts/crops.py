"""The README's 100% crops of x4 upscalers beside bicubic, on held-out photos made as people's
photos are: downscaled x4 and saved as JPEG at quality 50; or, with --clean, one photo
downscaled cleanly, its small input shown too (the quick start's picture); or, with
--colourise, two held-out photos and a portrait made black and white, beside each colouriser's
result.

    .venv/bin/python scripts/crops.py --corpus CORPUS -o docs/images/x4-jpeg.png \\
        checkpoints/compact-sr-x4.safetensors checkpoints/compact-sr-x4-clean.safetensors
    .venv/bin/python scripts/crops.py --corpus CORPUS --clean -o docs/images/x4-before-after.png \\
        checkpoints/compact-sr-x4.safetensors
    .venv/bin/python scripts/crops.py --corpus CORPUS --colourise -o docs/images/colourise-before-after.png \
        checkpoints/colourise.safetensors

CORPUS is a corpus `checkpoints/recipes/wallpapers.py` built (its held-out/ and portraits/ photos
are used).
Each row is one crop, at 100%: bicubic, each model, and the original.
"""

import argparse
import io
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from translator.checkpoints import load_checkpoint  # noqa: E402
from translator.images import Picture  # noqa: E402
from translator.inference import Engine, Options  # noqa: E402

# (held-out photo, left and top of the crop in the original's pixels): texture, and a smooth edge
CROPS = (("Path", 520, 260), ("LadyBird", 600, 330))
CLEAN_CROP = ("TwoWings", 560, 300)
SIDE = 256, 192
QUALITY = 50
# whole photos, scaled to this width: a colouriser is judged on the picture, not on 100% crops
COLOUR_PHOTOS, COLOUR_WIDTH = ("held-out/LadyBird", "held-out/Path", "portraits/astronaut"), 480


def labelled(image: Image.Image, text: str) -> Image.Image:
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 0, 7 * len(text) + 8, 16), fill=(0, 0, 0))
    draw.text((4, 2), text, fill=(255, 255, 255))
    return image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoints", nargs="+")
    parser.add_argument("--corpus", required=True)
    parser.add_argument("-o", "--output", required=True)
    parser.add_argument("--clean", action="store_true", help="one photo downscaled cleanly, beside its small input")
    parser.add_argument("--colourise", action="store_true", help="three photos made black and white, beside each colouriser's result")
    args = parser.parse_args()
    engines = [(Path(c).name.removesuffix(".safetensors"), Engine(load_checkpoint(c), options=Options(device="cpu", precision="fp32"))) for c in args.checkpoints]
    rows = colour_rows(engines, Path(args.corpus)) if args.colourise else upscaled_rows(engines, Path(args.corpus), args.clean)
    width, height = rows[0][0].size
    sheet = Image.new("RGB", (width * len(rows[0]), height * len(rows)))
    for r, columns in enumerate(rows):
        for c, tile in enumerate(columns):
            sheet.paste(tile, (c * width, r * height))
    sheet.save(args.output, optimize=True)
    print(f"wrote {args.output}: {sheet.width}x{sheet.height}")


def as_image(rgb: np.ndarray) -> Image.Image:
    return Image.fromarray((np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8))


def colour_rows(engines, corpus: Path) -> list[list[Image.Image]]:
    rows = []
    for name in COLOUR_PHOTOS:
        with Image.open(corpus / f"{name}.png") as photo:
            original = photo.convert("RGB")
        original = original.resize((COLOUR_WIDTH, round(original.height * COLOUR_WIDTH / original.width)), Image.LANCZOS)
        gray = original.convert("L").convert("RGB")
        columns = [labelled(gray.copy(), "black-and-white input")]
        for label, engine in engines:
            columns.append(labelled(as_image(engine.translate(Picture(np.asarray(gray, dtype=np.float32) / 255)).rgb), label))
        rows.append(columns + [labelled(original, "original")])
    return rows


def upscaled_rows(engines, corpus: Path, clean: bool) -> list[list[Image.Image]]:
    rows = []
    for name, left, top in (CLEAN_CROP,) if clean else CROPS:
        with Image.open(corpus / "held-out" / f"{name}.png") as photo:
            original = photo.convert("RGB")
        small = original.resize((original.width // 4, original.height // 4), Image.BICUBIC, reducing_gap=None)
        buffer = io.BytesIO()
        small.save(buffer, "PNG" if clean else "JPEG", quality=QUALITY)
        damaged = Image.open(buffer).convert("RGB")
        box = (left, top, left + SIDE[0], top + SIDE[1])
        columns = [labelled(damaged.resize(original.size, Image.NEAREST).crop(box), "input (x4 smaller)")] if clean else []
        columns.append(labelled(damaged.resize(original.size, Image.BICUBIC).crop(box), "bicubic"))
        for label, engine in engines:
            result = engine.translate(Picture(np.asarray(damaged, dtype=np.float32) / 255)).rgb
            columns.append(labelled(as_image(result).crop(box), label))
        columns.append(labelled(original.crop(box), "original"))
        rows.append(columns)
    return rows


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
