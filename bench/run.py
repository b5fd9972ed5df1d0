"""Benchmarks: the project's training step and inference engine against the reference
implementations' way of running the same networks, in one run on one machine.

    python -m bench.run --quick                 # CPU-sized inputs, a few minutes
    python -m bench.run --device cuda           # the full table on a GPU
    python -m bench.run --quick --json bench/results.json
    python -m bench.run --markdown bench/results.json   # a saved run as BENCHMARKS.md's table

Every (row, variant) runs in a fresh process so that its peak memory is its own. Variants:
"reference" runs the networks the way the original code does; "ours" is the project's own
training step or engine as a user gets it, without torch.compile; "compiled" is the same with
torch.compile on (its warm-up is left out of the timing and reported on its own). Ratios are
reference time over ours: above 1 means we are faster. The FLOP floor is the time the counted
FLOPs would take at the device's measured peak (a large matmul in the precision used).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

# the repository, where `python -m bench.run` finds this package
ROOT = Path(__file__).resolve().parent.parent

# name: (what, unit, full size, quick size, full batch, quick batch)
ROWS = {
    "cyclegan_train_b1": ("CycleGAN training step, resnet_9blocks", "img/s", 256, 128, 1, 1),
    "cyclegan_train_b8": ("CycleGAN training step, resnet_9blocks", "img/s", 256, 128, 8, 2),
    "pix2pix_train_b1": ("pix2pix training step, unet_256", "img/s", 256, 256, 1, 1),
    "rrdbnet_x4_256": ("RRDBNet x4 inference", "ms/img", 256, 48, 1, 1),
    "rrdbnet_x4_512": ("RRDBNet x4 inference", "ms/img", 512, 96, 1, 1),
    "compact_x4_256": ("compact SR (general-x4v3 size) inference", "ms/img", 256, 128, 1, 1),
    "compact_x4_512": ("compact SR (general-x4v3 size) inference", "ms/img", 512, 256, 1, 1),
    "cyclegan_gen_1024": ("CycleGAN generator inference", "ms/img", 1024, 512, 1, 1),
    "translate_e2e": ("translate of a photo (PNG in, PNG out) vs bare forward, general-x4v3 size", "ms/img", 768, 384, 1, 1),
    "upscale_2000x1500_memory": ("x4 upscale of 2000x1500, tiled (general-x4v3 size)", "ms/img", 2000, 2000, 1, 1),
}

VARIANTS = {
    # what a user gets: eager, and the engine's automatic compile of the long-running tile shape
    "upscale_2000x1500_memory": ["ours", "auto"],
    # the cost of decoding, padding, tiling and encoding: our whole translate against the forward
    "translate_e2e": ["reference", "ours"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small inputs for the CPU")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--rows", nargs="*", default=list(ROWS))
    parser.add_argument("--json", help="write the results here (after every row)")
    parser.add_argument("--budget", type=float, help="seconds for the whole run: what is left unmeasured then is reported as not run")
    parser.add_argument("--markdown", metavar="JSON", help="print a saved run as a markdown table, and run nothing")
    parser.add_argument("--row", help=argparse.SUPPRESS)
    parser.add_argument("--variant", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.row:  # a child process: one measurement, printed as JSON
        print(json.dumps(measure(args.row, args.variant, args.quick, torch.device(args.device))))
        return
    if args.markdown:
        print(markdown(json.loads(Path(args.markdown).read_text())))
        return

    from translator.acceleration import describe_device

    peak = device_peak(torch.device(args.device))
    results = {"machine": f"{describe_device(args.device)}, torch {torch.__version__}", "date": time.strftime("%Y-%m-%d"), "quick": args.quick, "device_peak_tflops": peak / 1e12, "rows": {}}
    deadline = time.monotonic() + args.budget if args.budget else None
    # compiled variants last: their warm-ups are the slowest part, and a budget cut should cost
    # them rather than the eager figures
    for phase in (lambda v: v != "compiled", lambda v: v == "compiled"):
        for row in args.rows:
            variants = [v for v in VARIANTS.get(row, ["reference", "ours", "compiled"]) if phase(v)]
            for variant in variants:
                results["rows"].setdefault(row, {})[variant] = child(row, variant, args, deadline)
            if variants:
                print(format_row(row, results["rows"][row], peak, args.quick), flush=True)
            if args.json:  # after every row, so that a run cut short keeps what it measured
                Path(args.json).write_text(json.dumps(results, indent=2))


def child(row: str, variant: str, args, deadline: float | None) -> dict:
    command = [sys.executable, "-m", "bench.run", "--row", row, "--variant", variant, "--device", args.device] + (["--quick"] if args.quick else [])
    left = None if deadline is None else deadline - time.monotonic()
    if left is not None and left <= 0:
        return {"error": "not run: over the --budget"}
    try:
        done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=left)
    except subprocess.TimeoutExpired:
        return {"error": "stopped at the --budget"}
    if done.returncode:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def format_row(row: str, result: dict, peak: float, quick: bool) -> str:
    what, unit, full, small, batch, small_batch = ROWS[row]
    size, batch = (small, small_batch) if quick else (full, batch)
    label = f"{row:<26} {size}px b{batch}"
    result, skipped = measured(result)
    if "ours" not in result:
        return f"{label}  failed: {skipped}"
    shown = lambda r: f"{figure(r, unit, batch):>12}"
    ours = result["ours"]
    floor_ms = ours["flops"] / peak * 1e3 / batch if ours.get("flops") else float("nan")
    text = f"{label}  floor {floor_ms:8.1f} ms/img"
    for variant, r in result.items():
        text += f"  | {variant} {shown(r)} peak {r['peak_mb']:6.0f} MB"
        if r.get("warmup_s"):
            text += f" warm-up {r['warmup_s']:.0f} s"
        if "reference" in result and variant != "reference":
            text += f" ratio {result['reference']['seconds'] / r['seconds']:.2f}x"
        if "bare_seconds" in r:
            text += f" (bare forward alternating in-process: {r['bare_seconds'] * 1e3:.0f} ms, ours/bare {r['seconds'] / r['bare_seconds']:.2f})"
    return text + "".join(f"  | {variant}: {error}" for variant, error in skipped.items())


def measured(result: dict) -> tuple[dict, dict]:
    """A row's variants split into those measured and those that failed or were not run (their errors)."""
    return {v: r for v, r in result.items() if "error" not in r}, {v: r["error"] for v, r in result.items() if "error" in r}


