"""Train: the shipped LeNet-5 and its numbers beside the report's, or train (or upload) your own."""

from __future__ import annotations

import math
import time

import pandas as pd
import streamlit as st
import torch

import app_layout
import app_shared
from rotinv import charts
from rotinv.checkpoints import MAX_CHECKPOINT_BYTES, CheckpointError, load_checkpoint_bytes, state_dict_bytes
from rotinv.limits import MNIST_TRAIN_IMAGES, training_limits, train_size_choices
from rotinv.architectures import ARCHITECTURES, DESCRIPTIONS, architecture_name, build_model
from rotinv.models import count_parameters
from rotinv.records import DEFAULT_ANGLES
from rotinv.introspection import classifier_input
from rotinv.report import CHECKPOINT_ANGLES, REPORT_TABLE1, REPORT_TABLE2, counted, table1, table2
from rotinv.precision import PRECISIONS, describe as describe_precision
from rotinv.training import (PRESETS, SCHEDULES, TrainConfig, choose_precision, estimate_seconds, preset_config,
                             report_interval, train)

SCRIPT_STARTED = time.perf_counter()  # this script run began: a click on Train is answered from here
UPLOAD = "upload_checkpoint"
UPLOAD_MESSAGE = "upload_message"
CLICKED = "train_clicked_at"  # when the script run that trained the last model began
WAITED = "train_waited"  # (model key, seconds from that click to its results on this page)
REPORT_BY_OUR_ANGLE = {row.our_angle: row for row in REPORT_TABLE2}
REDRAW_EVERY_S = 0.4  # the live training curves' least time between redraws
# The form starts as a quick demo: one epoch of 10,000 images, ~80 steps at batch 128,
# ends far above chance (87% upright with seed 0), where 2,000 images were 16 steps and 55%.
QUICK_DEMO_IMAGES, QUICK_DEMO_EPOCHS = 10_000, 1
PRESET_ESTIMATE = "preset_estimate"  # (preset name, config, images, seconds, precision) timed when a preset was chosen
PRECISION_CHOICE = "precision_choice"  # (config, PrecisionChoice): the last estimate's, which the training reuses
HELD_OUT_IMAGES = 1_000  # test images the live accuracy curve is measured on
SCHEDULE_NAMES = {"cosine": "cosine decay", "onecycle": "one-cycle (warm-up, then decay)", "constant": "constant"}
PRECISION_NAMES = {"fp32": "fp32 (float32)", "bf16": "bf16 autocast",
                   "auto": "auto: bf16 if this server's CPU has it and it is faster"}
# LeCun et al. (1998) give the original LeNet-5 "about 60,000" trainable parameters.
CLASSIC_LENET5_PARAMETERS = 60_000

st.title("Train LeNet-5 on upright digits")
st.markdown(
    "LeNet-5 learns MNIST's handwritten digits the way they were written: **upright**. "
    "The shipped model is ready to use (it is the active model in the sidebar); below it you "
    "can train your own and watch it learn, or upload a checkpoint. Then go to **Rotation sweep** "
    "to see what happens when the digits are turned."
)

test = app_shared.mnist_split(train=False)


# --- the active model ----------------------------------------------------------------------------


def angle_results(entry: app_shared.ModelEntry) -> dict | None:
    """Loss and accuracy at 0/90/180/270/360: recorded in a shipped model's JSON, else measured now."""
    if entry.source == "shipped":
        recorded = charts.recorded_by_angle(entry.metadata, CHECKPOINT_ANGLES)
        if recorded is not None:
            return recorded
    if test is None:
        return None
    with st.spinner(f"Measuring the model on the {len(test):,} test digits at 0°, 90°, 180°, 270° and 360°…"):
        results = app_shared.results_at(entry, test, CHECKPOINT_ANGLES)
    return dict(zip(CHECKPOINT_ANGLES, results))


