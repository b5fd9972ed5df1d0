"""What the app does, without the page: translate, train, list, pull, upload and publish.

Nothing here knows about Gradio; ``page.py`` puts widgets and API endpoints on top, and a test
or another front end can drive ``Studio`` directly. Every input arrives as the page gives it
(text, numbers, file paths of uploads) and is checked here, so both the form and the API get
the same one-line errors.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import shutil
import tempfile
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .. import catalog, units
from ..errors import TranslatorError
from ..family import make_settings
from ..files import Storage, writing_within
from ..hub import load_or_shipped
from ..images import QUALITY, Picture
from ..plugins import Registry, registry as default_registry
from ..refs import is_hub_ref, parse_ref
from ..runs import RESUME_FILE
from .jobs import DEVICE_LOCK, TrainingJob
from .workspace import Workspace, check_name, folder_bytes

# The before/after slider shows at most this many pixels; the download is always full size.
# about a full-HD screen: previews travel to the browser, the full result only on download
PREVIEW_PIXELS = 2_000_000
# the side of the 100% comparison: about what a phone shows across, and a laptop's quarter
FULL_SIZE_SIDE = 384
# engines (networks on the device) kept between requests, most recently used first
ENGINES_KEPT = 2
log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]

try:  # ZeroGPU Spaces lend a GPU only inside functions wrapped by spaces.GPU
    import spaces

    on_gpu = spaces.GPU
except ImportError:

    def on_gpu(fn):
        return fn


class Turns:
    """Translations taken in turns: ``running`` at once, the rest waiting here, and each client
    with at most ``per_client`` waiting or running, so no visitor fills the line for the others."""

    def __init__(self, running: int, per_client: int):
        self.per_client = per_client
        self._slots = threading.Semaphore(running)
        self._held: Counter[str] = Counter()
        self._lock = threading.Lock()

    def held(self, client: str) -> int:
        """How many translations of ``client`` are waiting or running."""
        return self._held[client]

    @contextmanager
    def turn(self, client: str):
        with self._lock:
            if self._held[client] >= self.per_client:
                raise TranslatorError(
                    f"you already have {self._held[client]} translations waiting or running here; "
                    "send the next when one has finished (TRANSLATOR_JOBS_PER_CLIENT)"
                )
            self._held[client] += 1
        try:
            with self._slots:
                yield
        finally:
            with self._lock:
                self._held[client] -= 1
                if not self._held[client]:
                    del self._held[client]


@dataclass
class Translation:
    """One translated image: the file written for download (lossless PNG unless another
    format was asked for), and both pictures."""

    path: Path
    source: Picture
    result: Picture
    # what translated it, how long it took (loading included), and a fallback's note
    model: str = ""
    seconds: float = 0.0
    note: str = ""
    quality: int = 100
    # the precision the network ran in, and why ("bf16: 73.6 dB ... off fp32 ...")
    precision: str = ""

    def previews(self) -> tuple[np.ndarray, np.ndarray]:
        """8-bit arrays for the before/after slider: the input scaled to the result's size, and
        the result, both within ``PREVIEW_PIXELS``; made from the pictures in memory."""
        height, width = self.result.height, self.result.width
        scale = min(1.0, (PREVIEW_PIXELS / (height * width)) ** 0.5)
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        return _displayable(self.source, size), _displayable(self.result, size)

    def at_full_size(self, side: int = FULL_SIZE_SIDE) -> tuple[np.ndarray, np.ndarray]:
        """The centre of the result at 100% (at most ``side`` pixels a side), and the same part
        of the input scaled up by bicubic to it: an upscaler is judged at 100%, not shrunk."""
        width, height = min(side, self.result.width), min(side, self.result.height)
        left, top = (self.result.width - width) // 2, (self.result.height - height) // 2
        after = self.result.with_pixels(self.result.rgb[top : top + height, left : left + width],
                                        None if self.result.alpha is None else self.result.alpha[top : top + height, left : left + width])
        fx, fy = self.source.width / self.result.width, self.source.height / self.result.height
        x0, y0 = int(left * fx), int(top * fy)
        x1, y1 = max(x0 + 1, round((left + width) * fx)), max(y0 + 1, round((top + height) * fy))
        region = self.source.with_pixels(self.source.rgb[y0:y1, x0:x1], None if self.source.alpha is None else self.source.alpha[y0:y1, x0:x1])
        return _displayable(region, (width, height)), _displayable(after, (width, height))

    def describe(self) -> str:
        from ..images import WRITTEN

        result, kind = self.result, WRITTEN[self.path.suffix.lower()]
        lossless = kind == "PNG" or self.quality == 100 and kind == "WebP"
        alpha = result.alpha is not None and kind != "JPEG"
        mode = ("L" if result.grayscale else "RGB") + ("A" if alpha else "")
        depth = ", 16-bit" if result.bits == 16 and kind == "PNG" else ""
        quality = "" if lossless else f", quality {self.quality}"
        # a reduced precision is named (fp32 is the reference, and goes without saying)
        reduced = self.precision.partition(":")[0] if self.precision and not self.precision.startswith("fp32") else ""
        shown = f"{self.model}{' in ' + reduced if reduced else ''}, {self.seconds:.1f} s: " if self.model else ""
        notes = [self.note] if self.note else []
        if result.alpha is not None and not alpha:
            notes.append("JPEG has no transparency: set on white")
        note = f" ({'; '.join(notes)})" if notes else ""
        return f"{shown}{result.width}x{result.height} {kind} ({mode}{depth}{quality}), {units.size(self.path.stat().st_size)}{note}"


class Studio:
    """The state the app shares between requests: registry, workspace, the training job, and
    the engines of recently used checkpoints."""

    def __init__(self, workspace: Workspace | None = None, registry: Registry | None = None, device: str | None = None):
        self.registry = registry or default_registry()
        self.workspace = workspace or Workspace()
        self.device = device or os.environ.get("TRANSLATOR_DEVICE", "auto")
        self.job = TrainingJob()
        self.results = Path(tempfile.gettempdir()) / "image-translator-results"
        self.max_output_pixels = int(os.environ.get("TRANSLATOR_APP_MAX_OUTPUT_PIXELS") or _output_budget())
        # the compute one translation may take, in seconds of this host's measured speed
        self.max_seconds = float(os.environ.get("TRANSLATOR_APP_MAX_SECONDS") or 60)
        self.max_video_seconds = float(os.environ.get("TRANSLATOR_APP_MAX_VIDEO_SECONDS") or 300)
        # bytes the datasets and results may take together
        self.quota = parse_size(os.environ.get("TRANSLATOR_QUOTA", "10gb"))
        self._engines: OrderedDict[tuple, object] = OrderedDict()
        self._engines_lock = threading.Lock()
        # side by side, translations decode, download and encode; only device work is one at a time
        self.turns = Turns(int(os.environ.get("TRANSLATOR_TRANSLATIONS") or 2), int(os.environ.get("TRANSLATOR_JOBS_PER_CLIENT") or 2))

    # ---- translate ----

    def default_checkpoint(self, family: str) -> str | None:
        """The family's default model (its recommended one where it can be had now, else the
        shipped one), when it is one the app offers."""
        from ..hub import default_model

        ref, _ = default_model(self.registry.family(family))
        if ref and (is_hub_ref(ref) or any(entry.ref == ref for entry in self.workspace.entries(family))):
            return ref
        return None

    def tasks(self) -> dict[str, list[tuple[str, str]]]:
        """The catalog's models this app can run, by what they do, as (label, catalog name); the
        label says whether the model is on disk, or how large its download is."""
        from .. import catalog
        from ..hub import can_download, is_downloaded

        groups: dict[str, list[tuple[str, str]]] = {}
        for group, entries in catalog.grouped().items():
            listed = []
            for entry in entries:
                if entry.sources and entry.family in self.registry.families:
                    # short, so that a phone shows it whole; the description is the picker's info
                    if is_downloaded(entry):
                        rank, where = 0, "on disk"
                    elif can_download(entry):
                        rank, where = 1, f"{entry.size} download" if entry.size else "download"
                    else:
                        rank, where = 2, "needs internet, offline now"
                    listed.append((rank, f"{entry.title} ({where})", entry.name))
            if listed:  # what works now first, the catalog's order kept within each kind
                groups[group] = [(label, name) for _, label, name in sorted(listed, key=lambda item: item[0])]
        return groups

    def checkpoint_choices(self, family: str) -> list[tuple[str, str]]:
        return [(e.label, e.ref) for e in self.workspace.entries(family)]

    def translate(
        self, image_path: str | None, family_name: str, checkpoint: str, outscale=None, tile=None, options: dict | None = None, progress: Progress | None = None,
        kind: str = "png", quality=QUALITY,
    ) -> Translation:
        """Translate one uploaded file into a full-size file: a lossless PNG, or ``kind`` "webp"
        or "jpg" at ``quality`` (WebP at 100 is lossless)."""
        from ..images import WRITTEN, image_size, read_image, write_image

        suffix = f".{str(kind or 'png').lower()}"
        if suffix not in WRITTEN:
            raise TranslatorError(f"format must be png, webp or jpg, not {kind!r}")
        quality = optional_int(quality, "quality") or QUALITY
        if not 1 <= quality <= 100:
            raise TranslatorError(f"quality must be from 1 to 100, not {quality}")
        if not image_path:
            raise TranslatorError("add an image first (upload, paste or webcam)")
        tile, outscale = optional_int(tile, "tile"), optional_float(outscale, "outscale")
        started = time.monotonic()
        ref, engine, note = self._engine_for(family_name, checkpoint, options)
        engine = engine.with_options(tile=tile, outscale=outscale)
        # refused from the header: a small file of zeros may declare a result of gigabytes
        width, height = image_size(image_path)
        self._check_work(engine, ref, width, height, outscale, 1, "image")
        picture = read_image(image_path)
        engine = engine.for_picture(picture)
        with DEVICE_LOCK:
            result = _run_engine(engine, picture, progress)
        stem = Path(image_path).stem[:80] or "image"
        model = model_name(ref)
        path = write_image(result, self._result_folder() / f"{stem}-{model}{suffix}", quality)
        note = "; ".join(n for n in (engine.route, note) if n)
        return Translation(path, picture, result, model, time.monotonic() - started, note, quality, engine.precision)

    def translate_video(self, video_path: str | None, family_name: str, checkpoint: str, options: dict | None = None,
                        progress: Progress | None = None) -> tuple[Path, str]:
        """Translate one uploaded video into an .mp4 (H.264, audio copied); the file and a line
        saying what it is. The clip's length and size, and the work they make, are checked
        from its header first."""
        from .. import video

        if not video_path:
            raise TranslatorError("add a video first")
        ref, engine, note = self._engine_for(family_name, checkpoint, options)
        container, stream = video.probe(Path(video_path))
        with container:
            width, height = stream.codec_context.width, stream.codec_context.height
            rate = float(stream.average_rate or stream.guessed_rate or 25)
            seconds = float(container.duration or 0) / 1e6
            frames = stream.frames or max(1, round(seconds * rate))
        self._check_work(engine, ref, width, height, None, frames, "video")
        target = self._result_folder() / f"{Path(video_path).stem[:80] or 'video'}-{model_name(ref)}.mp4"
        try:
            with writing_within(self.storage), DEVICE_LOCK:
                line = video.translate_video(engine, Path(video_path), target, video.VideoOptions(), progress)
        except BaseException:
            # a page cannot resume a job: its finished segments would only take room
            shutil.rmtree(target.parent, ignore_errors=True)
            raise
        return target, " ".join(part for part in (line.replace(str(target), target.name), note) if part)

    def warm(self, family_name: str) -> threading.Thread:
        """Loads the family's default model in the background, so that the first visitor does
        not wait for it: its file, its precision gate and, on a CPU with int8 dot products, its
        int8 form (12 s for the default x4 on two cores). A failure here is said again, in one
        line, when someone asks for the model."""

        def load() -> None:
            try:
                self._engine_for(family_name, "", None)
            except Exception as error:  # whatever it is, a request shows it; the server keeps serving
                log.info("the default model was not loaded ahead: %s", error)

        thread = threading.Thread(target=load, name="warm-default-model", daemon=True)
        thread.start()
        return thread

    def _engine_for(self, family_name: str, checkpoint: str, options: dict | None):
        """The engine for a family, a checkpoint (its default when none) and settings: (ref, engine,
        a note when the shipped model stood in for an unreachable one)."""
        family = self.registry.family(family_name)
        checkpoint = checkpoint or self.default_checkpoint(family.name)
        if not checkpoint:
            raise TranslatorError(f"{family.name} ships no default model: pick a checkpoint, pull one in the Checkpoints tab, or give hf://ORG/NAME/FILE")
        ref = self.workspace.pick(checkpoint, family.name)
        settings = make_settings(family.Settings, {k: v for k, v in (options or {}).items() if v is not None}, family.name)
        with writing_within(self.storage):
            return load_or_shipped(ref, family, lambda name: self.engine(name, family.name, settings))

    def _check_work(self, engine, ref: str, width: int, height: int, outscale, frames: int, kind: str) -> None:
        """Refuse, before any decoding, a result over the size limit or more work than the limit
        for an image or a video: a small file may declare gigabytes of pixels or hours of work."""
        result_pixels = width * height * max(engine.scale, outscale or 0) ** 2
        if result_pixels > self.max_output_pixels:
            raise TranslatorError(
                f"the result would be {result_pixels / 1e6:.0f} MP, over this app's {self.max_output_pixels / 1e6:.0f} MP limit "
                "(TRANSLATOR_APP_MAX_OUTPUT_PIXELS); use a smaller image or a smaller outscale"
            )
        # the network's cost, from its FLOPs
        seconds = frames * engine.flops(width, height) / device_speed(engine.device)
        limit, variable, smaller = ((self.max_seconds, "TRANSLATOR_APP_MAX_SECONDS", "a smaller image") if kind == "image"
                                    else (self.max_video_seconds, "TRANSLATOR_APP_MAX_VIDEO_SECONDS", "a smaller or shorter video"))
        if seconds > limit:
            raise TranslatorError(
                f"this {kind} would take this server about {units.duration(seconds)} with {model_name(ref)}, over its limit of "
                f"{units.duration(limit)} {'an' if kind == 'image' else 'a'} {kind} ({variable}); use {smaller} or a lighter model"
            )

    def zip_results(self, paths: list[Path]) -> Path:
        """The results of a batch in one .zip, stored as they are (images are compressed already)."""
        import zipfile

        from ..files import atomic_path

        target = self._result_folder() / "results.zip"
        with atomic_path(target) as temp, zipfile.ZipFile(temp, "w", zipfile.ZIP_STORED) as archive:
            names: set[str] = set()
            for path in paths:
                name, n = path.name, 1
                while name in names:  # two inputs of one name, from different folders
                    n += 1
                    name = f"{path.stem}-{n}{path.suffix}"
                names.add(name)
                archive.write(path, name)
        return target

    def engine(self, ref: str, family: str, settings):
        """The engine for a checkpoint, family settings and this app's device, loaded once and
        kept while it is among the last few used. A file that changed since (a run that trained
        on) is loaded again."""
        from ..checkpoints import load_checkpoint
        from ..inference import Engine, Options

        source = parse_ref(ref)
        source.family_for(family)
        path = source.fetch()  # a Hub download happens here, before any device time is taken
        stat = path.stat() if path.is_file() else None
        key = (family, str(path), stat and (stat.st_size, stat.st_mtime_ns), repr(dataclasses.astuple(settings)))
        with self._engines_lock:
            if key in self._engines:
                self._engines.move_to_end(key)
                return self._engines[key]
            engine = Engine(load_checkpoint(path, family, self.registry), settings, Options(device=self.device))
            self._engines[key] = engine
            while len(self._engines) > ENGINES_KEPT:
                self._engines.popitem(last=False)
            return engine

    def room(self) -> int:
        """Bytes the quota has left: less what datasets, results, runs, uploaded checkpoints and
        the app's downloads take."""
        ws = self.workspace
        return self.quota - ws.used_bytes(self.results, ws.runs, ws.checkpoints)

    @property
    def storage(self) -> Storage:
        """The quota as downloads see it: what is left, and where a new one is counted."""
        return Storage(self.room, self.workspace.remember_download)

    def _result_folder(self) -> Path:
        # Results live until gradio has copied them into its cache (which it clears itself): ours
        # go after an hour, and sooner, oldest first, while datasets and results pass the quota.
        self.results.mkdir(parents=True, exist_ok=True)
        cutoff, used = time.time() - 3600, self.quota - self.room()
        for old, mtime in sorted(_modified(self.results), key=lambda item: item[1]):
            if mtime < cutoff or used > self.quota:
                used -= folder_bytes(old)
                shutil.rmtree(old, ignore_errors=True)
        if used > self.quota:
            raise TranslatorError(f"the workspace's datasets, runs and downloads use up its {units.size(self.quota)} quota (TRANSLATOR_QUOTA); delete some first")
        return Path(tempfile.mkdtemp(dir=self.results))

    # ---- train ----

    def train_defaults(self, family_name: str) -> dict:
        """The settings a new run of the family starts from here: the family's, and its lighter
        ones where this app has no GPU."""
        from ..inference import resolve_device

        family = self.registry.family(family_name)
        light = family.light_defaults if resolve_device(self.device).type == "cpu" else {}
        return {**family.train_defaults, **light}

    def start_training(self, family_name: str, dataset: str, run_name: str, checkpoint: str, overrides: dict) -> str:
        family = self.registry.family(family_name)
        if not dataset:
            raise TranslatorError("choose a dataset (a folder under the datasets root, or upload a .zip)")
        data = self._training_data(dataset)
        run_name = run_name.strip() or f"{family.name}-{time.strftime('%Y%m%d-%H%M%S')}"
        run_dir = self.workspace.run(run_name)
        # a run that failed before its first checkpoint holds nothing to resume: it is started over
        if (run_dir / RESUME_FILE).exists():
            raise TranslatorError(f"a run named {run_name!r} already exists: resume it, or choose another name")
        start = self.workspace.pick(checkpoint, family.name) if checkpoint else None
        given = {k: v for k, v in overrides.items() if v is not None}
        values = self._checked_paths(family, {**self.train_defaults(family.name), **given})
        with writing_within(self.storage):  # the run's thread keeps this context: its checkpoints count too
            self.job.start(family, data, run_dir, values, start, device=self.device)
        return run_name

    def dataset_choices(self) -> list[tuple[str, str]]:
        """The Train tab's dataset picker: the workspace's folders, then the known Hub datasets."""
        from .. import hub_data

        folders = [(name, name) for name in self.workspace.dataset_names()]
        return folders + [(f"{name} (Hub: {hub_data.parse(ref).repo_id}, downloads on first use)", ref) for name, ref in hub_data.KNOWN.items()]

    def _training_data(self, dataset: str):
        """A dataset folder of the workspace by name, a Hub dataset reference, or the name of a
        known Hub dataset where no folder has that name."""
        from .. import hub_data
        from ..sources import named_source

        dataset = dataset.strip()
        named = named_source(dataset)
        if named is not None:
            return named.recorded()
        try:
            return self.workspace.dataset(dataset)
        except TranslatorError:
            if dataset in hub_data.KNOWN:
                return hub_data.KNOWN[dataset]
            raise

    def _checked_paths(self, family, values: dict) -> dict:
        """Settings that name files take only what the checkpoint picker offers: a web user never
        names a server path, and the error never says whether one exists."""
        for field in dataclasses.fields(family.Settings):
            value = values.get(field.name)
            if value in (None, ""):
                continue
            if field.metadata.get("file"):
                raise TranslatorError(f"setting {field.name!r} names a file on the server, which the app does not take; use `translator train --set {field.name}=...`")
            if field.metadata.get("checkpoint"):
                values[field.name] = self.workspace.pick(str(value), family.name)
        return values

    def resume_training(self, run_name: str, steps) -> str:
        """Continue a saved run from its own record; ``steps``, if given, is the new total."""
        if not run_name:
            raise TranslatorError("choose a run to resume")
        run_dir = self.workspace.run(run_name)
        if not run_dir.is_dir():
            raise TranslatorError(f"no run named {run_name!r}")
        steps = optional_int(steps, "steps")
        with writing_within(self.storage):
            self.job.resume(run_dir, {"steps": steps} if steps else {}, self.registry, device=self.device)
        return run_name

    # ---- datasets ----

    def upload_dataset(self, archive_path: str):
        """Unpack an uploaded .zip into the datasets folder, within what the quota has left."""
        import zipfile

        from .archives import unpack_zip

        if not archive_path:
            raise TranslatorError("choose a .zip file first")
        left = self.room()
        try:
            with zipfile.ZipFile(archive_path) as archive:
                declared = sum(member.file_size for member in archive.infolist())
        except (zipfile.BadZipFile, OSError):
            declared = 0  # unpack_zip says what is wrong with it
        if declared > left:
            raise TranslatorError(
                f"the archive unpacks to {units.size(declared)}, more than the {units.size(max(left, 0))} left of the "
                f"workspace's {units.size(self.quota)} quota (TRANSLATOR_QUOTA); delete datasets first"
            )
        return unpack_zip(archive_path, self.workspace.datasets, max_bytes=max(left, 1))

    def delete_dataset(self, name: str) -> str:
        """Delete one of the app's own datasets, unless the running run trains on it."""
        folder = self.workspace.dataset(name)
        if self.job.running and self.job.data_dir is not None and folder.resolve() == self.job.data_dir.resolve():
            raise TranslatorError(f"the run {self.job.run_dir.name} is training on {name}: stop it first")
        self.workspace.delete_dataset(folder)
        return folder.name

    # ---- checkpoints ----

    def pull(self, reference: str) -> str:
        from ..checkpoints import load_checkpoint
        from ..hub import pull

        with writing_within(self.storage):
            path = pull(reference)
        # loading it now tells the user at once what it is, or why it cannot be used
        checkpoint = load_checkpoint(path, None, self.registry)
        return f"{path.name} ({checkpoint.family.name} {checkpoint.arch.describe()})"

    def openmodeldb(self, text: str) -> tuple[list[list], str]:
        """OpenModelDB's models matching ``text`` (words; "x4" for a scale, "arch:span" for an
        architecture) as table rows, and a line on the index itself."""
        from .. import openmodeldb

        index = openmodeldb.index()
        words, arch, scale = [], "", None
        for word in (text or "").split():
            if re.fullmatch(r"x\d+", word.lower()):
                scale = int(word[1:])
            elif word.lower().startswith("arch:"):
                arch = word[5:]
            else:
                words.append(word)
        found = index.search(" ".join(words), arch, scale)
        rows = [[m.id, m.architecture, f"x{m.scale}" if m.scale else "", m.size(), m.licence,
                 f"pull {openmodeldb.PREFIX}{m.id}" if m.download() else f"by hand: {m.page}"] for m in found[:200]]
        stale = ", could not be refreshed" if index.stale else ""
        shown = f"the first {len(rows)} of " if len(found) > len(rows) else ""
        return rows, f"{shown}{len(found)} of {len(index.models)} models (OpenModelDB's index, fetched {index.age()} ago{stale})"

    def upload_checkpoint(self, file_path: str) -> str:
        from ..checkpoints import load_checkpoint, save_checkpoint

        if not file_path:
            raise TranslatorError("choose a checkpoint file to upload")
        path = Path(file_path)
        name = check_name(path.stem, "checkpoint")
        if catalog.find(name) is not None:  # an upload named like a catalog model would read as that model in every picker
            name = f"{name}-uploaded"
        target = self.workspace.checkpoints / f"{name}.safetensors"
        if target.exists():
            raise TranslatorError(f"a checkpoint named {name} is already uploaded; delete it first or rename the file")
        checkpoint = load_checkpoint(path, None, self.registry)  # the safe loader; refuses pickled code
        with writing_within(self.storage):
            save_checkpoint(target, checkpoint.family, checkpoint.arch, checkpoint.module.state_dict(), {"source": path.name})
        return f"{name} ({checkpoint.family.name} {checkpoint.arch.describe()})"

    def export(self, ref: str, kind: str) -> tuple[Path, str]:
        """A checkpoint written as ONNX or safetensors for download, within the quota; the file
        and a line saying what it is."""
        from ..export import FORMATS, export

        if not ref:
            raise TranslatorError("choose a checkpoint to export")
        if kind not in FORMATS:
            raise TranslatorError(f"export writes {' or '.join(FORMATS)}, not {kind!r}")
        name = re.sub(r"[^\w.-]+", "-", ref.rsplit("/", 1)[-1]).strip("-.") or "checkpoint"
        target = self._result_folder() / f"{Path(name).stem}.{kind}"
        with writing_within(self.storage):
            line = export(ref, target)
        return target, line.replace(str(target), target.name)

    def delete(self, ref: str) -> str:
        """Delete an uploaded checkpoint, a pulled file or a trained run, but never the run that
        is training: its record and state would go from under it."""
        if not ref:
            raise TranslatorError("choose what to delete")
        entry = self.workspace.entry(ref)
        if entry.kind == "run" and self.job.running and self.job.run_dir is not None and entry.path.resolve() == self.job.run_dir.resolve():
            raise TranslatorError(f"{entry.label} is training now: stop it first, then delete it")
        with self._engines_lock:
            self._engines.clear()  # an engine of the deleted file must not outlive it
        return self.workspace.delete(ref)

    def push(self, run_name: str, repo_id: str, token: str, private: bool, licence: str = ""):
        """Publish a run's latest checkpoint, also while it trains; no name means the current (or
        last) run. From then on every checkpoint picker offers it by its hf:// reference."""
        from ..publish import push

        token = (token or "").strip()
        if not token:
            # huggingface_hub would fall back to the server's HF_TOKEN: on a Space, its owner's
            raise TranslatorError("sign in with Hugging Face or give your own write token: this app never publishes with its server's token")
        run_name = (run_name or "").strip() or (self.job.run_dir.name if self.job.run_dir is not None else "")
        if not run_name:
            raise TranslatorError("choose a trained run to publish")
        run_dir = self.workspace.run(run_name)
        if not run_dir.is_dir():
            raise TranslatorError(f"no run named {run_name!r}")
        published = push(run_dir, (repo_id or "").strip(), bool(private), token, (licence or "").strip() or None)
        self.workspace.remember_published(published.references, published.family, run_name)
        return published


