"""OpenModelDB (openmodeldb.info) as a catalog: the community's index of some 700 upscaling and
restoration models, searched here and pulled as ``omdb:ID``.

The index (``/api/v1/models.json``: one entry per model, with its licence, architecture,
scale and files, each with a SHA-256) is kept in the cache and read again once a day; offline,
the cached copy is used and its age said. A model whose file sits on a plain download host
(GitHub releases, the Hub, object storage) downloads through the publisher downloader with its
SHA-256 enforced; one hosted only where a person must click through (Google Drive, Mega, ...)
is shown with its page, to download by hand and upload, never scraped.
"""

from __future__ import annotations

import json
import os
import re
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

from . import units
from .errors import TranslatorError, one_line

INDEX_URL = "https://openmodeldb.info/api/v1/models.json"
PAGE_URL = "https://openmodeldb.info/models/"
PREFIX = "omdb:"
# read again once it is older than this
MAX_AGE_S = 24 * 3600
# the index is a few megabytes; far more is not it
MAX_INDEX_BYTES = 64 * 1024**2
# hosts whose links open a page a person clicks through, not a file
MANUAL_HOSTS = ("drive.google.com", "mega.nz", "1drv.ms", "onedrive.live.com", "mediafire.com", "pcloud", "u.pcloud.link", "icedrive.net",
                "drive.proton.me", "dropbox.com")
# the file kinds the engine reads, best first
KINDS = ("safetensors", "pth", "pt", "ckpt")


@dataclass(frozen=True)
class Resource:
    kind: str
    size: int | None
    sha256: str | None
    urls: tuple[str, ...]

    def direct_url(self) -> str | None:
        """A URL that is the file itself, where the resource has one."""
        # http too: the file's SHA-256 is checked whichever way it comes
        return next((url for url in self.urls if url.startswith(("https://", "http://")) and not _manual(url)), None)


@dataclass(frozen=True)
class Model:
    id: str
    name: str
    author: str
    licence: str
    architecture: str
    scale: int | None
    tags: tuple[str, ...]
    description: str
    resources: tuple[Resource, ...] = field(default_factory=tuple)

    @property
    def page(self) -> str:
        return PAGE_URL + urllib.parse.quote(self.id)

    def download(self) -> tuple[str, Resource] | None:
        """The best file to download without a person: its URL and resource; None when every
        copy is behind a click-through host."""
        for kind in KINDS:
            for resource in self.resources:
                if resource.kind == kind and (url := resource.direct_url()):
                    return url, resource
        return None

    def size(self) -> str:
        sizes = [r.size for r in self.resources if r.kind in KINDS and r.size]
        return units.size(min(sizes)) if sizes else "size unknown"

    def matches(self, text: str = "", arch: str = "", scale: int | None = None, licence: str = "") -> bool:
        words = text.lower().split()
        haystack = " ".join((self.id, self.name, self.author, self.architecture, *self.tags, self.description)).lower()
        return (all(word in haystack for word in words) and (not arch or self.architecture.lower() == arch.lower())
                and (scale is None or self.scale == scale) and (not licence or licence.lower() in self.licence.lower()))


@dataclass(frozen=True)
class Index:
    models: dict[str, Model]
    # when the copy read was fetched (seconds since the epoch), and whether it could be refreshed
    fetched: float
    stale: bool = False

    def age(self) -> str:
        return units.age(max(0.0, time.time() - self.fetched))

    def search(self, text: str = "", arch: str = "", scale: int | None = None, licence: str = "") -> list[Model]:
        return [m for m in self.models.values() if m.matches(text, arch, scale, licence)]

    def find(self, model_id: str) -> Model:
        model = self.models.get(model_id)
        if model is None:
            lowered = {key.lower(): m for key, m in self.models.items()}
            model = lowered.get(model_id.lower())
        if model is None:
            raise TranslatorError(f"OpenModelDB has no model {model_id!r}; search with: translator catalog --source openmodeldb --search WORDS")
        return model


def index_url() -> str:
    # a mirror, or a stand-in in the tests
    return os.environ.get("TRANSLATOR_OPENMODELDB_URL", INDEX_URL)


def _cache_file() -> Path:
    from .catalog import cache_folder

    return cache_folder() / "openmodeldb" / "models.json"


