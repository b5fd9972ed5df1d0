"""The ``translator`` command line."""

from __future__ import annotations

import argparse
import dataclasses
import sys
import traceback
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .errors import TranslatorError, shown

# what --precision takes (the engine checks each against the device)
PRECISIONS = ("auto", "fp32", "bf16", "fp16", "int8")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.debug:
        # library warnings (torch's, the loader's) would come before the one line a user reads
        warnings.simplefilter("ignore")
    try:
        return args.run(args) or 0
    except TranslatorError as error:
        print(f"error: {shown(error)}", file=sys.stderr)
        if error.details:
            print(f"  details: {' '.join(error.details.split())}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and the like
        return 0
    except Exception as error:  # a bug: one line unless --debug asks for the traceback
        if args.debug:
            traceback.print_exc()
        else:
            print(f"error: {shown(error)} (run with --debug for details)", file=sys.stderr)
        return 1


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        # one line, like every other error; --help has the usage
        self.exit(2, f"error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="translator", description="Image-to-image translation: pix2pix, CycleGAN, ESRGAN and plugins.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of unexpected errors")
    parser.set_defaults(run=lambda args: parser.print_help())
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    models = commands.add_parser("models", help="list installed plugins, their families and settings")
    models.set_defaults(run=_models)

    translate = commands.add_parser("translate", help="translate images (and videos) and write the results")
    translate.add_argument("inputs", nargs="+", metavar="INPUT", help="image files or folders of images, or one video (.mp4, .mkv, .mov, .webm)")
    translate.add_argument("--model", "-m", help="family name (read from the checkpoint when it says)")
    translate.add_argument("--checkpoint", "-c", help="weights file (.safetensors, .pth, .pt, .ckpt), hf://ORG/NAME[@REV]/FILE or a catalog name; default: the family's shipped model")
    translate.add_argument("--output", "-o", default="results", help="a .png, .webp or .jpg file (one input) or a folder (default: results)")
    translate.add_argument("--format", choices=["png", "webp", "jpg"], help="what a folder's results are written as (default: png, lossless)")
    translate.add_argument("--quality", type=int, default=90, help="WebP and JPEG quality, 1-100; WebP at 100 is lossless (default: 90)")
    translate.add_argument("--tile", type=int, help="tile side in input pixels (0: never tile; default: automatic)")
    translate.add_argument("--overlap", type=int, default=32, help="pixels shared by neighbouring tiles (default 32)")
    translate.add_argument("--tile-batch", type=int, default=1, help="tiles per forward pass (default 1)")
    translate.add_argument("--outscale", type=float, help="final size relative to the input (default: the network's scale)")
    translate.add_argument("--alpha", choices=("network", "bicubic"), default="network", help="how alpha is upscaled")
    translate.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default auto)")
    translate.add_argument("--precision", default="auto", choices=PRECISIONS)
    translate.add_argument("--seed", type=int, help="seed for train-mode sampling")
    translate.add_argument("--compile", choices=("auto", "on", "off"), default="auto",
                           help="torch.compile the network: auto (once one input shape has a minute of work), on, or off")
    translate.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a family setting (see `translator models`)")
    translate.add_argument("--codec", choices=("h264", "h265", "vp9", "ffv1", "png"),
                           help="video: the encoder (default: h264; vp9 in .webm; ffv1 is lossless), or png: a PNG per frame in a folder")
    translate.add_argument("--crf", type=int, default=18, help="video: constant quality, lower is better and larger (default 18)")
    translate.add_argument("--pix-fmt", help="video: pixel format (default yuv420p, which plays everywhere; yuv444p keeps full colour; "
                                             "h265 also yuv420p10le; ffv1 defaults to yuv444p)")
    translate.add_argument("--frames", metavar="START:END", help="video: only these frames (from 0, END excluded), for a trial")
    translate.add_argument("--steady", type=float, nargs="?", const=0.9, metavar="KEEP",
                           help="video: steady tones for networks that normalise each frame on their own (CycleGAN): their statistics "
                                "averaged over recent frames, KEEP the weight of the frames before (default 0.9)")
    translate.set_defaults(run=_translate)

    train = commands.add_parser("train", help="train or fine-tune a family on a folder of images", add_help=False)
    train.add_argument("family", nargs="?", help="family to train (see `translator models`); with --resume, the run's own")
    train.add_argument("--data", help="dataset folder (layout depends on the family's task; see --help); with --resume, the run's own")
    train.add_argument("--output", "-o", required=True, help="run folder: config, metrics, samples, checkpoints")
    train.add_argument("--steps", type=int, help="optimizer steps in total")
    train.add_argument("--batch-size", type=int, help="images per step")
    train.add_argument("--checkpoint", "-c", help="start from these weights (fine-tuning): a file or hf://ORG/NAME[@REV]/FILE")
    train.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a family or training-loop setting")
    train.add_argument("--resume", action="store_true", help="continue the run in --output exactly where it stopped, with the settings it recorded")
    train.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default auto)")
    train.add_argument("-h", "--help", action=_TrainHelp, help="show this help, with every family's settings")
    train.set_defaults(run=_train)

    catalog = commands.add_parser("catalog", help="checkpoints a user is likely to want, and where they come from")
    catalog.add_argument("--source", choices=("builtin", "openmodeldb"), default="builtin", help="builtin: this project's catalog; openmodeldb: openmodeldb.info's community index")
    catalog.add_argument("--search", default="", help="openmodeldb: words every listed model's name, tags or description holds")
    catalog.add_argument("--arch", default="", help="openmodeldb: only this architecture (esrgan, compact, span, dat, ...)")
    catalog.add_argument("--scale", type=int, help="openmodeldb: only this scale")
    catalog.add_argument("--license", default="", help="openmodeldb: only licences naming this (cc0, cc-by-4.0, mit, ...)")
    catalog.add_argument("--limit", type=int, default=30, help="openmodeldb: at most this many models (default 30)")
    catalog.add_argument("--refresh", action="store_true", help="openmodeldb: fetch the index again now (it is kept a day)")
    catalog.set_defaults(run=_catalog)

    pull = commands.add_parser("pull", help="download a checkpoint from the Hugging Face Hub or OpenModelDB into its cache")
    pull.add_argument("reference", help="hf://ORG/NAME[@REVISION]/FILE, a name from `translator catalog`, or omdb:ID from `translator catalog --source openmodeldb`")
    pull.add_argument("--sha256", help="refuse the file unless it has this sha256")
    pull.set_defaults(run=_pull)

    push = commands.add_parser("push", help="publish a trained run or a checkpoint to the Hugging Face Hub")
    push.add_argument("source", help="a run folder of `translator train`, or a checkpoint file")
    push.add_argument("repo_id", help="ORG/NAME of the model repository (created if needed)")
    push.add_argument("--private", action="store_true", help="create the repository as private")
    push.add_argument("--license", dest="licence", help="the card's licence, e.g. mit or apache-2.0 (default: a fine-tuned catalog model's, else other)")
    push.set_defaults(run=_push)

    evaluate = commands.add_parser("evaluate", help="PSNR/SSIM of super-resolution checkpoints against bicubic, or FID/KID of translation checkpoints, on held-out images")
    evaluate.add_argument("checkpoints", nargs="+", metavar="CHECKPOINT", help="checkpoints to compare (one kind; super-resolution: one scale)")
    evaluate.add_argument("--data", required=True, help="held-out images the models never saw: high-resolution photos, or A/ and B/ (testA/ and testB/) folders of inputs and real targets")
    evaluate.add_argument("--device", default="cpu", help="auto, cpu, cuda, cuda:N or mps (default cpu)")
    evaluate.add_argument("--degradation", choices=("bicubic", "realesrgan"), default="bicubic",
                          help="super-resolution inputs: clean bicubic downscales, or Real-ESRGAN-style blur, noise, resize and JPEG (a fixed seed per photo)")
    evaluate.add_argument("--precision", default="auto", choices=PRECISIONS,
                          help="what the models compute in (default auto: as translate runs them; fp32: the reference)")
    evaluate.add_argument("--json", help="also write per-photo scores to this JSON file")
    evaluate.set_defaults(run=_evaluate)

    export = commands.add_parser("export", aliases=["convert"], help="write a checkpoint as ONNX, or in the project's safetensors format (which spandrel reads)")
    export.add_argument("input", help="checkpoint to export: a file, run folder, catalog name or hf:// reference")
    export.add_argument("--model", "-m", help="family name (inferred when unambiguous)")
    export.add_argument("--output", "-o", required=True, help="the file to write: .onnx (RGB in [0, 1] in and out, any size) or .safetensors")
    export.add_argument("--opset", type=int, help="ONNX operator set (default: 17, which every current runtime reads; 18 adds operators a few networks need)")
    export.set_defaults(run=_export)
    return parser


