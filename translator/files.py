"""Writing files so that a crash never leaves a partial one behind, sweeping up after a writer
that was killed before it could, and keeping what is written within a storage quota."""

import contextlib
import errno
import os
import re
import tempfile
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path

# .{final name}.{writer's pid}.{random}.tmp[.ext]: the pid says whether its writer may still finish
_TEMP = re.compile(r"^\..+\.(\d+)\.[^.]+\.tmp(\.\w+)?$")


@dataclass(frozen=True)
class Storage:
    """A quota that writes count against: ``room()`` is what it has left (asked only when a
    write is about to land: it may walk folders), and ``wrote(path)`` is told of each file or
    folder written outside the quota's own folders (downloads into shared caches)."""

    room: Callable[[], int]
    wrote: Callable[[Path], None]


# the quota of what is written in this context (an app's); None: no bound
_storage: ContextVar[Storage | None] = ContextVar("storage", default=None)


@contextlib.contextmanager
def writing_within(storage: Storage | None):
    """Every atomic write and download inside (and in threads started with this context) is
    refused past what ``storage`` has left."""
    reset = _storage.set(storage)
    try:
        yield
    finally:
        _storage.reset(reset)


def check_room(name: str, size: int | None) -> None:
    """Refuse to write ``size`` bytes as ``name`` past what the quota has left."""
    from .units import size as readable
    from .errors import TranslatorError

    storage = _storage.get()
    left = storage.room() if storage is not None and size is not None else None
    if left is not None and size > left:
        raise TranslatorError(
            f"{name} is {readable(size)} and this app's storage quota has {readable(max(0, left))} left (TRANSLATOR_QUOTA); "
            "delete datasets, runs or checkpoints first"
        )


def count_written(path: Path) -> None:
    """Count a download into a shared cache against the quota from now on."""
    storage = _storage.get()
    if storage is not None:
        storage.wrote(path)


def atomic_write(path: str | os.PathLike, data: bytes | memoryview) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder, fsync and rename."""
    with atomic_path(path) as temp:
        temp.write_bytes(data)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, extension: str = ""):
    """A temporary file in ``path``'s folder for a writer that wants a name of its own (an
    encoder streaming to disk; ``extension`` tells it the format); when the block ends it is
    synced and renamed onto ``path``, and if the block raises it is removed."""
    path = Path(path)
    with _disk_full(path):
        handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp" + extension)
    try:
        try:
            # mkstemp makes the file private; give it the permissions any new file would get
            os.fchmod(handle, 0o666 & ~_umask())
        finally:
            os.close(handle)
        with _disk_full(path):
            yield Path(temp)
            # judged once written, before it takes the place of what it replaces
            check_room(path.name, Path(temp).stat().st_size - (path.stat().st_size if path.is_file() else 0))
            with open(temp, "rb+") as written:
                os.fsync(written.fileno())
            os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def _disk_full(path: Path):
    """A full disk (or quota) as the one line a person acts on, naming what was being written."""
    from .errors import TranslatorError

    try:
        yield
    except OSError as error:
        if error.errno in (errno.ENOSPC, errno.EDQUOT):
            raise TranslatorError(f"disk full writing {path.name} (in {path.parent.name or path.parent}); free some space and try again") from None
        raise


def sweep_stale(folder: str | os.PathLike) -> None:
    """Remove the temporary files of writers that died (kill -9) in ``folder``; those of
    processes still running are theirs to finish."""
    folder = Path(folder)
    if not folder.is_dir():
        return
    for path in folder.glob(".*.tmp*"):
        match = _TEMP.match(path.name)
        if match and not _alive(int(match.group(1))):
            path.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
