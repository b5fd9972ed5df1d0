"""Publishing a trained run, or one checkpoint, to the Hugging Face Hub: its generator(s) in the
project's format, ``config.json`` and a model card, so that ``hf://REPO_ID/FILE`` pulls it back.

A run can be published while it trains. What goes up is its latest checkpoint, and the card
tells that checkpoint's story (its step, the metrics and sample image logged up to it), not
that of the steps the run has taken since.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from . import catalog, events, openmodeldb, units
from .checkpoints import FORMAT, Checkpoint, load_checkpoint, save_checkpoint
from .errors import TranslatorError, one_line
from .runs import read_metrics, read_record
from .tasks import Task

# the card's library_name; in config.json it also marks a repository this tool published
LIBRARY = "image-translator"
# licence ids the Hub knows (a common subset of its list); other text is published as "other",
# named after the text
HUB_LICENCES = frozenset({
    "apache-2.0", "mit", "bsd", "bsd-2-clause", "bsd-3-clause", "bsd-3-clause-clear", "isc", "zlib", "unlicense", "wtfpl",
    "cc0-1.0", "cc-by-4.0", "cc-by-sa-4.0", "cc-by-nc-4.0", "cc-by-nc-sa-4.0", "cc-by-nd-4.0", "cc-by-nc-nd-4.0",
    "gpl-2.0", "gpl-3.0", "lgpl-2.1", "lgpl-3.0", "agpl-3.0", "mpl-2.0", "openrail", "openrail++", "other",
})
# an upload replaces what an earlier one of ours left: weights and samples it no longer has go
REPLACED = ["*.safetensors", "samples/*"]
SAMPLE_FILE = "samples/samples.png"


@dataclass
class Published:
    """Where a push went."""

    url: str
    repo_id: str
    family: str
    # an hf:// reference for each generator uploaded, the main one first
    references: list[str]


def push(source: str | Path, repo_id: str, private: bool = False, token: str | None = None, licence: str | None = None) -> Published:
    """Upload a run folder's latest generator(s), or one checkpoint, with a config and a model
    card. Without ``token``, the logged-in user's (HF_TOKEN or `hf auth login`) is used.
    ``licence`` overrides the one a fine-tune inherits from its catalog model."""
    from huggingface_hub import HfApi, errors
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(repo_id)
        if "/" not in repo_id:
            raise ValueError("expected ORG/NAME")
    except (errors.HFValidationError, ValueError) as error:
        raise TranslatorError(f"not a valid repository id {repo_id!r}: {one_line(error)}") from None
    with tempfile.TemporaryDirectory() as folder:
        facts = stage(Path(source), repo_id, Path(folder), licence)
        api = HfApi(token=token or None)
        try:
            _refuse_foreign(api, repo_id)
            _validate_card((Path(folder) / "README.md").read_text())
            url = api.create_repo(repo_id, private=private, exist_ok=True)
            api.upload_folder(
                repo_id=repo_id, folder_path=folder, delete_patterns=REPLACED,
                commit_message=f"Upload {facts.family} model from image-translator (step {facts.steps or '?'})",
            )
        except TranslatorError:
            raise
        except errors.HfHubHTTPError as error:
            status = error.response.status_code if error.response is not None else None
            if status == 401:
                raise TranslatorError("the Hub needs you logged in to publish: run `hf auth login` or set HF_TOKEN") from None
            if status == 403:
                raise TranslatorError(f"your token may not write to {repo_id}: use a write token, or a namespace you own") from None
            raise TranslatorError(f"the Hub refused the upload to {repo_id}: {one_line(error)}") from None
        except Exception as error:  # network failures
            raise TranslatorError(f"could not publish to {repo_id}: {one_line(error, named=True)}") from None
    return Published(str(url), repo_id, facts.family, [f"hf://{repo_id}/{name}" for name in facts.files])


def _refuse_foreign(api, repo_id: str) -> None:
    """A repository that holds files is written to only if this tool published them: a push
    never overwrites someone's other model."""
    from huggingface_hub import errors

    try:
        files = set(api.list_repo_files(repo_id)) - {".gitattributes"}
    except errors.RepositoryNotFoundError:
        return  # a new one, created next
    if not files:
        return
    if "config.json" in files:
        try:
            config = json.loads(Path(api.hf_hub_download(repo_id, "config.json")).read_text())
        except (ValueError, OSError):
            config = None
        if isinstance(config, dict) and config.get("library_name") == LIBRARY:
            return
    shown = ", ".join(sorted(files)[:3]) + (" ..." if len(files) > 3 else "")
    raise TranslatorError(f"{repo_id} already holds files that image-translator did not publish ({shown}); choose another repository")


