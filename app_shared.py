"""Streamlit glue shared by the pages: cached data and models, this session's models, the sidebar.

Only read-only things are shared between sessions (st.cache_resource: the datasets and
the shipped models; st.cache_data: results keyed by a content hash of the weights). A
model trained or uploaded in a browser session lives in that session's st.session_state
and nowhere else.
"""

from __future__ import annotations

import functools
import os
import threading
import time
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import streamlit as st
from streamlit.runtime.scriptrunner import get_script_run_ctx
# Which part is running (Streamlit's own record of it; no public API says so in 1.67).
from streamlit.runtime.scriptrunner_utils.script_run_context import ThreadState
from torch import nn

from rotinv import charts
from rotinv.admission import WAITING, Admission, Ticket, queue_message, shared_admission
from rotinv.report import counted
from rotinv.checkpoints import CheckpointError, load_checkpoint, weights_fingerprint
from rotinv.data import DataUnavailableError, Split, load_mnist, resolve_data_root
from rotinv.evaluation import AngleResult, evaluate
from rotinv import evaluation
from rotinv.records import canonical_key, recorded_at, recorded_results, unrecorded_angles
from rotinv.limits import (DEFAULT_CONCURRENT_PAGE_RUNS, DEFAULT_MAX_SESSION_MODELS, kept_after_adding,
                           max_concurrent_page_runs, training_limits)
from rotinv.live_training import TrainingRun
from rotinv.turns import Turns, in_background

# Where the shipped checkpoints are; ROTINV_MODELS_DIR points elsewhere (tests, deployments).
MODELS_DIR_ENV = "ROTINV_MODELS_DIR"
MODELS_DIR = Path(__file__).resolve().parent / "models"
SESSION_MODELS = "session_models"
ACTIVE_MODEL = "active_model_key"  # the active model's key; set it freely (it is not a widget's key)
_ACTIVE_WIDGET = "_sidebar_active_model"  # the sidebar selectbox's own key, kept in step with ACTIVE_MODEL
TRAINING_RUN = "training_run"
PENDING_TRAINING = "pending_training"  # (config, training images) of a Train press not yet started
TRAIN_PAGE = "app_pages/1_train.py"  # where a training whose turn has come runs
QUEUE_POLL_S = 1.0  # how often a waiting session's queue card asks whether its turn has come
# The problem, then what fixes it in part, then what fixes it: how menus and the scoreboard list them.
SHIPPED_ORDER = ("lenet5", "lenet5_rotaug", "lenet5_c4", "c4cnn", "c8cnn")


@dataclass(frozen=True)
class ModelEntry:
    key: str  # unique in this session: "shipped:lenet5", "session:<fingerprint>"
    label: str  # what people read in menus and legends
    model: nn.Module = field(repr=False, compare=False)  # never trained further in place
    fingerprint: str = ""  # content hash of the weights: the cache key for results
    metadata: dict = field(default_factory=dict, repr=False, compare=False)
    source: str = "shipped"  # "shipped", "trained here" or "uploaded"
    records: dict = field(default_factory=dict, repr=False, compare=False)  # recorded results, by RecordKey


# --- data ---------------------------------------------------------------------------------


@st.cache_resource(show_spinner="Loading MNIST…")
def _load_split(train: bool, root: str) -> Split:
    # The training split only feeds trainings, batch by batch: kept as bytes, it takes 47 MB of
    # the server's memory instead of 188 MB. An exception is not cached, so a fixed root is retried.
    return load_mnist(train, root, as_bytes=train)


# What st.cache_resource loaded (with its spinner), found again without it: the pages ask
# for the test split and the shipped models a dozen times per change, and each call into
# st.cache_resource hashes its arguments, about a tenth of a slider turn in all.
_LOADED: dict[tuple, Any] = {}
_LOADED_MAX = 64  # entries; a checkpoint rewritten in place is loaded again under its new time


