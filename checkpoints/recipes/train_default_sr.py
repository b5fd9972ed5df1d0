"""Train the default super-resolution models shipped in checkpoints/, with the project's own
training core, on the free-licensed photographs of Debian's wallpaper packages
(``wallpapers.py`` beside this file builds the corpus and records every licence).

    python checkpoints/recipes/train_default_sr.py --scale 4 --steps 16000 --threads 1 --keep runs/x4
    python checkpoints/recipes/train_default_sr.py --scale 2 --steps 6000 --threads 1 --keep runs/x2
    # a kept run continues where it stopped, to a larger --steps:
    python checkpoints/recipes/train_default_sr.py --scale 4 --steps 30000 --keep runs/x4 --resume
    # the bigger run this recipe is ready for, on a GPU:
    python checkpoints/recipes/train_default_sr.py --scale 4 --steps 300000 --size large --device cuda

Inputs are made on the fly by antialiased bicubic downscaling (``--degradation``; "mixed" adds
Real-ESRGAN-style blur, noise and JPEG to half the batches). At the end the held-out photos are
evaluated against bicubic, both downscaled cleanly and with Real-ESRGAN-style degradations, and
the numbers go into the checkpoint's metadata, which the model card repeats.
"""

import argparse
import datetime
import json
import tempfile
import time
from pathlib import Path

import torch

import wallpapers
from translator.acceleration import describe_device
from translator.checkpoints import load_checkpoint, save_checkpoint
from translator.evaluate import evaluate, report
from translator.events import Step
from translator.images import Picture
from translator.inference import Engine, Options
from translator.plugins import registry
from translator.training import Trainer

# "small" and "medium" upscale a 1 MP photo x4 on two CPU cores in a few seconds; "large" is
# realesr-general-x4v3's size, several times slower
SIZES = {"small": {"nf": "32", "num_conv": "8"}, "medium": {"nf": "48", "num_conv": "12"}, "large": {"nf": "64", "num_conv": "32"}}
ROOT = Path(__file__).resolve().parents[2]



def upscale_seconds(checkpoint: Path, device: str) -> float:
    """Wall time of one x-scale upscale of a 1 MP photo (1000 x 1000), after a warm-up."""
    engine = Engine(load_checkpoint(checkpoint), options=Options(device=device))
    photo = Picture(torch.rand(1000, 1000, 3).numpy())
    engine.translate(Picture(photo.rgb[:128, :128]))
    start = time.perf_counter()
    engine.translate(photo)
    return time.perf_counter() - start


