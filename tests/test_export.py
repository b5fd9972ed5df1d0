"""ONNX export: the file runs in ONNX Runtime at any size and gives what the engine gives."""

import numpy as np
import onnx
import onnxruntime
import pytest
import torch

from tests.helpers import photo
from tests.spandrel_cases import build
from translator import TranslatorError
from translator.checkpoints import load_checkpoint
from translator.cli import main
from translator.export import export
from translator.images import Picture
from translator.inference import Engine, Options


def onnx_result(path, rgb: np.ndarray) -> np.ndarray:
    """The exported file's result for an RGB uint8 image, in 8-bit levels."""
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = rgb.transpose(2, 0, 1)[None].astype(np.float32) / 255
    return np.round(session.run(None, {"image": x})[0][0].transpose(1, 2, 0) * 255)


def engine_result(checkpoint, rgb: np.ndarray) -> np.ndarray:
    engine = Engine(checkpoint, options=Options(device="cpu", precision="fp32"))
    return np.round(engine.translate(Picture(rgb.astype(np.float32) / 255)).rgb * 255)


@pytest.mark.parametrize("arch_id", ["Compact", "ESRGAN", "SPAN"])
def test_upscalers_export_and_match_the_engine_in_onnx_runtime(tmp_path, arch_id):
    torch.save(build(arch_id).state_dict(), tmp_path / "model.pth")
    line = export(tmp_path / "model.pth", tmp_path / "model.onnx")
    assert "ONNX Runtime matches PyTorch within" in line
    rgb = photo(29, 37)  # neither side the traced one
    expected = engine_result(load_checkpoint(tmp_path / "model.pth"), rgb)
    assert np.abs(onnx_result(tmp_path / "model.onnx", rgb) - expected).max() <= 1
    facts = {p.key: p.value for p in onnx.load(tmp_path / "model.onnx").metadata_props}
    assert facts["family"] == "esrgan" and facts["scale"] == "2" and facts["sizes"] == "input sides of any size"


def test_the_colouriser_exports_with_its_luma_and_value_range_inside(tmp_path, capsys):
    # the shipped colouriser: one gray channel in, a tanh generator's [-1, 1] out, sides of 128
    assert main(["export", "colourise", "-o", str(tmp_path / "colourise.onnx")]) == 0
    assert "input sides multiples of 128" in capsys.readouterr().out
    rgb = photo(128, 256)
    expected = engine_result(load_checkpoint("colourise"), rgb)
    assert np.abs(onnx_result(tmp_path / "colourise.onnx", rgb) - expected).max() <= 1


def test_networks_that_do_not_export_are_refused_in_one_line_and_nothing_is_written(tmp_path, capsys):
    torch.save(build("FFTformer").state_dict(), tmp_path / "fft.pth")
    with pytest.raises(TranslatorError, match=r"^FFTformer does not export to ONNX: UnsupportedOperatorError: .*fft_rfft2"):
        export(tmp_path / "fft.pth", tmp_path / "fft.onnx")
    assert not (tmp_path / "fft.onnx").exists()
    assert main(["export", str(tmp_path / "fft.pth"), "-o", str(tmp_path / "fft.onnx")]) == 1
    err = capsys.readouterr()
    assert len(err.err.strip().splitlines()) == 1 and not err.out


def test_the_app_exports_a_listed_checkpoint_for_download_within_its_quota(tmp_path, monkeypatch):
    from translator.app.service import Studio
    from translator.app.workspace import Workspace

    studio = Studio(Workspace(tmp_path / "home"), device="cpu")
    refs = {entry.ref for entry in studio.workspace.entries()}
    assert "compact-sr-x2-clean" in refs
    path, line = studio.export("compact-sr-x2-clean", "onnx")
    assert path.suffix == ".onnx" and path.is_relative_to(studio.results) and line.startswith(f"{path.name} (ONNX opset 17, esrgan srvgg x2")
    path, _ = studio.export("compact-sr-x2", "safetensors")
    assert load_checkpoint(path).arch.scale == 2
    # a result that would not fit the quota is refused, and nothing is left
    monkeypatch.setattr(Studio, "room", lambda self: 1000)
    with pytest.raises(TranslatorError, match="quota"):
        studio.export("compact-sr-x2-clean", "onnx")
    assert not list(studio.results.rglob("*.onnx.*"))
