"""Publishing runs through the real huggingface_hub upload code, against the stand-in Hub of
test_hub.py, in this process: the card it validates, the files a later download pulls back,
and the repositories it must leave alone."""

import json
import re
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.helpers import TINY_GAN, TINY_SR, launch, photo, trainer, write_images
from tests.test_hub import FakeHub, fake_hub, online_hub  # noqa: F401 (fixtures)
from translator import TranslatorError
from translator.cli import main
from translator.events import Step, Stopped
from translator.publish import dataset_ids, hub_licence, push, training_seconds


@pytest.fixture
def hub(online_hub):
    return online_hub


def card_of(repo: str):
    from huggingface_hub import ModelCard

    return ModelCard(FakeHub.published[repo]["README.md"].decode())


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny pix2pix run with a validation split, whose sample image shows validation pairs;
    trained once, and copied for each test that publishes it."""
    root = tmp_path_factory.mktemp("trained")
    for split, seeds in (("train", range(3)), ("val", range(10, 12))):
        a = [photo(36, 36, seed) for seed in seeds]
        write_images(root / "pairs" / split / "A", a)
        write_images(root / "pairs" / split / "B", [255 - x for x in a])
    settings = {**TINY_GAN, "netG": "resnet_6blocks", "steps": 2, "batch_size": 1, "load_size": 36, "crop_size": 32, "sample_every": 2}
    trainer("pix2pix", root / "pairs", root / "run", **settings).run()
    return root / "run"


@pytest.fixture
def run(trained, tmp_path):
    return Path(shutil.copytree(trained, tmp_path / "run"))


def test_a_pushed_run_has_a_valid_card_and_pulls_back_to_translate(run, tmp_path, hub, capsys):
    # as a run of a Hub dataset, fine-tuned from a catalog model, records them
    record = json.loads((run / "config.json").read_text())
    assert record["hardware"].endswith(" threads")
    record.update(data="hf://datasets/huggan/facades@0123abc/default", start_checkpoint="huggan-pix2pix-facades")
    (run / "config.json").write_text(json.dumps(record))

    published = push(run, "me/tiny-facades")
    assert published.references == ["hf://me/tiny-facades/generator.safetensors"]
    files = FakeHub.published["me/tiny-facades"]
    assert set(files) == {"generator.safetensors", "config.json", "README.md", "samples/samples.png"}
    assert files["generator.safetensors"] == (run / "generator.safetensors").read_bytes()
    assert files["samples/samples.png"] == (run / "samples" / "step_0000002.png").read_bytes()

    card = card_of("me/tiny-facades")
    card.validate()  # the stand-in's check of the front matter, as push made it
    meta = card.data.to_dict()
    assert meta["library_name"] == "image-translator" and meta["pipeline_tag"] == "image-to-image"
    assert meta["datasets"] == ["huggan/facades"] and meta["base_model"] == "huggan/pix2pix-facades-demo"
    assert meta["license"] == "mit"  # the catalog model's
    assert {"pix2pix", "paired", "image-to-image"} <= set(meta["tags"])
    body = card.text
    assert "translator translate photo.png --checkpoint hf://me/tiny-facades/generator.safetensors" in body
    assert "![input | output | target at step 2](samples/samples.png)" in body
    assert "- Steps: 2\n" in body and re.search(r"- Hardware: \S+ CPU, \d+ threads\n", body) and "- Training time: " in body
    assert "- Data: hf://datasets/huggan/facades@0123abc/default" in body
    assert "- Started from: `huggan-pix2pix-facades` (the Hub model huggan/pix2pix-facades-demo)" in body
    assert "| G_l1 |" in body and "MIT: that of `huggan-pix2pix-facades`" in body
    assert json.loads(files["config.json"])["library_name"] == "image-translator"

    Image.fromarray(photo(32, 32, 5)).save(tmp_path / "in.png")
    for checkpoint, out in ((published.references[0], "pulled.png"), (str(run / "generator.safetensors"), "local.png")):
        assert main(["translate", str(tmp_path / "in.png"), "-c", checkpoint, "-o", str(tmp_path / out)]) == 0, capsys.readouterr().err
    assert np.array_equal(np.asarray(Image.open(tmp_path / "pulled.png")), np.asarray(Image.open(tmp_path / "local.png")))


def test_a_repository_holding_something_else_is_left_alone(run, hub):
    theirs = {"model.safetensors": b"weights of another library", "README.md": b"---\nlibrary_name: diffusers\n---\n"}
    FakeHub.published["someone/their-model"] = dict(theirs)
    with pytest.raises(TranslatorError) as refused:
        push(run, "someone/their-model")
    assert str(refused.value) == "someone/their-model already holds files that image-translator did not publish (README.md, model.safetensors); choose another repository"
    assert FakeHub.published["someone/their-model"] == theirs

    # a repository this tool published takes the new upload, and loses files the run no longer has
    push(run, "me/again")
    FakeHub.published["me/again"]["generator_BA.safetensors"] = b"from an earlier push"
    push(run, "me/again", licence="Apache-2.0")
    assert "generator_BA.safetensors" not in FakeHub.published["me/again"]
    assert card_of("me/again").data.license == "apache-2.0"


def test_a_card_the_hub_would_refuse_is_not_uploaded(run, hub, monkeypatch):
    monkeypatch.setattr(FakeHub, "licences", frozenset({"other"}))
    with pytest.raises(TranslatorError, match="^the Hub finds the model card invalid: .*license"):
        push(run, "me/refused", licence="mit")
    assert "me/refused" not in FakeHub.published


def test_publishing_from_the_train_tab_while_the_run_trains(tmp_path, hub):
    """The Train tab's Publish acts on the current run (no name given), from its latest
    checkpoint, and the checkpoint pickers offer the result by its hf:// reference."""
    from translator.app import Studio
    from translator.app.workspace import Workspace

    studio = Studio(Workspace(tmp_path / "home"), device="cpu")
    with pytest.raises(TranslatorError, match="choose a trained run to publish"):
        studio.push("", "me/x", "hf_visitor_token", False)
    photos = studio.workspace.datasets / "photos"
    write_images(photos / "train", [photo(48, 48, seed) for seed in range(4)])
    write_images(photos / "val", [photo(48, 48, seed) for seed in range(10, 12)])
    studio.start_training("esrgan", "photos", "live", "", {**TINY_SR, "steps": "400", "checkpoint_every": "2", "val_every": "2"})
    generator = studio.workspace.run("live") / "generator.safetensors"
    deadline = time.time() + 60
    while studio.job.running and not (generator.exists() and studio.job.snapshot()["validation"]) and time.time() < deadline:
        time.sleep(0.05)
    assert studio.job.running, studio.job.snapshot()
    try:
        published = studio.push("", "me/live", "hf_token_typed_in_the_form", True, "")
    finally:
        studio.job.stop()
        studio.job.wait(60)
    assert published.url.endswith("/me/live")
    card = card_of("me/live")
    config = json.loads(FakeHub.published["me/live"]["config.json"])
    steps = config["steps"]
    assert 2 <= steps < 400 and f"- Steps: {steps} (a checkpoint taken before the 400 planned)" in card.text
    assert config["losses_step"] <= steps and config["validation"]["step"] <= steps and "psnr" in config["validation"]["scores"]
    assert "| psnr |" in card.text and card.data.license == "other" and "datasets" not in card.data.to_dict()
    assert "a local folder (photos)" in card.text and str(tmp_path) not in card.text

    choices = dict(studio.checkpoint_choices("esrgan"))
    assert choices["me/live/generator.safetensors (published from run live)"] == "hf://me/live/generator.safetensors"
    assert "hf://me/live/generator.safetensors" not in [ref for _, ref in studio.checkpoint_choices("pix2pix")]


