"""`python -m rotinv.bench`: the hot paths, timed against this machine's own fp32 matmul rate.

Everything is measured in one run, so the ratios (percent of the roofline, speed-up over
the notebook way) compare numbers taken under the same conditions. The table is printed,
and written to BENCHMARKS.md in the repository root together with the conditions, a short
profile of every target that was missed, and what was tried.

    python -m rotinv.bench            # the full benchmark (minutes), writes BENCHMARKS.md
    python -m rotinv.bench --quick    # tiny settings, for the test suite; writes nothing
    python -m rotinv.bench --quick --out /tmp/bench.md

Needs MNIST (ROTINV_DATA_ROOT, as everywhere) and the shipped model models/lenet5.pt;
--quick falls back to an untrained LeNet-5 when there is no shipped model yet (the speed
is the same, the accuracies are not).

The modules, one concern each: settings (targets, row labels, the app's pages), subject
(the model and data every measurement shares), roofline (FLOPs and the matmul rate),
sweep, notebook, interactive, training, app (the pages in fresh processes), threads,
machine (the CPU and its load), profiling, report (rows, tables, and BENCHMARKS.md from
template.md, which holds all its prose), cli (the command). The probe_* modules run in a
fresh Python.

`python -m rotinv.bench.loadtest` is the class on one server (its own docstring says
more): server (starting and stopping the app), stclient (one browser session over the
websocket), students (what each simulated student does and checks), loadreport (its
table and its section of BENCHMARKS.md, from loadtest.md), loadtest (the command).
"""

# Nothing is imported here: `python -m rotinv.bench.probe_app` imports this package first,
# and whatever it loaded would count in that fresh process's start-up time and memory.
