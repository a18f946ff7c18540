# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""benchmarks/gpu_acceptance.py, the GPU acceptance run, in its CPU dry run (`--device cpu`, tiny sizes): every check
it makes on a GPU runs and passes here, one line each."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from zvp_trl.core.composition import ALGORITHMS


REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "gpu_acceptance.py"


@pytest.mark.distributed
def test_gpu_acceptance_dry_run_passes_every_check(tmp_path):
    output = tmp_path / "acceptance.json"
    command = [sys.executable, str(SCRIPT), "--device", "cpu", "--output", str(output), "--work_dir", str(tmp_path)]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    lines = [line for line in result.stdout.splitlines() if line.startswith(("PASS", "FAIL"))]
    checks = json.loads(output.read_text())["checks"]
    # One line per check, all passed; the JSON holds the same.
    assert len(lines) == len(checks) and all(line.startswith("PASS  ") for line in lines)
    assert all(check["ok"] for check in checks)
    names = [check["check"] for check in checks]
    algorithms = list(ALGORITHMS)
    expected = ["environment", "math-verify reward", "train trl_grpo"]
    expected += [f"train {name}" for name in algorithms] + [f"cost {name}" for name in algorithms]
    expected += ["bf16 erpo", "bf16 rl_zvp", "bf16 exgrpo", "bf16 grpo_ds", "bf16 greso"]
    assert names == expected
    assert result.stdout.splitlines()[-1].startswith(f"{len(expected)} passed, 0 failed in ")


@pytest.mark.distributed
def test_gpu_acceptance_refuses_what_it_cannot_run(tmp_path):
    unknown = subprocess.run(
        [sys.executable, str(SCRIPT), "--device", "cpu", "--trainers", "nope"], capture_output=True, text=True
    )
    assert unknown.returncode == 2 and "--trainers: unknown ['nope']" in unknown.stderr
    # On a machine without a GPU the default (the GPU run) says so and how to dry-run.
    no_gpu = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True)
    assert no_gpu.returncode == 2 and "no CUDA device; run with --device cpu" in no_gpu.stderr