def _loaded(load: Callable[..., Any], *args: Any) -> Any:
    """load(*args), a st.cache_resource function, asked once per arguments (a failure is asked again)."""
    key = (load.__name__, *args)
    if key not in _LOADED:
        value = load(*args)
        if len(_LOADED) >= _LOADED_MAX:
            _LOADED.clear()
        _LOADED[key] = value
    return _LOADED[key]


def mnist_split(train: bool = False) -> Split | None:
    """The MNIST split, or None when it is not available (data_problem() says why)."""
    try:
        return _loaded(_load_split, train, str(resolve_data_root()))
    except DataUnavailableError:
        return None


def data_problem() -> str | None:
    """Why MNIST is not available, in a sentence, or None when it is."""
    try:
        _loaded(_load_split, False, str(resolve_data_root()))
    except DataUnavailableError as error:
        return str(error)
    return None


# --- models ---------------------------------------------------------------------------------


def models_dir() -> Path:
    """The folder of shipped checkpoints: $ROTINV_MODELS_DIR, else models/ beside the app."""
    configured = os.environ.get(MODELS_DIR_ENV, "").strip()
    return Path(configured).expanduser() if configured else MODELS_DIR


@st.cache_resource(show_spinner="Loading model…", max_entries=16)
def _load_shipped(path: str, modified: float) -> tuple[nn.Module, dict, str, dict]:
    model, metadata = load_checkpoint(path)
    return model, metadata, weights_fingerprint(model), recorded_results(metadata)


RESCAN_MODELS_S = 1.0  # a checkpoint copied into models/ appears within this long
_models_scan: tuple[float, Path, list[ModelEntry]] | None = None  # (when, folder, entries): one object, swapped whole


def shipped_models() -> list[ModelEntry]:
    """Every loadable checkpoint in models/, in the lecture's order (LeNet-5 first), then any others by name.

    The folder is looked at again after RESCAN_MODELS_S, not at every call: a page asks
    for the models several times per change.
    """
    global _models_scan
    folder, now = models_dir(), time.monotonic()
    scan = _models_scan
    if scan is not None and scan[1] == folder and now - scan[0] < RESCAN_MODELS_S:
        return list(scan[2])
    entries = []
    order = {stem: place for place, stem in enumerate(SHIPPED_ORDER)}
    for path in sorted(folder.glob("*.pt"), key=lambda p: (order.get(p.stem, len(order)), p.stem)):
        try:
            model, metadata, fingerprint, records = _loaded(_load_shipped, str(path), path.stat().st_mtime)
        except (CheckpointError, OSError):
            continue  # a broken (or half-copied) file in models/ must not take the app down
        label = metadata.get("label") or _shipped_label(path.stem)
        entries.append(ModelEntry(f"shipped:{path.stem}", label, model, fingerprint, metadata, "shipped", records))
    _models_scan = (now, folder, entries)
    return list(entries)


def _shipped_label(stem: str) -> str:
    return {
        "lenet5": "LeNet-5 (upright training)",
        "lenet5_rotaug": "LeNet-5 + rotation augmentation",
        "lenet5_c4": "C4-equivariant LeNet",
        "c4cnn": "C4 CNN + rotation augmentation",
        "c8cnn": "C8 CNN + rotation augmentation",
    }.get(stem, stem)


def session_models() -> dict[str, ModelEntry]:
    """The models this browser session trained or uploaded, by key."""
    return st.session_state.setdefault(SESSION_MODELS, {})


def add_session_model(model: nn.Module, metadata: dict, source: str, label: str) -> ModelEntry:
    """Keep a model for this session only, make it the active one, and return its entry."""
    model.eval()
    fingerprint = weights_fingerprint(model)
    entry = ModelEntry(f"session:{fingerprint}", label, model, fingerprint, metadata, source)
    models = session_models()
    models.pop(entry.key, None)  # the same weights again: they count as the newest
    models[entry.key] = entry
    _, dropped = kept_after_adding(list(models), session_model_cap())
    for key in dropped:  # the session's only reference: the model is freed with it
        del models[key]
    st.session_state[ACTIVE_MODEL] = entry.key
    return entry


