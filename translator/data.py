"""Training data: scanning folders, checking files before training, and loading lazily.

Which folders a run reads is its task's business (``tasks.py``); the pieces here serve every
layout.

Loader workers only decode and resize or crop to a fixed size; augmentation happens per batch
on the device (see ``augment.py``). Every random choice made here comes from a seed the sampler
hands out with the index, so data order and crops resume exactly.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .errors import TranslatorError
from .images import EXTENSIONS, apply_orientation, from_pil, quantize, read_image, unreadable


@dataclass
class Report:
    """What was found, and what was left out and why."""

    used: int = 0
    # where the samples come from, when that is more than a folder (a Hub dataset's columns)
    source: str = ""
    skipped: list[tuple[str, str]] = field(default_factory=list)
    unpaired: list[str] = field(default_factory=list)

    def summary(self) -> str:
        parts = ([self.source] if self.source else []) + [f"{self.used} training samples"]
        if self.skipped:
            shown = ", ".join(f"{name} ({why})" for name, why in self.skipped[:3])
            parts.append(f"{len(self.skipped)} unreadable files skipped: {shown}{' ...' if len(self.skipped) > 3 else ''}")
        if self.unpaired:
            parts.append(f"{len(self.unpaired)} files without a partner skipped: {', '.join(self.unpaired[:5])}{' ...' if len(self.unpaired) > 5 else ''}")
        return "; ".join(parts)


def scan_images(folder: Path, report: Report) -> list[Path]:
    """The readable images directly in ``folder``, by name; the rest go into the report."""
    if not folder.is_dir():
        raise TranslatorError(f"data folder not found: {folder}")
    images = []
    for path in sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")):
        if path.suffix.lower() not in EXTENSIONS:
            report.skipped.append((path.name, "not an image file"))
            continue
        why = unreadable(path)
        if why:
            report.skipped.append((path.name, why))
            continue
        images.append(path)
    return images


class ImageFolderSet(torch.utils.data.Dataset):
    """Samples made of one or more image files, loaded as uint8 tensors of one fixed size.

    ``mode`` says how: "resize" scales each image to ``size`` x ``size`` (pix2pix/CycleGAN's
    load size; the random crop follows on the device), "crop" cuts a random ``size`` patch at
    full resolution (super-resolution must not resample its targets; size 0 keeps the whole
    image), "split" halves a
    side-by-side image into A and B and then resizes both.
    """

    def __init__(self, samples: list[tuple[Path, ...]], mode: str, size: int, cache: int = 0):
        self.samples, self.mode, self.size, self.cache = samples, mode, size, cache
        # decoded images kept per loader process: a few large photos cut into many small crops
        # would otherwise be decoded again for every crop
        self._store: OrderedDict[Path, Image.Image] = OrderedDict()

    def __getstate__(self) -> dict:
        # loader processes start with an empty cache (and a cheap pickle, where they spawn)
        return {**self.__dict__, "_store": OrderedDict()}

    def _load(self, path: Path) -> Image.Image:
        if path in self._store:
            self._store.move_to_end(path)
            return self._store[path]
        image = _load_rgb(path)
        if self.cache:
            self._store[path] = image
            if len(self._store) > self.cache:
                self._store.popitem(last=False)
        return image

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, item: tuple[int, int]) -> list[torch.Tensor]:
        index, seed = item
        rng = np.random.default_rng(seed)
        images = [self._load(path) for path in self.samples[index]]
        if self.mode == "split":
            whole = images[0]
            half = whole.width // 2
            images = [whole.crop((0, 0, half, whole.height)), whole.crop((half, 0, 2 * half, whole.height))]
        if self.mode == "crop":
            return [_random_crop(image, self.size, rng) for image in images]
        return [_to_tensor(image.resize((self.size, self.size), Image.BICUBIC)) for image in images]


class UnpairedSet(torch.utils.data.Dataset):
    """An A image by index and a B image drawn at random (as CycleGAN's loader does)."""

    def __init__(self, a: list[Path], b: list[Path], size: int):
        self.a, self.b = ImageFolderSet([(p,) for p in a], "resize", size), ImageFolderSet([(p,) for p in b], "resize", size)

    def __len__(self) -> int:
        return max(len(self.a), len(self.b))

    def __getitem__(self, item: tuple[int, int]) -> list[torch.Tensor]:
        index, seed = item
        other = int(np.random.default_rng(seed).integers(len(self.b)))
        return self.a[(index % len(self.a), seed)] + self.b[(other, seed + 1)]


class ResumableSampler(torch.utils.data.Sampler):
    """An endless stream of (index, seed) pairs from per-epoch permutations, starting at any position.

    Position N of the stream is the same whatever the run it is drawn in, which is what makes
    resumed training continue exactly. With several processes each takes every world-th item.
    """

    def __init__(self, length: int, seed: int, start: int = 0, rank: int = 0, world: int = 1):
        self.length, self.seed, self.start, self.rank, self.world = length, seed, start, rank, world

    def __iter__(self):
        position = self.start * self.world + self.rank
        while True:
            epoch, offset = divmod(position, self.length)
            order = torch.randperm(self.length, generator=torch.Generator().manual_seed(self.seed * 100_003 + epoch))
            yield int(order[offset]), self.seed * 1_000_003 + position
            position += self.world


@dataclass
class TrainData:
    train: torch.utils.data.Dataset
    val: torch.utils.data.Dataset | None
    report: Report


def paired_set(base: Path, size: int, report: Report) -> ImageFolderSet:
    """``A/`` and ``B/`` with matching file names, or side-by-side ``A|B`` images."""
    if (base / "A").is_dir() and (base / "B").is_dir():
        a = {p.stem: p for p in scan_images(base / "A", report)}
        b = {p.stem: p for p in scan_images(base / "B", report)}
        report.unpaired += [f"A/{a[k].name}" for k in sorted(a.keys() - b.keys())]
        report.unpaired += [f"B/{b[k].name}" for k in sorted(b.keys() - a.keys())]
        return ImageFolderSet([(a[k], b[k]) for k in sorted(a.keys() & b.keys())], "resize", size)
    images = scan_images(base, report)
    _check_side_by_side(base, images)
    return ImageFolderSet([(p,) for p in images], "split", size)


# what a side-by-side A|B image's width over height may be: 2 for square halves, with room for
# halves a little off square
SIDE_BY_SIDE = (1.5, 2.7)


def _check_side_by_side(base: Path, images: list[Path]) -> None:
    """A folder of ordinary photos is not a paired dataset: split down the middle, each would
    teach the network to turn a photo's left half into its right. Refused from the headers, in
    one line that names what was likely meant."""
    from .images import image_size

    shapes = []
    for path in images[:200]:
        try:
            shapes.append(image_size(path))
        except TranslatorError:  # unreadable: the loader skips and counts it
            continue
    odd = [w / h for w, h in shapes if h and not SIDE_BY_SIDE[0] <= w / h <= SIDE_BY_SIDE[1]]
    if shapes and len(odd) * 2 > len(shapes):
        raise TranslatorError(
            f"{base.name} holds ordinary images ({len(odd)} of {len(shapes)} are not side-by-side A|B pairs about twice as wide as high) "
            "and no A/ and B/ folders: pix2pix learns from pairs. For photos alone, train esrgan (upscaling) on them, cyclegan with "
            "trainA/ and trainB/ (two styles), or a colouriser: gray copies in A/ and the photos in B/ with --set gray_input=true"
        )


def _load_rgb(source) -> Image.Image:
    """8-bit RGB through the same decoder as translation: every mode, 16-bit, EXIF orientation.
    ``source`` is an image file, or a cell of a table dataset (``hub_data.Cell``)."""
    if isinstance(source, Path):
        return Image.fromarray(quantize(read_image(source).rgb, 8))
    try:
        with source.image() as image:
            picture = apply_orientation(from_pil(image), image.getexif().get(0x0112, 1))
    except TranslatorError:
        raise
    except Exception as error:  # what Pillow raises for bytes that are no image
        raise TranslatorError(f"cannot decode {source}: {type(error).__name__}") from None
    return Image.fromarray(quantize(picture.rgb, 8))


def _to_tensor(image: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1)


def _random_crop(image: Image.Image, size: int, rng: np.random.Generator) -> torch.Tensor:
    tensor = _to_tensor(image)
    if size <= 0:
        return tensor
    height, width = tensor.shape[1:]
    if height < size or width < size:
        # too small for a patch: extend its edges rather than drop it
        tensor = torch.nn.functional.pad(tensor[None].float(), (0, max(0, size - width), 0, max(0, size - height)), mode="replicate")[0].byte()
        height, width = tensor.shape[1:]
    top, left = int(rng.integers(height - size + 1)), int(rng.integers(width - size + 1))
    return tensor[:, top : top + size, left : left + size]
