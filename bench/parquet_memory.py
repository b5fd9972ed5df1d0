"""Memory of training data read from a large parquet set, as Hub datasets are read.

    python -m bench.parquet_memory                 # a 1 GB set of 10,000 rows
    python -m bench.parquet_memory --rows 2000     # a quicker 200 MB one

Writes a paired parquet set (two image columns of incompressible 128x128 PNGs, row groups of
100 rows, as the ``datasets`` library writes image sets) into a seeded Hub cache, opens it
through ``hub_data.open_data`` as a pix2pix run would, and draws samples in the loader's random
order. Reported: the file's size, and the process's resident memory before opening, after
opening (the row index) and at its peak while sampling. Bounded means the peak stays far below
the file's size and does not grow with the number of samples drawn.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def rss_mb(kind: str = "VmRSS") -> float:
    """Resident memory: all of it (VmRSS), the process's own (RssAnon), or the pages of mapped
    files (RssFile), which the kernel may drop at any time and reread from the file."""
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith(kind + ":"))
    return int(line.split()[1]) / 1024


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def write_set(path: Path, rows: int) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq
    from PIL import Image

    rng = np.random.default_rng(0)
    image = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    meta = {"info": {"features": {"imageA": {"_type": "Image"}, "imageB": {"_type": "Image"}}}}
    schema = pa.schema([("imageA", image), ("imageB", image)], metadata={"huggingface": json.dumps(meta)})

    def png() -> dict:
        buffer = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (128, 128, 3), dtype=np.uint8)).save(buffer, "PNG", compress_level=1)
        return {"bytes": buffer.getvalue(), "path": None}

    with pq.ParquetWriter(path, schema) as writer:
        for start in range(0, rows, 100):
            count = min(100, rows - start)
            writer.write_table(pa.table({"imageA": pa.array([png() for _ in range(count)], image), "imageB": pa.array([png() for _ in range(count)], image)}, schema=schema))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--samples", type=int, default=3000)
    parser.add_argument("--measure", help="a seeded Hub cache to read (what the driver starts, in a fresh process)")
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.samples)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "hub"
        repo = cache / "datasets--bench--big"
        snapshot = repo / "snapshots" / ("0" * 40) / "data"
        snapshot.mkdir(parents=True)
        (repo / "refs").mkdir()
        (repo / "refs" / "main").write_text("0" * 40)
        started = time.perf_counter()
        write_set(snapshot / "train-00000-of-00001.parquet", args.rows)
        size = (snapshot / "train-00000-of-00001.parquet").stat().st_size
        print(f"wrote {size / 1e9:.2f} GB, {args.rows} rows in {time.perf_counter() - started:.0f} s")
        env = {**os.environ, "HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}
        done = subprocess.run([sys.executable, "-m", "bench.parquet_memory", "--measure", str(cache), "--samples", str(args.samples)],
                              capture_output=True, text=True, env=env, cwd=Path(__file__).resolve().parent.parent)
        if done.returncode:
            raise SystemExit(done.stderr[-2000:])
        print(json.dumps({"file_gb": round(size / 1e9, 2), "rows": args.rows, **json.loads(done.stdout.splitlines()[-1])}, indent=1))


def measure(samples: int) -> dict:
    """Open the set as a pix2pix run does and draw ``samples`` samples in the loader's order."""
    from translator.data import ResumableSampler
    from translator.family import make_settings
    from translator.hub_data import open_data
    from translator.plugins import registry
    from translator.training import TrainConfig

    config = make_settings(TrainConfig, {"load_size": "143", "crop_size": "128"})
    before = rss_mb("RssAnon")
    data = open_data("hf://datasets/bench/big", registry().family("pix2pix").task, config)
    opened = rss_mb("RssAnon")
    sampler = iter(ResumableSampler(len(data.train), seed=0))
    started, marks = time.perf_counter(), {}
    for index in range(1, samples + 1):
        data.train[next(sampler)]
        if index in (samples // 10, samples):
            marks[index] = (rss_mb("RssAnon"), rss_mb("RssFile"))
    seconds = time.perf_counter() - started
    return {
        "samples": samples, "own_before_open_mb": round(before), "own_after_open_mb": round(opened),
        **{f"own_after_{k}_samples_mb": round(own) for k, (own, _) in marks.items()},
        **{f"mapped_file_after_{k}_samples_mb": round(mapped) for k, (_, mapped) in marks.items()},
        "peak_rss_mb": round(peak_mb()), "samples_per_s": round(samples / seconds, 1),
    }


if __name__ == "__main__":
    main()
