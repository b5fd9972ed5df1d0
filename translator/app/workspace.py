"""The app's own folders, and every checkpoint a user can pick from.

A web user never names a server path: checkpoints are chosen from ``Workspace.entries`` (the
catalog, files pulled into the Hugging Face cache, uploads and trained runs) or given as an
``hf://`` reference, and datasets and runs are names inside the workspace's folders.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path

from ..checkpoints import FORMAT, SUFFIXES
from ..errors import TranslatorError
from ..files import atomic_write, sweep_stale
from .. import catalog
from ..catalog import file_sha256
from ..refs import is_hub_ref

# where the app keeps datasets, runs and uploaded checkpoints
HOME_VARIABLE = "TRANSLATOR_HOME"
# a folder of datasets to offer instead of HOME/datasets (read-only use)
DATASETS_VARIABLE = "TRANSLATOR_DATASETS"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
# the prefix of a folder being deleted
DELETING = ".deleting-"
# the hf:// references of runs published from this workspace, offered in every checkpoint picker
PUBLISHED_FILE = "published.json"
# the files and dataset folders the app downloaded into shared caches: they count against its quota
DOWNLOADS_FILE = "downloads.json"


@dataclass
class Entry:
    """One checkpoint as the app lists it."""

    # what is passed on to load_checkpoint: a catalog name, an hf:// reference or a workspace file
    ref: str
    # what the user sees
    label: str
    family: str
    # shipped, catalog, published, pulled, uploaded or run
    kind: str
    size: int | None
    source: str
    # known (the catalog's) or, when listed with hashes, computed from ``file``
    sha256: str | None
    # the weights file on disk (None: not downloaded)
    file: Path | None = None
    # what deleting the entry removes: the file, the run folder, or the pulled revision's
    # snapshot folder (None: cannot be deleted here)
    path: Path | None = None


class Workspace:
    def __init__(self, root: str | os.PathLike | None = None):
        self.root = Path(root or os.environ.get(HOME_VARIABLE) or Path.cwd() / "workspace").resolve()
        self.datasets = Path(os.environ.get(DATASETS_VARIABLE) or self.root / "datasets").resolve()
        self.runs = self.root / "runs"
        self.checkpoints = self.root / "checkpoints"
        for folder in (self.datasets, self.runs, self.checkpoints):
            folder.mkdir(parents=True, exist_ok=True)
        self._sweep()
        # sha256 of large files, by (path, size, mtime): listing must not re-hash every time
        self._hashes: dict[tuple[str, int, int], str] = {}
        self._ledger = threading.Lock()

    def _sweep(self) -> None:
        """What a killed server left behind: folders it was deleting, and its own temporary files
        (runs' checkpoints, uploads) that a writer never renamed into place."""
        for parent in (self.datasets, self.runs):
            for doomed in parent.glob(f"{DELETING}*"):
                shutil.rmtree(doomed, ignore_errors=True)
        for folder in (self.checkpoints, *(p for p in self.runs.iterdir() if p.is_dir())):
            sweep_stale(folder)

    # ---- datasets and runs ----

    def dataset_names(self) -> list[str]:
        return sorted(p.name for p in self.datasets.iterdir() if p.is_dir() and not p.name.startswith("."))

    def dataset(self, name: str) -> Path:
        path = self.datasets / check_name(name, "dataset")
        if not path.is_dir():
            raise TranslatorError(f"no dataset named {name!r} in {self.datasets}")
        return path

    def delete_dataset(self, folder: Path) -> None:
        if self.datasets != self.root / "datasets":
            raise TranslatorError(f"the datasets in {self.datasets} ({DATASETS_VARIABLE}) are not the app's to delete")
        remove_folder(folder)

    def used_bytes(self, *others: Path) -> int:
        """Bytes the app's datasets, ``others`` and what it downloaded into shared caches take on disk."""
        return folder_bytes(self.datasets, *others) + sum(_linked_bytes(path) for path in self._downloads())

    def remember_download(self, path: Path) -> None:
        """Count a file or dataset folder the app downloaded (into the Hugging Face or torch
        cache) from now on, until it is deleted."""
        with self._ledger:
            kept = {str(p) for p in self._downloads() if p.exists()} | {str(path)}
            atomic_write(self.root / DOWNLOADS_FILE, json.dumps(sorted(kept), indent=1).encode())

    def _downloads(self) -> list[Path]:
        try:
            items = json.loads((self.root / DOWNLOADS_FILE).read_text())
        except FileNotFoundError:
            return []
        except ValueError:
            raise TranslatorError(f"{self.root / DOWNLOADS_FILE} is damaged: it must be a JSON list of paths (delete it to start counting again)") from None
        if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
            raise TranslatorError(f"{self.root / DOWNLOADS_FILE} is damaged: it must be a JSON list of paths (delete it to start counting again)")
        return [Path(i) for i in items]

    def run_names(self) -> list[str]:
        runs = [p for p in self.runs.iterdir() if p.is_dir() and not p.name.startswith(".")]
        return [p.name for p in sorted(runs, key=lambda p: p.stat().st_mtime, reverse=True)]

    def run(self, name: str) -> Path:
        return self.runs / check_name(name, "run")

    # ---- checkpoints ----

    def entries(self, family: str | None = None, hashes: bool = False) -> list[Entry]:
        """Every checkpoint the app offers, for one family or all. ``hashes`` fills in the sha256
        of files the catalog has none for: only listings shown to the user need it."""
        found = self._catalog_entries() + self._published_entries() + self._pulled_entries() + self._uploaded_entries() + self._run_entries()
        # a foreign file's family is only known once it is loaded, so it is offered to every family
        found = [e for e in found if family is None or e.family in (family, "?")]
        if hashes:
            for entry in found:
                if entry.sha256 is None and entry.file is not None:
                    entry.sha256 = self.sha256(entry.file)
        return found

    def pick(self, ref: str, family: str | None = None) -> str:
        """``ref`` checked at the boundary: one of the listed entries, or an hf:// reference."""
        ref = (ref or "").strip()
        if is_hub_ref(ref):
            return ref
        if any(e.ref == ref for e in self.entries(family)):
            return ref
        scope = f" for {family}" if family else ""
        raise TranslatorError(f"unknown checkpoint {ref!r}{scope}: pick one from the list, or give hf://ORG/NAME[@REVISION]/FILE")

    def entry(self, ref: str) -> Entry:
        """The deletable entry ``ref`` names, or a one-line error."""
        entry = next((e for e in self.entries() if e.ref == ref), None)
        if entry is None or entry.path is None:
            raise TranslatorError(f"{str(ref)[:200]!r} cannot be deleted here (only uploads, runs and pulled files can)")
        return entry

    def delete(self, ref: str) -> str:
        """Remove an uploaded checkpoint, a trained run or a pulled file's cache revision."""
        entry = self.entry(ref)
        if entry.kind == "pulled":
            from huggingface_hub import constants, scan_cache_dir

            # the whole cached revision goes, as `hf cache delete` does it; its path is the snapshot
            scan_cache_dir(constants.HF_HUB_CACHE).delete_revisions(entry.path.name).execute()
        elif entry.kind == "run":
            remove_folder(entry.path)
        else:
            entry.path.unlink()
        return entry.label

    def _catalog_entries(self) -> list[Entry]:
        entries = []
        try:
            recorded = catalog.trusted()  # read once for the listing, not once an entry
        except TranslatorError:  # the listing shows no recorded hashes; a download says what is wrong
            recorded = {}
        for item in catalog.entries():
            if not item.sources:
                continue  # no copy to pull: listed by `translator catalog`, not offered here
            local = item.shipped
            if local is not None and not local.is_file():
                continue
            kind = "shipped" if local is not None else "catalog"
            size = local.stat().st_size if local is not None else None
            entries.append(Entry(item.name, f"{item.name}: {item.description}", item.family, kind, size, item.source, item.sha256 or recorded.get(item.name), local))
        return entries

    def remember_published(self, references: list[str], family: str, run: str) -> None:
        """Offer a published run's generators from now on, by the hf:// references that pull them."""
        known = {item["ref"]: item for item in self._published()}
        for ref in references:
            known[ref] = {"ref": ref, "family": family, "run": run}
        atomic_write(self.root / PUBLISHED_FILE, json.dumps(list(known.values()), indent=1).encode())

    def _published(self) -> list[dict]:
        try:
            items = json.loads((self.root / PUBLISHED_FILE).read_text())
        except (FileNotFoundError, ValueError):
            return []
        # a hand-edited file offers only what is well formed
        return [i for i in items if isinstance(i, dict) and is_hub_ref(i.get("ref"))] if isinstance(items, list) else []

    def _published_entries(self) -> list[Entry]:
        return [
            Entry(i["ref"], f"{i['ref'].removeprefix('hf://')} (published from run {i.get('run', '?')})", str(i.get("family", "?")), "published",
                  None, f"published from {i.get('run', '?')}", None)
            for i in self._published()
        ]

    def _pulled_entries(self) -> list[Entry]:
        from huggingface_hub import constants, scan_cache_dir
        from huggingface_hub.errors import CacheNotFound

        try:
            cache = scan_cache_dir(constants.HF_HUB_CACHE)
        except (CacheNotFound, OSError):
            return []
        entries = []
        for repo in cache.repos:
            if repo.repo_type != "model":
                continue
            for revision in repo.revisions:
                for file in revision.files:
                    if file.file_path.suffix.lower() not in SUFFIXES:
                        continue
                    inside = file.file_path.relative_to(revision.snapshot_path).as_posix()
                    entries.append(Entry(
                        f"hf://{repo.repo_id}@{revision.commit_hash}/{inside}",
                        f"{repo.repo_id}/{inside} (pulled, {revision.commit_hash[:8]})",
                        _family_of(file.file_path), "pulled", file.size_on_disk, f"hf://{repo.repo_id}",
                        None, file.file_path, revision.snapshot_path,
                    ))
        return entries

    def _uploaded_entries(self) -> list[Entry]:
        return [
            Entry(str(path), f"{path.stem} (uploaded)", _family_of(path), "uploaded", path.stat().st_size, "upload", None, path, path)
            for path in sorted(self.checkpoints.glob("*.safetensors"))
        ]

    def _run_entries(self) -> list[Entry]:
        entries = []
        for name in self.run_names():
            for path in sorted((self.runs / name).glob("generator*.safetensors")):
                which = "" if path.stem == "generator" else f", {path.stem.removeprefix('generator_')}"
                entries.append(Entry(str(path), f"run {name}{which}", _family_of(path), "run", path.stat().st_size, f"trained in {name}", None, path, self.runs / name))
        return entries

    def sha256(self, path: Path) -> str:
        stat = path.stat()
        key = (str(path), stat.st_size, stat.st_mtime_ns)
        if key not in self._hashes:
            self._hashes[key] = file_sha256(path)
        return self._hashes[key]


def folder_bytes(*folders: Path) -> int:
    total = 0
    for folder in folders:
        for parent, _, names in os.walk(folder):
            for name in names:
                try:
                    total += os.lstat(os.path.join(parent, name)).st_size
                except FileNotFoundError:  # removed meanwhile (an old result swept by another request)
                    continue
    return total


def _linked_bytes(path: Path) -> int:
    """Bytes a cached file or snapshot folder holds, through its links to the cache's blobs,
    each blob once."""
    if path.is_file():
        return path.stat().st_size
    seen: dict[int, int] = {}
    for parent, _, names in os.walk(path):
        for name in names:
            try:
                stat = os.stat(os.path.join(parent, name))
            except OSError:  # a link whose blob is gone
                continue
            seen[stat.st_ino] = stat.st_size
    return sum(seen.values())


def remove_folder(folder: Path) -> None:
    """Delete a folder whole or not at all, as far as anyone can see: it is first renamed to a
    hidden name (one atomic step, after which it is listed nowhere), then removed; what a
    failure leaves behind is swept at the next start."""
    doomed = folder.with_name(f"{DELETING}{folder.name}.{os.getpid()}")
    os.replace(folder, doomed)
    shutil.rmtree(doomed, ignore_errors=True)


def check_name(name: str, what: str) -> str:
    """A single folder name (no separators, no leading dot), or a one-line error."""
    name = (name or "").strip()
    if not _NAME.match(name):
        raise TranslatorError(f"{what} name {name!r} must be letters, digits, '-', '_' or '.', starting with a letter or digit")
    return name


def _family_of(path: Path) -> str:
    """The family recorded in a project-format file; '?' for foreign files (found on load)."""
    from safetensors import safe_open

    if path.suffix != ".safetensors":
        return "?"
    try:
        with safe_open(path, framework="pt", device="cpu") as f:
            metadata = f.metadata() or {}
    except Exception:  # unreadable: the loader will say why when it is used
        return "?"
    return metadata.get("family", "?") if metadata.get("format") == FORMAT else "?"