def index(refresh: bool = False) -> Index:
    """The index: the cached copy while it is fresh, else fetched again; the cached one (said
    to be stale) when fetching fails."""
    from .hub import offline

    cache = _cache_file()
    fetched = cache.stat().st_mtime if cache.is_file() else None
    if fetched is not None and not refresh and time.time() - fetched < MAX_AGE_S:
        return _read(cache, fetched)
    if offline():
        failure = "the network is off (HF_HUB_OFFLINE)"
    else:
        try:
            _fetch(cache)
            return _read(cache, cache.stat().st_mtime)
        except TranslatorError as error:
            failure = str(error)
    if fetched is None:
        raise TranslatorError(f"OpenModelDB's index is not cached here and cannot be fetched: {failure}")
    return _read(cache, fetched, stale=True)


def _fetch(cache: Path) -> None:
    import urllib.error
    import urllib.request

    from .files import atomic_write

    request = urllib.request.Request(index_url(), headers={"User-Agent": "image-translator"})
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            data = answer.read(MAX_INDEX_BYTES + 1)
    except urllib.error.HTTPError as error:
        raise TranslatorError(f"{index_url()} answered {error.code} {error.reason}") from None
    except (urllib.error.URLError, OSError, ValueError) as error:
        reason = getattr(error, "reason", error)
        raise TranslatorError(f"cannot reach {index_url()} ({one_line(reason if isinstance(reason, BaseException) else error, named=True)})") from None
    if len(data) > MAX_INDEX_BYTES:
        raise TranslatorError(f"{index_url()} sent over {units.size(MAX_INDEX_BYTES)}: not OpenModelDB's index")
    _parse(data, index_url())  # a broken answer must not replace a good copy
    cache.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(cache, data)


def _read(cache: Path, fetched: float, stale: bool = False) -> Index:
    return Index(_parse(cache.read_bytes(), str(cache)), fetched, stale)


def _parse(data: bytes, where: str) -> dict[str, Model]:
    try:
        raw = json.loads(data)
    except ValueError:
        raise TranslatorError(f"{where} is not JSON: not OpenModelDB's index") from None
    if not isinstance(raw, dict):
        raise TranslatorError(f"{where} is not OpenModelDB's index (expected an object of models)")
    return {key: model for key, fields in raw.items() if (model := _model(key, fields)) is not None}


def _model(key: str, fields) -> Model | None:
    """One entry, or None for one too damaged to offer (the rest of the index still serves)."""
    if not isinstance(fields, dict):
        return None
    resources = []
    for item in fields.get("resources") or []:
        if isinstance(item, dict) and isinstance(item.get("urls"), list):
            size = item.get("size")
            sha256 = item.get("sha256")
            resources.append(Resource(str(item.get("type", "")).lower(), size if isinstance(size, int) else None,
                                      sha256.lower() if isinstance(sha256, str) and len(sha256) == 64 else None,
                                      tuple(u for u in item["urls"] if isinstance(u, str))))
    scale = fields.get("scale")
    description = str(fields.get("description") or "")
    return Model(
        key, str(fields.get("name") or key), str(fields.get("author") or ""), str(fields.get("license") or "no licence stated"),
        str(fields.get("architecture") or ""), scale if isinstance(scale, int) else None,
        tuple(str(t) for t in fields.get("tags") or [] if isinstance(t, str)), _first_sentence(description), tuple(resources),
    )


def _first_sentence(markdown: str) -> str:
    # descriptions are markdown pages that open with a link, a heading and "Key: value" facts;
    # a listing shows their first line of prose
    for line in markdown.splitlines():
        line = line.strip()
        if line and not line.startswith(("#", "[", "!", "|")) and not line.endswith(":") and not re.match(r"[\w ()-]{1,40}:\s", line):
            return line[:160]
    return ""


def _manual(url: str) -> bool:
    host = urllib.parse.urlparse(url).hostname or ""
    return any(host == known or host.endswith("." + known) or known in host for known in MANUAL_HOSTS)


def is_ref(text) -> bool:
    return isinstance(text, str) and text.startswith(PREFIX)


def resolve(text: str) -> tuple[Model, str, Resource]:
    """``omdb:ID``: the model, and the URL and resource its file downloads from; a model hosted
    only behind click-through pages is refused with its page to download it from by hand."""
    model = index().find(text.removeprefix(PREFIX).strip())
    found = model.download()
    if found is None:
        raise TranslatorError(f"{model.id} is hosted only where a person must click through; download it from {model.page}, then upload it (or pass the file)")
    return model, *found