def session_model_cap() -> int:
    """ROTINV_MAX_SESSION_MODELS; its default for a bad value (the Train page says what is wrong with it)."""
    try:
        return training_limits().max_session_models
    except ValueError:
        return DEFAULT_MAX_SESSION_MODELS


def all_models() -> list[ModelEntry]:
    return shipped_models() + list(session_models().values())


def active_model() -> ModelEntry | None:
    """The model chosen in the sidebar (the first shipped one by default)."""
    models = {entry.key: entry for entry in all_models()}
    if not models:
        return None
    return models.get(st.session_state.get(ACTIVE_MODEL), next(iter(models.values())))


def display_label(entry: ModelEntry) -> str:
    """The label with where the model came from, for menus and legends."""
    return entry.label if entry.source == "shipped" else f"{entry.label} ({entry.source})"


def available_architectures() -> list[str]:
    """The architectures a new model can be trained as, in the registry's order: the lecture's (lenet5 first)."""
    from rotinv.architectures import ARCHITECTURES

    return sorted(ARCHITECTURES, key=lambda name: name != "lenet5")


# --- results kept for everyone, on the hot path ---------------------------------------------------------
# st.cache_data and st.cache_resource hash every argument, read the function's signature
# and (cache_data) pickle the result, at each call: a fraction of a millisecond, but the
# Inside page makes dozens of such calls per turn of the slider, and on a shared server
# every session's script runs take turns on one interpreter (the GIL), so that overhead
# was a tenth of what a class of 30 waited for. kept() is for those calls, and for the
# test-set sweep, which must hold no lock while it computes (_evaluate_canonical).
_KEPT: dict[str, tuple[threading.Lock, OrderedDict]] = {}


def kept(max_entries: int) -> Callable[[Callable], Callable]:
    """Decorator: keep the last `max_entries` results of a function for every session, by its plain arguments.

    Like st.cache_resource, but keyed by the arguments themselves (hashable: strings,
    numbers, tuples), positional only, skipping those whose names start with "_" (models,
    tensors: what the other arguments name). The result is shared, not copied: read it,
    never change it. Defined again at every run of a page, the function keeps its store
    (found by its file and name), as Streamlit's caches do.
    """
    def decorate(func: Callable) -> Callable:
        code = func.__code__
        keyed = [i for i, name in enumerate(code.co_varnames[:code.co_argcount]) if not name.startswith("_")]
        lock, store = _KEPT.setdefault(f"{code.co_filename}:{func.__qualname__}", (threading.Lock(), OrderedDict()))

        def wrapper(*args: Any) -> Any:
            key = tuple(args[i] for i in keyed)
            with lock:
                if key in store:
                    store.move_to_end(key)
                    return store[key]
            value = func(*args)  # outside the lock: two sessions may both make it, once each
            put(key, value)
            return value

        def put(key: tuple, value: Any) -> None:
            with lock:
                store[key] = value
                while len(store) > max_entries:
                    store.popitem(last=False)

        def holds(*args: Any) -> bool:
            """Whether a result for these arguments is kept now."""
            with lock:
                return tuple(args[i] for i in keyed) in store

        def keep(value: Any, *args: Any) -> None:
            """Keep `value` as the result for these arguments, made some other way (a batch of them at once)."""
            put(tuple(args[i] for i in keyed), value)

        wrapper.__wrapped__, wrapper.holds, wrapper.keep = func, holds, keep
        return wrapper

    return decorate


# --- cached results ----------------------------------------------------------------------------


