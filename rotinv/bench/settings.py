"""What the benchmark measures, with which settings, and against which targets."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DEFAULT_MODEL = REPO / "models" / "lenet5.pt"
DEFAULT_OUT = REPO / "BENCHMARKS.md"
APP = REPO / "streamlit_app.py"
SWEEP_ANGLES = tuple(float(a) for a in range(0, 360, 15))  # 0, 15, ..., 345: 24 angles
THREADING_IMAGES = 3000  # predict_logits at 15 degrees under each threading set-up (full runs)


def app_pages(app: Path = APP) -> tuple[tuple[str, str], ...]:
    """(title, file) of every st.Page that streamlit_app.py registers, the default page first.

    Read from the entry point's source, so the benchmark follows the app when its pages
    move or are renamed.
    """
    pages, default = [], None
    for node in ast.walk(ast.parse(app.read_text())):
        if not (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) == "Page"):
            continue
        if not node.args or not isinstance(node.args[0], ast.Constant) or not isinstance(node.args[0].value, str):
            continue
        options = {k.arg: k.value.value for k in node.keywords if isinstance(k.value, ast.Constant)}
        page = (str(options.get("title") or Path(node.args[0].value).stem), node.args[0].value)
        pages.append(page)
        if options.get("default"):
            default = page
    if default is not None:
        pages.remove(default)
        pages.insert(0, default)
    return tuple(pages)


# The app's pages, as streamlit_app.py registers them; the first is the default page.
PAGES = app_pages()
SWEEP_PAGE = next((title for title, path in PAGES if "sweep" in path.lower()), None)

# Targets of issue #6 (this 2-core machine, all in the same run).
SWEEP_ROOFLINE_TARGET = 0.70
SPEEDUP_TARGET = 10.0
REPEAT_TARGET_S = 0.1
INTERACTIVE_P95_TARGET_MS = 30.0
TRAINING_ROOFLINE_TARGET = 0.50
TRAINING_ROOFLINE_TARGET_AVX512 = 0.80  # issue #14, where the CPU has AVX-512
COLD_START_TARGET_S = 3.0
RSS_TARGET_BYTES = 1_000_000_000
BF16_ACCURACY_TOLERANCE = 0.001  # 0.1 percentage points: at every angle (sweep), upright (training)

# Every row the table has, in order; the test checks that each is printed.
ROW_LABELS = (
    "fp32 matmul roofline",
    "LeNet-5 FLOPs per image",
    "sweep fp32",
    "sweep bf16 autocast",
    "pooling helper vs max_pool2d",
    "notebook baseline",
    "sweep speed-up over notebook",
    "repeated sweep (app cache)",
    "interactive",
    "training",
    "training at batch 64",
    "training variants",
    "epochs to 99% upright",
    "bf16 training accuracy",
    *(f"cold start: {title}" for title, _ in PAGES),
    *(f"new visitor: {title}" for title, _ in PAGES),
    "peak RSS, all pages",
)


@dataclass(frozen=True)
class Settings:
    quick: bool
    test_images: int | None  # None: the whole test set (10,000)
    angles: tuple[float, ...]
    baseline_images: int
    baseline_angles: tuple[float, ...]
    bf16_images: int
    bf16_angles: tuple[float, ...]
    interactive_runs: int
    train_images: int | None  # None: all 60,000
    matmul_size: int
    matmul_repeats: int
    cold_pages: tuple[str, ...]  # page titles that get a cold start of their own
    profile: bool
    recipe_seeds: tuple[int, ...]  # the epochs-to-99% comparison trains each recipe once per seed
    recipe_train_images: int | None  # None: all 60,000
    recipe_epochs: int | None  # None: each recipe's own epochs
    variant_steps: int  # training variants: steps per round
    variant_rounds: int
    compile_variants: bool  # time torch.compile too (compiling takes ~20 s)


FULL = Settings(quick=False, test_images=None, angles=SWEEP_ANGLES,
                baseline_images=10_000, baseline_angles=(15.0, 195.0),
                bf16_images=1000, bf16_angles=(0.0, 15.0, 45.0, 90.0, 135.0, 200.0),
                interactive_runs=200, train_images=None, matmul_size=2048, matmul_repeats=4,
                cold_pages=tuple(title for title, _ in PAGES), profile=True,
                recipe_seeds=(0, 1, 2), recipe_train_images=None, recipe_epochs=None,
                variant_steps=40, variant_rounds=3, compile_variants=True)
QUICK = Settings(quick=True, test_images=500, angles=(0.0, 15.0),
                 baseline_images=500, baseline_angles=(15.0,),
                 bf16_images=200, bf16_angles=(15.0,),
                 interactive_runs=20, train_images=640, matmul_size=1024, matmul_repeats=2,
                 cold_pages=PAGES[0][:1], profile=False,  # the default page only
                 recipe_seeds=(0,), recipe_train_images=512, recipe_epochs=1,
                 variant_steps=3, variant_rounds=1, compile_variants=False)