def describe(entry: app_shared.ModelEntry) -> str:
    meta = entry.metadata or {}
    training = meta.get("training") or {}
    data = meta.get("data") or {}
    arch = meta.get("architecture") or architecture_name(entry.model)
    parts = [f"**{DESCRIPTIONS.get(arch, arch)}**",
             f"{count_parameters(entry.model):,} parameters"]
    if data.get("train_images"):
        parts.append(f"trained on {int(data['train_images']):,} images")
    if training.get("epochs"):
        parts.append(f"{counted(int(training['epochs']), 'epoch')}, Adam, learning rate "
                     f"{training.get('learning_rate')}, batch {training.get('batch_size')}, seed {training.get('seed')}")
    if training.get("augment") == "rotation":
        parts.append("with rotation augmentation")
    if entry.source == "uploaded":
        parts.append("uploaded in this session")
    return " · ".join(parts)


def classifier_note(entry: app_shared.ModelEntry) -> str | None:
    """Why the report's LeNet-5 has ten times the classic one's parameters, from its own layer sizes."""
    shape = classifier_input(entry.model) if type(entry.model) is ARCHITECTURES["lenet5"] else None
    if shape is None:
        return None
    return (f"Why {count_parameters(entry.model):,} parameters, where the classic LeNet-5 (LeCun et al., 1998) has "
            f"about {CLASSIC_LENET5_PARAMETERS:,}: the report's variant pads its convolutions and keeps "
            f"{shape.channels} maps of {shape.side}×{shape.side} before the classifier, so fc1 takes "
            f"{shape.inputs:,} inputs and holds {shape.fc1_parameters:,} of the weights; the classic one shrinks "
            "its maps to 1×1 first.")


def shipped_of(arch: str) -> app_shared.ModelEntry | None:
    return next((e for e in app_shared.shipped_models() if e.metadata.get("architecture") == arch), None)


def c4_note() -> str:
    """What the C4 option does and does not do, with the shipped C4 model's recorded accuracy off the quarter turns."""
    said = "Exactly invariant to turns by 90°, 180° and 270° by construction, not to the angles in between"
    shipped = shipped_of("lenet5_c4")
    if shipped is None or test is None or app_shared.angles_to_measure(shipped, test, [0.0, 45.0]):
        return said + "."
    upright, between = (app_shared.result_at(shipped, test, angle)[0] for angle in (0.0, 45.0))
    return (f"{said}: the shipped one reads {100 * between.accuracy:.1f}% of the test digits at 45° "
            f"({100 * upright.accuracy:.1f}% upright).")


def invariant_note(arch: str) -> str:
    """What a cyclic group CNN is for, with the shipped one's worst angle from its recorded sweep."""
    said = "Invariant head; train it with rotation augmentation (the Invariant preset) to be right at every angle"
    shipped = shipped_of(arch)
    if shipped is None or test is None or app_shared.angles_to_measure(shipped, test, DEFAULT_ANGLES):
        return said + "."
    worst = min(app_shared.results_at(shipped, test, DEFAULT_ANGLES), key=lambda r: r.accuracy)
    return f"{said}: the shipped one reads {100 * worst.accuracy:.2f}% at its worst angle ({worst.angle:g}°)."


def formatted(rows: list[dict]):
    """A table for reading from afar: accuracies as percentages, losses to 4 decimals."""
    frame = pd.DataFrame(rows)
    formats = {column: ("{:.2%}" if "accuracy" in column.lower() else "{:.4f}")
               for column in frame.columns if "accuracy" in column.lower() or "loss" in column.lower()}
    return frame.style.format(formats, na_rep="—")


def show_tables(results: dict, train_loss: float) -> None:
    left, right = app_layout.row("train_tables", [320, 470], [2, 3], gap="large")
    with left:
        st.markdown("**Table 1 — upright train and test**")
        st.table(formatted(table1(train_loss, results[0])), hide_index=True)
        st.caption("The report's row beside ours. Training loss is the running mean over the last epoch.")
    with right:
        st.markdown("**Table 2 — the same model on rotated test digits**")
        rows = [{k: v for k, v in row.items() if k != "Report angle"} for row in table2(results)]
        st.table(formatted(rows), hide_index=True)
        st.caption("The report turned its digits clockwise, so its 90° row is our 270° (counter-clockwise) "
                   "and its 270° row our 90°. Compare the two accuracy columns.")


