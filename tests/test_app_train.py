"""The Train page, run headless with AppTest: the shipped model's numbers, training,
stopping, uploading, and the limits a shared deployment sets."""

import copy
import math
import os
import re
import sys

import pytest

import app_shared
from rotinv.checkpoints import state_dict_bytes
from rotinv.evaluation import evaluate
from rotinv.records import canonical_key
from rotinv.admission import QUEUE_PHRASE
from rotinv.limits import (MAX_CONCURRENT_TRAININGS_ENV, TrainingLimits, kept_after_adding, train_size_choices,
                           training_limits)
from rotinv.report import REPORT_TABLE1
from rotinv.precision import describe as describe_precision
from rotinv.training import Progress, TrainConfig, train


def metric(at, label: str):
    return next(m for m in at.metric if m.label == label)


def percent(text: str) -> float:
    return float(text.rstrip("%")) / 100


def test_the_shipped_model_is_active_with_its_numbers_beside_the_report(new_app, shipped_lenet5):
    _, metadata = shipped_lenet5
    at = new_app().run()
    assert not at.exception
    assert not at.error
    assert at.title[0].value == "Train LeNet-5 on upright digits"
    assert at.sidebar.radio[0].value == "shipped:lenet5"
    assert at.sidebar.radio[0].options[0] == "LeNet-5 (upright training)"
    recorded = metadata["test"]["by_angle"]
    for angle in (0, 90, 180, 270, 360):
        shown = metric(at, f"Accuracy at {angle}°").value
        assert shown == f"{100 * recorded[str(angle)]['accuracy']:.1f}%"
    table1, table2 = at.table[0].value, at.table[1].value
    assert table1["Test accuracy"].tolist() == pytest.approx([REPORT_TABLE1["test_accuracy"],
                                                              recorded["0"]["accuracy"]])
    ninety_clockwise = table2[table2["Rotation"] == "90° clockwise"].iloc[0]
    assert ninety_clockwise["Our angle (ccw)"] == 270
    assert ninety_clockwise["Report accuracy"] == 0.14
    assert ninety_clockwise["Our accuracy"] == pytest.approx(recorded["270"]["accuracy"])
    assert not at.download_button  # the shipped model is in the repository already


def test_training_through_the_button_keeps_the_model_in_this_session_only(new_app, mnist_test):
    models_dir = app_shared.models_dir()
    before = {path.name: path.read_bytes() for path in models_dir.iterdir()}
    at = new_app().run()
    at.select_slider(key="train_size").set_value(2_000)
    at.number_input(key="train_epochs").set_value(1)
    at.button(key="train_button").click()
    at.run()
    assert not at.exception
    assert not at.error

    run = at.session_state[app_shared.TRAINING_RUN]
    assert run.status == "finished" and run.train_images == 2_000
    assert run.steps_done == run.total_steps == math.ceil(2_000 / TrainConfig.batch_size)  # one epoch
    # A short run reports every step, so even the smallest one draws a curve, not a dot.
    assert [progress.step for progress in run.history] == list(range(1, run.total_steps + 1))
    entry = at.session_state[app_shared.SESSION_MODELS][run.model_key]
    assert at.session_state[app_shared.ACTIVE_MODEL] == entry.key
    assert at.sidebar.radio[0].value == entry.key

    final = metric(at, "Final test accuracy (upright)").value
    expected = evaluate(entry.model, mnist_test.images, mnist_test.labels, 0).accuracy
    assert final == f"{100 * expected:.2f}%"
    assert expected > 0.5  # well above chance after one short epoch
    assert [button.label for button in at.download_button] == ["Download this model (.pt)"]  # one, not two
    finished = next(message.value for message in at.success if message.value.startswith("Trained in"))
    trained, waited = (float(seconds) for seconds in re.findall(r"([0-9.]+) s\b", finished))
    assert 0 < trained <= waited  # the wait from the click includes the training and the measuring after it
    assert f"({run.total_steps} steps in fp32)" in finished
    # the app never writes into models/: the shipped files are exactly as they were
    assert {path.name: path.read_bytes() for path in models_dir.iterdir()} == before

    # Another browser session sees the shipped models, not this one's.
    other = new_app().run()
    assert not other.exception
    assert app_shared.display_label(entry) in at.sidebar.radio[0].options
    assert app_shared.display_label(entry) not in other.sidebar.radio[0].options
    assert not any("trained here" in label for label in other.sidebar.radio[0].options)
    assert app_shared.SESSION_MODELS not in other.session_state or not other.session_state[app_shared.SESSION_MODELS]


