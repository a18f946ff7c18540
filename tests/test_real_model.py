# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""benchmarks/real_model.py: the protocol's invariants (paired commands, disjoint prompt sets) and its statistics."""

import argparse
import importlib.util
import json
import math
import re
from pathlib import Path

import pytest


REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def real_model():
    spec = importlib.util.spec_from_file_location("real_model", REPO / "benchmarks" / "real_model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.unit
def test_paired_difference_is_the_t_interval_by_hand(real_model):
    # differences 0.01, 0.03, -0.01, 0.02, 0.00, 0.04: mean 0.015, sample sd sqrt(0.00175 / 5) = 0.018708,
    # t(0.975, 5) = 2.571, half-width 2.571 * 0.018708 / sqrt(6) = 0.019636
    result = real_model.paired_difference([0.01, 0.03, -0.01, 0.02, 0.0, 0.04])
    assert result["n"] == 6
    assert result["mean"] == pytest.approx(0.015)
    assert result["sd"] == pytest.approx(math.sqrt(0.00175 / 5))
    assert result["ci95"] == pytest.approx([0.015 - 0.019636, 0.015 + 0.019636], abs=1e-6)
    assert math.isnan(real_model.paired_difference([0.1])["ci95"][0])  # one pair: no interval


@pytest.mark.unit
def test_the_recorded_command_names_no_path_of_the_machine(real_model, tmp_path):
    """A run's JSON records its command with the repository's files relative to the root and the run folder under
    `<work_dir>`; a word that is neither is kept as it is."""
    work_dir = tmp_path / "work"
    command = [str(real_model.REPO_ROOT / "recipes" / "train.py"), "--config", str(real_model.RECIPE)]
    command += ["--output_dir", str(work_dir / "grpo_seed42"), "--seed", "42", "--data", "/elsewhere/file.jsonl"]
    assert real_model.portable(command, work_dir) == [
        "recipes/train.py", "--config", "recipes/smollm2_cpu_rl_zvp.yaml", "--output_dir", "<work_dir>/grpo_seed42",
        "--seed", "42", "--data", "/elsewhere/file.jsonl",
    ]  # fmt: skip


@pytest.mark.unit
def test_both_methods_get_the_same_command_except_the_algorithm(real_model, tmp_path):
    args = argparse.Namespace(model_name_or_path="smollm2-offline", device="cpu")
    commands = {
        method: real_model.train_command(algorithm, extra, 42, 2, tmp_path / "run", args)
        for method, (algorithm, extra) in real_model.METHODS.items()
    }
    grpo, rl_zvp = commands["grpo"], commands["rl_zvp"]
    differing = [(a, b) for a, b in zip(grpo, rl_zvp) if a != b]
    assert differing == [("grpo", "rl_zvp")] and len(grpo) == len(rl_zvp)
    flags = dict(zip(grpo[2::2], grpo[3::2]))
    protocol = real_model.PROTOCOL
    completions = protocol["prompts_per_step"] * protocol["num_generations"]
    assert flags["--generation_batch_size"] == str(completions)
    assert int(flags["--per_device_train_batch_size"]) * int(flags["--gradient_accumulation_steps"]) == completions
    assert flags["--embedded_num_train_prompts"] == str(protocol["max_steps"] * protocol["prompts_per_step"])
    assert flags["--embedded_max_ops"] == "2" and flags["--seed"] == "42"


@pytest.mark.unit
@pytest.mark.parametrize("level", [1, 2])
def test_prompt_sets_are_disjoint_and_sized_by_the_protocol(real_model, level):
    sets = real_model.prompt_sets(level)
    protocol = real_model.PROTOCOL

    def question(messages):
        return messages[-1]["content"].split("\n")[0]  # "What is 7+12?"

    train = {question(p) for p in sets["train"]["prompt"]}
    heldout = [question(p) for p in sets["heldout"]["prompt"]]
    assert len(sets["train"]) == protocol["max_steps"] * protocol["prompts_per_step"]
    assert len(heldout) == protocol["heldout_prompts"] and not train & set(heldout)
    assert len(sets["ood"]) == protocol["ood_prompts"]
    for messages, solution in zip(sets["ood"]["prompt"], sets["ood"]["solution"]):
        expression = re.fullmatch(r"What is (.+)\?", question(messages)).group(1)
        assert len(re.findall(r"[+-]", expression)) == level + 1  # one operation more than the task
        assert eval(expression) == int(solution)  # noqa: S307 (digits and +/- only)
    assert question(sets["probe"]["prompt"][0]) == question(sets["train"]["prompt"][0])  # the first training prompts


@pytest.mark.trainer
def test_report_pairs_seeds_and_writes_table_and_figure(real_model, tmp_path):
    def run(method, seed, acc):
        scores = {"acc@8": acc, "pass@8": 0.5, "never_solved": 0.25}
        steps = [{"reward": 0.1 * i, "entropy": 0.5, "frac_reward_zero_std": 0.4} for i in range(3)]
        return {"method": method, "seed": seed, "eval": {"heldout": scores, "ood": scores}, "steps": steps}

    runs = tmp_path / "runs"
    runs.mkdir()
    accuracies = {"grpo": {42: 0.50, 43: 0.40, 44: 0.60}, "rl_zvp": {42: 0.55, 43: 0.40, 44: 0.62, 45: 0.9}}
    for method, by_seed in accuracies.items():
        for seed, acc in by_seed.items():
            (runs / f"{method}_seed{seed}.json").write_text(json.dumps(run(method, seed, acc)))
    summary = real_model.report(tmp_path)
    paired = summary["paired_vs_grpo"]["rl_zvp"]["heldout/acc@8"]
    assert paired["seeds"] == [42, 43, 44]  # seed 45 has no GRPO partner
    assert paired["mean"] == pytest.approx((0.05 + 0.0 + 0.02) / 3)
    assert summary["paired_vs_grpo"]["rl_zvp"]["heldout/pass@8"]["mean"] == pytest.approx(0.0)
    assert (tmp_path / "real_model.png").stat().st_size > 0
    assert json.loads((tmp_path / "real_model_summary.json").read_text())["methods"]["rl_zvp"]