def show_active_model(entry: app_shared.ModelEntry) -> None:
    st.header(f"The active model: {app_shared.display_label(entry)}")
    st.markdown(describe(entry))
    note = classifier_note(entry)
    if note:
        st.caption(note)
    results = angle_results(entry)
    if results is None:
        st.info("The MNIST test set is needed to measure this model; see the sidebar for how to provide it.",
                icon=":material/database:")
        return
    columns = app_layout.row("train_accuracies", [165] * len(CHECKPOINT_ANGLES))
    for column, angle in zip(columns, CHECKPOINT_ANGLES):
        report = REPORT_BY_OUR_ANGLE.get(angle)
        said = (f"report ({report.report_angle}° cw): {100 * report.accuracy:.0f}%" if report
                else f"report (upright): {100 * REPORT_TABLE1['test_accuracy']:.0f}%")
        column.metric(f"Accuracy at {angle}°", f"{100 * results[angle].accuracy:.1f}%",
                      delta=said, delta_color="off", delta_arrow="off", border=True)
    source = ("as recorded in its JSON when it was saved" if entry.source == "shipped"
              and charts.recorded_by_angle(entry.metadata, CHECKPOINT_ANGLES) else "measured just now")
    count = next(iter(results.values())).count
    worst = min((results[a] for a in CHECKPOINT_ANGLES if a % 360), key=lambda r: r.accuracy)
    st.caption(f"Test accuracy on all {count:,} test digits, each turned counter-clockwise by the angle ({source}); "
               f"under each, the report's number for the same turn. Watch the drop: {100 * results[0].accuracy:.1f}% "
               f"upright, {100 * worst.accuracy:.1f}% at {worst.angle:g}°.")
    training = (entry.metadata or {}).get("training") or {}
    show_tables(results, float(training.get("final_epoch_train_loss", float("nan"))))
    if entry.source != "shipped":
        st.download_button("Download this model (.pt)", data=state_dict_bytes(entry.model),
                           file_name=f"rotinv_{entry.fingerprint}.pt", mime="application/octet-stream",
                           icon=":material/download:", on_click="ignore", key=f"download_{entry.fingerprint}")
        st.caption("A plain state_dict; upload it again below, or load it with rotinv.checkpoints. "
                   "Nothing is written to the server's models/ folder.")


entry = app_shared.active_model()
if entry is None:
    st.info("There is no shipped model in models/ yet: train one below, or upload a .pt checkpoint.",
            icon=":material/info:")
else:
    show_active_model(entry)

st.divider()


# --- training ------------------------------------------------------------------------------------

st.header("Train your own")
st.markdown("Choose the settings and press **Train**. The curves grow as it learns; **Stop** keeps the "
            "model as trained so far. The model belongs to this browser session only.")


def quick_demo_size(limits) -> int:
    """The training-set size the form starts at: the quick demo's, or the largest this server allows below it."""
    sizes = train_size_choices(limits)
    return max((size for size in sizes if size <= QUICK_DEMO_IMAGES), default=sizes[0])


def choose_preset(name: str, limits) -> None:
    """Set the form to a preset, and time a few of its steps on this server for the estimate."""
    size = max(train_size_choices(limits))
    config = preset_config(name, epochs=min(int(PRESETS[name]["epochs"]), limits.max_epochs))
    st.session_state.update(train_arch=config.arch, train_size=size, train_epochs=config.epochs,
                            train_lr=config.learning_rate, train_schedule=config.schedule,
                            train_batch=config.batch_size, train_augment=config.augment == "rotation",
                            train_precision=config.precision)
    st.session_state[PRESET_ESTIMATE] = (name, config, size, *seconds_here(config, size))


