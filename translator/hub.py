"""Checkpoints on the Hugging Face Hub, referenced as ``hf://{repo_id}[@{revision}]/{path}``.

Downloads go through ``huggingface_hub`` itself, so they land in the standard cache, are reused
offline, and honour ``HF_HUB_OFFLINE``, ``HF_HOME``/``HF_HUB_CACHE``, ``HF_ENDPOINT`` and
``HF_TOKEN``. Its errors become one line a person can act on.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

from . import catalog
from .catalog import file_sha256
from .errors import TranslatorError, one_line
from .files import check_room, count_written
from .refs import HubRef, is_hub_ref, parse_hub, parse_ref

log = logging.getLogger(__name__)

# Whose identity reads from the Hub. None: huggingface_hub's own lookup (HF_TOKEN, `hf auth
# login`), the CLI's way on its owner's machine. False: nobody's. A string: that token's.
_read_token: ContextVar[str | bool | None] = ContextVar("read_token", default=None)
# the variable with which an app's owner lets visitors read with the server's token
SHARE_OWNER_TOKEN = "TRANSLATOR_SHARE_OWNER_TOKEN"


@contextmanager
def _holding(variable: ContextVar, value):
    reset = variable.set(value)
    try:
        yield
    finally:
        variable.reset(reset)


def reading_as(token: str | bool | None):
    """Hub reads inside (downloads of models and datasets, here and in threads started here
    with the context copied) use ``token``."""
    return _holding(_read_token, token)


def read_token() -> str | bool | None:
    return _read_token.get()


def visitor_read_token() -> bool | None:
    """The token a served app reads with: none, so that a visitor to a public Space never reads
    the owner's private or gated repositories; the owner's own lookup only when they opt in."""
    return None if os.environ.get(SHARE_OWNER_TOKEN) == "1" else False


class NotCached(TranslatorError):
    """The file is not on this machine, and the network may not be used or reached."""


def fetch(ref: HubRef, sha256: str | None = None) -> Path:
    """The local file for a Hub reference, downloaded into the Hugging Face cache if needed
    (with a progress bar), and checked against ``sha256`` when one is known."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_download, hf_hub_url, try_to_load_from_cache

    from . import __version__

    with hub_errors(str(ref), ref.repo_id, ref.revision, path=ref.path):
        cached = try_to_load_from_cache(ref.repo_id, ref.path, revision=ref.revision, repo_type=ref.repo_type)
        if not isinstance(cached, str) and not offline():
            # the size the Hub declares, before a byte is downloaded
            url = hf_hub_url(ref.repo_id, ref.path, repo_type=ref.repo_type, revision=ref.revision)
            _check_size(str(ref), get_hf_file_metadata(url, token=read_token()).size)
        local = Path(hf_hub_download(
            ref.repo_id, ref.path, repo_type=ref.repo_type, revision=ref.revision, token=read_token(),
            library_name="image-translator", library_version=__version__,
        ))
    if not isinstance(cached, str):
        count_written(local)
    if sha256 is not None:
        actual = file_sha256(local)
        if actual != sha256.lower():
            _evict(local)
            raise TranslatorError(f"refused {ref}: its SHA-256 is not the expected one; the download was removed from the cache",
                                  f"sha256 {actual}, expected {sha256.lower()}")
    return local


@contextmanager
def hub_errors(ref: str, repo_id: str, revision: str | None, path: str = "", kind: str = "repository"):
    """huggingface_hub's errors, raised inside, as one line a person can act on; its retry
    notices, which would spill several lines before that line, are silenced meanwhile."""
    from huggingface_hub import errors

    quiet = logging.getLogger("huggingface_hub")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        yield
    # GatedRepoError is a RepositoryNotFoundError, LocalEntryNotFoundError an EntryNotFoundError: order matters
    except errors.GatedRepoError:
        raise TranslatorError(f"{repo_id} is gated: accept its terms on the Hub, then log in (hf auth login) or set HF_TOKEN") from None
    except errors.RepositoryNotFoundError:
        raise TranslatorError(f"{kind} {repo_id} not found on the Hub (if it is private, log in or set HF_TOKEN)") from None
    except errors.RevisionNotFoundError:
        raise TranslatorError(f"{repo_id} has no revision {revision!r}") from None
    except errors.LocalEntryNotFoundError:
        raise NotCached(f"{ref} is not in the local cache and the Hub cannot be reached (offline, or the network failed)") from None
    except errors.EntryNotFoundError:
        raise TranslatorError(f"{repo_id} has no file {path!r} at {revision or 'main'}") from None
    except errors.HfHubHTTPError as error:
        raise TranslatorError(f"the Hub refused {ref}: {one_line(error)}") from None
    except TranslatorError:
        raise
    except Exception as error:  # httpx timeouts and connection errors, OSError on the cache
        if "timeout" in type(error).__name__.lower() or "timed out" in str(error).lower():
            raise TranslatorError(f"timed out fetching {ref} from the Hub (HF_HUB_DOWNLOAD_TIMEOUT sets the limit)") from None
        raise TranslatorError(f"cannot fetch {ref}: {one_line(error, named=True)}") from None
    finally:
        quiet.setLevel(level)


