# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""The zero-variance probe (`zvp_trl.probe()`, `recipes/probe.py`): exact counts on prompts built to be always, never and
half solved; the summary and recommendations by hand; resume after a kill; every prompt once on 1 and 2 processes;
the filtered data set trains; the probe agrees with the first training step on the embedded task."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from cpu_config import cpu_config_kwargs
from datasets import Dataset

from zvp_trl import GRPOBaselineConfig
from zvp_trl.probing import ProbeArguments, probe, recommend, summarize
from zvp_trl.probing.report import expected_rounds, kept_indices
from zvp_trl.probing.run import _read_done


REPO = Path(__file__).resolve().parents[1]
G = 4
KIND_OF = {"always": G, "never": 0, "half": G // 2}


def kind_reward(completions, kind, **kwargs):
    """Rows come in groups of G consecutive completions of one prompt: `always` scores 1 on all, `never` 0 on all,
    `half` 1 on the first G/2 of its group."""
    return [float(k == "always" or (k == "half" and i % G < G // 2)) for i, k in enumerate(kind)]


def kinds_dataset(kinds: list[str]) -> Dataset:
    return Dataset.from_dict({"prompt": [f"Q: {i}+1=?\nA:" for i in range(len(kinds))], "kind": kinds})


def config(tmp_path, **overrides):
    values = cpu_config_kwargs(tmp_path, num_generations=G, max_completion_length=4, per_device_train_batch_size=G)
    values.update(overrides)
    return GRPOBaselineConfig(**values)


def rows_of(path: Path) -> list[dict]:
    return [json.loads(line) for line in (path / "probe.jsonl").read_text().splitlines()]


# ----------------------------------------------------------------------------------------------------- by hand


@pytest.mark.unit
def test_summary_and_recommendations_by_hand():
    rows = [
        {"index": i, "num_correct": c, "num_generations": 4, "kind": k, "completion_length_mean": 10.0}
        for i, (c, k) in enumerate(
            [(4, "all_correct"), (0, "all_wrong"), (0, "all_wrong"), (2, "mixed"), (1, "mixed")]
        )
    ]
    summary = summarize(rows, {"num_generations": 4, "model": "m", "dataset": "d"})
    assert summary["counts"] == {"all_correct": 1, "all_wrong": 2, "mixed": 2}
    assert (summary["all_correct"], summary["all_wrong"], summary["mixed"]) == (0.2, 0.4, 0.4)
    assert summary["zero_gradient_rollout_share"] == pytest.approx(0.6)
    # Acc@4: mean solve rate (1 + 0 + 0 + 0.5 + 0.25) / 5; Pass@4: solved at least once, 3 of 5.
    assert summary["acc@4"] == pytest.approx(1.75 / 5) and summary["pass@4"] == pytest.approx(0.6)
    # Mixed 40%: 1 / 0.4 = 2.5 rounds per batch; the suggested round limit is twice that, rounded up.
    assert expected_rounds(0.4) == 2.5 and math.isinf(expected_rounds(0.0))
    advice = recommend(summary)
    fields = [field for item in advice for field in item["fields"]]
    assert "--algorithm rl_zvp" in fields  # 40% all-wrong >= 20%
    assert any(f.startswith("--algorithm erpo") for f in fields)  # 20% all-correct >= 20%
    assert "ds_max_generation_rounds: 5" in fields
    assert "zvp_alpha_rule: relative" in fields  # 60% of the rollouts without a gradient
    # Nothing mixed: plain GRPO and dynamic sampling cannot learn; RL-ZVP is named.
    none_mixed = recommend({"all_correct": 0.5, "all_wrong": 0.5, "mixed": 0.0})
    assert any("learn nothing" in item["finding"] for item in none_mixed)


@pytest.mark.unit
def test_solve_rate_band():
    rows = [{"index": i, "num_correct": c, "num_generations": 4} for i, c in enumerate([0, 1, 2, 4, 3])]
    assert kept_indices(rows, None, None) == [1, 2, 4]  # default: drop never- and always-solved
    assert kept_indices(rows, 0.0, 1.0) == [0, 1, 2, 3, 4]
    assert kept_indices(rows, 0.5, 0.75) == [2, 4]
    with pytest.raises(ValueError, match="0 <= min <= max <= 1"):
        ProbeArguments(filter_min_solve_rate=0.8, filter_max_solve_rate=0.2)


@pytest.mark.unit
def test_a_torn_last_line_is_cut(tmp_path):
    path = tmp_path / "probe.jsonl"
    path.write_text('{"index": 0}\n{"index": 1}\n{"ind')
    assert _read_done(path) == [{"index": 0}, {"index": 1}]
    assert path.read_text() == '{"index": 0}\n{"index": 1}\n'


# ------------------------------------------------------------------------------------------------- the probe


@pytest.mark.trainer
def test_prompts_built_to_be_always_never_and_half_solved(tiny_model_path, tmp_path):
    kinds = ["always", "never", "half", "half", "never", "always", "never"]
    summary = probe(
        tiny_model_path,
        kind_reward,
        kinds_dataset(kinds),
        config(tmp_path),
        ProbeArguments(probe_prompts_per_process=3),  # 3 batches, the last one short
        print_report=False,
    )
    rows = rows_of(tmp_path)
    assert [row["index"] for row in rows] == list(range(7))
    assert [row["num_correct"] for row in rows] == [KIND_OF[k] for k in kinds]
    expected_kind = {"always": "all_correct", "never": "all_wrong", "half": "mixed"}
    assert [row["kind"] for row in rows] == [expected_kind[k] for k in kinds]
    assert all(row["num_generations"] == G for row in rows)
    half = rows[2]
    assert half["reward_mean"] == 0.5 and half["reward_std"] == 0.5 and rows[0]["reward_std"] == 0.0
    assert all(1 <= row["completion_length_mean"] <= 4 for row in rows)
    on_disk = json.loads((tmp_path / "summary.json").read_text())
    assert on_disk["counts"] == summary["counts"] == {"all_correct": 2, "all_wrong": 3, "mixed": 2}
    assert on_disk["all_wrong"] == pytest.approx(3 / 7) and on_disk["zero_gradient_rollout_share"] == pytest.approx(
        5 / 7
    )
    assert on_disk[f"acc@{G}"] == pytest.approx((2 * 1 + 2 * 0.5) / 7)
    assert on_disk[f"pass@{G}"] == pytest.approx(4 / 7)
    assert on_disk["settings"]["num_generations"] == G and on_disk["model"] == tiny_model_path
    assert on_disk["machine"]["kind"] and on_disk["machine"]["instruction_set"]
    assert (tmp_path / "solve_rates.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # The correct completions of the half-solved prompts, G/2 each, for ExGRPO's warm start.
    trajectories = [json.loads(line) for line in (tmp_path / "trajectories.jsonl").read_text().splitlines()]
    assert sorted(t["index"] for t in trajectories) == [2, 2, 3, 3]
    assert all(1 <= len(t["completion_ids"]) <= 4 for t in trajectories)


class Killed(Exception):
    pass


@pytest.mark.trainer
def test_a_killed_probe_resumes_without_repeating_or_losing_prompts(tiny_model_path, tmp_path):
    kinds = ["always", "never", "half", "half", "never", "always", "half", "never"]
    whole = tmp_path / "whole"
    probe(tiny_model_path, kind_reward, kinds_dataset(kinds), config(whole), ProbeArguments(2), print_report=False)
    calls = []

    def dies_in_the_third_batch(completions, kind, **kwargs):
        calls.append(len(completions))
        if len(calls) == 3:
            raise Killed
        return kind_reward(completions, kind)

    resumed = tmp_path / "resumed"
    with pytest.raises(Killed):
        probe(
            tiny_model_path, dies_in_the_third_batch, kinds_dataset(kinds), config(resumed), ProbeArguments(2),
            print_report=False,
        )  # fmt: skip
    assert [row["index"] for row in rows_of(resumed)] == [0, 1, 2, 3]  # two complete batches
    with open(resumed / "probe.jsonl", "a") as f:
        f.write('{"index": 4, "num_')  # and a row torn by the kill
    scored = []

    def counting(completions, kind, **kwargs):
        scored.append(len(completions) // G)
        return kind_reward(completions, kind)

    probe(tiny_model_path, counting, kinds_dataset(kinds), config(resumed), ProbeArguments(2), print_report=False)
    assert scored == [2, 2]  # only the prompts not yet written: 4-5 and 6-7
    # The same file as the uninterrupted probe: each batch has its own seed.
    assert (resumed / "probe.jsonl").read_text() == (whole / "probe.jsonl").read_text()
    assert (resumed / "trajectories.jsonl").read_text() == (whole / "trajectories.jsonl").read_text()
    # Another setting is refused, naming the difference.
    with pytest.raises(ValueError, match=r"num_generations: 4 there, 2 now"):
        probe(
            tiny_model_path, kind_reward, kinds_dataset(kinds), config(resumed, num_generations=2), ProbeArguments(2),
            print_report=False,
        )  # fmt: skip


@pytest.mark.trainer
def test_filtered_data_trains_on_exactly_the_kept_prompts(tmp_path, monkeypatch):
    from zvp_trl.core.prompt_ids import prompt_id
    from zvp_trl.scripts import probe as probe_script
    from zvp_trl.scripts import train as train_script

    monkeypatch.setenv("ZVP_TRL_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "probe"
    small = ["--embedded_num_train_prompts", "16", "--max_completion_length", "48"]
    summary = probe_script.main(
        [*small, "--num_generations", "4", "--output_dir", str(out), "--write_filtered", "true"]
    )
    rows = rows_of(out)
    kept = [row for row in rows if 0 < row["num_correct"] < row["num_generations"]]
    filtered = [json.loads(line) for line in (out / "filtered.jsonl").read_text().splitlines()]
    assert summary["filtered_rows"] == len(filtered) == len(kept) > 0
    assert [prompt_id(row) for row in filtered] == [row["prompt_id"] for row in kept]
    assert set(filtered[0]) == {"prompt", "solution", "num_ops"}  # every column of the data set
    # `recipes/train.py --dataset_name <filtered.jsonl>` as the report prints it: the same prompts, as they were.
    seen = []
    original = train_script._datasets

    def spy(script_args, embedded):
        train, heldout = original(script_args, embedded)
        seen.extend(prompt_id(row) for row in train)
        return train, heldout

    monkeypatch.setattr(train_script, "_datasets", spy)
    trained = train_script.main(
        [*small, "--dataset_name", str(out / "filtered.jsonl"), "--prompt_template", "{question}", "--max_steps", "1",
         "--num_generations", "4", "--per_device_train_batch_size", "4", "--generation_batch_size", "4",
         "--embedded_num_eval_prompts", "0", "--dynamics_plot", "false", "--output_dir", str(tmp_path / "train")]
    )  # fmt: skip
    assert trained["global_steps"] == 1
    assert seen == [row["prompt_id"] for row in kept]


@pytest.mark.trainer
def test_probe_fractions_agree_with_the_first_training_step(tmp_path, monkeypatch):
    """On the embedded task: the probe's zero-variance share p over N prompts and the first training step's over B
    prompts (TRL's `frac_reward_zero_std`) estimate the same quantity, each with a binomial spread over prompts, so
    they differ by less than 3 sigma = 3 sqrt(p (1 - p) (1/N + 1/B))."""
    from zvp_trl.scripts import probe as probe_script
    from zvp_trl.scripts import train as train_script

    monkeypatch.setenv("ZVP_TRL_CACHE", str(tmp_path / "cache"))
    N, B, G8 = 64, 32, 8
    common = ["--embedded_num_train_prompts", str(N), "--max_completion_length", "48"]
    common += ["--num_generations", str(G8)]
    summary = probe_script.main(
        [*common, "--output_dir", str(tmp_path / "probe"), "--probe_prompts_per_process", "16"]
    )
    p = summary["zero_gradient_rollout_share"]
    train_script.main(
        [*common, "--algorithm", "grpo", "--max_steps", "1", "--per_device_train_batch_size", str(B * G8),
         "--generation_batch_size", str(B * G8), "--embedded_num_eval_prompts", "0", "--dynamics_plot", "false",
         "--logging_steps", "1", "--output_dir", str(tmp_path / "train")]
    )  # fmt: skip
    history = json.loads((tmp_path / "train" / "trainer_state.json").read_text())["log_history"]
    first = next(entry["frac_reward_zero_std"] for entry in history if "frac_reward_zero_std" in entry)
    sigma = math.sqrt(p * (1 - p) * (1 / N + 1 / B))
    assert 0 < p < 1 and abs(first - p) <= 3 * sigma, (first, p, sigma)


# ------------------------------------------------------------------------------------------- processes


def _launch_probe(out: Path, processes: int, tmp_path: Path) -> subprocess.CompletedProcess:
    command = [sys.executable]
    if processes > 1:  # as the recipes launch: accelerate's DDP config, gloo on the CPU
        command += ["-m", "accelerate.commands.launch", "--num_processes", str(processes), "--config_file"]
        command += [str(REPO / "recipes" / "accelerate" / "multi_gpu.yaml"), "--mixed_precision", "no"]
    command += [str(REPO / "recipes" / "probe.py"), "--embedded_warmup_steps", "5"]
    command += ["--embedded_num_train_prompts", "11", "--num_generations", "4", "--max_completion_length", "8"]
    command += ["--probe_prompts_per_process", "2", "--output_dir", str(out), "--probe_plot", "false"]
    env = dict(os.environ, ZVP_TRL_CACHE=str(tmp_path / "cache"))
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.distributed
def test_every_prompt_once_on_one_and_two_processes(tmp_path):
    files = {}
    for processes, run in ((1, "a"), (2, "a"), (2, "b")):
        out = tmp_path / f"p{processes}{run}"
        result = _launch_probe(out, processes, tmp_path)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        rows = rows_of(out)
        # 11 prompts, 2 per process per batch: on 2 processes the last batch is short (3 of 4 slots).
        assert [row["index"] for row in rows] == list(range(11))
        assert len({row["prompt_id"] for row in rows}) == 11
        settings = json.loads((out / "probe_settings.json").read_text())
        assert settings["num_processes"] == processes
        assert result.stdout.count("[zvp_trl probe]") == 1  # one report, from the main process
        files[(processes, run)] = (out / "probe.jsonl").read_text()
    # The same seed and process count write the same file.
    assert files[(2, "a")] == files[(2, "b")]


# ------------------------------------------------------------------------------------------------- warm start


def _probed(tiny_model_path, tmp_path, kinds) -> Path:
    out = tmp_path / "probe"
    probe(tiny_model_path, kind_reward, kinds_dataset(kinds), config(out), ProbeArguments(4), print_report=False)
    return out


def _warm(algorithm, tiny_model_path, tmp_path, kinds, probe_dir, **overrides):
    from zvp_trl import get_algorithm

    config_class, trainer_class = get_algorithm(algorithm).load()
    values = cpu_config_kwargs(
        tmp_path / algorithm, num_generations=G, max_completion_length=4, per_device_train_batch_size=G,
        init_from_probe=str(probe_dir),
    )  # fmt: skip
    values.update(overrides)
    return trainer_class(
        model=tiny_model_path,
        reward_funcs=kind_reward,
        args=config_class(**values),
        train_dataset=kinds_dataset(kinds),
    )


KINDS = ["always", "never", "half", "always", "half", "never"]


@pytest.mark.trainer
def test_warm_start_of_each_method_by_hand(tiny_model_path, tmp_path):
    probe_dir = _probed(tiny_model_path, tmp_path, KINDS)
    rows = rows_of(probe_dir)
    pid = [row["prompt_id"] for row in rows]
    # ERPO: the probe as a first epoch at the base temperature 1.0: the always-solved prompts move up one step (0.1);
    # never-solved and mixed ones stay at the base (not stored).
    erpo = _warm("erpo", tiny_model_path, tmp_path, KINDS, probe_dir)
    assert erpo.part("erpo").history.temperatures == {pid[0]: pytest.approx(1.1), pid[3]: pytest.approx(1.1)}
    # GRESO: one trace record per prompt, its mean reward.
    greso = _warm("greso", tiny_model_path, tmp_path, KINDS, probe_dir)
    expected = {"always": [1.0], "never": [0.0], "half": [0.5]}
    assert greso.part("greso").greso_state.traces == {pid[i]: expected[k] for i, k in enumerate(KINDS)}
    # ExGRPO: the always-solved prompts retired, the half-solved ones in bucket G/2 with their G/2 correct
    # trajectories exactly as the probe stored them (ids and log-probs), the never-solved ones absent.
    exgrpo = _warm("exgrpo", tiny_model_path, tmp_path, KINDS, probe_dir)
    buffer = exgrpo.part("exgrpo").buffer
    assert buffer.retired == {pid[0], pid[3]}
    assert set(buffer.entries) == {pid[2], pid[4]}
    stored = [json.loads(line) for line in (probe_dir / "trajectories.jsonl").read_text().splitlines()]
    for i in (2, 4):
        entry = buffer.entries[pid[i]]
        assert entry["k"] == G // 2 and entry["row"]["prompt"] == KINDS_PROMPT(i)
        mine = [t for t in stored if t["index"] == i]
        assert len(entry["trajectories"]) == len(mine) == G // 2
        for t, s in zip(entry["trajectories"], mine):
            assert t["ids"].tolist() == s["completion_ids"]
            assert torch.allclose(t["logps"], torch.tensor(s["logps"]), atol=1e-6)
        assert entry["prompt_ids"].tolist() == mine[0]["prompt_ids"]
    # The stored log-probs are the policy's at the start of this run (the probe's model): recomputed here.
    t = buffer.entries[pid[2]]["trajectories"][0]
    ids = torch.tensor([buffer.entries[pid[2]]["prompt_ids"].tolist() + t["ids"].tolist()])
    with torch.no_grad():
        fresh, _, _ = exgrpo._get_per_token_logps_and_entropies(exgrpo.model, ids, torch.ones_like(ids), len(t["ids"]))
    assert torch.allclose(fresh[0], t["logps"], atol=1e-4)


def KINDS_PROMPT(i: int) -> str:
    return f"Q: {i}+1=?\nA:"


@pytest.mark.trainer
@pytest.mark.parametrize("algorithm", ["erpo", "greso", "exgrpo"])
def test_warm_started_state_is_checkpointed_and_resumed(algorithm, tiny_model_path, tmp_path):
    """Two steps from a warm start, uninterrupted; and one step, then a resume from its checkpoint with the same
    arguments (init_from_probe included) to two: the same per-prompt state. The checkpoint holds the warm start's
    state as trained on, and the resumed run's warm start is replaced by it, not applied a second time."""
    probe_dir = _probed(tiny_model_path, tmp_path, KINDS)
    name = {"erpo": "erpo_history", "greso": "greso", "exgrpo": "exgrpo_buffer"}[algorithm]
    whole = _warm(algorithm, tiny_model_path, tmp_path / "whole", KINDS, probe_dir, max_steps=2)
    whole.train()
    first = _warm(
        algorithm, tiny_model_path, tmp_path, KINDS, probe_dir, max_steps=1, save_strategy="steps", save_steps=1
    )
    first.train()
    saved = json.loads((tmp_path / algorithm / "checkpoint-1" / "zvp_state.json").read_text())[name]
    warm = {"erpo": "temperatures", "greso": "traces", "exgrpo": "prompts"}[algorithm]
    assert saved[warm]  # the warm start is in the checkpoint
    resumed = _warm(algorithm, tiny_model_path, tmp_path, KINDS, probe_dir, max_steps=2)
    resumed.train(resume_from_checkpoint=str(tmp_path / algorithm / "checkpoint-1"))
    assert resumed._checkpointed_state[name].state_dict() == whole._checkpointed_state[name].state_dict()


@pytest.mark.trainer
def test_a_probe_of_another_model_data_or_group_size_is_refused(tiny_model_path, tmp_path, tool_model_path):
    probe_dir = _probed(tiny_model_path, tmp_path, KINDS)
    with pytest.raises(ValueError, match=r"num_generations: 4 in the probe, 2 here"):
        _warm("erpo", tiny_model_path, tmp_path, KINDS, probe_dir, num_generations=2, per_device_train_batch_size=4)
    from zvp_trl import ERPOConfig, ERPOTrainer

    values = cpu_config_kwargs(tmp_path / "other", num_generations=G, max_completion_length=4,
                               per_device_train_batch_size=G, init_from_probe=str(probe_dir))  # fmt: skip
    other = Dataset.from_dict({"prompt": [KINDS_PROMPT(i) for i in (2, 4, 40, 41)], "kind": ["half"] * 4})
    with pytest.raises(ValueError, match=r"data: 2 of this run's 4 prompts are not in the probe"):
        ERPOTrainer(model=tiny_model_path, reward_funcs=kind_reward, args=ERPOConfig(**values), train_dataset=other)
    with pytest.raises(ValueError, match=r"model: .* in the probe, .* here"):
        _warm("erpo", tool_model_path, tmp_path, KINDS, probe_dir)
    # A subset of the probed prompts (a filtered data set), and a data set whose first prompts are the probed ones
    # (a probe of the first N), are accepted.
    subset = Dataset.from_dict({"prompt": [KINDS_PROMPT(i) for i in (2, 4)], "kind": ["half", "half"]})
    ERPOTrainer(model=tiny_model_path, reward_funcs=kind_reward, args=ERPOConfig(**values), train_dataset=subset)
    longer = kinds_dataset([*KINDS, "always", "never"])
    ERPOTrainer(model=tiny_model_path, reward_funcs=kind_reward, args=ERPOConfig(**values), train_dataset=longer)
    with pytest.raises(ValueError, match="init_from_probe='nowhere' is not a folder"):
        ERPOConfig(**{**values, "init_from_probe": "nowhere"})


KILLER = """
import os, signal
from zvp_trl.data.rewards import accuracy_reward

CALLS = []


def reward(completions, **kwargs):
    CALLS.append(1)
    if len(CALLS) == int(os.environ.get("KILL_AT_CALL", "0")):
        os.kill(os.getpid(), signal.SIGKILL)  # as the machine would: no cleanup, no exception
    return accuracy_reward(completions, **kwargs)
"""


@pytest.mark.distributed
def test_a_probe_killed_by_sigkill_resumes_to_the_uninterrupted_file(tmp_path):
    (tmp_path / "killer.py").write_text(KILLER)
    env = dict(os.environ, ZVP_TRL_CACHE=str(tmp_path / "cache"))
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), env.get("PYTHONPATH", "")])

    def run(out, **extra):
        command = [sys.executable, str(REPO / "recipes" / "probe.py"), "--reward_funcs", "killer.reward"]
        command += ["--embedded_num_train_prompts", "10", "--num_generations", "4", "--max_completion_length", "24"]
        command += ["--probe_prompts_per_process", "3", "--probe_plot", "false", "--output_dir", str(out)]
        return subprocess.run(command, cwd=tmp_path, env={**env, **extra}, capture_output=True, text=True, timeout=600)

    whole = run(tmp_path / "whole")
    assert whole.returncode == 0, whole.stderr[-3000:]
    killed = run(tmp_path / "killed", KILL_AT_CALL="3")  # in the third batch of four
    assert killed.returncode == -9
    assert [row["index"] for row in rows_of(tmp_path / "killed")] == list(range(6))
    resumed = run(tmp_path / "killed")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert [row["index"] for row in rows_of(tmp_path / "killed")] == list(range(10))
    for name in ("probe.jsonl", "trajectories.jsonl"):
        assert (tmp_path / "killed" / name).read_text() == (tmp_path / "whole" / name).read_text()