def seconds_here(config: TrainConfig, size: int) -> tuple[float, str]:
    """How long this training would take on this server now (a few of its steps, timed), and
    in which precision ("auto" settled the way the training will settle it)."""
    # Timing needs only images of the right shape, not the 188 MB training set.
    images, labels = torch.rand(8 * config.batch_size, 1, 28, 28), torch.randint(0, 10, (8 * config.batch_size,))
    with app_shared.step_aside():  # a few dozen training steps: the other sessions are answered meanwhile
        choice = choose_precision(config, images, labels)
        seconds = estimate_seconds(config, images, labels, size, choice=choice)
    st.session_state[PRECISION_CHOICE] = (config, choice)
    return seconds, choice.reason


PRESET_BUTTONS = {
    "lecture": ("Lecture preset", ":material/school:",
                "LeNet-5 on the whole training set with the one-cycle recipe: 99% upright in two epochs."),
    "invariant": ("Invariant preset", ":material/autorenew:",
                  "The network right at every angle: C4 group convolutions, an invariant head, rotation "
                  "augmentation; it takes much longer than the lecture."),
}


def preset_buttons(limits) -> None:
    """The buttons that set the form to a named recipe, and what the chosen one will cost here."""
    for column, (name, (title, icon, about)) in zip(app_layout.row("train_presets", [150, 150]),
                                                    PRESET_BUTTONS.items()):
        column.button(title, icon=icon, key=f"{name}_preset", on_click=choose_preset, args=(name, limits),
                      help=about + " Sets the form; press Train to start.")
    chosen = st.session_state.get(PRESET_ESTIMATE)
    if chosen is not None:
        name, config, size, seconds, precision = chosen
        minutes = f" (about {seconds / 60:,.0f} min)" if seconds >= 120 else ""
        augmented = ", rotation augmentation" if config.augment == "rotation" else ""
        st.caption(f"{PRESET_BUTTONS[name][0]}: {DESCRIPTIONS.get(config.arch, config.arch)}, "
                   f"{counted(size, 'image')} × {counted(config.epochs, 'epoch')}, one-cycle to "
                   f"{config.learning_rate:g}{augmented}, in {precision}. About **{seconds:,.0f} s**{minutes} on "
                   "this server now (a few steps timed just now); the progress bar then counts down.")


def training_form(limits) -> tuple[TrainConfig, int] | None:
    architectures = app_shared.available_architectures()
    captions = {"lenet5": "No symmetry built in: it knows only the upright digits it is shown.", "lenet5_c4": c4_note(),
                **{arch: invariant_note(arch) for arch in ("c4cnn", "c8cnn")}}
    # The form's first values live in session state, not in value=: the lecture preset
    # sets them from a callback, and a widget may not have both.
    for key, value in (("train_arch", architectures[0]), ("train_size", quick_demo_size(limits)), ("train_epochs", QUICK_DEMO_EPOCHS),
                       ("train_lr", TrainConfig.learning_rate), ("train_schedule", TrainConfig.schedule),
                       ("train_batch", TrainConfig.batch_size), ("train_augment", False),
                       ("train_precision", TrainConfig.precision)):
        st.session_state.setdefault(key, value)
    with st.form("train_settings", border=True):
        arch = st.radio("Network", architectures, format_func=lambda a: DESCRIPTIONS.get(a, a), key="train_arch",
                        captions=[captions.get(a, "") for a in architectures]) if len(architectures) > 1 \
            else architectures[0]
        sizes = train_size_choices(limits)
        size = st.select_slider("Training images", sizes, format_func=lambda n: f"{n:,}", key="train_size",
                                help=f"The first N of MNIST's {MNIST_TRAIN_IMAGES:,} training images. Fewer is quicker.")
        epochs = st.number_input("Epochs", min_value=1, max_value=limits.max_epochs, step=1, key="train_epochs", help=f"At most {limits.max_epochs} here.")
        lr = st.select_slider("Learning rate (Adam)", [0.0001, 0.0003, 0.001, 0.003, 0.01], key="train_lr", help="With one-cycle, the peak it warms up to.")
        schedule = st.selectbox("Learning-rate schedule", SCHEDULES, format_func=SCHEDULE_NAMES.get,
                                key="train_schedule")
        batch = st.select_slider("Batch size", [16, 32, 64, 128, 256], key="train_batch")
        seed = st.number_input("Seed", min_value=0, max_value=2**31 - 1, value=0, step=1, key="train_seed",
                               help="Same seed and settings, same model.")
        augment = st.toggle("Rotation augmentation", key="train_augment",
                            help="Turn every training image by a random angle, so the network sees digits at all angles.")
        precision = st.selectbox("Arithmetic", PRECISIONS, format_func=PRECISION_NAMES.get, key="train_precision",
                                 help="bf16 multiplies in 16-bit floats where the CPU does so natively (AVX-512 BF16, "
                                      "AMX): faster steps, the same accuracy in our measurements (BENCHMARKS.md).")
        submitted = st.form_submit_button("Train", type="primary", icon=":material/play_arrow:", key="train_button")
    if not submitted:
        return None
    try:
        config = TrainConfig(arch=arch, epochs=int(epochs), learning_rate=float(lr), batch_size=int(batch),
                             seed=int(seed), augment="rotation" if augment else "none", schedule=schedule,
                             precision=precision)
    except ValueError as error:
        st.error(str(error))
        return None
    return config, int(size)