def fetch_entry(entry: catalog.CatalogEntry) -> Path:
    """The local file of a catalog model: shipped, or from its sources in order, the next tried
    whenever one fails (not found, refused, unreachable, a SHA-256 that differs). A model with no
    published SHA-256 has its first download's remembered, and every later one checked against it."""
    if not entry.sources:
        raise TranslatorError(
            f"{entry.name} has no copy to pull yet: download it from {entry.origin} and pass the file, "
            "or pass an hf:// reference to a copy you trust"
        )
    local = entry.shipped
    if local is not None:
        if not local.is_file():
            raise TranslatorError(f"the shipped model {entry.name} is missing: {local} (reinstall the package)")
        if entry.sha256 and file_sha256(local) != entry.sha256:
            raise TranslatorError(f"{local} does not match the catalog's sha256 for {entry.name}; refused")
        return local
    if not is_downloaded(entry) and not can_download(entry):
        size = f" ({entry.size})" if entry.size else ""
        raise TranslatorError(f"can't download {entry.name}{size}: no internet connection; models marked 'on disk' work offline")
    expected = entry.expected_sha256()
    failures: list[TranslatorError] = []
    for source in entry.sources:
        try:
            path = fetch(parse_hub(source), expected) if is_hub_ref(source) else download(source, expected)
        except TranslatorError as error:
            failures.append(error)
            continue
        if expected is None:
            catalog.remember_sha256(entry.name, file_sha256(path))
        return path
    size = f" ({entry.size})" if entry.size else ""
    tried = len(entry.sources)
    raise TranslatorError(
        f"could not fetch {entry.name}{size} from {'its source' if tried == 1 else f'any of its {tried} sources'}",
        "; ".join(f"{source}: {error}" + (f" ({error.details})" if error.details else "") for source, error in zip(entry.sources, failures)),
    )


def download(url: str, sha256: str | None = None) -> Path:
    """A publisher's file, downloaded once into torch hub's checkpoint cache (TORCH_HOME) with a
    progress bar, under a temporary name that is renamed only once the whole file (the size the
    server declared) is there. The standard proxy variables apply."""
    import urllib.error

    import torch.hub

    from .files import atomic_path

    target = _download_path(url)
    name = target.name
    if not target.is_file():
        if offline():
            raise NotCached(f"{name} is not in the download cache and the network is off (HF_HUB_OFFLINE)")
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            declared = _declared_size(url)
            _check_size(name, int(declared) if declared is not None else None)
            with atomic_path(target) as temp:
                torch.hub.download_url_to_file(url, str(temp), progress=True)
                # torch reads to the end of the stream: a connection cut short looks complete to it
                if declared is not None and temp.stat().st_size != int(declared):
                    raise TranslatorError(f"the download stopped after {temp.stat().st_size} of {declared} bytes")
            count_written(target)
        except urllib.error.HTTPError as error:
            raise TranslatorError(f"the server answered {error.code} {error.reason}") from None
        except (urllib.error.URLError, OSError, ValueError) as error:  # refused, unreachable, cut short
            reason = getattr(error, "reason", error)
            raise TranslatorError(f"cannot download it ({one_line(reason if isinstance(reason, BaseException) else error, named=True)})") from None
    if sha256 is not None:
        actual = file_sha256(target)
        if actual != sha256.lower():
            target.unlink(missing_ok=True)
            raise TranslatorError(f"refused {name}: its SHA-256 is not the expected one; the download was removed", f"sha256 {actual}, expected {sha256.lower()}")
    return target


def _check_size(name: str, size: int | None) -> None:
    """Refuse a download larger than any checkpoint may be, from the size its server declares:
    read first and refused after, it would fill the disk and stay in the cache."""
    from .checkpoints import MAX_BYTES
    from .units import size as readable

    if size is not None and size > MAX_BYTES:
        raise TranslatorError(f"{name} is {readable(size)}, over the {readable(MAX_BYTES)} limit for a checkpoint (TRANSLATOR_MAX_CHECKPOINT_BYTES); not downloaded")
    check_room(name, size)


def is_downloaded(entry: catalog.CatalogEntry) -> bool:
    """Whether a catalog model is on this machine already (shipped, or in a download cache)."""
    from huggingface_hub import try_to_load_from_cache

    if entry.shipped is not None:
        return entry.shipped.is_file()
    for source in entry.sources:
        if is_hub_ref(source):
            ref = parse_hub(source)
            if isinstance(try_to_load_from_cache(ref.repo_id, ref.path, revision=ref.revision, repo_type=ref.repo_type), str):
                return True
        elif _download_path(source).is_file():
            return True
    return False


