"""The training photographs of the shipped models: free-licensed photos from Debian's wallpaper
packages, with each file's author and licence recorded.

    python checkpoints/recipes/wallpapers.py OUT

downloads the packages with ``apt-get download`` (no root needed; apt checks each file against
the archive's signed index), unpacks them with ``dpkg-deb``, and writes

    OUT/train/NAME.png      photographs trained on
    OUT/held-out/NAME.png   photographs kept for evaluation, never trained on
    OUT/portraits/NAME.png  photographs of people, never trained on: what a colouriser does to skin
    OUT/sources.json        per photo: package, version, file, author, licence, split

Each photo is scaled so that its longer side is 1280 pixels (antialiased): the wallpapers are
JPEGs, and halving them removes most compression artefacts, so the targets are clean.

The packages mix photographs with rendered and abstract art, and nothing in them tells the two
apart, so the photographs are named here, chosen by looking at every image of each package.
"""

from __future__ import annotations

import argparse
import fnmatch
import hashlib
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

LONG_SIDE = 1280
# what a model card says of this corpus
DATA = (
    "photographs from Debian 12's mate-backgrounds, plasma-workspace-wallpapers and lomiri-wallpapers packages "
    "(GPL-2+, LGPL-3, CC BY 4.0, CC BY-SA 3.0 and 4.0, CC0; each photo's author and licence in checkpoints/README.md)"
)

