"""A run folder as a record: what it trained (``config.json``) and what it logged (``metrics.jsonl``).

``config.json`` is the one record of a run's family, data, settings and architecture; resuming
reads it, so a run continues from its folder alone. Metrics are typed: a step record holds its
``losses`` apart from the step, time, learning rates (``lr``) and throughput (``images_per_s``),
and a validation record its ``scores``, so the CLI, the app's curves and the model card read
them the same way.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import TranslatorError
from .events import Event
from .files import atomic_write

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.jsonl"
RESUME_FILE = "resume.pt"


@dataclass
class RunRecord:
    family: str
    # Architecture fields (name, params, scale, multiple, channels)
    architecture: dict[str, Any]
    # the family's settings and the loop's, every field resolved
    settings: dict[str, Any]
    training: dict[str, Any]
    # the dataset folder, absolute, and what was found in it
    data: str
    data_summary: str = ""
    # what a fine-tuned run started from
    start_checkpoint: str | None = None
    # what it trains on, in words, for its model card ("NVIDIA H200", "CPU (16 cores)")
    hardware: str = ""

    def write(self, run_dir: Path) -> None:
        atomic_write(run_dir / CONFIG_FILE, json.dumps(dataclasses.asdict(self), indent=2).encode())


def read_record(run_dir: Path) -> RunRecord | None:
    """The run's record, None when the folder holds none; a one-line error when it is unreadable."""
    path = Path(run_dir) / CONFIG_FILE
    try:
        fields = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:
        raise TranslatorError(f"{path} is unreadable ({type(error).__name__}); the run cannot be continued from it") from None
    known = {f.name for f in dataclasses.fields(RunRecord)}
    try:
        return RunRecord(**{k: v for k, v in fields.items() if k in known})
    except TypeError:
        raise TranslatorError(f"{path} is not a run record of `translator train`") from None


def read_metrics(run_dir: Path) -> list[Event]:
    """Every logged event, oldest first. A last line torn by a kill is left out: the records
    before it are whole, since each line is written in one piece."""
    events = []
    for record in _records(run_dir):
        event = Event.from_json(record)
        if event is not None:
            events.append(event)
    return events


def _records(run_dir: Path) -> list[dict]:
    path = Path(run_dir) / METRICS_FILE
    if not path.is_file():
        return []
    records = []
    lines = path.read_text().splitlines()
    for number, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except ValueError:
            if number == len(lines) - 1:
                break
            raise TranslatorError(f"{path} is corrupt at line {number + 1}") from None
    return records


def append_metrics(run_dir: Path, event: Event) -> None:
    with open(Path(run_dir) / METRICS_FILE, "a") as f:
        f.write(json.dumps(event.to_json()) + "\n")


def keep_metrics_until(run_dir: Path, step: int) -> None:
    """A resumed run repeats the steps after its last checkpoint; their old records go."""
    path = Path(run_dir) / METRICS_FILE
    if not path.exists():
        return
    kept = [json.dumps(r) for r in _records(run_dir) if r.get("step", 0) <= step]
    atomic_write(path, ("\n".join(kept) + "\n").encode() if kept else b"")