def test_the_report_interval_gives_every_run_tens_of_points():
    from rotinv.training import REPORT_POINTS, report_interval

    assert [report_interval(steps) for steps in (1, 16, 40, 41, 79, 9_380)] == [1, 1, 1, 2, 2, 235]
    for steps in (16, 79, 469, 9_380):  # the quick demo and the form's extremes, at batch 128
        reports = len(range(report_interval(steps), steps + 1, report_interval(steps)))
        assert min(steps, REPORT_POINTS // 2) <= reports <= REPORT_POINTS


def test_the_page_explains_its_numbers(new_app, mnist_test):
    at = new_app().run()
    assert not at.exception
    # The form starts at the quick demo: 10,000 images for one epoch, far more steps than points.
    assert at.select_slider(key="train_size").value == 10_000 and at.number_input(key="train_epochs").value == 1
    quick = next(info.value for info in at.info if "quick demo" in info.value)
    assert f"{math.ceil(10_000 / TrainConfig.batch_size)} steps" in quick
    assert "6 epochs" in quick and "epoch(s)" not in " ".join(markdown.value for markdown in at.markdown)
    # Why 767,426 parameters: fc1's 5,880 inputs, from the model itself.
    note = next(caption.value for caption in at.caption if caption.value.startswith("Why 767,426 parameters"))
    assert "120 maps of 7×7" in note and "fc1 takes 5,880 inputs" in note
    # The C4 option says it is invariant to quarter turns only, with the shipped C4's own 45° number.
    radio = at.radio(key="train_arch")
    assert radio.options == ["LeNet-5 (the report's network)", "C4-equivariant LeNet (invariant to quarter turns only)",
                             "C4 CNN: six C4 group-conv stages, invariant head",
                             "C8 CNN: six C8 group-conv stages, invariant head"]
    c4 = next(entry for entry in app_shared.shipped_models() if entry.key == "shipped:lenet5_c4")
    recorded = c4.records[canonical_key(c4.fingerprint, mnist_test.sha256, 45.0, "bilinear", 1)]
    assert f"reads {100 * recorded.accuracy:.1f}% of the test digits at 45°" in radio.proto.captions[1]
    # The invariant networks' captions carry their shipped model's recorded worst angle.
    for index, name in ((2, "c4cnn"), (3, "c8cnn")):
        shipped = next(entry for entry in app_shared.shipped_models() if entry.key == f"shipped:{name}")
        worst = min((shipped.records[canonical_key(shipped.fingerprint, mnist_test.sha256, float(a), "bilinear", 1)]
                     .at(a) for a in range(0, 360, 15)), key=lambda r: r.accuracy)
        assert (f"reads {100 * worst.accuracy:.2f}% at its worst angle ({worst.angle:g}°)"
                in radio.proto.captions[index]), radio.proto.captions[index]


def test_a_bad_upload_is_an_error_and_a_good_one_becomes_active(new_app, shipped_lenet5):
    at = new_app().run()
    at.file_uploader(key="upload_checkpoint").set_value(("random.pt", os.urandom(4096), "application/octet-stream"))
    at.run()
    assert not at.exception
    assert any("random.pt was not loaded" in error.value for error in at.error)
    assert not any("uploaded" in label for label in at.sidebar.radio[0].options)

    model, _ = shipped_lenet5
    at.file_uploader(key="upload_checkpoint").set_value(("mine.pt", state_dict_bytes(model), "application/octet-stream"))
    at.run()
    assert not at.exception
    assert not at.error
    assert any("Loaded mine.pt" in message.value for message in at.success)
    active = at.session_state[app_shared.ACTIVE_MODEL]
    assert active.startswith("session:") and at.sidebar.radio[0].value == active
    assert "mine.pt (uploaded)" in at.sidebar.radio[0].options


def test_a_run_interrupted_by_stop_keeps_the_model_as_trained_so_far(new_app, shipped_lenet5):
    at = new_app().run()
    model = copy.deepcopy(shipped_lenet5[0])  # stands in for a half-trained model (and is cheap to measure)
    config = TrainConfig(epochs=1, batch_size=64)  # 32 steps over 2,000 images
    run = app_shared.TrainingRun(config, 2_000, 32, model,
                                 history=[Progress(1, 20, 32, 0.9, 0.7, 1_280)])
    at.session_state[app_shared.TRAINING_RUN] = run  # as the page leaves it when a click interrupts training
    at.run()
    assert not at.exception
    assert run.status == "stopped"
    assert any("Stopped at step 20 of 32" in warning.value for warning in at.warning)
    active = at.session_state[app_shared.SESSION_MODELS][at.session_state[app_shared.ACTIVE_MODEL]]
    assert active.label.endswith("stopped at step 20") and active.source == "trained here"


# --- limits for shared deployments -----------------------------------------------------------


def test_training_limits_come_from_the_environment():
    assert training_limits({}) == TrainingLimits(20, 60_000)
    assert training_limits({"ROTINV_MAX_EPOCHS": "3", "ROTINV_MAX_TRAIN_IMAGES": " 5000 "}) == TrainingLimits(3, 5_000)
    for bad in ({"ROTINV_MAX_EPOCHS": "many"}, {"ROTINV_MAX_EPOCHS": "0"}, {"ROTINV_MAX_TRAIN_IMAGES": "70000"}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            training_limits(bad)
    assert train_size_choices(TrainingLimits(20, 5_000)) == [2_000, 5_000]
    assert train_size_choices(TrainingLimits(20, 60_000)) == [2_000, 10_000, 60_000]


def test_the_page_honours_the_limits_and_explains_a_bad_one(new_app, monkeypatch):
    monkeypatch.setenv("ROTINV_MAX_EPOCHS", "2")
    monkeypatch.setenv("ROTINV_MAX_TRAIN_IMAGES", "5000")
    at = new_app().run()
    assert not at.exception
    assert at.number_input(key="train_epochs").max == 2
    assert at.select_slider(key="train_size").options == ["2,000", "5,000"]

    monkeypatch.setenv("ROTINV_MAX_EPOCHS", "lots")
    at = new_app().run()
    assert not at.exception
    assert any("ROTINV_MAX_EPOCHS" in error.value for error in at.error)
    assert not at.button  # no Train button


# --- no data, no model ---------------------------------------------------------------------------


def test_without_mnist_the_shipped_numbers_still_show_and_training_explains(new_app, tmp_path, monkeypatch):
    not_a_folder = tmp_path / "mnist.txt"
    not_a_folder.write_text("not a data root")
    monkeypatch.setenv("ROTINV_DATA_ROOT", str(not_a_folder))
    at = new_app().run()
    assert not at.exception
    assert metric(at, "Accuracy at 90°").value.endswith("%")  # from the checkpoint's JSON
    assert any("Training needs the MNIST training images" in error.value for error in at.error)
    assert any("is a file, not a directory" in error.value for error in at.sidebar.error)


def test_without_any_model_the_page_says_what_to_do(new_app, tmp_path, monkeypatch):
    monkeypatch.setenv("ROTINV_MODELS_DIR", str(tmp_path))
    at = new_app().run()
    assert not at.exception
    assert any("no shipped model" in info.value for info in at.info)
    assert any("No model yet" in warning.value for warning in at.sidebar.warning)
    assert at.button(key="train_button")  # training is still offered


def test_torch_threads_setting():
    from rotinv.limits import torch_threads

    assert torch_threads({}) is None
    assert torch_threads({"ROTINV_TORCH_THREADS": "1"}) == 1
    for bad in ("0", "two", "-1"):
        with pytest.raises(ValueError, match="ROTINV_TORCH_THREADS"):
            torch_threads({"ROTINV_TORCH_THREADS": bad})


def test_the_lecture_preset_sets_the_form_says_what_it_costs_and_trains_with_its_recipe(new_app, mnist_test):
    from rotinv.training import PRESETS

    lecture = PRESETS["lecture"]
    at = new_app().run()
    at.button(key="lecture_preset").click().run()
    assert not at.exception
    assert at.select_slider(key="train_size").value == 60_000  # the whole training set
    assert at.number_input(key="train_epochs").value == lecture["epochs"]
    assert at.select_slider(key="train_lr").value == lecture["learning_rate"]
    assert at.selectbox(key="train_schedule").value == lecture["schedule"]
    assert at.selectbox(key="train_precision").value == lecture["precision"] == "auto"
    note = next(c.value for c in at.caption if c.value.startswith("Lecture preset:"))
    assert re.search(r", in (fp32|bf16)[ :]", note)  # what "auto" settled on, on this server
    seconds = float(re.search(r"About \*\*([0-9,]+) s\*\*", note).group(1).replace(",", ""))
    assert seconds > 0

    # The preset's recipe, on a class-sized slice so the test stays short: it is what trains.
    at.select_slider(key="train_size").set_value(2_000)
    at.number_input(key="train_epochs").set_value(1)
    at.button(key="train_button").click().run()
    assert not at.exception and not at.error
    run = at.session_state[app_shared.TRAINING_RUN]
    assert (run.config.learning_rate, run.config.schedule) == (lecture["learning_rate"], lecture["schedule"])
    metadata = at.session_state[app_shared.SESSION_MODELS][run.model_key].metadata["training"]
    assert (metadata["learning_rate"], metadata["schedule"]) == (lecture["learning_rate"], lecture["schedule"])
    assert metadata["precision"] == "auto" and metadata["precision_used"] == run.precision in ("fp32", "bf16")
    finished = next(message.value for message in at.success if message.value.startswith("Trained in"))
    assert f"steps in {describe_precision(run.precision)})" in finished
    # the live accuracy curve has the held-out points, and they are the model's upright accuracy
    held_out = [progress.held_out_accuracy for progress in run.history]
    assert all(a is not None for a in held_out) and held_out[-1] > 0.5
    entry = at.session_state[app_shared.SESSION_MODELS][run.model_key]
    first = mnist_test.subset(1_000)
    assert held_out[-1] == pytest.approx(evaluate(entry.model, first.images, first.labels, 0).accuracy, abs=1e-6)


# --- the training queue (one training at a time here) --------------------------------------------


def press_train(at) -> None:
    at.select_slider(key="train_size").set_value(2_000)
    at.number_input(key="train_epochs").set_value(1)
    at.button(key="train_button").click()
    at.run()


def queue_card(at) -> str | None:
    return next((info.value for info in at.sidebar.info if QUEUE_PHRASE in info.value), None)


def test_a_second_training_waits_its_turn_and_then_runs(new_app, monkeypatch):
    monkeypatch.setenv(MAX_CONCURRENT_TRAININGS_ENV, "1")
    admission = app_shared.training_admission()
    holder = admission.request("another student", expected_s=40.0)
    assert holder.try_start()  # another session trains now
    at = new_app().run()
    press_train(at)
    assert not at.exception and not at.error
    card = queue_card(at)
    assert card is not None and card.startswith(f"You are number 1 {QUEUE_PHRASE}")
    assert "1 of 1 training slot busy" in card
    assert 0 < int(re.search(r"in about (\d+) s", card)[1]) <= 40  # the other's 40 s, less what it has run
    assert app_shared.TRAINING_RUN not in at.session_state  # nothing trains while it waits
    # The page stays usable meanwhile: another widget reruns it, and the place is kept.
    at.button(key="lecture_preset").click().run()
    assert not at.exception and queue_card(at) is not None and admission.counts() == (1, 1)

    holder.finish()  # the other training ends: this session's turn
    at.run()
    assert not at.exception and not at.error
    assert queue_card(at) is None
    run = at.session_state[app_shared.TRAINING_RUN]
    assert run.status == "finished" and run.train_images == 2_000
    assert admission.counts() == (0, 0)  # its slot was released when the run ended


def test_cancel_gives_the_place_up(new_app, monkeypatch):
    monkeypatch.setenv(MAX_CONCURRENT_TRAININGS_ENV, "1")
    admission = app_shared.training_admission()
    holder = admission.request("another student")
    assert holder.try_start()
    at = new_app().run()
    press_train(at)
    assert queue_card(at) is not None and admission.counts() == (1, 1)
    at.sidebar.button(key="queue_cancel").click().run()
    assert not at.exception
    assert queue_card(at) is None and admission.counts() == (1, 0)
    holder.finish()
    at.run()
    assert app_shared.TRAINING_RUN not in at.session_state  # the cancelled press never trains


def test_a_training_that_fails_releases_its_slot(new_app, monkeypatch):
    admission = app_shared.training_admission()
    monkeypatch.setattr("rotinv.training.train", failing_train)  # the page imports it on each run
    at = new_app().run()
    press_train(at)
    assert at.exception  # the failure is shown (redacted in this configuration)
    assert admission.counts() == (0, 0)


def failing_train(*args, **kwargs):
    """The page's training fails; the few steps timed for its estimate (no model= given) still run."""
    if "model" in kwargs:
        raise RuntimeError("training failed")
    return REAL_TRAIN(*args, **kwargs)


REAL_TRAIN = train


def test_a_bad_concurrency_setting_is_explained(new_app, monkeypatch):
    monkeypatch.setenv(MAX_CONCURRENT_TRAININGS_ENV, "lots")
    at = new_app().run()
    assert not at.exception
    assert any(MAX_CONCURRENT_TRAININGS_ENV in error.value for error in at.error)
    assert not at.button  # no Train button


# --- what one session may keep ------------------------------------------------------------------


def upload(at, name: str, model) -> None:
    at.file_uploader(key="upload_checkpoint").set_value((name, state_dict_bytes(model), "application/octet-stream"))
    at.run()
    assert not at.exception and not at.error


def test_a_session_keeps_at_most_its_cap_of_models_and_frees_them_when_it_ends(new_app, shipped_lenet5, monkeypatch):
    import gc
    import weakref

    import torch

    monkeypatch.setenv("ROTINV_MAX_SESSION_MODELS", "2")
    at = new_app().run()
    for number in range(3):
        model = copy.deepcopy(shipped_lenet5[0])
        with torch.no_grad():
            next(model.parameters()).add_(0.01 * (number + 1))  # other weights, another model
        upload(at, f"mine{number}.pt", model)
    kept = at.session_state[app_shared.SESSION_MODELS]
    assert [entry.label for entry in kept.values()] == ["mine1.pt", "mine2.pt"]  # the oldest went
    assert at.session_state[app_shared.ACTIVE_MODEL] == list(kept)[-1]
    assert "2 of yours" in at.sidebar.caption[0].value and "at most 2" in at.sidebar.caption[0].value

    # Nothing outside the session (a module-level dict, a cache) keeps a session's model alive.
    refs = [weakref.ref(entry.model) for entry in kept.values()]
    del kept, model
    del at
    gc.collect()
    assert [ref() for ref in refs] == [None, None]


def test_the_session_model_cap_setting():
    assert training_limits({"ROTINV_MAX_SESSION_MODELS": "3"}).max_session_models == 3
    with pytest.raises(ValueError, match="ROTINV_MAX_SESSION_MODELS"):
        training_limits({"ROTINV_MAX_SESSION_MODELS": "none"})
    assert kept_after_adding(["a", "b", "c"], 2) == (["b", "c"], ["a"])
    assert kept_after_adding(["a"], 2) == (["a"], [])


def test_what_a_first_training_imports_is_warmed_up_once_per_process(monkeypatch):
    monkeypatch.setattr(app_shared, "_warm_up_thread", None)  # as in a fresh process
    first = app_shared.warm_up_in_background()
    assert app_shared.warm_up_in_background() is first  # every later page run: nothing more
    assert first.name == "rotinv-warm-up" and first.daemon
    first.join(60)
    assert not first.is_alive()
    assert "torch._dynamo" in sys.modules
