"""Where the real MNIST is, for tests. In CI it must be there: a missing root fails, never skips."""

import os
from pathlib import Path

import pytest

from rotinv.data import DATA_ROOT_ENV, mnist_available

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "models"


def real_data_root() -> str:
    root = os.environ.get(DATA_ROOT_ENV)
    if not root or not mnist_available(root):
        pytest.fail(
            f"The real-data tests need MNIST: set {DATA_ROOT_ENV} to a directory holding MNIST/raw "
            f"(CI uses ../shared/data). Currently {DATA_ROOT_ENV}={root!r}."
        )
    return root