# Kept, not st.cache_data: st.cache_data holds a lock while it computes, and this steps
# aside from its turn meanwhile, so a session that then took the turn and asked for the
# same result would wait for the lock, and the lock's holder for the turn.
@kept(max_entries=4096)
def _evaluate_canonical(fingerprint: str, data_sha256: str, angle: float, interpolation: str, tta_copies: int,
                        _model: nn.Module, _split: Split) -> AngleResult:
    model = _model if tta_copies <= 1 else evaluation.RotationPooled(_model, tta_copies, interpolation)
    with step_aside():  # a pass over the whole test set: the other sessions are answered meanwhile
        return evaluate(model, _split.images, _split.labels, angle, interpolation)


def evaluate_cached(fingerprint: str, angle: float, interpolation: str, tta_copies: int,
                    _model: nn.Module, _split: Split) -> AngleResult:
    """evaluate() on the test set, cached by the weights' and the data's content hashes and the settings.

    One entry per angle, so a sweep over a new range reuses the angles already done.
    Angles a full turn apart share an entry (360° is 0°), and so do the two
    interpolations at quarter turns, which are exact either way.
    """
    return _evaluate_canonical(*canonical_key(fingerprint, _split.sha256, angle, interpolation, tta_copies),
                               _model, _split).at(angle)


def result_at(entry: ModelEntry, split: Split, angle: float, interpolation: str = "bilinear",
              tta_copies: int = 1, use_records: bool = True) -> tuple[AngleResult, bool]:
    """(the result at this angle, whether it is the checkpoint's recorded one).

    A shipped checkpoint's recorded sweep (`python -m rotinv record`) answers for exactly
    its weights and test set; anything else is measured through evaluate_cached.
    """
    recorded = (recorded_at(entry.records, entry.fingerprint, split.sha256, angle, interpolation, tta_copies)
                if use_records else None)
    if recorded is not None:
        return recorded, True
    return evaluate_cached(entry.fingerprint, angle, interpolation, tta_copies, entry.model, split), False


def results_at(entry: ModelEntry, split: Split, angles: Sequence[float],
               interpolation: str = "bilinear", tta_copies: int = 1) -> list[AngleResult]:
    """result_at each angle, in order."""
    return [result_at(entry, split, angle, interpolation, tta_copies)[0] for angle in angles]


# --- how long a live sweep would take ------------------------------------------------------------

# A sweep expected to measure for longer than this asks first: until it is done it holds
# the page, and on a shared server a core that other sessions are waiting for.
ASK_BEFORE_LIVE_S = 30.0

_seconds_per_image: dict[str, float] = {}  # by weights fingerprint, for this process


def angles_to_measure(entry: ModelEntry, split: Split, angles: Sequence[float], interpolation: str = "bilinear",
                      tta_copies: int = 1, use_records: bool = True) -> list[float]:
    """The angles result_at would measure rather than read from records (see records.unrecorded_angles)."""
    return unrecorded_angles(entry.records if use_records else {}, entry.fingerprint, split.sha256, angles,
                             interpolation, tta_copies)


def seconds_per_image(entry: ModelEntry, split: Split) -> float:
    """One test image through the model, timed on this server once per model and process."""
    if entry.fingerprint not in _seconds_per_image:
        _seconds_per_image[entry.fingerprint] = evaluation.seconds_per_image(entry.model, split.images[:256])
    return _seconds_per_image[entry.fingerprint]


# --- a training run that outlives its script run ------------------------------------------------


# How long a new script run waits for an interrupted training loop to reach its next step.
STOP_WAIT_S = 30.0


def finish_training(run: TrainingRun, status: str) -> ModelEntry | None:
    """Register the run's model (finished, or stopped part-way) as a model of this session.

    A run stopped before its first progress report keeps nothing (status "cancelled").
    """
    run.seconds = time.perf_counter() - run.started
    if run.steps_done == 0:
        run.status = "cancelled"
        return None
    run.status = status
    entry = add_session_model(run.model, run.metadata(), "trained here", run.label())
    run.model_key = entry.key
    return entry


