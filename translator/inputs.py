"""Turning command-line inputs into a list of images and where each result goes."""

from __future__ import annotations

from pathlib import Path

from .errors import TranslatorError
from .images import EXTENSIONS, WRITTEN


def collect_inputs(names: list[str]) -> list[Path]:
    """Files as given, and the images directly inside any folder given, in name order."""
    found: list[Path] = []
    for name in names:
        path = Path(name)
        if path.is_dir():
            images = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in EXTENSIONS)
            if not images:
                raise TranslatorError(f"no images in {path} (looked for {', '.join(EXTENSIONS)})")
            found += images
        elif path.is_file():
            found.append(path)
        else:
            raise TranslatorError(f"input not found: {path}")
    return found


def output_paths(inputs: list[Path], output: Path, suffix: str = "") -> list[Path]:
    """One path per input: ``output`` itself for a single input named as an image the results
    are written as (``images.WRITTEN``), else ``output/<input name><suffix>`` (PNG by default)."""
    if len(inputs) == 1 and output.suffix.lower() in WRITTEN and not output.is_dir():
        if suffix and output.suffix.lower() != suffix:
            raise TranslatorError(f"{output.name} does not end in {suffix}, the --format asked for")
        return [output]
    if output.suffix and not output.is_dir():
        if len(inputs) > 1:
            raise TranslatorError(f"{len(inputs)} inputs need an output folder, not {output}")
        raise TranslatorError(f"the output must be a {', '.join(WRITTEN)} file or a folder, not {output}")
    targets = [output / f"{path.stem}{suffix or '.png'}" for path in inputs]
    seen: dict[Path, Path] = {}
    for source, target in zip(inputs, targets):
        if target in seen:
            raise TranslatorError(f"{seen[target].name} and {source.name} would both be written to {target}")
        seen[target] = source
    if any(source.resolve() == target.resolve() for source, target in zip(inputs, targets)):
        raise TranslatorError(f"the output folder {output} would overwrite an input; choose another")
    return targets
