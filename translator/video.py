"""Video in, video out: every frame through the engine, the rest of the file untouched.

Decoding and encoding go through PyAV (FFmpeg's libraries inside its wheel). Frames stream
through one at a time, so a clip is never held in memory. Audio and subtitle packets are
copied as they are, never re-encoded; each translated frame keeps its presentation timestamp
in the source's time base, so a variable frame rate and the offset between audio and video
survive. The rotation flag and the colour range are carried over. The limits (duration,
resolution, result size) are checked from the container's header before any frame is decoded,
and the result takes its name only once it is complete.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from . import units
from .errors import TranslatorError, one_line

SUFFIXES = {".mp4": "mp4", ".mkv": "matroska", ".mov": "mov", ".webm": "webm"}
# codec name -> (FFmpeg encoder, pixel format, how its quality is set)
CODECS = {
    "h264": ("libx264", "yuv420p"),
    "h265": ("libx265", "yuv420p"),
    "vp9": ("libvpx-vp9", "yuv420p"),
    "ffv1": ("ffv1", "yuv444p"),
}
# what each container can hold
CONTAINS = {"mp4": ("h264", "h265", "vp9"), "mov": ("h264", "h265"), "matroska": tuple(CODECS), "webm": ("vp9",)}
DEFAULT_CRF = 18


def max_seconds() -> float:
    return float(os.environ.get("TRANSLATOR_MAX_VIDEO_SECONDS", 3 * 3600))


def is_video(path: str | os.PathLike) -> bool:
    return Path(path).suffix.lower() in SUFFIXES


@dataclass(frozen=True)
class VideoOptions:
    # h264, h265, vp9 or ffv1 (lossless); None: the container's first (vp9 for .webm)
    codec: str | None = None
    # constant rate factor: lower is better and larger (h264's 18 is visually lossless)
    crf: int = DEFAULT_CRF
    # the frames translated, by index from 0, end excluded; None: all
    start: int = 0
    end: int | None = None
    # instance normalisation from a running average of recent frames' statistics instead of
    # each frame's own: steady tones from a CycleGAN (None: each frame on its own)
    steady: float | None = None


def parse_frames(text: str | None) -> tuple[int, int | None]:
    """``START:END`` (either may be left out) as frame indices."""
    if not text:
        return 0, None
    start, sep, end = text.partition(":")
    try:
        first, last = int(start or 0), int(end) if end else None
    except ValueError:
        first = -1
        last = None
    if not sep or first < 0 or (last is not None and last <= first):
        raise TranslatorError(f"--frames takes START:END frame numbers with START < END (e.g. 0:48), not {text!r}")
    return first, last


def probe(path: Path):
    """The opened container and its first video stream, with its header checked against the
    limits: a clip too long or too large is refused before decoding."""
    import av

    from .images import MAX_PIXELS

    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError, ValueError) as error:
        raise TranslatorError(f"{path.name} is not a video this tool can read ({one_line(error)})") from None
    try:
        if not container.streams.video:
            raise TranslatorError(f"{path.name} holds no video stream")
        stream = container.streams.video[0]
        width, height = stream.codec_context.width, stream.codec_context.height
        seconds = float(container.duration / av.time_base) if container.duration else float(stream.duration * stream.time_base) if stream.duration else 0.0
        if not width or not height:
            raise TranslatorError(f"{path.name}: its video stream gives no frame size")
        if seconds > max_seconds():
            raise TranslatorError(f"{path.name} lasts {units.duration(seconds)}, over the {units.duration(max_seconds())} limit (TRANSLATOR_MAX_VIDEO_SECONDS)")
        if width * height > MAX_PIXELS:
            raise TranslatorError(f"{path.name}'s frames are {width}x{height}, over the {MAX_PIXELS / 1e6:.0f} MP limit")
    except BaseException:
        container.close()
        raise
    return container, stream


def translate_video(engine, source: Path, target: Path, options: VideoOptions | None = None, progress=None) -> str:
    """Translate ``source`` into ``target`` (a .mp4, .mkv, .mov or .webm); a line saying what was
    written. ``progress(done, total)`` follows the frames."""
    import av

    from .files import atomic_path
    from .images import Picture

    options = options or VideoOptions()
    kind = SUFFIXES.get(target.suffix.lower())
    if kind is None:
        raise TranslatorError(f"{target.name}: a video is written as {', '.join(SUFFIXES)}")
    codec = options.codec or CONTAINS[kind][0]
    if codec not in CODECS:
        raise TranslatorError(f"unknown codec {codec!r} (use {', '.join(CODECS)})")
    if codec not in CONTAINS[kind]:
        raise TranslatorError(f"a {target.suffix} file cannot hold {codec} (it holds {', '.join(CONTAINS[kind])})")
    if not 0 <= options.crf <= 63:
        raise TranslatorError(f"--crf must be from 0 to 63, not {options.crf}")
    container, stream = probe(source)
    scale = engine.scale
    width, height = stream.codec_context.width * scale, stream.codec_context.height * scale
    from .inference import MAX_OUTPUT_PIXELS

    if width * height > MAX_OUTPUT_PIXELS:
        container.close()
        raise TranslatorError(f"the result's frames would be {width}x{height}, over the {MAX_OUTPUT_PIXELS / 1e6:.0f} MP limit")
    encoder, pixel_format = CODECS[codec]
    # 4:2:0 needs even sides: an odd one gets one more row or column, a copy of its last
    even_w, even_h = (width + width % 2, height + height % 2) if pixel_format == "yuv420p" else (width, height)
    copied = [s for s in container.streams if s.type in ("audio", "subtitle")]
    total = stream.frames or None
    if total is not None:
        total = max(0, min(total, options.end or total) - options.start)
    done = 0
    steadied = steady_normalisation(engine.module, options.steady) if options.steady else contextlib.nullcontext(0)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with steadied as layers, atomic_path(target, target.suffix) as temp, av.open(str(temp), mode="w", format=kind) as output:
            if options.steady and not layers:
                raise TranslatorError("--steady applies to networks that normalise each image on its own (instance norm, as CycleGAN's); this one does not")
            out_video = output.add_stream(encoder, rate=stream.average_rate or stream.guessed_rate or Fraction(25))
            out_video.width, out_video.height, out_video.pix_fmt = even_w, even_h, pixel_format
            # the source's own clock: each frame keeps its timestamp exactly, gaps and all
            out_video.time_base = out_video.codec_context.time_base = stream.time_base
            out_video.codec_context.color_range = stream.codec_context.color_range
            out_video.codec_context.options = _quality(codec, options.crf)
            rotation = _rotation(source)
            if rotation:  # said in the header, so before anything is muxed
                out_video.set_display_rotation(rotation)
            out_copies = {}
            for original in copied:
                try:
                    out_copies[original.index] = output.add_stream_from_template(original)
                except (ValueError, av.error.FFmpegError) as error:  # a subtitle format the container cannot hold
                    print(f"note: left out {original.type} stream {original.index} ({one_line(error)})", file=sys.stderr)
            window = _window(stream, options)
            index = 0
            for packet in container.demux(stream, *copied):
                if packet.stream.index in out_copies:
                    if packet.dts is not None and window.holds(packet):
                        packet.stream = out_copies[packet.stream.index]
                        output.mux(packet)
                    continue
                if packet.stream is not stream:
                    continue
                for frame in _decoded(packet, source):
                    number, index = index, index + 1
                    if number < options.start or (options.end is not None and number >= options.end):
                        continue
                    result = engine.translate(Picture(frame.to_ndarray(format="rgb24").astype(np.float32) / 255))
                    pixels = np.round(result.rgb * 255).astype(np.uint8)
                    if pixels.shape[:2] != (even_h, even_w):
                        pixels = np.pad(pixels, ((0, even_h - pixels.shape[0]), (0, even_w - pixels.shape[1]), (0, 0)), mode="edge")
                    made = av.VideoFrame.from_ndarray(pixels, format="rgb24")
                    made.pts, made.time_base = frame.pts, stream.time_base
                    made.color_range = frame.color_range
                    for encoded in out_video.encode(made.reformat(format=pixel_format)):
                        output.mux(encoded)
                    done += 1
                    if progress is not None:
                        progress(done, total or done)
            for encoded in out_video.encode(None):
                output.mux(encoded)
            if not done:
                raise TranslatorError(f"{source.name} has no frames in {options.start}:{'' if options.end is None else options.end}")
    except av.error.FFmpegError as error:
        raise TranslatorError(f"cannot write {target.name} ({one_line(error)})") from None
    finally:
        container.close()
    kept = f"; {len(out_copies)} audio/subtitle stream{'s' if len(out_copies) != 1 else ''} copied as they were" if out_copies else ""
    padded = f"; padded to {even_w}x{even_h} for {codec}" if (even_w, even_h) != (width, height) else ""
    return f"{target} ({done} frames, {width}x{height}, {codec} crf {options.crf}{kept}{padded})"


@contextlib.contextmanager
def steady_normalisation(module, keep: float):
    """Instance normalisation of ``module`` from an exponential average of the statistics of the
    frames seen so far (each frame weighs ``1 - keep``) rather than each frame's own, while the
    block runs: a network that normalises each image on its own changes tone from frame to
    frame as its content moves (CycleGAN's flicker). Yields how many layers it steadied."""
    import torch

    if not 0 < keep < 1:
        raise TranslatorError(f"--steady must be between 0 and 1 (the weight of the frames before), not {keep}")
    layers = [m for m in module.modules() if isinstance(m, torch.nn.modules.instancenorm._InstanceNorm)]
    for layer in layers:
        layer.forward = functools.partial(_steady_forward, layer, keep, {})
    try:
        yield len(layers)
    finally:
        for layer in layers:
            del layer.forward


def _steady_forward(layer, keep: float, seen: dict, x):
    import torch

    mean = x.mean((2, 3), keepdim=True)
    var = x.var((2, 3), keepdim=True, unbiased=False)
    if "mean" in seen and seen["mean"].shape == mean.shape:
        mean = seen["mean"] * keep + mean * (1 - keep)
        var = seen["var"] * keep + var * (1 - keep)
    seen["mean"], seen["var"] = mean.detach(), var.detach()
    y = (x - mean) * torch.rsqrt(var + layer.eps)
    if layer.affine:
        y = y * layer.weight[None, :, None, None] + layer.bias[None, :, None, None]
    return y


def flicker(frames) -> float:
    """Mean absolute change between consecutive frames (H x W x 3 arrays), in 8-bit levels."""
    frames = [np.asarray(f, dtype=np.float32) for f in frames]
    if len(frames) < 2:
        return 0.0
    return float(np.mean([np.abs(b - a).mean() for a, b in zip(frames, frames[1:])]))


def _rotation(source: Path) -> float:
    """The display rotation the first frame carries (FFmpeg gives it per frame, not per stream)."""
    import av

    with av.open(str(source)) as container:
        for frame in container.decode(video=0):
            return frame.rotation
    return 0


def _quality(codec: str, crf: int) -> dict[str, str]:
    if codec == "ffv1":
        return {}  # lossless
    if codec == "vp9":
        return {"crf": str(crf), "b": "0"}  # constant quality needs the bit rate unset
    return {"crf": str(crf)}


def _decoded(packet, source: Path):
    import av

    try:
        return packet.decode()
    except av.error.FFmpegError as error:
        raise TranslatorError(f"{source.name} is damaged at {float(packet.pts * packet.time_base) if packet.pts is not None else '?'} s ({one_line(error)})") from None


@dataclass(frozen=True)
class _Window:
    """The stretch of time the chosen frames cover: the audio kept with them."""

    begin: float | None
    end: float | None

    def holds(self, packet) -> bool:
        if packet.pts is None or (self.begin is None and self.end is None):
            return True
        at = float(packet.pts * packet.time_base)
        return (self.begin is None or at >= self.begin) and (self.end is None or at < self.end)


def _window(stream, options: VideoOptions) -> _Window:
    if options.start == 0 and options.end is None:
        return _Window(None, None)
    rate = stream.average_rate or stream.guessed_rate or Fraction(25)
    begin = float(stream.start_time * stream.time_base) if stream.start_time else 0.0
    return _Window(begin + options.start / float(rate), None if options.end is None else begin + options.end / float(rate))
