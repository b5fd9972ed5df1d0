"""The launched app, driven through gradio_client as a program (or another Space) would drive it."""

import concurrent.futures
import io
import json
import re
import resource
import time
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest
from gradio_client import Client, handle_file
from PIL import Image

from tests.helpers import TINY_GAN, TINY_SR, launch, photo, write_images
from tests.reference_networks import RefResnetGenerator, randomize
from tests.test_hub import fake_hub, online_hub  # noqa: F401 (fixtures the stand-in Hub needs)
from tests.test_publish import hub  # noqa: F401


@pytest.fixture
def client(app_server):
    url, studio = app_server
    client = Client(url, verbose=False)
    try:
        yield client, studio
    finally:
        client.close()


def error_of(call) -> str:
    with pytest.raises(Exception) as caught:
        call()
    return str(caught.value)


def test_translate_endpoint_keeps_16_bit_and_alpha(client, tmp_path):
    client, _ = client
    pixels = np.random.default_rng(0).integers(0, 65536, (20, 18, 4), dtype=np.uint16)
    source = tmp_path / "deep.png"
    cv2.imwrite(str(source), pixels)

    result = client.predict(handle_file(str(source)), checkpoint="compact-sr-x2", api_name="/translate")

    out = cv2.imread(result, cv2.IMREAD_UNCHANGED)
    assert result.endswith("deep-compact-sr-x2.png") and out.dtype == np.uint16 and out.shape == (40, 36, 4)
    # the default checkpoint and every other parameter have defaults: the image alone is enough
    with Image.open(client.predict(handle_file(str(source)), api_name="/translate")) as image:
        assert image.size == (72, 80)
    # smaller files for those who want them: WebP keeps the transparency, in 8 bits
    small = client.predict(handle_file(str(source)), checkpoint="compact-sr-x2", format="webp", quality=100, api_name="/translate")
    with Image.open(small) as image:
        assert small.endswith("deep-compact-sr-x2.webp") and image.format == "WEBP" and image.mode == "RGBA" and image.size == (36, 40)
        assert np.abs(np.asarray(image)[..., 3].astype(int) - out[..., 3] // 257).max() <= 1
    assert "format must be png, webp or jpg, not 'gif'" in error_of(lambda: client.predict(handle_file(str(source)), format="gif", api_name="/translate"))


def test_errors_reach_the_client_as_one_line_and_the_server_keeps_serving(client, tmp_path):
    client, _ = client
    fake = tmp_path / "photo.png"
    fake.write_bytes(b"this is not a PNG")
    good = tmp_path / "good.png"
    Image.fromarray(photo(16, 16)).save(good)

    messages = [
        error_of(lambda: client.predict(handle_file(str(fake)), api_name="/translate")),
        error_of(lambda: client.predict(handle_file(str(good)), family="nope", api_name="/translate")),
        error_of(lambda: client.predict(handle_file(str(good)), checkpoint="/etc/passwd", api_name="/translate")),
        error_of(lambda: client.predict(handle_file(str(good)), settings={"tile": 3}, api_name="/translate")),
        error_of(lambda: client.predict("hf://someone/missing/x.safetensors", api_name="/pull")),
    ]
    assert "photo.png is not an image" in messages[0]
    assert "no model family named 'nope'" in messages[1]
    assert "unknown checkpoint '/etc/passwd'" in messages[2]
    assert "unknown setting 'tile' for esrgan" in messages[3]
    assert "not in the local cache" in messages[4]
    for message in messages:
        assert "\n" not in message.strip() and "Traceback" not in message
    assert Image.open(client.predict(handle_file(str(good)), api_name="/translate")).size == (64, 64)


def test_train_through_the_api_then_translate_with_the_result(client, tmp_path):
    client, studio = client
    archive = tmp_path / "tiles.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for i in range(4):
            buffer = io.BytesIO()
            Image.fromarray(photo(64, 64, seed=i)).save(buffer, format="PNG")
            z.writestr(f"tiles/{i}.png", buffer.getvalue())
        z.writestr("tiles/readme.txt", "not an image")
    assert client.predict(handle_file(str(archive)), api_name="/upload_dataset") == "tiles"

    started = client.predict("esrgan", "tiles", run_name="api-run", settings={**TINY_SR, "steps": 6}, api_name="/train")
    assert started["run"] == "api-run" and started["status"] in ("running", "done")
    deadline = time.time() + 120
    while (status := client.predict(api_name="/training_status"))["status"] == "running" and time.time() < deadline:
        time.sleep(0.2)
    assert status["status"] == "done" and status["step"] == 6 and status["data"] == "4 training samples"

    listed = client.predict(family="esrgan", api_name="/checkpoints")
    run = next(item for item in listed if item["kind"] == "run")
    assert run["label"] == "run api-run" and run["family"] == "esrgan"
    small = tmp_path / "small.png"
    Image.fromarray(photo(10, 12)).save(small)
    with Image.open(client.predict(handle_file(str(small)), checkpoint=run["checkpoint"], api_name="/translate")) as image:
        assert image.size == (24, 20)  # the run's own x2 network
    assert "already exists" in error_of(lambda: client.predict("esrgan", "tiles", run_name="api-run", api_name="/train"))


@pytest.mark.slow
def test_a_crowd_is_answered_or_told_the_queue_is_full(app_server, tmp_path, monkeypatch):
    url, studio = app_server
    monkeypatch.setattr(studio.turns, "per_client", 100)  # a crowd of visitors: here all share one address
    source = tmp_path / "big.png"
    Image.fromarray(photo(320, 320)).save(source)  # about a second of x4 work each on the CPU
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    def one(_):
        client = Client(url, verbose=False)
        try:
            return "ok" if client.predict(handle_file(str(source)), api_name="/translate").endswith(".png") else "wrong"
        except Exception as error:
            return "full" if "queue is full" in str(error).lower() else f"error: {error}"
        finally:
            client.close()

    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(one, range(20)))

    assert sorted(set(answers)) == ["full", "ok"], answers
    from translator.app.page import QUEUE_SIZE, TRANSLATIONS

    # at most those the handlers hold and those gradio's queue holds get through
    assert 1 <= answers.count("ok") <= TRANSLATIONS["concurrency_limit"] + QUEUE_SIZE
    growth_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert growth_mb < 1500, f"peak memory grew by {growth_mb:.0f} MB"


