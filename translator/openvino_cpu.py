"""OpenVINO as the CPU's bf16 runner, where it is installed (the ``openvino`` extra).

On a 2-core CPU with native bf16, OpenVINO's bf16 ran the shipped x4 upscaler at 85% of the
CPU's bf16 peak, 1.2x to 1.9x faster than torch's bf16 autocast (BENCHMARKS.md, "CPU
precision"); the quality gate still judges each model (translator.precision). The engine
hands it only the network itself: padding, tiles, alpha, 16-bit pictures and the value ranges
stay the engine's, so every feature works the same on both. The network is converted once per set of weights and
kept in the cache folder as OpenVINO's own files (weights and graph, never pickled code); a
network OpenVINO cannot convert runs in torch, as before.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import logging
import os
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

log = logging.getLogger(__name__)

# TRANSLATOR_OPENVINO=0 keeps every network in torch
SWITCH = "TRANSLATOR_OPENVINO"
CACHE_FOLDER = "openvino"
# the side of the example input a network is converted with; its sides stay dynamic
EXAMPLE_SIDE = 64


def available() -> bool:
    return os.environ.get(SWITCH, "1") != "0" and importlib.util.find_spec("openvino") is not None


class Network:
    """A network in OpenVINO, run in bf16 with torch's thread count; called with an N x C x H x W
    float32 CPU batch of any size (in the network's range), it returns the float32 result."""

    def __init__(self, graph: Path):
        import openvino as ov

        core = ov.Core()
        config = {"INFERENCE_PRECISION_HINT": "bf16", "INFERENCE_NUM_THREADS": torch.get_num_threads(), "PERFORMANCE_HINT": "LATENCY"}
        self._compiled = core.compile_model(core.read_model(graph), "CPU", config)

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        result = self._compiled.create_infer_request().infer({0: batch.float().contiguous().numpy()})
        return torch.from_numpy(np.array(result[0], dtype=np.float32))


def computes_bf16() -> bool:
    """Whether OpenVINO finds bf16 in this CPU (where it does not, its bf16 would be fp32)."""
    return available() and _finds_bf16()


@functools.cache
def _finds_bf16() -> bool:
    import openvino as ov

    return "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


def network(module: torch.nn.Module, channels: int, multiple: int, minimum: int) -> Network | None:
    """``module`` in OpenVINO, computing in bf16; None where OpenVINO is missing or switched off,
    or cannot take the network (one that samples at random, an operator it lacks), which then
    stays in torch."""
    if not available() or any(m.training for m in module.modules()):
        return None
    try:
        return Network(_converted(module, channels, multiple, minimum))
    except Exception as error:  # noqa: BLE001  (the converter raises many kinds; all mean "not this one")
        log.info("OpenVINO cannot run this network (%s); it runs in torch", str(error).splitlines()[0][:200] if str(error) else type(error).__name__)
        return None


def _converted(module: torch.nn.Module, channels: int, multiple: int, minimum: int) -> Path:
    """The OpenVINO graph of ``module``, converted once per weights and kept in the cache."""
    import openvino as ov

    from .catalog import cache_folder

    digest = hashlib.sha256(f"{type(module).__module__}.{type(module).__qualname__} {channels}".encode())
    for name, tensor in module.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    folder = cache_folder() / CACHE_FOLDER / digest.hexdigest()[:32]
    side = max(minimum, multiple * -(-EXAMPLE_SIDE // multiple))

    def convert(temp: Path) -> None:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the converter's tracing warns of torch.jit's deprecation
            model = ov.convert_model(module, example_input=torch.rand(1, channels, side, side), input=[-1, channels, -1, -1])
        # weights kept in fp32: the reduced precision is the runtime's choice, per operation
        ov.save_model(model, temp / "network.xml", compress_to_fp16=False)

    return _kept(folder, convert)


def _kept(folder: Path, make) -> Path:
    """``folder``/network.xml, made by ``make(temp)`` into a temporary folder that is renamed
    into place whole, so that a crash or a second process never leaves half of one."""
    graph = folder / "network.xml"
    if graph.is_file():
        return graph
    folder.parent.mkdir(parents=True, exist_ok=True)
    temp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".making-"))
    try:
        make(temp)
        os.replace(temp, folder)
    except OSError:
        if not graph.is_file():  # another process may have won the race
            raise
    finally:
        shutil.rmtree(temp, ignore_errors=True)
    return graph