def _validate_card(text: str) -> None:
    """The Hub's own check of the front matter, before anything is created or uploaded."""
    from huggingface_hub import ModelCard

    try:
        ModelCard(text).validate()
    except ValueError as error:
        raise TranslatorError(f"the Hub finds the model card invalid: {one_line(error)}") from None


# ---- what is uploaded ----


def stage(source: Path, repo_id: str, folder: Path, licence: str | None = None) -> CardFacts:
    """Write what a push uploads into ``folder``: the generator(s), the latest sample image,
    ``config.json`` and the card (README.md). Returns what config.json says."""
    if source.is_dir():
        originals = sorted(source.glob("generator*.safetensors"))
        if not originals:
            raise TranslatorError(f"{source} holds no generator*.safetensors: is it a run folder of `translator train`?")
    elif source.is_file():
        originals = [source]
    else:
        raise TranslatorError(f"nothing to publish at {source}")
    checkpoints = [_stage_checkpoint(path, folder, path.name if source.is_dir() else "model.safetensors") for path in originals]
    run_dir = source if source.is_dir() else None
    facts = describe(run_dir, checkpoints, licence)
    sample = latest_sample(run_dir, facts.steps) if run_dir else None
    if sample is not None:
        (folder / SAMPLE_FILE).parent.mkdir()
        shutil.copyfile(sample, folder / SAMPLE_FILE)
        facts.sample, facts.sample_step = SAMPLE_FILE, _sample_step(sample)
    (folder / "config.json").write_text(facts.to_json())
    (folder / "README.md").write_text(str(model_card(repo_id, facts)))
    return facts


def _stage_checkpoint(path: Path, folder: Path, name: str) -> tuple[str, Checkpoint]:
    # copied before it is checked: a training run may replace its file meanwhile, and what is
    # checked must be what goes up
    copy = folder / f".incoming{path.suffix}"
    shutil.copyfile(path, copy)
    checkpoint = load_checkpoint(copy)  # refuses anything unsafe or broken before it leaves the machine
    if checkpoint.metadata.get("format") == FORMAT:
        copy.rename(folder / name)
    else:  # a published .pth goes up in the project's own format
        save_checkpoint(folder / name, checkpoint.family, checkpoint.arch, checkpoint.module.state_dict(), {"source": path.name})
        copy.unlink()
    return name, checkpoint


@dataclass
class CardFacts:
    """What a published model's card says about it, and its config.json holds (in this order)."""

    # the library that wrote the files: the Hub's "library" filter
    library_name: str
    # the family and its task (paired, unpaired, super-resolution)
    family: str
    task: str
    # the network as its family describes it ("RRDBNet x4, 23 blocks")
    architecture: str
    # the licence of the network's code where it is not this project's (a spandrel architecture
    # keeps its authors'); "" for the family's own
    code_licence: str
    # the weights files in the repository, the first one the card's examples use
    files: list[str]
    # the step the files were taken at, and the total the run planned
    steps: int | None
    planned_steps: int | None
    # the training data as a stranger may read it (a Hub dataset, or a folder by its name) and
    # what was found in it; the Hub dataset ids, for the card's metadata
    data: str | None
    data_summary: str
    datasets: list[str]
    # the checkpoint it was fine-tuned from, as shown, and that checkpoint's Hub repository
    start_checkpoint: str | None
    base_model: str | None
    # the licence; where it came from when inherited from the base model (None: stated by the publisher)
    licence: str | None
    licence_from: str | None
    # what it trained on, and for how long (pauses before a resume left out)
    hardware: str
    training_seconds: float | None
    # the last logged losses at or before ``steps``, and their step
    losses: dict[str, float]
    losses_step: int | None
    # the last validation at or before ``steps``: its step and scores
    validation: dict | None
    # the family's and the loop's settings, files named rather than located
    settings: dict
    training: dict
    # what the sample image's columns are; the image in the repository and its step, if any
    sample_panels: str
    sample: str | None = None
    sample_step: int | None = None

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2)


