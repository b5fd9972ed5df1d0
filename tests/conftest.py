import os

import numpy as np
import pytest
import torch

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(autouse=True)
def _deterministic():
    torch.manual_seed(0)
    np.random.seed(0)


def save_pth(state: dict, path, wrapper: str | None = None, prefix: str = "", extra: dict | None = None):
    """Save a state dict the way a published file would hold it."""
    state = {prefix + k: v for k, v in state.items()}
    obj = {wrapper: state} if wrapper else dict(state)
    obj.update(extra or {})
    torch.save(obj, path)
    return path


def photo(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A smooth, photo-like uint8 RGB image with edges, made deterministically."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    channels = []
    for c in range(3):
        fx, fy, phase = rng.uniform(0.02, 0.12), rng.uniform(0.02, 0.12), rng.uniform(0, 6)
        channels.append(0.5 + 0.35 * np.sin(fx * x + phase) * np.cos(fy * y + c))
    image = np.stack(channels, axis=2)
    image[height // 3 : 2 * height // 3, width // 4 : width // 2] *= 0.5  # a hard-edged block
    image += rng.normal(0, 0.02, image.shape)
    return (np.clip(image, 0, 1) * 255).round().astype(np.uint8)


@pytest.fixture
def app_server(tmp_path):
    """The app launched on a free local port, over a workspace in ``tmp_path``: (url, studio)."""
    from translator.ui import Studio, build_app, launch_options
    from translator.workspace import Workspace

    studio = Studio(Workspace(tmp_path / "home"), device="cpu")
    demo = build_app(studio)
    demo.launch(prevent_thread_lock=True, quiet=True, **launch_options())
    try:
        yield demo.local_url, studio
    finally:
        demo.close()
