"""The app in a real browser: Debian's chromium, driven by playwright, on the launched app.

Upload an image, translate it with the shipped x4 model, download the result; visit every tab;
provoke a readable error and check the page keeps working; open the Options and translate
several images at once. Full-page screenshots go to the test's tmp_path and, when
TRANSLATOR_TEST_ARTIFACTS names a folder, are copied there too. Without playwright or chromium
the tests fail (never skip) and say that `bash scripts/setup` installs them.
"""

import io
import json
import os
import re
import shutil
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.helpers import photo
from translator import catalog

try:
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import expect, sync_playwright
except ImportError:  # reported by the fixture as a failure, not a skip
    sync_playwright = None

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
    "--disable-component-update", "--no-first-run", "--disable-sync",
]
SETUP_HINT = "`bash scripts/setup` installs the playwright package and Debian's chromium"
WAIT_MS = 30_000


@pytest.fixture
def browser():
    if sync_playwright is None:
        pytest.fail(f"the browser test needs the PyPI playwright package: {SETUP_HINT}")
    if not CHROMIUM.is_file():
        pytest.fail(f"the browser test needs chromium at {CHROMIUM}: {SETUP_HINT}")
    with sync_playwright() as playwright:
        try:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        except PlaywrightError as error:
            pytest.fail(f"chromium at {CHROMIUM} did not start ({error.message.splitlines()[0]}); {SETUP_HINT}")
        try:
            yield browser
        finally:
            browser.close()


def block(page, label: str):
    """The component (a gradio .block) labelled ``label`` in its corner: images, files, galleries."""
    assert '"' not in label
    return page.locator(
        "xpath=//div[contains(concat(' ', normalize-space(@class), ' '), ' block ')]"
        f"[label[@data-testid='block-label'][normalize-space()=\"{label}\"]]"
    )


def choose(page, label: str, option: str) -> None:
    """Pick ``option`` in the dropdown labelled ``label``."""
    page.get_by_role("combobox", name=label, exact=True).click()
    page.get_by_role("option", name=option, exact=True).click()
    expect(page.get_by_role("combobox", name=label, exact=True)).to_have_value(option)


def new_page(browser, url: str, log: dict | None = None):
    """A fresh page on the app, waited for until its form is there; ``log`` collects the page's
    uncaught errors and console errors."""
    page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    page.set_default_timeout(WAIT_MS)
    expect.set_options(timeout=WAIT_MS)
    if log is not None:
        log.setdefault("page_errors", [])
        log.setdefault("console_errors", [])
        page.on("pageerror", lambda error: log["page_errors"].append(str(error)))
        page.on("console", lambda message: log["console_errors"].append(message.text) if message.type == "error" else None)
    page.goto(url)
    expect(page.get_by_role("button", name="Upscale x4", exact=True)).to_be_visible()
    return page


def upload(page, label: str, path: Path) -> None:
    image_input = block(page, label)
    image_input.locator("input[type=file]").set_input_files(str(path))
    expect(image_input.locator("img").first).to_be_visible()


class Screenshots:
    def __init__(self, page, folder: Path):
        self.page, self.folder, self.paths = page, folder, []
        folder.mkdir(parents=True, exist_ok=True)

    def take(self, name: str) -> None:
        path = self.folder / f"{len(self.paths) + 1:02d}-{name}.png"
        self.page.screenshot(path=str(path), full_page=True, animations="disabled")  # toasts fade in
        self.paths.append(path)


