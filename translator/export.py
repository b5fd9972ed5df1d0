"""Checkpoints written for other tools: ONNX for runtimes without PyTorch (ONNX Runtime, OpenVINO,
TensorRT, browsers), and the project's safetensors, which spandrel (and so chaiNNer and ComfyUI)
reads for its architectures.

An ONNX file takes ``image``, float32 RGB in [0, 1] shaped N x 3 x H x W with any height and width
the network accepts, and gives ``result``, RGB in [0, 1] at the network's scale: the family's value
range, and a colouriser's luma, are inside the graph. Its metadata records the family, the
architecture and the sizes the network needs. Every export is run by ONNX Runtime at a size other
than the one traced and compared with PyTorch before it is written.
"""

from __future__ import annotations

import contextlib
import io
import os
import warnings
from pathlib import Path

import torch
from torch import nn

from .checkpoints import load_checkpoint, save_checkpoint
from .errors import TranslatorError, one_line
from .files import atomic_write

FORMATS = ("onnx", "safetensors")
# the oldest opset every runtime of the last years reads that still has every operator our
# networks use
OPSET = 17
# largest difference from PyTorch, in [0, 1] units, an fp32 export may have
TOLERANCE = 1e-3


def export(source: str | os.PathLike, output: str | os.PathLike, family: str | None = None, opset: int = OPSET) -> str:
    """Write ``source`` (any checkpoint reference) to ``output``, in the format its suffix names;
    a one-line account of what was written."""
    output = Path(output)
    kind = output.suffix.lower().lstrip(".")
    if kind not in FORMATS:
        raise TranslatorError(f"{output.name}: export writes .onnx or .safetensors files")
    checkpoint = load_checkpoint(source, family)
    what = f"{checkpoint.family.name} {checkpoint.arch.describe()}"
    if kind == "safetensors":
        save_checkpoint(output, checkpoint.family, checkpoint.arch, checkpoint.module.state_dict(), {"source": checkpoint.path.name})
        return f"{output} ({what})"
    if hasattr(checkpoint.module, "branch_for"):
        raise TranslatorError(f"{checkpoint.path.name} picks one of its networks per picture, which an ONNX file cannot; export it as .safetensors")
    difference = _onnx(checkpoint, output, opset)
    return f"{output} (ONNX opset {opset}, {what}; ONNX Runtime matches PyTorch within {difference:.1e}; {sizes(checkpoint.arch)})"


def sizes(arch) -> str:
    """What an ONNX file's input sides must be, in words."""
    rules = []
    if arch.multiple > 1:
        rules.append(f"multiples of {arch.multiple}")
    if arch.minimum > 1:
        rules.append(f"at least {arch.minimum}")
    if arch.square:
        rules.append("equal")
    return "input sides " + (", ".join(rules) if rules else "of any size")


class Portable(nn.Module):
    """The network as an ONNX file runs it: RGB in [0, 1] in, RGB in [0, 1] out."""

    def __init__(self, checkpoint):
        super().__init__()
        self.family, self.arch = checkpoint.family, checkpoint.arch
        self.network = self.family.prepare(checkpoint.module.eval(), self.family.Settings())
        # not .eval(), which would reach into the network and undo what prepare chose
        self.training = False

    def forward(self, image):
        seen = self.arch.network_input(image)
        result = self.family.from_network(self.network(self.family.to_network(seen)))
        return self.arch.with_input_luma(result, seen) if seen.shape[1] == 1 else result


def _onnx(checkpoint, output: Path, opset: int) -> float:
    try:
        import onnx
        import onnxruntime
    except ImportError:
        raise TranslatorError("ONNX export needs onnx and onnxruntime: pip install 'image-translator[onnx]'") from None
    portable = Portable(checkpoint)
    traced, checked = _samples(checkpoint.arch)
    buffer = io.BytesIO()
    axes = {0: "batch", 2: "height", 3: "width"}
    try:
        # the exporter prints a failing graph whole, and warns of every traced branch
        with torch.no_grad(), warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            torch.onnx.export(portable, (traced,), buffer, input_names=["image"], output_names=["result"], opset_version=opset,
                              dynamic_axes={"image": axes, "result": {0: "batch", 2: "result_height", 3: "result_width"}},
                              training=torch.onnx.TrainingMode.PRESERVE, dynamo=False)
        model = onnx.load_from_string(buffer.getvalue())
    except Exception as error:  # the exporter raises whatever the operator or the tracer raised
        raise TranslatorError(f"{checkpoint.arch.name} does not export to ONNX: {one_line(error, named=True)}") from None
    arch = checkpoint.arch
    facts = {"family": checkpoint.family.name, "architecture": arch.to_json(), "scale": str(arch.scale), "input": "image: float32 RGB in [0, 1], N x 3 x H x W",
             "sizes": sizes(arch), "source": checkpoint.path.name}
    for key, value in facts.items():
        model.metadata_props.add(key=key, value=value)
    data = model.SerializeToString()
    try:
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 4  # its own account of a failure would precede ours
        session = onnxruntime.InferenceSession(data, options, providers=["CPUExecutionProvider"])
        got = torch.from_numpy(session.run(None, {"image": checked.numpy()})[0])
    except Exception as error:
        raise TranslatorError(f"{arch.name} exported, but ONNX Runtime cannot run it: {one_line(error, named=True)}") from None
    with torch.no_grad():
        expected = portable(checked)
    difference = float((got - expected).abs().max()) if got.shape == expected.shape else float("inf")
    if not difference <= TOLERANCE:
        raise TranslatorError(f"{arch.name} exported, but ONNX Runtime's result differs from PyTorch's by {difference:.1e} (over {TOLERANCE:g}); nothing written")
    atomic_write(output, data)
    return difference


def _samples(arch) -> tuple[torch.Tensor, torch.Tensor]:
    """An input to trace and another, of other sides, to check the export on: a file traced at
    one size must run at every size."""
    step = arch.multiple
    side = max(arch.minimum, 32)
    side = -(-side // step) * step
    other = side + 2 * step if step > 1 else side + 5
    generator = torch.Generator().manual_seed(0)
    if arch.square:
        return torch.rand(1, 3, side, side, generator=generator), torch.rand(1, 3, other, other, generator=generator)
    return torch.rand(1, 3, side, side + step, generator=generator), torch.rand(1, 3, other, other + 3 * step, generator=generator)

