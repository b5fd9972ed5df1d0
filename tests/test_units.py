"""Sizes and durations, read the same way in every message."""

import pytest

from translator import TranslatorError, units


def test_sizes_keep_three_figures_in_the_units_gradio_shows_beside_them():
    # gradio's file box shows 563,610 bytes as "550.4 KB": our line beside it must agree
    assert [units.size(n) for n in (512, 1_024, 563_610, 1_040_000, 4_876_543, 10_500_000, 105_300_000, 2_147_483_648)] == [
        "512 bytes", "1 KB", "550 KB", "1016 KB", "4.65 MB", "10 MB", "100 MB", "2 GB"]


def test_durations_are_as_precise_as_their_size():
    assert [units.duration(s) for s in (0.0413, 3.21, 42.4, 725, 11_100)] == ["0.041 s", "3.2 s", "42 s", "12 min", "3 h 5 min"]


def test_a_catalog_size_known_only_roughly_says_so_in_two_figures(tmp_path, monkeypatch):
    import json

    from translator import catalog

    (tmp_path / "catalog.json").write_text(json.dumps({"checkpoints": [
        {"name": "exact", "family": "esrgan", "description": "x", "sources": [], "bytes": 4_885_111},
        {"name": "rough", "family": "cyclegan", "description": "y", "sources": [], "bytes": 45_000_000, "about": True},
        {"name": "unknown", "family": "pix2pix", "description": "z", "sources": []},
    ]}))
    monkeypatch.setenv(catalog.CATALOG_VARIABLE, str(tmp_path / "catalog.json"))
    assert [entry.size for entry in catalog.entries()] == ["4.66 MB", "about 43 MB", ""]
    (tmp_path / "catalog.json").write_text(json.dumps({"checkpoints": [{"name": "bad", "family": "esrgan", "description": "x", "bytes": "45 MB"}]}))
    with pytest.raises(TranslatorError, match=r"the checkpoint catalog .* is unreadable \(ValueError: bytes must be a whole number, not '45 MB'\)"):
        catalog.entries()