def run_training(config: TrainConfig, size: int, split, area) -> None:
    images = split.subset(size)
    total_steps = math.ceil(len(images) / config.batch_size) * config.epochs
    # "auto" settled before the model is made: as the estimate for this config settled it, if there was one
    timed = st.session_state.get(PRECISION_CHOICE)
    precision = timed[1] if timed is not None and timed[0] == config else choose_precision(config, images.images,
                                                                                             images.labels)
    torch.manual_seed(config.seed)  # as rotinv.training.train does, so the same seed gives the same model
    run = app_shared.TrainingRun(config, len(images), total_steps, build_model(config.arch),
                                 precision=precision.precision, precision_reason=precision.reason)
    st.session_state[app_shared.TRAINING_RUN] = run
    with area:
        st.button("Stop", icon=":material/stop:", key="stop_training",
                  help="Stops training and keeps the model as trained so far.")
        bar = st.progress(0.0, text="Starting…")
        loss_column, accuracy_column = app_layout.row("train_live_curves", [280, 280])
        loss_spot, accuracy_spot = loss_column.empty(), accuracy_column.empty()

    drawn = [-math.inf]  # when the curves were last redrawn

    def on_progress(progress) -> None:
        run.history.append(progress)  # first, so an interruption in the lines below keeps it
        held_out = ("" if progress.held_out_accuracy is None
                    else f" · held-out {100 * progress.held_out_accuracy:.1f}%")
        bar.progress(min(progress.step / total_steps, 1.0),
                     text=f"Epoch {progress.epoch} of {config.epochs} · step {progress.step:,} of {total_steps:,} · "
                          f"loss {progress.loss:.3f} · accuracy {100 * progress.accuracy:.1f}%{held_out} · "
                          f"{progress.images_per_second():,.0f} images/s · {time_left(progress)}")
        # Every report is a point on the curves, but each redraw goes to the browser: at most
        # a few times a second, and always at the end.
        if time.perf_counter() - drawn[0] >= REDRAW_EVERY_S or progress.step == total_steps:
            curves = charts.history_frame(run.history)
            for spot, metric in ((loss_spot, "Loss"), (accuracy_spot, "Accuracy")):
                app_shared.draw_template(spot, charts.training_curve_template, (metric, total_steps), curves,
                                         width="stretch")
            drawn[0] = time.perf_counter()

    # Training steps aside: the other sessions' pages are answered between its steps.
    # idle is set before it takes its turn again: a run waiting for it to stop holds one.
    with app_shared.step_aside():
        run.idle.clear()
        try:
            train(images.images, images.labels, config, on_progress=on_progress, model=run.model,
                  report_every=report_interval(total_steps), should_stop=run.stop_requested.is_set,
                  precision=precision,
                  held_out=None if test is None else (test.images[:HELD_OUT_IMAGES], test.labels[:HELD_OUT_IMAGES]))
        finally:
            run.idle.set()
    if run.stop_requested.is_set():
        return  # interrupted: the script run that asked takes the model (app_shared.finish_interrupted_training)
    app_shared.finish_training(run, "finished")
    st.rerun()  # draw everything (the sidebar too) with the new model active


