"""`python -m rotinv.bench.probe_threads MODEL IMAGES SIZE REPEATS`: the matmul roofline and
predict_logits on a slice of the test set, with whatever threading the environment asks
for (OpenMP reads it only when torch is imported, hence a fresh Python)."""

import json
import sys
import time
from pathlib import Path

import torch

from rotinv.bench.roofline import matmul_gflops
from rotinv.bench.subject import load_model
from rotinv.data import load_mnist
from rotinv.evaluation import predict_logits


def main(model_path: Path, images: int, size: int, repeats: int) -> dict:
    model, _ = load_model(model_path, True)
    test = load_mnist(False, download=False).images[:images]
    predict_logits(model, test[:500], 15.0)
    roofline = matmul_gflops(size, repeats)
    started = time.perf_counter()
    predict_logits(model, test, 15.0)
    rate = len(test) / (time.perf_counter() - started)
    return {"threads": torch.get_num_threads(), "roofline": roofline, "rate": rate}


if __name__ == "__main__":
    print("BENCH_JSON " + json.dumps(main(Path(sys.argv[1]), *map(int, sys.argv[2:5]))))  # probe.MARKER
