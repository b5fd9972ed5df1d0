"""Training data from Hugging Face Hub datasets:
``hf://datasets/ORG/NAME[@REVISION][/SUBSET][?split=SPLIT&columns=INPUT,TARGET]``.

The reference says all there is to know of the data, so a run's record keeps it whole and a
resumed run reads the same split and columns; no training setting is the Hub's alone.

The dataset's files come through ``huggingface_hub`` (its cache, offline mode, token and
progress bars). Parquet sets, the Hub's usual form, are read in place with pyarrow, memory
mapped: a sample is a ``Cell`` (file, row group, row, column) and its image is decoded only
when a loader asks for it, so no dataset is ever held in memory whole. A dataset of image
folders (``trainA/``, ``train/A`` ...) is handed to the family's own folder layouts.
"""

from __future__ import annotations

import io
import itertools
import json
import os
import re
import urllib.parse
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from .catalog import HUB_PREFIX
from .errors import TranslatorError, one_line
from .sources import DataSource

PREFIX = f"{HUB_PREFIX}datasets/"
# the pix2pix and CycleGAN sets on the Hub, at the revisions their cards were read at
KNOWN = {
    "facades": "hf://datasets/huggan/facades@f5cb9a55f7c4c9e07fa812b2dc21846fc3ffeb78",
    "night2day": "hf://datasets/huggan/night2day",
    "edges2shoes": "hf://datasets/huggan/edges2shoes",
    "maps": "hf://datasets/huggan/maps",
    "horse2zebra": "hf://datasets/huggan/horse2zebra",
    "summer2winter_yosemite": "hf://datasets/huggan/summer2winter_yosemite",
}
# column names that say which side of a pair they hold, input first
PAIRS = (("imageA", "imageB"), ("A", "B"), ("input", "target"), ("input_image", "output_image"), ("source", "target"),
         ("original_image", "edited_image"), ("lr", "hr"), ("low", "high"), ("image", "target"))
SPLITS = {"train": "train", "test": "test", "validation": "validation", "valid": "validation", "val": "validation", "dev": "validation"}
VALIDATION = ("validation", "test")
IMAGE_FILES = ("*.png", "*.jpg", "*.jpeg", "*.webp", "*.bmp", "*.tif", "*.tiff")


@dataclass(frozen=True)
class DatasetRef:
    repo_id: str
    revision: str | None = None
    subset: str = ""
    # the split trained on; validation uses the dataset's validation or test split
    split: str = "train"
    # the image columns read, input first (empty: detected from the column names)
    columns: tuple[str, ...] = ()

    @property
    def dataset(self) -> str:
        """The reference without its options: the data as messages name it."""
        at = f"@{self.revision}" if self.revision else ""
        return f"{PREFIX}{self.repo_id}{at}{'/' + self.subset if self.subset else ''}"

    def __str__(self) -> str:
        query = {"split": self.split} if self.split != "train" else {}
        if self.columns:
            query["columns"] = ",".join(self.columns)
        return self.dataset + (f"?{urllib.parse.urlencode(query, safe=',')}" if query else "")


def is_dataset_ref(text) -> bool:
    # only the prefix: a known name could also be a local folder's, and the folder wins
    return isinstance(text, str) and text.startswith(PREFIX)


FORM = "hf://datasets/ORG/NAME[@REVISION][/SUBSET][?split=SPLIT&columns=INPUT,TARGET]"


def parse(text: str) -> DatasetRef:
    """A reference of ``FORM``, or a name from ``KNOWN`` (which may carry the same query)."""
    text, _, query = text.partition("?")
    text = KNOWN.get(text, text)
    match = re.fullmatch(r"hf://datasets/([\w.-]+/[\w.-]+)(?:@([\w./-]+?))?(?:/([\w./ -]+))?/?", text)
    if match is None:
        raise TranslatorError(f"not a Hub dataset reference: {text!r} (expected {FORM})")
    repo_id, revision, subset = match.groups()
    if revision and "/" in revision:  # ORG/NAME@REV/SUBSET: the first slash ends the revision
        revision, _, rest = revision.partition("/")
        subset = f"{rest}/{subset}" if subset else rest
    subset = (subset or "").strip("/")
    if any(part in ("..", ".") for part in PurePosixPath(subset).parts):
        raise TranslatorError(f"{text}: the subset must stay inside the dataset")
    return DatasetRef(repo_id, revision, subset, **_options(text, query))