def test_translate_tabs_and_errors_in_a_real_browser(app_server, browser, tmp_path):
    url, studio = app_server
    started = time.perf_counter()
    timings = {}

    def lap(name: str) -> None:
        timings[name] = round(time.perf_counter() - started, 2)

    source = tmp_path / "photo.png"
    picture = photo(40, 48)  # 48 wide, 40 high, gradients, a hard-edged block and a little noise
    Image.fromarray(picture).save(source)

    log = {"timings_s": timings}
    page = new_page(browser, url, log)
    lap("page loaded")
    shots = Screenshots(page, tmp_path / "screenshots")
    try:
        # ---- the page loads with the default family and its shipped model ----
        translate = page.get_by_role("button", name="Upscale x4", exact=True)
        expect(translate).to_be_visible()
        expect(page.get_by_role("tab", name="Translate", exact=True)).to_have_attribute("aria-selected", "true")
        # the page leads with what to do; the family and checkpoint are one click away
        expect(page.get_by_role("combobox", name="What to do", exact=True)).to_have_value("Upscale photos")
        expect(page.get_by_role("combobox", name="Model", exact=True)).to_have_value(re.compile(r"^x4 photo upscaler .*\(on disk\)$"))
        page.get_by_role("button", name=re.compile(r"^Any family and checkpoint")).click()
        expect(page.get_by_role("combobox", name="Model family", exact=True)).to_have_value("esrgan")
        expect(page.get_by_role("combobox", name="Checkpoint", exact=True)).to_have_value(re.compile(r"^compact-sr-x4\b"))
        shots.take("loaded")

        # ---- upload, translate, and check the result is the real x4 image ----
        upload(page, "Image", source)
        translate.click()

        result = block(page, "Result (full size)")
        link = result.locator("a[data-testid='download-link']")
        expect(link).to_be_visible()
        # named after the model that made it, and the result line says which and how long it took
        expect(link).to_have_attribute("download", "photo-compact-sr-x4.png")
        expect(page.get_by_text(re.compile(r"^compact-sr-x4, \d+\.\d s: 192x160 PNG \(RGB\)"))).to_be_visible()
        lap("translated")

        response = page.request.get(link.get_attribute("href"))
        assert response.ok, f"the result link answered {response.status}"
        body = response.body()
        assert body.startswith(b"\x89PNG\r\n\x1a\n")
        with Image.open(io.BytesIO(body)) as downloaded:
            assert downloaded.format == "PNG" and downloaded.size == (192, 160) and downloaded.mode == "RGB"
            # an upscale of this picture, not any 192x160 image: shrunk back, it is close to the input
            shrunk = np.asarray(downloaded.resize((48, 40), Image.Resampling.BOX), dtype=np.float32)
        assert np.abs(shrunk - picture).mean() < 6  # about 1.3 here; another picture gives about 35

        slider_images = block(page, "Before / after").locator("img[data-testid='imageslider-image']")
        expect(slider_images).to_have_count(2)
        for i in range(2):
            expect(slider_images.nth(i)).to_be_visible()
            size = slider_images.nth(i).evaluate("img => img.decode().then(() => [img.naturalWidth, img.naturalHeight])")
            assert size == [192, 160], f"slider image {i} is {size}"
            # previews travel as WebP; the lossless PNG is the download's alone
            assert slider_images.nth(i).get_attribute("src").split("?")[0].endswith(".webp")
        # the whole 192x160 result is smaller than the 100% view's side: shown whole, at 100%
        full = block(page, "The centre, pixel for pixel, beside bicubic").locator("img[data-testid='imageslider-image']")
        expect(full).to_have_count(2)
        assert full.nth(1).evaluate("img => img.decode().then(() => [img.naturalWidth, img.naturalHeight])") == [192, 160]
        shots.take("translated")

        # ---- the other tabs show their content, and what others added meanwhile ----
        (studio.workspace.runs / "another-visitors-run").mkdir()  # as a run started elsewhere would appear
        page.get_by_role("tab", name="Train", exact=True).click()
        page.get_by_role("combobox", name="Run to resume", exact=True).click()
        expect(page.get_by_role("option", name="another-visitors-run", exact=True)).to_be_visible()
        page.keyboard.press("Escape")
        expect(page.get_by_role("button", name="Start", exact=True)).to_be_visible()
        expect(page.get_by_role("button", name="Stop", exact=True)).to_be_visible()
        expect(translate).to_be_hidden()
        shots.take("train")

        page.get_by_role("tab", name="Checkpoints", exact=True).click()
        checkpoints = page.get_by_role("grid", name="Checkpoints", exact=True)
        expect(checkpoints).to_be_visible()
        expect(checkpoints).to_contain_text("compact-sr-x4")
        expect(checkpoints).to_contain_text("compact-sr-x2")
        expect(page.get_by_role("button", name="Pull", exact=True)).to_be_visible()
        # readable at 1200 px: short rows that need no sideways scrolling, what is on disk first
        page.set_viewport_size({"width": 1200, "height": 900})
        overflow = checkpoints.evaluate("grid => { const box = grid.closest('.table-wrap') || grid.parentElement; return box.scrollWidth - box.clientWidth; }")
        assert overflow <= 1, f"the checkpoints table scrolls sideways by {overflow} px"
        expect(checkpoints.get_by_role("row").nth(1).get_by_role("gridcell").nth(3)).to_have_text("on disk")
        # the details of a row on selection: its description, source and hash
        checkpoints.get_by_text("compact-sr-x2", exact=True).first.click()
        expect(page.get_by_text(re.compile(r"sha256: [0-9a-f]{64}"))).to_be_visible()
        page.set_viewport_size({"width": 1280, "height": 900})
        shots.take("checkpoints")

        page.get_by_role("tab", name="Plugins", exact=True).click()
        plugins = page.get_by_role("grid", name="Loaded plugins", exact=True)
        expect(plugins).to_be_visible()
        expect(plugins).to_contain_text("esrgan")
        expect(plugins).to_contain_text("built-in")
        families = page.get_by_role("grid", name="Families", exact=True)
        expect(families).to_be_visible()
        for name in studio.registry.families:
            expect(families).to_contain_text(name)
        lap("tabs visited")
        shots.take("plugins")

        # ---- an error is one readable toast, and the page keeps working ----
        page.get_by_role("tab", name="Translate", exact=True).click()
        expect(translate).to_be_visible()
        choose(page, "Model family", "cyclegan")
        expect(page.get_by_role("combobox", name="Checkpoint", exact=True)).to_have_value("")
        # the button is named for the work: no model, no particular work
        page.get_by_role("button", name="Translate", exact=True).click()
        toast = page.locator("[data-testid='toast-body']").filter(has_text="ships no default model")
        expect(toast).to_be_visible()
        expect(toast).to_contain_text("cyclegan ships no default model")
        assert "Traceback" not in toast.inner_text() and "unexpected" not in toast.inner_text()
        lap("error shown")
        shots.take("error")

        choose(page, "Model family", "esrgan")
        expect(page.get_by_role("combobox", name="Checkpoint", exact=True)).to_have_value(re.compile(r"^compact-sr-x4\b"))
        choose(page, "Checkpoint", next(label for label, ref in studio.checkpoint_choices("esrgan") if ref == "compact-sr-x2"))
        expect(translate).to_be_hidden()
        page.get_by_role("button", name="Upscale x2", exact=True).click()
        expect(page.get_by_text(re.compile(r"96x80 PNG \(RGB\)"))).to_be_visible()
        expect(link).to_be_visible()
        with Image.open(io.BytesIO(page.request.get(link.get_attribute("href")).body())) as again:
            assert again.size == (96, 80)
        lap("translated again")
        shots.take("recovered")

        assert not log["page_errors"], f"the page raised: {log['page_errors']}"
    except BaseException:
        try:
            shots.take("failed")  # what the page showed when the test failed
        except Exception:  # a crashed page has nothing to show; the original error matters
            pass
        raise
    finally:
        (shots.folder / "log.json").write_text(json.dumps(log, indent=1))
        artifacts = os.environ.get("TRANSLATOR_TEST_ARTIFACTS")
        if artifacts:
            target = Path(artifacts)
            target.mkdir(parents=True, exist_ok=True)
            for path in shots.folder.iterdir():
                shutil.copy2(path, target / path.name)
        page.context.close()

    assert [p.name for p in shots.paths] == [
        "01-loaded.png", "02-translated.png", "03-train.png", "04-checkpoints.png", "05-plugins.png", "06-error.png", "07-recovered.png",
    ]
    for path in shots.paths:
        assert path.stat().st_size > 1000 and path.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
        with Image.open(path) as shot:
            assert shot.width == 1280 and shot.height >= 900
        if artifacts:
            assert (Path(artifacts) / path.name).read_bytes() == path.read_bytes()


