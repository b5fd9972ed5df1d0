"""Checkpoints on the Hugging Face Hub, referenced as ``hf://{repo_id}[@{revision}]/{path}``.

Downloads go through ``huggingface_hub`` itself, so they land in the standard cache, are reused
offline, and honour ``HF_HUB_OFFLINE``, ``HF_HOME``/``HF_HUB_CACHE``, ``HF_ENDPOINT`` and
``HF_TOKEN``. Its errors become one line a person can act on.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from . import catalog
from .catalog import file_sha256
from .errors import TranslatorError, one_line

PREFIX = catalog.HUB_PREFIX


@dataclass(frozen=True)
class HubRef:
    repo_id: str
    revision: str | None
    path: str

    def __str__(self) -> str:
        at = f"@{self.revision}" if self.revision else ""
        return f"{PREFIX}{self.repo_id}{at}/{self.path}"


def is_hub_ref(text: str | Path) -> bool:
    return isinstance(text, str) and text.startswith(PREFIX)


def parse(text: str) -> HubRef:
    """A validated reference: a model repository, an optional revision, a file inside it."""
    from huggingface_hub import parse_hf_uri
    from huggingface_hub.errors import HfUriError, HFValidationError

    try:
        uri = parse_hf_uri(text)
    except (HfUriError, HFValidationError, ValueError) as error:
        raise TranslatorError(f"not a valid Hub reference {text!r} (expected hf://ORG/NAME[@REVISION]/FILE): {one_line(error)}") from None
    if uri.type != "model":
        raise TranslatorError(f"{text}: checkpoints come from model repositories, not a {uri.type}")
    path = uri.path_in_repo
    parts = PurePosixPath(path).parts
    if not path or path.endswith("/"):
        raise TranslatorError(f"{text} names a repository but no file in it; add /FILE (e.g. /model.safetensors)")
    if path.startswith("/") or "\\" in path or any(part in ("..", ".") for part in parts):
        raise TranslatorError(f"{text}: the file path must stay inside the repository")
    return HubRef(uri.id, uri.revision, path)


def fetch(text: str, sha256: str | None = None) -> Path:
    """The local file for a Hub reference, downloaded into the Hugging Face cache if needed
    (with a progress bar), and checked against ``sha256`` when one is known."""
    from huggingface_hub import errors, hf_hub_download

    from . import __version__

    ref = parse(text)
    # its retry notices would spill several lines before our one-line error
    quiet = logging.getLogger("huggingface_hub")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        local = Path(hf_hub_download(ref.repo_id, ref.path, revision=ref.revision, library_name="image-translator", library_version=__version__))
    # GatedRepoError is a RepositoryNotFoundError, LocalEntryNotFoundError an EntryNotFoundError: order matters
    except errors.GatedRepoError:
        raise TranslatorError(f"{ref.repo_id} is gated: accept its terms on the Hub, then log in (hf auth login) or set HF_TOKEN") from None
    except errors.RepositoryNotFoundError:
        raise TranslatorError(f"repository {ref.repo_id} not found on the Hub (if it is private, log in or set HF_TOKEN)") from None
    except errors.RevisionNotFoundError:
        raise TranslatorError(f"{ref.repo_id} has no revision {ref.revision!r}") from None
    except errors.LocalEntryNotFoundError:
        raise TranslatorError(f"{ref} is not in the local cache and the Hub cannot be reached (offline, or the network failed)") from None
    except errors.EntryNotFoundError:
        raise TranslatorError(f"{ref.repo_id} has no file {ref.path!r} at {ref.revision or 'main'}") from None
    except errors.HfHubHTTPError as error:
        raise TranslatorError(f"the Hub refused {ref}: {one_line(error)}") from None
    except Exception as error:  # httpx timeouts and connection errors, OSError on the cache
        if "timeout" in type(error).__name__.lower() or "timed out" in str(error).lower():
            raise TranslatorError(f"timed out fetching {ref} from the Hub (HF_HUB_DOWNLOAD_TIMEOUT sets the limit)") from None
        raise TranslatorError(f"cannot fetch {ref}: {one_line(error, named=True)}") from None
    finally:
        quiet.setLevel(level)
    if sha256 is not None:
        actual = file_sha256(local)
        if actual != sha256.lower():
            _evict(local)
            raise TranslatorError(f"refused {ref}: its sha256 is {actual}, not the expected {sha256}; the download was removed from the cache")
    return local


def resolve(text: str | Path) -> Path:
    """A local path as it is, a Hub reference fetched (checked against the catalog's sha256 when
    it lists the reference), or a catalog name."""
    if is_hub_ref(text):
        known = next((e for e in catalog.entries() if e.source == text), None)
        return fetch(text, known.sha256 if known else None)
    path = Path(text)
    entry = None if path.exists() else catalog.find(str(text))
    if entry is None:
        return path
    if not entry.source:
        raise TranslatorError(
            f"{entry.name} has no verified Hub copy yet: download it from {entry.origin} and pass the file, "
            "or pass an hf:// reference to a copy you trust"
        )
    if is_hub_ref(entry.source):
        return fetch(entry.source, entry.sha256)
    local = entry.shipped
    if not local.is_file():
        raise TranslatorError(f"the shipped model {entry.name} is missing: {local} (reinstall the package)")
    if entry.sha256 and file_sha256(local) != entry.sha256:
        raise TranslatorError(f"{local} does not match the catalog's sha256 for {entry.name}; refused")
    return local


def pull(reference: str, sha256: str | None = None) -> Path:
    """``translator pull`` and the app's Pull: a Hub reference (checked against ``sha256``, else
    the catalog's) or a catalog name, fetched into the cache; anything else is refused."""
    reference = (reference or "").strip()
    if is_hub_ref(reference):
        return fetch(reference, sha256) if sha256 else resolve(reference)
    if catalog.find(reference) is not None:
        return resolve(reference)
    raise TranslatorError(f"{reference!r} is neither a Hub reference (hf://ORG/NAME[@REVISION]/FILE) nor a catalog name")


def _evict(local: Path) -> None:
    # the snapshot entry is a link to a content-addressed blob; both go
    blob = local.resolve()
    local.unlink(missing_ok=True)
    if blob != local:
        blob.unlink(missing_ok=True)
