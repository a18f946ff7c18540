# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""Sharded training for real: every registered trainer under accelerate's FSDP2 on two CPU processes over gloo
(`zvp_trl.launch.cpu_fsdp`; accelerate alone runs an FSDP config on CPU as DDP), checkpoint + SIGKILL + resume under FSDP2
with sharded and full state dicts, and LoRA under FSDP2.

The FSDP2 runs are the two-process runs of tests/test_two_processes.py (same script, reward design and checks) with
`--fsdp2`; their first optimizer step is compared with the DDP run of the same seed."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from test_resume import log_after, same_floats, state
from test_two_processes import WORLD, check_run

from zvp_trl.core.composition import ALGORITHMS


pytestmark = pytest.mark.distributed


SCRIPTS = Path(__file__).parent / "scripts"
EXGRPO = {"exgrpo", "exgrpo_rl_zvp"}


def torchrun(script: str, *args: str, env: dict | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(WORLD)]
    return subprocess.run(
        [*command, str(SCRIPTS / script), *args], env=env, capture_output=True, text=True, timeout=timeout
    )


def first_step(rank: dict) -> dict:
    return {
        "rounds": [r for r in rank["rounds"] if r["step"] == 0],  # prompts, kinds, local and gathered rewards
        "batches": [b for b in rank["batches"] if b["step"] == 0],  # advantages, signs, temperatures, replay flags
        "state": rank["state_after_first_step"],
    }


@pytest.mark.parametrize("algorithm", list(ALGORITHMS))
def test_every_trainer_under_fsdp2_on_two_cpu_processes(every_trainer_run, tmp_path, algorithm):
    ranks = every_trainer_run(algorithm, fsdp2=True)
    # What the processes ran, from inside: accelerate's FSDP2 over gloo, two processes.
    assert [r["rank"] for r in ranks] == [0, 1] and all(r["world_size"] == WORLD for r in ranks)
    assert all(r["distributed_type"] == "FSDP" and r["is_fsdp2"] and r["backend"] == "gloo" for r in ranks)
    # Every parameter a DTensor sharded on dim 0; each process holds a part, the two parts make the whole.
    params = [r["parameters"] for r in ranks]
    assert all(p["model_class"].startswith("FSDP") for p in params)
    assert all(p["num_params"] > 0 and p["num_dtensor_shard0"] == p["num_params"] for p in params)
    assert all(0 < p["local_numel"] < p["global_numel"] for p in params)
    assert params[0]["local_numel"] + params[1]["local_numel"] == params[0]["global_numel"]
    # ExGRPO detects the sharding and takes its collective-forwards path (the run finished: no hang).
    assert all(r["exgrpo_collective_forwards"] is (True if algorithm in EXGRPO else None) for r in ranks)
    # The same whole-group decisions and identical per-prompt state on both processes as under DDP.
    check_run(ranks, tmp_path)

    ddp = every_trainer_run(algorithm)
    assert all(r["distributed_type"] == "MULTI_CPU" and r["parameters"]["num_dtensor_shard0"] == 0 for r in ddp)
    if algorithm in EXGRPO:
        assert not any(r["exgrpo_collective_forwards"] for r in ddp)  # the DDP run took the other path
    # First optimizer step: same prompts, rewards, advantages and per-prompt state as the DDP run of the same seed.
    for fsdp_rank, ddp_rank in zip(ranks, ddp):
        assert first_step(fsdp_rank)["rounds"] and first_step(fsdp_rank)["batches"]
        assert first_step(fsdp_rank) == first_step(ddp_rank)


def sharded_model_weights(checkpoint: Path) -> dict[str, torch.Tensor]:
    """The full model state dict of a SHARDED_STATE_DICT checkpoint (the processes' .distcp files, merged)."""
    from torch.distributed.checkpoint.format_utils import dcp_to_torch_save

    merged = checkpoint.parent / f"{checkpoint.name}.merged.pt"
    dcp_to_torch_save(checkpoint / "pytorch_model_fsdp_0", merged)
    weights = torch.load(merged, weights_only=True)
    return weights.get("model", weights)


