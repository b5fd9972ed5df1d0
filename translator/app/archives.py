"""Unpacking a dataset uploaded as a .zip, without trusting the archive.

An upload may be careless (hidden files, ``__MACOSX``, notes next to the images) or hostile
(paths that climb out of the folder, symlinks, zip bombs). Every member is checked before
anything is written, the images are extracted into a private temporary folder inside the
datasets folder, and only a complete dataset is renamed into place: a failure leaves nothing.
"""

from __future__ import annotations

import lzma
import os
import re
import shutil
import stat
import tempfile
import unicodedata
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from .. import units
from ..errors import TranslatorError
from ..images import EXTENSIONS

DEFAULT_MAX_BYTES = 2 * 1024**3
DEFAULT_MAX_FILES = 100_000
MAX_BYTES_VARIABLE = "TRANSLATOR_MAX_ZIP_BYTES"
MAX_FILES_VARIABLE = "TRANSLATOR_MAX_ZIP_FILES"
# the workspace accepts dataset names of at most 100 characters
MAX_NAME_LENGTH = 100
CHUNK = 1024**2
# what the summary lists of the skipped files; the rest are only counted
SHOWN_SKIPPED = 5

# what zipfile and its decompressors raise for a damaged archive (ValueError: undecodable names)
_DAMAGED = (zipfile.BadZipFile, zlib.error, lzma.LZMAError, EOFError, NotImplementedError, ValueError)
_ENCRYPTED = 0x1
_DRIVE = re.compile(r"^[A-Za-z]:")


@dataclass
class Unpacked:
    """What ``unpack_zip`` made."""

    # the new dataset folder
    folder: Path
    # image files written
    images: int
    # member names not extracted (not images, hidden files, __MACOSX), for the report
    skipped: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One line for the user, e.g. ``horses: 120 images (2 other files skipped: a.txt, b.csv)``."""
        line = f"{self.folder.name}: {self.images} image{'' if self.images == 1 else 's'}"
        if not self.skipped:
            return line
        # the files the user put there matter more than the ones their system added
        names = sorted(self.skipped, key=_is_hidden)[:SHOWN_SKIPPED]
        shown = ", ".join(_shown(name) for name in names)
        if len(self.skipped) > SHOWN_SKIPPED:
            shown += ", ..."
        count = len(self.skipped)
        return f"{line} ({count} other file{'' if count == 1 else 's'} skipped: {shown})"


def dataset_name(text: str) -> str:
    """``text`` made into a safe single folder name: ASCII letters, digits, ``-``, ``_`` and ``.``,
    starting with a letter or digit, at most ``MAX_NAME_LENGTH`` characters."""
    # fold accents rather than lose the letters: "chevaux été" -> "chevaux_ete"
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", ascii_text).strip("._-")
    name = name[:MAX_NAME_LENGTH].rstrip("._-")
    if not name:
        raise TranslatorError(f"{text!r} cannot be used as a dataset name; choose one with letters or digits")
    return name


def unpack_zip(
    archive: str | os.PathLike,
    root: str | os.PathLike,
    name: str | None = None,
    *,
    max_bytes: int | None = None,
    max_files: int | None = None,
) -> Unpacked:
    """Extract the images of ``archive`` into a new folder ``root/<name>``.

    ``name`` defaults to the archive's file name without its suffix. A single folder holding
    everything kept is stripped, so ``horses.zip`` with ``horses/trainA/...`` gives
    ``root/horses/trainA/...``. The limits default to the environment variables
    ``TRANSLATOR_MAX_ZIP_BYTES`` and ``TRANSLATOR_MAX_ZIP_FILES``, else 2 GiB and 100,000 members.
    """
    archive, root = Path(archive), Path(root)
    max_bytes = _limit(max_bytes, MAX_BYTES_VARIABLE, DEFAULT_MAX_BYTES)
    max_files = _limit(max_files, MAX_FILES_VARIABLE, DEFAULT_MAX_FILES)
    name = dataset_name(archive.stem if name is None else name)
    target = root / name
    label = _shown(archive.name)
    if os.path.lexists(target):
        raise _exists(name)
    try:
        zip_file = zipfile.ZipFile(archive)
    except FileNotFoundError:
        raise TranslatorError(f"archive not found: {label}") from None
    except _DAMAGED:
        raise TranslatorError(f"{label} is not a zip file, or it is damaged") from None
    except OSError as error:
        raise TranslatorError(f"cannot read {label}: {error.strerror or error}") from None
    with zip_file:
        kept, skipped = _select(zip_file.infolist(), label, max_bytes, max_files)
        try:
            root.mkdir(parents=True, exist_ok=True)
            _extract(zip_file, kept, label, target, max_bytes)
        except OSError as error:  # a full disk, a root that is a file, ...
            raise TranslatorError(f"could not unpack {label}: {error.strerror or error}") from None
    return Unpacked(target, len(kept), skipped)


def _select(
    members: list[zipfile.ZipInfo], label: str, max_bytes: int, max_files: int
) -> tuple[list[tuple[zipfile.ZipInfo, tuple[str, ...]]], list[str]]:
    """The members to extract with the relative path of each, and the names skipped; refuses
    an archive that is unsafe, too large or without images before anything is written."""
    if len(members) > max_files:
        raise TranslatorError(
            f"{label} holds {len(members):,} entries, more than the {max_files:,} allowed"
            f" (set {MAX_FILES_VARIABLE} to allow more)"
        )
    kept: list[tuple[zipfile.ZipInfo, tuple[str, ...]]] = []
    skipped: list[str] = []
    for member in members:
        # checked for every member, even those skipped: such an archive is not to be trusted
        parts = _parts(member.filename, label)
        if stat.S_ISLNK(member.external_attr >> 16):
            raise TranslatorError(f"{label} contains a symbolic link ({_shown(member.filename)}); refusing it")
        if member.is_dir() or not parts:
            continue  # folders are made as the files in them need them
        if _is_hidden(member.filename) or Path(parts[-1]).suffix.lower() not in EXTENSIONS:
            skipped.append(member.filename)
            continue
        # only the members read matter: a skipped one is never decrypted
        if member.flag_bits & _ENCRYPTED:
            raise TranslatorError(
                f"{label} is password-protected ({_shown(member.filename)}); zip it again without a password"
            )
        kept.append((member, parts))
    if not kept:
        raise TranslatorError(f"{label} contains no images (looked for {', '.join(EXTENSIONS)})")

    tops = {parts[0] for _, parts in kept}
    if len(tops) == 1 and all(len(parts) > 1 for _, parts in kept):
        kept = [(member, parts[1:]) for member, parts in kept]
    _check_collisions([parts for _, parts in kept], label)

    # a zip bomb can understate these; _extract counts the bytes really written as well
    declared = sum(member.file_size for member, _ in kept)
    if declared > max_bytes:
        raise TranslatorError(_too_large(label, max_bytes))
    return kept, skipped


def _parts(filename: str, label: str) -> tuple[str, ...]:
    """The member's path components; refuses a name that could land outside the dataset folder."""
    shown = _shown(filename)
    if "\\" in filename or _DRIVE.match(filename):
        raise TranslatorError(f"{label} contains a Windows path ({shown}); refusing it")
    if filename.startswith("/"):
        raise TranslatorError(f"{label} contains an absolute path ({shown}); refusing it")
    parts = tuple(part for part in filename.split("/") if part not in ("", "."))
    if ".." in parts:
        raise TranslatorError(f"{label} contains a path leading out of its folder ({shown}); refusing it")
    return parts