def test_the_train_tabs_publish_button_refreshes_the_pickers(trained, tmp_path, hub):
    """One place to publish, the Train tab; its answer updates the Translate tab's picker too."""
    import gradio as gr

    from translator.app import Studio, build_app
    from translator.app.workspace import Workspace

    studio = Studio(Workspace(tmp_path / "home"), device="cpu")
    shutil.copytree(trained, studio.workspace.run("tiny"))
    demo = build_app(studio)
    assert [b.label for b in demo.blocks.values() if isinstance(b, gr.Accordion) and "ublish" in (b.label or "")] == ["Publish this run to the Hub"]
    publish = next(f for f in demo.fns.values() if getattr(f.fn, "__name__", "") == "publish_clicked")
    assert [b.label for b in publish.inputs][:5] == ["Run", "Repository", "Hugging Face token (write)", "private repository", "Licence"]
    assert next(b for b in publish.inputs if b.label == "Hugging Face token (write)").type == "password"
    with pytest.raises(gr.Error, match="never publishes with its server's token"):
        publish.fn("tiny", "me/from-the-tab", "", False, "", "pix2pix", "pix2pix")
    note, start_from, translate_picker = publish.fn("tiny", "me/from-the-tab", "hf_visitor_token", False, "", "pix2pix", "pix2pix")
    assert note.startswith("Published to ") and "`hf://me/from-the-tab/generator.safetensors`" in note
    for picker in (start_from, translate_picker):
        assert "hf://me/from-the-tab/generator.safetensors" in [ref for _, ref in picker.constructor_args["choices"]]