# package -> {photo name: path inside the package}
PHOTOS = {
    "mate-backgrounds": {
        name: f"usr/share/backgrounds/mate/nature/{name}.jpg"
        for name in ("Aqua", "Blinds", "Dune", "FreshFlower", "Garden", "GreenMeadow", "LadyBird", "RainDrops", "Storm", "TwoWings", "Wood", "YellowFlower")
    },
    "plasma-workspace-wallpapers": {
        name: f"usr/share/wallpapers/{name}/contents/images/{size}.jpg"
        for name, size in (
            ("BytheWater", "2560x1600"), ("ColdRipple", "2560x1600"), ("ColorfulCups", "2560x1600"), ("DarkestHour", "2560x1600"),
            ("EveningGlow", "2560x1600"), ("FallenLeaf", "2560x1600"), ("Grey", "2560x1600"), ("Kite", "2560x1600"),
            ("OneStandsOut", "2560x1600"), ("Path", "2560x1600"), ("summer_1am", "2560x1600"),
        )
    },
    # Ubuntu's community wallpaper contests, each photo under its own Creative Commons licence
    "lomiri-wallpapers-16.04": {
        name.split("_by_")[0]: f"usr/share/backgrounds/{name}.jpg"
        for name in (
            "Bridge_by_Sander_Klootwijk", "Dragonfly_by_Bolly", "Picture_0B_by_freespace", "Picture_1A_by_freespace", "Wine_by_Jakkub_Mede",
            "aitzgorri_by_Aitzol_Berasategi", "analogpattern_by_Peter_Nerlich", "free_by_Peter_Nerlich", "friends_by_Aitzol_Berasategi",
            "greentock_by_Peter_Nerlich", "life_by_Aitzol_Berasategi", "picosdeeuropa_by_Aitzol_Berasategi",
            "seeding_by_Clements_Engelhardt", "sunset_by_Aitzol_Berasategi",
        )
    },
    "lomiri-wallpapers-20.04": {"Kleiber": "usr/share/backgrounds/Kleiber_by_Lukas_Baubkus.jpg"},
}
# spread over both packages and over close-ups, landscapes and fine detail
HELD_OUT = ("LadyBird", "Storm", "TwoWings", "EveningGlow", "Path", "life")
# The wallpapers show no people. Package -> {name: (path inside, a patch of bare skin as (left,
# top, right, bottom) in pixels, author, licence)}; the copyright file covers the code, so the
# credit is the one the package's own docstring gives (skimage.data.astronaut).
PORTRAITS = {
    "python3-skimage": {
        "astronaut": (
            "usr/lib/python3/dist-packages/skimage/data/astronaut.png", (195, 95, 250, 165),
            "NASA (Eileen Collins)", "public domain (no known copyright restrictions)",
        ),
    },
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("output", type=Path)
    args = parser.parse_args()
    sources = build(args.output)
    counts = {split: sum(1 for s in sources if s["split"] == split) for split in ("train", "held-out", "portraits")}
    print(f"{args.output}: {counts['train']} training photos, {counts['held-out']} held out, {counts['portraits']} portraits")


def build(output: Path) -> list[dict]:
    """Download, unpack and write the corpus into ``output``; returns what sources.json holds."""
    (output / "train").mkdir(parents=True, exist_ok=True)
    (output / "held-out").mkdir(exist_ok=True)
    (output / "portraits").mkdir(exist_ok=True)
    sources = []
    with tempfile.TemporaryDirectory() as tmp:
        for package, photos in PHOTOS.items():
            root, version, deb_sha256 = _unpack(package, Path(tmp))
            licences = _debian_licences(root / "usr/share/doc" / package / "copyright")
            for name, inside in photos.items():
                split = "held-out" if name in HELD_OUT else "train"
                author, licence = _credit(root, inside, licences)
                _write_scaled(root / inside, output / split / f"{name}.png")
                sources.append({
                    "name": name, "split": split, "package": package, "version": version, "deb_sha256": deb_sha256,
                    "file": "/" + inside, "author": author, "licence": licence,
                })
        for package, portraits in PORTRAITS.items():
            root, version, deb_sha256 = _unpack(package, Path(tmp))
            for name, (inside, skin, author, licence) in portraits.items():
                _write_scaled(root / inside, output / "portraits" / f"{name}.png")
                sources.append({
                    "name": name, "split": "portraits", "package": package, "version": version, "deb_sha256": deb_sha256,
                    "file": "/" + inside, "author": author, "licence": licence, "skin": list(skin),
                })
    (output / "sources.json").write_text(json.dumps(sources, indent=2, ensure_ascii=False) + "\n")
    return sources


def _unpack(package: str, tmp: Path) -> tuple[Path, str, str]:
    subprocess.run(["apt-get", "download", "-q", package], cwd=tmp, check=True, stdout=subprocess.DEVNULL)
    deb = next(tmp.glob(f"{package}_*.deb"))
    root = tmp / package
    subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
    version = subprocess.run(["dpkg-deb", "-f", str(deb), "Version"], check=True, capture_output=True, text=True).stdout.strip()
    return root, version, hashlib.sha256(deb.read_bytes()).hexdigest()


def _debian_licences(copyright_file: Path) -> list[tuple[list[str], str, str]]:
    """The (file patterns, copyright, licence) paragraphs of a machine-readable copyright file."""
    paragraphs = []
    for block in copyright_file.read_text().split("\n\n"):
        fields: dict[str, list[str]] = {}
        key = None
        for line in block.splitlines():
            if line[:1] in (" ", "\t") and key:
                fields[key].append(line.strip())
            elif ":" in line:
                key, value = line.split(":", 1)
                fields[key] = [value.strip()]
        if "Files" in fields and "License" in fields:
            patterns = " ".join(fields["Files"]).split()
            holders = "; ".join(v for v in fields.get("Copyright", []) if v)
            paragraphs.append((patterns, holders, fields["License"][0]))
    return paragraphs


def _credit(root: Path, inside: str, licences: list[tuple[list[str], str, str]]) -> tuple[str, str]:
    """Author and licence of one file. A KDE wallpaper states its own in metadata.json; otherwise
    the last copyright paragraph whose pattern matches wins, as the copyright format says."""
    parts = Path(inside).parts
    if "wallpapers" in parts:
        meta = root / Path(*parts[: parts.index("wallpapers") + 2]) / "metadata.json"
        plugin = json.loads(meta.read_text())["KPlugin"]
        author = ", ".join(a["Name"] + (f" <{a['Email']}>" if a.get("Email") else "") for a in plugin["Authors"])
        return author, plugin["License"]
    found = ("unknown", "unknown")
    for patterns, holders, licence in licences:
        # patterns are relative to the upstream tree, which the package installs under a prefix,
        # sometimes from another folder (lomiri's 16.04/NAME.jpg is installed as backgrounds/NAME.jpg)
        if any(fnmatch.fnmatch(inside, "*/" + p) or ("/" in p and _plain(Path(p).name) and Path(inside).name == Path(p).name) for p in patterns):
            found = (holders, licence)
    if found[1] == "unknown":
        sys.exit(f"{inside}: no licence in the package's copyright file; not using it")
    return found


def _plain(name: str) -> bool:
    return not any(c in name for c in "*?[")


def _write_scaled(source: Path, target: Path) -> None:
    with Image.open(source) as image:
        image = image.convert("RGB")
        factor = LONG_SIDE / max(image.size)
        if factor < 1:
            image = image.resize((round(image.width * factor), round(image.height * factor)), Image.LANCZOS, reducing_gap=3.0)
        if np.asarray(image).std() < 1:
            sys.exit(f"{source} is blank; the package changed")
        image.save(target)


if __name__ == "__main__":
    main()
