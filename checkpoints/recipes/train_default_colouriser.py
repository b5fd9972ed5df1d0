"""Train the pix2pix colouriser shipped in checkpoints/ (the pix2pix family's default), with the
project's own training core, on the colour photographs of Debian's wallpaper packages
(``wallpapers.py`` beside this file builds the corpus and records every licence).

    python checkpoints/recipes/train_default_colouriser.py --steps 6000 --threads 2 --keep runs/colour
    # a kept run continues where it stopped, to a larger --steps:
    python checkpoints/recipes/train_default_colouriser.py --steps 12000 --keep runs/colour --resume

Every colour photo is its own training pair: its gray version (BT.601 luma, as Pillow makes it)
is the input, the photo the target. The photos are cut into square tiles at two scales, so a
few dozen photos give several hundred pairs without distorting any. At the end the held-out
photos (never trained on) are colourised whole and measured against their originals: PSNR of
the result and of the gray input, and the colourfulness (Hasler and Suesstrunk 2003) of both;
and on the corpus's portraits, the colour it gives a patch of bare skin.
"""

import argparse
import datetime
import json
import shutil
import tempfile
from pathlib import Path

import kornia
import numpy as np
import torch
from PIL import Image

import wallpapers
from translator.acceleration import describe_device
from translator.checkpoints import load_checkpoint, save_checkpoint
from translator.events import Step
from translator.images import read_image
from translator.inference import Engine, Options
from translator.plugins import registry
from translator.training import Trainer

ROOT = Path(__file__).resolve().parents[2]
TILE = 144
# photographs with no colour to learn from
GRAY = ("ColdRipple", "Grey")
# Skin is off when it shows a colour (CIELAB chroma of 5 or more; below, it reads as gray) of a
# hue skin does not have: skin lies near 30 to 70 degrees, yellow near 90, green from 120.
SKIN_HUES = (25.0, 80.0)
SKIN_GRAY = 5.0


def tiles(photo: Image.Image) -> list[Image.Image]:
    """Square tiles of the photo at its size and at half of it."""
    out = []
    for image in (photo, photo.resize((photo.width // 2, photo.height // 2), Image.LANCZOS)):
        for top in range(0, image.height - TILE + 1, TILE):
            for left in range(0, image.width - TILE + 1, TILE):
                out.append(image.crop((left, top, left + TILE, top + TILE)))
    return out


def colour_photos(folder: Path) -> list[Path]:
    return [path for path in sorted(folder.glob("*.png")) if path.stem not in GRAY]


def pairs(photos: list[Path], out: Path) -> int:
    """A/ (gray) and B/ (colour) tiles of ``photos``."""
    (out / "A").mkdir(parents=True)
    (out / "B").mkdir()
    count = 0
    for path in photos:
        for index, tile in enumerate(tiles(Image.open(path).convert("RGB"))):
            tile.save(out / "B" / f"{path.stem}-{index:03d}.png")
            tile.convert("L").save(out / "A" / f"{path.stem}-{index:03d}.png")
            count += 1
    return count


def colourfulness(rgb: np.ndarray) -> float:
    """Hasler and Suesstrunk's colourfulness of an 8-bit-range RGB image (0 for gray)."""
    r, g, b = (rgb[..., i].astype(np.float64) * 255 for i in range(3))
    rg, yb = r - g, 0.5 * (r + g) - b
    return float(np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean()))


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1 / np.mean((a.astype(np.float64) - b) ** 2)))


def colourised(checkpoint: Path, photos: list[Path], device: str):
    """(photo, its original, its gray version, the checkpoint's result) for each of ``photos``,
    each RGB in [0, 1]."""
    engine = Engine(load_checkpoint(checkpoint), options=Options(device=device))
    for path in photos:
        picture = read_image(path)
        gray = np.repeat(np.asarray(Image.open(path).convert("L"), dtype=np.float32)[..., None] / 255, 3, axis=2)
        yield path, picture.rgb, gray, engine.translate(picture).rgb


def measure(checkpoint: Path, photos: list[Path], device: str) -> dict[str, dict[str, float]]:
    """Per photo: PSNR of the colourised result and of the gray input against the original,
    and the colourfulness of the result and of the original."""
    return {
        path.stem: {
            "psnr": round(psnr(result, original), 2), "psnr_gray": round(psnr(gray, original), 2),
            "colourfulness": round(colourfulness(result), 1), "colourfulness_original": round(colourfulness(original), 1),
        }
        for path, original, gray, result in colourised(checkpoint, photos, device)
    }


