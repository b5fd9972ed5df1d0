"""The three kinds of learning a family can do, each as one object that owns its particulars.

A task knows its dataset layouts (and their help text), the keys of its training batches, how
a batch is augmented, how a run is validated, and whether translation keeps a gray image gray.
The core asks a family's task instead of switching on it, so the rest of the core stays the
same for every task.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import TranslatorError

if TYPE_CHECKING:  # torch and the data modules load when a run needs them, not with the package
    import torch

    from .data import TrainData
    from .family import Architecture
    from .fid import Distances
    from .training import TrainConfig

# a generator mapping images in [0, 1] to its output in [0, 1]
Run = Callable[["torch.Tensor"], "torch.Tensor"]
Augment = Callable[[list["torch.Tensor"]], dict[str, "torch.Tensor"]]


class Task:
    # the name listings and model cards show
    name: str
    # the dataset layouts a run accepts, as the CLI and the app explain them
    layouts: str
    # keys of a training batch (what a Recipe's ``step`` receives), input first
    keys: tuple[str, str]
    # the image columns a table dataset (a Hub parquet set) gives each sample, input first
    columns: tuple[str, ...]
    # the output restores the input (super-resolution): a gray image stays gray, and quality is
    # measured against bicubic upscaling of held-out photos
    restores: bool = False

    def open_data(self, root: Path, config: TrainConfig) -> TrainData:
        """The training (and validation) data of ``root``, checked: raises TranslatorError
        before anything trains if there is nothing usable."""
        raise NotImplementedError

    def from_cells(self, columns: list[list], config: TrainConfig, validation: bool = False) -> torch.utils.data.Dataset:
        """A dataset of table rows: one list per entry of ``columns``, holding an image source
        (a ``hub_data.Cell``) or None per row."""
        raise NotImplementedError

    def augmenter(self, config: TrainConfig, scale: int) -> Augment:
        """Turns a loader batch (uint8 tensors on the device) into a training batch in [0, 1]."""
        raise NotImplementedError

    def loaded_side(self, config: TrainConfig) -> int:
        """The side of the square images a loader hands over, before they are cropped."""
        return config.load_size

    def check_config(self, config: TrainConfig) -> None:
        """Refuse loop settings that cannot work for this task, before anything is built."""
        if config.crop_size > config.load_size:
            raise TranslatorError(f"crop_size {config.crop_size} is larger than load_size {config.load_size}")

    def check_sizes(self, config: TrainConfig, arch: Architecture) -> None:
        """Refuse a crop size the network's shape cannot take."""
        if config.crop_size % arch.multiple:
            raise TranslatorError(f"crop_size {config.crop_size} must be a multiple of {arch.multiple} for {arch.describe()}")

    def batch_shapes(self, config: TrainConfig, arch: Architecture) -> dict[str, tuple[int, int, int]]:
        """Channels, height and width of one sample of each batch key, as training feeds them."""
        side = config.crop_size
        return {key: (arch.channels[0], side, side) for key in self.keys}

    def sample_source(self, data: TrainData):
        """Where the fixed batch of sample images comes from."""
        return data.val if data.val is not None else data.train

    def score(self, run: Run, images: list[torch.Tensor], arch: Architecture, config: TrainConfig, sets: Distances | None = None) -> dict[str, float]:
        """Validation measures of one held-out sample (tensors 1 x 3 x H x W in [0, 1]); {} when
        the task has none. A task with ``set_measures`` also adds the sample's generated and
        real target-domain images to ``sets``."""
        return {}

    def set_measures(self, device: torch.device) -> Distances | None:
        """A fresh accumulator for the measures of a whole validation pass (FID and KID describe
        sets of images, not single ones): ``score`` adds to it, and its ``result()`` joins the
        validation scores. None when the task has none; raises Unavailable when this machine
        cannot compute them."""
        return None

    def __str__(self) -> str:
        return self.name


def _split(root: Path) -> tuple[Path, Path | None]:
    """The training folder (``train/`` when present) and the validation one (``val/``)."""
    if not root.is_dir():
        raise TranslatorError(f"data folder not found: {root}")
    return (root / "train" if (root / "train").is_dir() else root), (root / "val" if (root / "val").is_dir() else None)


