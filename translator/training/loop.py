"""The training loop: a ``Trainer`` runs a family's ``Recipe`` on a device from new or from
its run folder, and owns data loading and augmentation, gradient accumulation, the weight
average, logging and events, samples and validation, atomic checkpoints and exact resume.
"""

from __future__ import annotations

import copy
import contextlib
import dataclasses
import io
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import torch
from torch import nn

from .. import events
from ..acceleration import autocast as precision, autotuned, compile_networks, describe_device
from ..checkpoints import load_checkpoint, save_checkpoint
from ..data import ResumableSampler, TrainData
from ..errors import TranslatorError, Unavailable
from ..family import Architecture, Family, make_settings
from ..files import atomic_write, sweep_stale
from ..images import Picture, write_image
from ..inference import resolve_device, resolve_precision
from ..plugins import Registry, registry as default_registry
from ..runs import CONFIG_FILE, RESUME_FILE, RunRecord, append_metrics, keep_metrics_until, read_record
from ..sources import data_source
from .config import TrainConfig, agree, known, refuse_changes, split_overrides
from .distributed import any_rank, init_distributed
from .recipe import Recipe
from .step import ema_update, prepare_networks, train_step

OnEvent = Callable[[events.Event], None]


@dataclass
class _Run:
    """A run's moving parts from set-up to the last step: what the loop and its helpers share."""

    arch: Architecture
    recipe: Recipe
    # moving averages of the exported networks, by file stem (empty without EMA)
    ema: dict[str, nn.Module]
    data: TrainData
    rank: int
    world: int
    step: int = 0
    augment: Callable | None = None
    batches: Iterator | None = None
    # the fixed batch every sample image shows
    samples: dict[str, torch.Tensor] | None = None
    # images trained on since the last log line, and when that was
    images: int = 0
    clock: float = dataclasses.field(default_factory=time.perf_counter)
    # the task's set measures (FID, KID) could not be had: noted once, not tried again
    no_set_measures: bool = False
    # the step last validated: the end of a run whose last step was validated has nothing new to say
    validated: int = -1
    # the step of the last sample image, likewise
    sampled: int = -1

    def exported(self) -> nn.Module:
        """The first exported generator, as its EMA when there is one."""
        stem, name = next(iter(self.recipe.exports.items()))
        return self.ema[stem] if stem in self.ema else self.recipe.networks[name]

    def update_ema(self) -> None:
        # warmed up as TensorFlow's and timm's averages are: at 0.999 from the first step, a
        # run of 2,000 steps would still export 13% of its random initial weights
        decay = min(self.recipe.ema_decay, (1 + self.step) / (10 + self.step))
        for stem, average in self.ema.items():
            ema_update(average, self.recipe.networks[self.recipe.exports[stem]], decay)


