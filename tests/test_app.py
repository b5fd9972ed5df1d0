"""The app's handlers, without a server: translation, the training job, the workspace, the forms."""

import dataclasses
import shutil
import time
from pathlib import Path

import cv2
import gradio as gr
import numpy as np
import pytest
from PIL import Image

from tests.helpers import ROOT, TINY_SR, photo
from tests.helpers import COMMIT, seed_cache
from translator import TranslatorError
from translator.checkpoints import load_checkpoint, save_checkpoint
from translator.family import Architecture, Family, Task
from translator.plugins import registry
from translator.app import Studio, build_app
from translator.app.page import _setting_inputs, user_errors
from translator.app.workspace import Workspace



@pytest.fixture
def studio(tmp_path):
    return Studio(Workspace(tmp_path / "home"), device="cpu")


def sr_dataset(root: Path, name: str = "photos", count: int = 4) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    for i in range(count):
        Image.fromarray(photo(64, 64, seed=i)).save(folder / f"{i}.png")
    return folder


def test_translation_keeps_16_bit_and_alpha(studio, tmp_path):
    rng = np.random.default_rng(1)
    pixels = rng.integers(0, 65536, (24, 20, 4), dtype=np.uint16)
    pixels[..., 3] = np.linspace(0, 65535, 20, dtype=np.uint16)[None, :]
    source = tmp_path / "deep.png"
    cv2.imwrite(str(source), pixels)  # BGRA order does not matter for this check

    result = studio.translate(str(source), "esrgan", "compact-sr-x2", None, None, {})

    out = cv2.imread(str(result.path), cv2.IMREAD_UNCHANGED)
    assert out.dtype == np.uint16 and out.shape == (48, 40, 4)
    # alpha is upscaled, not flattened: still a left-to-right ramp over the full range
    assert out[..., 3][:, 0].mean() < 3000 and out[..., 3][:, -1].mean() > 62000


def test_shipped_default_is_used_when_no_checkpoint_is_chosen(studio, tmp_path):
    source = tmp_path / "photo.png"
    Image.fromarray(photo(30, 40)).save(source)
    assert studio.default_checkpoint("esrgan") == "compact-sr-x4"
    with Image.open(studio.translate(str(source), "esrgan", "", None, None, {}).path) as image:
        assert image.size == (160, 120)
    with Image.open(studio.translate(str(source), "esrgan", "", 2.0, 16, {}).path) as image:
        assert image.size == (80, 60)  # outscale, through tiles
    # both shipped tasks are offered offline, the colouriser as pix2pix's default
    tasks = studio.tasks()
    assert list(tasks)[:3] == ["Upscale photos", "Upscale anime and illustrations", "Colourise a black-and-white photo (experimental)"]
    assert [value for label, value in tasks["Colourise a black-and-white photo (experimental)"] if label.endswith("(on disk)")] == ["colourise"]
    assert studio.default_checkpoint("pix2pix") == "colourise"
    with Image.open(studio.translate(str(source), "pix2pix", "", None, None, {}).path) as image:
        assert image.size == (40, 30) and image.mode == "RGB"


def test_the_default_model_is_loaded_while_the_server_starts(studio, tmp_path, monkeypatch):
    """`python app.py` warms the page's opening model in the background, so the first visitor
    does not wait for its file, its precision gate or its int8 form."""
    from translator.app import warm_default
    from translator.inference import Engine

    warm_default(studio).join(timeout=60)
    assert len(studio._engines) == 1
    monkeypatch.setattr(Engine, "__init__", lambda *args, **kwargs: pytest.fail("loaded again for the first visitor"))
    source = tmp_path / "photo.png"
    Image.fromarray(photo(30, 40)).save(source)
    assert "compact-sr-x4" in studio.translate(str(source), "esrgan", "", None, None, {}).describe()
    # a failure while warming is no failure of the server: the request says it, in one line
    monkeypatch.setattr(studio, "_engine_for", lambda *args: (_ for _ in ()).throw(TranslatorError("no such model")))
    warm_default(studio).join(timeout=60)


