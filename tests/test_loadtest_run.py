"""The load harness against the real app, in a subprocess: a small class, two of whom press
Train with one training slot, so the second waits in the queue and then runs. It asserts
what the students saw (no errors, their own answers, both trainings finished, one queued),
never how fast: CI machines differ."""

import json
import os
import subprocess
import sys

from conftest import ROOT

# The lesson lasts 30 s; the rest is the server's start, the warm-up visitor, the trainings
# (each may take --train-timeout) and the students' last answers, on a loaded CI machine.
TIMEOUT_S = 900
# Seed 2 has both trainers press Train within a fraction of a second of each other
# (rotinv.bench.loadtest.plans), so the second finds the one slot taken.
SEED = "2"


def test_a_small_class_with_two_trainings_and_one_slot(data_root, tmp_path):
    out = tmp_path / "load.json"
    command = [sys.executable, "-m", "rotinv.bench.loadtest", "--sessions", "8", "--trainings", "2",
               "--seconds", "30", "--max-trainings", "1", "--torch-threads", "1", "--seed", SEED,
               "--json", str(out)]
    env = dict(os.environ, ROTINV_DATA_ROOT=data_root)
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=TIMEOUT_S)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    [result] = json.loads(out.read_text())
    assert result["errors"] == {}, result["error_list"]
    assert result["checked_answers"] > 0  # every answer checked was the session's own and the model's
    assert result["training_outcomes"] == {"finished": 2}
    assert result["trainings_queued"] >= 1  # the second press waited for the slot, then ran