def _check_collisions(paths: list[tuple[str, ...]], label: str) -> None:
    """Refuse two members written to one file, or a file where a folder must go: extracting
    would fail half-way or silently keep only one of them."""
    files: set[tuple[str, ...]] = set()
    folders: set[tuple[str, ...]] = set()
    for parts in paths:
        if parts in files:
            raise TranslatorError(f"{label} holds {_shown('/'.join(parts))} twice")
        files.add(parts)
        folders.update(parts[:end] for end in range(1, len(parts)))
    clash = files & folders
    if clash:
        raise TranslatorError(f"{label} holds {_shown('/'.join(min(clash)))} as both a file and a folder")


def _extract(
    zip_file: zipfile.ZipFile,
    kept: list[tuple[zipfile.ZipInfo, tuple[str, ...]]],
    label: str,
    target: Path,
    max_bytes: int,
) -> None:
    """Write the members into a staging folder beside ``target`` and rename it to ``target``
    once complete; the staging folder is removed whatever happens."""
    # private while being filled; the dataset folder inside it gets the usual permissions
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=".unpack-"))
    try:
        folder = staging / target.name
        folder.mkdir()
        written = 0
        for member, parts in kept:
            path = folder.joinpath(*parts)
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                with zip_file.open(member) as source, open(path, "xb") as out:
                    while chunk := source.read(CHUNK):
                        written += len(chunk)
                        if written > max_bytes:
                            raise TranslatorError(_too_large(label, max_bytes))
                        out.write(chunk)
            except _DAMAGED:  # a bad CRC, a broken compressed stream, ...
                raise TranslatorError(f"{label} is damaged: {_shown(member.filename)} cannot be read") from None
        # renaming a folder replaces an empty one without a word: never take another's name
        if os.path.lexists(target):
            raise _exists(target.name)
        try:
            os.rename(folder, target)
        except OSError:
            if os.path.lexists(target):
                raise _exists(target.name) from None
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _limit(value: int | None, variable: str, default: int) -> int:
    """``value``, else the environment variable read now, else ``default``."""
    if value is not None:
        return value
    text = os.environ.get(variable, "").strip()
    if not text:
        return default
    try:
        limit = int(text)
    except ValueError:
        limit = 0
    if limit <= 0:
        raise TranslatorError(f"{variable} must be a positive whole number, not {text!r}")
    return limit


def _too_large(label: str, max_bytes: int) -> str:
    return f"{label} unpacks to more than the {units.size(max_bytes)} allowed (set {MAX_BYTES_VARIABLE} to allow more)"


def _exists(name: str) -> TranslatorError:
    return TranslatorError(f"a dataset called {name} already exists; choose another name")


def _is_hidden(filename: str) -> bool:
    """Hidden files and folders, and the resource forks macOS adds to the zips it makes."""
    return any(part.startswith(".") and part != "." or part == "__MACOSX" for part in filename.split("/"))


def _shown(text: str) -> str:
    """``text`` safe to put in a one-line message: a member name may hold newlines."""
    return "".join(char if char.isprintable() else "?" for char in text)
