"""What many tests need: images and published-style files they make, tiny training settings,
and a Hugging Face cache seeded in its documented layout."""

import hashlib
import http.server
import json
import os
import socket
import threading
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from translator import catalog
from translator.plugins import registry
from translator.training import Trainer

ROOT = Path(__file__).resolve().parent.parent
# the shipped x2 model of one network: a real project-format file for tests that need one
MODEL = catalog.find("compact-sr-x2-clean").shipped
# the app's example photo, never trained on by the shipped models
EXAMPLE = ROOT / "translator" / "app" / "chelsea.png"
COMMIT = "0123456789abcdef0123456789abcdef01234567"
TINY_GAN = {"ngf": "8", "ndf": "8", "workers": "0", "log_every": "1", "sample_every": "0", "val_every": "0"}
# a network and loop small enough to train for a few steps in seconds
TINY_SR = {"arch": "srvgg", "scale": "2", "nf": "8", "num_conv": "2", "crop_size": "32", "batch_size": "2", "workers": "0",
           "log_every": "1", "sample_every": "2", "val_every": "0", "checkpoint_every": "0", "ema_decay": "0"}


def save_pth(state: dict, path, wrapper: str | None = None, prefix: str = "", extra: dict | None = None):
    """Save a state dict the way a published file would hold it."""
    state = {prefix + k: v for k, v in state.items()}
    obj = {wrapper: state} if wrapper else dict(state)
    obj.update(extra or {})
    torch.save(obj, path)
    return path