class Trainer:
    """One training run of one family into one run folder: new, fine-tuned or resumed.

    A resumed run (``resume=True``) continues from what its folder recorded: family, data,
    settings and architecture. ``family``, ``data`` and ``overrides`` may then be left out; any
    given must agree with the record, except the settings in ``RESUME_MAY_CHANGE``.
    """

    def __init__(
        self,
        family: Family | None,
        data: str | os.PathLike | None,
        run_dir: str | os.PathLike,
        overrides: dict[str, str] | None = None,
        *,
        checkpoint: str | os.PathLike | None = None,
        resume: bool = False,
        device: str = "auto",
        on_event: OnEvent | None = None,
        device_lock: threading.Lock | None = None,
        registry: Registry | None = None,
    ):
        self.run_dir = Path(run_dir)
        self.resume = resume
        self.on_event = on_event or (lambda event: None)
        self._stop = threading.Event()
        # held for each step, so other work on the device (the app's translations) slips in between
        self.device_lock = device_lock or contextlib.nullcontext()
        self.main = True
        if resume:
            record = self.record = self._record_to_resume()
            family, data = agree(record, family, data, checkpoint, registry or default_registry())
            checkpoint = record.start_checkpoint
        elif (self.run_dir / RESUME_FILE).exists():
            raise TranslatorError(f"{self.run_dir} already holds a run; pass --resume to continue it, or choose another folder")
        elif family is None or data is None:
            raise TranslatorError("a new run needs a family and its data (or resume the run in the output folder)")
        self.family, self.start_checkpoint = family, checkpoint
        self.data = data_source(data)
        family_values, loop_values = split_overrides(family, overrides or {})
        if resume:
            refuse_changes(record, family, family_values, loop_values)
            family_values = {**known(family.Settings, record.settings), **family_values}
            loop_values = {**known(TrainConfig, record.training), **loop_values}
        else:
            loop_values = {**family.train_defaults, **loop_values}
        self.settings = make_settings(family.Settings, family_values, family.name)
        self.config = make_settings(TrainConfig, loop_values, "training")
        family.task.check_config(self.config)
        cores = os.cpu_count() or 1
        if self.config.workers > cores:
            raise TranslatorError(f"workers {self.config.workers} is more than this machine's {cores} cores")
        self.device = resolve_device(device)
        self.dtype = resolve_precision(self.config.precision, self.device)
        if self.dtype == torch.float16:  # auto on a GPU without bf16: fp16 would need loss scaling
            self.dtype = torch.float32
        self.autocast = precision(self.device, self.dtype)

    def stop(self) -> None:
        """Ask the loop to save and finish after the current step (the app's Stop button)."""
        self._stop.set()

    def run(self) -> dict:
        with autotuned(self.device):  # training crops keep one shape
            return self._loop(self._start())

    def _loop(self, run: _Run) -> dict:
        cfg = self.config
        started, status = run.step, "done"
        consistent = True  # networks, optimizers and step agree: safe to save on an error
        try:
            while run.step < cfg.steps:
                if any_rank(self._stop.is_set(), run.world, self.device):
                    status = "stopped"
                    break
                # loaded and augmented before the device is taken, so translations need not wait
                batches = [self._next_batch(run) for _ in range(cfg.accumulate)]
                consistent = False
                # Stop is heard between micro-batches too, where one process trains alone (several
                # must agree at step boundaries, or their gradient averaging would wait forever)
                stop = self._stop.is_set if run.world == 1 else None
                with self.device_lock:
                    taken = train_step(run.recipe, batches, cfg.accumulate, self.autocast, run.world, stop)
                    if taken:
                        run.update_ema()
                consistent = True
                if not taken:
                    status = "stopped"
                    break
                run.step += 1
                consistent = True
                self._after_step(run)
        except Exception:
            # keep what was learnt since the last checkpoint, then report the error
            if consistent and run.step > started:
                self._save(run)
            raise
        self._save(run)
        if cfg.sample_every and run.step > started:  # what a stopped or finished run ended with
            self._write_sample(run)
        if status == "done" and run.data.val is not None and cfg.val_every:
            self._validate(run)
        ended = events.Done if status == "done" else events.Stopped
        self._emit(ended(run.step, run_dir=str(self.run_dir), steps_this_run=run.step - started), log=True)
        return {"status": status, "step": run.step}

    def _after_step(self, run: _Run) -> None:
        """The logging, samples, validation and checkpoint due at this step."""
        cfg, step = self.config, run.step
        run.images += cfg.batch_size * cfg.accumulate * run.world
        if step % cfg.log_every == 0 or step == cfg.steps:
            self._log_step(run)
        # a first sample early (a tenth of the way, or sooner), not only after sample_every steps
        if cfg.sample_every and (step % cfg.sample_every == 0 or step == min(cfg.sample_every, max(1, cfg.steps // 10))):
            self._write_sample(run)
        if cfg.val_every and step % cfg.val_every == 0 and run.data.val is not None:
            self._validate(run)
        if cfg.checkpoint_every and step % cfg.checkpoint_every == 0 and step < cfg.steps:
            self._save(run)

    # ---- set-up ----

    def _record_to_resume(self) -> RunRecord:
        if not (self.run_dir / RESUME_FILE).is_file():
            raise TranslatorError(f"nothing to resume in {self.run_dir} (no {RESUME_FILE})")
        record = read_record(self.run_dir)
        if record is None:
            raise TranslatorError(f"cannot resume: {self.run_dir} has no {CONFIG_FILE} saying what it trained")
        return record

    @property
    def data_dir(self) -> Path | None:
        """The run's dataset folder; None for data from elsewhere (a Hub dataset)."""
        return self.data.folder

    def _start(self) -> _Run:
        cfg, task = self.config, self.family.task
        rank, world = init_distributed(self.device)
        self.main = rank == 0
        state = self._read_state() if self.resume else None
        data = self.data.open(task, cfg)
        self._emit(events.Data(summary=data.report.summary(), validation=data.val is not None))

        torch.manual_seed(cfg.seed)  # identical initial weights on every process
        arch, generator = self._generator()
        task.check_sizes(cfg, arch)
        recipe = self.recipe = self.family.recipe(generator, arch, self.settings, cfg, self.device)
        prepare_networks(recipe, self.device, sync_bn=world > 1 and cfg.sync_bn)
        ema = {stem: copy.deepcopy(recipe.networks[name]).eval().requires_grad_(False) for stem, name in recipe.exports.items()} if recipe.ema_decay else {}
        if cfg.compile:
            compile_networks(recipe.networks)
        run = _Run(arch, recipe, ema, data, rank, world)

        if state is not None:
            self._load_state(state, run)
            if world > 1:  # only process 0's generator state was saved; keep the others apart
                torch.manual_seed(cfg.seed * 7919 + rank + 1 + run.step)
        else:
            torch.manual_seed(cfg.seed * 7919 + rank + 1)  # augmentation and dropout differ per process
        if self.main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            sweep_stale(self.run_dir)  # what a killed run was writing
            self._record(arch, data.report.summary()).write(self.run_dir)
            keep_metrics_until(self.run_dir, run.step)

        run.augment = task.augmenter(cfg, arch.scale)
        sampler = ResumableSampler(len(data.train), cfg.seed, start=run.step * cfg.batch_size * cfg.accumulate, rank=rank, world=world)
        loader = torch.utils.data.DataLoader(
            data.train, batch_size=cfg.batch_size, sampler=sampler, num_workers=cfg.workers,
            pin_memory=self.device.type == "cuda", persistent_workers=cfg.workers > 0,
            # its own generator: creating the iterator must not draw from the global one
            generator=torch.Generator().manual_seed(cfg.seed),
        )
        run.batches = iter(loader)
        run.samples = self._sample_batch(run)
        return run

    def architecture(self) -> Architecture:
        """The network this run trains: the run's own when resumed, whatever it started from."""
        if self.resume:
            return Architecture.from_dict(self.record.architecture)
        if self.start_checkpoint is not None:
            return load_checkpoint(self.start_checkpoint, self.family.name).arch
        return self.family.architecture(self.settings)

    def _generator(self) -> tuple[Architecture, nn.Module]:
        if self.start_checkpoint is not None and not self.resume:
            loaded = load_checkpoint(self.start_checkpoint, self.family.name)
            return loaded.arch, loaded.module
        arch = self.architecture()
        return arch, self.family.build(arch)

    def _record(self, arch: Architecture, data_summary: str) -> RunRecord:
        return RunRecord(
            family=self.family.name,
            architecture=dataclasses.asdict(arch),
            settings=dataclasses.asdict(self.settings),
            training=dataclasses.asdict(self.config),
            data=self.data.recorded(),
            data_summary=data_summary,
            start_checkpoint=str(self.start_checkpoint) if self.start_checkpoint else None,
            hardware=describe_device(self.device),
        )

    # ---- pieces of the loop ----

    def _to_network(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {k: self.family.to_network(v) for k, v in batch.items()}

    def _next_batch(self, run: _Run) -> dict[str, torch.Tensor]:
        return self._to_network(run.augment([t.to(self.device, non_blocking=True) for t in _next(run.batches)]))

    def _emit(self, event: events.Event, log: bool = False) -> None:
        if not self.main:
            return
        if log:
            append_metrics(self.run_dir, event)
        self.on_event(event)

    def _log_step(self, run: _Run) -> None:
        now = time.perf_counter()
        self._emit(events.Step(
            run.step,
            steps=self.config.steps,
            time=time.time(),
            losses={k: round(float(v), 6) for k, v in run.recipe.logs.items()},
            lr={name: opt.param_groups[0]["lr"] for name, opt in run.recipe.optimizers.items()},
            images_per_s=round(run.images / max(now - run.clock, 1e-9), 3),
        ), log=True)
        run.images, run.clock = 0, now

    def _sample_batch(self, run: _Run) -> dict[str, torch.Tensor]:
        # a fixed batch, made with its own generator so it costs the training stream nothing
        source = self.family.task.sample_source(run.data)
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            torch.manual_seed(12345)
            items = [source[(i % len(source), 12345 + i)] for i in range(min(2, len(source)))]
            raw = [torch.stack([item[k] for item in items]).to(self.device) for k in range(len(items[0]))]
            return self._to_network(run.augment(raw))

    def _write_sample(self, run: _Run) -> None:
        if not self.main or run.sampled == run.step:
            return
        run.sampled = run.step
        x, target = run.recipe.source(run.samples)
        generator = run.exported()
        with torch.no_grad():
            was_training = generator.training
            generator.eval()
            y = generator(x).float()
            generator.train(was_training)
        scale = y.shape[-1] // x.shape[-1]
        shown = x.float().expand(-1, y.shape[1], -1, -1)  # a colouriser's gray input, as RGB
        panels = [torch.nn.functional.interpolate(shown, scale_factor=scale, mode="nearest") if scale > 1 else shown, y]
        if target is not None:
            panels.append(target.float())
        grid = torch.cat([torch.cat(list(p), dim=1) for p in panels], dim=2)
        grid = self.family.from_network(grid).permute(1, 2, 0).cpu().numpy()
        path = self.run_dir / "samples" / f"step_{run.step:07d}.png"
        path.parent.mkdir(exist_ok=True)
        write_image(Picture(grid), path)
        self._emit(events.Sample(run.step, path=str(path)))

    def _validate(self, run: _Run) -> None:
        if not self.main or run.validated == run.step:
            return
        run.validated = run.step
        generator = run.exported()

        def apply(x: torch.Tensor) -> torch.Tensor:
            x = run.arch.network_input(x)  # held-out images load as RGB; a colouriser sees their luma
            return self.family.from_network(generator(self.family.to_network(x)).float())

        scores: dict[str, list[float]] = {}
        sets = self._set_measures(run)
        was_training = generator.training
        generator.eval()
        with torch.no_grad():
            for index in range(min(len(run.data.val), 20)):
                images = [t[None].to(self.device).float() / 255 for t in run.data.val[(index, index)]]
                for key, value in self.family.task.score(apply, images, run.arch, self.config, sets).items():
                    scores.setdefault(key, []).append(value)
        generator.train(was_training)
        means = {k: round(sum(v) / len(v), 4) for k, v in scores.items()}
        if sets is not None:
            means.update(sets.result())
        if means:
            self._emit(events.Validation(run.step, scores=means), log=True)

    def _set_measures(self, run: _Run):
        """The task's accumulator of whole-set measures for this validation, or None."""
        if run.no_set_measures:
            return None
        try:
            return self.family.task.set_measures(self.device)
        except Unavailable as reason:
            # a missing download is no reason to stop training, nor to wait for it at every validation
            run.no_set_measures = True
            self._emit(events.Note(run.step, message=f"{reason}; validation goes on without them"), log=True)
            return None

    # ---- checkpoints and resume ----

    def _save(self, run: _Run) -> None:
        if not self.main:
            return
        recipe = run.recipe
        extra = {"steps": str(run.step), "data": self.data.short(), "run": self.run_dir.name}
        for stem, name in recipe.exports.items():
            weights = run.ema[stem] if stem in run.ema else recipe.networks[name]
            save_checkpoint(self.run_dir / f"{stem}.safetensors", self.family, run.arch, weights.state_dict(), extra)
        # the settings are in the run's record (config.json); this is the state that goes with them
        state = {
            "step": run.step,
            "networks": {k: v.state_dict() for k, v in recipe.networks.items()},
            "optimizers": {k: v.state_dict() for k, v in recipe.optimizers.items()},
            "schedulers": {k: v.state_dict() for k, v in recipe.schedulers.items()},
            "ema": {k: v.state_dict() for k, v in run.ema.items()},
            "recipe": recipe.extra_state(),
            "rng": {"torch": torch.get_rng_state(), "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []},
        }
        buffer = io.BytesIO()
        torch.save(state, buffer)
        atomic_write(self.run_dir / RESUME_FILE, buffer.getvalue())
        self._emit(events.Checkpoint(run.step, path=str(self.run_dir / RESUME_FILE)))

    def _read_state(self) -> dict:
        path = self.run_dir / RESUME_FILE
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            if not isinstance(state, dict) or "step" not in state:
                raise ValueError("not a resume state")
        except Exception:
            raise TranslatorError(f"cannot resume: {path} is corrupt or truncated (the run's generator*.safetensors may still be usable)") from None
        return state

    def _load_state(self, state: dict, run: _Run) -> None:
        recipe = run.recipe
        try:
            for name, net in recipe.networks.items():
                net.load_state_dict(state["networks"][name])
            for name, optimizer in recipe.optimizers.items():
                saved = state["optimizers"][name]
                for group in saved["param_groups"]:
                    # how the update runs is this machine's choice, not the saved run's: a run
                    # saved with the looped update resumes with the fused one
                    group.update({k: optimizer.defaults[k] for k in ("fused", "foreach") if k in optimizer.defaults})
                optimizer.load_state_dict(saved)
            for name, scheduler in recipe.schedulers.items():
                scheduler.load_state_dict(state["schedulers"][name])
            for stem, average in run.ema.items():
                average.load_state_dict(state["ema"][stem])
            recipe.load_extra_state(state["recipe"], self.device)
            torch.set_rng_state(state["rng"]["torch"])
            if state["rng"]["cuda"] and torch.cuda.is_available():
                torch.cuda.set_rng_state_all(state["rng"]["cuda"])
        except (KeyError, RuntimeError, ValueError, TypeError) as error:
            raise TranslatorError(f"cannot resume: the saved state does not fit this family's networks ({type(error).__name__})") from None
        run.step = int(state["step"])


def _next(batches):
    """The next loader batch; a file that fails to load stops training with its own one-line
    error rather than the loader's traceback-laden one."""
    try:
        return next(batches)
    except TranslatorError:
        raise
    except Exception as error:
        last = (str(error).strip().splitlines() or [type(error).__name__])[-1]
        raise TranslatorError(f"training data: {last.removeprefix('translator.errors.TranslatorError: ')}") from None