def skin(checkpoint: Path, corpus: Path, device: str) -> dict[str, dict]:
    """Per portrait: the CIELAB chroma and hue angle of the mean colour of its patch of bare skin,
    in the original and in the result, and whether the result's skin is off (see SKIN_HUES)."""
    portraits = {s["name"]: s["skin"] for s in json.loads((corpus / "sources.json").read_text()) if s["split"] == "portraits"}
    out = {}
    for path, original, _, result in colourised(checkpoint, [corpus / "portraits" / f"{name}.png" for name in portraits], device):
        left, top, right, bottom = portraits[path.stem]
        measured = {}
        for which, rgb in (("original", original), ("result", result)):
            patch = torch.from_numpy(np.ascontiguousarray(rgb[top:bottom, left:right], dtype=np.float32)).permute(2, 0, 1)
            a, b = kornia.color.rgb_to_lab(patch[None])[0, 1:].mean(dim=(1, 2)).tolist()
            measured[which] = {"chroma": round(float(np.hypot(a, b)), 1), "hue": round(float(np.degrees(np.arctan2(b, a))) % 360, 1)}
        tint = measured["result"]
        measured["off"] = bool(tint["chroma"] >= SKIN_GRAY and not SKIN_HUES[0] <= tint["hue"] <= SKIN_HUES[1])
        out[path.stem] = measured
    return out


