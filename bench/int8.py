"""int8 on the CPU, four routes, against fp32 and the bf16 the engine already uses.

    python -m bench.int8                   # compact-sr-x4's restorer on a 250 x 250 input, 2 threads
    python -m bench.int8 --model compact-sr-x4-clean --held-out CORPUS/held-out

Routes, each calibrated on 64 px crops of the app's example photo (held out from training) and
judged by the precision gate's rule (PSNR against the fp32 result on that photo, and the
largest difference in 8-bit levels):

- torch FX graph mode, post-training static quantization for the x86 backend (eager int8
  kernels);
- ONNX Runtime static quantization, QDQ, int8 weights per channel, min-max calibration, run by
  ONNX Runtime (against ONNX Runtime's own fp32);
- OpenVINO's bf16, NNCF's int8 of the same graph with its defaults (mixed preset, each
  range the mean of the crops' minima and maxima), and the engine's int8 (``translator.int8``:
  global ranges over the shipped calibration photo, the network's tail in float), run by
  OpenVINO (needs openvino and nncf; skipped without them); ``--held-out DIR`` also judges them
  on other photos, since a gate on one photo can pass a network that fails others;
- torchao's PT2E with the X86 Inductor quantizer, compiled by torch.compile (needs torchao and
  a C++ compiler; skipped without them).

Times are the best of three after a warm-up.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import math
import tempfile
import warnings
from importlib.resources import files
from pathlib import Path

import numpy as np
import torch

from bench.shipped import best_of


def judged(reference: np.ndarray, result: np.ndarray) -> str:
    reference, result = np.clip(reference, 0, 1), np.clip(result, 0, 1)
    mse = float(np.mean((reference - result) ** 2))
    levels = float(np.abs(np.round(reference * 255) - np.round(result * 255)).max())
    return f"{10 * math.log10(1 / mse):.1f} dB, at most {levels:.0f} levels off"


def crops(photo: torch.Tensor, side: int = 64, step: int = 32):
    for top in range(0, photo.shape[2] - side, step):
        for left in range(0, photo.shape[3] - side, step):
            yield photo[:, :, top : top + side, left : left + side]


def openvino_routes(network, photo, x, reference, fp32: float, args) -> None:
    """OpenVINO's bf16 (what the engine uses where OpenVINO is installed) and NNCF's int8 of the
    same graph, calibrated on the same crops; judged on the example photo and, with
    ``--held-out``, on each held-out photo downscaled x4."""
    try:
        import nncf
        import openvino as ov
    except ImportError:
        print("  OpenVINO int8: needs openvino and nncf (pip install openvino nncf)")
        return
    from translator.images import read_image

    held_out = []
    for path in sorted(Path(args.held_out).glob("*.png")) if args.held_out else []:
        hr = torch.from_numpy(read_image(path).rgb).permute(2, 0, 1)[None].float()
        held_out.append(torch.nn.functional.interpolate(hr, scale_factor=0.25, mode="bicubic", antialias=True).clamp(0, 1))
    with torch.inference_mode():
        references = [network(lr).numpy() for lr in held_out]
    from translator import int8 as engine_int8

    graph = ov.convert_model(network, example_input=x, input=[-1, 3, -1, -1])
    samples = [crop.numpy() for crop in crops(photo)]
    int8 = nncf.quantize(graph, nncf.Dataset(samples), preset=nncf.QuantizationPreset.MIXED, subset_size=len(samples))
    # the engine's recipe: global min-max over the shipped calibration photo, the tail in float
    recipe = engine_int8._quantized(network, 3, engine_int8.CROP)
    core = ov.Core()
    for name, model in (("bf16", graph), ("int8 (NNCF's defaults on the example photo, bf16 elsewhere)", int8),
                        ("int8 (the engine's: translator/int8.py)", recipe)):
        compiled = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "bf16", "INFERENCE_NUM_THREADS": args.threads, "PERFORMANCE_HINT": "LATENCY"})
        request = compiled.create_infer_request()
        seconds = best_of(lambda: request.infer({0: x.numpy()}))
        quality = judged(reference, np.array(request.infer({0: photo.numpy()})[0]))
        if held_out:
            worst = [judged(ref, np.array(request.infer({0: lr.numpy()})[0])) for ref, lr in zip(references, held_out)]
            quality += f"; held-out photos: {', '.join(worst)}"
        print(f"  OpenVINO {name}: {seconds:.3f} s ({fp32 / seconds:.2f}x torch fp32; {quality})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="compact-sr-x4")
    parser.add_argument("--side", type=int, default=250)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--held-out", help="also judge OpenVINO's routes on these photos (a folder of PNGs), downscaled x4")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    torch.set_num_threads(args.threads)
    from translator.checkpoints import load_checkpoint
    from translator.images import read_image

    photo = torch.from_numpy(read_image(Path(str(files("translator.app") / "chelsea.png"))).rgb).permute(2, 0, 1)[None].float()
    network = load_checkpoint(args.model).module.eval()
    x = torch.rand(1, 3, args.side, args.side, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        reference = network(photo).numpy()
        fp32 = best_of(lambda: network(x))
        layout = copy.deepcopy(network).to(memory_format=torch.channels_last)
        fp32_cl = best_of(lambda: layout(x.contiguous(memory_format=torch.channels_last)))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            bf16 = best_of(lambda: layout(x.contiguous(memory_format=torch.channels_last)))
            bf16_quality = judged(reference, layout(photo.contiguous(memory_format=torch.channels_last)).float().numpy())
    print(f"{args.model}, {args.side}x{args.side} input, {args.threads} threads")
    print(f"  torch fp32: {fp32:.3f} s; channels_last {fp32_cl:.3f} s; bf16 autocast {bf16:.3f} s ({fp32 / bf16:.2f}x; {bf16_quality})")

    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    torch.backends.quantized.engine = "x86"
    prepared = prepare_fx(copy.deepcopy(network), get_default_qconfig_mapping("x86"), (x,))
    with torch.inference_mode():
        for crop in crops(photo):
            prepared(crop)
        fx = convert_fx(prepared)
        fx_s = best_of(lambda: fx(x))
        print(f"  torch FX int8: {fx_s:.3f} s ({fp32 / fx_s:.2f}x; {judged(reference, fx(photo).numpy())})")

    try:
        import onnxruntime
        from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static
        from onnxruntime.quantization.shape_inference import quant_pre_process
    except ImportError:
        onnxruntime = None
    if onnxruntime is None:
        print("  ONNX Runtime: not installed (pip install 'image-translator[onnx]')")
    elif hasattr(network, "branch_for"):
        print("  ONNX Runtime: skipped (a network of two is no ONNX file)")
    else:
        from translator.export import export

        class Reader(CalibrationDataReader):
            def __init__(self):
                self.items = iter([{"image": crop.numpy()} for crop in crops(photo)])

            def get_next(self):
                return next(self.items, None)

        with tempfile.TemporaryDirectory() as scratch:
            folder = Path(scratch)
            export(args.model, folder / "fp32.onnx")
            # ONNX Runtime's shape inference saves a model it could not finish into the working folder
            with contextlib.chdir(folder):
                quant_pre_process(str(folder / "fp32.onnx"), str(folder / "pre.onnx"), skip_symbolic_shape=True)
                quantize_static(str(folder / "pre.onnx"), str(folder / "int8.onnx"), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                                activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.MinMax)
            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads, options.inter_op_num_threads = args.threads, 1
            sessions = {name: onnxruntime.InferenceSession(str(folder / f"{name}.onnx"), options, providers=["CPUExecutionProvider"])
                        for name in ("fp32", "int8")}
            timed = {name: best_of(lambda s=session: s.run(None, {"image": x.numpy()})) for name, session in sessions.items()}
            quality = judged(sessions["fp32"].run(None, {"image": photo.numpy()})[0], sessions["int8"].run(None, {"image": photo.numpy()})[0])
            print(f"  ONNX Runtime fp32: {timed['fp32']:.3f} s; int8 QDQ: {timed['int8']:.3f} s "
                  f"({timed['fp32'] / timed['int8']:.2f}x its fp32, {fp32 / timed['int8']:.2f}x torch fp32; {quality})")

    openvino_routes(network, photo, x, reference, fp32, args)

    try:
        import torchao.quantization.pt2e.quantizer.x86_inductor_quantizer as x86
        from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
    except ImportError:
        print("  PT2E: torchao is not installed")
        return
    sides = {2: torch.export.Dim("height", min=16, max=4096), 3: torch.export.Dim("width", min=16, max=4096)}
    graph = torch.export.export(network, (x,), dynamic_shapes=(sides,)).module()
    quantizer = x86.X86InductorQuantizer().set_global(x86.get_default_x86_inductor_quantization_config())
    prepared = prepare_pt2e(graph, quantizer)
    with torch.no_grad():
        for crop in crops(photo):
            prepared(crop)
        compiled = torch.compile(convert_pt2e(prepared))
        compiled_fp32 = torch.compile(copy.deepcopy(network))
        int8, plain = best_of(lambda: compiled(x)), best_of(lambda: compiled_fp32(x))
        print(f"  PT2E int8, compiled: {int8:.3f} s; fp32 compiled {plain:.3f} s ({plain / int8:.2f}x; {judged(reference, compiled(photo).numpy())})")


if __name__ == "__main__":
    main()
