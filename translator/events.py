"""What a training run tells the world as it goes: one dataclass per kind of event.

The loop hands events to its ``on_event`` callback (the CLI's progress bar, the app's job) and
logs some of them to the run's ``metrics.jsonl``, one JSON object a line with its kind under
``"event"``; ``runs.read_metrics`` reads them back as these classes. A field added here is
written, read back and shown without touching the readers that do not use it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import ClassVar


@dataclass(frozen=True)
class Event:
    # the name the event is logged under
    kind: ClassVar[str] = ""
    # the optimizer step it happened at
    step: int = 0

    def to_json(self) -> dict:
        return {"event": self.kind, **dataclasses.asdict(self)}

    @staticmethod
    def from_json(record: dict) -> Event | None:
        """The event a logged record holds; None for a kind this version does not know (a
        newer version's log). Fields it does not know are left out, missing ones default."""
        kind = KINDS.get(record.get("event"))
        if kind is None:
            return None
        names = {f.name for f in dataclasses.fields(kind)}
        return kind(**{k: v for k, v in record.items() if k in names})


@dataclass(frozen=True)
class Data(Event):
    """The training data is open: what it holds, and whether it has a validation split."""

    kind: ClassVar[str] = "data"
    summary: str = ""
    validation: bool = False


@dataclass(frozen=True)
class Step(Event):
    """Losses and speed, every ``log_every`` steps."""

    kind: ClassVar[str] = "step"
    # the run's total
    steps: int = 0
    # wall-clock seconds since the epoch, for the model card's training time
    time: float = 0.0
    losses: dict[str, float] = field(default_factory=dict)
    # learning rate per optimizer
    lr: dict[str, float] = field(default_factory=dict)
    images_per_s: float = 0.0


@dataclass(frozen=True)
class Validation(Event):
    """Mean scores on the validation split (PSNR, SSIM, FID ...)."""

    kind: ClassVar[str] = "validation"
    scores: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Sample(Event):
    """A grid of inputs, outputs and targets written to ``path``."""

    kind: ClassVar[str] = "sample"
    path: str = ""


@dataclass(frozen=True)
class Note(Event):
    """Something said once a run (FID unavailable offline, say)."""

    kind: ClassVar[str] = "note"
    message: str = ""


@dataclass(frozen=True)
class Checkpoint(Event):
    """Weights and resume state saved; ``path`` is the resume state."""

    kind: ClassVar[str] = "checkpoint"
    path: str = ""


@dataclass(frozen=True)
class Done(Event):
    """The run reached its steps."""

    kind: ClassVar[str] = "done"
    run_dir: str = ""
    # steps taken by this process (a resumed run counts from where it resumed)
    steps_this_run: int = 0


@dataclass(frozen=True)
class Stopped(Done):
    """The run was asked to stop, and saved where it was."""

    kind: ClassVar[str] = "stopped"


KINDS: dict[str, type[Event]] = {kind.kind: kind for kind in (Data, Step, Validation, Sample, Note, Checkpoint, Done, Stopped)}