def finish_interrupted_training() -> ModelEntry | None:
    """A run still marked "running" at the start of a script run was interrupted: keep its model.

    The interrupted loop is asked to stop at its next step, and waited for, first.
    """
    run = st.session_state.get(TRAINING_RUN)
    if isinstance(run, TrainingRun) and run.status == "running":
        with step_aside():  # the loop may need a turn to reach its next step
            run.stop_and_wait(STOP_WAIT_S)
        if run.status == "running":  # not finished meanwhile by the loop itself
            return finish_training(run, "stopped")
    return None


# --- the training queue (rotinv.admission) ---------------------------------------------------------


def session_id() -> str:
    """This browser session's id (AppTest gives each of its apps one too)."""
    ctx = get_script_run_ctx()
    return ctx.session_id if ctx is not None else "no-session"


def _session_open(sid: str) -> bool:
    """Whether the server still has this session: a closed tab gives its place up (after a grace period)."""
    from streamlit import runtime

    if not runtime.exists():  # AppTest runs pages without a server: its sessions never close
        return True
    return runtime.get_instance().is_active_session(sid)


# --- page runs take turns (rotinv.turns) ---------------------------------------------------------
_turns_lock = threading.Lock()
_turns: Turns | None = None
_turns_problem: str | None = None  # what was wrong with ROTINV_MAX_CONCURRENT_PAGE_RUNS, if anything


def page_turns() -> Turns:
    """This process's turns, made on first use from ROTINV_MAX_CONCURRENT_PAGE_RUNS (its default if that is bad)."""
    global _turns, _turns_problem
    with _turns_lock:
        if _turns is None:
            try:
                slots = max_concurrent_page_runs()
            except ValueError as error:
                slots, _turns_problem = DEFAULT_CONCURRENT_PAGE_RUNS, str(error)
            _turns = Turns(slots)
        return _turns


def page_turns_problem() -> str | None:
    """The message for a bad ROTINV_MAX_CONCURRENT_PAGE_RUNS (the default is used instead), or None."""
    page_turns()
    return _turns_problem


_warm_up_lock = threading.Lock()
_warm_up_thread: threading.Thread | None = None


def warm_up_in_background() -> threading.Thread:
    """Once per server process: import what a first training needs, on a low-priority thread.

    torch's optimisers import torch._dynamo (some 900 modules, 2 s of the interpreter) when
    the first is made. Imported by the first Train press instead, inside its page run,
    it held every session's page still for those seconds. Returns the thread (the same one
    at every later call).
    """
    global _warm_up_thread
    with _warm_up_lock:  # two first visitors at once start one thread
        if _warm_up_thread is None:
            def warm_up() -> None:
                with in_background():
                    import torch._dynamo  # noqa: F401

            _warm_up_thread = threading.Thread(target=warm_up, name="rotinv-warm-up", daemon=True)
            _warm_up_thread.start()
        return _warm_up_thread


@contextmanager
def step_aside() -> Iterator[None]:
    """Around long work in a page run (training, sweeping the test set): the other sessions go on meanwhile,
    and come first for the cores (rotinv.turns.in_background)."""
    with page_turns().step_aside(), in_background():
        yield


# --- page parts: named fragments that a widget reruns alone --------------------------------------
# A widget's callback reruns only the named parts it affects (st.rerun(scope=[keys])); the
# rest of the page, the sidebar included, stays on screen as it was. A part reads what it
# shows from st.session_state, never from values the full run computed before it: a
# part-only rerun does not run the code around it.
_PENDING = "_pending_widget_value:"


