# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""Usage errors on the command line (`recipes/train.py`, `recipes/probe.py`, `recipes/evaluate.py`): one line on stderr
saying what is wrong and how to fix it, exit status 2, no traceback; a failure after set-up keeps its traceback."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from zvp_trl.scripts import evaluate as evaluate_script
from zvp_trl.scripts import probe as probe_script
from zvp_trl.scripts import train as train_script


REPO = Path(__file__).resolve().parents[1]
SCRIPTS = {"train": train_script.cli, "probe": probe_script.cli, "evaluate": evaluate_script.cli}


def usage_error(capsys, monkeypatch, script: str, *argv: str) -> str:
    """Runs the script's command line in process; returns its one stderr line after checking the exit status 2."""
    monkeypatch.setattr(sys, "argv", [f"recipes/{script}.py", *argv])
    with pytest.raises(SystemExit) as exit_info:
        SCRIPTS[script]()
    assert exit_info.value.code == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith(f"recipes/{script}.py: error:")]
    assert len(lines) == 1, lines
    assert "ZVP_TRL_TRACEBACK=1" in lines[0]
    return lines[0]


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("ZVP_TRL_CACHE", str(tmp_path_factory.getbasetemp() / "zvp_cache"))


@pytest.mark.unit
@pytest.mark.parametrize("script", ["train", "probe"])
def test_unknown_algorithm_and_bad_values(script, capsys, monkeypatch, tmp_path):
    line = usage_error(capsys, monkeypatch, script, "--algorithm", "nope", "--output_dir", str(tmp_path))
    assert "Unknown algorithm 'nope'" in line and "rl_zvp" in line  # names the choices
    line = usage_error(capsys, monkeypatch, script, "--algorithm", "rl_zvp", "--zvp_alpha", "-1")
    assert "zvp_alpha" in line
    line = usage_error(capsys, monkeypatch, script, "--no_such_flag", "1")
    assert "--no_such_flag" in line


@pytest.mark.trainer
@pytest.mark.parametrize("script", ["train", "probe"])
def test_missing_column_and_a_reward_that_does_not_import(script, capsys, monkeypatch, tmp_path):
    data = tmp_path / "data.jsonl"
    data.write_text(json.dumps({"problem": "1+1?", "notes": "x"}) + "\n")
    small = ["--embedded_warmup_steps", "5", "--output_dir", str(tmp_path / "out")]
    line = usage_error(capsys, monkeypatch, script, "--dataset_name", str(data), *small)
    assert "answer" in line and str(data) in line
    line = usage_error(capsys, monkeypatch, script, "--reward_funcs", "no_such_module.reward", *small)
    assert "ModuleNotFoundError" in line and "no_such_module" in line


@pytest.mark.unit
def test_evaluate_without_a_model(capsys, monkeypatch):
    line = usage_error(capsys, monkeypatch, "evaluate", "--benchmarks", "math500")
    assert "--model_name_or_path is required" in line
    line = usage_error(capsys, monkeypatch, "evaluate", "--model_name_or_path", "embedded", "--benchmarks", "nope")
    assert "--benchmarks: unknown 'nope'; choose from" in line and "math500" in line


@pytest.mark.distributed
def test_exit_status_two_from_the_command_and_a_traceback_after_setup(tmp_path):
    env = dict(os.environ, ZVP_TRL_CACHE=str(tmp_path / "cache"))
    result = subprocess.run(
        [sys.executable, str(REPO / "recipes" / "train.py"), "--algorithm", "nope"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("recipes/train.py: error: Unknown algorithm 'nope'")
    # A reward function that fails while training is no usage error: its traceback is kept.
    (tmp_path / "failing_reward.py").write_text(
        "def reward(completions, **kwargs):\n    raise ValueError('the reward broke')\n"
    )
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), env.get("PYTHONPATH", "")])
    result = subprocess.run(
        [sys.executable, str(REPO / "recipes" / "train.py"), "--embedded_warmup_steps", "5", "--max_steps", "1",
         "--reward_funcs", "failing_reward.reward", "--output_dir", str(tmp_path / "out")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 1 and "Traceback" in result.stderr and "the reward broke" in result.stderr
