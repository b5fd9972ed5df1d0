"""Sizes and durations, read the same way in every message."""

from translator import units


def test_sizes_keep_three_figures_in_the_units_gradio_shows_beside_them():
    # gradio's file box shows 563,610 bytes as "550.4 KB": our line beside it must agree
    assert [units.size(n) for n in (512, 1_024, 563_610, 1_040_000, 4_876_543, 10_500_000, 105_300_000, 2_147_483_648)] == [
        "512 bytes", "1 KB", "550 KB", "1016 KB", "4.65 MB", "10 MB", "100 MB", "2 GB"]


def test_durations_are_as_precise_as_their_size():
    assert [units.duration(s) for s in (0.0413, 3.21, 42.4, 725, 11_100)] == ["0.041 s", "3.2 s", "42 s", "12 min", "3 h 5 min"]
