"""Device fast paths that training and inference share: channels_last where it measured faster,
bf16 autocast on CUDA, cuDNN autotuning for the fixed shapes of crops and tiles, fused
optimizer updates, and ``torch.compile`` for shapes that run long enough to repay its warm-up.

``bench/run.py`` measures them against the reference way of running the same networks;
BENCHMARKS.md has the figures, and says which (the GPU ones) are still unmeasured.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import time
import weakref
from collections.abc import Callable

import torch
from torch import nn

from .errors import one_line

log = logging.getLogger(__name__)

# Eager seconds one input shape must be expected to take before compiling it pays: a cold
# compile took 15-25 s on two CPU cores (about 5 s from inductor's on-disk cache), after which
# each forward ran 1.6x faster. Small translations therefore never wait for a compile.
COMPILE_AFTER_SECONDS = 60.0
COMPILE_MODES = ("auto", "on", "off")
FUSED_ADAM_DEVICES = ("cpu", "cuda", "mps")
# what HotCompiler learnt per module; plain data only, since a reference back to the module
# would keep it alive forever
_HOT: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def describe_device(device: torch.device | str) -> str:
    """The device work runs on, in words for a record, a model card or a benchmark: the GPU's
    name, or the CPU's kind and the threads torch uses; with the process count when several
    train together."""
    import platform

    device = torch.device(device)
    world = torch.distributed.get_world_size() if torch.distributed.is_available() and torch.distributed.is_initialized() else 1
    if device.type == "cuda" and torch.cuda.is_available():
        name = torch.cuda.get_device_name(device)
    elif device.type == "cpu":
        name = f"{platform.machine()} CPU, {torch.get_num_threads()} threads"
    else:
        name = device.type
    return f"{world} x {name}" if world > 1 else name


@contextlib.contextmanager
def autotuned(device: torch.device):
    """cuDNN's kernel search while work of fixed shapes runs (training crops, tiles). Outside it
    stays as it was: every new whole-image size would pay for a search of its own."""
    if device.type != "cuda":
        yield
        return
    before = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = True
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = before


def channels_last(module: nn.Module, device: torch.device, training: bool = False) -> bool:
    """Whether ``module`` runs faster with channels_last tensors on ``device``.

    On CUDA it does (tensor cores read that layout). On two CPU cores, inference of plain conv
    networks gained (compact SR 1.78x, RRDBNet 1.12x, U-Net 1.01x) but the instance-normalised
    ResNet generator lost (0.96x), and so did a training step (compact SR, 0.92x).
    """
    # Attention and 5-D weights break in that layout (views of the input, rank-4-only
    # formats): only networks of convolutions are given it
    if not _convolutional(module):
        return False
    if device.type == "cuda":
        return True
    if device.type != "cpu" or training:
        return False
    return not _instance_normalised(module)


def cast_whole(module: nn.Module, device: torch.device) -> bool:
    """Whether bf16 on ``device`` runs ``module`` cast to bf16 whole rather than under autocast:
    on the CPU, networks of convolutions with instance norm, which autocast keeps in fp32 with
    the padding and activations around it, so every layer converts its input back and forth.
    CycleGAN's generator at 512 x 512, two threads: autocast 2.2x fp32, cast whole 2.8x, the
    same result to the level (BENCHMARKS.md). Elsewhere autocast was faster (compact SR: 1.75x
    against 1.60x)."""
    return device.type == "cpu" and _convolutional(module) and _instance_normalised(module)


# the layers with weights a network may have and still be given the channels_last layout
CONVOLUTIONAL = (nn.Conv2d, nn.ConvTranspose2d, nn.modules.batchnorm._BatchNorm, nn.PReLU, nn.modules.instancenorm._InstanceNorm)


def _convolutional(module: nn.Module) -> bool:
    """Whether every layer of ``module`` that has weights is one of ``CONVOLUTIONAL``."""
    return all(isinstance(m, CONVOLUTIONAL) for m in module.modules() if next(m.parameters(recurse=False), None) is not None)


def _instance_normalised(module: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.instancenorm._InstanceNorm) for m in module.modules())


def device_layout(module: nn.Module, device: torch.device, channels_last: bool) -> nn.Module:
    module = module.to(device)
    return module.to(memory_format=torch.channels_last) if channels_last else module


class BoundedPReLU(nn.Module):
    """A PReLU whose slopes are all at most 1 (or all at least 1), computed as max(x, slope * x)
    (or min): the same numbers, since for such slopes the two order as PReLU picks, in a fifth of
    the time of torch's PReLU kernel on a channels_last CPU tensor (0.66 ms against 3.6 ms for
    48 x 256 x 256 in bf16, two cores). The weight stays the wrapped module's own parameter."""

    def __init__(self, prelu: nn.PReLU, pick):
        super().__init__()
        self.weight, self.pick = prelu.weight, pick
        # in the network's mode: one left in train mode read as a network that samples, which
        # kept torch.compile (and int8) off every compact upscaler
        self.train(prelu.training)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        slope = self.weight.view(1, -1, *([1] * (x.dim() - 2))) if self.weight.numel() > 1 else self.weight
        return self.pick(x, x * slope.to(x.dtype))


