import os
import tempfile

import numpy as np
import pytest
import torch

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# what tests (and their subprocesses) record, trusted hashes and precision verdicts, stays out of the user's cache
os.environ.setdefault("TRANSLATOR_CACHE", tempfile.mkdtemp(prefix="translator-test-cache-"))
# One torch thread per test process, subprocesses included: pytest-xdist runs a process per core,
# and threads fighting over two shared cores made one test ten times slower.
os.environ["OMP_NUM_THREADS"] = "1"
torch.set_num_threads(1)
torch.set_num_interop_threads(1)


@pytest.fixture(autouse=True)
def _cpu_without_native_bf16(monkeypatch):
    """Whatever this CPU has, tests see one without native bf16, so translations keep to the fp32
    path their expected values come from; the precision policy's tests simulate the flags they need."""
    from translator import precision

    monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset())


@pytest.fixture(autouse=True)
def _no_leftover_sigchld_handler():
    """torch's DataLoader, iterated in the main thread with worker processes, installs a SIGCHLD
    handler that stays for the life of the process. In a test process that had also run the
    int8 tests, the next child to exit (torchrun's, in a video test) then crashed it with a
    segmentation fault: an xdist worker "not properly terminated". Each test starts and ends
    with the handler it found. (The app trains in a thread of its own, where torch installs
    none.)"""
    import signal

    from torch.utils.data._utils import signal_handling

    before = signal.getsignal(signal.SIGCHLD)
    yield
    if signal.getsignal(signal.SIGCHLD) is not before:
        signal.signal(signal.SIGCHLD, before)
        signal_handling._SIGCHLD_handler_set = False  # a later DataLoader installs its own again


@pytest.fixture(autouse=True)
def _deterministic():
    torch.manual_seed(0)
    np.random.seed(0)


@pytest.fixture
def app_server(tmp_path):
    """The app launched on a free local port, over a workspace in ``tmp_path``: (url, studio)."""
    from tests.helpers import launch
    from translator.app import Studio, build_app
    from translator.app.workspace import Workspace

    studio = Studio(Workspace(tmp_path / "home"), device="cpu")
    demo = build_app(studio)
    launch(demo)
    try:
        yield demo.local_url, studio
    finally:
        demo.close()
