"""`python -m rotinv.bench.probe_imports`: the resident memory and time of a fresh Python
after each thing the app loads, in order."""

import json
import sys
import time


def rss() -> int:
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def main() -> dict:
    began = time.perf_counter()
    steps = [("Python", rss(), 0.0)]

    def step(name: str) -> None:
        steps.append((name, rss(), time.perf_counter() - began))

    import torch
    step("import torch")
    import streamlit, pandas, altair  # noqa: E401, F401, I001
    step("import streamlit, pandas, altair")
    import app_shared, rotinv.charts, rotinv.introspection, rotinv.lens  # noqa: E401, F401
    step("import the app's modules")
    from rotinv.data import load_mnist
    splits = [load_mnist(False, download=False)]  # held, so that the next steps' memory counts them
    step("MNIST test split")
    splits.append(load_mnist(True, download=False))
    step("MNIST training split (only when someone trains)")
    return {"steps": steps, "cuda_build": torch.version.cuda, "torchvision": "torchvision" in sys.modules}


if __name__ == "__main__":
    print("BENCH_JSON " + json.dumps(main()))  # probe.MARKER