@pytest.mark.parametrize(
    "checkpoint, expected",
    [
        ("/etc/passwd", "unknown checkpoint '/etc/passwd' for esrgan: pick one from the list"),
        (str(ROOT / "checkpoints" / "compact-sr-x4.safetensors"), "unknown checkpoint"),
        ("hf://../../x/model.safetensors", "not a valid Hub reference"),
        ("hf://someone/missing/model.safetensors", "is not in the local cache"),
    ],
)
def test_checkpoints_are_checked_at_the_boundary(studio, tmp_path, checkpoint, expected):
    source = tmp_path / "photo.png"
    Image.fromarray(photo(16, 16)).save(source)
    with pytest.raises(TranslatorError) as caught:
        studio.translate(str(source), "esrgan", checkpoint, None, None, {})
    assert expected in str(caught.value) and "\n" not in str(caught.value)


def test_bad_images_and_settings_are_one_line_errors(studio, tmp_path):
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    with pytest.raises(TranslatorError, match="not an image"):
        studio.translate(str(text), "esrgan", "", None, None, {})
    source = tmp_path / "photo.png"
    Image.fromarray(photo(16, 16)).save(source)
    with pytest.raises(TranslatorError, match="outscale must be above 0"):
        studio.translate(str(source), "esrgan", "", -1, None, {})
    with pytest.raises(TranslatorError, match="must be one of eval, train"):
        studio.translate(str(source), "pix2pix", "hf://a/b/c.pth", None, None, {"sampling": "maybe"})
    with pytest.raises(TranslatorError, match="cyclegan ships no default model"):
        studio.translate(str(source), "cyclegan", "", None, None, {})
    with pytest.raises(TranslatorError, match="add an image first"):
        studio.translate(None, "esrgan", "", None, None, {})


def test_handler_errors_become_one_readable_line():
    @user_errors
    def refuses():
        raise TranslatorError("that file is not an image")

    @user_errors
    def breaks():
        return {}["missing"]

    with pytest.raises(gr.Error) as caught:
        refuses()
    assert caught.value.message == "that file is not an image"
    with pytest.raises(gr.Error) as caught:
        breaks()
    assert caught.value.message == "unexpected KeyError: 'missing'"

    @user_errors
    def folds():
        raise TranslatorError("training data: 12.png\n  is truncated\n" + "x" * 10_000)

    with pytest.raises(gr.Error) as caught:
        folds()
    assert caught.value.message.startswith("training data: 12.png is truncated x") and len(caught.value.message) == 500

    # sources and hashes fold away under the line on the page; a program gets them after it
    def sources():
        raise TranslatorError("could not fetch style_monet (45 MB) from any of its 2 sources",
                              "hf://a/b@0123: timed out; http://x/y.pth: refused <html>")

    with pytest.raises(gr.Error) as caught:
        user_errors(sources)()
    assert caught.value.message == ("could not fetch style_monet (45 MB) from any of its 2 sources<details><summary>details</summary>"
                                    "hf://a/b@0123: timed out; http://x/y.pth: refused &lt;html&gt;</details>")
    with pytest.raises(gr.Error) as caught:
        user_errors(sources, page=False)()
    assert caught.value.message.endswith("sources (details: hf://a/b@0123: timed out; http://x/y.pth: refused <html>)")


@pytest.mark.parametrize("family", sorted(registry().families))
def test_forms_are_generated_from_each_familys_settings(family):
    settings = registry().families[family].Settings
    with gr.Blocks():
        made = dict((field.name, component) for field, component in _setting_inputs(settings, {}))
    for field in dataclasses.fields(settings):
        component = made[field.name]
        assert component.label == field.name and component.info == field.metadata["help"]
        if field.metadata["choices"]:
            assert isinstance(component, gr.Dropdown) and [c[1] for c in component.choices] == list(field.metadata["choices"])
        elif isinstance(field.default, bool):
            assert isinstance(component, gr.Checkbox) and component.value is field.default
        elif isinstance(field.default, (int, float)):
            assert isinstance(component, gr.Number) and component.value == field.default
            assert component.minimum == field.metadata["low"] and component.maximum == field.metadata["high"]