def fast_activations(module: nn.Module) -> nn.Module:
    """``module`` for inference with each PReLU whose slopes lie all on one side of 1 (the
    compact upscalers': a sixth of their time went to PReLU) replaced by ``BoundedPReLU``; in
    place."""
    for name, child in list(module.named_children()):
        if isinstance(child, nn.PReLU) and bool((child.weight <= 1).all()):
            setattr(module, name, BoundedPReLU(child, torch.maximum))
        elif isinstance(child, nn.PReLU) and bool((child.weight >= 1).all()):
            setattr(module, name, BoundedPReLU(child, torch.minimum))
        else:
            fast_activations(child)
    return module


def plain_activations(module: nn.Module) -> nn.Module:
    """A copy of ``module`` with each ``BoundedPReLU`` a PReLU again, for converters that have a
    PReLU of their own (OpenVINO's int8 of compact-sr-x4-clean: 50.4 dB from fp32 through
    max(x, slope * x), 53.6 dB through its PReLU)."""
    module = copy.deepcopy(module)
    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, BoundedPReLU):
                prelu = nn.PReLU(child.weight.numel())
                prelu.weight = child.weight
                setattr(parent, name, prelu)
    return module


def samples(module: nn.Module) -> bool:
    """Whether ``module`` samples as it runs: train-mode layers (dropout, batch statistics),
    whose random draws a compiled or quantized form would not repeat."""
    return any(m.training for m in module.modules())


def device_batch(x: torch.Tensor, device: torch.device, channels_last: bool) -> torch.Tensor:
    x = x.to(device, non_blocking=True)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def autocast(device: torch.device, dtype: torch.dtype):
    # int8 runs outside torch (OpenVINO's); its networks are counted and judged in fp32
    return torch.autocast(device.type, dtype=dtype) if dtype not in (torch.float32, torch.int8) else contextlib.nullcontext()


def adam(params, **options) -> torch.optim.Adam:
    """Adam with its fused update: one kernel for all parameters instead of a loop over them
    (CycleGAN's generator step: 210 ms looped, 24 ms fused on two CPU cores), on the devices that
    have the kernel (not the meta device, where a run's memory is estimated)."""
    params = list(params)
    fused = all(p.device.type in FUSED_ADAM_DEVICES for p in params)
    return torch.optim.Adam(params, fused=fused, **options)


class HotCompiler:
    """Runs a module eagerly until one input shape has taken (or, from the job ahead, will take)
    ``COMPILE_AFTER_SECONDS``, then through ``torch.compile`` for that shape.

    What is hot is remembered per module, and torch keeps compiled graphs per module class, so
    a server that keeps a model loaded compiles each hot shape once for all its requests. If
    compiling fails (no C++ compiler, an unsupported layer) the module stays eager, with one
    warning.
    """

    def __init__(self, module: nn.Module, mode: str = "auto"):
        if mode not in COMPILE_MODES:
            raise ValueError(f"compile mode must be one of {COMPILE_MODES}")
        # what the module costs per input pixel, once someone has counted it (Engine.flops)
        self.flops_per_pixel: float | None = None
        self.module, self.mode = module, mode
        self.state = _HOT.setdefault(module, {"failed": False, "calls": {}, "seconds": {}, "hot": set()})
        # Networks sampling with train-mode layers (dropout, batch statistics) stay eager:
        # compiled dropout draws other random numbers. Also off after a failed compile.
        if self.state["failed"] or samples(module):
            self.mode = "off"
        self._compiled: Callable | None = None

    def __call__(self, x: torch.Tensor, remaining: int = 0) -> torch.Tensor:
        """The module applied to ``x``; ``remaining`` more calls of this shape follow in this job."""
        if self.mode == "off":
            return self.module(x)
        key = (tuple(x.shape), x.dtype, torch.is_autocast_enabled(x.device.type))
        if self.mode == "on" or key in self.state["hot"]:
            try:
                return self._compile()(x)
            except Exception as error:  # the compiler raises many types
                cause = getattr(error, "inner_exception", None) or error  # as the compiler wraps it
                if isinstance(cause, torch.OutOfMemoryError) or "can't allocate memory" in str(cause):
                    raise cause from None  # the engine retries with smaller tiles
                # the compiler's own failure: the eager module still works
                log.warning("torch.compile failed, running without it: %s", one_line(error))
                self.state["failed"], self.mode = True, "off"
                return self.module(x)
        start = time.perf_counter()
        y = self.module(x)
        if x.device.type == "cuda":  # the time of the work, not of queueing it
            torch.cuda.synchronize(x.device)
        elapsed = time.perf_counter() - start
        calls = self.state["calls"][key] = self.state["calls"].get(key, 0) + 1
        spent = self.state["seconds"][key] = self.state["seconds"].get(key, 0.0) + elapsed
        # a shape's first call also pays for autotuning and allocation, so it predicts nothing
        ahead = elapsed * remaining if calls > 1 else 0.0
        if spent + ahead >= COMPILE_AFTER_SECONDS:
            self.state["hot"].add(key)
        return y

    @property
    def static(self) -> bool:
        """Whether every call is compiled, so every new shape costs a compile."""
        return self.mode == "on"

    def _compile(self) -> Callable:
        if self._compiled is None:
            # one graph per shape: tiles, crops and batches keep theirs
            self._compiled = torch.compile(self.module, dynamic=False)
        return self._compiled


def compile_networks(networks: dict[str, nn.Module]) -> None:
    """Compile training networks in place (their state dicts keep their keys)."""
    for net in networks.values():
        net.compile()