_SPEEDS: dict[str, float] = {}


def device_speed(device) -> float:
    """FLOP/s this host's ``device`` reaches on a convolution like those of the networks served
    (64 channels, 3x3, in the layout the engine uses), measured once: what turns a network's
    FLOPs into the seconds a request would hold the server."""
    import torch
    import torch.nn.functional as F

    key = str(device)
    if key not in _SPEEDS:
        x = torch.rand(1, 64, 128, 128, device=device).to(memory_format=torch.channels_last)
        weight = torch.rand(64, 64, 3, 3, device=device).to(memory_format=torch.channels_last)
        with torch.inference_mode():
            F.conv2d(x, weight, padding=1)  # warm-up
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            started, runs = time.perf_counter(), 3
            for _ in range(runs):
                F.conv2d(x, weight, padding=1)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
        _SPEEDS[key] = runs * 2 * 64 * 64 * 9 * 128 * 128 / max(time.perf_counter() - started, 1e-9)
    return _SPEEDS[key]


def _modified(folder: Path) -> list[tuple[Path, float]]:
    """The entries of ``folder`` with their modification times, less any removed meanwhile."""
    found = []
    for path in folder.iterdir():
        try:
            found.append((path, path.stat().st_mtime))
        except FileNotFoundError:
            continue
    return found


