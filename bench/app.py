"""The app's round trip for a 1 MP photo x4 on the default model, against the engine alone.

    python -m bench.app              # two CPU threads

Launches the app (the same build as `python app.py`), and through `gradio_client` uploads the
example photo scaled to 250 x 250, has `/translate` upscale it x4 with the family's default
model (1000 x 1000 result, lossless PNG) and downloads the result; beside it, `Engine.translate`
of the same decoded picture with the same model and precision. Median of five after a warm-up.
The difference is the app's own cost: upload, decode, PNG encode, gradio's queue and copies,
download.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from importlib.resources import files
from pathlib import Path

import torch
from PIL import Image

from bench.shipped import times_of


def median_of(fn, runs: int = 5) -> float:
    return statistics.median(times_of(fn, runs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from gradio_client import Client, handle_file

    from tests.helpers import launch
    from translator.app import Studio, build_app
    from translator.app.workspace import Workspace
    from translator.images import read_image

    with tempfile.TemporaryDirectory() as home:
        photo = Path(home) / "photo.png"
        with Image.open(files("translator.app") / "chelsea.png") as image:
            image.convert("RGB").resize((250, 250), Image.BICUBIC).save(photo)
        studio = Studio(Workspace(Path(home) / "workspace"), device="cpu")
        demo = build_app(studio)
        launch(demo)
        try:
            client = Client(demo.local_url, verbose=False)
            round_trip = median_of(lambda: client.predict(handle_file(str(photo)), api_name="/translate"))
            family = studio.registry.family("esrgan")
            default = studio.default_checkpoint(family.name)
            engine = studio.engine(default, family.name, family.Settings())
            picture = read_image(photo)
            alone = median_of(lambda: engine.translate(picture))
            with Image.open(client.predict(handle_file(str(photo)), api_name="/translate")) as result:
                size = result.size
        finally:
            demo.close()
    print(json.dumps({
        "threads": args.threads, "model": default, "precision": engine.precision, "result": f"{size[0]}x{size[1]}",
        "round_trip_s": round(round_trip, 3), "engine_s": round(alone, 3), "app_cost_s": round(round_trip - alone, 3),
        "ratio": round(round_trip / alone, 2),
    }, indent=1))


if __name__ == "__main__":
    main()
