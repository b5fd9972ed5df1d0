"""Sizes and durations as a person reads them, written one way everywhere."""

from __future__ import annotations


# 1024-based, as gradio's file boxes count beside our lines: a page shows one unit, not 564 kB
# in a status line over 550.4 KB in the download box
KB = 1024


def size(count: float, figures: int = 3) -> str:
    """Bytes in 1024-based units, to ``figures`` figures: "512 bytes", "4.65 MB", "2 GB"."""
    for unit, scale in (("TB", KB**4), ("GB", KB**3), ("MB", KB**2), ("KB", KB)):
        if count >= scale:
            value = count / scale  # up to 1023.9, which .3g would write as 1.02e+03
            return f"{value:.{figures}g} {unit}" if value < 10**figures else f"{value:.0f} {unit}"
    return f"{count:.0f} bytes"


def duration(seconds: float) -> str:
    """A span of time as precise as its size calls for: "0.13 s", "42 s", "12 min", "3 h 5 min"."""
    if seconds < 10:
        return f"{seconds:.2g} s" if seconds < 1 else f"{seconds:.1f} s"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    minutes = round(seconds / 60)
    return f"{minutes // 60} h {minutes % 60} min"


def age(seconds: float) -> str:
    """How long ago, as coarsely as a person says it: "moments", "12 min", "5 h", "3 days"."""
    if seconds < 60:
        return "moments"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 86400:.0f} days"
