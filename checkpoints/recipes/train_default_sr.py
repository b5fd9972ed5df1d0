"""Train the default super-resolution models shipped in checkpoints/, with the project's own
training core, on freely licensed photographs that ship inside two Python packages.

    pip install scikit-image scikit-learn
    python checkpoints/recipes/train_default_sr.py --scale 4 --steps 8000 --threads 1
    python checkpoints/recipes/train_default_sr.py --scale 2 --steps 8000 --threads 1
    # the bigger run this recipe is ready for, on a GPU:
    python checkpoints/recipes/train_default_sr.py --scale 4 --steps 300000 --size large --device cuda

Training photos and the held-out ones (never seen in training) are listed with their sources in
checkpoints/README.md. Inputs are made on the fly, half the batches by bicubic downscaling and
half by Real-ESRGAN-style blur, resize, noise and JPEG ("mixed"), so that real photos improve
and clean downscaled ones stay sharp. At the end the held-out photos are evaluated against
bicubic, and the numbers go into the checkpoint's metadata.
"""

import argparse
import datetime
import platform
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from translator.checkpoints import load_checkpoint, save_checkpoint
from translator.evaluate import evaluate, report
from translator.plugins import registry
from translator.training import Trainer

TRAIN = ["astronaut", "camera", "rocket", "brick", "grass", "gravel", "hubble_deep_field", "retina"]
HELD_OUT = {"skimage": ["chelsea", "coffee"], "sklearn": ["china.jpg", "flower.jpg"]}
SIZES = {"small": {"nf": "32", "num_conv": "8"}, "large": {"nf": "64", "num_conv": "32"}}
ROOT = Path(__file__).resolve().parents[2]


def skimage_photo(name: str) -> np.ndarray:
    import skimage.data

    image = getattr(skimage.data, name)()
    return np.repeat(image[..., None], 3, axis=2) if image.ndim == 2 else image[..., :3]


def sklearn_photo(name: str) -> np.ndarray:
    from sklearn.datasets import load_sample_image

    return load_sample_image(name)


def prepare(work: Path) -> tuple[Path, Path]:
    """Training photos in work/data/train/, held-out ones in work/held-out/ (never trained on)."""
    train, held_out = work / "data" / "train", work / "held-out"
    train.mkdir(parents=True)
    held_out.mkdir()
    for name in TRAIN:
        Image.fromarray(skimage_photo(name)).save(train / f"{name}.png")
    for name in HELD_OUT["skimage"]:
        Image.fromarray(skimage_photo(name)).save(held_out / f"{name}.png")
    for name in HELD_OUT["sklearn"]:
        Image.fromarray(sklearn_photo(name)).save(held_out / f"{Path(name).stem}.png")
    return work / "data", held_out


def hardware(device: str) -> str:
    if device.startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.get_device_name()
    return f"{platform.machine()} CPU, {torch.get_num_threads()} thread(s)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=int, choices=(2, 4), default=4)
    parser.add_argument("--steps", type=int, default=8000)
    parser.add_argument("--size", choices=sorted(SIZES), default="small")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--output", help="default: checkpoints/compact-sr-x{scale}.safetensors")
    parser.add_argument("--keep", help="keep the run folder (metrics, samples) here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    output = Path(args.output or ROOT / "checkpoints" / f"compact-sr-x{args.scale}.safetensors")
    family = registry().family("esrgan")

    with tempfile.TemporaryDirectory() as tmp:
        data, held_out = prepare(Path(tmp))
        run = Path(args.keep) if args.keep else Path(tmp) / "run"
        settings = {
            "arch": "srvgg", **SIZES[args.size], "scale": str(args.scale), "steps": str(args.steps),
            "batch_size": "16", "crop_size": str(24 * args.scale), "lr": "5e-4", "lr_halve_every": str(max(1, args.steps // 2)), "degradation": "mixed",
            "ema_decay": "0.999", "workers": "1", "cache_images": "16", "log_every": "100", "sample_every": "2000", "val_every": "0",
            "checkpoint_every": "1000",
        }

        def progress(event: dict) -> None:
            if event["event"] == "step" and event["step"] % 500 == 0:
                print(f"step {event['step']}: pixel loss {event['pixel']:.4f}, {event['images_per_s']:.0f} images/s", flush=True)

        started = datetime.datetime.now(datetime.timezone.utc)
        Trainer(family, data, run, settings, device=args.device, on_event=progress).run()
        minutes = (datetime.datetime.now(datetime.timezone.utc) - started).total_seconds() / 60

        names, scores = evaluate([run / "generator.safetensors"], held_out, args.device)
        print(report(names, scores))
        ours, bicubic = scores["generator.safetensors"].mean(), scores["bicubic"].mean()
        trained = load_checkpoint(run / "generator.safetensors")
        options = " ".join(f"--{k} {v}" for k, v in vars(args).items() if v is not None and k not in ("output", "keep"))
        extra = {
            "description": f"x{args.scale} photo upscaler (compact, trained by this project)",
            "recipe": f"checkpoints/recipes/train_default_sr.py {options}",
            "data": "scikit-image sample photos: " + ", ".join(TRAIN),
            "held_out": ", ".join(names),
            "steps": str(args.steps),
            "hardware": hardware(args.device),
            "minutes": f"{minutes:.0f}",
            "date": started.date().isoformat(),
            "psnr_y_held_out": f"{ours[0]:.2f}",
            "psnr_y_bicubic": f"{bicubic[0]:.2f}",
            "ssim_y_held_out": f"{ours[1]:.4f}",
            "ssim_y_bicubic": f"{bicubic[1]:.4f}",
        }
        save_checkpoint(output, family, trained.arch, trained.module.state_dict(), extra)
        print(f"wrote {output}: {minutes:.0f} minutes on {extra['hardware']}")
        if args.keep:
            shutil.copy(output, run / output.name)


if __name__ == "__main__":
    main()
