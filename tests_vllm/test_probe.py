# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""`recipes/probe.py --use_vllm true` on the embedded task: the probe samples through vLLM colocate, the engine
training would use (vLLM's CPU build here), and writes every prompt once."""

import json
import subprocess
import sys
from pathlib import Path

from conftest import vllm_env


PROBE = Path(__file__).resolve().parents[1] / "recipes" / "probe.py"


def test_probe_samples_through_vllm_colocate(tmp_path):
    out = tmp_path / "probe"
    process = subprocess.run(
        [
            sys.executable, str(PROBE), "--use_vllm", "true", "--vllm_mode", "colocate", "--vllm_max_model_length",
            "160", "--embedded_warmup_steps", "20", "--embedded_num_train_prompts", "12", "--num_generations", "4",
            "--max_completion_length", "32", "--probe_prompts_per_process", "5", "--output_dir", str(out),
        ],
        env={**vllm_env(), "ZVP_TRL_CACHE": str(tmp_path / "cache")},
        capture_output=True,
        text=True,
        timeout=900,
    )  # fmt: skip
    assert process.returncode == 0, process.stderr[-5000:]
    assert "vLLM runs on the CPU: its linear layers keep live weights" in process.stdout
    rows = [json.loads(line) for line in (out / "probe.jsonl").read_text().splitlines()]
    assert [row["index"] for row in rows] == list(range(12))  # 3 batches, the last one short
    assert all(0 <= row["num_correct"] <= 4 and row["num_generations"] == 4 for row in rows)
    kinds = {"all_correct": 4, "all_wrong": 0}
    assert all(row["kind"] == "mixed" or row["num_correct"] == kinds[row["kind"]] for row in rows)
    assert all(0 < row["completion_length_mean"] <= 32 for row in rows)
    settings = json.loads((out / "probe_settings.json").read_text())
    assert settings["use_vllm"] is True
    summary = json.loads((out / "summary.json").read_text())
    assert summary["num_prompts"] == 12 and sum(summary["counts"].values()) == 12


def test_probe_samples_through_a_vllm_server(server, vllm_model_path, tmp_path):
    """`trl vllm-serve` of the model, the probe in server mode: it generates through the server without a weight
    transfer (the probe never changes the weights, which the server loaded from the same checkpoint), so it runs
    where training stops at TRL's NCCL communicator on a CPU machine."""
    out = tmp_path / "probe"
    process = subprocess.run(
        [
            sys.executable, str(PROBE), "--model_name_or_path", vllm_model_path, "--dataset_name", "embedded",
            "--use_vllm", "true", "--vllm_mode", "server", "--vllm_server_base_url", server,
            "--embedded_num_train_prompts", "8", "--num_generations", "4", "--max_completion_length", "24",
            "--probe_prompts_per_process", "4", "--output_dir", str(out), "--probe_plot", "false", "--use_cpu", "true",
        ],
        env=vllm_env(),
        capture_output=True,
        text=True,
        timeout=900,
    )  # fmt: skip
    assert process.returncode == 0, process.stderr[-5000:]
    rows = [json.loads(line) for line in (out / "probe.jsonl").read_text().splitlines()]
    assert [row["index"] for row in rows] == list(range(8))
    assert all(0 < row["completion_length_mean"] <= 24 for row in rows)
    assert json.loads((out / "probe_settings.json").read_text())["use_vllm"] is True