def test_the_options_and_several_images_in_a_real_browser(app_server, browser, tmp_path, monkeypatch):
    """The Options fields' defaults mean automatic once the accordion is open (an open accordion
    sends its numbers, which a closed one does not); the batch form translates and lists results."""
    url, studio = app_server
    sent = []
    translate = studio.translate

    def spy(image_path, family, checkpoint, outscale, tile, *rest, **kwargs):
        sent.append((outscale, tile))
        return translate(image_path, family, checkpoint, outscale, tile, *rest, **kwargs)

    monkeypatch.setattr(studio, "translate", spy)
    sources = []
    for i in range(2):
        sources.append(tmp_path / f"photo{i}.png")
        Image.fromarray(photo(40, 48, seed=i)).save(sources[-1])
    log = {}
    page = new_page(browser, url, log)
    try:
        upload(page, "Image", sources[0])
        page.get_by_role("button", name=re.compile(r"^Options\b")).click()
        expect(page.get_by_label("outscale", exact=True)).to_be_visible()
        expect(page.get_by_label("tile", exact=True)).to_be_visible()
        page.get_by_role("button", name="Upscale x4", exact=True).click()
        done = page.get_by_text(re.compile(r"192x160 PNG \(RGB\)"))
        toast = page.locator("[data-testid='toast-body']")
        expect(done.or_(toast).first).to_be_visible()
        assert not toast.all_inner_texts() and sent == [(None, None)], f"sent (outscale, tile) = {sent}; page said {toast.all_inner_texts()}"

        # several images, as small WebP files, with all of them in one zip
        page.get_by_role("radio", name="WebP", exact=True).check()
        page.get_by_role("button", name=re.compile(r"^Several images\b")).click()
        block(page, "Images").locator("input[type=file]").set_input_files([str(p) for p in sources])
        page.get_by_role("button", name="Translate all", exact=True).click()
        expect(page.get_by_text("2 translated", exact=True)).to_be_visible()
        assert toast.count() == 0 and sent[1:] == [(None, None)] * 2
        gallery = block(page, "Results").locator("img")
        expect(gallery).to_have_count(2)
        downloads = block(page, "Downloads (all in one .zip first)").locator("a[data-testid='download-link']")
        expect(downloads).to_have_count(3)
        names = ["photo0-compact-sr-x4.webp", "photo1-compact-sr-x4.webp"]
        assert downloads.evaluate_all("links => links.map(a => a.download)") == ["results.zip", *names]
        with zipfile.ZipFile(io.BytesIO(page.request.get(downloads.nth(0).get_attribute("href")).body())) as archive:
            assert sorted(archive.namelist()) == names
            for name in names:
                with Image.open(io.BytesIO(archive.read(name))) as image:
                    assert image.format == "WEBP" and image.size == (192, 160)
        page.screenshot(path=str(tmp_path / "several-images.png"), full_page=True, animations="disabled")
        assert not log["page_errors"], f"the page raised: {log['page_errors']}"
    finally:
        artifacts = os.environ.get("TRANSLATOR_TEST_ARTIFACTS")
        if artifacts and (tmp_path / "several-images.png").is_file():
            Path(artifacts).mkdir(parents=True, exist_ok=True)
            shutil.copy2(tmp_path / "several-images.png", Path(artifacts) / "08-several-images.png")
        page.context.close()


