"""Writing files so that a crash never leaves a partial one behind, and sweeping up after a
writer that was killed before it could."""

import os
import re
import tempfile
from pathlib import Path

# .{final name}.{writer's pid}.{random}.tmp: the pid says whether its writer may still finish
_TEMP = re.compile(r"^\..+\.(\d+)\.[^.]+\.tmp$")


def atomic_write(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder, fsync and rename."""
    path = Path(path)
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp")
    try:
        # mkstemp makes the file private; give it the permissions any new file would get
        os.fchmod(handle, 0o666 & ~_umask())
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def sweep_stale(folder: str | os.PathLike) -> None:
    """Remove the temporary files of writers that died (kill -9) in ``folder``; those of
    processes still running are theirs to finish."""
    folder = Path(folder)
    if not folder.is_dir():
        return
    for path in folder.glob(".*.tmp"):
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
