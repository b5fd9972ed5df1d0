"""Publishing a trained generator to the Hugging Face Hub, so that ``hf://REPO_ID/...`` pulls it back."""

from __future__ import annotations

import dataclasses
import json
import shutil
import tempfile
from pathlib import Path

from .checkpoints import FORMAT, load_checkpoint, save_checkpoint
from .errors import TranslatorError, one_line
from .runs import latest, read_metrics, read_record


def push(source: str | Path, repo_id: str, private: bool = False, token: str | None = None) -> str:
    """Upload a run folder's generator(s) or one checkpoint, in the project's format, with a
    config and a model card. Returns the repository's URL. Without ``token``, the logged-in
    user's (HF_TOKEN or `hf auth login`) is used."""
    from huggingface_hub import HfApi, errors
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(repo_id)
        if "/" not in repo_id:
            raise ValueError("expected ORG/NAME")
    except (errors.HFValidationError, ValueError) as error:
        raise TranslatorError(f"not a valid repository id {repo_id!r}: {one_line(error)}") from None
    source = Path(source)
    with tempfile.TemporaryDirectory() as folder:
        card = _stage(source, repo_id, Path(folder))
        api = HfApi(token=token or None)
        try:
            url = api.create_repo(repo_id, private=private, exist_ok=True)
            api.upload_folder(repo_id=repo_id, folder_path=folder, commit_message=f"Upload {card['family']} model from image-translator")
        except errors.HfHubHTTPError as error:
            status = error.response.status_code if error.response is not None else None
            if status == 401:
                raise TranslatorError("the Hub needs you logged in to publish: run `hf auth login` or set HF_TOKEN") from None
            if status == 403:
                raise TranslatorError(f"your token may not write to {repo_id}: use a write token, or a namespace you own") from None
            raise TranslatorError(f"the Hub refused the upload to {repo_id}: {one_line(error)}") from None
        except Exception as error:  # network failures
            raise TranslatorError(f"could not publish to {repo_id}: {one_line(error, named=True)}") from None
    return str(url)


def _stage(source: Path, repo_id: str, folder: Path) -> dict:
    """Write the files to upload into ``folder``; returns what the card says."""
    run_config: dict = {}
    if source.is_dir():
        generators = sorted(source.glob("generator*.safetensors"))
        if not generators:
            raise TranslatorError(f"{source} holds no generator*.safetensors: is it a run folder of `translator train`?")
        record = read_record(source)
        run_config = dataclasses.asdict(record) if record else {}
        records = read_metrics(source)
        metrics = {"step": next((r["step"] for r in reversed(records) if r.get("event") == "step"), None), **latest(records)}
    elif source.is_file():
        generators, metrics = [source], {}
    else:
        raise TranslatorError(f"nothing to publish at {source}")
    files = []
    for path in generators:
        checkpoint = load_checkpoint(path)  # refuses anything unsafe or broken before it leaves the machine
        name = path.name if source.is_dir() else "model.safetensors"
        if checkpoint.metadata.get("format") == FORMAT:
            shutil.copyfile(path, folder / name)
        else:  # a published .pth: upload it in the project's own format
            save_checkpoint(folder / name, checkpoint.family, checkpoint.arch, checkpoint.module.state_dict(), {"source": path.name})
        files.append((name, checkpoint))
    family, arch = files[0][1].family, files[0][1].arch
    card = {
        "family": family.name,
        "task": family.task.name,
        "architecture": arch.describe(),
        "files": [name for name, _ in files],
        "data": run_config.get("data_summary") or run_config.get("data") or "not recorded",
        "steps": metrics.get("step") or files[0][1].metadata.get("steps") or "not recorded",
        "metrics": {k: v for k, v in metrics.items() if k != "step"},
        "training": run_config.get("training", {}),
        "settings": run_config.get("settings", {}),
    }
    (folder / "config.json").write_text(json.dumps(card, indent=2))
    (folder / "README.md").write_text(_model_card(repo_id, card))
    return card


def _model_card(repo_id: str, card: dict) -> str:
    first = card["files"][0]
    metrics = "\n".join(f"- {k}: {v}" for k, v in card["metrics"].items()) or "- none recorded"
    return f"""---
library_name: image-translator
pipeline_tag: image-to-image
tags:
- image-to-image
- {card['family']}
- {card['task']}
---

# {repo_id.split('/')[-1]}

A **{card['family']}** model ({card['task']}, {card['architecture']}) trained with
image-translator. Files: {', '.join(f'`{f}`' for f in card['files'])} (safetensors, with the family and
architecture in the metadata), and `config.json` with the training settings.

- Training data: {card['data']}
- Steps: {card['steps']}

Last logged metrics:
{metrics}

## Use

```bash
translator translate photo.png --checkpoint hf://{repo_id}/{first} --output result.png
```

or fine-tune it: `translator train {card['family']} --data DIR --output RUN --checkpoint hf://{repo_id}/{first}`.
"""