def model_name(ref: str) -> str:
    """A checkpoint's short name for file names and result lines: a catalog name as it is, a
    Hub file or workspace path by its repository or file, safe in a file name."""
    if is_hub_ref(ref):
        hub = parse_ref(ref).hub
        name = hub.repo_id.split("/")[-1] if hub.path.split("/")[-1].startswith(("generator", "model", "pytorch_model")) else Path(hub.path).stem
    else:
        path = Path(ref)
        name = path.parent.name if path.stem.startswith("generator") and path.parent.name else path.stem
    return re.sub(r"[^\w.-]+", "_", name)[:60] or "model"


def _run_engine_plain(engine, picture: Picture, progress: Progress | None) -> Picture:
    return engine.translate(picture, progress)


# the only function that touches the GPU, so it alone asks ZeroGPU for one
_run_engine = on_gpu(_run_engine_plain)


def _displayable(picture: Picture, size: tuple[int, int]) -> np.ndarray:
    """An 8-bit RGB(A) array of ``picture`` at ``size`` (width, height)."""
    # every k-th pixel first, down to twice the size: no full-size copy of a large result
    step = max(1, min(picture.width // size[0], picture.height // size[1]) // 2)
    rgb = picture.rgb[::step, ::step]
    planes = (rgb if picture.alpha is None else np.dstack([rgb, picture.alpha[::step, ::step]])).astype(np.float32)
    if (planes.shape[1], planes.shape[0]) != size:
        shrinking = size[0] < planes.shape[1]
        planes = cv2.resize(planes, size, interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC)
    return (np.clip(planes, 0, 1) * 255 + 0.5).astype(np.uint8)


def _output_budget() -> int:
    """The largest result the app makes by default: 64 MP, or less where memory is short
    (translations run side by side, at up to 12 bytes an output pixel each, with room to spare)."""
    from ..inference import resolve_device
    from ..training.estimate import free_memory

    free = free_memory(resolve_device("cpu")) or 0
    return int(min(64_000_000, free / (12 * 2 * 4))) if free else 64_000_000


def parse_size(text: str) -> int:
    """Bytes from ``10gb``, ``500mb``, ``300kb`` or a plain number, in the units ``units.size`` writes."""
    factors = {"kb": units.KB, "mb": units.KB**2, "gb": units.KB**3, "tb": units.KB**4}
    cleaned = text.strip().lower()
    unit = next((u for u in factors if cleaned.endswith(u)), "")
    try:
        return int(float(cleaned.removesuffix(unit) if unit else cleaned) * factors.get(unit, 1))
    except ValueError:
        raise TranslatorError(f"not a size: {text!r} (e.g. 10gb, 500mb)") from None


def optional_int(value, name: str) -> int | None:
    """A form's or client's whole number of 0 or more; empty means none."""
    if value is None or value == "":
        return None
    number = _number(value, name)
    if number < 0 or number != int(number):
        raise TranslatorError(f"{name} must be a whole number of 0 or more, got {value}")
    return int(number)


def optional_float(value, name: str) -> float | None:
    """A scale factor above 0 and at most 16; empty means none."""
    if value is None or value == "":
        return None
    number = _number(value, name)
    if not 0 < number <= 16:
        raise TranslatorError(f"{name} must be above 0 and at most 16, got {value}")
    return number


def _number(value, name: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise TranslatorError(f"{name} must be a number, got {str(value)[:40]!r}") from None
    if number != number or number in (float("inf"), float("-inf")):
        raise TranslatorError(f"{name} must be a finite number, got {value}")
    return number
