"""Does the one speed trick left in the models still pay? models.max_pool_2x2 against
PyTorch's own max_pool2d, interleaved in the same run on the same images."""

from __future__ import annotations

import statistics
import time

import torch
import torch.nn.functional as F

from rotinv.bench.report import Row, fmt_rate, row
from rotinv.bench.subject import Bench
from rotinv.evaluation import predict_logits
from rotinv.models import LeNet5, normalize

ANGLE = 15.0
ROUNDS = 5


class LeNet5WithMaxPool2d(LeNet5):
    """LeNet5.forward with F.max_pool2d where the model calls max_pool_2x2: the plain alternative."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = normalize(images)
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = torch.flatten(F.relu(self.conv3(x)), 1)
        return self.fc3(F.relu(self.fc2(F.relu(self.fc1(x)))))


def fast_path_rows(bench: Bench) -> list[Row]:
    if not isinstance(bench.model, LeNet5):
        return [row("pooling helper vs max_pool2d", f"not compared: the benchmark's model is {type(bench.model).__name__}")]
    plain = LeNet5WithMaxPool2d()
    plain.load_state_dict(bench.model.state_dict())
    images = bench.test.images[: min(len(bench.test), 4000)]
    bench.log(f"fast paths: max_pool_2x2 against max_pool2d, {len(images):,} images, {ROUNDS} rounds ...")
    same = torch.equal(predict_logits(bench.model, images, ANGLE), predict_logits(plain, images, ANGLE))
    times: dict[str, list[float]] = {"helper": [], "max_pool2d": []}
    for _ in range(ROUNDS):  # interleaved, so both see the same load
        for name, model in (("helper", bench.model), ("max_pool2d", plain)):
            started = time.perf_counter()
            predict_logits(model, images, ANGLE)
            times[name].append(time.perf_counter() - started)
    helper, pool2d = (len(images) / statistics.median(times[name]) for name in ("helper", "max_pool2d"))
    return [row("pooling helper vs max_pool2d",
                f"sweep forward passes at {fmt_rate(helper)} images/s with models.max_pool_2x2, "
                f"{fmt_rate(pool2d)} with F.max_pool2d: the helper is {helper / pool2d:.2f}x "
                f"({len(images):,} images at {ANGLE:g} degrees, median of {ROUNDS} interleaved rounds; "
                f"logits {'identical' if same else 'DIFFERENT'})")]