def test_uploads_over_the_limit_are_refused_before_any_handler(tmp_path, monkeypatch):
    from translator.app import Studio, build_app
    from translator.app.workspace import Workspace

    monkeypatch.setenv("TRANSLATOR_MAX_UPLOAD", "20kb")
    studio = Studio(Workspace(tmp_path / "home"), device="cpu")
    demo = build_app(studio)
    launch(demo)
    try:
        client = Client(demo.local_url, verbose=False)
        large = tmp_path / "large.png"
        Image.fromarray(np.random.default_rng(0).integers(0, 256, (200, 200, 3), dtype=np.uint8)).save(large)
        message = error_of(lambda: client.predict(handle_file(str(large)), api_name="/translate"))
        assert "exceeds the maximum file size" in message.lower() or "413" in message or "too large" in message.lower(), message
        small = tmp_path / "small.png"
        Image.fromarray(photo(8, 8)).save(small)
        assert client.predict(handle_file(str(small)), api_name="/translate").endswith(".png")
        client.close()
    finally:
        demo.close()


def test_the_training_run_cannot_be_deleted_and_a_stopped_one_goes_whole(client, tmp_path):
    client, studio = client
    folder = studio.workspace.datasets / "photos"
    folder.mkdir()
    for i in range(3):
        Image.fromarray(photo(48, 48, seed=i)).save(folder / f"{i}.png")
    client.predict("esrgan", "photos", run_name="busy", settings={**TINY_SR, "steps": 100000, "checkpoint_every": "1"}, api_name="/train")
    deadline = time.time() + 60
    while not (studio.workspace.run("busy") / "generator.safetensors").exists() and time.time() < deadline:
        time.sleep(0.1)
    generator = next(item["checkpoint"] for item in client.predict(family="esrgan", api_name="/checkpoints") if item["kind"] == "run")
    assert "run busy is training now: stop it first" in error_of(lambda: client.predict(generator, api_name="/delete_checkpoint"))
    assert (studio.workspace.run("busy") / "config.json").is_file()
    assert "the run busy is training on photos: stop it first" in error_of(lambda: client.predict("photos", api_name="/delete_dataset"))

    client.predict(api_name="/stop_training")
    studio.job.wait(60)
    assert client.predict(generator, api_name="/delete_checkpoint") == "run busy"
    assert not studio.workspace.run("busy").exists() and not list(studio.workspace.runs.iterdir())


