"""Where a model's weights come from: every way of naming a checkpoint, parsed in one place.

A checkpoint is named by

- a file on this machine (``model.pth``, ``generator.safetensors``),
- a run folder of ``translator train`` (its ``generator.safetensors``),
- a Hub file, ``hf://[datasets/|spaces/]ORG/NAME[@REVISION]/FILE``,
- a publisher's URL (``https://...``),
- a catalog name (``cyclegan-style_monet``),
- an OpenModelDB model (``omdb:4x-UltraSharp``), whose file and SHA-256 its index gives.

``parse_ref`` turns any of them into a ``Ref`` that carries what is known before the weights are
read (the family a catalog entry or a run records, the expected SHA-256, the licence), so that
whoever loads it gets those facts with the file. ``Ref.fetch()`` gives the local file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from . import catalog, openmodeldb
from .catalog import HUB_PREFIX, URL_PREFIXES
from .errors import TranslatorError, one_line
from .runs import CONFIG_FILE, read_record

# the file a run folder's main generator is exported to
RUN_GENERATOR = "generator.safetensors"


@dataclass(frozen=True)
class HubRef:
    repo_id: str
    revision: str | None
    path: str
    # model, dataset or space: copies of published weights live in all three
    repo_type: str = "model"

    def __str__(self) -> str:
        at = f"@{self.revision}" if self.revision else ""
        kind = "" if self.repo_type == "model" else f"{self.repo_type}s/"
        return f"{HUB_PREFIX}{kind}{self.repo_id}{at}/{self.path}"


@dataclass(frozen=True)
class Ref:
    """A checkpoint as a user named it, and what is known of it before it is read."""

    # as given
    text: str
    # "file", "run", "hub", "url" or "catalog"
    kind: str
    # the family it belongs to, where the name says so (a catalog entry, a run's record)
    family: str | None = None
    # the SHA-256 its file must have: pinned in the catalog, or remembered from a first download
    sha256: str | None = None
    licence: str = ""
    hub: HubRef | None = None
    entry: catalog.CatalogEntry | None = None
    # where a name that is not itself a URL downloads from (an OpenModelDB model's file)
    url: str | None = None

    def family_for(self, family: str | None) -> str | None:
        """The family to load it as: ``family`` where given, else the one its name says; both
        known, they must agree."""
        if family is not None and self.family is not None and family != self.family:
            raise TranslatorError(f"{self.text} is a {self.family} model, not {family}")
        return family or self.family

    def fetch(self) -> Path:
        """The local file, downloaded (and checked) first where it comes from elsewhere."""
        from . import hub

        if self.kind == "catalog":
            return hub.fetch_entry(self.entry)
        if self.kind == "hub":
            return hub.fetch(self.hub, self.sha256)
        if self.kind == "url":
            return hub.download(self.url or self.text, self.sha256)
        if self.kind == "run":
            path = Path(self.text) / RUN_GENERATOR
            if not path.is_file():
                raise TranslatorError(f"the run {Path(self.text).name} has written no {RUN_GENERATOR} yet")
            return path
        return Path(self.text)


def is_hub_ref(text) -> bool:
    return isinstance(text, str) and text.startswith(HUB_PREFIX)


def parse_hub(text: str) -> HubRef:
    """A validated Hub file reference: a repository, an optional revision, a file inside it."""
    from huggingface_hub import parse_hf_uri
    from huggingface_hub.errors import HfUriError, HFValidationError

    try:
        uri = parse_hf_uri(text)
    except (HfUriError, HFValidationError, ValueError) as error:
        raise TranslatorError(f"not a valid Hub reference {text!r} (expected hf://ORG/NAME[@REVISION]/FILE): {one_line(error)}") from None
    path = uri.path_in_repo
    parts = PurePosixPath(path).parts
    if not path or path.endswith("/"):
        raise TranslatorError(f"{text} names a repository but no file in it; add /FILE (e.g. /model.safetensors)")
    if path.startswith("/") or "\\" in path or any(part in ("..", ".") for part in parts):
        raise TranslatorError(f"{text}: the file path must stay inside the repository")
    return HubRef(uri.id, uri.revision, path, uri.type)


def parse_ref(text: str | os.PathLike | Ref) -> Ref:
    """Any name of a checkpoint as a ``Ref``. A Hub file or URL the catalog lists takes the
    entry's family, SHA-256 and licence; a local file or folder wins over a catalog name."""
    if isinstance(text, Ref):
        return text
    text = str(text).strip() if isinstance(text, str) else os.fspath(text)
    if not text:
        raise TranslatorError("no checkpoint named")
    if openmodeldb.is_ref(text):
        # every OpenModelDB model is an upscaler or restorer, which the esrgan family reads
        model, url, resource = openmodeldb.resolve(text)
        return Ref(text, "url", "esrgan", resource.sha256, model.licence, url=url)
    if is_hub_ref(text) or text.startswith(URL_PREFIXES):
        hub = parse_hub(text) if is_hub_ref(text) else None
        entry = next((e for e in catalog.entries() if text in e.sources), None)
        return Ref(
            text, "hub" if hub else "url", entry.family if entry else None, entry.expected_sha256() if entry else None,
            entry.licence if entry else "", hub, entry,
        )
    path = Path(text)
    if path.is_dir():
        return Ref(text, "run", _run_family(path))
    entry = None if path.exists() else catalog.find(text)
    if entry is not None:
        return Ref(text, "catalog", entry.family, entry.expected_sha256(), entry.licence, entry=entry)
    return Ref(text, "file")


def _run_family(folder: Path) -> str:
    record = read_record(folder)
    if record is None:
        raise TranslatorError(f"{folder.name} is a folder, not a checkpoint file or a run of `translator train` (no {CONFIG_FILE})")
    return record.family