def describe(run_dir: Path | None, checkpoints: list[tuple[str, Checkpoint]], licence: str | None = None) -> CardFacts:
    """What the card and config.json say: the first checkpoint's step, and the run's record and
    logs up to that step."""
    first = checkpoints[0][1]
    licence = (licence or "").strip() or None
    record = read_record(run_dir) if run_dir else None
    steps = _whole(first.metadata.get("steps"))
    logged = [e for e in read_metrics(run_dir) if steps is None or e.step <= steps] if run_dir else []
    data = record.data if record else first.metadata.get("data")
    base = base_model(record.start_checkpoint if record else None)
    last_step = next((e for e in reversed(logged) if isinstance(e, events.Step)), None)
    validation = next((e for e in reversed(logged) if isinstance(e, events.Validation)), None)
    return CardFacts(
        library_name=LIBRARY,
        family=first.family.name,
        task=first.family.task.name,
        architecture=first.arch.describe(),
        code_licence=first.family.licence(first.arch.name),
        files=[name for name, _ in checkpoints],
        steps=steps,
        planned_steps=record.training.get("steps") if record else None,
        data=_shown_data(data),
        data_summary=record.data_summary if record else "",
        datasets=dataset_ids(data),
        start_checkpoint=base["shown"],
        base_model=base["repo_id"],
        licence=licence or base["licence"],
        licence_from=base["shown"] if base["licence"] and not licence else None,
        hardware=record.hardware if record else "",
        training_seconds=training_seconds(logged),
        losses=last_step.losses if last_step else {},
        losses_step=last_step.step if last_step else None,
        validation={"step": validation.step, "scores": validation.scores} if validation else None,
        # an unpaired task has no target to show beside the output
        sample_panels="input | output" if first.family.task is Task.UNPAIRED else "input | output | target",
        settings=_named_not_located(record.settings) if record else {},
        training=_named_not_located(record.training) if record else {},
    )


def _named_not_located(values: dict) -> dict:
    """Settings as a stranger may read them: a file on this machine by its name, not its path."""
    return {k: Path(v).name if isinstance(v, str) and Path(v).is_absolute() else v for k, v in values.items()}


def latest_sample(run_dir: Path, steps: int | None) -> Path | None:
    """The run's last sample image at or before ``steps``."""
    samples = [p for p in sorted((run_dir / "samples").glob("step_*.png")) if steps is None or (_sample_step(p) or 0) <= steps]
    return samples[-1] if samples else None


def _sample_step(path: Path) -> int | None:
    return _whole(path.stem.removeprefix("step_"))


def base_model(start: str | None) -> dict:
    """What a fine-tuned run started from: how the card names it, its Hub model id (for
    ``base_model``) and its licence, where the catalog or the reference tells them."""
    from .refs import is_hub_ref, parse_hub

    if not start:
        return {"shown": None, "repo_id": None, "licence": None}
    if openmodeldb.is_ref(start):
        try:
            model = openmodeldb.index().find(start.removeprefix(openmodeldb.PREFIX))
        except TranslatorError:  # not cached and unreachable: the card names it without a licence
            return {"shown": start, "repo_id": None, "licence": None}
        return {"shown": f"{start} ({model.page})", "repo_id": None, "licence": model.licence}
    entry = catalog.find(start) or next((e for e in catalog.entries() if start in e.sources), None)
    repo_id = None
    for ref in (start, *(entry.sources if entry else ())):
        try:
            parsed = parse_hub(ref) if is_hub_ref(ref) else None
        except TranslatorError:
            parsed = None
        # a copy kept in a Space or a dataset repository is no model id the Hub can link to
        if parsed is not None and parsed.repo_type == "model":
            repo_id = parsed.repo_id
            break
    # a file on this machine is named, not located: its folders say nothing to a reader
    shown = start if entry or is_hub_ref(start) else Path(start).name
    return {"shown": shown, "repo_id": repo_id, "licence": entry.licence if entry and entry.licence else None}


def dataset_ids(data: str | None) -> list[str]:
    """The Hub datasets a run trained on, for the card's metadata; none for a folder."""
    from .sources import data_source

    try:
        return data_source(data).hub_ids() if data else []
    except TranslatorError:  # names no dataset the Hub can link to
        return []


def _shown_data(data: str | None) -> str | None:
    from .sources import data_source

    return data_source(data).shown() if data else None


def hub_licence(text: str | None) -> dict:
    """The card's licence fields for a licence as a person or the catalog writes it: its Hub id
    when its first word is one ("MIT (weights); CC0 photos" is mit), else "other" named after it."""
    if not text:
        return {"license": "other"}
    first = re.split(r"[\s(;,]", text.strip(), maxsplit=1)[0].lower()
    if first in HUB_LICENCES:
        return {"license": first}
    name = re.sub(r"[^a-z0-9.]+", "-", text.lower()).strip("-")[:64]
    return {"license": "other", **({"license_name": name} if name else {})}


def training_seconds(logged: list[events.Event]) -> float | None:
    """Seconds spent training, from the step records' times. The pause before a resumed run is
    left out: each session (ended by its done or stopped record) is timed from its first step
    record to its last, and the steps before a session's first record count at the mean step
    time. A crash logs no end, so the pause after one is counted."""
    sessions: list[list[events.Step]] = []
    current: list[events.Step] = []
    for event in logged:
        if isinstance(event, events.Step) and event.time:
            current.append(event)
        elif isinstance(event, events.Done) and current:  # Stopped is a Done too
            sessions.append(current)
            current = []
    if current:
        sessions.append(current)
    timed_steps = sum(s[-1].step - s[0].step for s in sessions)
    if not timed_steps:
        return None
    timed = sum(s[-1].time - s[0].time for s in sessions)
    return round(timed * sessions[-1][-1].step / timed_steps, 1)