def _download_path(url: str) -> Path:
    """Where a publisher's file lives once downloaded: torch hub's checkpoint cache, by file name."""
    from urllib.parse import urlparse

    import torch.hub

    name = Path(urlparse(url).path).name
    if not name:
        raise TranslatorError(f"{url} names no file")
    return Path(torch.hub.get_dir()) / "checkpoints" / name


def _declared_size(url: str) -> str | None:
    """The Content-Length a server gives for ``url`` (None for a server without HEAD)."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="HEAD", headers={"User-Agent": "image-translator"}), timeout=30) as head:
            return head.headers.get("Content-Length")
    except urllib.error.HTTPError as error:
        if error.code in (405, 501):
            return None
        raise


def default_model(family) -> tuple[str | None, str]:
    """The model ``family`` translates with when none is named, and a note when it is not the
    best one: the catalog's recommended model where it is on disk or can be downloaded now,
    else the family's shipped default ("offline: used the shipped compact-sr-x4")."""
    shipped, best = family.default_checkpoint, catalog.recommended(family.name)
    if best is None or best.name == shipped or is_downloaded(best) or can_download(best):
        return (best.name if best else shipped), ""
    return shipped, f"offline: used the shipped {shipped}" if shipped else ""


def load_or_shipped(name: str, family, load: Callable[[str], object]) -> tuple[str, object, str]:
    """``load(name)``; where ``name`` is the family's recommended model and cannot be had, the
    family's shipped default loaded instead, at once. Returns the name loaded, what ``load``
    gave, and the note of a fallback ("" when there was none)."""
    try:
        return name, load(name), ""
    except TranslatorError as error:
        best = catalog.recommended(family.name)
        if best is None or best.name != name or not family.default_checkpoint:
            raise
        log.info("falling back from %s: %s", name, error)  # the whole story for whoever looks; the note stays short
        shipped = family.default_checkpoint
        return shipped, load(shipped), f"couldn't get {name}; used the shipped {shipped}"


def can_download(entry: catalog.CatalogEntry) -> bool:
    """Whether one of a catalog model's remote sources can be reached now (quickly: see ``reachable``)."""
    from huggingface_hub import constants

    if offline():
        return False
    hosts = {constants.ENDPOINT if is_hub_ref(source) else source for source in entry.sources if source.startswith((catalog.HUB_PREFIX, *catalog.URL_PREFIXES))}
    return any(reachable(url) for url in hosts)


# how long an answer of ``reachable`` holds: listing the catalog asks for every entry
REACHABLE_FOR_S = 30.0
REACHABLE_TIMEOUT_S = 1.5
_reachable: dict[tuple[str, int], tuple[float, bool]] = {}


def reachable(url: str) -> bool:
    """Whether ``url``'s server (or the proxy that carries it) accepts a connection within
    ``REACHABLE_TIMEOUT_S``. Without a network, a refused port, an unknown or unresolvable name
    all answer at once or at the timeout, never after a download's retries."""
    import socket
    import threading
    import time
    import urllib.request
    from urllib.parse import urlparse

    parsed = urlparse(url)
    proxy = None if urllib.request.proxy_bypass(parsed.hostname or "") else urllib.request.getproxies().get(parsed.scheme)
    if proxy:
        parsed = urlparse(proxy if "://" in proxy else f"http://{proxy}")
    address = (parsed.hostname or "", parsed.port or (443 if parsed.scheme == "https" else 80))
    now = time.monotonic()
    known = _reachable.get(address)
    if known and now - known[0] < REACHABLE_FOR_S:
        return known[1]
    answer: list[bool] = []

    def connect() -> None:
        try:
            with socket.create_connection(address, timeout=REACHABLE_TIMEOUT_S):
                answer.append(True)
        except OSError:
            answer.append(False)

    # name resolution takes no timeout of its own: the check runs aside and is abandoned when late
    check = threading.Thread(target=connect, daemon=True)
    check.start()
    check.join(REACHABLE_TIMEOUT_S)
    _reachable[address] = (now, bool(answer and answer[0]))
    return _reachable[address][1]


def offline() -> bool:
    """Whether huggingface_hub's offline mode (HF_HUB_OFFLINE) is on: no download is tried."""
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def pull(reference: str, sha256: str | None = None) -> Path:
    """``translator pull`` and the app's Pull: a Hub reference (checked against ``sha256``, else
    the catalog's) or a catalog name, fetched into the cache; anything else is refused."""
    ref = parse_ref(reference or "")
    if ref.kind == "hub":
        return fetch(ref.hub, sha256 or ref.sha256)
    if ref.kind == "catalog" or ref.url is not None:  # a catalog name, or an OpenModelDB model
        return ref.fetch()
    raise TranslatorError(f"{reference!r} is neither a Hub reference (hf://ORG/NAME[@REVISION]/FILE), a catalog name nor an OpenModelDB model (omdb:ID)")


def _evict(local: Path) -> None:
    # the snapshot entry is a link to a content-addressed blob; both go
    blob = local.resolve()
    local.unlink(missing_ok=True)
    if blob != local:
        blob.unlink(missing_ok=True)