def figure(result: dict, unit: str, batch: int) -> str:
    """One measurement in the row's unit: images a second, or milliseconds an image."""
    if unit == "img/s":
        return f"{batch / result['seconds']:.2f} img/s"
    return f"{result['seconds'] * 1e3 / batch:.0f} ms"


def markdown(results: dict) -> str:
    peak = results["device_peak_tflops"] * 1e12
    lines = [
        f"{results['machine']}, {results['date']}{', quick mode' if results['quick'] else ''}",
        "",
        "| row | input, batch | reference | ours | ratio | compiled (warm-up) | ratio | FLOP floor | peak MB (each variant in turn) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    notes = []
    for row, result in results["rows"].items():
        what, unit, *_ = ROWS[row]
        result, skipped = measured(result)
        if "ours" not in result:
            lines.append(f"| {what} | failed: {'; '.join(skipped.values())} |")
            continue
        if "compiled" in skipped:
            notes.append(f"{what}: compiled variant {skipped['compiled']}.")
        ours = next(iter(r for v, r in result.items() if v != "reference"))
        size, batch = ours["size"], ours["batch"]
        shown = lambda r: figure(r, unit, batch)
        ref = result.get("reference")
        ratio = lambda r: f"{ref['seconds'] / r['seconds']:.2f}x" if ref else "—"
        compiled = result.get("compiled") or result.get("auto")
        floor = f"{ours['flops'] / peak * 1e3 / batch:.0f} ms" if ours.get("flops") else "—"
        cells = [
            what, f"{size} px, b{batch}",
            shown(ref) if ref else "—", shown(result["ours"]), ratio(result["ours"]),
            f"{shown(compiled)} ({compiled['warmup_s']:.0f} s)" if compiled and compiled.get("warmup_s") else (f"{shown(compiled)} (auto)" if compiled else "—"),
            ratio(compiled) if compiled else "—", floor,
            " / ".join(f"{r['peak_mb']:.0f}" for r in result.values()),
        ]
        lines.append("| " + " | ".join(cells) + " |")
        if "bare_seconds" in result["ours"]:
            r = result["ours"]
            notes.append(f"{what}: alternating in one process, ours {r['seconds'] * 1e3:.0f} ms against the bare forward's {r['bare_seconds'] * 1e3:.0f} ms ({r['seconds'] / r['bare_seconds']:.2f}x).")
    return "\n".join(lines + ([""] + notes if notes else []))



def device_peak(device: torch.device) -> float:
    """Achieved FLOP/s of a large matmul in the precision the rows use."""
    n, dtype = (8192, torch.bfloat16) if device.type == "cuda" else (1024, torch.float32)
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    seconds = timed(lambda: a @ b, device, warmup=2, reps=5)
    return 2 * n**3 / seconds


def timed(fn, device: torch.device, warmup: int, reps: int) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def count_flops(fn) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def measure(row: str, variant: str, quick: bool, device: torch.device) -> dict:
    _, _, full, small, batch, small_batch = ROWS[row]
    size, batch = (small, small_batch) if quick else (full, batch)
    reps = 2 if quick and device.type == "cpu" else 10
    torch.manual_seed(0)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.cuda.reset_peak_memory_stats()
    fn = (training if "train" in row else inference)(row, variant, size, batch, device)
    once = row == "upscale_2000x1500_memory"  # minutes on a CPU, and its memory is the point
    warmup_s = 0.0
    if variant == "compiled":  # compiling happens in the first calls; its cost is its own figure
        start = time.perf_counter()
        fn()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        warmup_s = time.perf_counter() - start
    seconds = timed(fn, device, warmup=0 if once else 1, reps=1 if once else reps)
    extra = {}
    if row == "translate_e2e" and variant == "ours":
        # the overhead is a small difference: time the bare forward alternately in this process,
        # so that a drift of the machine's speed cannot pass for it
        bare = inference(row, "reference", size, batch, device)
        pairs = [(timed(fn, device, 0, 1), timed(bare, device, 0, 1)) for _ in range(max(reps, 5))]
        seconds, extra["bare_seconds"] = (float(np.median(column)) for column in zip(*pairs))
    flops = count_flops(fn) if variant == "ours" and row != "upscale_2000x1500_memory" else 0
    if device.type == "cuda":
        peak_mb = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"seconds": seconds, "flops": flops, "peak_mb": peak_mb, "size": size, "batch": batch, "warmup_s": warmup_s, **extra}