def _whole(text) -> int | None:
    try:
        return int(text)
    except (TypeError, ValueError):
        return None


# ---- the model card ----


def model_card(repo_id: str, facts: CardFacts):
    """A ``huggingface_hub.ModelCard``: the front matter the Hub indexes, and a body for people."""
    from huggingface_hub import ModelCard, ModelCardData

    data = ModelCardData(
        library_name=LIBRARY,
        pipeline_tag="image-to-image",
        tags=list(dict.fromkeys(["image-to-image", facts.family, facts.task, LIBRARY])),
        datasets=facts.datasets or None,
        base_model=facts.base_model,
        **hub_licence(facts.licence),
    )
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n{_body(repo_id, facts)}")


def _body(repo_id: str, facts: CardFacts) -> str:
    name, first = repo_id.split("/")[-1], facts.files[0]
    lines = [
        f"# {name}",
        "",
        f"A **{facts.family}** model ({facts.task}, {facts.architecture}) trained with image-translator.",
        f"Files: {', '.join(f'`{f}`' for f in facts.files)} (safetensors, with the family and architecture in the metadata),",
        "and `config.json` with the run's settings, data and metrics.",
        "",
        "## Use",
        "",
        "```bash",
        *(f"translator translate photo.png --checkpoint hf://{repo_id}/{file} --output result.png" for file in facts.files),
        "```",
        "",
        f"or fine-tune it: `translator train {facts.family} --data DIR --output RUN --checkpoint hf://{repo_id}/{first}`.",
        "",
    ]
    if facts.sample:
        lines += [
            "## Samples",
            "",
            f"![{facts.sample_panels} at step {facts.sample_step}]({facts.sample})",
            "",
            f"Columns: {facts.sample_panels}, for the fixed images the run samples (held-out validation images",
            f"when its data has a validation split), at step {facts.sample_step}.",
            "",
        ]
    lines += ["## Training", "", *_training_lines(facts), "", "## Metrics", "", *_metric_lines(facts), "", "## Licence", "", _licence_line(facts), ""]
    return "\n".join(lines)


def _training_lines(facts: CardFacts) -> list[str]:
    data = facts.data or "not recorded"
    if facts.data_summary:
        data += f": {facts.data_summary}"
    steps, planned = facts.steps, facts.planned_steps
    if steps is None:
        shown_steps = "not recorded"
    elif planned and steps < planned:
        shown_steps = f"{steps} (a checkpoint taken before the {planned} planned)"
    else:
        shown_steps = str(steps)
    start, base = facts.start_checkpoint, facts.base_model
    if start and base and base not in start:
        start = f"`{start}` (the Hub model {base})"
    elif start:
        start = f"`{start}`"
    training = facts.training
    batch = ", ".join(f"{k.replace('_', ' ')} {training[k]}" for k in ("batch_size", "crop_size", "precision") if k in training)
    lines = [
        f"- Data: {data}",
        f"- Started from: {start or 'a new network'}",
        f"- Steps: {shown_steps}",
    ]
    if batch:
        lines.append(f"- Batch: {batch}")
    lines += [
        f"- Hardware: {facts.hardware or 'not recorded'}",
        f"- Training time: {units.duration(facts.training_seconds) if facts.training_seconds is not None else 'not recorded'}",
    ]
    return lines


def _metric_lines(facts: CardFacts) -> list[str]:
    tables = []
    if facts.losses:
        tables.append((f"Losses at step {facts.losses_step}, the last logged:", "loss", facts.losses))
    validation = facts.validation
    if validation and validation["scores"]:
        tables.append((f"Validation on held-out images at step {validation['step']}:", "measure", validation["scores"]))
    lines = []
    for title, column, values in tables:
        lines += [*([""] if lines else []), title, "", f"| {column} | value |", "|---|---|", *(f"| {k} | {_number(v)} |" for k, v in values.items())]
    return lines or ["None recorded."]


def _licence_line(facts: CardFacts) -> str:
    licence = facts.licence
    code = f" The network's code ({facts.architecture.split(' ')[0]}) is licensed {facts.code_licence}." if facts.code_licence else ""
    if not licence:
        return "The publisher has not stated a licence." + code
    if facts.licence_from:
        return f"{licence}: that of `{facts.licence_from}`, which this model was fine-tuned from." + code
    return licence + code


def _number(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)