import pytest
import torch

from rotinv.architectures import build_model
from rotinv.data import load_mnist
from rotinv.evaluation import evaluate
from rotinv.training import TrainConfig, train

from realdata import real_data_root


@pytest.fixture(scope="module")
def small_train():
    return load_mnist(True, real_data_root(), download=False).subset(2000)


@pytest.fixture(scope="module")
def test_split():
    return load_mnist(False, real_data_root(), download=False)


def test_short_training_beats_chance_clearly(small_train, test_split):
    config = TrainConfig(epochs=2, batch_size=32, seed=0)
    result = train(small_train.images, small_train.labels, config)
    assert result.epochs_completed == 2 and not result.stopped_early
    upright = evaluate(result.model, test_split.images[:2000], test_split.labels[:2000])
    assert upright.accuracy > 0.80  # chance is 0.10


def test_same_seed_gives_the_same_weights_and_another_seed_does_not(small_train):
    subset = small_train.subset(300)
    config = TrainConfig(epochs=1, batch_size=50, seed=7, augment="rotation")
    first = train(subset.images, subset.labels, config).model.state_dict()
    second = train(subset.images, subset.labels, config).model.state_dict()
    assert all(torch.equal(first[k], second[k]) for k in first)
    other = train(subset.images, subset.labels, TrainConfig(epochs=1, batch_size=50, seed=8)).model.state_dict()
    assert not torch.equal(first["conv1.weight"], other["conv1.weight"])


def test_progress_reports_and_stop_flag_keep_the_model_so_far(small_train):
    subset = small_train.subset(640)
    reports = []
    result = train(subset.images, subset.labels, TrainConfig(epochs=3, batch_size=64, seed=0),
                   on_progress=reports.append, should_stop=lambda: len(reports) >= 2, report_every=3)
    assert result.stopped_early and result.epochs_completed == 0
    assert result.steps_completed == 6  # stopped right after the second report (every 3 steps)
    assert [r.step for r in reports] == [3, 6]
    assert all(0 <= r.accuracy <= 1 and r.loss > 0 for r in reports)
    assert reports[-1].images_seen == 6 * 64 and reports[-1].total_steps == 30
    # the partly trained model is returned usable, in eval mode
    assert not result.model.training and result.model(subset.images[:2]).shape == (2, 10)


def test_a_stop_between_reports_is_reported_with_the_step_it_happened_at(small_train):
    subset = small_train
    polls, reports = [], []

    def after_seven_steps() -> bool:
        polls.append(1)
        return len(polls) > 7

    result = train(subset.images, subset.labels, TrainConfig(epochs=3, batch_size=64, seed=0),
                   on_progress=reports.append, should_stop=after_seven_steps, report_every=3)
    assert result.stopped_early and result.steps_completed == 7
    # reports at steps 3 and 6, then one at 7, where it stopped: the caller knows how far the model got
    assert [r.step for r in reports] == [3, 6, 7] and result.history[-1].step == 7


@pytest.mark.parametrize("field, value, message", [
    ("epochs", 0, "epochs"), ("epochs", 10_000, "epochs"), ("batch_size", -1, "batch size"),
    ("learning_rate", 0.0, "learning rate"), ("learning_rate", float("nan"), "learning rate"),
    ("arch", "vgg", "Unknown architecture"), ("augment", "flip", "augmentation"), ("seed", -3, "seed"),
])
def test_bad_settings_are_clear_value_errors(field, value, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**{field: value})


def test_cuda_asked_for_without_one_is_a_clear_error(small_train):
    if torch.cuda.is_available():  # on a GPU machine the device is used instead
        result = train(small_train.images[:64], small_train.labels[:64], TrainConfig(epochs=1, device="cuda"))
        assert next(result.model.parameters()).is_cuda
        return
    with pytest.raises(ValueError, match="CUDA"):
        train(small_train.images[:64], small_train.labels[:64], TrainConfig(epochs=1, device="cuda"))


def test_a_live_run_stops_at_the_loops_next_step_when_asked():
    import threading

    from rotinv.live_training import TrainingRun

    config = TrainConfig(epochs=1, batch_size=32, seed=0)
    images, labels = torch.rand(32 * 50, 1, 28, 28), torch.randint(0, 10, (32 * 50,))
    run = TrainingRun(config, len(images), 50, build_model("lenet5"))
    started = threading.Event()

    def loop():
        run.idle.clear()
        try:
            train(images, labels, config, model=run.model, report_every=1, should_stop=run.stop_requested.is_set,
                  on_progress=lambda progress: (run.history.append(progress), started.set()))
        finally:
            run.idle.set()

    worker = threading.Thread(target=loop)
    worker.start()
    assert started.wait(60)
    assert run.stop_and_wait(60)
    worker.join(60)
    assert 1 <= run.steps_done < 50  # stopped part-way, and the loop is idle: the model no longer changes
    assert run.label().startswith("LeNet-5, 1,600 images, 1 epoch, seed 0")
