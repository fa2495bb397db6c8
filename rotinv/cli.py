"""`python -m rotinv ...`: train, sweep, record and reproduce the report from the command line.

Every error a person can cause (a bad angle list, a missing model, no data) ends with
one clear sentence on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

from rotinv import __version__
from rotinv.checkpoints import CheckpointError, load_checkpoint, save_checkpoint
from rotinv.data import DATA_ROOT_ENV, DataUnavailableError, load_mnist, resolve_data_root
from rotinv.evaluation import evaluate, parse_angles, sweep
from rotinv.architectures import ARCHITECTURES
from rotinv.models import MNIST_MEAN, MNIST_STD, count_parameters
from rotinv.records import (DEFAULT_ANGLES, LOSS_RELATIVE_TOLERANCE, MOVED_PREDICTIONS_TOLERANCE, check, cpu_kernels, cpu_model,
                            record)
from rotinv.report import CHECKPOINT_ANGLES, counted, format_table, table1, table2
from rotinv.precision import PRECISIONS
from rotinv.rotation import INTERPOLATIONS
from rotinv.training import (AUGMENTATIONS, PRESETS, SCHEDULES, TrainConfig, choose_precision, estimate_seconds,
                             preset_config, train)


def _angles(text: str) -> list[float]:
    try:
        return parse_angles(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _bounded_int(low: int, high: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be between {low} and {high}, got {value}")
        return value

    return parse


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (value > 0 and value < float("inf")):
        raise argparse.ArgumentTypeError(f"must be a number greater than 0, got {text}")
    return value


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 0 and below 1, got {text}")
    return value


def _preset_text(name: str) -> str:
    return ", ".join(f"{key.replace('_', ' ')} {value:g}" if isinstance(value, float) else f"{key} {value}"
                     for key, value in PRESETS[name].items())


SCHEDULE_TEXT = {"cosine": "cosine decay to 0 over all steps",
                 "onecycle": "one-cycle: warm-up over the first quarter of the steps, then cosine decay",
                 "constant": "constant"}


def _progress_bar(total_steps: int):
    """A one-line text progress bar on stderr, redrawn in place."""
    started = time.perf_counter()

    def show(progress) -> None:
        done = progress.step / total_steps
        bar = "#" * int(30 * done)
        rate = progress.images_seen / max(time.perf_counter() - started, 1e-9)
        sys.stderr.write(
            f"\repoch {progress.epoch} [{bar:<30}] {100 * done:5.1f}%  "
            f"loss {progress.loss:.4f}  acc {100 * progress.accuracy:6.2f}%  {rate:,.0f} img/s"
        )
        if progress.step == total_steps:
            sys.stderr.write("\n")
        sys.stderr.flush()

    return show


def _library_versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    try:
        torchvision = version("torchvision")  # read from its metadata: importing it takes seconds
    except PackageNotFoundError:
        torchvision = "not installed"
    return {"rotinv": __version__, "torch": torch.__version__, "torchvision": torchvision,
            "python": platform.python_version()}


def _command_line(args: argparse.Namespace) -> str:
    """The command as typed, for the metadata: how to make this file again."""
    return "python -m rotinv " + " ".join(shlex.quote(a) for a in args.argv)


def command_train(args: argparse.Namespace) -> int:
    # Options left out take the preset's value, else TrainConfig's default.
    chosen = dict(arch=args.arch, epochs=args.epochs, learning_rate=args.lr, batch_size=args.batch_size,
                  seed=args.seed, augment=args.augment, schedule=args.schedule,
                  label_smoothing=args.label_smoothing, precision=args.precision, device=args.device)
    if args.preset:
        config = preset_config(args.preset, **chosen)
    else:
        config = TrainConfig(**{key: value for key, value in chosen.items() if value is not None})
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    train_split = load_mnist(True, args.data_root).subset(args.train_size)
    test_split = load_mnist(False, args.data_root)
    print(f"Training {config.arch} on {len(train_split):,} images for {counted(config.epochs, 'epoch')}, "
          f"learning rate {config.learning_rate:g} ({config.schedule}), seed {config.seed}, "
          f"augmentation {config.augment}.", file=sys.stderr)
    choice = choose_precision(config, train_split.images, train_split.labels)
    estimate = estimate_seconds(config, train_split.images, train_split.labels, len(train_split), choice=choice)
    print(f"Precision: {choice.reason}. About {estimate:,.0f} s on this machine (a few steps timed just now).",
          file=sys.stderr)
    total = -(-len(train_split) // config.batch_size) * config.epochs
    result = train(train_split.images, train_split.labels, config, on_progress=_progress_bar(total),
                   precision=choice)
    model = result.model.cpu()
    print("Measuring test loss and accuracy at " + ", ".join(f"{a}°" for a in CHECKPOINT_ANGLES),
          file=sys.stderr)
    measured = {str(a): evaluate(model, test_split.images, test_split.labels, a).summary()
                for a in CHECKPOINT_ANGLES}
    metadata = {
        "name": Path(args.out).stem,
        "architecture": config.arch,
        "parameters": count_parameters(model),
        "input": "1x28x28 grayscale in [0, 1], white digit on black",
        "normalisation": {"mean": MNIST_MEAN, "std": MNIST_STD,
                          "applied": "inside the model, as its first step"},
        "training": {**config.to_dict(), "optimizer": "Adam (fused kernel)", "preset": args.preset,
                     "lr_schedule": SCHEDULE_TEXT[config.schedule],
                     "precision_used": result.precision, "precision_reason": result.precision_reason,
                     "loss": "cross-entropy", "epochs_completed": result.epochs_completed,
                     "final_epoch_train_loss": result.train_loss,
                     "final_epoch_train_accuracy": result.train_accuracy,
                     "seconds": round(result.seconds, 1),
                     # CPU results are bit-for-bit repeatable for a seed at the same thread count
                     "torch_threads": torch.get_num_threads(),
                     "machine": {"cpu": cpu_model(), "logical_cores": os.cpu_count(),
                                 "cpu_kernels": cpu_kernels(), "device": config.device}},
        "data": {"dataset": "MNIST (torchvision)", "train_images": len(train_split),
                 "test_images": len(test_split)},
        "test": {"interpolation": "bilinear (exact rot90 at multiples of 90°)", "by_angle": measured},
        "versions": _library_versions(),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": _command_line(args),
    }
    save_checkpoint(model, args.out, metadata)
    print(f"Saved {args.out} and {Path(args.out).with_suffix('.json')}", file=sys.stderr)
    for angle, row in measured.items():
        print(f"  {angle:>3}°  loss {row['loss']:.4f}  accuracy {100 * row['accuracy']:.2f}%")
    if args.record:
        _record(args.out, test_split, [("bilinear", 1), ("nearest", 1)], DEFAULT_ANGLES,
                _command_line(args))
    return 0


def command_record(args: argparse.Namespace) -> int:
    if not Path(args.model).is_file():
        raise CheckpointError(f"There is no checkpoint file at {args.model}.")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    test_split = load_mnist(False, args.data_root)
    settings = None  # the options left out: record the defaults, check everything recorded
    if args.interpolation is not None or args.tta_copies is not None:
        settings = [(interpolation, copies) for copies in args.tta_copies or [1]
                    for interpolation in args.interpolation or ["bilinear", "nearest"]]
    if args.check:
        return _check(args.model, test_split, args.angles, settings)
    _record(args.model, test_split, settings or [("bilinear", 1), ("nearest", 1)], args.angles or DEFAULT_ANGLES,
            _command_line(args))
    return 0


def _check(checkpoint: str, test_split, angles, settings) -> int:
    """Measure the recorded sweeps again on this machine; exit 1 if any result is off by more than rounding."""
    print(f"Measuring {checkpoint}'s recorded sweeps again on {len(test_split):,} test images with "
          f"{cpu_kernels()} kernels, {torch.get_num_threads()} thread(s) ...", file=sys.stderr)
    sweeps = check(checkpoint, test_split, angles, settings)
    print(format_table([{"Setting": f"{s.interpolation}, {s.tta_copies} cop{'y' if s.tta_copies == 1 else 'ies'}",
                         "Recorded with": s.recorded_on or "(not noted)", "Angles": len(s.by_angle),
                         "Largest relative loss difference": f"{s.worst().loss_relative:.1e}",
                         "Most predictions moved": s.worst().moved_predictions} for s in sweeps]))
    outside = [(s, angle) for s in sweeps for angle, d in s.by_angle if not d.within_tolerance()]
    bounds = (f"loss within {LOSS_RELATIVE_TOLERANCE:g} of itself, at most {MOVED_PREDICTIONS_TOLERANCE} "
              "predictions moved")
    if outside:
        listed = ", ".join(f"{angle:g}° ({s.interpolation}, {s.tta_copies})" for s, angle in outside[:10])
        print(f"{len(outside)} result(s) differ from the record by more than rounding ({bounds}): {listed}. "
              "The weights or the test data are not what was recorded, or this machine computes "
              "differently: record again with `python -m rotinv record`.")
        return 1
    print(f"Every result matches its record up to rounding ({bounds}).")
    return 0


def _record(checkpoint: str, test_split, settings: list[tuple[str, int]], angles, command: str) -> None:
    described = ", ".join(f"{i}" + (f" pooled over {c} turns" if c > 1 else "") for i, c in settings)
    print(f"Recording {checkpoint}'s sweep at {len(angles)} angles ({described}) on {len(test_split):,} "
          "test images ...", file=sys.stderr)
    for sweep_record in record(checkpoint, test_split, angles, settings, command):
        rows = sweep_record["results"]
        worst = min(rows, key=lambda row: row["accuracy"])
        print(f"  {sweep_record['interpolation']}, {sweep_record['tta_copies']} cop"
              f"{'y' if sweep_record['tta_copies'] == 1 else 'ies'}: {100 * rows[0]['accuracy']:.2f}% at "
              f"{rows[0]['angle']:g}°, worst {100 * worst['accuracy']:.2f}% at {worst['angle']:g}°")
    print(f"Stored in {Path(checkpoint).with_suffix('.json')}; the app shows these without measuring again.",
          file=sys.stderr)


def command_sweep(args: argparse.Namespace) -> int:
    model, _ = load_checkpoint(args.model)
    test_split = load_mnist(False, args.data_root)
    results = sweep(model, test_split.images, test_split.labels, args.angles, args.interpolation)
    if args.format == "json":
        print(json.dumps([r.summary() for r in results], indent=2))
    else:
        print(format_table([{"Angle": f"{r.angle:g}°", "Loss": r.loss, "Accuracy": r.accuracy}
                            for r in results]))
    return 0


def command_reproduce(args: argparse.Namespace) -> int:
    model, metadata = load_checkpoint(args.model)
    test_split = load_mnist(False, args.data_root)
    angles = sorted({0, *(row for row in (90, 180, 270, 360))})
    results = {r.angle: r for r in sweep(model, test_split.images, test_split.labels, angles)}
    train_loss = metadata.get("training", {}).get("final_epoch_train_loss", float("nan"))
    print("Table 1: train and test on upright MNIST")
    print(format_table(table1(float(train_loss), results[0])))
    print()
    print("Table 2: the upright-trained model on rotated test images")
    print("(the report's rotate_tensor turned clockwise, so its 90° is our 270° and its 270° our 90°)")
    print(format_table(table2(results)))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m rotinv",
                                     description="Is a CNN rotation invariant? LeNet-5 on rotated MNIST.")
    parser.add_argument("--version", action="version", version=f"rotinv {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--data-root", default=None,
                        help=f"directory holding MNIST/raw (default: ${DATA_ROOT_ENV}, else a user cache)")
    commands = parser.add_subparsers(dest="command", required=True)

    p = commands.add_parser("train", parents=[common], help="train a model and save a checkpoint")
    p.add_argument("--arch", default=None, choices=sorted(ARCHITECTURES),
                   help=f"default {TrainConfig.arch} (or the preset's)")
    p.add_argument("--preset", choices=sorted(PRESETS), default=None,
                   help="a named recipe (" + "; ".join(f"{name}: {_preset_text(name)}" for name in sorted(PRESETS))
                        + "); other options override it")
    p.add_argument("--epochs", type=_bounded_int(1, 200), default=None, help=f"default {TrainConfig.epochs}")
    p.add_argument("--lr", type=_positive_float, default=None,
                   help=f"learning rate (Adam; the peak of onecycle), default {TrainConfig.learning_rate:g}")
    p.add_argument("--schedule", choices=SCHEDULES, default=None, help=f"default {TrainConfig.schedule}")
    p.add_argument("--label-smoothing", type=_fraction, default=None, help="default 0 (none)")
    p.add_argument("--precision", choices=PRECISIONS, default=None,
                   help=f"default {TrainConfig.precision}; auto: bf16 autocast where the CPU has native bf16 "
                        "and a few timed steps show it faster")
    p.add_argument("--batch-size", type=_bounded_int(1, 60000), default=None, help=f"default {TrainConfig.batch_size}")
    p.add_argument("--seed", type=_bounded_int(0, 2**31 - 1), default=None, help="default 0")
    p.add_argument("--train-size", type=_bounded_int(1, 60000), default=None,
                   help="train on the first N training images only (default: all 60,000)")
    p.add_argument("--augment", choices=AUGMENTATIONS, default=None, help="default none")
    p.add_argument("--device", default=None, help="cpu (the default), cuda or auto")
    p.add_argument("--threads", type=_bounded_int(1, 256), default=None,
                   help="CPU threads for torch (default: torch's own choice); recorded in the metadata")
    p.add_argument("--out", required=True, help="where to write NAME.pt (and NAME.json)")
    p.add_argument("--record", action="store_true",
                   help="also record the sweep every 15° in NAME.json, as `record` does (about a minute)")
    p.set_defaults(run=command_train)

    p = commands.add_parser("sweep", parents=[common], help="accuracy and loss at each angle")
    p.add_argument("--model", default="models/lenet5.pt")
    p.add_argument("--angles", type=_angles, default=_angles("0,90,180,270,360"),
                   help="comma-separated degrees, counter-clockwise (default 0,90,180,270,360)")
    p.add_argument("--interpolation", choices=list(INTERPOLATIONS), default="bilinear")
    p.add_argument("--format", choices=["table", "json"], default="table")
    p.set_defaults(run=command_sweep)

    p = commands.add_parser("record", parents=[common],
                            help="measure a checkpoint's sweep and store it in its JSON, for the app to show at once")
    p.add_argument("model", help="the checkpoint (.pt); its weights are not changed")
    p.add_argument("--angles", type=_angles, default=None,
                   help="comma-separated degrees (default every 15° from 0 to 345)")
    p.add_argument("--interpolation", nargs="+", choices=list(INTERPOLATIONS), default=None,
                   help="default: bilinear and nearest")
    p.add_argument("--tta-copies", nargs="+", type=_bounded_int(1, 36), default=None,
                   help="test-time rotation pooling: 1 (off, the default) or the number of turned copies to average")
    p.add_argument("--threads", type=_bounded_int(1, 256), default=None, help="CPU threads for torch")
    p.add_argument("--check", action="store_true",
                   help="write nothing: measure the recorded sweeps again and report how far each is from its "
                        "record (exit 1 if any differs by more than rounding); the other options narrow the check")
    p.set_defaults(run=command_record)

    p = commands.add_parser("reproduce", parents=[common], help="the report's Tables 1 and 2 beside ours")
    p.add_argument("--model", default="models/lenet5.pt")
    p.set_defaults(run=command_reproduce)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    args.argv = argv
    try:
        if getattr(args, "out", None) and not str(args.out).endswith(".pt"):
            raise ValueError(f"--out must name a .pt file, got {args.out!r}.")
        if getattr(args, "data_root", None) is not None:
            resolve_data_root(args.data_root)
        return args.run(args)
    except (CheckpointError, DataUnavailableError, ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted; nothing was saved.", file=sys.stderr)
        return 130