def _models(args) -> None:
    from .plugins import registry

    reg = registry()
    for plugin in reg.plugins.values():
        kind = "built-in" if plugin.builtin else "plugin"
        print(f"{plugin.name} {plugin.version} ({kind})")
        for name in plugin.families:
            family = reg.families[name]
            print(f"  {family.name}: {family.description}")
            print(f"    task: {family.task.name}; input range: {list(family.input_range)}")
            print(f"    architectures: {family.listed_architectures()}")
            default = family.default_checkpoint or "none shipped (pass --checkpoint)"
            print(f"    default checkpoint: {default}")
            for field in dataclasses.fields(family.Settings):
                choices = field.metadata.get("choices")
                shown = f" [{'|'.join(map(str, choices))}]" if choices else ""
                print(f"    --set {field.name}={field.default}{shown}  {field.metadata.get('help', '')}")
    for failure in reg.failures:
        print(f"failed to load {failure.name}: {failure.error}")
    from .int8 import unavailable
    from .precision import GATE_MAX_LEVELS, GATE_PSNR_DB, native_bf16

    gate = f"within {GATE_PSNR_DB:.0f} dB and {GATE_MAX_LEVELS} levels of fp32 on the gate's photos"
    floating = f"bf16 for each model whose bf16 result is {gate}, fp32 for the rest" if native_bf16() else "fp32 (this CPU has no native bf16)"
    why_not = unavailable()
    if why_not is None:
        print(f"CPU precision (--precision auto): int8 for each network whose int8 result is {gate}; else {floating} "
              "(`translator translate` says which)")
    else:
        print(f"CPU precision (--precision auto): {floating}; no int8: {why_not}")