def page_part(key: str) -> Callable[[Callable], Callable]:
    """Decorator: a named fragment (st.fragment(key=key)) that rerun_parts() can rerun.

    Rerun alone, the parts a change reruns wait for their session's turn (page_turns) once,
    before the first, and keep it to the last; inside a whole page run they are in its turn.
    """
    def decorate(func: Callable) -> Callable:
        @functools.wraps(func)
        def in_turn(*args: Any, **kwargs: Any) -> Any:
            ctx = get_script_run_ctx()
            parts = ctx.fragment_ids_this_run if ctx is not None else None
            if not parts:  # a whole page run (streamlit_app took its turn), or no Streamlit run
                with page_turns().turn():
                    return func(*args, **kwargs)
            with page_turns().steps(parts, last=ThreadState.get().fragment_id == parts[-1]):
                return func(*args, **kwargs)

        return st.fragment(in_turn, key=key)

    return decorate


def rerun_parts(keys: Sequence[str]) -> None:
    """From a widget's callback: rerun only these named page parts, not the whole page."""
    st.rerun(scope=list(keys))


def set_widget_later(key: str, value: Any) -> None:
    """From a callback that then calls rerun_parts(): give the widget `key` this value.

    Setting st.session_state[key] in the callback is not enough there: the callback runs in
    a run that the parts' rerun replaces, so the widget is redrawn without telling the
    browser its new value (no set_value), the browser keeps showing the old one and sends
    it back with the next change, which Streamlit takes as the student's own edit: the
    page jumps back to the old digit (the load harness saw sessions shown test images
    they had not chosen). take_widget_value() sets it in the part's own run instead.
    """
    st.session_state[_PENDING + key] = value


def take_widget_value(key: str) -> None:
    """Before drawing the widget `key`: apply a value set_widget_later() left for it."""
    if _PENDING + key in st.session_state:
        st.session_state[key] = st.session_state.pop(_PENDING + key)


def training_admission() -> Admission:
    """This process's training queue; ValueError (naming the setting) for a bad ROTINV_MAX_CONCURRENT_TRAININGS."""
    return shared_admission(is_alive=_session_open)


def ask_to_train(config, train_images: int, expected_s: float | None) -> Ticket:
    """A Train press: keep its settings, and take (or keep) this session's place in the queue."""
    st.session_state[PENDING_TRAINING] = (config, train_images)
    return training_admission().request(session_id(), expected_s=expected_s)


def admitted_training() -> tuple[Ticket, tuple] | None:
    """(this session's running ticket, the settings it was asked with) when its training may start now.

    A waiting ticket takes a free slot here if it is its turn. A ticket without settings
    (they were taken by a run that has ended) is ended, so that it never holds a place.
    """
    ticket = training_admission().ticket(session_id())
    if ticket is None:
        return None
    if PENDING_TRAINING not in st.session_state:
        ticket.cancel()
        return None
    if ticket.try_start():
        return ticket, st.session_state.pop(PENDING_TRAINING)
    return None


def waiting_ticket() -> Ticket | None:
    """This session's ticket while it waits in the queue; None otherwise (a bad setting included)."""
    try:
        ticket = training_admission().ticket(session_id())
    except ValueError:
        return None  # the Train page says what is wrong with the setting
    return ticket if ticket is not None and ticket.state == WAITING else None


QUEUE_CANCEL = "queue_cancel"


@st.fragment(run_every=QUEUE_POLL_S)
def _queue_card(ticket: Ticket) -> None:
    # A fragment, so that the rest of the page stays usable while it polls; on any page,
    # so that a student who looks elsewhere while waiting keeps (and then uses) the turn.
    if st.session_state.get(QUEUE_CANCEL):  # read before the turn is taken: a click on Cancel wins
        ticket.cancel()
        st.session_state.pop(PENDING_TRAINING, None)
        st.rerun(scope="app")
    if ticket.state == WAITING and ticket.try_start() or ticket.state != WAITING:
        st.switch_page(TRAIN_PAGE)  # a full run there: it trains (or says the place was lost)
    st.info(queue_message(ticket.status()), icon=":material/hourglass_top:")
    st.button("Cancel", key=QUEUE_CANCEL, icon=":material/close:", help="Give up your place in the queue.")


