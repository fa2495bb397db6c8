"""A training run that outlives the script run that started it.

A Streamlit page trains in its script thread; a click on any widget (Stop among them)
interrupts that script at its next st call, and the next script run takes the model as
trained so far. TrainingRun holds what both runs share: the model, its progress history,
and the two events of the stop handshake.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from torch import nn

from rotinv.architectures import SHORT_NAMES
from rotinv.training import Progress, TrainConfig


def _set_event() -> threading.Event:
    event = threading.Event()
    event.set()
    return event


@dataclass
class TrainingRun:
    """A training run started from a page, kept in that browser session's state while it trains.

    Any click during training (Stop, or any other widget) interrupts the script; the
    model and its history are then still here, and the next script run registers the
    model as trained so far (app_shared.finish_interrupted_training). The interrupted run can
    still be inside a training step when the next script run starts (Streamlit stops a
    script only at its next st call), so the next run asks it to stop and waits for it
    (stop_requested, idle) before it takes the model: otherwise the model would go on
    changing after its fingerprint, its label and the cache keyed by it were made.
    """

    config: TrainConfig
    train_images: int
    total_steps: int
    model: nn.Module = field(repr=False)
    history: list[Progress] = field(default_factory=list)
    status: str = "running"  # "running", "finished", "stopped", or "cancelled" (stopped before step 1)
    model_key: str | None = None  # the session model's key once registered
    started: float = field(default_factory=time.perf_counter)
    seconds: float = 0.0
    precision: str = "fp32"  # what the steps run in (config.precision "auto" settled before the first)
    precision_reason: str = ""
    stop_requested: threading.Event = field(default_factory=threading.Event, repr=False, compare=False)
    idle: threading.Event = field(default_factory=_set_event, repr=False, compare=False)  # cleared while training

    @property
    def steps_done(self) -> int:
        return self.history[-1].step if self.history else 0

    def stop_and_wait(self, timeout: float) -> bool:
        """Ask the loop to stop at its next step and wait until it is idle; False if it did not stop in time."""
        self.stop_requested.set()
        return self.idle.wait(timeout=timeout)

    def label(self) -> str:
        arch = SHORT_NAMES.get(self.config.arch, self.config.arch)
        parts = [arch, f"{self.train_images:,} images",
                 f"{self.config.epochs} epoch" + ("s" if self.config.epochs != 1 else ""),
                 f"seed {self.config.seed}"]
        if self.config.augment == "rotation":
            parts.insert(1, "rotation augmentation")
        if self.precision != "fp32":
            parts.insert(-1, self.precision)
        text = ", ".join(parts)
        if self.status == "stopped":
            text += f", stopped at step {self.steps_done:,}"
        return text

    def metadata(self) -> dict:
        last = self.history[-1] if self.history else None
        return {
            "architecture": self.config.arch,
            "training": {**self.config.to_dict(), "optimizer": "Adam",
                         "steps_completed": self.steps_done, "total_steps": self.total_steps,
                         "stopped_early": self.status == "stopped",
                         "precision_used": self.precision, "precision_reason": self.precision_reason,
                         "final_epoch_train_loss": last.loss if last else float("nan"),
                         "final_epoch_train_accuracy": last.accuracy if last else float("nan"),
                         "seconds": round(self.seconds, 1)},
            "data": {"dataset": "MNIST (torchvision)", "train_images": self.train_images},
        }
