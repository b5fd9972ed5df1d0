"""The inference engine every family shares: devices, precision, padding, tiling, alpha.

Networks see a batch in their own value range whose sides are multiples of the family's size
constraint; the engine pads (reflect) and crops back, so any image size works. Large images
are cut into overlapping tiles of one size, run one batch of tiles at a time, and blended
with weights that sum to one, so memory is bounded by the tile size.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import functools
import hashlib
import logging
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .acceleration import COMPILE_MODES, HotCompiler, autocast, autotuned, cast_whole, channels_last, device_batch, device_layout, fast_activations, samples
from .checkpoints import Checkpoint
from .errors import TranslatorError
from .images import Picture

log = logging.getLogger(__name__)

# Without a tile size, images whose output stays under this many pixels run whole.
AUTO_TILE_OUTPUT_PIXELS = 2048 * 2048
# ... and larger ones in tiles of about this many output pixels a side.
AUTO_TILE_OUTPUT_SIDE = 1024
# Largest result the engine will assemble in memory: at most 12 bytes an output pixel while it
# is assembled and written (9.6 measured for RGB, bench/memory.py), 2.5 GB.
MAX_OUTPUT_PIXELS = int(os.environ.get("TRANSLATOR_MAX_OUTPUT_PIXELS", 256_000_000))

# ITU-R BT.601 luma, as Pillow's convert("L") makes the gray inputs a colouriser trains on

Progress = Callable[[int, int], None]


@dataclass
class Options:
    # auto, cpu, cuda, cuda:N or mps
    device: str = "auto"
    # auto (bf16, else fp16, on CUDA; fp32 elsewhere), fp32, bf16 or fp16
    precision: str = "auto"
    # tile side in input pixels; None picks one for large images; 0 never tiles
    tile: int | None = None
    # pixels shared by neighbouring tiles, blended across
    overlap: int = 32
    # tiles per forward pass
    batch: int = 1
    # final size relative to the input, when it should differ from the network's scale
    outscale: float | None = None
    # how alpha is upscaled: by the network (as Real-ESRGAN does) or bicubic
    alpha: str = "network"
    # seeds the random sampling of networks run in train mode
    seed: int | None = None
    # torch.compile: auto (once a shape's work repays the warm-up), on, or off
    compile: str = "auto"


# The most work int8's calibration may take unasked, in FLOPs (about 5 s at two cores' fp32 peak):
# the compact upscalers need under 1 TFLOP; RRDBNet 9.4, which took 144 s and then failed the gate
INT8_AUTO_FLOPS = 1e12


class Engine:
    """A loaded network on a device, ready to translate pictures."""

    # for a network of branches, the one picked in words (for_picture)
    route = ""

    def __init__(self, checkpoint: Checkpoint, settings=None, options: Options | None = None):
        self.family = checkpoint.family
        self.arch = checkpoint.arch
        self.options = options or Options()
        self.settings = settings if settings is not None else self.family.Settings()
        self.device = resolve_device(self.options.device)
        self.dtype = resolve_precision(self.options.precision, self.device)
        # the file the network came from: the CPU's precision gate remembers its verdict by it
        self.source = checkpoint.path
        _check_options(self.options)
        if tuple(self.arch.channels) not in ((3, 3), (1, 3)):
            raise TranslatorError(f"this {self.family.name} network maps {self.arch.channels[0]}-channel images to {self.arch.channels[1]}; only RGB results can be made")
        self.channels_last = channels_last(checkpoint.module, self.device)
        module = device_layout(checkpoint.module, self.device, self.channels_last)
        # after prepare: it may set the weights (realesr-general's denoise blends two models'),
        # and the fast PReLU holds only for the slopes it sees
        module = fast_activations(self.family.prepare(module, self.settings))
        compile_mode = self.options.compile
        if compile_mode == "auto" and self.device.type == "cpu" and self.channels_last:
            # on the CPU, compiling gained only what channels_last already gives (0.96x and 1.04x
            # over it for compact SR and RRDBNet), after warm-ups of up to a minute
            compile_mode = "off"
        self.runner = HotCompiler(module, compile_mode)
        # the runners of a network's branches, for one that picks a branch per picture
        self._branches: dict[torch.nn.Module, HotCompiler] = {}
        # per network run in bf16: its bf16 copy where it runs cast whole (acceleration.cast_whole),
        # else None (autocast); decided and made when it first runs
        self._cast: dict[torch.nn.Module, HotCompiler | None] = {}
        # Normalisation over the whole image (instance norm, batch statistics) differs per tile,
        # as does what a network that says so looks at, so such networks only tile when asked
        # to or when memory runs out.
        self.global_statistics = self.arch.tiling != "supported" or any(
            isinstance(m, torch.nn.modules.instancenorm._InstanceNorm) or (isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.training)
            for m in module.modules()
        )
        self.precision = f"{self.options.precision}: as asked" if self.options.precision != "auto" else f"{_dtype_name(self.dtype)}: this device's default"
        # int8 (OpenVINO's) per network a picture may go through, with why: where it passed
        # the gate, or everywhere when asked; the others run in self.floating
        self.int8 = None
        self._int8: dict[torch.nn.Module, tuple[object, str]] = {}
        self.floating = (self.dtype, self.precision)
        if self.dtype == torch.int8:
            if samples(module):
                raise TranslatorError(f"this {self.arch.name} network samples as it runs (dropout), which int8 cannot keep; use fp32 or bf16")
            self.floating = (torch.float32, "fp32: as asked for what int8 leaves")
            for branch in self._networks():
                self._int8[branch] = (self.int8_network(branch), "int8: as asked")
            self._pick(self.runner.module)
        elif self.dtype != torch.float32 and _dtype_name(self.dtype) not in self.arch.precisions:
            if self.options.precision != "auto":
                computes = ", ".join(("fp32", *self.arch.precisions))
                raise TranslatorError(f"this {self.arch.name} network does not compute in {self.options.precision} (it does in {computes})")
            self.dtype, self.precision = torch.float32, f"fp32: this network does not compute in {_dtype_name(self.dtype)}"
        elif self.options.precision == "auto" and self.device.type == "cpu":
            from .precision import choose

            choice = choose(self)
            self.dtype, self.precision = choice.dtype, choice.reason
            self.floating = (self.dtype, self.precision)
            self._choose_int8()

    def _networks(self) -> list[torch.nn.Module]:
        """The networks a picture may go through: this one, or a network's branches."""
        branches = getattr(self.runner.module, "branches", None)
        return list(branches()) if branches else [self.runner.module]

    def int8_network(self, branch: torch.nn.Module):
        """``branch`` in int8 (from the int8 cache where it was made before)."""
        from .int8 import network

        return network(branch, self.arch.channels[0], self.int8_side(), self.int8_key(branch), self.family.to_network)

    def int8_side(self) -> int:
        """The side of the pictures int8 is calibrated on, as this network takes them."""
        from .int8 import CROP

        return _round_up(max(CROP, self.arch.minimum), self.arch.multiple)

    @functools.cached_property
    def source_sha256(self) -> str | None:
        """The SHA-256 of the file the network came from (None for a network from no file),
        read once: the precision gate's verdicts and the int8 cache are kept under it."""
        from .catalog import file_sha256

        return file_sha256(Path(self.source)) if self.source and Path(self.source).is_file() else None

    def int8_key(self, branch: torch.nn.Module) -> str | None:
        """What the int8 cache keeps ``branch``'s int8 under: its checkpoint file's SHA-256 and
        its place among the branches, and the settings that change its weights; None for a
        network from no file."""
        if self.source_sha256 is None:
            return None
        # settings may change the weights (realesr-general's denoise strength blends two models')
        settings = repr(sorted(dataclasses.asdict(self.settings).items())) if dataclasses.is_dataclass(self.settings) else ""
        digest = hashlib.sha256(f"{self.source_sha256}/{self._networks().index(branch)}/{settings}".encode()).hexdigest()
        return digest[:32]

    def _choose_int8(self) -> None:
        """int8 for each network whose int8 result passes the gate, where int8 can run here."""
        from .int8 import calibration_size, unavailable
        from .precision import choose_int8

        if unavailable() or samples(self.runner.module):
            return
        side = self.int8_side()
        if calibration_size(side) * self.flops(side, side) > INT8_AUTO_FLOPS:
            self.precision = f"{self.precision}; int8 not tried: calibrating a network this large takes minutes (--precision int8 does)"
            self.floating = (self.dtype, self.precision)
            return
        self._int8, refused = choose_int8(self)
        if self._int8:
            self.dtype = torch.int8
            self._pick(self.runner.module)
        elif refused:  # said beside the float precision: why not int8
            self.precision = f"{self.precision}; {refused[0]}"
            self.floating = (self.dtype, self.precision)

    def _pick(self, network: torch.nn.Module) -> None:
        """This engine set to run ``network``: in int8 where it runs int8 and ``network`` has an
        int8 form, else in the engine's floating precision."""
        if self.dtype != torch.int8:
            return
        inner = getattr(network, "ensemble_of", None)
        if inner is not None:  # one network run several ways (a self-ensemble): in its precision
            if inner in self._int8:
                run, self.precision = self._int8[inner]
                self.int8 = network.around(run)
            else:
                self.int8 = None
                self.dtype, self.precision = self.floating
            return
        networks = self._networks()
        if network in self._int8:
            self.int8, self.precision = self._int8[network]
        elif network in networks:
            self.int8 = None
            self.dtype, self.precision = self.floating
        else:  # a network of branches: each picks when a picture chooses it
            rest = f", {self.floating[1]} for the rest" if len(self._int8) < len(networks) else ""
            self.precision = f"int8 for {len(self._int8)} of its {len(networks)} networks{rest}"

    def flops(self, width: int, height: int) -> float:
        """What translating a ``width`` x ``height`` picture costs in FLOPs: counted once per
        network on a small sample, since a convolutional network costs the same per pixel at
        any size."""
        if self.runner.flops_per_pixel is None:
            from torch.utils.flop_counter import FlopCounterMode

            multiple = self.arch.multiple
            side = multiple * max(1, -(-32 // multiple))
            sample = torch.zeros(1, self.arch.channels[0], side, side, device=self.device)
            with torch.inference_mode(), FlopCounterMode(display=False) as counter, autocast(self.device, self.dtype):
                self.module(sample)
            # kept with the network, which engines of other options share
            self.runner.flops_per_pixel = counter.get_total_flops() / (side * side)
        return self.runner.flops_per_pixel * width * height

    def with_options(self, **changes) -> Engine:
        """This engine, sharing its loaded network (and what its compiler learnt), with other
        per-image options: tile, overlap, batch, outscale, alpha or seed. Device, precision and
        compile are fixed when the network is placed."""
        fixed = {"device", "precision", "compile"} & changes.keys()
        if fixed:
            raise ValueError(f"{', '.join(sorted(fixed))} cannot change on a loaded engine")
        other = copy.copy(self)
        other.options = dataclasses.replace(self.options, **changes)
        _check_options(other.options)
        return other

    @property
    def module(self) -> torch.nn.Module:
        return self.runner.module

    @property
    def scale(self) -> int:
        return self.arch.scale

    @torch.inference_mode()
    def translate(self, picture: Picture, progress: Progress | None = None) -> Picture:
        """The translated picture: same modes and bit depth, size times the scale (or outscale)."""
        factor = max(self.scale, self.options.outscale or 0)
        out_pixels = picture.height * picture.width * factor**2
        if out_pixels > MAX_OUTPUT_PIXELS:
            raise TranslatorError(
                f"the result would be {out_pixels / 1e6:.0f} MP, over the {MAX_OUTPUT_PIXELS / 1e6:.0f} MP limit; use a smaller image"
            )
        if self.options.outscale and min(picture.height, picture.width) * self.options.outscale < 1:
            raise TranslatorError(f"--outscale {self.options.outscale} would shrink the {picture.width}x{picture.height} image to nothing")
        if self.options.seed is not None:
            torch.manual_seed(self.options.seed)
        # A large result written in 8 bits is assembled in half precision: the result is most of
        # a translation's memory, and float16 resolves an 8-bit level (to within one, in rounding).
        large = out_pixels > AUTO_TILE_OUTPUT_PIXELS and picture.bits == 8 and not self.options.outscale
        dtype = torch.float16 if large else torch.float32
        # bf16 resolves about 8 bits: a 16-bit picture keeps its depth through fp32
        deep = picture.bits == 16 and self.dtype in (torch.bfloat16, torch.int8) and self.options.precision == "auto"
        with self._in(torch.float32) if deep else contextlib.nullcontext():
            return self._translate(picture, progress, dtype)

    def for_picture(self, picture: Picture) -> Engine:
        """The engine that ``picture``, and pictures like it, go through: this one, or for a
        network of branches for different pictures (a restorer beside a sharpener), one that
        shares the branch ``picture`` calls for. A video takes its first frame's, so that its
        frames do not flicker between the two."""
        if not hasattr(self.runner.module, "branch_for"):
            return self  # one network: no copy of the picture to look at
        return self._for(self._network_input(_to_tensor(picture.rgb)))

    def _for(self, x: torch.Tensor) -> Engine:
        # picked from the whole picture, so that all its tiles go through one branch
        pick = getattr(self.runner.module, "branch_for", None)
        if pick is None:
            return self
        return self._through(*pick(x))

    def each_branch(self) -> list[Engine]:
        """One engine per network a picture may go through: this one, or one per branch of a
        network that picks per picture (what a quality gate must judge)."""
        networks = self._networks()
        return [self] if networks == [self.runner.module] else [self._through(branch, "") for branch in networks]

    def _through(self, branch: torch.nn.Module, route: str) -> Engine:
        other = copy.copy(self)
        other.route = route
        other.runner = self._branches.setdefault(branch, HotCompiler(branch, self.runner.mode))
        other._pick(branch)
        return other

    def _translate(self, picture: Picture, progress: Progress | None, dtype: torch.dtype) -> Picture:
        x = self._network_input(_to_tensor(picture.rgb))
        engine = self._for(x)
        parts = getattr(engine.runner.module, "parts", None)
        if parts:  # the mean of networks' results: each network runs in its own precision (int8, say)
            networks, rgb = parts(), None
            for i, part in enumerate(networks):
                # one progress count across the runs, not one restarting per network
                step = None if progress is None else (lambda done, total, i=i: progress(i * total + done, len(networks) * total))
                result = self._through(part, engine.route)._run_unit(x, step, dtype).clamp_(0, 1)
                rgb = result if rgb is None else rgb.add_(result)
            rgb = rgb.div_(len(networks))
        else:
            rgb = engine._run_unit(x, progress, dtype)
        if x.shape[1] == 1:
            for top in range(0, rgb.shape[2], 256):  # in bands: no full-size temporaries
                band = rgb[:, :, top : top + 256]
                band.copy_(self.arch.with_input_luma(band, x[:, :, top : top + 256]))
        alpha = None
        if picture.alpha is not None:
            alpha = engine._upscale_alpha(torch.from_numpy(picture.alpha)[None, None], progress, dtype)
        if self.options.outscale and self.options.outscale != self.scale:
            size = (round(picture.height * self.options.outscale), round(picture.width * self.options.outscale))
            rgb = _resize(rgb, size)
            alpha = None if alpha is None else _resize(alpha, size)
        # only restoration keeps a gray image gray; translation makes colour from anything
        gray = picture.grayscale and self.family.task.restores
        return picture.with_pixels(_to_array(rgb), None if alpha is None else alpha[0, 0].numpy(), grayscale=gray)

    @contextlib.contextmanager
    def _in(self, dtype: torch.dtype):
        """The network run in ``dtype`` for a while (a copy of this engine would share it anyway)."""
        before, self.dtype = self.dtype, dtype
        try:
            yield
        finally:
            self.dtype = before

    def _network_input(self, x: torch.Tensor) -> torch.Tensor:
        """The picture as the network takes it: RGB, or its luma for a one-channel network (a
        colouriser), so a colour photo is made gray first, as its training inputs were."""
        return self.arch.network_input(x)

    def _run_unit(self, x: torch.Tensor, progress: Progress | None, dtype: torch.dtype, gray: bool = False) -> torch.Tensor:
        if self.family.input_range == (0.0, 1.0):  # no copies of a large image for an identity mapping
            return self.run(x, progress, dtype, gray).clamp_(0, 1)
        return self.family.from_network(self.run(self.family.to_network(x), progress, dtype, gray))

    def _upscale_alpha(self, alpha: torch.Tensor, progress: Progress | None, dtype: torch.dtype) -> torch.Tensor:
        if self.scale == 1:
            return alpha
        if self.options.alpha == "network":
            # run as a gray image, each tile's channels averaged before it is blended in
            return self._run_unit(alpha.expand(-1, 3, -1, -1), progress, dtype, gray=True)
        return _resize(alpha, (alpha.shape[2] * self.scale, alpha.shape[3] * self.scale))

    @torch.inference_mode()
    def run(self, x: torch.Tensor, progress: Progress | None = None, dtype: torch.dtype = torch.float32, gray: bool = False) -> torch.Tensor:
        """The network applied to ``x`` (N x C x H x W, CPU, network range) at any size, as
        ``dtype`` on the CPU; ``gray`` averages the output's channels into one."""
        tile = self._tile_size(x.shape[2], x.shape[3])
        while True:
            try:
                if tile == 0:
                    return self._whole(x, dtype, gray)
                with autotuned(self.device):
                    return self._tiled(x, tile, progress, dtype, gray)
            except (torch.OutOfMemoryError, RuntimeError) as error:
                # a CPU allocator failure is a plain RuntimeError
                if not isinstance(error, torch.OutOfMemoryError) and "can't allocate memory" not in str(error):
                    raise
            # Outside the except block, so the failed batch's tensors are really freed. Never
            # continue with a half-written result: start over with smaller tiles.
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
            tried = f"{tile}px tiles" if tile else "the whole image"
            smaller = self._smaller_tile(tile, x)
            if smaller is None:
                advice = "try --device cpu" if self.device.type != "cpu" else "use a smaller image"
                raise TranslatorError(f"out of {self.device.type} memory even with {tried}; {advice}")
            log.warning("out of memory with %s; retrying with %dpx tiles%s", tried, smaller,
                        " (this network normalises per tile, so tones may vary between tiles)" if self.global_statistics else "")
            tile = smaller

    def _tile_size(self, height: int, width: int) -> int:
        if self.options.tile == 0:
            return 0
        if self.options.tile is not None:
            tile = self.options.tile
        elif self.global_statistics or height * width * self.scale**2 <= AUTO_TILE_OUTPUT_PIXELS:
            return 0
        else:
            tile = max(AUTO_TILE_OUTPUT_SIDE // self.scale, 2 * self.options.overlap)
        # tile origins sit on the size multiple, so a tile must reach past one multiple to overlap
        return _round_up(max(tile, self.options.overlap + self.arch.multiple), self.arch.multiple)

    def _smaller_tile(self, tile: int, x: torch.Tensor) -> int | None:
        current = tile or max(x.shape[2], x.shape[3])
        smaller = _round_up(current // 2, self.arch.multiple)
        smallest = max(32, self.options.overlap + self.arch.multiple)
        return smaller if smallest <= smaller < current else None

    def _forward(self, batch: torch.Tensor, remaining: int = 0) -> torch.Tensor:
        """The network's float32 output for a CPU batch, left on the device."""
        height, width = batch.shape[2], batch.shape[3]
        # a network that needs larger or square inputs sees them padded, and its result cropped
        side = max(height, width) if self.arch.square else 0
        batch = pad_to(batch, max(height, self.arch.minimum, side), max(width, self.arch.minimum, side))
        if self.dtype == torch.int8:
            y = self.int8(batch)
        elif self.dtype == torch.bfloat16 and (cast := self._bf16_copy(self.runner)) is not None:
            y = cast(device_batch(batch, self.device, self.channels_last).to(torch.bfloat16), remaining).float()
        else:
            with autocast(self.device, self.dtype):
                y = self.runner(device_batch(batch, self.device, self.channels_last), remaining).float()
        return y[:, :, : height * self.scale, : width * self.scale]

    def _bf16_copy(self, runner: HotCompiler) -> HotCompiler | None:
        """``runner``'s network cast to bf16 whole, where bf16 runs it so; None where autocast does."""
        module = runner.module
        if module not in self._cast:
            self._cast[module] = HotCompiler(copy.deepcopy(module).to(torch.bfloat16), runner.mode) if cast_whole(module, self.device) else None
        return self._cast[module]

    def _whole(self, x: torch.Tensor, dtype: torch.dtype, gray: bool) -> torch.Tensor:
        height, width = x.shape[2], x.shape[3]
        y = self._forward(pad_to_multiple(x, self.arch.multiple))
        if gray:
            y = y.mean(1, keepdim=True)
        return y.cpu()[:, :, : height * self.scale, : width * self.scale].to(dtype)

    def _tiled(self, x: torch.Tensor, tile: int, progress: Progress | None, dtype: torch.dtype, gray: bool) -> torch.Tensor:
        """Tiles blended into a result laid out as N x H x W x C, so that a picture's pixels
        (H x W x C) are a view of it rather than a copy; returned as an N x C x H x W view."""
        height, width, scale, multiple = x.shape[2], x.shape[3], self.scale, self.arch.multiple
        x = pad_to_multiple(x, multiple)
        tile_h, tile_w = min(tile, x.shape[2]), min(tile, x.shape[3])
        overlap = min(self.options.overlap, tile // 2)
        ys = tile_starts(x.shape[2], tile_h, overlap, multiple)
        xs = tile_starts(x.shape[3], tile_w, overlap, multiple)
        boxes = [(i, j) for i in range(len(ys)) for j in range(len(xs))]
        out = None
        batch_size = max(1, self.options.batch)
        chunks = range(0, len(boxes), batch_size)
        for number, first in enumerate(chunks):
            chunk = boxes[first : first + batch_size]
            tiles = [x[:, :, ys[i] : ys[i] + tile_h, xs[j] : xs[j] + tile_w] for i, j in chunk]
            # a short last batch is filled up when every shape would cost a compile
            filler = tiles[-1:] * (min(batch_size, len(boxes)) - len(chunk)) if self.runner.static else []
            result = self._forward(torch.cat(tiles + filler), remaining=len(chunks) - number - 1)
            if gray:
                result = result.mean(1, keepdim=True)
            if out is None:
                shape = (x.shape[0], x.shape[2] * scale, x.shape[3] * scale, result.shape[1])
                out = torch.zeros(shape, dtype=dtype, device=self._accumulator(shape, dtype))
                wy = [w.to(out.device) for w in blend_weights(ys, tile_h, x.shape[2], overlap, scale)]
                wx = [w.to(out.device) for w in blend_weights(xs, tile_w, x.shape[3], overlap, scale)]
            result = result.to(out.device)
            for k, (i, j) in enumerate(chunk):
                n = x.shape[0]
                weight = wy[i][:, None] * wx[j][None, :]
                top, left = ys[i] * scale, xs[j] * scale
                out[:, top : top + tile_h * scale, left : left + tile_w * scale, :] += (result[k * n : (k + 1) * n] * weight).permute(0, 2, 3, 1)
            if progress:
                progress(min(first + batch_size, len(boxes)), len(boxes))
        return out[:, : height * scale, : width * scale, :].cpu().permute(0, 3, 1, 2)

    def _accumulator(self, shape: tuple[int, ...], dtype: torch.dtype) -> torch.device:
        """Where tiles are blended: on the GPU when the result fits easily, since blending a
        1024x1024 tile on two CPU cores (39 ms) takes longer than a GPU computes it."""
        if self.device.type != "cuda":
            return torch.device("cpu")
        free, _ = torch.cuda.mem_get_info(self.device)
        return self.device if math.prod(shape) * dtype.itemsize < free // 4 else torch.device("cpu")


def tile_starts(length: int, tile: int, overlap: int, multiple: int = 1) -> list[int]:
    """Evenly spread tile origins (multiples of ``multiple``) covering ``length`` with at
    least ``overlap`` shared pixels between neighbours."""
    if length <= tile:
        return [0]
    if tile < overlap + multiple:
        raise ValueError(f"a {tile}px tile cannot overlap by {overlap}px on a {multiple}px grid")
    # room for rounding the origins down to the size multiple
    stride = max(multiple, tile - overlap - (multiple - 1))
    count = math.ceil((length - tile) / stride) + 1
    span = length - tile
    return [(i * span // (count - 1)) // multiple * multiple if i < count - 1 else span for i in range(count)]


def blend_weights(starts: list[int], tile: int, length: int, overlap: int, scale: int) -> list[torch.Tensor]:
    """Per-tile weights along one axis, in output pixels, that sum to one everywhere.

    Near a tile's inner edge the network lacked context, so its outer quarter of the overlap
    is discarded and the next half ramps in; the image's own borders keep full weight.
    """
    size = tile * scale
    distance = torch.arange(size, dtype=torch.float32) + 0.5
    margin, ramp = overlap * scale / 4, max(overlap * scale / 2, 1.0)
    raw = []
    for index in range(len(starts)):
        weight = torch.ones(size)
        if index > 0:
            weight *= ((distance - margin) / ramp).clamp(0, 1)
        if index < len(starts) - 1:
            weight *= ((size - distance - margin) / ramp).clamp(0, 1)
        raw.append(weight)
    total = torch.zeros(length * scale)
    for start, weight in zip(starts, raw):
        total[start * scale : start * scale + size] += weight
    if not bool((total > 0).all()):
        raise AssertionError("tile weights leave a gap; the overlap is too small for the tile layout")
    return [weight / total[start * scale : start * scale + size] for start, weight in zip(starts, raw)]


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Reflect-pad bottom and right up to multiples of ``multiple``."""
    return pad_to(x, _round_up(x.shape[2], multiple), _round_up(x.shape[3], multiple))


def pad_to(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Pad bottom and right up to ``height`` x ``width`` at least: reflected as far as the image
    reaches, its edge repeated beyond (as spandrel pads, so its networks see what they expect)."""
    bottom = max(0, height - x.shape[2])
    right = max(0, width - x.shape[3])
    if not (bottom or right):
        return x
    reflect_b, reflect_r = min(bottom, x.shape[2] - 1), min(right, x.shape[3] - 1)
    x = F.pad(x, (0, reflect_r, 0, reflect_b), mode="reflect")
    return F.pad(x, (0, right - reflect_r, 0, bottom - reflect_b), mode="replicate")


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise TranslatorError(f"unknown device {name!r} (use auto, cpu, cuda, cuda:N or mps)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise TranslatorError("--device cuda was asked for, but no CUDA GPU is available")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise TranslatorError("--device mps was asked for, but Apple's Metal backend is not available")
    if device.type not in ("cpu", "cuda", "mps"):
        raise TranslatorError(f"unsupported device {name!r} (use auto, cpu, cuda, cuda:N or mps)")
    return device


def _dtype_name(dtype: torch.dtype) -> str:
    return {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16", torch.int8: "int8"}[dtype]


def resolve_precision(name: str, device: torch.device) -> torch.dtype:
    choices = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16, "int8": torch.int8}
    if name == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        if device.type == "cpu":
            from .precision import native_bf16

            # training steps 1.4x faster at equal quality (BENCHMARKS.md); inference then passes
            # each model through the quality gate (Engine)
            return torch.bfloat16 if native_bf16() else torch.float32
        return torch.float32
    if name not in choices:
        raise TranslatorError(f"unknown precision {name!r} (use auto, fp32, bf16, fp16 or int8)")
    if name == "int8":
        from .int8 import unavailable

        if device.type != "cpu":
            raise TranslatorError("--precision int8 runs on the CPU (OpenVINO's); on a GPU use bf16 or fp16")
        if (why := unavailable()) is not None:
            raise TranslatorError(f"--precision int8: {why}")
    return choices[name]


def _check_options(options: Options) -> None:
    if options.tile is not None and options.tile < 0:
        raise TranslatorError("--tile must be 0 (no tiling) or a positive number of pixels")
    if options.overlap < 0:
        raise TranslatorError("--overlap must not be negative")
    if options.batch < 1:
        raise TranslatorError("the tile batch must be at least 1")
    if options.outscale is not None and not 0 < options.outscale <= 16:
        raise TranslatorError("--outscale must be between 0 and 16")
    if options.alpha not in ("network", "bicubic"):
        raise TranslatorError("alpha upscaling must be 'network' or 'bicubic'")
    if options.compile not in COMPILE_MODES:
        raise TranslatorError(f"--compile must be one of {', '.join(COMPILE_MODES)}")


def _round_up(value: int, multiple: int) -> int:
    return max(multiple, -(-value // multiple) * multiple)


def _to_tensor(rgb: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None].contiguous()


def _to_array(rgb: torch.Tensor) -> np.ndarray:
    return rgb[0].permute(1, 2, 0).contiguous().numpy()


def _resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    antialias = size[0] < x.shape[2]
    return F.interpolate(x, size=size, mode="bicubic", align_corners=False, antialias=antialias).clamp_(0, 1)