@pytest.mark.slow
def test_the_server_remembers_a_bounded_number_of_sessions(tmp_path, monkeypatch):
    """Each new client session is remembered by gradio; past the bound the oldest are forgotten."""
    from translator.app import Studio, build_app
    from translator.app.workspace import Workspace

    monkeypatch.setenv("TRANSLATOR_SESSIONS", "3")
    demo = build_app(Studio(Workspace(tmp_path / "home"), device="cpu"))
    launch(demo)
    try:
        small = tmp_path / "small.png"
        Image.fromarray(photo(8, 8)).save(small)
        for _ in range(6):  # six fresh sessions, each through the queue
            client = Client(demo.local_url, verbose=False)
            assert client.predict(handle_file(str(small)), api_name="/translate").endswith(".png")
            client.close()
        assert demo.state_holder.capacity == 3 and len(demo.state_holder.session_data) <= 3
    finally:
        demo.close()


def test_settings_that_name_files_take_only_what_the_picker_offers(client, tmp_path):
    client, studio = client
    unpaired = studio.workspace.datasets / "h2z"
    for domain, seeds in (("trainA", range(2)), ("trainB", range(2, 4))):
        write_images(unpaired / domain, [photo(36, 36, s) for s in seeds])
    secret = tmp_path / "id_ed25519"
    secret.write_text("-----BEGIN OPENSSH PRIVATE KEY-----")
    answers = []
    for path in (secret, tmp_path / "absent"):
        message = error_of(lambda: client.predict("cyclegan", "h2z", settings={"checkpoint_b": str(path)}, api_name="/train"))
        answers.append(message.replace(str(path), "PATH"))
    # the same answer whether the file exists or not
    assert answers[0] == answers[1] and "unknown checkpoint 'PATH' for cyclegan: pick one from the list" in answers[0]
    refused = error_of(lambda: client.predict("esrgan", "h2z", settings={"vgg_weights": str(secret), "perceptual_weight": 1}, api_name="/train"))
    assert "setting 'vgg_weights' names a file on the server, which the app does not take" in refused

    # a listed checkpoint is taken: both CycleGAN generators fine-tune from the app
    from translator.checkpoints import save_checkpoint
    from translator.plugins import registry

    cyclegan, state = registry().family("cyclegan"), randomize(RefResnetGenerator(3, 3, ngf=8, n_blocks=6)).state_dict()
    generator = save_checkpoint(tmp_path / "g.safetensors", cyclegan, cyclegan.recognise(state), state)
    name = client.predict(handle_file(str(generator)), api_name="/upload_checkpoint").split(" ")[0]
    ref = next(item["checkpoint"] for item in client.predict(api_name="/checkpoints") if item["label"].startswith(name))
    settings = {**TINY_GAN, "steps": 1, "load_size": 36, "crop_size": 32, "netG": "resnet_6blocks", "checkpoint_b": ref}
    client.predict("cyclegan", "h2z", run_name="tuned", checkpoint=ref, settings=settings, api_name="/train")
    studio.job.wait(60)
    assert studio.job.snapshot()["status"] == "done", studio.job.snapshot()
    assert json.loads((studio.workspace.run("tuned") / "config.json").read_text())["settings"]["checkpoint_b"] == ref


