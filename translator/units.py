"""Sizes and durations as a person reads them, written one way everywhere."""

from __future__ import annotations


def size(count: float) -> str:
    """Bytes in decimal units, to three figures: "512 bytes", "4.88 MB", "2.15 GB"."""
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if count >= scale:
            return f"{count / scale:.3g} {unit}"
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