def time_left(progress) -> str:
    seconds = progress.seconds_left()
    if progress.step >= progress.total_steps:
        return "done"
    return "time left: estimating…" if seconds != seconds else f"about {seconds:,.0f} s left"


def show_last_run(run: app_shared.TrainingRun) -> None:
    if run.status == "cancelled":
        st.info("Training was stopped before its first step; nothing was kept.")
        return
    entry = app_shared.session_models().get(run.model_key)
    if entry is None:
        return
    if run.status == "stopped":
        st.warning(f"Stopped at step {run.steps_done:,} of {run.total_steps:,}: the model as trained so far "
                   f"is kept as **{entry.label}**.", icon=":material/stop_circle:")
    else:
        st.success(f"Trained in {run.seconds:.1f} s ({counted(run.steps_done, 'step')} in {describe_precision(run.precision)}); "
                   f"{waited_for(run):.1f} s from your click to these results, measuring it on the test set "
                   f"included: **{entry.label}**. It is now the active model: its Tables 1 and 2 and its download "
                   "are at the top of this page.", icon=":material/check_circle:")
    if test is not None:
        upright = app_shared.results_at(entry, test, [0])[0]
        st.metric("Final test accuracy (upright)", f"{100 * upright.accuracy:.2f}%",
                  delta=f"report: {100 * REPORT_BY_OUR_ANGLE[360].accuracy:.0f}%", delta_color="off",
                  delta_arrow="off", border=True)
    loss_column, accuracy_column = app_layout.row("train_curves", [280, 280])
    curves = charts.history_frame(run.history)
    app_shared.draw_template(loss_column, charts.training_curve_template, ("Loss", run.total_steps), curves,
                             width="stretch")
    loss_column.caption("Training loss (cross-entropy, running mean over the epoch): it should fall fast, then level off.")
    app_shared.draw_template(accuracy_column, charts.training_curve_template, ("Accuracy", run.total_steps), curves,
                             width="stretch")
    accuracy_column.caption("Training accuracy on the upright training digits, all the network ever sees; dashed, "
                            f"its accuracy on {counted(HELD_OUT_IMAGES, 'upright test image')} it never trains on.")


def quick_demo_note(limits) -> str:
    """What the form's first settings do, counted from them."""
    size, batch = quick_demo_size(limits), TrainConfig.batch_size
    steps = math.ceil(size / batch) * QUICK_DEMO_EPOCHS
    text = (f"No model trained in this session yet. The settings start as a quick demo: "
            f"{counted(size, 'image')} for {counted(QUICK_DEMO_EPOCHS, 'epoch')}, "
            f"{counted(steps, 'step')} of {batch}, and its curves climb far above chance (10%).")
    shipped = next((e for e in app_shared.shipped_models() if e.key == "shipped:lenet5"), None)
    training, data = ((shipped.metadata.get(part) or {}) for part in ("training", "data")) if shipped else ({}, {})
    if training.get("epochs") and data.get("train_images"):
        text += (f" The shipped LeNet-5 was trained on {counted(int(data['train_images']), 'image')} for "
                 f"{counted(int(training['epochs']), 'epoch')}.")
    return text


def waited_for(run: app_shared.TrainingRun) -> float:
    """Seconds from the click on Train to this run's results, taken the first time they are shown."""
    waited = st.session_state.get(WAITED)
    if waited is None or waited[0] != run.model_key:
        waited = (run.model_key, time.perf_counter() - st.session_state.get(CLICKED, SCRIPT_STARTED))
        st.session_state[WAITED] = waited
    return waited[1]


