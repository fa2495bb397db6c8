"""Streamlit glue shared by the pages: cached data and models, this session's models, the sidebar.

Only read-only things are shared between sessions (st.cache_resource: the datasets and
the shipped models; st.cache_data: results keyed by a content hash of the weights). A
model trained or uploaded in a browser session lives in that session's st.session_state
and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import streamlit as st
from torch import nn

from rotinv.checkpoints import CheckpointError, load_checkpoint, weights_fingerprint
from rotinv.data import DataUnavailableError, Split, load_mnist, resolve_data_root
from rotinv.evaluation import AngleResult, evaluate

MODELS_DIR = Path(__file__).resolve().parent / "models"
SESSION_MODELS = "session_models"
ACTIVE_MODEL = "active_model_key"


@dataclass(frozen=True)
class ModelEntry:
    key: str  # unique in this session: "shipped:lenet5", "session:<fingerprint>"
    label: str  # what people read in menus and legends
    model: nn.Module = field(repr=False, compare=False)  # never trained further in place
    fingerprint: str = ""  # content hash of the weights: the cache key for results
    metadata: dict = field(default_factory=dict, repr=False, compare=False)
    source: str = "shipped"  # "shipped", "trained here" or "uploaded"


# --- data ---------------------------------------------------------------------------------


@st.cache_resource(show_spinner="Loading MNIST…")
def _load_split(train: bool, root: str) -> Split:
    return load_mnist(train, root)  # an exception is not cached, so a fixed root is retried


def mnist_split(train: bool = False) -> Split | None:
    """The MNIST split, or None when it is not available (data_problem() says why)."""
    try:
        return _load_split(train, str(resolve_data_root()))
    except DataUnavailableError:
        return None


def data_problem() -> str | None:
    """Why MNIST is not available, in a sentence, or None when it is."""
    try:
        _load_split(False, str(resolve_data_root()))
    except DataUnavailableError as error:
        return str(error)
    return None


# --- models ---------------------------------------------------------------------------------


@st.cache_resource(show_spinner="Loading model…", max_entries=16)
def _load_shipped(path: str, modified: float) -> tuple[nn.Module, dict, str]:
    model, metadata = load_checkpoint(path)
    return model, metadata, weights_fingerprint(model)


def shipped_models() -> list[ModelEntry]:
    """Every loadable checkpoint in models/, LeNet-5 first."""
    entries = []
    for path in sorted(MODELS_DIR.glob("*.pt"), key=lambda p: (p.stem != "lenet5", p.stem)):
        try:
            model, metadata, fingerprint = _load_shipped(str(path), path.stat().st_mtime)
        except CheckpointError:
            continue  # a broken file in models/ must not take the app down
        label = metadata.get("label") or _shipped_label(path.stem)
        entries.append(ModelEntry(f"shipped:{path.stem}", label, model, fingerprint, metadata, "shipped"))
    return entries


def _shipped_label(stem: str) -> str:
    return {
        "lenet5": "LeNet-5 (upright training)",
        "lenet5_rotaug": "LeNet-5 + rotation augmentation",
        "lenet5_c4": "C4-equivariant LeNet",
    }.get(stem, stem)


def session_models() -> dict[str, ModelEntry]:
    """The models this browser session trained or uploaded, by key."""
    return st.session_state.setdefault(SESSION_MODELS, {})


def add_session_model(model: nn.Module, metadata: dict, source: str, label: str) -> ModelEntry:
    """Keep a model for this session only, make it the active one, and return its entry."""
    model.eval()
    fingerprint = weights_fingerprint(model)
    entry = ModelEntry(f"session:{fingerprint}", label, model, fingerprint, metadata, source)
    session_models()[entry.key] = entry
    st.session_state[ACTIVE_MODEL] = entry.key
    return entry


def all_models() -> list[ModelEntry]:
    return shipped_models() + list(session_models().values())


def active_model() -> ModelEntry | None:
    """The model chosen in the sidebar (the first shipped one by default)."""
    models = {entry.key: entry for entry in all_models()}
    if not models:
        return None
    return models.get(st.session_state.get(ACTIVE_MODEL), next(iter(models.values())))


# --- cached results ----------------------------------------------------------------------------


@st.cache_data(show_spinner=False, max_entries=2048)
def evaluate_cached(fingerprint: str, angle: float, interpolation: str, tta_copies: int,
                    _model: nn.Module, _split: Split) -> AngleResult:
    """evaluate() on the test set, cached by the weights' content hash and the settings.

    One entry per angle, so a sweep over a new range reuses the angles already done.
    """
    from rotinv.evaluation import RotationPooled

    model = _model if tta_copies <= 1 else RotationPooled(_model, tta_copies, interpolation)
    return evaluate(model, _split.images, _split.labels, angle, interpolation)


# --- sidebar --------------------------------------------------------------------------------------


def sidebar() -> None:
    """The model every page works with, and whether the data is there."""
    with st.sidebar:
        models = all_models()
        if models:
            keys = [entry.key for entry in models]
            labels = {entry.key: entry.label + ("" if entry.source == "shipped" else f" ({entry.source})")
                      for entry in models}
            current = st.session_state.get(ACTIVE_MODEL)
            st.selectbox("Active model", keys, index=keys.index(current) if current in keys else 0,
                         format_func=labels.get, key=ACTIVE_MODEL,
                         help="Shipped checkpoints, plus any model you trained or uploaded in this session.")
        else:
            st.warning("No model yet: train one on the Train page, or upload a .pt there.")
        problem = data_problem()
        if problem:
            st.error(problem, icon=":material/database:")
        else:
            st.caption(f"MNIST test set: found in {resolve_data_root()}")