def _translate(args) -> int:
    from tqdm import tqdm

    from .files import sweep_stale
    from .images import read_image, write_image
    from .inputs import collect_inputs, output_paths
    from .video import is_video

    rank, world = _shard(args)
    if any(is_video(path) for path in args.inputs):
        return _translate_video(args, rank, world)
    if not 1 <= args.quality <= 100:
        raise TranslatorError(f"--quality must be from 1 to 100, not {args.quality}")
    inputs = collect_inputs(args.inputs)
    outputs = output_paths(inputs, Path(args.output), f".{args.format}" if args.format else "")
    # under torchrun, each process translates every world-th image
    inputs, outputs = inputs[rank::world], outputs[rank::world]
    if not inputs:
        return 0
    for folder in {target.parent for target in outputs}:
        sweep_stale(folder)  # partial results of an earlier run that was killed
    engine = _engine(args)
    failed = 0
    files = tqdm(list(zip(inputs, outputs)), unit="image", disable=len(inputs) < 2, file=sys.stderr)

    def finish(job) -> int:
        """Wait for a background write; 1 if it failed."""
        if job is None:
            return 0
        source, future = job
        try:
            future.result()
            return 0
        except TranslatorError as error:
            if len(inputs) == 1:
                raise
            tqdm.write(f"skipped {source}: {error}", file=sys.stderr)
            return 1

    # PNG encoding of one result overlaps the next translation; one write waits at most
    with ThreadPoolExecutor(max_workers=1) as writer:
        pending = None
        for source, target in files:
            tiles = tqdm(unit="tile", leave=False, file=sys.stderr, desc=source.name, disable=None)

            def progress(done: int, total: int, bar=tiles) -> None:
                bar.total = total
                bar.update(done - bar.n)

            try:
                picture = read_image(source)
                chosen = engine.for_picture(picture)
                result = chosen.translate(picture, progress)
                if chosen.route and len(inputs) == 1:
                    print(f"{source.name}: {chosen.route}", file=sys.stderr)
            except TranslatorError as error:
                if len(inputs) == 1:
                    raise
                failed += 1
                tqdm.write(f"skipped {source}: {error}", file=sys.stderr)
                continue
            finally:
                tiles.close()
            failed += finish(pending)
            pending = (source, writer.submit(write_image, result, target, args.quality))
        failed += finish(pending)
    if len(inputs) == 1:
        print(outputs[0])
    if failed:
        print(f"error: {failed} of {len(inputs)} images failed", file=sys.stderr)
        return 1
    if len(inputs) > 1:
        print(f"wrote {len(inputs)} images to {outputs[0].parent}")
    return 0