def test_visitors_act_with_their_own_identity_never_the_servers(trained, tmp_path, hub, monkeypatch, capsys):
    """A Space's HF_TOKEN is its owner's secret (the hub fixture sets one): the app publishes only
    with a token its visitor gives and reads from the Hub with none, unless the owner opts in;
    the CLI, the owner's own tool, keeps huggingface_hub's usual lookup."""
    from gradio_client import Client, handle_file

    from translator.app import Studio, build_app
    from translator.app.workspace import Workspace

    owner = "Bearer hf_test_token_not_real"
    studio = Studio(Workspace(tmp_path / "home"), device="cpu")
    shutil.copytree(trained, studio.workspace.run("tiny"))
    demo = build_app(studio)
    launch(demo)
    client = Client(demo.local_url, verbose=False)
    Image.fromarray(photo(8, 8)).save(tmp_path / "in.png")
    try:
        FakeHub.identities.clear()
        with pytest.raises(Exception, match="never publishes with its server's token"):
            client.predict("tiny", "me/by-a-stranger", "", False, "", api_name="/push")
        assert "me/by-a-stranger" not in FakeHub.published and owner not in FakeHub.identities
        assert client.predict("tiny", "me/visitor", "hf_visitor", False, "", api_name="/push").endswith("/me/visitor")
        # the card's validation names nobody (None); every other request is the visitor's
        assert set(FakeHub.identities) == {"Bearer hf_visitor", None}

        # reads: nobody's identity, then the owner's once they opt in
        FakeHub.identities.clear()
        translated = client.predict(handle_file(str(tmp_path / "in.png")), family="pix2pix", checkpoint="hf://me/visitor/generator.safetensors", api_name="/translate")
        assert translated.endswith(".png") and FakeHub.identities and set(FakeHub.identities) == {None}
        monkeypatch.setenv("TRANSLATOR_SHARE_OWNER_TOKEN", "1")
        shutil.rmtree(tmp_path / "hub-cache")
        FakeHub.identities.clear()
        client.predict(handle_file(str(tmp_path / "in.png")), family="pix2pix", checkpoint="hf://me/visitor/generator.safetensors", api_name="/translate")
        assert FakeHub.identities and set(FakeHub.identities) == {owner}
    finally:
        client.close()
        demo.close()
    # the CLI is the owner's: their token, as huggingface_hub finds it
    monkeypatch.delenv("TRANSLATOR_SHARE_OWNER_TOKEN")
    shutil.rmtree(tmp_path / "hub-cache")
    FakeHub.identities.clear()
    assert main(["pull", "hf://me/visitor/generator.safetensors"]) == 0, capsys.readouterr().err
    assert FakeHub.identities and set(FakeHub.identities) == {owner}


def test_on_a_space_with_sign_in_the_visitors_own_account_publishes(trained, tmp_path, hub, monkeypatch):
    import gradio as gr

    from translator.app import Studio, build_app
    from translator.app.workspace import Workspace

    from gradio import oauth

    monkeypatch.setenv("SYSTEM", "spaces")
    monkeypatch.setenv("SPACE_ID", "someone/image-translator")
    # what a Space with hf_oauth: true is given (gradio reads them when it is imported)
    for name, value in (("OAUTH_CLIENT_ID", "a-client-id"), ("OAUTH_CLIENT_SECRET", "a-secret"), ("OAUTH_SCOPES", "openid profile write-repos"),
                        ("OPENID_PROVIDER_URL", "https://huggingface.co")):
        monkeypatch.setattr(oauth, name, value)
    studio = Studio(Workspace(tmp_path / "home"), device="cpu")
    shutil.copytree(trained, studio.workspace.run("tiny"))
    demo = build_app(studio)
    assert any(isinstance(b, gr.LoginButton) for b in demo.blocks.values())
    publish = next(f for f in demo.fns.values() if getattr(f.fn, "__name__", "") == "publish_clicked")
    with pytest.raises(gr.Error, match="sign in with Hugging Face"):
        publish.fn("tiny", "me/signed-out", "", False, "", "pix2pix", "pix2pix", None)
    FakeHub.identities.clear()
    signed_in = gr.OAuthToken(token="hf_signed_in_visitor", scope="write-repos", expires_at=0)
    note, *_ = publish.fn("tiny", "me/signed-in", "", False, "", "pix2pix", "pix2pix", signed_in)
    assert note.startswith("Published to ") and set(FakeHub.identities) == {"Bearer hf_signed_in_visitor", None}


