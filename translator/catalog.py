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

from .errors import TranslatorError

HUB_PREFIX = "hf://"
CATALOG_VARIABLE = "TRANSLATOR_CATALOG"


@dataclass(frozen=True)
class CatalogEntry:
    name: str
    family: str
    # what it does, in a user's words
    description: str
    # where it is pulled from: an hf:// reference, a file beside the catalog, or None when no
    # copy has been verified (then ``origin`` says where it was published)
    source: str | None
    # checked on every pull when known
    sha256: str | None
    origin: str | None
    # the catalog's own folder, which shipped files are relative to
    folder: Path
    # what a user is doing when they want it ("Upscale photos", "Paint in a style", ...)
    group: str = "Other"
    # what input it expects, its licence, and its size as published
    input: str = ""
    licence: str = ""
    size: str = ""

    @property
    def shipped(self) -> Path | None:
        """The shipped file, for a model that comes with the package."""
        if not self.source or self.source.startswith(HUB_PREFIX):
            return None
        return self.folder / self.source


def catalog_file() -> Path:
    override = os.environ.get(CATALOG_VARIABLE)
    return Path(override) if override else Path(str(files("translator.shipped") / "catalog.json"))


def entries() -> list[CatalogEntry]:
    path = catalog_file()
    try:
        items = json.loads(path.read_text())["checkpoints"]
        return [
            CatalogEntry(
                item["name"], item["family"], item["description"], item.get("source"), item.get("sha256"), item.get("origin"), path.parent,
                item.get("group", "Other"), item.get("input", ""), item.get("licence", ""), item.get("size", ""),
            )
            for item in items
        ]
    except FileNotFoundError:
        return []
    except (ValueError, KeyError, TypeError) as error:
        raise TranslatorError(f"the checkpoint catalog {path} is unreadable ({type(error).__name__}: {error})") from None


def grouped() -> dict[str, list[CatalogEntry]]:
    """The entries by what they do, in the catalog's order."""
    groups: dict[str, list[CatalogEntry]] = {}
    for entry in entries():
        groups.setdefault(entry.group, []).append(entry)
    return groups


def find(name: str) -> CatalogEntry | None:
    return next((entry for entry in entries() if entry.name == name), None)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
