"""Shared fixtures: the real MNIST, the shipped LeNet-5, and a fresh AppTest of the app.

Tests run on the real data. Where it is missing they fail with a message saying how to
provide it; they never skip (a skipped test in CI would hide a broken data setup).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Callable

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # the app's own modules (app_shared) and rotinv, as the app sees them
    sys.path.insert(0, str(ROOT))

from rotinv.data import DATA_ROOT_ENV, Split, default_data_root, load_mnist, mnist_available  # noqa: E402

APP = ROOT / "streamlit_app.py"
# The app's shipped checkpoints: models/, or $ROTINV_MODELS_DIR as app_shared.models_dir() reads it.
SHIPPED_LENET5 = Path(os.environ.get("ROTINV_MODELS_DIR", "").strip() or ROOT / "models") / "lenet5.pt"
# Generous: the first run of a page may load MNIST and evaluate 10,000 digits on a busy CPU.
APP_TIMEOUT = float(os.environ.get("ROTINV_APP_TEST_TIMEOUT", "600"))


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


@pytest.fixture(scope="session")
def data_root() -> str:
    """The directory holding MNIST/raw: $ROTINV_DATA_ROOT (required in CI), else the user cache."""
    root = os.environ.get(DATA_ROOT_ENV, "").strip()
    if not root:
        if _in_ci():
            pytest.fail(f"CI must set {DATA_ROOT_ENV} to a directory holding MNIST/raw (e.g. ../shared/data).")
        root = str(default_data_root())
        if not mnist_available(root):
            pytest.fail(f"MNIST is needed: set {DATA_ROOT_ENV} to a directory holding MNIST/raw, "
                        f"or put the files in {root}/MNIST/raw.")
        os.environ[DATA_ROOT_ENV] = root  # so the app under test reads the same files
    if not mnist_available(root):
        pytest.fail(f"{DATA_ROOT_ENV}={root!r} does not hold the four MNIST files under MNIST/raw/.")
    return root


@pytest.fixture(scope="session")
def mnist_test(data_root: str) -> Split:
    """The 10,000 MNIST test images and labels, loaded once per test session."""
    return load_mnist(False, data_root, download=False)


@pytest.fixture(scope="session")
def shipped_lenet5():
    """(model, metadata) of models/lenet5.pt, the shipped upright-trained LeNet-5."""
    from rotinv.checkpoints import load_checkpoint

    if not SHIPPED_LENET5.is_file():
        pytest.fail(f"{SHIPPED_LENET5} is missing; it is made by `python -m rotinv train --out models/lenet5.pt`.")
    return load_checkpoint(SHIPPED_LENET5)


@pytest.fixture
def new_app(data_root: str, monkeypatch: pytest.MonkeyPatch) -> Callable[[], "AppTest"]:  # noqa: F821
    """A factory of fresh AppTests of streamlit_app.py (each one is its own browser session).

    Each test gets an empty training queue: AppTest sessions never close, so a ticket
    left by one test would otherwise hold the slot for the next.
    """
    import rotinv.admission
    from streamlit.testing.v1 import AppTest

    monkeypatch.setattr(rotinv.admission, "_shared", None)

    def make(timeout: float = APP_TIMEOUT) -> AppTest:
        return AppTest.from_file(str(APP), default_timeout=timeout)

    return make