# --- charts, converted to Vega-Lite once -------------------------------------------------------------
# Building and validating an Altair chart costs more server time than most of the numbers
# behind it (the Rotation sweep's five charts: most of the page's 0.4 s). A class on one
# server draws the same charts again and again, so their specs are kept for everyone.


@st.cache_data(show_spinner=False, max_entries=256)
def _chart_spec(name: str, args: tuple, _make: Callable[..., Any]) -> dict:
    return charts.vega_lite_spec(_make(*args))


# Kept, not st.cache_data: a template is asked for at every turn of a slider, and
# st.cache_data unpickles a copy of its spec each time. draw_template copies the top level.
@kept(max_entries=64)
def _template_spec(name: str, shape: tuple, _template: Callable[..., Any]) -> dict:
    return charts.vega_lite_spec(_template(*shape))


def draw_chart(spot: Any, make: Callable[..., Any], *args: Any, **options: Any) -> None:
    """spot.altair_chart(make(*args), **options), the chart made once for the same arguments (by their content)."""
    spot.vega_lite_chart(spec=_chart_spec(f"{make.__module__}.{make.__qualname__}", args, make), **options)


def draw_template(spot: Any, template: Callable[..., Any], shape: tuple, data: Any, **options: Any) -> None:
    """Draw template(*shape) (a chart template, rotinv.charts) with `data` in `spot` (st or a column).

    For a chart redrawn with new numbers at every change (a slider's): the template becomes
    Vega-Lite once per shape, and only the data is new each time.
    """
    spec = _template_spec(f"{template.__module__}.{template.__qualname__}", shape, template)
    spot.vega_lite_chart(spec=dict(spec, datasets={charts.TEMPLATE_DATA: data}), **options)


# --- page frame and sidebar ------------------------------------------------------------------------

PAGE_CONFIG = dict(page_title="rotinv: is a CNN rotation invariant?", page_icon=":material/rotate_right:",
                   layout="wide")


def _choose_model() -> None:
    st.session_state[ACTIVE_MODEL] = st.session_state[_ACTIVE_WIDGET]


def sidebar() -> None:
    """The model every page works with, and whether the data is there."""
    finish_interrupted_training()
    with st.sidebar:
        ticket = waiting_ticket()
        if ticket is not None:
            _queue_card(ticket)
        models = all_models()
        if models:
            keys = [entry.key for entry in models]
            labels = {entry.key: display_label(entry) for entry in models}
            current = st.session_state.get(ACTIVE_MODEL)
            # The widget has its own key, set here before it is drawn; pages and
            # add_session_model change ACTIVE_MODEL, which may happen after the widget exists.
            st.session_state[_ACTIVE_WIDGET] = current if current in keys else keys[0]
            # A radio, not a selectbox: its labels wrap, so a long name ("LeNet-5, rotation
            # augmentation, 2,000 images, ...") is read whole, and every choice is in sight.
            st.radio("Active model", keys, format_func=labels.get, key=_ACTIVE_WIDGET, on_change=_choose_model,
                     help="Shipped checkpoints, plus any model you trained or uploaded in this session.")
            st.session_state[ACTIVE_MODEL] = st.session_state[_ACTIVE_WIDGET]
            mine = sum(entry.source != "shipped" for entry in models)
            st.caption(f"{counted(len(models) - mine, 'shipped model')}; {mine} of yours in this session "
                       f"(they are kept only in this browser session, at most {session_model_cap()}: "
                       "a further one replaces your oldest).")
        else:
            st.warning("No model yet: train one on the Train page, or upload a .pt there.")
        problem = data_problem()
        if problem:
            st.error(problem, icon=":material/database:")
        else:
            st.caption(f":material/database: MNIST found in `{resolve_data_root()}`")
