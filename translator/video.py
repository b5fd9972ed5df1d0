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
import heapq
import json
import os
import queue
import shutil
import sys
import threading
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from . import units
from .errors import TranslatorError, one_line

SUFFIXES = {".mp4": "mp4", ".mkv": "matroska", ".mov": "mov", ".webm": "webm"}
# codec name -> (FFmpeg encoder, the pixel formats it is offered with, the default first)
CODECS = {
    "h264": ("libx264", ("yuv420p", "yuv444p")),
    "h265": ("libx265", ("yuv420p", "yuv420p10le", "yuv444p")),
    "vp9": ("libvpx-vp9", ("yuv420p", "yuv444p")),
    "ffv1": ("ffv1", ("yuv444p", "yuv420p")),
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
    # the encoded pixel format (None: the codec's first in CODECS; 4:2:0 plays everywhere)
    pixel_format: str | None = None


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


def translate_video(engine, source: Path, target: Path, options: VideoOptions | None = None, progress=None, rank: int = 0, world: int = 1) -> str:
    """Translate ``source`` into ``target`` (a .mp4, .mkv, .mov or .webm); a line saying what was
    written. ``progress(done, total)`` follows the frames.

    The frames are encoded in segments of ``segment_frames()``, each a file of its own beside the
    target, written whole or not at all; the segments are then joined, without re-encoding, with
    the source's audio. A job killed and started again with the same command keeps the segments
    it finished, so the result is the same file an uninterrupted job writes. Under torchrun,
    process ``rank`` of ``world`` encodes every world-th segment and the first process joins them.
    """
    import av

    options = options or VideoOptions()
    job = _plan(engine, source, target, options)
    try:
        try:
            if rank == 0:
                _keep_parts_of_the_same_job(job, engine, options)
            _barrier(world)  # no process writes a segment before the folder is known to be this job's
            done = _encode_segments(job, engine, options, progress, rank, world)
            _barrier(world)
            if rank != 0:
                return f"process {rank} of {world}: {done} frames of {source.name} translated"
            _join(job, options)
        except av.error.FFmpegError as error:  # what FFmpeg refuses to write, said in one line
            raise TranslatorError(f"cannot write {target.name} ({one_line(error)})") from None
    except BaseException:
        if rank == 0 and not any(job.parts.glob("part-*")):
            shutil.rmtree(job.parts, ignore_errors=True)  # no finished segment a rerun could keep
        raise
    finally:
        job.container.close()
    shutil.rmtree(job.parts, ignore_errors=True)
    kept = f"; {job.copied} audio/subtitle stream{'s' if job.copied != 1 else ''} copied as they were" if job.copied else ""
    padded = f"; padded to {job.size[0]}x{job.size[1]} for {job.pixel_format}" if job.size != job.result else ""
    quality = "" if job.codec == "ffv1" else f" crf {options.crf}"  # ffv1 is lossless
    return f"{target} ({job.frames} frames, {job.result[0]}x{job.result[1]}, {job.codec} {job.pixel_format}{quality}{kept}{padded})"


def translate_to_frames(engine, source: Path, folder: Path, options: VideoOptions | None = None, progress=None, rank: int = 0, world: int = 1) -> str:
    """Translate ``source`` into a PNG per frame in ``folder`` (000000.png, ...), for people who
    edit, with ``timestamps.txt`` giving each frame's time in seconds. A frame already written
    (by a killed job) is kept; under torchrun, each process writes every world-th frame."""
    from .images import write_image

    options = options or VideoOptions()
    container, stream = probe(source)
    folder.mkdir(parents=True, exist_ok=True)
    times, written = [], 0
    try:
        for number, frame in _chosen(container, stream, source, options):
            if number == 0:  # every rank and resumed job picks from the same frame
                engine = engine.for_picture(_picture(frame))
            times.append(f"{number:06d}.png {float(frame.pts * stream.time_base) if frame.pts is not None else float('nan'):.6f}")
            path = folder / f"{number:06d}.png"
            if number % world != rank or path.is_file():
                continue
            write_image(engine.translate(_picture(frame)), path)
            written += 1
            if progress is not None:
                progress(len(times), stream.frames or len(times))
    finally:
        container.close()
    if rank == 0:
        from .files import atomic_write

        atomic_write(folder / "timestamps.txt", ("\n".join(times) + "\n").encode())
    return f"{folder} ({len(times)} frames as PNG, {written} written now; times in timestamps.txt; the audio stays in {source.name})"


def segment_frames() -> int:
    return int(os.environ.get("TRANSLATOR_VIDEO_SEGMENT_FRAMES", 240))


@dataclass
class _Job:
    source: Path
    target: Path
    kind: str
    codec: str
    container: object
    stream: object
    # the network's result and the encoded size (4:2:0 wants even sides)
    result: tuple[int, int]
    size: tuple[int, int]
    parts: Path
    pixel_format: str
    crf: int = DEFAULT_CRF
    copied: int = 0
    frames: int = 0


def _plan(engine, source: Path, target: Path, options: VideoOptions) -> _Job:
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
    formats = CODECS[codec][1]
    pixel_format = options.pixel_format or formats[0]
    if pixel_format not in formats:
        raise TranslatorError(f"{codec} is offered with pixel formats {', '.join(formats)}, not {pixel_format!r}")
    from .inference import MAX_OUTPUT_PIXELS

    container, stream = probe(source)
    width, height = stream.codec_context.width * engine.scale, stream.codec_context.height * engine.scale
    if width * height > MAX_OUTPUT_PIXELS:
        container.close()
        raise TranslatorError(f"the result's frames would be {width}x{height}, over the {MAX_OUTPUT_PIXELS / 1e6:.0f} MP limit")
    # 4:2:0 needs even sides: an odd one gets one more row or column, a copy of its last
    size = (width + width % 2, height + height % 2) if "420" in pixel_format else (width, height)
    return _Job(source, target, kind, codec, container, stream, (width, height), size, target.parent / f".{target.name}.parts", pixel_format, options.crf)


def _keep_parts_of_the_same_job(job: _Job, engine, options: VideoOptions) -> None:
    """Segments left by a killed job are kept only if they were made by this same job."""
    from .files import sweep_stale

    made_by = {
        "source": str(job.source.resolve()), "source_size": job.source.stat().st_size, "source_mtime": job.source.stat().st_mtime_ns,
        "network": str(engine.source), "network_size": Path(engine.source).stat().st_size if engine.source and Path(engine.source).is_file() else None,
        "architecture": engine.arch.to_json(), "settings": repr(engine.settings), "options": repr(options), "segment": segment_frames(),
        "precision": str(engine.dtype),
    }
    record = job.parts / "job.json"
    try:
        same = json.loads(record.read_text()) == made_by
    except (OSError, ValueError):
        same = False
    if not same:
        shutil.rmtree(job.parts, ignore_errors=True)
        job.parts.mkdir(parents=True, exist_ok=True)
        record.write_text(json.dumps(made_by))
    sweep_stale(job.parts)  # a segment a killed process was writing


def _part(job: _Job, number: int) -> Path:
    return job.parts / f"part-{number:05d}.nut"


def _encode_segments(job: _Job, engine, options: VideoOptions, progress, rank: int, world: int) -> int:
    """Translate and encode the segments this process owns that are not on disk yet; the
    number of frames it translated."""
    stream, every = job.stream, segment_frames()
    total = stream.frames or None
    if total is not None:
        total = max(0, min(total, options.end or total) - options.start)
    translated, writer = 0, None
    steadied = steady_normalisation(engine.module, options.steady) if options.steady else contextlib.nullcontext([])
    try:
        with steadied as averages:
            if options.steady and not averages:
                raise TranslatorError("--steady applies to networks that normalise each image on its own (instance norm, as CycleGAN's); this one does not")
            for number, frame in _chosen(job.container, stream, job.source, options):
                if number == 0:  # every rank and resumed job picks from the same frame
                    engine = engine.for_picture(_picture(frame))
                job.frames += 1
                segment = number // every
                if writer is not None and writer.segment != segment:
                    writer = writer.close()
                if segment % world != rank or _part(job, segment).is_file():
                    continue
                if writer is None:
                    writer = _Segment(job, segment, stream)
                    for average in averages:  # each segment starts afresh: a resumed job makes the same frames
                        average.clear()
                writer.write(engine.translate(_picture(frame)).rgb, frame.pts, frame.color_range)
                translated += 1
                if progress is not None:
                    progress(job.frames, total or job.frames)
            if writer is not None:
                writer = writer.close()
    except BaseException:
        if writer is not None:
            writer.abandon()
        raise
    return translated


class _Segment:
    """One segment's file, encoded under a temporary name and renamed once complete. Frames are
    converted and encoded by a thread of its own, while the next frame is translated: at x4 on
    480p, encoding a frame took a fifth of the time translating it did."""

    def __init__(self, job: _Job, segment: int, stream):
        import av

        from .files import atomic_path

        self.segment = segment
        self._atomic = atomic_path(_part(job, segment), ".nut")
        temp = self._atomic.__enter__()
        encoder, pixel_format = CODECS[job.codec][0], job.pixel_format
        self.output = av.open(str(temp), mode="w", format="nut")
        video = self.output.add_stream(encoder, rate=stream.average_rate or stream.guessed_rate or Fraction(25))
        video.width, video.height = job.size
        video.pix_fmt = pixel_format
        # the source's own clock: each frame keeps its timestamp exactly, gaps and all
        video.time_base = video.codec_context.time_base = stream.time_base
        video.codec_context.color_range = stream.codec_context.color_range
        video.codec_context.options = _quality(job.codec, job.crf)
        self.video, self.format, self.time_base = video, pixel_format, stream.time_base
        # two frames in hand at most: memory stays that of a few frames
        self._queue = queue.Queue(maxsize=2)
        self._failed: BaseException | None = None
        self._thread = threading.Thread(target=self._encode, name=f"encode segment {segment}", daemon=True)
        self._thread.start()

    def write(self, rgb: np.ndarray, pts: int, color_range) -> None:
        """A translated frame (H x W x 3 in [0, 1]) at ``pts``, in the source's time base."""
        self._check()
        self._queue.put((rgb, pts, color_range))

    def _encode(self) -> None:
        import av

        try:
            while (item := self._queue.get()) is not None:
                rgb, pts, color_range = item
                pixels = np.round(rgb * 255).astype(np.uint8)
                width, height = self.video.width, self.video.height
                if pixels.shape[:2] != (height, width):
                    pixels = np.pad(pixels, ((0, height - pixels.shape[0]), (0, width - pixels.shape[1]), (0, 0)), mode="edge")
                frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
                frame.pts, frame.time_base, frame.color_range = pts, self.time_base, color_range
                for packet in self.video.encode(frame.reformat(format=self.format)):
                    self.output.mux(packet)
            for packet in self.video.encode(None):
                self.output.mux(packet)
        except BaseException as error:  # said by the next write or by close
            self._failed = error
            while self._queue.get() is not None:  # let the writer go on to its close
                pass

    def _check(self) -> None:
        if self._failed is not None:
            raise TranslatorError(f"encoding failed ({one_line(self._failed, named=True)})")

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join()
        self.output.close()
        if self._failed is not None:
            self._atomic.__exit__(type(self._failed), self._failed, None)  # the partial segment goes
            self._check()
        self._atomic.__exit__(None, None, None)

    def abandon(self) -> None:
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()
        self.output.close()
        error = RuntimeError("abandoned")
        self._atomic.__exit__(RuntimeError, error, None)


def _chosen(container, stream, source: Path, options: VideoOptions):
    """The frames ``options`` chose (``--frames``), decoded in presentation order, with their
    numbers counted from the first chosen; a one-line error when there are none. Decoding stops
    at the last one."""
    count = 0
    for index, frame in enumerate(_frames(container, stream, source)):
        if options.end is not None and index >= options.end:
            break
        if index >= options.start:
            count += 1
            yield index - options.start, frame
    if not count:
        raise TranslatorError(f"{source.name} has no frames in {options.start}:{'' if options.end is None else options.end}")


def _frames(container, stream, source: Path):
    """Every decoded frame of ``stream``, in presentation order."""
    for packet in container.demux(stream):
        yield from _decoded(packet, source)


def _picture(frame):
    from .images import Picture

    return Picture(frame.to_ndarray(format="rgb24").astype(np.float32) / 255)


def _barrier(world: int) -> None:
    if world > 1:
        import torch.distributed as dist

        dist.barrier()


def _join(job: _Job, options: VideoOptions) -> None:
    """The segments' packets, as they are, with the source's audio and subtitles, into the target."""
    import av

    from .files import atomic_path

    every = segment_frames()
    parts = [_part(job, n) for n in range(-(-job.frames // every))]
    missing = [p.name for p in parts if not p.is_file()]
    if missing:
        raise TranslatorError(f"segments {', '.join(missing[:3])} of {job.target.name} were not written; run the same command again to finish")
    window = _window(job.stream, options)
    with av.open(str(job.source)) as source, atomic_path(job.target, job.target.suffix) as temp:
        with av.open(str(temp), mode="w", format=job.kind) as output:
            inputs = [av.open(str(p)) for p in parts]
            try:
                video = output.add_stream_from_template(inputs[0].streams.video[0])
                video.time_base = job.stream.time_base
                rotation = _rotation(job.source)
                if rotation:  # said in the header, so before anything is muxed
                    video.set_display_rotation(rotation)
                copies = {}
                for original in source.streams:
                    if original.type in ("audio", "subtitle"):
                        try:
                            copies[original.index] = output.add_stream_from_template(original)
                        except (ValueError, av.error.FFmpegError) as error:  # a subtitle format the container cannot hold
                            print(f"note: left out {original.type} stream {original.index} ({one_line(error)})", file=sys.stderr)
                job.copied = len(copies)
                videos = (packet for part in inputs for packet in part.demux(video=0) if packet.dts is not None)
                # demux() of no streams would read them all
                others = (packet for packet in source.demux(*[source.streams[i] for i in copies]) if packet.dts is not None and window.holds(packet)) if copies else ()
                # in time order, as a player reads them, so the muxer never holds a stream back
                for packet in heapq.merge(videos, others, key=lambda p: float(p.dts * p.time_base)):
                    packet.stream = video if packet.stream.type == "video" else copies[packet.stream.index]
                    output.mux(packet)
            finally:
                for part in inputs:
                    part.close()


@contextlib.contextmanager
def steady_normalisation(module, keep: float):
    """Instance normalisation of ``module`` from an exponential average of the statistics of the
    frames seen so far (each frame weighs ``1 - keep``) rather than each frame's own, while the
    block runs: a network that normalises each image on its own changes tone from frame to
    frame as its content moves (CycleGAN's flicker). Yields each steadied layer's averages (a
    dict); clearing them starts afresh."""
    import torch

    if not 0 < keep < 1:
        raise TranslatorError(f"--steady must be between 0 and 1 (the weight of the frames before), not {keep}")
    layers = [m for m in module.modules() if isinstance(m, torch.nn.modules.instancenorm._InstanceNorm)]
    averages = [{} for _ in layers]
    for layer, seen in zip(layers, averages):
        layer.forward = functools.partial(_steady_forward, layer, keep, seen)
    try:
        yield averages
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
    """Constant quality, and no frame that refers ahead: each segment's timestamps then rise
    from its first packet, so segments join end to end without re-encoding."""
    if codec == "ffv1":
        return {}  # lossless, every frame on its own
    if codec == "vp9":
        return {"crf": str(crf), "b": "0", "lag-in-frames": "0", "auto-alt-ref": "0"}
    if codec == "h265":
        return {"crf": str(crf), "x265-params": "bframes=0:log-level=error"}
    return {"crf": str(crf), "bf": "0"}


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