@pytest.fixture
def style_from_a_stand_in(tmp_path, monkeypatch):
    """The catalog as shipped, but its Monet style served by a stand-in publisher (a small
    generator in the original release's layout), with a download cache of this test's own."""
    import torch
    from huggingface_hub import constants

    from tests.helpers import Publisher, serve
    from tests.reference_networks import RefResnetGenerator, randomize

    generator = randomize(RefResnetGenerator(3, 3, ngf=8, n_blocks=2))
    buffer = io.BytesIO()
    torch.save(generator.state_dict(), buffer)
    Publisher.files = {"style_monet.pth": buffer.getvalue()}
    server, url = serve(Publisher)
    entries = json.loads(catalog.catalog_file().read_text())
    for entry in entries["checkpoints"]:
        if entry["name"] == "cyclegan-style_monet":
            entry["sources"] = [f"{url}/files/style_monet.pth"]
        elif entry["sources"] and not entry["sources"][0].startswith(("hf://", "http")):
            entry["sources"] = [str(catalog.catalog_file().parent / entry["sources"][0])]  # shipped files, where they are
    (tmp_path / "catalog.json").write_text(json.dumps(entries))
    monkeypatch.setenv("TRANSLATOR_CATALOG", str(tmp_path / "catalog.json"))
    monkeypatch.setenv("TRANSLATOR_CACHE", str(tmp_path / "translator-cache"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    yield generator
    server.shutdown()


def test_a_painting_style_is_picked_by_what_it_does_downloaded_and_applied(style_from_a_stand_in, app_server, browser, tmp_path):
    url, studio = app_server
    source = tmp_path / "landscape.png"
    Image.fromarray(photo(64, 80)).save(source)
    page = new_page(browser, url)
    shots = Screenshots(page, tmp_path / "screenshots")
    try:
        upload(page, "Image", source)
        choose(page, "What to do", "Paint in a style")
        monet = next(label for label, name in studio.tasks()["Paint in a style"] if name == "cyclegan-style_monet")
        assert monet == "Photo to Monet painting (about 43 MB download)"
        choose(page, "Model", monet)
        shots.take("style-chosen")
        page.get_by_role("button", name="Paint", exact=True).click()
        expect(page.get_by_text(re.compile(r"80x64 PNG \(RGB\)"))).to_be_visible()
        shots.take("style-applied")
        link = block(page, "Result (full size)").locator("a").first
        with Image.open(io.BytesIO(page.request.get(link.get_attribute("href")).body())) as result:
            painted = np.asarray(result.convert("RGB"))
        # what the stand-in's generator makes of the photo, not the photo itself
        import torch

        with torch.no_grad():
            y = (style_from_a_stand_in(torch.from_numpy(photo(64, 80)).permute(2, 0, 1)[None].float() / 255 * 2 - 1) + 1) / 2
        expected = (y[0].clamp(0, 1).permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)
        assert np.abs(painted.astype(int) - expected.astype(int)).max() <= 1
        # downloaded once, and now on disk
        assert next(label for label, name in studio.tasks()["Paint in a style"] if name == "cyclegan-style_monet").endswith("(on disk)")
    except BaseException:
        shots.take("failed")
        raise


def test_a_run_started_in_the_page_draws_its_curve_and_shows_samples(app_server, browser, tmp_path):
    """Start a run from the Train tab: the loss plot draws a line on the page where Start was
    pressed (gradio's LinePlot, first handed an empty frame, never drew the rows that came later),
    a sample appears early, and the Validation box says what to add when there is no split."""
    from tests.helpers import write_images

    url, studio = app_server
    write_images(studio.workspace.datasets / "photos", [photo(48, 48, s) for s in range(4)])
    page = new_page(browser, url)
    page.get_by_role("tab", name="Train", exact=True).click()
    choose(page, "Dataset", "photos")
    steps = page.locator("#loop-steps input[type=number]")
    steps.fill("400")
    steps.press("Tab")
    page.get_by_role("button", name="Start", exact=True).click()
    # vega draws the chart as svg; the loss is a line mark, a path through the logged steps
    line = page.locator("#loss-curves g.mark-line path").first
    expect(line).to_be_visible()
    assert line.evaluate("path => path.getAttribute('d').split('L').length") >= 2  # points joined: a line
    expect(block(page, "Latest samples (input, output, target)").locator("img").first).to_be_visible()
    expect(page.get_by_text(re.compile(r"this dataset has no validation split"))).to_be_visible()
    page.get_by_role("button", name="Stop", exact=True).click()
    studio.job.wait(60)
    assert studio.job.snapshot()["status"] == "stopped"
    # the run is offered for resuming without a reload, and one click puts it in the Translate tab
    run = studio.job.snapshot()["run"]
    expect(page.get_by_role("combobox", name="Run to resume", exact=True)).to_have_value(run)
    page.get_by_role("button", name="Use this model in Translate", exact=True).click()
    expect(page.get_by_role("tab", name="Translate", exact=True)).to_have_attribute("aria-selected", "true")
    page.get_by_role("button", name=re.compile(r"^Any family and checkpoint")).click()
    expect(page.get_by_role("combobox", name="Checkpoint", exact=True)).to_have_value(f"run {run}")


# the visible texts and text boxes wider than their box, and so cut or clipped
CUT_SHORT = """() => [...document.querySelectorAll('body *')].filter(e => {
  if (!e.offsetParent) return false;
  if (e.tagName === 'INPUT') return e.type === 'text' && e.value && e.scrollWidth > e.clientWidth + 1;
  const style = getComputedStyle(e), clips = style.textOverflow === 'ellipsis' || style.overflowX === 'hidden';
  return e.childElementCount === 0 && clips && e.innerText.trim() && e.scrollWidth > e.clientWidth + 1;
}).map(e => (e.value || e.innerText).trim())"""


def test_on_a_phone_the_button_is_on_the_first_screen_and_the_result_comes_into_view(app_server, browser, tmp_path):
    url, studio = app_server
    source = tmp_path / "photo.png"
    Image.fromarray(photo(40, 48)).save(source)
    page = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True).new_page()
    page.set_default_timeout(WAIT_MS)
    try:
        page.goto(url)
        button = page.get_by_role("button", name="Upscale x4", exact=True)
        expect(button).to_be_in_viewport(timeout=WAIT_MS)
        # every tab is in the row, none folded into gradio's "..." menu
        for name in ("Translate", "Train", "Checkpoints", "Plugins"):
            expect(page.get_by_role("tab", name=name, exact=True)).to_be_in_viewport()
        upload(page, "Image", source)
        button.scroll_into_view_if_needed()
        button.click()
        # the page scrolls down to the result, a screen or two below on a phone
        expect(page.get_by_text(re.compile(r"compact-sr-x4, [\d.]+ s: 192x160 PNG"))).to_be_visible()
        expect(block(page, "Before / after").locator("img").first).to_be_in_viewport(timeout=WAIT_MS)
        # nothing on the tab is cut short: the Model picker's choice, the result's file name
        expect(page.get_by_text(catalog.find("compact-sr-x4").description, exact=True)).to_be_visible()
        # (waited for: gradio's passing "Loading" placeholders may be cut while they last)
        try:
            page.wait_for_function(f"() => ({CUT_SHORT})().length === 0", timeout=WAIT_MS)
        except PlaywrightError:
            pytest.fail(f"cut short on a phone: {page.evaluate(CUT_SHORT)}")
        # the training status is above the form there, not after it and the plots
        page.get_by_role("tab", name="Train", exact=True).click()
        status = page.locator("#training-status")
        assert status.bounding_box()["y"] < page.get_by_role("button", name="Start", exact=True).bounding_box()["y"]
        expect(status).to_be_in_viewport(timeout=WAIT_MS)
    finally:
        page.context.close()


def test_a_video_is_translated_in_the_page_and_the_result_plays_or_stops(app_server, browser, tmp_path):
    from tests.test_video import make_clip

    url, studio = app_server
    clip = make_clip(tmp_path / "clip.mp4", frames=8)
    log = {}
    page = new_page(browser, url, log)
    try:
        page.get_by_role("button", name=re.compile(r"^Video\b")).click()
        block(page, "Video (.mp4, .mkv, .mov, .webm); its audio is kept as it is").locator("input[type=file]").set_input_files(str(clip))
        page.get_by_role("button", name="Translate video", exact=True).click()
        expect(page.get_by_text(re.compile(r"8 frames, 136x104, h264 yuv420p crf 18; 1 audio/subtitle stream copied"))).to_be_visible()
        result = block(page, "Result (H.264 .mp4)").locator("video")
        expect(result).to_be_visible()
        # the browser itself decodes it: its length is the clip's, and it plays to a later frame
        page.wait_for_function("v => v.readyState >= 1 && v.duration > 0", arg=result.element_handle())
        duration = result.evaluate("v => v.duration")
        assert abs(duration - read_duration(clip)) < 0.1, duration
        result.evaluate("v => { v.muted = true; return v.play(); }")
        page.wait_for_function("v => v.currentTime > 0.1", arg=result.element_handle())
        # a long one is stopped between frames, said in one line, and leaves nothing behind
        long_clip = make_clip(tmp_path / "long.mp4", frames=400, audio=False)
        before = set(studio.results.iterdir())
        source = block(page, "Video (.mp4, .mkv, .mov, .webm); its audio is kept as it is")
        source.get_by_role("button", name="Clear").click()
        source.locator("input[type=file]").set_input_files(str(long_clip))
        page.get_by_role("button", name="Translate video", exact=True).click()
        expect(page.get_by_text(re.compile(r"/400 frames")).first).to_be_visible()  # the progress bar
        page.get_by_role("button", name="Stop", exact=True).click()
        expect(page.locator("[data-testid='toast-body']").filter(has_text=re.compile(r"stopped after \d+ of 400 frames; nothing was kept"))).to_be_visible()
        # its result folder went with its segments (other tests' processes share the folder, and
        # add or sweep theirs meanwhile: only this clip's files count)
        assert not [path for folder in set(studio.results.iterdir()) - before for path in folder.rglob("*long*")]
        assert not log["page_errors"], f"the page raised: {log['page_errors']}"
    finally:
        page.context.close()


def read_duration(path) -> float:
    import av

    with av.open(str(path)) as container:
        return container.duration / av.time_base