def held_out_card(checkpoint: Path, held_out: Path, device: str) -> dict[str, str]:
    """The model card's figures: PSNR-Y and SSIM-Y on the held-out photos against bicubic, both
    downscaled cleanly and damaged the Real-ESRGAN way, and the seconds of a 1 MP upscale."""
    names, scores = evaluate([checkpoint], held_out, device)
    print(report(names, scores))
    _, damaged = evaluate([checkpoint], held_out, device, "realesrgan")
    print(report(names, damaged))
    ours, bicubic = scores[checkpoint.name], scores["bicubic"]
    return {
        "held_out": ", ".join(names),
        "psnr_y_held_out": f"{ours.mean()[0]:.2f}",
        "psnr_y_bicubic": f"{bicubic.mean()[0]:.2f}",
        "ssim_y_held_out": f"{ours.mean()[1]:.4f}",
        "ssim_y_bicubic": f"{bicubic.mean()[1]:.4f}",
        "psnr_y_per_photo": json.dumps({n: [round(a, 2), round(b, 2)] for n, a, b in zip(names, ours.psnr, bicubic.psnr)}),
        "psnr_y_degraded_per_photo": json.dumps({n: [round(a, 2), round(b, 2)] for n, a, b in zip(names, damaged[checkpoint.name].psnr, damaged["bicubic"].psnr)}),
        "seconds_1mp_cpu": f"{upscale_seconds(checkpoint, device):.1f}",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=int, choices=(2, 4), default=4)
    parser.add_argument("--steps", type=int, default=16000)
    parser.add_argument("--halve-every", type=int, help="steps between learning-rate halvings (default: steps/2)")
    parser.add_argument("--size", choices=sorted(SIZES), default="small")
    parser.add_argument("--degradation", choices=("bicubic", "mixed"), default="bicubic")
    parser.add_argument("--clean-share", type=float, default=0.5, help="with --degradation mixed: the share of clean batches")
    parser.add_argument("--jpeg-share", type=float, default=0.0, help="with --degradation mixed: the share of batches only saved as JPEG")
    parser.add_argument("--lr", default="5e-4")
    parser.add_argument("--start", help="fine-tune these weights (a project checkpoint of the same size) instead of starting afresh")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    # a GPU wants larger batches and more loader processes than the CPU runs that made the shipped models
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--output", help="default: checkpoints/compact-sr-x{scale}.safetensors")
    parser.add_argument("--keep", help="keep the run folder (metrics, samples, resume state) here")
    parser.add_argument("--resume", action="store_true", help="continue the run kept in --keep to --steps")
    parser.add_argument("--corpus", help="a corpus wallpapers.py built already (default: build one)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    output = Path(args.output or ROOT / "checkpoints" / f"compact-sr-x{args.scale}.safetensors")
    family = registry().family("esrgan")

    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(args.corpus) if args.corpus else Path(tmp) / "corpus"
        if not args.corpus:
            wallpapers.build(corpus)
        data, held_out = corpus / "train", corpus / "held-out"
        run = Path(args.keep) if args.keep else Path(tmp) / "run"
        settings = {
            "arch": "srvgg", **SIZES[args.size], "scale": str(args.scale), "steps": str(args.steps),
            "batch_size": str(args.batch_size), "crop_size": str(24 * args.scale), "lr": args.lr, "lr_halve_every": str(args.halve_every or max(1, args.steps // 2)),
            "degradation": args.degradation, "clean_share": str(args.clean_share), "jpeg_share": str(args.jpeg_share), "ema_decay": "0.999", "workers": str(args.workers), "cache_images": "64", "log_every": "100",
            "sample_every": "2000", "val_every": "0", "checkpoint_every": "500",
        }

        def progress(event: dict) -> None:
            if isinstance(event, Step) and event.step % 500 == 0:
                print(f"step {event.step}: pixel loss {event.losses['pixel']:.4f}, {event.images_per_s:.0f} images/s", flush=True)

        started = datetime.datetime.now(datetime.timezone.utc)
        if args.resume:
            Trainer(None, None, run, {"steps": str(args.steps)}, device=args.device, on_event=progress, resume=True).run()
        else:
            Trainer(family, data, run, settings, checkpoint=args.start, device=args.device, on_event=progress).run()
        minutes = sum(r.get("minutes", 0) for r in _sessions(run)) + (datetime.datetime.now(datetime.timezone.utc) - started).total_seconds() / 60
        _log_session(run, minutes - sum(r.get("minutes", 0) for r in _sessions(run)))

        generator = run / "generator.safetensors"
        trained = load_checkpoint(generator)
        extra = {
            "description": f"x{args.scale} photo upscaler (compact, trained by this project)",
            "recipe": f"checkpoints/recipes/train_default_sr.py --scale {args.scale} --steps {args.steps} --size {args.size} --degradation {args.degradation}"
            + (f" --clean-share {args.clean_share} --jpeg-share {args.jpeg_share}" if args.degradation == "mixed" else "") + (f" --lr {args.lr} --start {Path(args.start).name}" if args.start else ""),
            "data": wallpapers.DATA,
            "steps": str(args.steps),
            "hardware": describe_device(args.device),
            "minutes": f"{minutes:.0f}",
            "date": started.date().isoformat(),
            **held_out_card(generator, held_out, args.device),
        }
        save_checkpoint(output, family, trained.arch, trained.module.state_dict(), extra)
        print(json.dumps(extra, indent=1))
        print(f"wrote {output}: {minutes:.0f} minutes on {extra['hardware']}")


def _sessions(run: Path) -> list[dict]:
    path = run / "recipe_sessions.json"
    return json.loads(path.read_text()) if path.is_file() else []


def _log_session(run: Path, minutes: float) -> None:
    # a resumed run's training time is the sum of its sessions
    (run / "recipe_sessions.json").write_text(json.dumps(_sessions(run) + [{"minutes": minutes}]))


if __name__ == "__main__":
    main()