def test_wrong_types_and_huge_values_get_one_short_line(client, tmp_path):
    client, studio = client
    small = tmp_path / "small.png"
    Image.fromarray(photo(8, 8)).save(small)
    write_images(studio.workspace.datasets / "photos" / "train", [photo(32, 32, seed) for seed in range(2)])
    cases = {
        "outscale must be a number, got str": lambda: client.predict(handle_file(str(small)), outscale="big", api_name="/translate"),
        "settings must be an object of names to plain values, got list": lambda: client.predict(handle_file(str(small)), settings=[1, 2], api_name="/translate"),
        "checkpoint must be text, got int": lambda: client.predict(handle_file(str(small)), checkpoint=7, api_name="/translate"),
        "private must be true or false, got str": lambda: client.predict("run", "me/x", private="yes", api_name="/push"),
        # every integer setting is a whole number within a stated range, however it is sent
        "setting 'steps' must be at most 1000000000, got 1e+30": lambda: client.predict("esrgan", "photos", settings={"steps": 1e30}, api_name="/train"),
        "setting 'steps' expects a whole number, got 1.5": lambda: client.predict("esrgan", "photos", settings={"steps": 1.5}, api_name="/train"),
        "setting 'batch_size' expects a whole number, got 2.5": lambda: client.predict("esrgan", "photos", settings={"batch_size": 2.5}, api_name="/train"),
        "setting 'steps' expects an integer, got '1e30'": lambda: client.predict("esrgan", "photos", settings={"steps": "1e30"}, api_name="/train"),
    }
    for expected, call in cases.items():
        message = error_of(call)
        assert expected in message and "unexpected" not in message, message
    huge = "x" * 1_000_000
    message = error_of(lambda: client.predict(handle_file(str(small)), checkpoint=huge, api_name="/translate"))
    assert message.startswith("unknown checkpoint") and len(message) <= 500 and "\n" not in message
    assert client.predict(handle_file(str(small)), api_name="/translate").endswith(".png")  # still serving


def test_a_translation_is_refused_from_its_cost_before_it_runs(client, tmp_path):
    """A 46 KB PNG of zeros at 4000 x 4000 through an x2 model held two cores for 274 s: the
    network's FLOPs for the declared size, at this host's measured speed, are checked first."""
    client, studio = client
    zeros = tmp_path / "zeros.png"
    Image.fromarray(np.zeros((4000, 4000, 3), np.uint8)).save(zeros, optimize=True)
    assert zeros.stat().st_size < 100_000
    studio.max_seconds = 1e-3  # what a host this slow would allow
    started = time.monotonic()
    message = error_of(lambda: client.predict(handle_file(str(zeros)), checkpoint="compact-sr-x2", api_name="/translate"))
    assert re.fullmatch(r"this image would take this server about [\d.]+ (s|min) with compact-sr-x2, over its limit of 0.001 s an image "
                        r"\(TRANSLATOR_APP_MAX_SECONDS\); use a smaller image or a lighter model", message), message
    assert time.monotonic() - started < 10
    studio.max_seconds = 60.0
    small = tmp_path / "small.png"
    Image.fromarray(photo(8, 8)).save(small)
    assert client.predict(handle_file(str(small)), checkpoint="compact-sr-x2", api_name="/translate").endswith(".png")


def test_a_client_with_its_share_of_work_waiting_is_told_at_once(client, tmp_path, monkeypatch):
    client, studio = client
    monkeypatch.setattr(studio.turns, "per_client", 1)
    small = tmp_path / "small.png"
    Image.fromarray(photo(8, 8)).save(small)
    with studio.turns.turn("127.0.0.1"):  # this client's one translation, still running
        started = time.monotonic()
        assert "already have 1 translations waiting" in error_of(lambda: client.predict(handle_file(str(small)), api_name="/translate"))
        assert time.monotonic() - started < 10
    assert client.predict(handle_file(str(small)), api_name="/translate").endswith(".png")


def test_a_slow_download_keeps_no_other_translation_waiting(client, tmp_path, monkeypatch):
    import translator.hub

    client, _ = client
    released = __import__("threading").Event()

    def fetch(ref, sha256=None):
        released.wait(30)  # a Hub that takes its time to answer
        raise translator.TranslatorError("timed out fetching it from the Hub")

    monkeypatch.setattr(translator.hub, "fetch", fetch)
    small = tmp_path / "small.png"
    Image.fromarray(photo(8, 8)).save(small)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        slow = pool.submit(lambda: error_of(lambda: client.predict(handle_file(str(small)), checkpoint="hf://slow/repo/model.safetensors", api_name="/translate")))
        time.sleep(1)
        started = time.monotonic()
        assert client.predict(handle_file(str(small)), api_name="/translate").endswith(".png")
        assert time.monotonic() - started < 20 and not slow.done()
        released.set()
        assert "timed out" in slow.result(60)