try:
    limits = training_limits()
    app_shared.training_admission()  # checks ROTINV_MAX_CONCURRENT_TRAININGS
except ValueError as error:
    limits = None
    st.error(f"Training is switched off on this server because a limit is misconfigured: {error}",
             icon=":material/block:")

# The 60,000 training images (188 MB as float32) are loaded when someone trains, not on
# every first visit: most visitors only look at the shipped model.
data_problem = app_shared.data_problem()
if limits is not None and data_problem:
    st.error(f"Training needs the MNIST training images. {data_problem}", icon=":material/database:")
elif limits is not None:
    settings_column, result_column = app_layout.row("train_run", [300, 420], [1, 2], gap="large")
    with settings_column:
        preset_buttons(limits)
        request = training_form(limits)
    if request is not None:
        st.session_state[CLICKED] = SCRIPT_STARTED  # the wait for the results includes the queue
        chosen = st.session_state.get(PRESET_ESTIMATE)
        expected = chosen[3] if chosen is not None and chosen[1:3] == request else seconds_here(*request)[0]
        app_shared.ask_to_train(*request, expected_s=expected)
    # At most ROTINV_MAX_CONCURRENT_TRAININGS train at once in this process; a further press
    # waits its turn in the queue, whose card (in the sidebar, on every page) starts it here.
    admitted = app_shared.admitted_training()
    waiting = admitted is None and app_shared.waiting_ticket() is not None
    train_split = app_shared.mnist_split(train=True) if admitted is not None else None
    if admitted is not None and train_split is None:
        admitted[0].finish()
        with result_column:
            st.error("The MNIST training images could not be loaded. Check the data root named in the sidebar.",
                     icon=":material/database:")
    elif admitted is not None:
        ticket, (config, size) = admitted
        with ticket:  # the slot is freed however the training ends: finished, Stop, another click, an error
            run_training(config, size, train_split, result_column)
    elif waiting and request is not None:
        st.rerun()  # the sidebar, drawn before this press was seen, shows the place in the queue
    elif waiting:
        with result_column:
            st.info("Your training starts here when its turn comes; your place in the queue, and Cancel, "
                    "are in the sidebar.", icon=":material/hourglass_top:")
    else:
        last_run = st.session_state.get(app_shared.TRAINING_RUN)
        with result_column:
            if isinstance(last_run, app_shared.TrainingRun):
                show_last_run(last_run)
            else:
                st.info(quick_demo_note(limits), icon=":material/model_training:")

st.divider()


# --- upload --------------------------------------------------------------------------------------

st.header("Upload a checkpoint")


def on_upload() -> None:
    uploaded = st.session_state.get(UPLOAD)
    st.session_state.pop(UPLOAD_MESSAGE, None)
    if uploaded is None:
        return
    try:
        model = load_checkpoint_bytes(uploaded.getvalue())
    except CheckpointError as error:
        st.session_state[UPLOAD_MESSAGE] = ("error", f"{uploaded.name} was not loaded: {error}")
        return
    arch = architecture_name(model)
    entry = app_shared.add_session_model(model, {"architecture": arch, "uploaded_file": uploaded.name},
                                         "uploaded", uploaded.name)
    st.session_state[UPLOAD_MESSAGE] = ("success", f"Loaded {uploaded.name} ({DESCRIPTIONS.get(arch, arch)}); "
                                        f"it is now the active model, for this session only.")


st.file_uploader("A .pt file with a model's state_dict (e.g. one downloaded from this page)", type=["pt"],
                 key=UPLOAD, on_change=on_upload, max_upload_size=MAX_CHECKPOINT_BYTES // 2**20)
message = st.session_state.get(UPLOAD_MESSAGE)
if message:
    kind, text = message
    (st.error if kind == "error" else st.success)(text)
st.caption("Only weights are read (never code), and they must fit one of the known architectures.")