def test_licences_and_datasets_as_the_hub_names_them():
    assert hub_licence("MIT (weights); CC0 and public-domain training photos") == {"license": "mit"}
    assert hub_licence("BSD (pytorch-CycleGAN-and-pix2pix)") == {"license": "bsd"}
    assert hub_licence("My Lab's Licence v2") == {"license": "other", "license_name": "my-lab-s-licence-v2"}
    assert hub_licence(None) == {"license": "other"}
    assert dataset_ids("hf://datasets/huggan/facades@abc/default") == ["huggan/facades"]
    assert dataset_ids("hf://datasets/huggan/facades") == ["huggan/facades"]
    assert dataset_ids("/home/me/facades") == [] and dataset_ids(None) == []


def test_training_time_leaves_out_the_pause_before_a_resume():
    def session(start: int, t0: float, steps: int) -> list[Step]:
        return [Step(start + i, time=t0 + i) for i in range(1, steps + 1)]

    # 4 steps, stopped, resumed an hour later for 4 more: 1 s a step throughout
    records = [*session(0, 0, 4), Stopped(4), *session(4, 3600, 4)]
    assert training_seconds(records) == 8
    assert training_seconds([]) is None and training_seconds(session(0, 0, 1)) is None


def test_a_download_over_the_checkpoint_limit_is_refused_before_it_starts(tmp_path, hub, monkeypatch, capsys):
    """A 2.4 GB file was downloaded whole, refused as too large, and left in the cache: the size
    the Hub declares is checked first, and nothing is written."""
    from tests.helpers import MODEL
    from translator import checkpoints

    monkeypatch.setattr(checkpoints, "MAX_BYTES", MODEL.stat().st_size - 1)
    assert main(["pull", "hf://org/big/model.safetensors"]) == 1
    assert re.fullmatch(r"error: hf://org/big/model\.safetensors is [\d.]+ [KM]B, over the [\d.]+ [KM]B limit for a checkpoint "
                        r"\(TRANSLATOR_MAX_CHECKPOINT_BYTES\); not downloaded", capsys.readouterr().err.strip())
    assert not list((tmp_path / "hub-cache").rglob("model.safetensors"))
    monkeypatch.setattr(checkpoints, "MAX_BYTES", MODEL.stat().st_size)
    assert main(["pull", "hf://org/big/model.safetensors"]) == 0


def test_the_apps_downloads_stay_within_its_storage_quota(tmp_path, hub, monkeypatch):
    """A download through the app (Pull, or a translation's model) is refused from its declared
    size when the quota has no room for it, with the workspace's runs and uploads counted."""
    from tests.helpers import MODEL
    from translator.app import Studio
    from translator.app.workspace import Workspace

    studio = Studio(Workspace(tmp_path / "home"), device="cpu")
    studio.results = tmp_path / "results"
    studio.quota = MODEL.stat().st_size + 1000
    (studio.workspace.runs / "old").mkdir()
    (studio.workspace.runs / "old" / "weights.bin").write_bytes(bytes(2000))  # a run's files count
    with pytest.raises(TranslatorError, match=r"storage quota has [\d.]+ [KM]B left \(TRANSLATOR_QUOTA\); delete datasets, runs or checkpoints first$"):
        studio.pull("hf://org/quota/model.safetensors")
    assert not list((tmp_path / "hub-cache").rglob("model.safetensors"))
    shutil.rmtree(studio.workspace.runs / "old")
    assert studio.pull("hf://org/quota/model.safetensors").startswith("model.safetensors (esrgan")
    # what the app downloaded counts from then on: a second model no longer fits
    assert studio.room() == 1000  # quota less the model
    with pytest.raises(TranslatorError, match="storage quota has"):
        studio.pull("hf://org/other/model.safetensors")
    # deleted, it counts no more
    studio.delete(next(e.ref for e in studio.workspace.entries() if e.kind == "pulled"))
    assert studio.pull("hf://org/other/model.safetensors").startswith("model.safetensors (esrgan")
