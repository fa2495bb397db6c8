"""The original report's numbers, and its two tables laid beside ours.

The report (Jaloli, 2019, "Rotation invariance in CNN model") trained LeNet-5 on
upright MNIST and tested it on rotated digits. Its rotate_tensor turned clockwise for
"+90", so its 90-degree row is compared with our 270 degrees (counter-clockwise
positive), and its 270 with our 90.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from rotinv.evaluation import AngleResult

# Table 1: train and test on upright MNIST.
REPORT_TABLE1 = {"train_loss": 0.100, "test_loss": 0.099, "test_accuracy": 0.97}


@dataclass(frozen=True)
class ReportRow:
    report_angle: int  # as printed in the report (clockwise)
    our_angle: int  # the same rotation in our counter-clockwise convention
    loss: float
    accuracy: float


# Table 2: the upright-trained model tested on rotated images.
REPORT_TABLE2 = (
    ReportRow(report_angle=90, our_angle=270, loss=5.9623, accuracy=0.14),
    ReportRow(report_angle=180, our_angle=180, loss=6.2347, accuracy=0.33),
    ReportRow(report_angle=270, our_angle=90, loss=5.1319, accuracy=0.13),
    ReportRow(report_angle=360, our_angle=360, loss=0.084, accuracy=0.97),
)
# The angles every shipped checkpoint is measured at, stored in its metadata.
CHECKPOINT_ANGLES = (0, 90, 180, 270, 360)


def report_accuracy_by_our_angle() -> dict[int, float]:
    """{our angle: the report's accuracy}, for overlaying the report's points on a chart."""
    return {row.our_angle: row.accuracy for row in REPORT_TABLE2}


def table1(train_loss: float, upright: AngleResult) -> list[dict]:
    return [
        {"": "Report (2019)", "Training loss": REPORT_TABLE1["train_loss"],
         "Test loss": REPORT_TABLE1["test_loss"], "Test accuracy": REPORT_TABLE1["test_accuracy"]},
        {"": "rotinv (this model)", "Training loss": train_loss,
         "Test loss": upright.loss, "Test accuracy": upright.accuracy},
    ]


def table2(results: Mapping[float, AngleResult]) -> list[dict]:
    """One row per report angle: the report's loss and accuracy beside ours at the same rotation."""
    rows = []
    for row in REPORT_TABLE2:
        ours = results[row.our_angle]
        rows.append({
            "Rotation": f"{row.report_angle}° clockwise" if row.report_angle % 360 else "360° (a full turn)",
            "Report angle": row.report_angle,
            "Our angle (ccw)": row.our_angle,
            "Report loss": row.loss,
            "Our loss": ours.loss,
            "Report accuracy": row.accuracy,
            "Our accuracy": ours.accuracy,
        })
    return rows


def format_table(rows: list[dict]) -> str:
    """Rows of dicts as an aligned plain-text table (numbers to 4 decimals, accuracies as %)."""
    if not rows:
        return ""
    headers = list(rows[0])

    def cell(key: str, value: object) -> str:
        if isinstance(value, float):
            return f"{100 * value:.2f}%" if "accuracy" in key.lower() else f"{value:.4f}"
        return str(value)

    cells = [[cell(k, row[k]) for k in headers] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))) for r in cells]
    return "\n".join(lines)


def counted(number: int, noun: str) -> str:
    """'1 epoch', '6 epochs', '2,000 images': a count and its noun, in the right number."""
    return f"{number:,} {noun}{'' if number == 1 else 's'}"
