"""The benchmark runs end to end in --quick mode.

No timing is asserted anywhere: the machine is shared and the numbers are the benchmark's
business. What is checked is that every row is printed, that --quick leaves BENCHMARKS.md
alone, and that the Markdown template has every section a full run writes; that the faster
code paths change no result is tests/test_fast_paths.py.
"""

import hashlib
import os
import subprocess
import sys

from rotinv.bench.cli import output_path, parse_args
from rotinv.bench.report import Report, markdown, row, template_sections
from rotinv.bench.roofline import count_flops
from rotinv.bench.settings import DEFAULT_OUT, FULL, ROW_LABELS
from rotinv.data import DATA_ROOT_ENV
from rotinv.models import LeNet5

from realdata import ROOT, real_data_root


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None


def test_quick_bench_prints_every_row_and_leaves_benchmarks_md_alone(tmp_path):
    benchmarks = ROOT / "BENCHMARKS.md"
    before = _digest(benchmarks)
    out = tmp_path / "bench.md"
    env = dict(os.environ, **{DATA_ROOT_ENV: real_data_root()})
    completed = subprocess.run([sys.executable, "-m", "rotinv.bench", "--quick", "--out", str(out)],
                               cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800)
    assert completed.returncode == 0, completed.stderr[-2000:]
    lines = completed.stdout.splitlines()
    for label in ROW_LABELS:
        row = next((line for line in lines if line.startswith(label)), None)
        assert row is not None, f"no row {label!r} in:\n{completed.stdout}"
        assert "not measured" not in row and "failed" not in row, row
    assert any(" PASS, " in line and " MISS " in line for line in lines)
    markdown = out.read_text()
    assert all(f"| {label} |" in markdown for label in ROW_LABELS)
    assert _digest(benchmarks) == before


def test_quick_mode_writes_no_file_unless_asked():
    assert output_path(parse_args(["--quick"])) is None
    assert output_path(parse_args([])) == DEFAULT_OUT
    assert str(output_path(parse_args(["--quick", "--out", "x.md"]))) == "x.md"


def test_flops_are_counted_from_the_layer_shapes():
    flops, macs = count_flops(LeNet5())
    assert macs == {"conv1": 6 * 25 * 28 * 28, "conv2": 16 * 6 * 25 * 14 * 14, "conv3": 120 * 16 * 25 * 7 * 7,
                    "fc1": 5880 * 120, "fc2": 120 * 84, "fc3": 84 * 10}
    assert flops == 2 * 3_656_520


def test_every_explanation_in_the_template_belongs_to_a_row():
    explained = [name.removeprefix("why: ") for name in template_sections() if name.startswith("why: ")]
    assert explained and set(explained) <= set(ROW_LABELS)


def test_a_full_run_fills_every_section_of_the_template():
    # --quick has no threading notes or profiles: those sections are only rendered here.
    report = Report(FULL, conditions=["CPU: test"], threading=["torch's default: x"], profiles={"sweep": ["1%  op"]})
    report.add(*(row(label, "1", "> 0", label != "training", ["a limit"] if label == "training" else [])
                 for label in ROW_LABELS))
    text = markdown(report, "python -m rotinv.bench")
    headings = [line for line in text.splitlines() if line.startswith("#")]
    assert headings == ["# Benchmarks", "## Conditions", "## Results",
                        "## Threading on this shared machine (same run, fresh processes, 3,000 images at 15 degrees)",
                        "## Profiles (torch.profiler, this run)", "## What limits the missed targets, and what was tried",
                        "### training", "## Changes made for speed", "## Settings"]
    assert "a limit\n\nThe row trains in the precision" in text  # the run's note, then the template's explanation
    assert "$" not in text and "<!--" not in text


def test_the_app_never_imports_torchvision():
    # torchvision costs the app's start seconds and ~170 MB; rotinv reads MNIST and rotates without it.
    script = (
        "import sys\n"
        "from streamlit.testing.v1 import AppTest\n"
        "at = AppTest.from_file('streamlit_app.py', default_timeout=300)\n"
        "at.run()\n"
        "for page in ('app_pages/2_sweep.py', 'app_pages/3_inside.py'):\n"
        "    at.switch_page(page).run()\n"
        "    assert not at.exception, at.exception\n"
        "print('TORCHVISION', 'torchvision' in sys.modules)\n"
    )
    completed = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True,
                               timeout=600, env=dict(os.environ, **{DATA_ROOT_ENV: real_data_root()}))
    assert "TORCHVISION False" in completed.stdout, completed.stderr[-2000:]