def test_the_train_form_offers_the_checkpoint_picker_for_a_setting_that_names_one_and_hides_file_paths(studio):
    demo = build_app(studio)
    pickers = [b for b in demo.blocks.values() if isinstance(b, gr.Dropdown) and b.label == "checkpoint_b"]
    assert len(pickers) == 1 and pickers[0].choices[0] == ("none", "")
    assert {ref for _, ref in pickers[0].choices[1:]} == {ref for _, ref in studio.checkpoint_choices("cyclegan")}
    assert not [b for b in demo.blocks.values() if getattr(b, "label", None) == "vgg_weights"]


class Negative(Family):
    name = "negative"
    task = Task.PAIRED
    description = "inverts colours (a family registered only by this test)"
    architectures = ("flip",)

    def recognise(self, state):
        return Architecture("flip") if set(state) == {"bias"} else None

    def build(self, arch):
        import torch

        class Flip(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.bias = torch.nn.Parameter(torch.ones(1))

            def forward(self, x):
                return self.bias - x

        return Flip()


def test_a_newly_registered_family_appears_in_the_app(tmp_path):
    from translator.plugins import Registry

    reg = Registry()
    reg.families["negative"] = Negative()
    studio = Studio(Workspace(tmp_path), reg, device="cpu")
    demo = build_app(studio)
    dropdowns = [b for b in demo.blocks.values() if isinstance(b, gr.Dropdown) and b.label == "Model family"]
    assert dropdowns and all("negative" in [c[1] for c in d.choices] for d in dropdowns)

    weights = save_checkpoint(studio.workspace.checkpoints / "negative.safetensors", reg.families["negative"], Architecture("flip"), {"bias": __import__("torch").ones(1)})
    source = tmp_path / "photo.png"
    Image.fromarray(photo(8, 8)).save(source)
    result = studio.translate(str(source), "negative", str(weights), None, None, {})
    assert np.abs(np.asarray(Image.open(result.path)).astype(int) - (255 - photo(8, 8).astype(int))).max() <= 1


def test_workspace_lists_uploads_pulls_and_runs_and_deletes_them(studio, tmp_path, monkeypatch):
    ws = studio.workspace
    upload = tmp_path / "my-upscaler.pth"
    import torch

    torch.save(load_checkpoint(ROOT / "checkpoints" / "compact-sr-x2.safetensors").module.state_dict(), upload)
    assert studio.upload_checkpoint(str(upload)).startswith("my-upscaler (esrgan srvgg x2")
    with pytest.raises(TranslatorError, match="already uploaded"):
        studio.upload_checkpoint(str(upload))
    # named like the shipped model, it gets a name of its own, and the pickers tell the two apart
    shipped_name = tmp_path / "compact-sr-x4.pth"
    shutil.copy(upload, shipped_name)
    assert studio.upload_checkpoint(str(shipped_name)).startswith("compact-sr-x4-uploaded (esrgan")
    labels = [label for label, _ in studio.checkpoint_choices("esrgan")]
    assert "compact-sr-x4-uploaded (uploaded)" in labels and len(labels) == len(set(labels))
    studio.delete(next(ref for label, ref in studio.checkpoint_choices("esrgan") if label == "compact-sr-x4-uploaded (uploaded)"))

    cache = tmp_path / "hf"
    data = (ROOT / "checkpoints" / "compact-sr-x2.safetensors").read_bytes()
    seed_cache(cache, "someone/upscaler", "x2.safetensors", data)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(cache))

    kinds = {e.kind: e for e in ws.entries("esrgan", hashes=True)}
    assert set(kinds) == {"shipped", "uploaded", "pulled", "catalog"}
    pulled = kinds["pulled"]
    assert pulled.ref == f"hf://someone/upscaler@{COMMIT}/x2.safetensors" and pulled.family == "esrgan"
    assert pulled.sha256 == __import__("hashlib").sha256(data).hexdigest()
    # own-format files name their family: pix2pix is offered its catalog models and its shipped colouriser
    assert {e.kind for e in ws.entries("pix2pix")} == {"catalog", "shipped"}

    for kind in ("uploaded", "pulled"):
        ws.delete(kinds[kind].ref)
    assert {e.kind for e in ws.entries()} == {"shipped", "catalog"}
    with pytest.raises(TranslatorError, match="cannot be deleted here"):
        ws.delete("compact-sr-x4")


