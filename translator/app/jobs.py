"""The one training run the app owns, in a background thread of the server.

The browser only observes it: closing the page does not stop it, and any page opened later
shows it. Translations and training take turns on the device through ``DEVICE_LOCK``.
"""

from __future__ import annotations

import contextvars
import gc
import logging
import threading
import time
from pathlib import Path

from .. import events
from ..errors import TranslatorError, shown
from ..family import Family
from ..plugins import Registry
from ..training import Trainer
from ..training.estimate import estimate

log = logging.getLogger(__name__)

# held by a translation, and by the trainer for each step
DEVICE_LOCK = threading.Lock()
# how long Start waits for the run to get going, so that a bad dataset is reported at once
START_WAIT_S = 60.0


def _return_memory() -> None:
    import ctypes

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    try:  # glibc keeps freed heap pages for later; hand them back to the system
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


class TrainingJob:
    def __init__(self):
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._trainer: Trainer | None = None
        self._started = threading.Event()
        self.status = "idle"
        self.family = ""
        self.run_dir: Path | None = None
        self.data_dir: Path | None = None
        self.error = ""
        self.data = ""
        self.step = 0
        self.steps = 0
        self.images_per_s = 0.0
        self.sample: str | None = None
        self.validation: dict = {}
        # whether the run's data has a validation split (None until its data is open)
        self.has_validation: bool | None = None
        # memory and time per step the run was admitted with
        self.estimate = ""
        self.images_per_step = 1
        # (time, step) of the first step record of this session, for the ETA
        self._first: tuple[float, int] | None = None
        self._last: tuple[float, int] | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self, family: Family, data: Path, run_dir: Path, overrides: dict, checkpoint: str | None = None, device: str = "auto") -> str:
        """Start a new run in the background; settings errors and problems found while opening
        the data are raised here, as one line, before this returns."""
        return self._launch(lambda: Trainer(family, data, run_dir, overrides, checkpoint=checkpoint, device=device, on_event=self._on_event, device_lock=DEVICE_LOCK))

    def resume(self, run_dir: Path, overrides: dict, registry: Registry, device: str = "auto") -> str:
        """Continue a saved run from its own record, as ``translator train --resume`` does."""
        return self._launch(lambda: Trainer(None, None, run_dir, overrides, resume=True, device=device, on_event=self._on_event, device_lock=DEVICE_LOCK, registry=registry))

    def _launch(self, make_trainer) -> str:
        with self._lock:
            if self.running:
                raise TranslatorError(f"a training run is already going ({self.run_dir.name}); stop it first (one at a time)")
            refused = None
            try:
                trainer = make_trainer()
                # admitted only if it fits: networks and one step counted, one step timed
                with DEVICE_LOCK:
                    needs = estimate(trainer, trainer.architecture())
            except TranslatorError as error:
                refused = str(error)
            if refused is not None:
                # what a refused launch loaded (a start checkpoint, the timed step's copies) goes
                # now, once the error and its frames no longer hold it
                trainer = None
                _return_memory()
                raise TranslatorError(refused)
            self._trainer, self.family, self.run_dir, self.data_dir = trainer, trainer.family.name, trainer.run_dir, trainer.data_dir
            self.estimate = needs.describe()
            self.status, self.error, self.data, self.sample, self.validation, self.has_validation = "starting", "", "", None, {}, None
            self.step, self.steps, self.images_per_s = 0, trainer.config.steps, 0.0
            # images a step takes, to turn the measured images/s into seconds a step
            self.images_per_step = trainer.config.batch_size * trainer.config.accumulate
            self._first = self._last = None
            self._started.clear()
            # the run reads from the Hub (its dataset, its start checkpoint) as the request that started it
            self._thread = threading.Thread(target=contextvars.copy_context().run, args=(self._work, trainer), name="training", daemon=True)
            self._thread.start()
        self._started.wait(START_WAIT_S)
        if self.status == "failed":
            raise TranslatorError(self.error)
        return self.status

    def stop(self) -> str:
        """Ask the run to save and finish after its current step."""
        with self._lock:
            if not self.running:
                return self.status
            if self._trainer is not None:
                self._trainer.stop()
            # a run that ended meanwhile (its thread still tidying up) keeps its final status
            if self.status in ("starting", "running"):
                self.status = "stopping"
            return self.status

    def wait(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def snapshot(self) -> dict:
        """What the page shows; plain values, safe to hand to any number of viewers."""
        eta = None
        if self._first and self._last and self._last[1] > self._first[1] and self.status in ("running", "stopping"):
            per_step = (self._last[0] - self._first[0]) / (self._last[1] - self._first[1])
            eta = round(per_step * (self.steps - self.step))
        return {
            "status": self.status,
            "family": self.family,
            "run": self.run_dir.name if self.run_dir else "",
            "step": self.step,
            "steps": self.steps,
            "images_per_s": self.images_per_s,
            "seconds_per_step": self.images_per_step / self.images_per_s if self.images_per_s else None,
            "eta_s": eta,
            "data": self.data,
            "sample": self.sample,
            "validation": dict(self.validation),
            "has_validation": self.has_validation,
            "error": self.error,
            "estimate": self.estimate,
        }

    def _work(self, trainer: Trainer) -> None:
        try:
            result = trainer.run()
            with self._lock:  # not between a Stop's check and its write
                self.status = result["status"]
        except TranslatorError as error:
            with self._lock:
                self.status, self.error = "failed", shown(error)
        except Exception as error:  # a bug: keep the server up and say what happened
            log.exception("training failed")
            with self._lock:
                self.status, self.error = "failed", shown(error)
        finally:
            # the networks, optimizer states and loader go with the trainer, and so does their memory,
            # with what reading the data kept (a Hub dataset's row groups)
            source = trainer.data
            self._trainer = trainer.recipe = None
            del trainer
            source.release()
            _return_memory()
            self._started.set()

    def _on_event(self, event: events.Event) -> None:
        if isinstance(event, events.Data):
            self.data = event.summary
            self.has_validation = event.validation
            if self.status == "starting":
                self.status = "running"
            self._started.set()
        elif isinstance(event, events.Step):
            now = (time.monotonic(), event.step)
            self._first = self._first or now
            self._last = now
            self.step, self.steps, self.images_per_s = event.step, event.steps, event.images_per_s
        elif isinstance(event, events.Note):  # said once a run (FID unavailable offline, say): kept beside the data line
            self.data = f"{self.data}; {event.message}" if self.data else event.message
        elif isinstance(event, events.Sample):
            self.sample = event.path
        elif isinstance(event, events.Validation):
            self.validation = {"step": event.step, **event.scores}
        elif isinstance(event, events.Checkpoint):
            self.step = max(self.step, event.step)