def _options(text: str, query: str) -> dict:
    try:
        pairs = urllib.parse.parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError:
        raise TranslatorError(f"{text}: cannot read {query!r} (expected ?split=SPLIT&columns=INPUT,TARGET)") from None
    options: dict = {}
    for key, value in pairs:
        if key not in ("split", "columns") or key in options:
            raise TranslatorError(f"{text}: {'repeated' if key in options else 'unknown'} option {key!r} (options: split, columns)")
        names = tuple(name.strip() for name in value.split(",")) if key == "columns" else (value.strip(),)
        if not all(names) or len(names) > 2:
            raise TranslatorError(f"{text}: {key}= needs {'one or two column names' if key == 'columns' else 'a split name'}, got {value!r}")
        options[key] = names if key == "columns" else names[0]
    return options


def fetch(ref: DatasetRef) -> Path:
    """The dataset's folder (its subset) in the local Hub cache, downloading what is missing:
    its parquet and image files only, refused first from the sizes the Hub declares when they
    would not fit the storage downloads count against (an app's quota)."""
    from huggingface_hub import HfApi, snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError
    from huggingface_hub.utils import filter_repo_objects

    from . import __version__
    from .files import check_room, count_written
    from .hub import hub_errors, offline, read_token

    under = f"{ref.subset}/" if ref.subset else ""
    patterns = [f"{under}*.parquet", f"{under}**/*.parquet"] + [f"{under}{deep}{p}" for p in IMAGE_FILES for deep in ("", "**/")]
    options = dict(repo_type="dataset", revision=ref.revision, allow_patterns=patterns, library_name="image-translator", library_version=__version__)
    with hub_errors(ref.dataset, ref.repo_id, ref.revision, kind="dataset"):
        try:
            root = Path(snapshot_download(ref.repo_id, local_files_only=True, **options))
        except LocalEntryNotFoundError:
            if not offline():
                info = HfApi().dataset_info(ref.repo_id, revision=ref.revision, files_metadata=True, token=read_token())
                wanted = filter_repo_objects(info.siblings or [], allow_patterns=patterns, key=lambda sibling: sibling.rfilename)
                check_room(ref.dataset, sum(sibling.size or 0 for sibling in wanted))
            root = Path(snapshot_download(ref.repo_id, token=read_token(), **options))
            count_written(root)
    folder = root / ref.subset if ref.subset else root
    if not folder.is_dir():
        raise TranslatorError(f"{ref.dataset}: the dataset has no subset {ref.subset!r}")
    return folder


@dataclass(frozen=True)
class Cell:
    """One image of a parquet dataset: where it is, not its bytes."""

    file: str
    row_group: int
    row: int
    column: str

    def image(self):
        """The decoded image (a Pillow image), within the project's pixel budget."""
        from PIL import Image

        from .images import check_budget

        image = Image.open(io.BytesIO(_cell_bytes(self)))
        check_budget(*image.size, str(self))
        return image

    def __str__(self) -> str:
        return f"{Path(self.file).name}:{self.column}[{self.row_group}:{self.row}]"


# What one image column may hold once decompressed, read from the parquet metadata before any
# data: in one row group, and in one cell on average. A 67 KB file of four zstd cells of 400 MB
# zeros would otherwise be read whole into memory.
MAX_GROUP_BYTES = int(os.environ.get("TRANSLATOR_MAX_PARQUET_GROUP_BYTES", 512 * 2**20))
MAX_CELL_BYTES = int(os.environ.get("TRANSLATOR_MAX_PARQUET_CELL_BYTES", 64 * 2**20))
# row groups at most this large are read whole and kept: a loader asks for rows in random order,
# and one row group holds many of them; a larger one is read a few rows at a time
CACHED_GROUP_BYTES = 64 * 2**20

# row groups of one column read recently, per process, and open files; ``clear_caches`` empties them
_GROUPS: OrderedDict = OrderedDict()
_FILES: dict = {}


def clear_caches() -> None:
    """Let go of the row groups and files read so far (when a run ends)."""
    _GROUPS.clear()
    _FILES.clear()