def _checked(train, val, report, base: Path) -> TrainData:
    from .data import TrainData

    report.used = len(train)
    if not len(train):
        raise TranslatorError(f"no usable training images in {base} ({report.summary()})")
    return TrainData(train, val if val is not None and len(val) else None, report)


def _to_unit(tensors: list[torch.Tensor]) -> list[torch.Tensor]:
    return [t.float() / 255 for t in tensors]


class Paired(Task):
    name = "paired"
    layouts = "A/ and B/ with matching file names, or side-by-side A|B images (optionally under train/, with val/)"
    keys = ("A", "B")
    columns = ("A", "B")

    def open_data(self, root, config):
        from .data import Report, paired_set

        base, val_base = _split(Path(root))
        report = Report()
        train = paired_set(base, config.load_size, report)
        val = paired_set(val_base, config.load_size, Report()) if val_base else None
        return _checked(train, val, report, base)

    def from_cells(self, columns, config, validation=False):
        from .data import ImageFolderSet

        return ImageFolderSet([(a, b) for a, b in zip(*columns) if a and b], "resize", config.load_size)

    def batch_shapes(self, config, arch):
        # loaders give RGB on both sides; a one-channel network takes the mean of its input
        side = config.crop_size
        return {"A": (3, side, side), "B": (arch.channels[1], side, side)}

    def augmenter(self, config, scale):
        from .augment import augmentation

        # one random crop, flip and colour change, applied identically to both sides
        pipeline = augmentation(config.crop_size, config.flip, config.color_jitter, inputs=2)

        def augment(tensors):
            a, b = pipeline(*_to_unit(tensors))
            return {"A": a, "B": b}

        return augment

    def score(self, run, images, arch, config, sets=None):
        from .metrics import psnr_y

        a, b = _at_crop_size(images, config)
        out = run(a)
        if sets is not None:
            sets.add(generated=out, real=b)
        return {"l1": float((out - b).abs().mean()), "psnr": psnr_y(out, b, 0)}

    def set_measures(self, device):
        return _distances(device)


class Unpaired(Task):
    name = "unpaired"
    layouts = "trainA/ and trainB/ (testA/, testB/ optional)"
    keys = ("A", "B")
    columns = ("A", "B")

    def open_data(self, root, config):
        from .data import Report, TrainData, UnpairedSet, scan_images

        root = Path(root)
        if not root.is_dir():
            raise TranslatorError(f"data folder not found: {root}")
        if not (root / "trainA").is_dir() or not (root / "trainB").is_dir():
            raise TranslatorError(f"{root}: unpaired training needs trainA/ and trainB/ folders")
        report = Report()
        a, b = scan_images(root / "trainA", report), scan_images(root / "trainB", report)
        if not a or not b:
            raise TranslatorError(f"{root}: trainA/ and trainB/ must both hold images (found {len(a)} and {len(b)})")
        val = None
        if (root / "testA").is_dir() and (root / "testB").is_dir():
            val = UnpairedSet(scan_images(root / "testA", Report()), scan_images(root / "testB", Report()), config.load_size)
        report.used = len(a)
        return TrainData(UnpairedSet(a, b, config.load_size), val if val and len(val.a) and len(val.b) else None, report)

    def from_cells(self, columns, config, validation=False):
        from .data import UnpairedSet

        # the domains of an unpaired table are stored side by side: the smaller one leaves
        # cells empty, and each domain keeps only its own images
        a, b = ([cell for cell in column if cell] for column in columns)
        if not a or not b:
            if validation:
                return UnpairedSet([], [], config.load_size)
            raise TranslatorError(f"both domains need images (found {len(a)} and {len(b)})")
        return UnpairedSet(a, b, config.load_size)

    def augmenter(self, config, scale):
        from .augment import augmentation

        # each domain augmented on its own: the images are not aligned
        pipeline = augmentation(config.crop_size, config.flip, config.color_jitter, inputs=1)

        def augment(tensors):
            a, b = (pipeline(x) for x in _to_unit(tensors))
            return {"A": a, "B": b}

        return augment

    def score(self, run, images, arch, config, sets=None):
        # the domains are not aligned: no output has a target of its own, but the A-to-B
        # outputs as a set can be compared with the real B images
        if sets is not None:
            a, b = _at_crop_size(images, config)
            sets.add(generated=run(a), real=b)
        return {}

    def set_measures(self, device):
        return _distances(device)


