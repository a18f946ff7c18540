# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""benchmarks/evidence.py: the protocol's invariants (one budget and one task per experiment, methods differing only
in their own flags) and the signal count it reports, by hand."""

import importlib.util
import sys
from pathlib import Path

import pytest


pytestmark = pytest.mark.unit


REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def evidence():
    sys.path.insert(0, str(REPO / "benchmarks"))
    spec = importlib.util.spec_from_file_location("evidence", REPO / "benchmarks" / "evidence.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_signal_history_by_hand(evidence):
    steps = [
        # 16 groups, all zero-variance; nothing correct
        {"step": 1, "rollouts/total": 128, "frac_reward_zero_std": 1.0, "reward": 0.0},
        # 16 more groups, a quarter of them mixed
        {"step": 2, "rollouts/total": 256, "frac_reward_zero_std": 0.75, "reward": 0.02},
        # GRPO-DS: 3 rounds of 16 groups in one step; its own share of zero-variance groups wins over TRL's
        {"step": 3, "rollouts/total": 640, "frac_reward_zero_std": 0.0, "ds/frac_dropped": 0.5, "reward": 0.1},
    ]
    result = evidence.signal_history(steps, num_generations=8)
    assert result["groups_generated"] == 16 + 16 + 48
    assert result["groups_with_signal"] == 0 + 4 + 24
    assert result["first_step_with_mixed_group"] == 2 and result["first_step_with_correct_completion"] == 2
    none = evidence.signal_history(steps[:1], num_generations=8)
    assert none["groups_with_signal"] == 0 and none["first_step_with_mixed_group"] is None


@pytest.mark.parametrize("experiment", ["cold_start", "saturation", "dose_response"])
def test_methods_of_an_experiment_share_everything_but_their_own_flags(evidence, experiment, tmp_path):
    protocol = evidence.PROTOCOL[experiment]
    task = evidence.level_args(experiment, 3, tmp_path)
    assert "grpo" in protocol["methods"] and len(protocol["seeds"]) >= 3
    for name, flags in protocol["methods"].items():
        assert flags[:2] == ["--algorithm", flags[1]] and "--seed" not in flags and "--max_rollouts" not in flags
        assert not set(flags) & {a for a in task if a.startswith("--")}, name  # no method overrides the task
    if experiment == "cold_start":
        assert len(protocol["seeds"]) >= 5 and set(protocol["methods"]) >= {
            "grpo", "rl_zvp", "erpo", "erpo_all_wrong", "exgrpo", "grpo_ds", "greso"
        }  # fmt: skip
        assert protocol["keep"] == "all_wrong"
    if experiment == "saturation":
        assert len(protocol["seeds"]) >= 5 and set(protocol["methods"]) == {"grpo", "rl_zvp", "erpo"}
        assert protocol["keep"] == "all_correct" and protocol["num_ops"] == 1
    if experiment in ("cold_start", "saturation"):  # trained on the probe's kept prompts
        assert task[task.index("--dataset_name") + 1] == str(tmp_path / "train_prompts.jsonl")
        assert protocol["probe_draw"] > protocol["num_train_prompts"]
    if experiment == "dose_response":
        assert task == [] and "rl_zvp_alpha0.0" in protocol["methods"]


def test_kept_indices_by_hand(evidence):
    correct = [0, 8, 3, 0, 8, 8, 0]  # correct samples of 8, per probed prompt
    assert evidence.kept_indices(correct, "all_wrong", 2) == [0, 3]
    assert evidence.kept_indices(correct, "all_wrong", 10) == [0, 3, 6]
    assert evidence.kept_indices(correct, "all_correct", 2) == [1, 4]
    with pytest.raises(KeyError):
        evidence.kept_indices(correct, "mixed", 2)
