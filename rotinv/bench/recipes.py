"""Epochs to 99% upright: the lecture preset (in bf16 and in fp32) beside the recipe the
shipped LeNet-5 was trained with; and whether bf16 changes the preset's accuracy.

Each recipe trains once per seed for its own number of epochs; the upright accuracy on
the whole test set is measured at the end of every epoch (held out: not counted in the
training time), and a run's answer is the first epoch that ends at 99.0% or more. Both
schedules are tied to the run's length, so "epochs to 99%" means: within that run.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import replace

from rotinv.bench.report import Row, row
from rotinv.bench.settings import BF16_ACCURACY_TOLERANCE
from rotinv.bench.subject import Bench
from rotinv.data import load_mnist
from rotinv.report import counted
from rotinv.training import TrainConfig, choose_precision, preset_config, train

TARGET = 0.99
# The preset's "auto" precision is one of its first two, whichever choose_precision picks
# here; the shipped LeNet-5's recipe is TrainConfig's defaults for the 6 epochs its JSON records.
RECIPES = {"lecture preset, bf16": replace(preset_config("lecture"), precision="bf16"),
           "lecture preset, fp32": replace(preset_config("lecture"), precision="fp32"),
           "shipped recipe": TrainConfig(epochs=6)}


def recipe_rows(bench: Bench) -> list[Row]:
    split = load_mnist(True, bench.data_root, download=False).subset(bench.settings.recipe_train_images)
    held_out = (bench.test.images, bench.test.labels)
    parts, finals_by_recipe = [], {}
    for name, recipe in RECIPES.items():
        recipe = replace(recipe, epochs=bench.settings.recipe_epochs or recipe.epochs)
        runs = []
        for seed in bench.settings.recipe_seeds:
            bench.log(f"epochs to 99%: {name}, {recipe.epochs} epochs of {len(split):,} images, seed {seed} ...")
            steps_per_epoch = math.ceil(len(split) / recipe.batch_size)
            history = train(split.images, split.labels, replace(recipe, seed=seed), report_every=steps_per_epoch,
                            held_out=held_out).history
            reached = next((p for p in history if p.held_out_accuracy >= TARGET), None)
            runs.append((reached, history[-1]))
        finals_by_recipe[name] = [last.held_out_accuracy for _, last in runs]
        epochs = [r.epoch if r else math.inf for r, _ in runs]
        median = statistics.median(epochs)  # the seeds are odd in number: one of the runs
        seconds = statistics.median(r.seconds if r else math.inf for r, _ in runs)
        finals = ", ".join(f"{100 * last.held_out_accuracy:.2f}%" for _, last in runs)
        reached_text = (f"{counted(int(median), 'epoch')}, {seconds:.0f} s" if math.isfinite(median)
                        else f"not within its {counted(recipe.epochs, 'epoch')}")
        per_seed = ", ".join(f"{e:g}" if math.isfinite(e) else "not reached" for e in epochs)
        parts.append(f"{name} ({recipe.schedule}, learning rate {recipe.learning_rate:g}, "
                     f"{counted(recipe.epochs, 'epoch')}): {reached_text} (median of {counted(len(runs), 'seed')}; "
                     f"per seed {per_seed}; upright at the end {finals})")
    auto = choose_precision(preset_config("lecture"), split.images, split.labels)
    return [row("epochs to 99% upright",
                "; ".join(parts) + f". {len(split):,} training images, upright accuracy on "
                f"{len(bench.test):,} test images after every epoch, this run's machine and load. "
                f"The preset's precision \"auto\" chose here: {auto.reason}"),
            accuracy_row(finals_by_recipe["lecture preset, bf16"], finals_by_recipe["lecture preset, fp32"])]


def accuracy_row(bf16: list[float], fp32: list[float]) -> Row:
    """bf16 against fp32 at the end of the same preset, seed for seed: the median accuracies' gap."""
    change = statistics.median(bf16) - statistics.median(fp32)
    per_seed = ", ".join(f"{100 * (b - f):+.2f}" for b, f in zip(bf16, fp32))
    return row("bf16 training accuracy",
               f"the lecture preset's upright accuracy, median of {counted(len(bf16), 'seed')}: bf16 "
               f"{100 * statistics.median(bf16):.2f}%, fp32 {100 * statistics.median(fp32):.2f}%, a change of "
               f"{100 * change:+.2f} points (per seed {per_seed})",
               f"within {100 * BF16_ACCURACY_TOLERANCE:.1f} points of fp32", abs(change) <= BF16_ACCURACY_TOLERANCE)