def _at_crop_size(images: list[torch.Tensor], config: TrainConfig) -> list[torch.Tensor]:
    """Held-out images at the side the generator trained on."""
    import torch.nn.functional as F

    return [F.interpolate(t, size=(config.crop_size,) * 2, mode="bicubic", align_corners=False).clamp(0, 1) for t in images]


def _distances(device) -> Distances:
    from .fid import Distances, feature_network

    return Distances(feature_network(device))


class SuperResolution(Task):
    name = "super-resolution"
    layouts = "high-resolution images (optionally under train/, with val/ for PSNR/SSIM)"
    keys = ("lr", "hr")
    columns = ("hr",)
    restores = True

    def open_data(self, root, config):
        from .data import ImageFolderSet, Report, scan_images

        base, val_base = _split(Path(root))
        report = Report()
        # full-resolution patches: super-resolution must not resample its targets
        train = ImageFolderSet([(p,) for p in scan_images(base, report)], "crop", config.crop_size, config.cache_images)
        val = ImageFolderSet([(p,) for p in scan_images(val_base, Report())], "crop", 0) if val_base else None
        return _checked(train, val, report, base)

    def from_cells(self, columns, config, validation=False):
        from .data import ImageFolderSet

        cells = [(cell,) for cell in columns[0] if cell]
        return ImageFolderSet(cells, "crop", 0) if validation else ImageFolderSet(cells, "crop", config.crop_size, config.cache_images)

    def augmenter(self, config, scale):
        import torch

        from .augment import augmentation, degrade

        # flips, quarter turns and colour of the high-resolution patch; then its low-resolution input
        pipeline = augmentation(None, config.flip, config.color_jitter, inputs=1)

        def augment(tensors):
            hr = pipeline(_to_unit(tensors)[0])
            if config.flip:
                turns = torch.randint(4, (hr.shape[0],)).tolist()
                hr = torch.stack([torch.rot90(x, k, (1, 2)) for x, k in zip(hr, turns)])
            return {"lr": degrade(hr, scale, config.degradation, config.clean_share, config.jpeg_share), "hr": hr}

        return augment

    def check_config(self, config):
        # load_size does not apply (crops are cut at full resolution); the shares of the kinds of
        # batch must fit in one
        if config.clean_share + config.jpeg_share > 1:
            raise TranslatorError(f"clean_share {config.clean_share:g} and jpeg_share {config.jpeg_share:g} add up to more than 1")

    def loaded_side(self, config):
        return config.crop_size

    def check_sizes(self, config, arch):
        low = config.crop_size // arch.scale
        if config.crop_size % arch.scale or low % arch.multiple or low < 4:
            raise TranslatorError(
                f"crop_size {config.crop_size} must be a multiple of {arch.scale * arch.multiple} (the scale times the network's size multiple), at least {4 * arch.scale}"
            )

    def batch_shapes(self, config, arch):
        side = config.crop_size
        return {"lr": (arch.channels[0], side // arch.scale, side // arch.scale), "hr": (arch.channels[1], side, side)}

    def sample_source(self, data):
        # validation photos are whole images of any size; training patches stack into a batch
        return data.train

    def score(self, run, images, arch, config, sets=None):

        from .augment import degrade
        from .metrics import bicubic, psnr_y, ssim_y

        scale, unit = arch.scale, arch.scale * arch.multiple
        hr = images[0][:, :, : images[0].shape[2] // unit * unit, : images[0].shape[3] // unit * unit]
        if min(hr.shape[2:]) < 4 * scale:
            return {}
        lr = degrade(hr, scale)
        sr = run(lr)
        return {"psnr": psnr_y(sr, hr, scale), "ssim": ssim_y(sr, hr, scale), "psnr_bicubic": psnr_y(bicubic(lr, scale), hr, scale)}


Task.PAIRED = Paired()
Task.UNPAIRED = Unpaired()
Task.SUPER_RESOLUTION = SuperResolution()
TASKS = (Task.PAIRED, Task.UNPAIRED, Task.SUPER_RESOLUTION)