def test_names_from_the_page_stay_inside_the_workspace(studio):
    for name in ("../escape", "/etc", ".hidden", "a/b", ""):
        with pytest.raises(TranslatorError, match="must be letters, digits"):
            studio.workspace.run(name)
        with pytest.raises(TranslatorError):
            studio.workspace.dataset(name)


def test_training_runs_in_the_background_one_at_a_time_and_resumes(studio):
    sr_dataset(studio.workspace.datasets)
    settings = {**TINY_SR, "steps": "400"}
    studio.start_training("esrgan", "photos", "first", "", settings)
    with pytest.raises(TranslatorError, match="already going \\(first\\); stop it first"):
        studio.start_training("esrgan", "photos", "second", "", settings)
    deadline = time.time() + 60
    while studio.job.snapshot()["step"] < 3 and time.time() < deadline:
        time.sleep(0.05)
    studio.job.stop()
    studio.job.wait(60)
    snapshot = studio.job.snapshot()
    assert snapshot["status"] == "stopped" and 3 <= snapshot["step"] < 400
    assert snapshot["data"] == "4 training samples" and snapshot["sample"].endswith(".png")
    assert (studio.workspace.run("first") / "resume.pt").is_file()
    assert any(e.ref.endswith("first/generator.safetensors") for e in studio.workspace.entries("esrgan"))

    stopped_at = snapshot["step"]
    studio.resume_training("first", stopped_at + 2)
    studio.job.wait(60)
    snapshot = studio.job.snapshot()
    assert snapshot["status"] == "done" and snapshot["step"] == stopped_at + 2


def test_a_run_that_cannot_start_says_why_at_once(studio):
    (studio.workspace.datasets / "empty").mkdir()
    with pytest.raises(TranslatorError, match="no usable training images in .*empty"):
        studio.start_training("esrgan", "empty", "", "", TINY_SR)
    assert studio.job.snapshot()["status"] == "failed"
    with pytest.raises(TranslatorError, match="unknown setting 'stepz'"):
        studio.start_training("esrgan", "empty", "", "", {"stepz": "3"})
    with pytest.raises(TranslatorError, match="no dataset named 'missing'"):
        studio.start_training("esrgan", "missing", "", "", {})


def test_on_a_zerogpu_space_only_the_device_work_asks_for_the_gpu(monkeypatch):
    import importlib.util
    import sys
    import types

    import translator.app.service as service

    # a stand-in for the `spaces` package ZeroGPU lends: GPU marks what it wraps
    spaces = types.ModuleType("spaces")
    spaces.GPU = lambda fn: setattr(fn, "zero_gpu", True) or fn
    monkeypatch.setitem(sys.modules, "spaces", spaces)
    # a second copy of the service module, imported as a Space would with `spaces` installed
    spec = importlib.util.spec_from_file_location("translator.app.service_on_zerogpu", service.__file__)
    on_zerogpu = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, on_zerogpu)
    spec.loader.exec_module(on_zerogpu)
    assert getattr(on_zerogpu._run_engine, "zero_gpu", False) and not getattr(on_zerogpu.Studio.translate, "zero_gpu", False)
    assert not getattr(service._run_engine, "zero_gpu", False)  # without the package, nothing is wrapped


def test_plugins_tab_lists_versions_families_and_failures(tmp_path):
    from translator.plugins import Registry

    reg = Registry(builtins=("translator.default_plugins.esrgan", "translator.default_plugins.not_installed"), entry_points=False)
    demo = build_app(Studio(Workspace(tmp_path), reg, device="cpu"))
    tables = {b.label: b.value for b in demo.blocks.values() if isinstance(b, gr.Dataframe)}
    loaded = tables["Loaded plugins"]
    assert loaded["headers"] == ["plugin", "version", "kind", "families"] and loaded["data"][0][0] == "translator.default_plugins.esrgan"
    assert loaded["data"][0][3] == "esrgan"
    failed = tables["Plugins that failed to load (1)"]["data"]
    assert failed[0][0] == "translator.default_plugins.not_installed" and "No module named 'translator.default_plugins.not_installed'" in failed[0][1]


