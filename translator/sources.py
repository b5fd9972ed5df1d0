"""Where a run's training data comes from: a folder, or anything a ``DataSource`` names.

A source is parsed from what the user gives (``--data``, the app's dataset box) by the first
kind in ``SOURCES`` that accepts it, a folder otherwise. It says how the run's record keeps it,
how a model card shows it, and opens it for a task. A new kind of source (WebDataset shards,
a CSV of URLs) is a module with a ``DataSource`` subclass and one line in ``_kinds``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import ClassVar

from .errors import TranslatorError


class DataSource:
    """Training data named by ``text``; nothing is read until ``open``."""

    # what the kind is called in messages
    kind: ClassVar[str] = ""

    @classmethod
    def accepts(cls, text: str) -> bool:
        """Whether ``text`` names data of this kind (from its form alone: nothing is fetched)."""
        raise NotImplementedError

    def recorded(self) -> str:
        """How the run's record keeps it: enough to open it again on resume."""
        raise NotImplementedError

    def shown(self) -> str:
        """How a model card names it for a stranger: nothing about this machine's folders."""
        raise NotImplementedError

    def short(self) -> str:
        """A short name for a checkpoint's metadata."""
        return self.shown()

    def hub_ids(self) -> list[str]:
        """The Hub datasets it is, for a model card's metadata."""
        return []

    @property
    def folder(self) -> Path | None:
        """The local folder it is, if it is one (the app keeps a running run's folder)."""
        return None

    def open(self, task, config):
        """The task's training (and validation) data: ``data.TrainData``."""
        raise NotImplementedError

    def release(self) -> None:
        """Let go of what reading it kept in memory (when a run ends)."""

    def __str__(self) -> str:
        return self.recorded()


class FolderSource(DataSource):
    """A local folder in one of the task's layouts."""

    kind = "folder"

    def __init__(self, text: str | os.PathLike):
        self.path = Path(text).resolve()

    @classmethod
    def accepts(cls, text: str) -> bool:
        return True

    def recorded(self) -> str:
        return str(self.path)

    def shown(self) -> str:
        return f"a local folder ({self.path.name})"

    def short(self) -> str:
        return self.path.name

    @property
    def folder(self) -> Path:
        return self.path

    def open(self, task, config):
        return task.open_data(self.path, config)


def _kinds() -> list[type[DataSource]]:
    from .hub_data import HubSource

    # tried in order; a folder is what is left
    return [HubSource]


def data_source(data: str | os.PathLike | DataSource) -> DataSource:
    """The source ``data`` names."""
    if isinstance(data, DataSource):
        return data
    text = str(data)
    if not text.strip():
        raise TranslatorError("no training data given")
    return named_source(text) or FolderSource(text)


def named_source(text: str) -> DataSource | None:
    """The source ``text`` names when it is a reference of a kind other than a folder; None for
    a plain name (the app looks those up among its own folders)."""
    kind = next((kind for kind in _kinds() if kind.accepts(text)), None)
    return kind(text) if kind else None