@pytest.mark.parametrize("state_dict_type", ["SHARDED_STATE_DICT", "FULL_STATE_DICT"])
def test_fsdp2_killed_mid_step_resumes_to_the_uninterrupted_run(tiny_model_path, tmp_path, state_dict_type):
    """ExGRPO (the most stateful trainer, collective forwards) under FSDP2: SIGKILLed while scoring step 3, resumed
    from checkpoint-2, it ends with the uninterrupted run's per-prompt state, logs and weights."""
    run, reference = tmp_path / "run", tmp_path / "reference"
    common = ["--algorithm", "exgrpo", "--model", tiny_model_path, "--max_steps", "4", "--fsdp2", state_dict_type]
    killed = torchrun("resume_run.py", *common, "--output_dir", str(run), "--kill_at", "3", "--kill_in", "generation")
    assert killed.returncode != 0 and "Signal 9 (SIGKILL)" in killed.stderr, killed.stderr[-3000:]
    assert sorted(p.name for p in run.glob("checkpoint-*")) == ["checkpoint-1", "checkpoint-2"]
    resumed = torchrun("resume_run.py", *common, "--output_dir", str(run), "--resume", "--reference", str(reference))
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]

    for folder in (run, reference):  # what each state dict type writes: shards per process, or one full file
        checkpoint = folder / "checkpoint-4"
        if state_dict_type == "SHARDED_STATE_DICT":
            for part in ("pytorch_model_fsdp_0", "optimizer_0"):
                assert sorted(p.name for p in (checkpoint / part).glob("*.distcp")) == ["__0_0.distcp", "__1_0.distcp"]
            assert not (checkpoint / "model.safetensors").exists()
        else:
            assert (checkpoint / "model.safetensors").is_file() and (checkpoint / "optimizer.bin").is_file()
    assert state(run / "checkpoint-2") == state(reference / "checkpoint-2")
    final = state(run / "checkpoint-4")
    assert final == state(reference / "checkpoint-4") and final != state(reference / "checkpoint-2")
    assert final["exgrpo_phase"]["draws"] > 0  # replays happened after the resume point
    resumed_logs = log_after(run / "checkpoint-4", 2)
    assert len(resumed_logs) == 2 and same_floats(resumed_logs, log_after(reference / "checkpoint-4", 2))
    if state_dict_type == "SHARDED_STATE_DICT":
        weights, expected = (sharded_model_weights(f / "checkpoint-4") for f in (run, reference))
        start = sharded_model_weights(reference / "checkpoint-2")
    else:
        weights, expected = (load_file(f / "checkpoint-4" / "model.safetensors") for f in (run, reference))
        start = load_file(reference / "checkpoint-2" / "model.safetensors")
    assert weights.keys() == expected.keys() and len(weights) > 0
    assert all(torch.equal(weights[k], expected[k]) for k in expected)
    assert not all(torch.equal(weights[k], start[k]) for k in expected)  # the weights moved after the resume point


def lora_run(tiny_model_path: str, tmp_path: Path, mode: str) -> list[dict]:
    """The rank results of tests/scripts/sharded_lora.py (RL-ZVP + LoRA, sharded by `mode`) on two processes."""
    import os

    env = dict(os.environ, ZVP_TEST_MODEL=tiny_model_path, ZVP_TEST_OUT=str(tmp_path))
    result = torchrun("sharded_lora.py", "--mode", mode, env=env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"lora_rank{r}.json").read_text()) for r in range(WORLD)]
    assert [r["rank"] for r in ranks] == [0, 1]
    return ranks


def check_only_the_adapters_trained(ranks: list[dict]) -> None:
    """Adapters and frozen base weights sharded; only the adapters train, and all of them move."""
    for r in ranks:
        params = r["params"]
        assert params and all(p["sharded"] for p in params.values())
        lora = {n for n in params if "lora_" in n}
        assert lora and {n for n, p in params.items() if p["trainable"]} == lora
        assert {n for n, p in params.items() if p["changed"]} == lora


def test_lora_under_fsdp2_trains_only_the_adapters(tiny_model_path, tmp_path):
    ranks = lora_run(tiny_model_path, tmp_path, "fsdp2")
    assert all(r["distributed_type"] == "FSDP" and r["model_class"].startswith("FSDP") for r in ranks)
    check_only_the_adapters_trained(ranks)