def training(row: str, variant: str, size: int, batch: int, device: torch.device):
    from bench.reference import ReferenceCycleGAN, ReferencePix2Pix
    from translator.acceleration import autocast, channels_last, compile_networks, device_batch
    from translator.family import make_settings
    from translator.inference import resolve_precision
    from translator.plugins import registry
    from translator.training import TrainConfig, prepare_networks, train_step

    name = row.split("_")[0]
    family = registry().family(name)
    settings = make_settings(family.Settings, {}, name)
    arch = family.architecture(settings)
    config = make_settings(TrainConfig, {"crop_size": str(size), "load_size": str(size)}, "training")
    recipe = family.recipe(family.build(arch), arch, settings, config, device)
    a = torch.rand(batch, 3, size, size) * 2 - 1
    b = torch.rand(batch, 3, size, size) * 2 - 1
    nets = recipe.networks
    if variant == "reference":
        for net in nets.values():
            net.to(device).train()
        a, b = a.to(device), b.to(device)
        ref = ReferenceCycleGAN(nets["G_A"], nets["G_B"], nets["D_A"], nets["D_B"]) if name == "cyclegan" else ReferencePix2Pix(nets["G"], nets["D"])
        return lambda: ref.step(a, b)
    # the Trainer's own set-up, step by step (measure() turned cuDNN autotuning on for all variants)
    prepare_networks(recipe, device)
    layout = channels_last(nets["G_A" if name == "cyclegan" else "G"], device, training=True)
    if variant == "compiled":
        compile_networks(nets)
    a, b = device_batch(a, device, layout), device_batch(b, device, layout)
    precision = autocast(device, resolve_precision("auto", device))
    return lambda: train_step(recipe, [{"A": a, "B": b}], 1, precision)