def test_a_run_is_admitted_only_if_it_fits_and_says_what_it_needs(client, tmp_path, monkeypatch):
    import gc
    import weakref

    from translator.training import Trainer

    client, studio = client
    networks = []
    start = Trainer._start

    def remembered(self):
        run = start(self)
        networks.append(weakref.ref(run.recipe.networks["G"]))
        return run

    monkeypatch.setattr(Trainer, "_start", remembered)
    write_images(studio.workspace.datasets / "photos", [photo(48, 48, s) for s in range(3)])
    # ten times this machine's memory: refused at once, nothing allocated, the server unchanged
    huge = error_of(lambda: client.predict("esrgan", "photos", settings={"nf": 4096, "batch_size": 64}, api_name="/train"))
    assert huge.startswith("this run needs about") and "free; lower batch_size or crop_size" in huge
    assert "workers 64 is more than this machine's" in error_of(lambda: client.predict("esrgan", "photos", settings={"workers": 64}, api_name="/train"))

    # the defaults on a CPU host are the light ones, and the status says what they need
    status = client.predict("esrgan", "photos", run_name="light", settings={"steps": 2, "workers": 0, "val_every": 0}, api_name="/train")
    assert status["estimate"].startswith("about ") and "per step" in status["estimate"]
    studio.job.wait(60)
    record = json.loads((studio.workspace.run("light") / "config.json").read_text())
    assert record["settings"]["arch"] == "srvgg" and record["training"]["batch_size"] == 4
    # and once it ends, its networks are let go
    gc.collect()
    assert len(networks) == 1 and networks[0]() is None


def test_datasets_and_results_stay_within_the_quota_and_datasets_can_be_deleted(tmp_path, monkeypatch):
    from translator.app import Studio, build_app
    from translator.app.workspace import Workspace

    monkeypatch.setenv("TRANSLATOR_QUOTA", "300kb")
    studio = Studio(Workspace(tmp_path / "home"), device="cpu")
    studio.results = tmp_path / "results"
    demo = build_app(studio)
    launch(demo)
    client = Client(demo.local_url, verbose=False)

    def archive(name: str, count: int):
        path = tmp_path / f"{name}.zip"
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
            for i in range(count):
                z.writestr(f"{i}.png", cv2.imencode(".png", np.zeros((150, 150, 3), np.uint8), [cv2.IMWRITE_PNG_COMPRESSION, 0])[1].tobytes())
        return path

    try:
        # a small zip that unpacks to far more: refused from what it declares, nothing written
        bomb = error_of(lambda: client.predict(handle_file(str(archive("bomb", 10))), api_name="/upload_dataset"))
        assert "unpacks to 662 KB, more than the 300 KB left of the workspace's 300 KB quota" in bomb
        assert studio.workspace.dataset_names() == []
        assert client.predict(handle_file(str(archive("few", 2))), api_name="/upload_dataset") == "few"
        assert "left of the workspace's" in error_of(lambda: client.predict(handle_file(str(archive("more", 3))), api_name="/upload_dataset"))
        # deleting a dataset gives its room back
        assert client.predict("few", api_name="/delete_dataset") == "few"
        assert studio.workspace.dataset_names() == [] and not list(studio.workspace.datasets.iterdir())
        assert client.predict(handle_file(str(archive("more", 3))), api_name="/upload_dataset") == "more"
        assert "no dataset named 'few'" in error_of(lambda: client.predict("few", api_name="/delete_dataset"))
        # results older than their hour, or past the quota, are cleared before the next one
        small = tmp_path / "small.png"
        Image.fromarray(photo(8, 8)).save(small)
        stale = studio.results / "old"
        stale.mkdir(parents=True)
        (stale / "x.png").write_bytes(b"0" * 120_000)
        assert client.predict(handle_file(str(small)), api_name="/translate").endswith(".png")
        assert not stale.exists()
    finally:
        client.close()
        demo.close()


def test_a_cheap_request_for_an_expensive_answer_is_refused_from_the_header(client, tmp_path, monkeypatch):
    import translator.images

    client, studio = client
    zeros = tmp_path / "zeros.png"
    Image.fromarray(np.zeros((4000, 4000, 3), np.uint8)).save(zeros, optimize=True)
    assert zeros.stat().st_size < 100_000  # tens of kilobytes that ask for 256 MP at x4
    decoded = []
    monkeypatch.setattr(translator.images, "read_image", lambda *args, **kwargs: decoded.append(args))
    started = time.monotonic()
    message = error_of(lambda: client.predict(handle_file(str(zeros)), api_name="/translate"))
    assert "the result would be 256 MP, over this app's" in message and "TRANSLATOR_APP_MAX_OUTPUT_PIXELS" in message
    assert not decoded and time.monotonic() - started < 10
    assert studio.max_output_pixels <= 64_000_000


