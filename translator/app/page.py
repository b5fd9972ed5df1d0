"""The Gradio page: Translate, Train, Checkpoints and Plugins tabs, and the named API endpoints,
over the ``Studio`` service.

Every form is generated from the registry (families, their settings and defaults), so an
installed plugin shows up here with no change. Handlers only adapt widgets to the service, and
a ``TranslatorError`` reaches the page as one readable line.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import logging
import os
import threading
import types
import typing
from importlib.resources import files
from pathlib import Path

import gradio as gr
from gradio import FileData

from .. import catalog, events, units
from ..errors import TranslatorError, shown
from ..family import Family
from ..hub import reading_as, visitor_read_token
from ..images import QUALITY
from ..runs import read_metrics
from ..training import TrainConfig
from .service import Studio
from .workspace import Workspace

log = logging.getLogger(__name__)

# Requests waiting beyond this many are told the queue is full instead of piling up.
QUEUE_SIZE = int(os.environ.get("TRANSLATOR_QUEUE_SIZE", "8"))
# Translations reach their handler at once and wait in the service (``Studio.turns``), where
# each client's waiting work is counted; gradio's own queue cannot say whose a request is.
TRANSLATIONS = {"concurrency_id": "translate", "concurrency_limit": QUEUE_SIZE}


def client_of(request: gr.Request | None) -> str:
    """Who is asking, as far as the server can tell: on a Space the visitor's address its proxy
    forwards (the connection is the proxy's), elsewhere the connection's own."""
    from gradio.utils import get_space

    if request is None:
        return ""
    forwarded = request.headers.get("x-forwarded-for", "") if get_space() else ""
    return forwarded.split(",")[0].strip() or getattr(request.client, "host", "") or ""


def signs_in() -> bool:
    """Whether visitors can sign in with Hugging Face: on a Space, as gradio tells one, with
    OAuth turned on (``hf_oauth`` in its front matter). Elsewhere gradio's sign-in would stand
    in the server's own login for every visitor."""
    from gradio import oauth
    from gradio.utils import get_space

    return get_space() is not None and oauth.OAUTH_CLIENT_ID is not None


def api_endpoint(fn):
    """An API endpoint: arguments of the wrong type (a client may send anything) are one line
    naming the parameter, before the handler runs; then errors as ``user_errors`` makes them."""
    hints = typing.get_type_hints(fn)
    signature = inspect.signature(fn)

    @functools.wraps(fn)
    def checked(*args, **kwargs):
        for name, value in signature.bind_partial(*args, **kwargs).arguments.items():
            _check_type(name, value, hints.get(name))
        return fn(*args, **kwargs)

    return user_errors(checked, page=False)


def _check_type(name: str, value, hint) -> None:
    union = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else ()
    if value is None and type(None) in union:
        return
    kind = next((k for k in union if k is not type(None)), hint)
    kind = typing.get_origin(kind) or kind
    if kind is FileData:
        return  # _uploaded checks what a file argument names
    if kind is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    elif kind is int:
        ok = isinstance(value, int) and not isinstance(value, bool) or (isinstance(value, float) and value.is_integer())
    elif kind is dict:
        ok = isinstance(value, dict) and all(isinstance(k, str) and (v is None or isinstance(v, (str, int, float, bool))) for k, v in value.items())
    else:
        ok = isinstance(value, kind)
    if not ok:
        what = {float: "a number", int: "a whole number", dict: "an object of names to plain values", str: "text", bool: "true or false"}.get(kind, kind.__name__)
        raise TranslatorError(f"{name} must be {what}, got {type(value).__name__}")


def user_errors(fn, page: bool = True):
    """Turn errors into one line on the page (``page``) or for an API client; the server keeps
    serving."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            # every request may be a stranger's: the server's own Hub token reads for nobody
            with reading_as(visitor_read_token()):
                return fn(*args, **kwargs)
        except gr.Error:
            raise
        # the toast stays until it is closed: a message gone after ten seconds may go unread
        except TranslatorError as error:
            raise gr.Error(_message(error, page), duration=None, print_exception=False) from None
        except Exception as error:  # a bug; the log keeps the traceback
            log.exception("handler %s failed", fn.__name__)
            raise gr.Error(_message(error, page), duration=None, print_exception=False) from None

    return wrapper


# the most of an error's details a page or client is sent
DETAILS_LIMIT = 2000


def _message(error: BaseException, page: bool) -> str:
    """The one line, and the details where there are any: on the page folded away under the
    line (a toast shows HTML, so the text is escaped), for a program after it in brackets."""
    import html

    text = shown(error)
    details = " ".join(getattr(error, "details", "").split())[:DETAILS_LIMIT]
    if not page:
        return f"{text} (details: {details})" if details else text
    folded = f"<details><summary>details</summary>{html.escape(details, quote=False)}</details>" if details else ""
    return html.escape(text, quote=False) + folded


# ---- the page ----


def opening_family(studio: Studio, families: list[Family]) -> Family:
    """The family the page opens on: the one whose shipped model the catalog lists first (its
    first task, "Upscale photos"), else the first installed."""
    names = [entry.name for entry in catalog.entries()]
    shipped = [f for f in families if studio.default_checkpoint(f.name) in names]
    return min(shipped, key=lambda f: names.index(studio.default_checkpoint(f.name))) if shipped else families[0]


def warm_default(studio: Studio):
    """The default model of the family the page opens on, loaded in the background
    (``Studio.warm``); returns the thread."""
    return studio.warm(opening_family(studio, list(studio.registry.families.values())).name)


def build_app(studio: Studio | None = None) -> gr.Blocks:
    studio = studio or Studio()
    families = list(studio.registry.families.values())
    if not families:
        raise TranslatorError("no model families are installed; see `translator models`")
    first = opening_family(studio, families)

    with gr.Blocks(title="Image translator", delete_cache=(1800, 3600)) as demo:
        gr.Markdown("# Image translator\nStyle transfer, domain translation and super-resolution: pix2pix, CycleGAN, ESRGAN and every installed plugin.")
        with gr.Tabs() as tabs:
            with gr.Tab("Translate", id="translate"):
                translate_picker = _translate_tab(studio, families, first)
            with gr.Tab("Train", id="train"):
                _train_tab(studio, families, first, translate_picker, demo, tabs)
            with gr.Tab("Checkpoints", id="checkpoints"):
                _checkpoints_tab(studio)
            with gr.Tab("Plugins", id="plugins"):
                _plugins_tab(studio)
        _api(studio, first)
    demo.queue(max_size=QUEUE_SIZE, default_concurrency_limit=1)
    return demo


# a result's file name wraps instead of being cut short on a phone (gradio cuts it with an
# ellipsis); on a phone the tabs' padding narrows so all four fit in a row (gradio folds tabs that
# do not fit into a "..." menu, where nobody finds Checkpoints)
CSS = (
    ".filename { display: block; overflow-wrap: anywhere; } .filename .stem { white-space: normal; } "
    "@media (max-width: 480px) { .tab-container button { padding: 0 8px !important; } }"
)


def launch_options() -> dict:
    """Arguments of ``launch``: the upload limit (bigger uploads are refused before any handler
    runs), a bound on the sessions gradio remembers (its default of 10,000 grew the server by
    about 0.25 MB a session), and no ``allowed_paths``, so nothing beyond gradio's own cache is
    ever served."""
    return {
        "max_file_size": os.environ.get("TRANSLATOR_MAX_UPLOAD", "500mb"),
        "state_session_capacity": int(os.environ.get("TRANSLATOR_SESSIONS", "200")),
        "show_error": True,
        "footer_links": ["api", "gradio"],
        "css": CSS,
    }


def _translate_tab(studio: Studio, families: list[Family], first: Family) -> tuple[gr.Dropdown, gr.Dropdown]:
    """The tab; returns its family and checkpoint pickers, which other tabs refresh."""
    with gr.Row():
        with gr.Column():
            image = gr.Image(label="Image", type="filepath", image_mode=None, sources=["upload", "clipboard", "webcam"], format="png", height=320)
            default = studio.default_checkpoint(first.name)
            # the first choice is what to do; the family and checkpoint follow from the model chosen
            tasks = studio.tasks()
            start = next((group for group, models in tasks.items() if any(name == default for _, name in models)), next(iter(tasks), None))
            task = gr.Dropdown(list(tasks), value=start, label="What to do", visible=bool(tasks))
            chosen = default if start and any(n == default for _, n in tasks[start]) else None
            model = gr.Dropdown(tasks.get(start, []), value=chosen, label="Model", info=_model_info(chosen), visible=bool(tasks))
            # named for the work (_action); above the accordions, so that on a phone it is on the first screen
            run = gr.Button(_action(default), variant="primary")
            with gr.Accordion("Any family and checkpoint (hf://, uploads, trained runs)", open=not tasks):
                family = gr.Dropdown([f.name for f in families], value=first.name, label="Model family", info=first.description)
                checkpoint = gr.Dropdown(
                    studio.checkpoint_choices(first.name), value=default, label="Checkpoint", info=_checkpoint_info(first, default), allow_custom_value=True,
                )
            with gr.Accordion("Options", open=False):
                outscale = gr.Number(0, label="outscale", info="final size relative to the input (0: the network's scale)", minimum=0, maximum=16)
                tile = gr.Number(0, label="tile", info="tile side in input pixels for large images (0: automatic)", precision=0, minimum=0)
                with gr.Row():
                    kind = gr.Radio([("PNG (lossless)", "png"), ("WebP", "webp"), ("JPEG", "jpg")], value="png", label="Result format")
                    quality = gr.Slider(1, 100, value=QUALITY, step=1, label="quality", info="WebP and JPEG; WebP at 100 is lossless")
                groups, options = [], SettingsForm()
                has_options = {}
                for fam in families:
                    with gr.Group(visible=False) as group:
                        made = options.add(fam.name, _setting_inputs(fam.Settings, {}, keep=lambda f: f.metadata.get("translate"), prefix=fam.name))
                    # an empty group would still draw a bar
                    has_options[fam.name] = made > 0
                    group.visible = fam is first and made > 0
                    groups.append(group)
            with gr.Accordion("Several images", open=False):
                batch = gr.File(label="Images", file_count="multiple", file_types=["image"])
                run_batch = gr.Button("Translate all")
                gallery = gr.Gallery(label="Results", format="png", columns=4)
                results = gr.File(label="Downloads (all in one .zip first)", file_count="multiple", interactive=False)
                batch_info = gr.Markdown(elem_id="batch-result")
            with gr.Accordion("Video", open=False):
                clip = gr.Video(label="Video (.mp4, .mkv, .mov, .webm); its audio is kept as it is", sources=["upload"], format=None)
                with gr.Row():
                    run_video = gr.Button("Translate video", scale=3)
                    stop_video = gr.Button("Stop", variant="stop", scale=1)
                clip_result = gr.Video(label="Result (H.264 .mp4)", format=None, interactive=False)
                clip_info = gr.Markdown()
        with gr.Column(elem_id="translation-result"):
            # previews near screen size, lossy: the lossless PNG goes only to the download
            slider = gr.ImageSlider(label="Before / after", type="numpy", format="webp", interactive=False)
            # shrunk to fit, every upscale looks sharp: the centre at 100% shows what it really did
            full_size = gr.ImageSlider(label="The centre, pixel for pixel, beside bicubic", type="numpy", format="webp", interactive=False)
            result = gr.File(label="Result (full size)", interactive=False)
            info = gr.Markdown()
    # the example photo ships inside this package
    examples = sorted(str(p) for p in Path(str(files(__package__))).glob("*.png"))
    if examples:
        gr.Examples(examples, inputs=[image])

    def options_of(family_name: str, values) -> dict:
        return options.values(values, family_name)

    # in the form, 0 (the fields' default) means automatic for both
    @user_errors
    # gradio hands the request to a parameter typed gr.Request; first, as *values must come last
    def translate_clicked(request: gr.Request, image_path, family_name, checkpoint_ref, outscale_value, tile_value, kind_value, quality_value, *values,
                          progress=gr.Progress(track_tqdm=True)):
        def report(done: int, total: int) -> None:
            progress((done, total), desc="translating", unit="tiles")

        with studio.turns.turn(client_of(request)):
            done = studio.translate(image_path, family_name, checkpoint_ref, outscale_value or None, tile_value or None, options_of(family_name, values), report,
                                    kind_value, quality_value)
        return done.describe(), str(done.path), done.previews(), done.at_full_size()

    @user_errors
    def batch_clicked(request: gr.Request, files, family_name, checkpoint_ref, outscale_value, tile_value, kind_value, quality_value, *values,
                      progress=gr.Progress(track_tqdm=True)):
        if not files:
            raise TranslatorError("add images first")
        done, failed = [], []
        with studio.turns.turn(client_of(request)):  # a batch is one job: it holds one turn throughout
            for file in progress.tqdm(files, desc="images"):
                try:
                    done.append(studio.translate(file, family_name, checkpoint_ref, outscale_value or None, tile_value or None, options_of(family_name, values),
                                                 None, kind_value, quality_value).path)
                except TranslatorError as error:
                    failed.append(f"{Path(file).name}: {error}")
        if not done:
            raise TranslatorError("; ".join(failed))
        note = f"{len(done)} translated" + (f"; skipped {len(failed)}: " + "; ".join(failed) if failed else "")
        # every result in one download first, then each on its own
        return note, [str(p) for p in done], [str(studio.zip_results(done))] + [str(p) for p in done]

    # each client's running video, stopped between frames when it asks
    stops: dict[str, threading.Event] = {}

    @user_errors
    def video_clicked(request: gr.Request, path, family_name, checkpoint_ref, *values, progress=gr.Progress()):
        client = client_of(request)
        stop = stops[client] = threading.Event()

        def report(done: int, total: int) -> None:
            if stop.is_set():
                raise TranslatorError(f"stopped after {done} of {total} frames; nothing was kept")
            progress((done, total), desc="translating", unit="frames")

        try:
            with studio.turns.turn(client):  # a video is one job: it holds one turn throughout
                made, line = studio.translate_video(path, family_name, checkpoint_ref, options_of(family_name, values), report)
        finally:
            stops.pop(client, None)
        return str(made), line

    def video_stopped(request: gr.Request):
        if (stop := stops.get(client_of(request))) is not None:
            stop.set()

    inputs = [image, family, checkpoint, outscale, tile, kind, quality, *options.components]
    # the form's generated inputs make a poor API; the named endpoints are in _api
    # the page scrolls to the result when it is there: on a phone it is a screen or two below
    run.click(translate_clicked, inputs, [info, result, slider, full_size], api_visibility="private", **TRANSLATIONS).success(
        None, js=_scroll_to("translation-result"), api_visibility="private", queue=False)
    run_video.click(video_clicked, [clip, family, checkpoint, *options.components], [clip_result, clip_info], api_visibility="private", **TRANSLATIONS)
    stop_video.click(video_stopped, None, None, api_visibility="private", queue=False)
    run_batch.click(batch_clicked, [batch, *inputs[1:]], [batch_info, gallery, results], api_visibility="private", **TRANSLATIONS).success(
        None, js=_scroll_to("batch-result"), api_visibility="private", queue=False)

    def switch(family_name):
        fam = studio.registry.family(family_name)
        default = studio.default_checkpoint(family_name)
        picker = gr.Dropdown(choices=studio.checkpoint_choices(family_name), value=default, info=_checkpoint_info(fam, default))
        return [gr.Dropdown(info=fam.description), picker, gr.Button(_action(default))] + [
            gr.Group(visible=f.name == family_name and has_options[f.name]) for f in families]

    # .input, not .change: choosing a model sets the family too, and must not reset its checkpoint
    family.input(switch, family, [family, checkpoint, run, *groups], api_visibility="private", queue=False)

    def task_chosen(group):
        models = studio.tasks().get(group, [])
        return gr.Dropdown(choices=models, value=models[0][1] if models else None)

    def model_chosen(name):
        entry = catalog.find(name) if name else None
        if entry is None:
            return [gr.Dropdown(info=_model_info(name))] + [gr.update()] * (3 + len(groups))
        fam = studio.registry.family(entry.family)
        picker = gr.Dropdown(choices=studio.checkpoint_choices(fam.name), value=entry.name, info=_checkpoint_info(fam, entry.name))
        return [gr.Dropdown(info=_model_info(name)), gr.Dropdown(value=fam.name, info=fam.description), picker, gr.Button(_action(entry.name))] + [
            gr.Group(visible=f.name == fam.name and has_options[f.name]) for f in families]

    def checkpoint_chosen(ref, group, family_name):
        """The Model box agrees with a checkpoint picked under "Any family and checkpoint": the
        catalog model it is, or "custom: ..." beside the task's models."""
        models = studio.tasks().get(group, [])
        if any(name == ref for _, name in models) or not ref:
            return gr.Dropdown(choices=models, value=ref or None), gr.update()
        label = next((label for label, value in studio.checkpoint_choices(family_name) if value == ref), ref)
        return gr.Dropdown(choices=models + [(f"custom: {label}", ref)], value=ref), gr.Button(_action(ref))

    task.input(task_chosen, task, model, api_visibility="private", queue=False)
    model.change(model_chosen, model, [model, family, checkpoint, run, *groups], api_visibility="private", queue=False)
    checkpoint.input(checkpoint_chosen, [checkpoint, task, family], [model, run], api_visibility="private", queue=False)
    return family, checkpoint


def _model_info(name: str | None) -> str:
    """What the Model picker says below it: the chosen catalog model's whole description."""
    entry = catalog.find(name) if name else None
    if entry is not None:
        return entry.description
    if name:
        return "chosen under \"Any family and checkpoint\""
    return "from the catalog; one that is not on disk downloads on first use"


def _action(ref: str | None) -> str:
    """What the Translate button says for a checkpoint: its catalog entry's work ("Upscale x4"),
    or "Translate" for one of no entry."""
    entry = catalog.find(ref) if ref else None
    return entry.action if entry else "Translate"


def _scroll_to(elem_id: str) -> str:
    """Browser code that brings the top of the element into view once the page has drawn what
    just arrived, when it is not in the upper part of the screen already (on a phone it is a
    screen or two below; gradio's scroll_to_output moves nothing here)."""
    return (f"() => setTimeout(() => {{ const e = document.getElementById({elem_id!r}); const top = e?.getBoundingClientRect().top; "
            "if (e && (top < 0 || top > innerHeight / 2)) e.scrollIntoView({block: 'start'}); }, 300)")


def _checkpoint_info(family: Family, default: str | None) -> str:
    if default:
        return "shipped, pulled, uploaded or trained; or type hf://ORG/NAME[@REVISION]/FILE"
    return f"{family.name} ships no model: pull one in the Checkpoints tab, train one, or type hf://ORG/NAME[@REVISION]/FILE"


def _train_tab(
    studio: Studio, families: list[Family], first: Family, translate_picker: tuple[gr.Dropdown, gr.Dropdown], demo: gr.Blocks, tabs: gr.Tabs
) -> None:
    ws = studio.workspace
    # above the form, so that it is in view on a narrow screen too, where the columns stack
    status = gr.Markdown(_status_text(studio.job.snapshot()), elem_id="training-status")
    with gr.Row():
        with gr.Column():
            family = gr.Dropdown([f.name for f in families], value=first.name, label="Model family")
            layout = gr.Markdown(_layout_help(first))
            with gr.Row():
                dataset = gr.Dropdown(
                    studio.dataset_choices(), value=None, label="Dataset", scale=4, allow_custom_value=True,
                    info="a folder of the datasets root (or a .zip uploaded below), a Hub dataset, or hf://datasets/ORG/NAME[@REVISION][/SUBSET]",
                )
                refresh = gr.Button("Refresh", scale=1)
                drop = gr.Button("Delete", variant="stop", scale=1)
            with gr.Accordion("Upload a dataset (.zip)", open=False):
                archive = gr.File(label="Zip archive", file_types=[".zip"], height=140)
                unpack = gr.Button("Unpack into the datasets root")
            run_name = gr.Textbox(label="Run name", placeholder="empty: family and time")
            start_from = gr.Dropdown([("new network", "")] + studio.checkpoint_choices(first.name), value="", label="Start from (fine-tuning)")
            main_settings = {"steps", "batch_size", "crop_size"}
            # the loop's settings under "loop", each family's under its name
            form = SettingsForm()
            with gr.Row():
                form.add("loop", _setting_inputs(TrainConfig, studio.train_defaults(first.name), keep=lambda f: f.name in main_settings, prefix="loop"))
            with gr.Accordion("Training settings", open=False):
                form.add("loop", _setting_inputs(TrainConfig, studio.train_defaults(first.name), keep=lambda f: f.name not in main_settings, prefix="loop"))
            with gr.Accordion("Family settings", open=False):
                groups = []
                for fam in families:
                    with gr.Group(visible=fam is first) as group:
                        form.add(fam.name, _setting_inputs(fam.Settings, studio.train_defaults(fam.name), free_text=False, prefix=fam.name, checkpoints=studio.checkpoint_choices(fam.name)))
                    groups.append(group)
            with gr.Row():
                start = gr.Button("Start", variant="primary")
                stop = gr.Button("Stop", variant="stop")
            with gr.Row():
                resume_run = gr.Dropdown(ws.run_names(), value=None, label="Run to resume", scale=3)
                resume_steps = gr.Number(0, label="total steps (0: as before)", precision=0, minimum=0, scale=2)
                resume = gr.Button("Resume", scale=1)
            use = gr.Button("Use this model in Translate")
            with gr.Accordion("Publish this run to the Hub", open=False):
                publish_run = gr.Dropdown(ws.run_names(), value=None, label="Run", info="empty: the current run; one still training publishes its latest checkpoint")
                with gr.Row():
                    repo_id = gr.Textbox(label="Repository", placeholder="ORG/NAME", scale=3)
                    licence = gr.Textbox(label="Licence", placeholder="mit, apache-2.0, ... (empty: the base model's)", scale=2)
                if signs_in():
                    gr.LoginButton("Sign in with Hugging Face to publish")
                token = gr.Textbox(
                    label="Hugging Face token (write)", type="password",
                    placeholder="your own write token" + (", or sign in above" if signs_in() else ""),
                    info="this app never publishes with its server's token",
                )
                private = gr.Checkbox(label="private repository", value=False)
                publish = gr.Button("Publish")
                published = gr.Markdown()
        with gr.Column():
            curves = gr.LinePlot(x="step", y="value", color="loss", label="Losses", height=260, elem_id="loss-curves")
            smoothing = gr.Slider(0, 0.99, value=0, step=0.01, label="smoothing", info="of the loss curves, as TensorBoard's: an average weighted to the recent")
            sample = gr.Image(label="Latest samples (input, output, target)", type="filepath", format="png", interactive=False)
            validation = gr.Markdown(label="Validation", value=VALIDATION_NOTE)
    timer = gr.Timer(2.0)

    loop_components = form.group("loop")

    @user_errors
    def start_run(family_name, dataset_name, run_label, checkpoint_ref, *values):
        settings = {**form.values(values, family_name), **form.values(values, "loop")}
        name = studio.start_training(family_name, dataset_name, run_label or "", checkpoint_ref or "", settings)
        runs = ws.run_names()
        runs = runs if name in runs else [name, *runs]  # its folder may not be written yet
        return _status_text(studio.job.snapshot()), gr.Dropdown(choices=runs, value=name), gr.Dropdown(choices=runs, value=name)

    @user_errors
    def stop_run():
        return _status_text({**studio.job.snapshot(), "status": studio.job.stop()})

    @user_errors
    def resume_selected(run_label, steps):
        studio.resume_training(run_label, steps)
        return _status_text(studio.job.snapshot())

    @user_errors
    def unpack_zip(file_path):
        unpacked = studio.upload_dataset(file_path)
        _let_go(file_path)
        gr.Info(unpacked.summary())
        return gr.Dropdown(choices=studio.dataset_choices(), value=unpacked.folder.name)

    def tick(seen, shown_family, weight):
        snapshot = studio.job.snapshot()
        losses = _loss_table(studio.job.run_dir, weight)
        # a LinePlot first handed an empty frame never draws the rows that come later: nothing until there are rows
        family = studio.registry.families.get(snapshot["family"]) if snapshot["family"] else None
        shown = [_status_text(snapshot), gr.skip() if losses is None else losses, snapshot["sample"], _validation_text(snapshot, family)]
        # once a run ends (or a new one starts), every picker of runs and checkpoints offers it without a reload
        changed = snapshot["status"] != seen and snapshot["status"] in ("running", "done", "stopped", "failed")
        return shown + [snapshot["status"]] + (pickers(shown_family) if changed else [gr.skip()] * 3)

    def pickers(shown_family):
        runs = ws.run_names()
        return [gr.Dropdown(choices=runs), gr.Dropdown(choices=runs), gr.Dropdown(choices=studio.checkpoint_choices(shown_family))]

    def switch(family_name):
        fam = studio.registry.family(family_name)
        defaults = studio.train_defaults(family_name)
        loop_updates = [gr.update(value=defaults.get(f.name, f.default)) for f in form.fields("loop")]
        choices = [("new network", "")] + studio.checkpoint_choices(family_name)
        return [_layout_help(fam), gr.Dropdown(choices=choices, value="")] + loop_updates + [gr.Group(visible=f.name == family_name) for f in families]

    start.click(start_run, [family, dataset, run_name, start_from, *form.components], [status, resume_run, publish_run], api_visibility="private").success(
        None, js=_scroll_to("training-status"), api_visibility="private", queue=False)
    stop.click(stop_run, None, status, api_visibility="private", queue=False)
    resume.click(resume_selected, [resume_run, resume_steps], status, api_visibility="private").success(
        None, js=_scroll_to("training-status"), api_visibility="private", queue=False)
    unpack.click(unpack_zip, archive, dataset, api_visibility="private")
    refresh.click(
        lambda: (gr.Dropdown(choices=studio.dataset_choices()), gr.Dropdown(choices=ws.run_names()), gr.Dropdown(choices=ws.run_names())),
        None, [dataset, resume_run, publish_run], api_visibility="private", queue=False,
    )

    translate_family, translate_checkpoint = translate_picker

    def publish_as(run_label, repo, token_text, is_private, licence_text, train_family, shown_family, signed_in=None):
        # a typed token wins: someone signed in may publish to an organisation with another
        token_text = (token_text or "").strip() or (signed_in.token if signed_in is not None else "")
        done = studio.push(run_label, repo, token_text, is_private, licence_text)
        # the pickers offer it at once, not only after their family is switched
        start_choices = [("new network", "")] + studio.checkpoint_choices(train_family)
        note = f"Published to {done.url}; it pulls back as `{done.references[0]}`, now offered by the checkpoint pickers."
        return note, gr.Dropdown(choices=start_choices), gr.Dropdown(choices=studio.checkpoint_choices(shown_family))

    if signs_in():  # gradio hands the visitor's own token to a parameter typed gr.OAuthToken

        @user_errors
        def publish_clicked(run_label, repo, token_text, is_private, licence_text, train_family, shown_family, signed_in: gr.OAuthToken | None):
            return publish_as(run_label, repo, token_text, is_private, licence_text, train_family, shown_family, signed_in)

    else:

        @user_errors
        def publish_clicked(run_label, repo, token_text, is_private, licence_text, train_family, shown_family):
            return publish_as(run_label, repo, token_text, is_private, licence_text, train_family, shown_family)

    publish.click(
        publish_clicked, [publish_run, repo_id, token, private, licence, family, translate_family],
        [published, start_from, translate_checkpoint], api_visibility="private",
    )

    @user_errors
    def drop_dataset(name):
        if not name:
            raise TranslatorError("choose a dataset to delete")
        gr.Info(f"deleted {studio.delete_dataset(name)}")
        return gr.Dropdown(choices=studio.dataset_choices(), value=None)

    drop.click(drop_dataset, dataset, dataset, api_visibility="private")
    family.change(switch, family, [layout, start_from, *loop_components, *groups], api_visibility="private", queue=False)

    @user_errors
    def use_in_translate(run_label):
        """The chosen (or current, or last) run's generator, picked in the Translate tab, which opens."""
        name = (run_label or "").strip() or (studio.job.run_dir.name if studio.job.run_dir is not None else "")
        if not name:
            raise TranslatorError("train a run first, or choose one under Run to resume")
        entry = next((e for e in ws.entries() if e.kind == "run" and e.path == ws.run(name) and e.file.stem == "generator"), None)
        if entry is None:
            raise TranslatorError(f"the run {name} has written no model yet")
        return gr.Dropdown(value=entry.family), gr.Dropdown(choices=studio.checkpoint_choices(entry.family), value=entry.ref), gr.Tabs(selected="translate")

    use.click(use_in_translate, resume_run, [translate_family, translate_checkpoint, tabs], api_visibility="private", queue=False)

    # polling stays out of the queue, so a page left open never takes a translation's place
    # the run status this page last saw, kept in the page (a hidden box: a gr.State would start
    # gradio's state sweeper, which holds every server's close for a second)
    seen = gr.Textbox("", visible=False)
    timer.tick(
        tick, [seen, translate_family, smoothing], [status, curves, sample, validation, seen, resume_run, publish_run, translate_checkpoint],
        api_visibility="private", queue=False,
    )
    # a page opened (or reloaded), or another tab chosen, lists what exists now: not what existed
    # when the server started, or when another visitor's upload or run had not yet landed
    def listed_now(shown_family):
        return [gr.Dropdown(choices=studio.dataset_choices())] + pickers(shown_family)

    def smoothed(weight):
        table = _loss_table(studio.job.run_dir, weight)
        return gr.skip() if table is None else table

    smoothing.release(smoothed, smoothing, curves, api_visibility="private", queue=False)

    for event in (demo.load, tabs.change):
        event(listed_now, translate_family, [dataset, resume_run, publish_run, translate_checkpoint], api_visibility="private", queue=False)


def _checkpoints_tab(studio: Studio) -> None:
    from .. import catalog

    ws = studio.workspace
    # short rows, the user's own first; where it comes from and its hash on selection
    table = gr.Dataframe(_checkpoint_rows(ws), headers=["checkpoint", "family", "kind", "where", "size"], label="Checkpoints", interactive=False,
                         column_widths=["34%", "12%", "12%", "28%", "14%"], max_height=420)
    details = gr.Markdown("Select a row for its description, source and SHA-256.")
    with gr.Row():
        reference = gr.Textbox(label="Pull from the Hub or OpenModelDB", placeholder="hf://ORG/NAME[@REVISION]/FILE, a catalog name or omdb:ID", scale=4)
        pull = gr.Button("Pull", scale=1)
    with gr.Accordion("OpenModelDB: the community's upscalers and restorers", open=False):
        with gr.Row():
            search = gr.Textbox(label="Search", placeholder="words, x4 for a scale, arch:span for an architecture", scale=4)
            find = gr.Button("Search", scale=1)
        found_note = gr.Markdown()
        found = gr.Dataframe(headers=["id", "architecture", "scale", "size", "licence", "how"], interactive=False, max_height=360,
                             label="Select a model to pull it (one hosted behind a click-through page is downloaded by hand, then uploaded)")
    with gr.Row():
        upload = gr.File(label="Upload a checkpoint (.safetensors, .pth)", file_types=[".safetensors", ".pth", ".pt", ".ckpt"], height=140, scale=4)
        add = gr.Button("Add", scale=1)
    with gr.Row():
        exported = gr.Dropdown(_exportable(ws), label="Export for other tools (ONNX: ONNX Runtime, OpenVINO, TensorRT; safetensors: spandrel, chaiNNer, ComfyUI)", scale=3)
        kind = gr.Radio(["onnx", "safetensors"], value="onnx", label="Format", scale=1)
        export = gr.Button("Export", scale=1)
    export_file = gr.File(label="Exported file", visible=False)
    with gr.Row():
        doomed = gr.Dropdown(_deletable(ws), label="Delete (uploads, runs, pulled files)", scale=4)
        delete = gr.Button("Delete", variant="stop", scale=1)
    unlisted = [e for e in catalog.entries() if not e.sources]
    if unlisted:
        with gr.Accordion(f"Published names without a verified Hub copy ({len(unlisted)})", open=False):
            rows = [[e.group, e.name, e.description, e.input, e.size, e.licence, e.origin or ""] for e in unlisted]
            gr.Dataframe(rows, headers=["task", "name", "what it does", "input", "size", "licence", "published at"], interactive=False, wrap=True)
    message = gr.Markdown()

    def refreshed(note: str):
        return _checkpoint_rows(ws), gr.Dropdown(choices=_deletable(ws), value=None), gr.Dropdown(choices=_exportable(ws)), note

    outputs = [table, doomed, exported, message]

    @user_errors
    def pull_reference(text, progress=gr.Progress(track_tqdm=True)):
        return refreshed(f"pulled {studio.pull(text)}")

    @user_errors
    def add_upload(file_path):
        added = studio.upload_checkpoint(file_path)
        _let_go(file_path)
        return refreshed(f"added {added}")

    @user_errors
    def delete_entry(ref):
        if not ref:
            raise TranslatorError("choose what to delete")
        return refreshed(f"deleted {studio.delete(ref)}")

    @user_errors
    def export_entry(ref, chosen_kind):
        path, line = studio.export(ref, chosen_kind)
        return gr.File(value=str(path), visible=True), f"exported {line}"

    @user_errors
    def search_openmodeldb(text):
        return studio.openmodeldb(text)

    def openmodeldb_chosen(event: gr.SelectData):
        row = event.row_value or ["", "", "", "", "", ""]
        how = str(row[5])
        if how.startswith("pull "):
            return how.removeprefix("pull "), f"press Pull to download {row[0]} ({row[3]}, {row[4]}); its SHA-256 is checked"
        return gr.Textbox(), f"{row[0]} is hosted where a person must click through: download it from {how.removeprefix('by hand: ')}, then upload it below"

    def selected(event: gr.SelectData):
        name = (event.row_value or [""])[0]
        entry = next((e for e in ws.entries() if _short_name(e) == name), None)
        return _checkpoint_details(ws, entry) if entry else ""

    table.select(selected, None, details, api_visibility="private", queue=False)
    pull.click(pull_reference, reference, outputs, api_visibility="private")
    add.click(add_upload, upload, outputs, api_visibility="private")
    delete.click(delete_entry, doomed, outputs, api_visibility="private")
    export.click(export_entry, [exported, kind], [export_file, message], api_visibility="private")
    for trigger in (find.click, search.submit):
        trigger(search_openmodeldb, search, [found, found_note], api_visibility="private")
    found.select(openmodeldb_chosen, None, [reference, message], api_visibility="private", queue=False)


def _api(studio: Studio, first: Family) -> None:
    """The named endpoints for gradio_client and other programs: the same actions as the tabs,
    with plain parameters (family settings as one dict, as `--set` takes them)."""

    @api_endpoint
    def translate(image: FileData, family: str = first.name, checkpoint: str = "", outscale: float | None = None, tile: int | None = None, settings: dict | None = None,
                  format: str = "png", quality: int = QUALITY, request: gr.Request | None = None) -> FileData:
        """Translate one image; returns the full-size result. checkpoint: empty for the family's
        shipped model, a name from /checkpoints, a catalog name or hf://ORG/NAME[@REVISION]/FILE.
        tile: None picks automatically. settings: the family's translation settings.
        format: png (lossless), webp or jpg; quality: 1-100 for webp and jpg (webp at 100 is lossless)."""
        with studio.turns.turn(client_of(request)):
            path = studio.translate(_uploaded(image), family, checkpoint, outscale, tile, settings or {}, None, format, quality).path
        return FileData(path=str(path), orig_name=path.name)

    @api_endpoint
    def translate_video(video: FileData, family: str = first.name, checkpoint: str = "", settings: dict | None = None,
                        request: gr.Request | None = None) -> FileData:
        """Translate one video into an H.264 .mp4 with its audio copied and its frame times kept;
        checkpoint and settings as for /translate."""
        with studio.turns.turn(client_of(request)):
            path, _ = studio.translate_video(_uploaded(video), family, checkpoint, settings or {})
        return FileData(path=str(path), orig_name=path.name)

    @api_endpoint
    def train(family: str, dataset: str, run_name: str = "", checkpoint: str = "", settings: dict | None = None) -> dict:
        """Start a training run in the background (one at a time); returns its status.
        settings: family and training-loop settings, as `translator train --set` takes them."""
        studio.start_training(family, dataset, run_name, checkpoint, settings or {})
        return studio.job.snapshot()

    @api_endpoint
    def training_status() -> dict:
        """The current (or last) run: status, step, steps, images/s, ETA, latest sample, validation."""
        return studio.job.snapshot()

    @api_endpoint
    def stop_training() -> dict:
        """Ask the run to save and stop after its current step."""
        studio.job.stop()
        return studio.job.snapshot()

    @api_endpoint
    def resume_training(run_name: str, steps: int | None = None) -> dict:
        """Continue a saved run where it stopped (steps: a new total, if any)."""
        studio.resume_training(run_name, steps)
        return studio.job.snapshot()

    @api_endpoint
    def upload_dataset(archive: FileData) -> str:
        """Unpack a .zip dataset into the datasets root; returns the dataset's name."""
        path = _uploaded(archive)
        name = studio.upload_dataset(path).folder.name
        _let_go(path)
        return name

    @api_endpoint
    def delete_dataset(dataset: str) -> str:
        """Delete a dataset the app unpacked (not one the running run trains on)."""
        return studio.delete_dataset(dataset)

    @api_endpoint
    def checkpoints(family: str = "") -> list[dict]:
        """Every checkpoint the app offers (for one family, or all)."""
        return [
            {"checkpoint": e.ref, "label": e.label, "family": e.family, "kind": e.kind, "size": e.size, "source": e.source, "sha256": e.sha256}
            for e in studio.workspace.entries(family or None, hashes=True)
        ]

    @api_endpoint
    def pull(reference: str) -> str:
        """Download hf://ORG/NAME[@REVISION]/FILE (or a catalog name) into the Hugging Face cache."""
        return studio.pull(reference)

    @api_endpoint
    def upload_checkpoint(file: FileData) -> str:
        """Add a checkpoint file (checked by the safe loader, stored as safetensors)."""
        path = _uploaded(file)
        added = studio.upload_checkpoint(path)
        _let_go(path)
        return added

    @api_endpoint
    def delete_checkpoint(checkpoint: str) -> str:
        """Delete an uploaded checkpoint, a trained run or a pulled file."""
        return studio.delete(checkpoint)

    @api_endpoint
    def push(run_name: str, repo_id: str, token: str = "", private: bool = False, licence: str = "") -> str:
        """Publish a run (empty: the current one, also while it trains, from its latest checkpoint)
        to the Hub with your own write token; returns the repository's URL. licence: empty for the
        base model's, else e.g. mit."""
        return studio.push(run_name, repo_id, token, private, licence).url

    gr.api(translate, api_name="translate", **TRANSLATIONS)
    gr.api(translate_video, api_name="translate_video", **TRANSLATIONS)
    for fn in (train, resume_training, upload_dataset, delete_dataset, pull, upload_checkpoint, delete_checkpoint, push):
        gr.api(fn, api_name=fn.__name__)
    for fn in (training_status, stop_training, checkpoints):
        gr.api(fn, api_name=fn.__name__, queue=False)


def _uploaded(file) -> str:
    """The path of a file a client uploaded; nothing else on the server may be named."""
    from gradio.utils import get_upload_folder

    path = file.get("path") if isinstance(file, dict) else getattr(file, "path", file)
    if not path:
        raise TranslatorError("no file was sent")
    resolved = Path(path).resolve()
    if not resolved.is_relative_to(Path(get_upload_folder()).resolve()):
        raise TranslatorError("only files uploaded to this app can be used")
    return str(resolved)


def _let_go(path: str) -> None:
    """Remove an upload the app now keeps in a form of its own (a dataset unpacked, a checkpoint
    as safetensors): kept twice, it would take twice its size outside the quota."""
    from gradio.utils import get_upload_folder

    if path and Path(path).resolve().is_relative_to(Path(get_upload_folder()).resolve()):
        Path(path).unlink(missing_ok=True)


def _plugins_tab(studio: Studio) -> None:
    reg = studio.registry
    rows = [[p.name, p.version, "built-in" if p.builtin else "installed", ", ".join(p.families) or "none"] for p in reg.plugins.values()]
    gr.Dataframe(rows, headers=["plugin", "version", "kind", "families"], label="Loaded plugins", interactive=False)
    families = [[f.name, f.task.name, f.description, f.listed_architectures()] for f in reg.families.values()]
    gr.Dataframe(families, headers=["family", "task", "what it does", "architectures (licence of their code)"], label="Families", interactive=False, wrap=True)
    failed = [[f.name, f.error] for f in reg.failures]
    if failed:
        gr.Dataframe(failed, headers=["plugin", "error"], label=f"Plugins that failed to load ({len(failed)})", interactive=False, wrap=True)
    else:
        gr.Markdown("Every installed plugin loaded.")


# ---- helpers ----


class SettingsForm:
    """Generated setting inputs, grouped (by family, or "loop"), so that a handler's ``*values``
    come back as the settings of one group by name, whatever the order they were made in."""

    def __init__(self):
        self.entries: list[tuple[str, dataclasses.Field, gr.components.Component]] = []

    def add(self, group: str, made) -> int:
        """Add the (field, component) pairs of ``_setting_inputs`` under ``group``; how many."""
        before = len(self.entries)
        self.entries += [(group, field, component) for field, component in made]
        return len(self.entries) - before

    @property
    def components(self) -> list:
        return [component for _, _, component in self.entries]

    def group(self, group: str) -> list:
        return [component for name, _, component in self.entries if name == group]

    def fields(self, group: str) -> list[dataclasses.Field]:
        return [field for name, field, _ in self.entries if name == group]

    def values(self, values, group: str) -> dict:
        """``group``'s settings by name, from the values of ``components`` in order."""
        return {field.name: value for (name, field, _), value in zip(self.entries, values) if name == group}


def _setting_inputs(settings_class: type, defaults: dict, keep=None, free_text: bool = True, prefix: str = "", checkpoints: list | None = None):
    """One input per setting, typed by the field: checkbox, choice, number, checkpoint picker
    (``checkpoints``, for settings that name one) or text.

    Other free-text settings are file paths in practice; a web user may not name server files,
    so the Train tab leaves them to the command line (``free_text=False``)."""
    hints = typing.get_type_hints(settings_class)
    for field in dataclasses.fields(settings_class):
        meta = field.metadata
        if keep is not None and not keep(field):
            continue
        kind, choices = hints[field.name], meta.get("choices")
        value = defaults.get(field.name, field.default)
        common = {"label": field.name, "info": meta.get("help", ""), "elem_id": f"{prefix}-{field.name}" if prefix else None}
        if meta.get("checkpoint") and checkpoints is not None:
            component = gr.Dropdown([("none", "")] + list(checkpoints), value="", **common)
        elif choices:
            component = gr.Dropdown(list(choices), value=value, **common)
        elif kind is bool:
            component = gr.Checkbox(value=value, **common)
        elif kind in (int, float):
            component = gr.Number(value, precision=0 if kind is int else None, minimum=meta.get("low"), maximum=meta.get("high"), **common)
        elif free_text:
            component = gr.Textbox(value, **common)
        else:
            continue
        yield field, component


def _layout_help(family: Family) -> str:
    return f"**{family.name}** ({family.task}) expects a dataset folder with {family.task.layouts}."


def _status_text(snapshot: dict) -> str:
    if snapshot["status"] == "idle":
        return "No training run since the server started. Start one, or resume a saved run."
    lines = [f"**{snapshot['run']}** ({snapshot['family']}): **{snapshot['status']}**, step {snapshot['step']} of {snapshot['steps']}"]
    if snapshot["images_per_s"]:
        lines.append(f"{snapshot['images_per_s']:.1f} images/s, {snapshot['seconds_per_step']:.2f} s per step")
    if snapshot["eta_s"] is not None:
        lines.append(f"about {units.duration(snapshot['eta_s'])} left")
    if snapshot["estimate"]:
        # once steps are measured, the admission's estimate is what it was: an estimate
        lines.append(f"{'admitted with' if snapshot['images_per_s'] else 'estimated'}: {snapshot['estimate']}")
    if snapshot["data"]:
        lines.append(f"data: {snapshot['data']}")
    if snapshot["error"]:
        lines.append(f"error: {snapshot['error']}")
    return "  \n".join(lines)


def _loss_table(run_dir: Path | None, smoothing: float = 0.0):
    """The run's logged losses, and its validation FID, as long-form rows for the plot (at most
    ~400 points a curve); ``smoothing`` in [0, 1) weighs each loss's running average."""
    import pandas as pd

    logged = read_metrics(run_dir) if run_dir else []
    steps = [e for e in logged if isinstance(e, events.Step)]
    stride = max(1, len(steps) // 400)
    averages: dict[str, float] = {}
    smoothing = min(max(float(smoothing or 0), 0.0), 0.99)
    rows = []
    for index, event in enumerate(steps):  # averaged over every logged step, then thinned
        for name, value in event.losses.items():
            averages[name] = value if name not in averages else smoothing * averages[name] + (1 - smoothing) * value
        if index % stride == 0:
            rows += [(event.step, averages[name], name) for name in event.losses]
    # a GAN's losses say little about its images; the FID of its outputs (lower is better) does
    rows += [(e.step, e.scores["fid"], "val_fid") for e in logged if isinstance(e, events.Validation) and "fid" in e.scores]
    return pd.DataFrame(rows, columns=["step", "value", "loss"]) if rows else None


VALIDATION_NOTE = "**Validation**: held-out scores appear here while a run trains."


def _validation_text(snapshot: dict, family: Family | None) -> str:
    """The latest validation scores as one line, or what to add to get them."""
    scores = snapshot["validation"]
    if scores:
        shown = ", ".join(f"{name} {value:.4g}" if isinstance(value, float) else f"{name} {value}" for name, value in scores.items() if name != "step")
        return f"**Validation** at step {scores['step']}: {shown}"
    if snapshot.get("has_validation") is False:
        layouts = f" ({family.task.name}: {family.task.layouts})" if family else ""
        return f"**Validation**: this dataset has no validation split; add held-out images as its layout allows{layouts} to see scores here."
    return VALIDATION_NOTE


# the Checkpoints table's order: the user's own work first, then what came from elsewhere
KINDS = ("run", "uploaded", "published", "pulled", "shipped", "catalog")


def _checkpoint_rows(ws: Workspace) -> list[list]:
    from ..hub import can_download

    def where(entry) -> str:
        if entry.file is not None or entry.kind not in ("catalog", "published"):
            return "on disk"
        known = catalog.find(entry.ref)
        return "downloads on first use" if known is None or can_download(known) else "needs internet (offline now)"

    rows = [(e, where(e)) for e in ws.entries()]
    rows.sort(key=lambda row: (row[1] != "on disk", KINDS.index(row[0].kind) if row[0].kind in KINDS else len(KINDS)))
    return [[_short_name(e), e.family, e.kind, place, units.size(e.size) if e.size is not None else ""] for e, place in rows]


def _short_name(entry) -> str:
    """A catalog model by its name; the rest (runs, uploads, pulls) by their labels."""
    return entry.ref if entry.kind in ("shipped", "catalog") else entry.label


def _checkpoint_details(ws: Workspace, entry) -> str:
    """What a selected row holds beyond its short name: what it does, where it comes from and
    its SHA-256 (the catalog's, or computed from the file on disk)."""
    known = catalog.find(entry.ref) if entry.kind in ("shipped", "catalog") else None
    sha256 = entry.sha256 or (ws.sha256(entry.file) if entry.file is not None else None)
    lines = [f"**{entry.label}**", f"{entry.family} · {entry.kind}" + (f" · {units.size(entry.size)}" if entry.size else "")]
    if known is not None and known.licence:
        lines.append(f"licence: {known.licence}")
    lines.append(f"source: `{entry.source}`")
    lines.append(f"sha256: `{sha256}`" if sha256 else "sha256: known once downloaded")
    return "  \n".join(lines)


def _exportable(ws: Workspace) -> list[tuple[str, str]]:
    return [(e.label, e.ref) for e in ws.entries()]


def _deletable(ws: Workspace) -> list[tuple[str, str]]:
    return [(e.label, e.ref) for e in ws.entries() if e.path is not None]