"""int8 on the CPU through OpenVINO, for the networks whose int8 result stays within the
precision gate.

A network is converted to OpenVINO's graph, quantized by NNCF on the calibration photo shipped
beside this module (64 crops of 64 px from the shipped models' training photos downscaled x4,
half of them damaged the Real-ESRGAN way), and kept in the cache under its checkpoint's SHA-256,
so it is paid once. Two choices keep it within the gate, where NNCF's defaults left
compact-sr-x4-clean 28 to 43 dB from fp32 and up to 106 levels off on held-out photos
(BENCHMARKS.md):

- activation ranges are the calibration's global minimum and maximum: NNCF's default, the mean
  of each crop's, clips the strong edges of other photos;
- the network's tail (its last convolution, which makes the picture, everything after it, and
  any resize of its input, which an upscaler adds its result to) stays in floating point: a
  residual at full resolution needs finer steps than 8 bits;
- so do the inputs of normalisations and residual sums (``FLOAT_INPUTS``).

Optional: it needs ``pip install 'image-translator[int8]'`` (openvino and nncf) and a CPU with
int8 dot products (VNNI or AMX); elsewhere nothing changes.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import logging
import os
import tempfile
from collections.abc import Callable
from importlib.resources import files
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from . import precision
from .images import LUMA, read_image
from .acceleration import plain_activations
from .errors import TranslatorError, one_line

# the CPU flags that mean int8 dot products in hardware
INT8_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")
CALIBRATION = "calibration.png"
CROP = 64
CONVOLUTIONS = ("Convolution", "GroupConvolution", "ConvolutionBackpropData")
# the version of the recipe above, in the cache's file names: a changed recipe quantizes afresh
RECIPE = "minmax-float-output-norm"
# operations whose inputs stay in floating point: a normalisation (InstanceNorm, as OpenVINO's
# MVN) divides each channel by its own spread, so the 8-bit steps the calibration's whole range
# sets become coarse in a quiet channel (CycleGAN's generator: 29 dB from fp32, 38 without), and a
# residual sum adds every block's rounding to the next
FLOAT_INPUTS = ("MVN", "Add")


def unavailable() -> str | None:
    """Why int8 cannot run here, or None when it can."""
    if not any(flag in precision.cpu_flags() for flag in INT8_FLAGS):
        return "this CPU has no int8 dot products (VNNI or AMX)"
    if importlib.util.find_spec("openvino") is None or importlib.util.find_spec("nncf") is None:
        return "int8 needs openvino and nncf (pip install 'image-translator[int8]')"
    return None


def _as_is(values):
    return values


class Int8Network:
    """A network quantized to int8 and compiled by OpenVINO: a float batch in, a float batch out."""

    def __init__(self, model):
        import openvino as ov

        # the float operations left (the tail) in bf16 where the CPU computes it natively
        config = {"INFERENCE_NUM_THREADS": torch.get_num_threads(), "PERFORMANCE_HINT": "LATENCY",
                  "INFERENCE_PRECISION_HINT": "bf16" if precision.native_bf16() else "f32"}
        self.compiled = ov.Core().compile_model(model, "CPU", config)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        # a request per call: a compiled model's own request is not for two threads at once
        request = self.compiled.create_infer_request()
        request.infer({0: x.float().contiguous().numpy()})
        return torch.from_numpy(request.get_output_tensor(0).data.copy())


def network(module: torch.nn.Module, channels: int, side: int, key: str | None, to_network: Callable = _as_is) -> Int8Network:
    """``module`` (taking ``channels``-channel pictures whose sides are multiples of ``side``,
    in [0, 1] as ``to_network`` maps them, a family's ``to_network``) in int8: from the cache when ``key`` (its checkpoint's SHA-256
    and branch) was quantized before, else quantized now, calibrated on crops of ``side``, and
    kept. Raises TranslatorError when OpenVINO cannot take the network."""
    import openvino as ov

    path = _cache() / f"{key}-{RECIPE}.xml" if key else None
    if path is not None and path.is_file() and path.with_suffix(".bin").is_file():
        try:
            return Int8Network(ov.Core().read_model(path))
        except RuntimeError:  # damaged: made again below
            pass
    try:
        model = _quantized(module, channels, side, to_network)
    except Exception as error:  # the converter and NNCF raise many types
        raise TranslatorError(f"int8 could not be made of this network: {one_line(error)}") from None
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=path.parent) as scratch:
            ov.save_model(model, Path(scratch) / path.name, compress_to_fp16=False)
            # the weights first: an .xml on disk means its .bin is whole
            os.replace(Path(scratch) / path.with_suffix(".bin").name, path.with_suffix(".bin"))
            os.replace(Path(scratch) / path.name, path)
    return Int8Network(model)


def _cache() -> Path:
    from .catalog import cache_folder

    return cache_folder() / "int8"


def calibration_crops(channels: int, side: int = CROP, to_network: Callable = _as_is) -> list[np.ndarray]:
    """The shipped calibration photo as 1 x C x ``side`` x ``side`` crops (its luma for a gray
    network), mapped by ``to_network`` to the values the network takes."""
    rgb = read_image(Path(str(files("translator") / CALIBRATION))).rgb.transpose(2, 0, 1)
    if channels == 1:
        rgb = np.tensordot(np.array(LUMA, np.float32), rgb, axes=1)[None]
    rgb = to_network(rgb).astype(np.float32)
    _, height, width = rgb.shape
    return [np.ascontiguousarray(rgb[None, :, top : top + side, left : left + side])
            for top in range(0, height - side + 1, side) for left in range(0, width - side + 1, side)]


def calibration_size(side: int) -> int:
    """How many crops of ``side`` calibration takes."""
    with Image.open(files("translator") / CALIBRATION) as photo:
        return (photo.width // side) * (photo.height // side)


def _quantized(module: torch.nn.Module, channels: int, side: int, to_network: Callable = _as_is):
    import openvino as ov

    with torch.no_grad():
        graph = ov.convert_model(plain_activations(module), example_input=torch.rand(1, channels, side, side), input=[-1, channels, -1, -1])
    # in the network's own range: calibrated on [0, 1], a [-1, 1] network's dark half was clipped
    crops = calibration_crops(channels, side, to_network)
    # NNCF draws progress bars on the terminal; a translation prints its own lines
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        import nncf
        from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters
        from nncf.quantization.range_estimator import RangeEstimatorParametersSet

        nncf.set_log_level(logging.ERROR)
        return nncf.quantize(
            graph, nncf.Dataset(crops), preset=nncf.QuantizationPreset.MIXED, subset_size=len(crops),
            ignored_scope=nncf.IgnoredScope(names=_tail(graph), types=list(FLOAT_INPUTS), validate=False),
            advanced_parameters=AdvancedQuantizationParameters(activations_range_estimator_params=RangeEstimatorParametersSet.MINMAX),
        )


def _tail(graph) -> list[str]:
    """The operations that stay in floating point: the last convolution, which makes the
    picture (8-bit steps in its input showed as up to 42 levels in CycleGAN's result, 6 with it
    in float), those after it, and any resize (an upscaler's copy of its input, which its
    result is added to)."""
    ops = [op for op in graph.get_ordered_ops() if op.get_type_name() not in ("Constant", "Parameter", "Result")]
    last = max((i for i, op in enumerate(ops) if op.get_type_name() in CONVOLUTIONS), default=len(ops))
    return [op.get_friendly_name() for i, op in enumerate(ops) if i >= last or op.get_type_name() == "Interpolate"]