def _engine(args):
    """The engine the translate command's options ask for."""
    from .checkpoints import load_checkpoint
    from .family import make_settings
    from .inference import Engine, Options

    checkpoint = load_checkpoint(args.checkpoint, args.model) if args.checkpoint else _default_checkpoint(args.model)
    settings = make_settings(checkpoint.family.Settings, _pairs(args.set), checkpoint.family.name)
    options = Options(device=args.device, precision=args.precision, tile=args.tile, overlap=args.overlap, batch=args.tile_batch,
                      outscale=args.outscale, alpha=args.alpha, seed=args.seed, compile=args.compile)
    engine = Engine(checkpoint, settings, options)
    if not engine.precision.startswith("fp32"):  # a reduced precision is said, with the gate's figures
        print(f"precision {engine.precision}", file=sys.stderr)
    return engine


def _shard(args) -> tuple[int, int]:
    """This process's rank and the number of processes, when torchrun started several: each its
    own GPU (where there are GPUs and none was named), and a process group for their barrier."""
    import os

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1
    import torch
    import torch.distributed as dist

    if args.device == "auto" and torch.cuda.is_available():
        args.device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
    if not dist.is_initialized():
        dist.init_process_group("gloo")  # the processes only wait for each other
    return dist.get_rank(), world


def _translate_video(args, rank: int = 0, world: int = 1) -> int:
    from tqdm import tqdm

    from .files import sweep_stale
    from .video import SUFFIXES, VideoOptions, parse_frames, translate_to_frames, translate_video

    if len(args.inputs) != 1:
        raise TranslatorError("a video is translated on its own: give one video per command")
    source = Path(args.inputs[0])
    if not source.is_file():
        raise TranslatorError(f"no such video: {source}")
    output = Path(args.output)
    if args.codec == "png":
        if output.suffix:
            raise TranslatorError("--codec png writes a folder of frames: give -o a folder, not a file")
        target = output / source.stem
    else:
        target = output if output.suffix.lower() in SUFFIXES else output / source.name
    if target.resolve() == source.resolve():
        raise TranslatorError(f"{target} is the input itself; choose another output")
    if args.outscale:
        raise TranslatorError("--outscale applies to images; a video keeps the network's scale")
    start, end = parse_frames(args.frames)
    options = VideoOptions(None if args.codec == "png" else args.codec, args.crf, start, end, args.steady, args.pix_fmt)
    engine = _engine(args)
    target.parent.mkdir(parents=True, exist_ok=True)
    if rank == 0:
        sweep_stale(target.parent)  # what a killed job left
    with tqdm(unit="frame", file=sys.stderr, desc=source.name, disable=None) as bar:
        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        if args.codec == "png":
            print(translate_to_frames(engine, source, target, options, progress, rank, world))
        else:
            print(translate_video(engine, source, target, options, progress, rank, world))
    return 0