def inference(row: str, variant: str, size: int, batch: int, device: torch.device):
    from bench.reference import reference_upscale
    from translator.checkpoints import Checkpoint
    from translator.family import make_settings
    from translator.images import read_image, write_image
    from translator.inference import Engine, Options
    from translator.plugins import registry

    if row == "translate_e2e":
        family = registry().family("esrgan")
        arch = family.architecture(make_settings(family.Settings, {"arch": "srvgg", "scale": "4", "num_conv": "32"}, "esrgan"))
        checkpoint = Checkpoint(family, arch, family.build(arch), Path("bench"))
        folder = Path(tempfile.mkdtemp())
        photo = (np.random.default_rng(0).random((size * 3 // 4, size, 3)) * 255).astype(np.uint8)
        from PIL import Image

        Image.fromarray(photo).save(folder / "in.png")
        module = checkpoint.module.eval().to(device)
        if variant == "reference":  # the bare forward of the same network on the same pixels, in the engine's layout
            from translator.acceleration import channels_last, device_batch, device_layout

            layout = channels_last(module, device)
            module = device_layout(module, device, layout)
            x = device_batch(torch.from_numpy(photo).permute(2, 0, 1)[None].float().div(255), device, layout)

            def bare():
                with torch.inference_mode():
                    module(x)

            return bare
        engine = Engine(checkpoint, options=Options(device=device.type))
        return lambda: write_image(engine.translate(read_image(folder / "in.png")), folder / "out.png")

    family = registry().family("cyclegan" if row.startswith("cyclegan") else "esrgan")
    overrides = {
        "rrdbnet": {"arch": "rrdbnet", "scale": "4"},
        "compact": {"arch": "srvgg", "scale": "4", "num_conv": "32"},
        "upscale": {"arch": "srvgg", "scale": "4", "num_conv": "32"},
        "cyclegan": {},
    }[row.split("_")[0]]
    arch = family.architecture(make_settings(family.Settings, overrides, family.name))
    module = family.build(arch).eval()
    if row == "upscale_2000x1500_memory":
        engine = Engine(Checkpoint(family, arch, module, Path("bench")), options=Options(device=device.type, compile="auto" if variant == "auto" else "off"))
        from translator.images import Picture

        picture = Picture(np.random.default_rng(0).random((1500, 2000, 3), dtype=np.float32))
        return lambda: engine.translate(picture)
    image = (np.random.default_rng(0).random((size, size, 3)) * 255).astype(np.uint8)
    if variant == "reference":
        net = module.to(device)
        if device.type == "cuda":
            net = net.half()
        low, high = family.input_range
        if low < 0:  # the original test.py's transform for tanh generators: same shapes of work
            x = torch.from_numpy(image).permute(2, 0, 1)[None].float().div(127.5).sub(1).to(device)

            def original_test():
                with torch.no_grad():
                    net(x.half() if device.type == "cuda" else x).float().add(1).div(2).cpu()

            return original_test
        return lambda: reference_upscale(net, image, device, arch.multiple)
    options = Options(device=device.type, tile=0, compile="on" if variant == "compiled" else "off")
    engine = Engine(Checkpoint(family, arch, module, Path("bench")), make_settings(family.Settings, {}, family.name), options)
    from translator.images import Picture

    picture = Picture(image.astype(np.float32) / 255)
    return lambda: engine.translate(picture)


if __name__ == "__main__":
    main()