def calibrated_chroma(checkpoint: Path, photos: list[Path], device: str) -> tuple[float, dict[str, float]]:
    """The share of its colour the network's results keep (see Architecture.chroma) that scores
    best on ``photos``, which it never trained on, and the mean gain over the gray input of
    each share tried: where it is unsure, a colour that is off costs more than none."""
    shares = [round(0.05 * i, 2) for i in range(2, 21)]
    gains = {share: [] for share in shares}
    for _, original, gray, result in colourised(checkpoint, photos, device):
        for share in shares:
            # the result's luma is the gray input's, so this is the engine's chroma share
            gains[share].append(psnr(np.clip(gray + share * (result - gray), 0, 1), original) - psnr(gray, original))
    means = {share: round(float(np.mean(g)), 3) for share, g in gains.items()}
    return max(means, key=means.get), means


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=6000)
    parser.add_argument("--ngf", type=int, default=16)
    parser.add_argument("--lambda-l1", type=float, default=1000.0, help="weight of L1 against the GAN term (pix2pix's is 100, which measured worse here)")
    parser.add_argument("--lambda-l2", type=float, default=0.0, help="weight of the squared error (with --lambda-l1 0: regress to the mean colour)")
    parser.add_argument("--hold-back", type=int, default=0, metavar="K",
                        help="train without every K-th training photo, and set the result's chroma to what scores best on those")
    parser.add_argument("--chroma", type=float, default=1.0, help="the share of its colour the result keeps (what a --hold-back run found)")
    parser.add_argument("--weights", help="train nothing: give this earlier result of the recipe --chroma, and measure it again")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--output", default=str(ROOT / "checkpoints" / "colourise.safetensors"))
    parser.add_argument("--keep", help="keep the run folder (metrics, samples, resume state) here")
    parser.add_argument("--resume", action="store_true", help="continue the run kept in --keep to --steps")
    parser.add_argument("--corpus", help="a corpus wallpapers.py built already (default: build one)")
    args = parser.parse_args()
    if args.weights and (args.hold_back or args.resume):
        parser.error("--weights trains nothing: --hold-back and --resume need a training")
    torch.set_num_threads(args.threads)
    family = registry().family("pix2pix")

    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(args.corpus) if args.corpus else Path(tmp) / "corpus"
        if not args.corpus:
            wallpapers.build(corpus)
        held_out = colour_photos(corpus / "held-out")
        photos = colour_photos(corpus / "train")
        back = photos[args.hold_back - 1 :: args.hold_back] if args.hold_back else []
        photos = [path for path in photos if path not in back]
        run = Path(args.keep) if args.keep else Path(tmp) / "run"
        started = datetime.datetime.now(datetime.timezone.utc)
        if args.weights:
            earlier = load_checkpoint(args.weights).metadata
            (run / "generator.safetensors").parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(args.weights, run / "generator.safetensors")
        elif args.resume:
            data = Path(json.loads((run / "config.json").read_text())["data"])
            if not data.is_dir():  # the tiles are remade where the run first had them
                pairs(photos, data / "train")
                pairs(held_out, data / "val")
            Trainer(None, None, run, {"steps": str(args.steps)}, device=args.device, resume=True, on_event=progress).run()
        else:
            data = run.parent / f"{run.name}-pairs"
            print(f"{pairs(photos, data / 'train')} training pairs")
            pairs(held_out, data / "val")
            settings = {
                "gray_input": "true", "netG": "unet_128", "ngf": str(args.ngf), "lambda_l1": str(args.lambda_l1), "lambda_l2": str(args.lambda_l2), "load_size": str(TILE), "crop_size": "128", "batch_size": "4",
                "steps": str(args.steps), "lr_constant_steps": str(args.steps // 2), "lr_decay_steps": str(args.steps // 2),
                "workers": "1", "log_every": "100", "sample_every": "1000", "val_every": "0", "checkpoint_every": "500",
            }
            Trainer(family, data, run, settings, device=args.device, on_event=progress).run()
        minutes = (datetime.datetime.now(datetime.timezone.utc) - started).total_seconds() / 60
        if args.weights:  # the card says how the weights were made
            args.steps, minutes, started = int(earlier["steps"]), float(earlier["minutes"]), datetime.datetime.fromisoformat(earlier["date"])

        generator = run / "generator.safetensors"
        trained = load_checkpoint(generator)
        chroma, calibration = args.chroma, {}
        if back:
            chroma, means = calibrated_chroma(generator, back, args.device)
            calibration = {"chroma_calibrated_on": ", ".join(p.stem for p in back), "chroma_gains": json.dumps(means)}
            print(f"chroma {chroma}: mean gain over gray on the photos held back, by share kept: {means}")
        trained.arch.chroma = chroma
        extra = {
            "description": "Colourise a black-and-white photo (pix2pix U-Net, trained by this project)",
            "recipe": f"checkpoints/recipes/train_default_colouriser.py --steps {args.steps} --ngf {args.ngf} --lambda-l1 {args.lambda_l1:g}"
            + (f" --lambda-l2 {args.lambda_l2:g}" if args.lambda_l2 else "")
            + (f" --hold-back {args.hold_back}" if back else f" --chroma {chroma:g}")
            + (f" --weights {Path(args.weights).name} (the run of {earlier['date']})" if args.weights else ""),
            "data": wallpapers.DATA,
            "steps": str(args.steps),
            "hardware": earlier["hardware"] if args.weights else describe_device(args.device),
            "minutes": f"{minutes:.0f}",
            "date": started.date().isoformat(),
            **calibration,
        }
        draft = save_checkpoint(Path(tmp) / "draft.safetensors", family, trained.arch, trained.module.state_dict(), extra)
        scores = measure(draft, held_out, args.device)
        skins = skin(draft, corpus, args.device)
        mean = {key: round(float(np.mean([s[key] for s in scores.values()])), 2) for key in next(iter(scores.values()))}
        extra |= {
            "held_out": ", ".join(scores),
            "psnr_held_out": f"{mean['psnr']:.2f}",
            "psnr_gray_input": f"{mean['psnr_gray']:.2f}",
            "colourfulness_held_out": f"{mean['colourfulness']:.1f}",
            "colourfulness_originals": f"{mean['colourfulness_original']:.1f}",
            "per_photo": json.dumps(scores),
            "skin": json.dumps(skins),
        }
        save_checkpoint(args.output, family, trained.arch, trained.module.state_dict(), extra)
        print(json.dumps(extra, indent=1))
        print(f"wrote {args.output}: {minutes:.0f} minutes on {extra['hardware']}")


def progress(event: dict) -> None:
    if isinstance(event, Step) and event.step % 500 == 0:
        losses = ", ".join(f"{k} {v:.3f}" for k, v in event.losses.items())
        print(f"step {event.step}: {losses}, {event.images_per_s:.1f} images/s", flush=True)


if __name__ == "__main__":
    main()