@pytest.mark.slow
def test_a_translation_does_not_wait_while_training_loads_its_next_batch(client, tmp_path, monkeypatch):
    from translator.data import ImageFolderSet

    client, studio = client
    write_images(studio.workspace.datasets / "photos", [photo(48, 48, s) for s in range(3)])
    load = ImageFolderSet.__getitem__

    def slow(self, item):
        time.sleep(3)  # a slow disk: each batch takes this long to load
        return load(self, item)

    monkeypatch.setattr(ImageFolderSet, "__getitem__", slow)
    client.predict("esrgan", "photos", run_name="slow-data", settings={**TINY_SR, "steps": 1000, "batch_size": 1}, api_name="/train")
    try:
        deadline = time.time() + 60
        while studio.job.snapshot()["step"] < 1 and time.time() < deadline:
            time.sleep(0.05)
        small = tmp_path / "small.png"
        Image.fromarray(photo(8, 8)).save(small)
        # loading inside the device lock would keep each translation waiting 1.5 s on average
        started = time.monotonic()
        for _ in range(3):
            assert client.predict(handle_file(str(small)), api_name="/translate").endswith(".png")
        assert time.monotonic() - started < 4, "the translations waited for batches to load"
    finally:
        client.predict(api_name="/stop_training")
        studio.job.wait(60)


def test_an_uploaded_checkpoint_is_stored_once_and_within_the_quota(client, tmp_path):
    import shutil

    from gradio.utils import get_upload_folder

    from tests.helpers import MODEL

    client, studio = client
    mine = tmp_path / "stored-once-test.safetensors"
    shutil.copy(MODEL, mine)
    studio.results = tmp_path / "results"
    studio.quota = MODEL.stat().st_size // 2
    assert "storage quota has" in error_of(lambda: client.predict(handle_file(str(mine)), api_name="/upload_checkpoint"))
    assert not list(studio.workspace.checkpoints.iterdir())
    studio.quota = 10 * MODEL.stat().st_size
    assert client.predict(handle_file(str(mine)), api_name="/upload_checkpoint").startswith("stored-once-test (esrgan")
    # kept as safetensors in the workspace; gradio's copy of the upload is gone
    assert not list(Path(get_upload_folder()).rglob(mine.name))


def test_a_deflated_checkpoint_bomb_is_refused_at_upload(client, tmp_path, monkeypatch):
    import translator.checkpoints

    client, studio = client
    monkeypatch.setattr(translator.checkpoints, "MAX_BYTES", 4 * 1024**2)
    plain, bomb = tmp_path / "plain.pth", tmp_path / "bomb.pth"
    __import__("torch").save({"w": __import__("torch").zeros(2 * 1024**2)}, plain)
    with zipfile.ZipFile(plain) as source, zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as packed:
        for member in source.infolist():
            packed.writestr(member.filename, source.read(member.filename))
    message = error_of(lambda: client.predict(handle_file(str(bomb)), api_name="/upload_checkpoint"))
    assert "bomb.pth unpacks to 8 MB, over the 4 MB limit for a checkpoint" in message
    assert not list(studio.workspace.checkpoints.iterdir())


def test_a_run_published_through_the_api_is_offered_by_hf_reference_and_translates(client, tmp_path, hub):  # noqa: F811
    from tests.helpers import trainer

    client, studio = client
    write_images(tmp_path / "photos", [photo(48, 48, seed) for seed in range(3)])
    trainer("esrgan", tmp_path / "photos", studio.workspace.run("tiny"), **{**TINY_SR, "steps": 2, "sample_every": 0}).run()
    url = client.predict("tiny", "me/from-the-api", token="hf_visitor_token", licence="mit", api_name="/push")
    assert url.endswith("/me/from-the-api")
    ref = "hf://me/from-the-api/generator.safetensors"
    offered = {item["checkpoint"]: item for item in client.predict(family="esrgan", api_name="/checkpoints")}
    assert offered[ref]["kind"] == "published" and offered[ref]["label"] == "me/from-the-api/generator.safetensors (published from run tiny)"
    small = tmp_path / "small.png"
    Image.fromarray(photo(8, 8)).save(small)
    with Image.open(client.predict(handle_file(str(small)), checkpoint=ref, api_name="/translate")) as image:
        assert image.size == (16, 16)
