"""What a run trains with: the loop's settings, split from the family's, and the agreement
a resumed run keeps with its record."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ..augment import DEGRADATIONS
from ..errors import TranslatorError
from ..family import Family, make_settings, setting
from ..plugins import Registry
from ..runs import RunRecord
from ..sources import data_source


# settings a resumed run may change; any other change would make it a different run
RESUME_MAY_CHANGE = frozenset({"steps", "workers", "cache_images", "log_every", "sample_every", "val_every", "checkpoint_every", "compile"})


@dataclass
class TrainConfig:
    """Settings of the loop itself, shared by every family (a family may change the defaults)."""

    steps: int = setting(1000, "optimizer steps to train for (in total, counting resumed ones)", low=1)
    batch_size: int = setting(1, "images per step on each device", low=1)
    # bounded: every micro-batch's graph of a phase is kept until that phase's optimizer steps
    accumulate: int = setting(1, "micro-batches whose gradients are summed before each step", low=1, high=64)
    seed: int = setting(0, "seed of weights, data order, crops and augmentation")
    # bounded: one image at 4096 px is 200 MB in float, and each batch holds several
    load_size: int = setting(286, "paired/unpaired images are resized to this square before cropping", low=1, high=4096)
    crop_size: int = setting(256, "side of the random training crop (super-resolution: of the high-resolution patch)", low=1, high=4096)
    flip: bool = setting(True, "random horizontal flips (and quarter turns for super-resolution)")
    color_jitter: float = setting(0.0, "strength of random brightness/contrast/saturation changes (0: none)", low=0.0, high=1.0)
    degradation: str = setting("bicubic", "how super-resolution inputs are made", choices=DEGRADATIONS)
    clean_share: float = setting(0.5, "with degradation mixed: the share of batches downscaled cleanly", low=0.0, high=1.0)
    jpeg_share: float = setting(0.0, "with degradation mixed: the share of batches downscaled cleanly, then saved as JPEG (quality 30 to 95)", low=0.0, high=1.0)
    workers: int = setting(2, "data loader processes (0: load in the training process)", low=0)
    cache_images: int = setting(0, "decoded super-resolution images kept in memory by each loader process (0: none)", low=0)
    log_every: int = setting(10, "steps between metric log lines", low=1)
    sample_every: int = setting(500, "steps between sample images (0: never)", low=0)
    val_every: int = setting(500, "steps between validation runs (0: never)", low=0)
    checkpoint_every: int = setting(500, "steps between checkpoints (one is always written at the end, and on an error)", low=0)
    precision: str = setting("auto", "auto (bf16 on CUDA, and on CPUs that compute bf16 natively), fp32 or bf16", choices=("auto", "fp32", "bf16"))
    sync_bn: bool = setting(False, "synchronise batch norm statistics across GPUs when distributed")
    compile: bool = setting(False, "compile the networks with torch.compile: a warm-up of a minute or more, then faster steps")


def split_overrides(family: Family, overrides: dict[str, str]) -> tuple[dict, dict]:
    loop_keys = {f.name for f in dataclasses.fields(TrainConfig)}
    family_keys = {f.name for f in dataclasses.fields(family.Settings)}
    unknown = set(overrides) - loop_keys - family_keys
    if unknown:
        known = ", ".join(sorted(family_keys | loop_keys))
        raise TranslatorError(f"unknown setting {sorted(unknown)[0]!r} for training {family.name} (known: {known})")
    return ({k: v for k, v in overrides.items() if k in family_keys}, {k: v for k, v in overrides.items() if k in loop_keys})


def agree(record: RunRecord, family: Family | None, data, checkpoint, registry: Registry) -> tuple[Family, str]:
    """The recorded family and data of a run being resumed, refusing any given that differ."""
    if family is not None and family.name != record.family:
        raise TranslatorError(f"cannot resume: the run trained {record.family}, not {family.name}")
    given = None if data is None else data_source(data).recorded()
    if given is not None and given != record.data:
        raise TranslatorError(f"cannot resume: the run trained on {record.data}, not {given}")
    if checkpoint is not None and str(checkpoint) != record.start_checkpoint:
        raise TranslatorError(f"cannot resume from another checkpoint: the run started from {record.start_checkpoint or 'a new network'}")
    return family or registry.family(record.family), record.data


def refuse_changes(record: RunRecord, family: Family, family_values: dict, loop_values: dict) -> None:
    """Settings given to a resumed run must be the recorded ones, but for ``RESUME_MAY_CHANGE``."""
    changed = []
    for settings_class, given, recorded, name in (
        (family.Settings, family_values, record.settings, family.name),
        (TrainConfig, loop_values, record.training, "training"),
    ):
        now = dataclasses.asdict(make_settings(settings_class, given, name))
        before = {**dataclasses.asdict(settings_class()), **recorded}
        changed += [f"{key} {now[key]!r} (was {before.get(key)!r})" for key in given if key not in RESUME_MAY_CHANGE and now[key] != before.get(key)]
    if changed:
        raise TranslatorError("cannot resume with changed settings: " + "; ".join(changed) + f" (only {', '.join(sorted(RESUME_MAY_CHANGE))} may change)")


def known(settings_class: type, values: dict) -> dict:
    """Recorded values of the settings that still exist (a run may predate or outlive some)."""
    names = {f.name for f in dataclasses.fields(settings_class)}
    return {k: v for k, v in values.items() if k in names}
