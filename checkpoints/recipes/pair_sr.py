"""Join a restoring and a sharpening compact model of one size into one file, as the default x4
upscaler ships: a picture that shows JPEG's 8x8 blocks goes through the restorer, any other
through the sharpener (the esrgan family's ``restore`` setting: auto, always or never).

    python checkpoints/recipes/pair_sr.py RESTORER.safetensors SHARPENER.safetensors \\
        --corpus CORPUS --output checkpoints/compact-sr-x4.safetensors

Each half keeps its own model card in the file's metadata (``restore_card``, ``sharpen_card``);
the pair's held-out figures are measured afresh, with each picture taking the branch it picks.
"""

import argparse
import datetime
import json
import tempfile
from pathlib import Path

import torch

import wallpapers
from train_default_sr import held_out_card
from translator.checkpoints import load_checkpoint, save_checkpoint
from translator.plugins import registry


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("restorer", help="a compact model trained on damaged inputs (--degradation mixed)")
    parser.add_argument("sharpener", help="a compact model of the same size trained on clean downscales")
    parser.add_argument("--output", required=True)
    parser.add_argument("--corpus", help="a corpus wallpapers.py built already (default: build one)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    family = registry().family("esrgan")
    restorer, sharpener = load_checkpoint(args.restorer, "esrgan"), load_checkpoint(args.sharpener, "esrgan")
    if restorer.arch != sharpener.arch or restorer.arch.name != "srvgg" or restorer.arch.params.get("pair"):
        raise SystemExit("the two models must be single compact (srvgg) networks of the same size")
    state = {f"{branch}.{k}": v for branch, half in (("restore", restorer), ("sharpen", sharpener)) for k, v in half.module.state_dict().items()}
    arch = family.recognise(state)
    extra = {
        "description": f"x{arch.scale} photo upscaler (compact, trained by this project): restores JPEG-blocky pictures, sharpens the rest",
        "recipe": f"checkpoints/recipes/pair_sr.py {Path(args.restorer).name} {Path(args.sharpener).name}",
        "data": wallpapers.DATA,
        "date": datetime.date.today().isoformat(),
        "restore_card": _card(restorer.metadata),
        "sharpen_card": _card(sharpener.metadata),
    }
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(args.corpus) if args.corpus else Path(tmp) / "corpus"
        if not args.corpus:
            wallpapers.build(corpus)
        draft = save_checkpoint(Path(tmp) / Path(args.output).name, family, arch, state, extra)
        extra |= held_out_card(draft, corpus / "held-out", "cpu")
    save_checkpoint(Path(args.output), family, arch, state, extra)
    print(json.dumps(extra, indent=1))


def _card(metadata: dict[str, str]) -> str:
    # what the pair's own metadata says again (format, family, architecture) left out
    return json.dumps({k: v for k, v in metadata.items() if k not in ("format", "format_version", "family", "architecture")})


if __name__ == "__main__":
    main()
