"""The checkpoint catalog: the models a user is likely to want, by name, and where each comes from.

The catalog ships as package data (``translator.shipped``, the repository's ``checkpoints/``
folder) beside the models this project trained; ``TRANSLATOR_CATALOG`` names another catalog
file. A shipped model's source is a file name beside its catalog.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

from . import units
from .errors import TranslatorError

HUB_PREFIX = "hf://"
URL_PREFIXES = ("https://", "http://")
CATALOG_VARIABLE = "TRANSLATOR_CATALOG"
# where the project keeps what it learns on this machine (the SHA-256 of first downloads)
CACHE_VARIABLE = "TRANSLATOR_CACHE"


@dataclass(frozen=True)
class CatalogEntry:
    name: str
    family: str
    # what it does, in a user's words
    description: str
    # where it is pulled from, tried in order: hf:// references at pinned revisions, the
    # publisher's URL last, or a file beside the catalog; empty when no copy can be pulled yet
    # (then ``origin`` says where it was published)
    sources: tuple[str, ...]
    # checked on every pull when public sources agree on it; otherwise the first download's is
    # remembered and checked from then on (``trusted_sha256``)
    sha256: str | None
    origin: str | None
    # the catalog's own folder, which shipped files are relative to
    folder: Path
    # what a user is doing when they want it ("Upscale photos", "Paint in a style", ...)
    group: str = "Other"
    # what input it expects, its licence, and its size in bytes as published (None: unknown;
    # ``about``: known only roughly)
    input: str = ""
    licence: str = ""
    bytes: int | None = None
    # the best model of its family, used when none is named wherever it can be had (else the
    # family's shipped default)
    recommended: bool = False
    # the verb its group's work is named by on a button ("Upscale"), and an upscaler's factor
    verb: str = "Translate"
    scale: int = 0
    # a name short enough for a picker on a phone (the description when that is short already)
    title: str = ""
    about: bool = False

    @property
    def size(self) -> str:
        """Its size in the units every size is shown in ("4.66 MB", "about 43 MB"), or ""."""
        if self.bytes is None:
            return ""
        return f"about {units.size(self.bytes, figures=2)}" if self.about else units.size(self.bytes)

    @property
    def action(self) -> str:
        """What the button that runs it says: "Upscale x4", "Colourise"."""
        return f"{self.verb} x{self.scale}" if self.scale else self.verb

    @property
    def source(self) -> str | None:
        """The first place it is pulled from."""
        return self.sources[0] if self.sources else None

    @property
    def shipped(self) -> Path | None:
        """The shipped file, for a model that comes with the package."""
        local = next((s for s in self.sources if not s.startswith((HUB_PREFIX, *URL_PREFIXES))), None)
        return self.folder / local if local else None

    def expected_sha256(self) -> str | None:
        """The pinned SHA-256, else the one its first download had."""
        return self.sha256 or trusted_sha256(self.name)


def catalog_file() -> Path:
    override = os.environ.get(CATALOG_VARIABLE)
    return Path(override) if override else Path(str(files("translator.shipped") / "catalog.json"))


def entries() -> list[CatalogEntry]:
    path = catalog_file()
    try:
        catalog = json.loads(path.read_text())
        items, verbs = catalog["checkpoints"], catalog.get("actions", {})
        return [
            CatalogEntry(
                item["name"], item["family"], item["description"], tuple(item.get("sources", ())), item.get("sha256"), item.get("origin"), path.parent,
                item.get("group", "Other"), item.get("input", ""), item.get("licence", ""), _bytes(item.get("bytes")), bool(item.get("recommended", False)),
                str(verbs.get(item.get("group"), "Translate")), int(item.get("scale", 0)), item.get("title") or item["description"], bool(item.get("about", False)),
            )
            for item in items
        ]
    except FileNotFoundError:
        return []
    except (ValueError, KeyError, TypeError) as error:
        raise TranslatorError(f"the checkpoint catalog {path} is unreadable ({type(error).__name__}: {error})") from None


def _bytes(value) -> int | None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
        raise ValueError(f"bytes must be a whole number, not {value!r}")
    return value


def grouped() -> dict[str, list[CatalogEntry]]:
    """The entries by what they do, in the catalog's order."""
    groups: dict[str, list[CatalogEntry]] = {}
    for entry in entries():
        groups.setdefault(entry.group, []).append(entry)
    return groups


def recommended(family: str) -> CatalogEntry | None:
    return next((entry for entry in entries() if entry.family == family and entry.recommended), None)


def find(name: str) -> CatalogEntry | None:
    return next((entry for entry in entries() if entry.name == name), None)


def cache_folder() -> Path:
    override = os.environ.get(CACHE_VARIABLE)
    if override:
        return Path(override)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "image-translator"


def trusted() -> dict[str, str]:
    """The SHA-256 each catalog model had when it was first downloaded here, by name. A damaged
    record is an error, never an empty one: that would trust the next download, whatever it is."""
    path = cache_folder() / TRUSTED_FILE
    try:
        known = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError):
        known = None
    if not isinstance(known, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in known.items()):
        raise TranslatorError(f"{path} is damaged (not a record of SHA-256 digests); restore it or delete it to trust downloads anew")
    return known


def trusted_sha256(name: str) -> str | None:
    return trusted().get(name)


def remember_sha256(name: str, digest: str) -> None:
    """Trust on first use: from now on a download of ``name`` must have ``digest``."""
    from .files import atomic_write

    path = cache_folder() / TRUSTED_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    known = trusted()
    known[name] = digest
    atomic_write(path, json.dumps(known, indent=1, sort_keys=True).encode())


TRUSTED_FILE = "trusted-sha256.json"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