def test_previews_of_a_large_result_come_from_its_pixels_in_memory(studio, tmp_path, monkeypatch):
    # the limits scaled down with the image, so that a small result counts as large
    monkeypatch.setattr("translator.inference.AUTO_TILE_OUTPUT_PIXELS", 200_000)
    monkeypatch.setattr("translator.app.service.PREVIEW_PIXELS", 100_000)
    source = tmp_path / "large.png"
    Image.fromarray(photo(330, 300)).save(source)  # x2: 0.4 MP, "large", assembled in half precision
    done = studio.translate(str(source), "esrgan", "compact-sr-x2", None, None, {})
    before, after = done.previews()
    assert done.result.rgb.dtype == np.float16
    # shrunk to the preview budget, the written PNG seen the same way
    assert before.shape == after.shape and after.shape[0] * after.shape[1] < 100_300 and after.dtype == np.uint8
    written = cv2.cvtColor(cv2.imread(str(done.path)), cv2.COLOR_BGR2RGB)
    expected = cv2.resize(written, (after.shape[1], after.shape[0]), interpolation=cv2.INTER_AREA)
    assert np.abs(expected.astype(int) - after.astype(int)).mean() < 1.0
    # and at 100%: the centre of the written result pixel for pixel, beside bicubic of the same part
    before, after = done.at_full_size(side=200)
    assert before.shape == after.shape == (200, 200, 3)
    top, left = (done.result.height - 200) // 2, (done.result.width - 200) // 2
    assert np.abs(written[top : top + 200, left : left + 200].astype(int) - after.astype(int)).max() <= 1
    source_part = np.asarray(Image.open(source))[top // 2 : top // 2 + 100, left // 2 : left // 2 + 100].astype(np.float32)
    bicubic = cv2.resize(source_part, (200, 200), interpolation=cv2.INTER_CUBIC)
    assert np.abs(np.clip(bicubic, 0, 255) - before.astype(float)).mean() < 1.5


def test_stop_never_overwrites_a_final_status():
    """A Stop that arrives while a finished run's thread is still tidying up leaves its final
    status, instead of a "stopping" that would never end."""
    import threading

    from translator.app.jobs import TrainingJob

    job = TrainingJob()
    tidying = threading.Event()
    job._thread = threading.Thread(target=tidying.wait, daemon=True)
    job._thread.start()
    try:
        for final in ("done", "failed", "stopped"):
            job.status = final
            assert job.stop() == final and job.status == final
        job.status = "running"
        assert job.stop() == "stopping"
    finally:
        tidying.set()


def test_the_model_box_says_custom_when_a_checkpoint_is_picked_by_hand(studio, tmp_path):
    """Pick a trained run under "Any family and checkpoint": the Model box says which, instead of
    still naming the catalog model the page opened with."""
    run = studio.workspace.run("my-first-upscaler")
    run.mkdir(parents=True)
    shutil.copy(ROOT / "checkpoints" / "compact-sr-x2.safetensors", run / "generator.safetensors")
    demo = build_app(studio)
    chosen = next(f for f in demo.fns.values() if getattr(f.fn, "__name__", "") == "checkpoint_chosen").fn
    ref = next(ref for label, ref in studio.checkpoint_choices("esrgan") if label == "run my-first-upscaler")
    box, button = chosen(ref, "Upscale photos", "esrgan")
    assert box.value == ref and ("custom: run my-first-upscaler", ref) in [tuple(c) for c in box.choices]
    assert button.value == "Translate"  # no catalog entry says what work it does
    assert chosen("compact-sr-x2", "Upscale photos", "esrgan")[0].value == "compact-sr-x2"  # a catalog model is itself


def test_the_status_gives_the_measured_time_per_step_once_there_is_one():
    from translator.app.jobs import TrainingJob
    from translator.app.page import _status_text

    snapshot = {**TrainingJob().snapshot(), "status": "running", "run": "r", "family": "esrgan", "step": 40, "steps": 100,
                "estimate": "about 12 MB of 24 GB free and 0.31 s per step"}
    assert "estimated: about 12 MB of 24 GB free and 0.31 s per step" in _status_text(snapshot)
    measured = _status_text({**snapshot, "images_per_s": 80.0, "seconds_per_step": 0.05})
    assert "80.0 images/s, 0.05 s per step" in measured and "admitted with: about 12 MB" in measured


def test_each_client_has_at_most_its_share_of_the_line():
    import threading

    from translator.app.service import Turns

    turns = Turns(running=1, per_client=2)
    release, entered = threading.Event(), []

    def work(client):
        with turns.turn(client):
            entered.append(client)
            release.wait(10)

    first = threading.Thread(target=work, args=("a",))
    first.start()
    while not entered:
        time.sleep(0.01)
    waiting = [threading.Thread(target=work, args=(c,)) for c in ("a", "b")]
    for thread in waiting:
        thread.start()
    time.sleep(0.2)
    # a third from the same client is told at once; the other client waits its turn like any other
    with pytest.raises(TranslatorError, match="already have 2 translations waiting or running"):
        with turns.turn("a"):
            pass
    assert entered == ["a"]
    release.set()
    for thread in [first, *waiting]:
        thread.join(10)
    assert sorted(entered) == ["a", "a", "b"]
    assert turns.held("a") == turns.held("b") == 0  # all given back


def test_a_run_stops_at_the_quota_with_a_one_line_error_and_no_partial_file(studio, tmp_path):
    from translator.app.workspace import folder_bytes

    sr_dataset(studio.workspace.datasets)
    studio.results = tmp_path / "results"
    # room for the dataset and a little more, not for a checkpoint and the run's resume state
    studio.quota = folder_bytes(studio.workspace.datasets) + 20_000
    studio.start_training("esrgan", "photos", "full", "", {**TINY_SR, "steps": "4", "checkpoint_every": "2", "sample_every": "0"})
    studio.job.wait(60)
    snapshot = studio.job.snapshot()
    assert snapshot["status"] == "failed"
    assert "storage quota has" in snapshot["error"] and "TRANSLATOR_QUOTA" in snapshot["error"] and "\n" not in snapshot["error"]
    assert studio.room() >= 0 and not list(studio.workspace.run("full").glob(".*.tmp*"))



def test_the_checkpoints_table_lists_the_users_own_first_then_what_is_on_disk(studio):
    from translator.app.page import _checkpoint_rows

    run = studio.workspace.run("mine")
    run.mkdir(parents=True)
    shutil.copy(ROOT / "checkpoints" / "compact-sr-x2.safetensors", run / "generator.safetensors")
    rows = _checkpoint_rows(studio.workspace)
    kinds, places = [row[2] for row in rows], [row[3] for row in rows]
    assert kinds[0] == "run" and rows[0][0] == "run mine" and kinds.index("shipped") > 0
    assert places == sorted(places, key=lambda place: place != "on disk")  # on disk first
    assert all(len(row[0]) < 60 for row in rows)  # short names; the rest on selection


def test_the_service_runs_without_loading_gradio():
    """A program (or another front end) driving Studio needs none of the page's libraries; a
    fresh process, since this one has loaded gradio already."""
    import subprocess
    import sys

    code = "import sys; from translator.app import Studio; from translator.app.service import Studio; print('gradio' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "False"


def test_the_loss_curves_can_be_smoothed(tmp_path):
    from translator.app.page import _loss_table
    from translator.events import Step, Validation
    from translator.runs import append_metrics

    for step, loss in enumerate([1.0, 0.0, 1.0, 0.0], start=1):
        append_metrics(tmp_path, Step(step, losses={"pixel": loss}))
    append_metrics(tmp_path, Validation(4, scores={"fid": 12.5}))
    raw, smooth = _loss_table(tmp_path), _loss_table(tmp_path, 0.5)
    assert list(raw["value"]) == [1.0, 0.0, 1.0, 0.0, 12.5]
    # each point half the last average, half its own loss; the FID is not a loss and is not smoothed
    assert list(smooth["value"]) == [1.0, 0.5, 0.75, 0.375, 12.5]