def photo(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A smooth, photo-like uint8 RGB image with edges, made deterministically."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    channels = []
    for c in range(3):
        fx, fy, phase = rng.uniform(0.02, 0.12), rng.uniform(0.02, 0.12), rng.uniform(0, 6)
        channels.append(0.5 + 0.35 * np.sin(fx * x + phase) * np.cos(fy * y + c))
    image = np.stack(channels, axis=2)
    image[height // 3 : 2 * height // 3, width // 4 : width // 2] *= 0.5  # a hard-edged block
    image += rng.normal(0, 0.02, image.shape)
    return (np.clip(image, 0, 1) * 255).round().astype(np.uint8)


def shapes(height: int, width: int, seed: int) -> np.ndarray:
    """Piecewise-constant rectangles: sharp edges that bicubic upscaling blurs and a network can restore."""
    rng = np.random.default_rng(seed)
    image = np.full((height, width, 3), rng.integers(0, 256, 3), dtype=np.uint8)
    for _ in range(12):
        top, left = rng.integers(0, height - 4), rng.integers(0, width - 4)
        h, w = rng.integers(4, height // 2), rng.integers(4, width // 2)
        image[top : top + h, left : left + w] = rng.integers(0, 256, 3)
    return image


def write_images(folder: Path, images) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, image in enumerate(images):
        Image.fromarray(image).save(folder / f"{i:03d}.png")
    return folder


def metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def trainer(family, data, run, **overrides) -> Trainer:
    return Trainer(registry().family(family), data, run, {k: str(v) for k, v in overrides.items()}, device="cpu")


def seed_cache(cache: Path, repo: str, filename: str, data: bytes, commit: str = COMMIT, branch: str = "main", kind: str = "model") -> Path:
    """The documented cache layout: refs/{branch} holds the commit, blobs/{sha256} the bytes, and
    snapshots/{commit}/{file} links to the blob."""
    folder = cache / (f"{kind}s--" + repo.replace("/", "--"))
    (folder / "refs").mkdir(parents=True, exist_ok=True)
    (folder / "refs" / branch).write_text(commit)
    blob = folder / "blobs" / hashlib.sha256(data).hexdigest()
    blob.parent.mkdir(exist_ok=True)
    blob.write_bytes(data)
    target = folder / "snapshots" / commit / filename
    target.parent.mkdir(parents=True, exist_ok=True)
    target.unlink(missing_ok=True)
    target.symlink_to(os.path.relpath(blob, target.parent))
    return target


class QuietServer(http.server.ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        pass  # a client that gave up on the slow repository closes its end: expected


class StandIn(http.server.BaseHTTPRequestHandler):
    """A stand-in server whose HEAD and GET share one ``answer(body)``, and that logs nothing."""

    def do_HEAD(self):
        self.answer(body=False)

    def do_GET(self):
        self.answer(body=True)

    def answer(self, body: bool):
        raise NotImplementedError

    def serve(self, data: bytes, body: bool):
        """A file as the Hub serves one: with the commit and ETag headers huggingface_hub reads."""
        self.send_response(200)
        self.send_header("X-Repo-Commit", COMMIT)
        self.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if body:
            self.wfile.write(data)

    def log_message(self, *args):
        pass


class Publisher(StandIn):
    """A stand-in for a publisher's download server (a GitHub release, a lab's web server)."""

    files: dict[str, bytes] = {}

    def do_HEAD(self):
        name = self.path.strip("/").removeprefix("files/")
        size = len(MODEL.read_bytes()) if name == "cut.safetensors" else len(Publisher.files.get(name, b""))
        self.send_response(200 if name == "cut.safetensors" or name in Publisher.files else 404)
        self.send_header("Content-Length", str(size))
        self.end_headers()

    def do_GET(self):
        name = self.path.strip("/").removeprefix("files/")
        if name == "cut.safetensors":  # the connection drops halfway
            self.send_response(200)
            self.send_header("Content-Length", str(len(MODEL.read_bytes())))
            self.end_headers()
            self.wfile.write(MODEL.read_bytes()[:1000])
            self.wfile.flush()
            self.connection.close()
            return
        if name not in Publisher.files:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(Publisher.files[name])))
        self.end_headers()
        self.wfile.write(Publisher.files[name])


def serve(handler) -> tuple[QuietServer, str]:
    """``handler`` answering on a free local port, in a thread: (server, base URL)."""
    server = QuietServer(("127.0.0.1", 0), handler)
    # a short poll: shutdown() waits one poll, half a second by default, in every test
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def launch(demo) -> None:
    """Launch the app ``demo`` on a port of its own: test processes run side by side, and
    gradio's search for a free port from 7860 up lets two of them race for one."""
    from translator.app import launch_options

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    demo.launch(prevent_thread_lock=True, quiet=True, server_port=port, **launch_options())


def write_clip(path, frames, *, codec="libx264", pix_fmt="yuv420p", clock=None, rotation=0, tone_seconds=None) -> Path:
    """A video of ``frames``, (pts in ``clock`` units, H x W x 3 uint8 RGB) pairs, encoded with
    ``codec`` in ``pix_fmt``, with a display ``rotation`` and, for ``tone_seconds``, a 440 Hz
    tone: the clips the video tests and benchmark translate."""
    from fractions import Fraction

    import av

    frames = list(frames)
    height, width = frames[0][1].shape[:2]
    with av.open(str(path), "w") as container:
        video = container.add_stream(codec, rate=25)
        video.width, video.height, video.pix_fmt = width, height, pix_fmt
        # the clock the frames are stamped in; the muxer may pick its own for the stream
        clock = video.time_base = video.codec_context.time_base = clock or Fraction(1, 25)
        if rotation:
            video.set_display_rotation(rotation)
        sound = None
        if tone_seconds:
            sound = container.add_stream("aac", rate=16000)
            sound.layout = "mono"
        for pts, pixels in frames:
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            frame.pts, frame.time_base = pts, clock
            for packet in video.encode(frame.reformat(format=pix_fmt)):
                container.mux(packet)
        for packet in video.encode(None):
            container.mux(packet)
        if sound is not None:
            samples = int(16000 * tone_seconds)
            tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(samples) / 16000)).astype(np.float32)
            for start in range(0, samples, 1024):
                chunk = av.AudioFrame.from_ndarray(tone[start : start + 1024][None], format="fltp", layout="mono")
                chunk.sample_rate, chunk.pts = 16000, start
                for packet in sound.encode(chunk):
                    container.mux(packet)
            for packet in sound.encode(None):
                container.mux(packet)
    return Path(path)


def mirrored(engine, picture) -> np.ndarray:
    """The mean of ``engine``'s results on ``picture`` and its three mirror images, turned back:
    what the pair's restoring route gives."""
    results = []
    for rows, columns in ((1, 1), (1, -1), (-1, 1), (-1, -1)):
        flipped = picture.with_pixels(np.ascontiguousarray(picture.rgb[::rows, ::columns]), None)
        results.append(engine.translate(flipped).rgb[::rows, ::columns])
    return np.mean(results, axis=0)