class _TrainHelp(argparse.Action):
    """Help for `train`, listing each family's settings and the loop's (plugins load only here)."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, help=None):
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        from .plugins import registry
        from .training import TrainConfig

        from .tasks import TASKS

        parser.print_help()
        print("\ndata layouts in DATA, by the family's task:")
        for task in TASKS:
            print(f"  {task.name + ':':<18} {task.layouts}")
        sections = [("training loop (every family)", TrainConfig, {})]
        sections += [(f"{f.name} ({f.task.name})", f.Settings, f.train_defaults) for f in registry().families.values()]
        for title, settings, defaults in sections:
            print(f"\n{title} settings, as --set KEY=VALUE:")
            for field in dataclasses.fields(settings):
                choices = field.metadata.get("choices")
                shown = f" [{'|'.join(map(str, choices))}]" if choices else ""
                default = defaults.get(field.name, field.default)
                print(f"  {field.name}={default}{shown}  {field.metadata.get('help', '')}")
            if defaults and settings is not TrainConfig:
                print("  (loop defaults for this family: " + ", ".join(f"{k}={v}" for k, v in defaults.items()) + ")")
        parser.exit()


def _train(args) -> int:
    import signal

    from tqdm import tqdm

    from . import events
    from .plugins import registry
    from .training import Trainer

    overrides = _pairs(args.set)
    if args.steps is not None:
        overrides["steps"] = str(args.steps)
    if args.batch_size is not None:
        overrides["batch_size"] = str(args.batch_size)
    family = registry().family(args.family) if args.family else None
    bars: list = []  # made at the first step, so that an error before it is the only line

    def on_event(event: events.Event) -> None:
        if isinstance(event, events.Data):
            tqdm.write(f"data: {event.summary}", file=sys.stderr)
        elif isinstance(event, events.Step):
            if not bars:
                bars.append(tqdm(unit="step", file=sys.stderr, dynamic_ncols=True, total=event.steps))
            bar = bars[0]
            bar.update(event.step - bar.n)
            losses = {k: f"{v:.3g}" for k, v in event.losses.items()}
            bar.set_postfix(losses | {"img/s": f"{event.images_per_s:.1f}"}, refresh=False)
        elif isinstance(event, events.Note):
            tqdm.write(f"note: {event.message}", file=sys.stderr)
        elif isinstance(event, events.Validation):
            shown = ", ".join(f"{k} {v}" for k, v in event.scores.items())
            tqdm.write(f"step {event.step} validation: {shown}", file=sys.stderr)

    trainer = Trainer(family, args.data, args.output, overrides, checkpoint=args.checkpoint, resume=args.resume, device=args.device, on_event=on_event)

    def stop(signum, frame):
        # first Ctrl-C: save and finish cleanly; a second one aborts
        tqdm.write("stopping after this step and saving (Ctrl-C again to abort)", file=sys.stderr)
        trainer.stop()
        signal.signal(signal.SIGINT, signal.default_int_handler)

    previous = signal.signal(signal.SIGINT, stop)
    try:
        result = trainer.run()
    finally:
        signal.signal(signal.SIGINT, previous)
        for bar in bars:
            bar.close()
    print(f"{result['status']} at step {result['step']}: {Path(args.output) / 'generator.safetensors'}")
    return 0


def _default_checkpoint(family_name: str | None):
    """The checkpoint a family translates with when none is named: its recommended model where
    it can be had, else the shipped one, saying so on stderr."""
    from .checkpoints import load_checkpoint
    from .hub import default_model, load_or_shipped
    from .plugins import registry

    if family_name is None:
        raise TranslatorError("say which model: --checkpoint FILE, or --model NAME for its default")
    family = registry().family(family_name)
    name, note = default_model(family)
    if name is None:
        raise TranslatorError(f"{family.name} ships no default model; pass --checkpoint (a file or one from the Hub)")
    _, checkpoint, fallback = load_or_shipped(name, family, lambda ref: load_checkpoint(ref, family.name))
    if note or fallback:
        print(note or fallback, file=sys.stderr)
    return checkpoint


def _pull(args) -> None:
    from .hub import pull

    print(pull(args.reference, args.sha256))


def _push(args) -> None:
    from .publish import push

    published = push(args.source, args.repo_id, args.private, licence=args.licence)
    print(f"published to {published.url}")
    for reference in published.references:
        print(f"  translator translate photo.png --checkpoint {reference}")


def _catalog(args) -> None:
    from . import catalog

    if args.source == "openmodeldb":
        return _openmodeldb(args)
    for group, entries in catalog.grouped().items():
        print(f"{group}:")
        for entry in entries:
            if entry.shipped:
                where = "ships with the package (works offline)"
            elif entry.sources:
                where = "downloads on first use from " + ", then ".join(entry.sources)
            else:
                where = f"no verified copy to pull yet; published at {entry.origin}"
            print(f"  {entry.name}  ({entry.family}, {entry.size or 'size unknown'}, {entry.licence or 'licence not stated'})")
            print(f"      {entry.description}; input: {entry.input or 'any image'}")
            print(f"      {where}")
            if entry.sha256:
                print(f"      sha256 {entry.sha256} (published; checked on every pull)")
            elif entry.expected_sha256():
                print(f"      sha256 {entry.expected_sha256()} (recorded at its first download here; checked from then on)")


def _openmodeldb(args) -> None:
    from . import openmodeldb

    index = openmodeldb.index(refresh=args.refresh)
    found = index.search(args.search, args.arch, args.scale, args.license)
    stale = "; could not be refreshed, so it may miss newer models" if index.stale else ""
    print(f"OpenModelDB: {len(found)} of {len(index.models)} models match (index fetched {index.age()} ago{stale})")
    for model in found[: max(0, args.limit)]:
        scale = f" x{model.scale}" if model.scale else ""
        print(f"  {model.id}  ({model.architecture}{scale}, {model.size()}, {model.licence}) by {model.author or 'unknown'}")
        if model.description:
            print(f"      {model.description}")
        if model.download() is not None:
            print(f"      translator pull {openmodeldb.PREFIX}{model.id}   (or -c {openmodeldb.PREFIX}{model.id}; SHA-256 checked)")
        else:
            print(f"      hosted where a person must click through: download it from {model.page}, then use the file")
    if len(found) > args.limit:
        print(f"  ... and {len(found) - args.limit} more: narrow with --search, --arch, --scale or --license, or raise --limit")


def _evaluate(args) -> None:
    import json

    from .evaluate import evaluate, report

    names, scores = evaluate(args.checkpoints, args.data, args.device, args.degradation, args.precision)
    print(report(names, scores))
    if args.json:
        rows = {name: score.as_dict() for name, score in scores.items()}
        Path(args.json).write_text(json.dumps({"photos": names, "scores": rows}, indent=2))


def _export(args) -> None:
    from .export import OPSET, export

    print(export(args.input, args.output, args.model, args.opset or OPSET))


def _pairs(items: list[str]) -> dict[str, str]:
    pairs = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise TranslatorError(f"--set expects KEY=VALUE, got {item!r}")
        pairs[key.strip()] = value.strip()
    return pairs
