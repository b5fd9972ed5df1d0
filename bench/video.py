"""Video speed and memory: the video path against the same frames as separate images.

    python -m bench.video                   # x4 at 480p and CycleGAN at 256p, then memory
    python -m bench.video --frames 4        # quicker

Speed: a generated clip is translated by ``translate_video`` (decode, translate, encode H.264,
copy audio, join segments) and, separately, its decoded frames are translated one by one by the
same engine with nothing else; the ratio is what the video path adds. Models: the shipped
compact-sr-x4 on 854x480 frames, and a CycleGAN generator of the original release's default
size (ResNet, 9 blocks, random weights: speed only) on 456x256 frames. Memory: a two-minute
clip (3,000 frames at 25 fps, 160x90) through a small x2 network, the process's resident memory
sampled as it goes; flat means the last sample is near the first.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def make_clip(path: Path, frames: int, width: int, height: int, audio: bool = True) -> Path:
    """Blocks of noise sliding sideways, 25 frames a second, with a tone: content an encoder
    has to work for."""
    from tests.helpers import write_clip

    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (height // 8 + 1, width // 8 + 1, 3), dtype=np.uint8).repeat(8, 0).repeat(8, 1)[:height, :width]
    return write_clip(path, [(number, np.roll(base, number * 3, axis=1)) for number in range(frames)], tone_seconds=frames / 25 if audio else None)


def speed(engine, clip: Path, folder: Path) -> dict:
    import av

    from translator.images import Picture
    from translator.video import translate_video

    with av.open(str(clip)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    # warmed up first: the first frame of a shape pays for the kernels' set-up, whichever runs first
    engine.translate(Picture(frames[0].astype(np.float32) / 255))
    started = time.perf_counter()
    translate_video(engine, clip, folder / f"out-{clip.stem}.mp4")
    video_s = time.perf_counter() - started
    started = time.perf_counter()
    for pixels in frames:
        engine.translate(Picture(pixels.astype(np.float32) / 255))
    images_s = time.perf_counter() - started
    return {"frames": len(frames), "video_fps": len(frames) / video_s, "images_fps": len(frames) / images_s, "overhead": video_s / images_s - 1}


def memory(folder: Path) -> dict:
    from bench.parquet_memory import rss_mb
    from tests.reference_networks import BasicSRSRVGGNetCompact, randomize
    from translator.checkpoints import load_checkpoint
    from translator.inference import Engine, Options
    from translator.video import translate_video

    torch.save(randomize(BasicSRSRVGGNetCompact(num_feat=8, num_conv=2, upscale=2)).state_dict(), folder / "small.pth")
    engine = Engine(load_checkpoint(folder / "small.pth"), options=Options(device="cpu", precision="fp32"))
    clip = make_clip(folder / "two-minutes.mp4", 3000, 160, 90)
    samples = []

    def progress(done: int, total: int) -> None:
        if done % 300 == 1:
            samples.append(round(rss_mb(), 1))

    translate_video(engine, clip, folder / "two-minutes-out.mp4", progress=progress)
    return {"frames": 3000, "rss_mb": samples, "growth_mb": round(samples[-1] - samples[0], 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from tests.reference_networks import RefResnetGenerator, randomize
    from translator.checkpoints import load_checkpoint
    from translator.inference import Engine, Options

    results = {}
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        x4 = Engine(load_checkpoint("compact-sr-x4"), options=Options(device="cpu"))
        results["compact-sr-x4, 854x480"] = {**speed(x4, make_clip(folder / "480p.mp4", args.frames, 854, 480), folder), "precision": x4.precision}
        torch.save(randomize(RefResnetGenerator(3, 3, ngf=64, n_blocks=9)).state_dict(), folder / "latest_net_G.pth")
        cyclegan = Engine(load_checkpoint(folder / "latest_net_G.pth", "cyclegan"), options=Options(device="cpu"))
        results["cyclegan resnet_9blocks, 456x256"] = {**speed(cyclegan, make_clip(folder / "256p.mp4", args.frames, 456, 256), folder),
                                                       "precision": cyclegan.precision}
        results["memory"] = memory(folder)
    for name, figures in results.items():
        print(name, json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in figures.items()}))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