def _parquet(file: str, column: str):
    """The file opened for reading ``column``, once per process."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if (file, column) not in _FILES:
        # image bytes stay dictionary-encoded where the file stores them so: many rows of one
        # value (zeros, say) take its size once, not once a row
        schema = pq.read_schema(file, memory_map=True)
        leaf = f"{column}.bytes" if pa.types.is_struct(schema.field(column).type) else column
        _FILES[(file, column)] = pq.ParquetFile(file, memory_map=True, read_dictionary=[leaf])
    return _FILES[(file, column)]


def _cell_bytes(cell: Cell) -> bytes:
    key = (cell.file, cell.row_group, cell.column)
    group = _GROUPS.get(key)
    if group is None:
        parquet = _parquet(cell.file, cell.column)
        if parquet.metadata.row_group(cell.row_group).total_byte_size > CACHED_GROUP_BYTES:
            return _streamed_cell(cell)
        group = parquet.read_row_group(cell.row_group, columns=[cell.column]).column(0)
        _GROUPS[key] = group
        while len(_GROUPS) > 2:
            _GROUPS.popitem(last=False)
    return _checked_cell(cell, group[cell.row].as_py())


def _streamed_cell(cell: Cell) -> bytes:
    """One cell of a row group too large to hold, read a few rows at a time up to it."""
    value = next(itertools.islice(_rows(cell.file, cell.row_group, cell.column), cell.row, None), None)
    return _checked_cell(cell, value)


def _checked_cell(cell: Cell, value) -> bytes:
    value = value["bytes"] if isinstance(value, dict) else value
    if value is not None and len(value) > MAX_CELL_BYTES:
        raise TranslatorError(f"{cell}: an image of {len(value) / 2**20:.0f} MB, over the {MAX_CELL_BYTES / 2**20:.0f} MB an image may take")
    return value


def _check_group_size(path: Path, group: int, meta, leaves: list[int], column: str) -> None:
    """Refuse, from the metadata alone, a row group whose image column would decompress past the budget."""
    size = sum(meta.column(i).total_uncompressed_size for i in leaves)
    rows = max(1, meta.num_rows)
    if size > MAX_GROUP_BYTES or size / rows > MAX_CELL_BYTES:
        raise TranslatorError(
            f"{path.name}: row group {group} holds {size / 2**20:.0f} MB of {column!r} once decompressed ({rows} rows), over the "
            f"{MAX_GROUP_BYTES / 2**20:.0f} MB a row group and {MAX_CELL_BYTES / 2**20:.0f} MB an image may take; refused before reading"
        )


@dataclass
class Table:
    """A parquet dataset: its files by split, and its columns (name -> type, as text)."""

    splits: dict[str, list[Path]]
    columns: dict[str, str]
    images: list[str]

    def cells(self, split: str, column: str, skipped: list[tuple[str, str]]) -> list[Cell | None]:
        """Every row of ``column`` in ``split``, None where the row holds no image or one that
        cannot be read (counted in ``skipped``, as a folder's unreadable files are): each image
        is opened from its header and structure once, reading the file a few rows at a time."""
        cells: list[Cell | None] = []
        for path in self.splits[split]:
            parquet = _parquet(str(path), column)
            # the column itself, or an image struct's bytes
            leaves = [i for i in range(parquet.metadata.num_columns) if parquet.schema.column(i).path in (column, f"{column}.bytes")]
            for group in range(parquet.metadata.num_row_groups):
                _check_group_size(path, group, parquet.metadata.row_group(group), leaves, column)
            for group in range(parquet.metadata.num_row_groups):
                for row, value in enumerate(_rows(str(path), group, column)):
                    cell = Cell(str(path), group, row, column)
                    cells.append(_readable(cell, value, skipped) if value else None)
        return cells


def _rows(file: str, group: int, column: str):
    """The image bytes (or None) of each row of one row group: a few rows read at a time, and
    one made a Python value at a time (16 cells of one dictionary-encoded 60 MB image would
    otherwise be 16 copies of it)."""
    for batch in _parquet(file, column).iter_batches(batch_size=8, row_groups=[group], columns=[column]):
        values = batch.column(0)
        for row in range(batch.num_rows):
            value = values[row].as_py()
            yield value["bytes"] if isinstance(value, dict) else value


def _readable(cell: Cell, value: bytes, skipped: list[tuple[str, str]]) -> Cell | None:
    """The cell, if its image opens within the budgets; checked from its header and structure
    as a folder's files are, so one bad row costs that row and not the run."""
    from .images import unreadable

    try:
        _checked_cell(cell, value)
    except TranslatorError as error:
        skipped.append((str(cell), one_line(error)[:60]))
        return None
    why = unreadable(io.BytesIO(value))
    if why:
        skipped.append((str(cell), why))
        return None
    return cell


def read_table(folder: Path, name: str) -> Table | None:
    """The parquet files under ``folder`` grouped by split, None when there are none."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    files = sorted(p for p in folder.rglob("*.parquet") if p.is_file())
    if not files:
        return None
    splits: dict[str, list[Path]] = {}
    for path in files:
        splits.setdefault(_split_of(path.relative_to(folder)), []).append(path)
    try:
        schema = pq.read_schema(files[0], memory_map=True)
    except (pa.ArrowException, OSError) as error:
        raise TranslatorError(f"{name}: {files[0].name} is not a readable parquet file ({one_line(error)})") from None
    features = _features(schema)
    columns = {field.name: str(field.type) for field in schema}
    images = [f.name for f in schema if features.get(f.name) == "Image" or _holds_image_bytes(f.type)]
    return Table(splits, columns, images)


def _split_of(relative: PurePosixPath) -> str:
    """The split a file belongs to, from its name or folder, as the Hub's own layouts name them
    (``data/train-00000-of-00002.parquet``, ``default/test/0000.parquet``)."""
    for part in reversed(relative.parts):
        word = re.match(r"[a-zA-Z]+", part)
        if word and word.group(0).lower() in SPLITS:
            return SPLITS[word.group(0).lower()]
    return "train"


def _features(schema) -> dict[str, str]:
    """The column types the ``datasets`` library recorded in the file, by column."""
    try:
        info = json.loads((schema.metadata or {}).get(b"huggingface", b"{}"))
        features = info.get("info", {}).get("features", {})
        return {name: value.get("_type", "") for name, value in features.items() if isinstance(value, dict)}
    except (ValueError, AttributeError):
        return {}


def _holds_image_bytes(kind) -> bool:
    import pyarrow as pa

    return pa.types.is_struct(kind) and any(kind.field(i).name == "bytes" and pa.types.is_binary(kind.field(i).type) for i in range(kind.num_fields))


def choose_columns(table: Table, wanted: int, given: tuple[str, ...], name: str) -> list[str]:
    """The image columns a task reads (input first): those given, else detected by name."""
    if not table.images:
        raise TranslatorError(f"{name} has no image columns (columns: {_listed(table.columns)})")
    chosen = [c for c in given if c]
    for column in chosen:
        if column not in table.columns:
            raise TranslatorError(f"{name} has no column {column!r} (columns: {_listed(table.columns)})")
        if column not in table.images:
            raise TranslatorError(f"column {column!r} of {name} holds {table.columns[column]}, not images")
    if len(chosen) >= wanted:
        return chosen[:wanted] if wanted == 2 else chosen[-1:]
    lowered = {c.lower(): c for c in table.images}
    if wanted == 1:
        for candidate in ("hr", "high", "target", "image"):
            if candidate in lowered:
                return [lowered[candidate]]
        return table.images[:1]
    for a, b in PAIRS:
        if a.lower() in lowered and b.lower() in lowered:
            pair = [lowered[a.lower()], lowered[b.lower()]]
            return [chosen[0], next(c for c in pair if c != chosen[0])] if chosen else pair
    if len(table.images) == 2:
        return table.images if not chosen else [chosen[0], next(c for c in table.images if c != chosen[0])]
    raise TranslatorError(f"{name} has {len(table.images)} image columns ({', '.join(table.images)}); say which at the end of the reference: ?columns=INPUT,TARGET")


def _listed(columns: dict[str, str]) -> str:
    return ", ".join(f"{k} ({v[:30]})" for k, v in columns.items()) or "none"


class HubSource(DataSource):
    """A Hub dataset, named by a reference of ``FORM``."""

    kind = "Hub dataset"

    def __init__(self, text: str):
        self.ref = parse(text)

    @classmethod
    def accepts(cls, text: str) -> bool:
        return is_dataset_ref(text)

    def recorded(self) -> str:
        # the reference, not the cache's folder: the cache may move
        return str(self.ref)

    def shown(self) -> str:
        return str(self.ref)

    def hub_ids(self) -> list[str]:
        return [self.ref.repo_id]

    def open(self, task, config):
        return open_data(self.ref, task, config)

    def release(self) -> None:
        clear_caches()


def open_data(ref: DatasetRef, task, config):
    """A task's training data from a Hub dataset: the columns detected (or set), the train split
    and the dataset's own validation or test split for validation."""
    from .data import Report, TrainData

    name = ref.dataset
    folder = fetch(ref)
    table = read_table(folder, name)
    if table is None:  # image folders: the family's own layouts apply
        if ref.columns or ref.split != "train":
            raise TranslatorError(f"{name} is a dataset of image folders: ?split= and ?columns= apply to tables only")
        data = task.open_data(folder, config)
        data.report.source = f"{name} (image folders)"
        return data
    split = ref.split
    if split not in table.splits:
        raise TranslatorError(f"{name} has no split {split!r} (it has {', '.join(sorted(table.splits))})")
    columns = choose_columns(table, len(task.columns), ref.columns, name)
    val_split = next((s for s in VALIDATION if s in table.splits and s != split), None)
    report = Report(source=f"{name}: {' -> '.join(columns)}, split {split!r}" + (f", validation from {val_split!r}" if val_split else ", no validation split"))
    train_cells = [table.cells(split, c, report.skipped) for c in columns]
    try:
        train = task.from_cells(train_cells, config)
        val = task.from_cells([table.cells(val_split, c, report.skipped) for c in columns], config, validation=True) if val_split else None
    except TranslatorError as error:
        raise TranslatorError(f"{name}: {error}") from None
    report.used = len(train)
    if not report.used:
        unreadable = f" ({len(report.skipped)} unreadable)" if report.skipped else ""
        raise TranslatorError(f"{name}: no rows with images in {' and '.join(columns)} of split {split!r}{unreadable}")
    return TrainData(train, val if val is not None and len(val) else None, report)
