# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cpu_config import cpu_config_kwargs
from datasets import Dataset
from recording import record_generations

from zvp_trl.methods.greso import GRESOTrainer
from zvp_trl.methods.greso.algorithm import (
    GRESOState,
    greso_skip_probability,
    next_round_size,
    trailing_count,
    update_exploration_probability,
)
from zvp_trl.methods.greso.config import GRESOConfig


G = 4


# ---------------------------------------------------------------------------------------------- pure functions


@pytest.mark.unit
@pytest.mark.parametrize(
    "z, p, expected",
    [
        (0, 0.5, 0.0),  # no zero-variance record: never skipped
        (1, 0.5, 0.5),
        (2, 0.5, 0.75),
        (3, 0.5, 0.875),
        (6, 0.5, 1 - 1 / 64),  # 1/64 = 0.015625 > floor
        (7, 0.5, 0.99),  # 1/128 < 0.01: capped at 1 - floor
        (50, 0.5, 0.99),
        (2, 0.9, 1 - 0.81),
    ],
)
def test_skip_probability(z, p, expected):
    assert greso_skip_probability(z, p) == pytest.approx(expected)


@pytest.mark.unit
def test_skip_probability_custom_floor_and_bad_input():
    assert greso_skip_probability(2, 0.5, floor=0.5) == pytest.approx(0.5)  # max(0.25, 0.5)
    with pytest.raises(ValueError):
        greso_skip_probability(-1, 0.5)


@pytest.mark.unit
def test_trailing_count():
    def easy(r):
        return r is not None and r >= 0.98

    assert trailing_count([], easy) == 0
    assert trailing_count([1.0, 1.0, 0.5, 1.0, 1.0, 1.0], easy) == 3
    assert trailing_count([1.0, 1.0, 0.5, 1.0, 1.0, 0.0], easy) == 0
    assert trailing_count([0.0, None, 1.0, 1.0], easy) == 2
    assert trailing_count([1.0, None], easy) == 0  # an unscored group breaks the run


@pytest.mark.unit
@pytest.mark.parametrize(
    "p, ratio, target, expected",
    [
        (0.5, 0.10, 1 / 12, 0.49),  # too many easy groups: explore them less
        (0.5, 1 / 12, 1 / 12, 0.49),  # ratio == target counts as reached (official: >=)
        (0.5, 0.05, 1 / 12, 0.51),
        (0.05, 0.9, 1 / 12, 0.05),  # lower bound
        (0.055, 0.9, 1 / 12, 0.05),
        (0.95, 0.0, 1 / 6, 0.95),  # upper bound
        (0.945, 0.0, 1 / 6, 0.95),
    ],
)
def test_update_exploration_probability(p, ratio, target, expected):
    assert update_exploration_probability(p, ratio, target) == pytest.approx(expected)


@pytest.mark.unit
def test_next_round_size_and_last_round_by_hand():
    # 1024 completions missing, half of the last round was zero-variance, n=8: 1024 / 0.5 / 8 * 1.25 = 320 prompts,
    # at most the default 384: the last round.
    assert next_round_size(1024, 0.5, 8, default_size=384) == (320, True)
    # 4096 / 0.5 / 8 * 1.25 = 1280 > 384: a full round, not the last.
    assert next_round_size(4096, 0.5, 8, default_size=384) == (384, False)
    # Around the default: 1228 -> floor(383.75) = 383, 1231 -> floor(384.69) = 384 (the estimate equals the default:
    # still the last round), 1232 -> 385 (more than one full round is needed: not the last).
    assert next_round_size(1228, 0.5, 8, default_size=384) == (383, True)
    assert next_round_size(1231, 0.5, 8, default_size=384) == (384, True)
    assert next_round_size(1232, 0.5, 8, default_size=384) == (384, False)
    assert next_round_size(64, 0.0, 8, default_size=384) == (64, True)  # estimate 10 -> at least min_size
    assert next_round_size(64, 1.0, 8, default_size=384) == (384, False)  # only zero-variance groups: full round
    with pytest.raises(ValueError, match="beta"):
        next_round_size(64, 0.5, 8, default_size=384, beta=0.0)


@pytest.mark.unit
def test_state_skip_probabilities_from_traces():
    # Records are group mean rewards: 1.0 all-correct, 0.0 all-wrong, 0.5 mixed.
    state = GRESOState(p_easy=0.5, p_hard=0.4)
    traces = {
        "a": [0.5, 1.0, 1.0],
        "b": [1.0, 0.0, 0.0, 0.0],
        "c": [0.0, 1.0],
        "d": [1.0, 0.5],
        "e": [1.0, 1.0, 0.0],
        "f": [0.0, None],
    }
    for pid, trace in traces.items():
        for mean in trace:
            state.record(pid, mean)
    assert state.skip_probability("a") == pytest.approx(0.75)  # 2 trailing easy records, p_easy 0.5
    assert state.skip_probability("b") == pytest.approx(1 - 0.4**3)  # 3 trailing hard records, p_hard 0.4
    assert state.skip_probability("c") == pytest.approx(0.5)
    assert state.skip_probability("d") == 0.0  # last record mixed
    assert state.skip_probability("e") == pytest.approx(0.6)  # hard rule: 1 trailing hard record
    assert state.skip_probability("f") == 0.0  # last group had an unscored completion: neither easy nor hard
    assert state.skip_probability("never seen") == 0.0
    state.record("g", float("nan"))  # NaN mean (unscored completion) is recorded as None
    assert state.traces["g"] == [None]
    with pytest.raises(TypeError):
        state.record("a", "1")
    with pytest.raises(ValueError):
        state.record("a", float("inf"))


@pytest.mark.unit
def test_official_thresholds_at_g16_differ_from_all_wrong():
    # G=16, 0/1 rewards. Official rule (presampling_selector.py): hard when the group's mean reward is <= 0.11, easy
    # when it is >= 0.98. One correct of 16: mean 1/16 = 0.0625 <= 0.11 -> hard, although the group is not all-wrong.
    # Two correct: 0.125 > 0.11 -> not hard. Fifteen: 0.9375 < 0.98 -> not easy.
    state = GRESOState(p_easy=0.5, p_hard=0.5)
    for pid, ks in {"one": [1], "zero_then_one": [0, 1], "two": [2], "fifteen": [16, 15], "all": [16]}.items():
        for k in ks:
            state.record(pid, k / 16)
    assert state.traces["one"] == [0.0625]
    assert state.skip_probability("one") == 0.5  # 1 - 0.5**1; the "all wrong" rule would give 0
    assert state.skip_probability("zero_then_one") == 0.75  # 2 trailing hard records: 1 - 0.5**2
    assert state.skip_probability("two") == 0.0
    assert state.skip_probability("fifteen") == 0.0  # 15/16 is not easy (the earlier 16/16 no longer trails)
    assert state.skip_probability("all") == 0.5
    # At G=8 the same rule is "all wrong": 1/8 = 0.125 > 0.11.
    state.record("one_of_8", 1 / 8)
    assert state.skip_probability("one_of_8") == 0.0
    # hard_threshold=0.0: only all-wrong groups are hard, at any G.
    strict = GRESOState(hard_threshold=0.0)
    strict.record("one", 1 / 16)
    strict.record("none", 0.0)
    assert (strict.skip_probability("one"), strict.skip_probability("none")) == (0.0, 0.5)


@pytest.mark.unit
def test_state_update_probabilities_and_round_trip():
    state = GRESOState()
    state.update_probabilities(easy_ratio=0.2, hard_ratio=0.1)  # easy above 1/12 -> down; hard below 1/6 -> up
    assert (state.p_easy, state.p_hard) == (pytest.approx(0.49), pytest.approx(0.51))
    state.record("x", 1.0)
    state.record("x", None)
    state.record("y", 0.0625)
    state.decide_skips(["x", "y"])
    restored = GRESOState()
    restored.load_state_dict(json.loads(json.dumps(state.state_dict())))
    assert restored.state_dict() == state.state_dict()
    assert restored.draws == 1 and restored.traces == {"x": [1.0, None], "y": [0.0625]}


@pytest.mark.unit
def test_state_from_an_outcome_checkpoint_is_converted():
    # Earlier checkpoints recorded +1 all-correct, -1 all-wrong, 0 mixed (no "trace_values" key).
    state = GRESOState()
    state.load_state_dict({"traces": {"a": [1, 1], "b": [0, -1], "c": [-1, 0]}, "p_easy": 0.4, "p_hard": 0.6})
    assert state.traces == {"a": [1.0, 1.0], "b": [None, 0.0], "c": [0.0, None]}
    assert state.skip_probability("a") == pytest.approx(1 - 0.4**2)
    assert state.skip_probability("b") == pytest.approx(1 - 0.6)
    assert state.skip_probability("c") == 0.0


@pytest.mark.unit
def test_skip_decisions_are_reproducible_and_have_the_right_frequency():
    ids = [f"p{i}" for i in range(4000)]
    a, b = GRESOState(seed=3), GRESOState(seed=3)
    for state in (a, b):
        for pid in ids:
            state.record(pid, 1.0)
            state.record(pid, 1.0)  # z_easy = 2 -> skip probability 0.75
    first = a.decide_skips(ids)
    assert first == b.decide_skips(ids)  # same seed and counter: identical on every process
    assert a.decide_skips(ids) != first  # the counter advances the stream
    assert sum(first) / len(ids) == pytest.approx(0.75, abs=0.03)


# ---------------------------------------------------------------------------------------------- trainer

KINDS = ["mixed", "correct", "mixed", "wrong", "mixed", "correct", "mixed", "wrong"]


def kind_reward(completions, kind, **kwargs):
    """All-correct / all-wrong groups by prompt kind; "mixed" prompts alternate 1, 0 over consecutive rows."""
    return [{"correct": 1.0, "wrong": 0.0}.get(k, float(i % 2 == 0)) for i, k in enumerate(kind)]


def make_dataset(kinds=KINDS):
    return Dataset.from_dict(
        {"prompt": [f"Q: {i}+1=?\nA:" for i in range(len(kinds))], "kind": kinds, "pid": list(range(len(kinds)))}
    )


def make_config(tmp_path, **overrides):
    values = cpu_config_kwargs(tmp_path, num_generations=G, max_completion_length=6, prompt_id_column="pid")
    values.update(overrides)
    return GRESOConfig(**values)


def make_trainer(tiny_model_path, tmp_path, dataset=None, **overrides):
    return GRESOTrainer(
        model=tiny_model_path,
        reward_funcs=kind_reward,
        args=make_config(tmp_path, **overrides),
        train_dataset=dataset if dataset is not None else make_dataset(),
    )


@pytest.mark.unit
@pytest.mark.parametrize(
    "overrides, match",
    [
        (dict(greso_p_easy=0.0), "greso_p_easy"),
        (dict(greso_p_min=0.9, greso_p_max=0.5), "greso_p_min"),
        (dict(greso_easy_target=1.5), "greso_easy_target"),
        (dict(greso_min_explore_prob=0.0), "greso_min_explore_prob"),
        (dict(greso_adapt_from_epoch=-1), "greso_adapt_from_epoch"),
        (dict(greso_delta_p=-0.01), "greso_delta_p"),
        (dict(greso_hard_threshold=0.98), "greso_hard_threshold"),
        (dict(greso_round_beta=0.0), "greso_round_beta"),
        (dict(greso_min_round_fraction=0.0), "greso_min_round_fraction"),
        (dict(ds_fill_scope="node"), "ds_fill_scope"),
    ],
)
def test_config_validation(tmp_path, overrides, match):
    with pytest.raises(ValueError, match=match):
        make_config(tmp_path, **overrides)


@pytest.mark.unit
def test_config_defaults_are_the_official_ones(tmp_path):
    args = make_config(tmp_path)
    assert (args.greso_p_easy, args.greso_p_hard, args.greso_delta_p) == (0.5, 0.5, 0.01)
    assert (args.greso_easy_target, args.greso_hard_target) == (1 / 12, 1 / 6)
    assert (args.greso_p_min, args.greso_p_max, args.greso_min_explore_prob) == (0.05, 0.95, 0.01)
    assert args.greso_adapt_from_epoch == 1 and args.ds_max_generation_rounds == 10
    assert (args.greso_easy_threshold, args.greso_hard_threshold) == (0.98, 0.11)
    assert args.greso_adaptive_rounds and args.greso_train_short_batch and args.ds_fill_scope == "global"
    assert (args.greso_round_beta, args.greso_min_round_fraction) == (1.25, 0.25)


def scripted_rounds_reward(mixed_per_round, round_sizes):
    """Round i (one reward call on one process): its first `mixed_per_round[i]` groups mixed, the others
    all-correct. Records each round's size in prompts."""

    def reward(completions, **kwargs):
        n = len(completions) // G
        mixed = mixed_per_round[len(round_sizes)]
        round_sizes.append(n)
        return [float(i % 2 == 0) if i // G < mixed else 1.0 for i in range(len(completions))]

    return reward


@pytest.mark.trainer
@pytest.mark.parametrize(
    "overrides, expected_rounds, expected_rows",
    [
        # The official rule, by hand. P = 4 groups (16 rows) per batch, first round 8 prompts (oversample 2), min
        # ceil(0.25 * 4) = 1 prompt, G = 4.
        # Step 1: round 1 (8 prompts) keeps 3, zvr 5/8; 1 group (4 completions) missing: floor(4 / (3/8) / 4 * 1.25)
        #   = floor(3.33) = 3 <= 8, so the last round has 3 prompts. It keeps none: train on 3 groups (12 rows, two
        #   micro-batches of 6).
        # Step 2: round 1 keeps 0 (zvr 1: a full round, not last); round 2 keeps 2 (zvr 6/8, 8 completions missing:
        #   floor(8 / 0.25 / 4 * 1.25) = 10 > 8: a full round); round 3 keeps 1 (zvr 7/8, 4 missing: floor(4 * 8 / 4
        #   * 1.25) = 10 > 8: full); round 4 keeps 7: full batch (16 rows).
        ({}, [[8, 3], [8, 8, 8, 8]], [12, 16]),
        # No adaptive rounds: every round has 8 prompts. Step 1 keeps 3, 0, 0, 2 (full after 4 rounds); step 2 keeps
        # 1, 7.
        (dict(greso_adaptive_rounds=False), [[8, 8, 8, 8], [8, 8]], [16, 16]),
        # No short batch: the 3-prompt round keeps none and rounds go on: zvr 1 -> 8, keeps 0 (zvr 1) -> 8, keeps 2:
        # full. Step 2 keeps 1 (zvr 7/8, 12 completions missing: floor(12 * 8 / 4 * 1.25) = 30 > 8 -> 8), then 7.
        (dict(greso_train_short_batch=False), [[8, 3, 8, 8], [8, 8]], [16, 16]),
    ],
)
def test_adaptive_round_sizes_follow_the_official_rule(tiny_model_path, tmp_path, overrides, expected_rounds,
                                                       expected_rows):  # fmt: skip
    mixed_per_round = [3, 0, 0, 2, 1, 7, 8, 8]
    round_sizes = []
    trainer = GRESOTrainer(
        model=tiny_model_path,
        reward_funcs=scripted_rounds_reward(mixed_per_round, round_sizes),
        args=make_config(
            tmp_path,
            max_steps=2,
            gradient_accumulation_steps=2,
            ds_oversample_factor=2.0,
            ds_carry_over=False,
            greso_p_easy=1.0,
            greso_p_hard=1.0,
            ds_max_generation_rounds=0,
            **overrides,
        ),  # fmt: skip
        train_dataset=make_dataset(["mixed"] * 64),
    )
    recorded = record_generations(
        trainer,
        lambda output: (output["completion_ids"].size(0), int(trainer._metrics["train"]["ds/generation_rounds"][-1])),
    )
    trainer.train()
    batches = [rows for rows, _ in recorded]
    rounds_per_step = [rounds for _, rounds in recorded]
    expected_sizes = [size for step in expected_rounds for size in step]
    assert round_sizes == expected_sizes
    assert rounds_per_step == [len(step) for step in expected_rounds]
    assert batches == expected_rows


@pytest.mark.trainer
def test_skipped_prompts_are_replaced_and_not_generated(tiny_model_path, tmp_path):
    trainer = make_trainer(tiny_model_path, tmp_path, greso_p_easy=0.05, greso_min_explore_prob=1e-6)
    for _ in range(40):  # prompt 0 was all-correct 40 times: skip probability 1 - max(0.05**40, 1e-6)
        trainer.part("greso").greso_state.record("0", 1.0)
    rows = [trainer.train_dataset[i] for i in (0, 2) for _ in range(G)]
    batch = {}
    selected, round_ids = trainer.part("greso").select_round_rows(rows, batch)
    assert len(selected) == len(rows)
    pids = [row["pid"] for row in selected]
    # Prompt 2 has no trace: kept (first); prompt 0 replaced by one fresh prompt repeated G times, appended.
    assert pids[:G] == [2] * G and 0 not in pids and len(set(pids[G:])) == 1
    assert round_ids == [str(p) for p in pids[::G]]
    # Prompts examined: the 2 candidates plus replacements until one was kept; all but the 2 kept were skipped.
    assert batch["skipped"] >= 1 and batch["examined"] - batch["skipped"] == 2


@pytest.mark.trainer
def test_training_records_traces_and_adapts_probabilities(tiny_model_path, tmp_path):
    # Each batch holds two of [mixed, correct] / [mixed, wrong] prompts; adaptation from the first step.
    trainer = make_trainer(tiny_model_path, tmp_path, max_steps=2, shuffle_dataset=False, greso_adapt_from_epoch=0)
    trainer.train()
    state = trainer.part("greso").greso_state
    means = {"mixed": 0.5, "correct": 1.0, "wrong": 0.0}  # the groups' mean rewards
    recorded = sum(len(trace) for trace in state.traces.values())
    assert recorded == trainer.rollouts.total // G  # one record per group rolled out, none for skipped prompts
    for pid, trace in state.traces.items():
        assert set(trace) == {means[KINDS[int(pid)]]}
    logs = [entry for entry in trainer.state.log_history if "loss" in entry]
    # p moves by 0.01 per step, down when the step's fraction of such groups reached its target, up otherwise.
    for entry in logs:
        assert entry["greso/frac_easy"] >= 0 and 0 <= entry["greso/frac_skipped"] < 1
    p_easy = 0.5
    p_hard = 0.5
    for entry in logs:
        p_easy = p_easy - 0.01 if entry["greso/frac_easy"] >= 1 / 12 else p_easy + 0.01
        p_hard = p_hard - 0.01 if entry["greso/frac_hard"] >= 1 / 6 else p_hard + 0.01
        assert entry["greso/p_easy"] == pytest.approx(p_easy)
        assert entry["greso/p_hard"] == pytest.approx(p_hard)
    assert (state.p_easy, state.p_hard) == (pytest.approx(p_easy), pytest.approx(p_hard))


@pytest.mark.trainer
@pytest.mark.parametrize("hard_threshold, skip", [(0.11, 0.5), (0.0, 0.0)])
def test_trainer_applies_the_official_hard_rule_at_g16(tiny_model_path, tmp_path, hard_threshold, skip):
    G16 = 16

    def reward(completions, kind, **kwargs):
        # "one": 1 correct completion of 16 (the first of its group); "half": 8 of 16.
        return [float(i % G16 == 0 if k == "one" else i % 2 == 0) for i, k in enumerate(kind)]

    dataset = Dataset.from_dict({"prompt": ["Q: 1+1=?\nA:", "Q: 2+1=?\nA:"], "kind": ["one", "half"], "pid": [0, 1]})
    trainer = GRESOTrainer(
        model=tiny_model_path,
        reward_funcs=reward,
        args=make_config(
            tmp_path,
            num_generations=G16,
            per_device_train_batch_size=2 * G16,
            shuffle_dataset=False,
            greso_hard_threshold=hard_threshold,
        ),
        train_dataset=dataset,
    )
    trainer.train()
    state = trainer.part("greso").greso_state
    assert state.traces == {"0": [0.0625], "1": [0.5]}  # one group each, both kept by dynamic sampling
    # Official rule: 1/16 = 0.0625 <= 0.11 is hard, so the next draw skips "one" with 1 - p_hard = 0.5; an "all wrong"
    # rule (hard_threshold=0.0) never skips it.
    assert state.skip_probability("0") == skip and state.skip_probability("1") == 0.0


@pytest.mark.trainer
def test_probabilities_frozen_in_first_epoch_by_default(tiny_model_path, tmp_path):
    trainer = make_trainer(tiny_model_path, tmp_path, max_steps=1)
    trainer.train()
    assert (trainer.part("greso").greso_state.p_easy, trainer.part("greso").greso_state.p_hard) == (0.5, 0.5)
    assert trainer.part("greso").greso_state.traces  # traces are recorded nonetheless


@pytest.mark.trainer
def test_resume_restores_greso_state_exactly(tiny_model_path, tmp_path):
    trainer = make_trainer(
        tiny_model_path, tmp_path, max_steps=2, save_strategy="steps", save_steps=1, greso_adapt_from_epoch=0
    )
    trainer.train()
    saved = json.loads((tmp_path / "checkpoint-1" / "zvp_state.json").read_text())
    assert saved["greso"]["p_easy"] != 0.5 and saved["greso"]["traces"] and saved["greso"]["draws"] > 0
    assert set(saved) >= {"rollouts", "greso", "ds_sampler", "dynamic_sampling"}

    resumed = make_trainer(tiny_model_path, tmp_path, max_steps=2, greso_adapt_from_epoch=0)
    load, restored = resumed._load_optimizer_and_scheduler, {}

    def snapshot_after_load(checkpoint):
        load(checkpoint)
        restored.update(
            greso=resumed.part("greso").greso_state.state_dict(),
            ds_sampler=resumed.part("greso")._prompt_sampler.state_dict(),
            dynamic_sampling=resumed.part("greso").ds_stats.state_dict(),
            rollouts=resumed.rollouts.state_dict(),
        )

    resumed._load_optimizer_and_scheduler = snapshot_after_load
    resumed.train(resume_from_checkpoint=str(tmp_path / "checkpoint-1"))
    # Restored exactly (traces, p's, RNG counter, sampler position, counters) before training went on.
    assert restored == {key: saved[key] for key in restored}
    # Training went on from there: checkpoint-1's traces are kept and extended.
    for pid, trace in saved["greso"]["traces"].items():
        assert resumed.part("greso").greso_state.traces[pid][: len(trace)] == trace
    assert sum(map(len, resumed.part("greso").greso_state.traces.values())) > sum(map(len, saved["greso"]["traces"].values()))
    assert resumed.part("greso").greso_state.draws > saved["greso"]["draws"]


@pytest.mark.trainer
def test_model_card_names_greso(tiny_model_path, tmp_path):
    trainer = make_trainer(tiny_model_path, tmp_path)
    trainer.create_model_card(model_name="tiny-greso")
    card = (tmp_path / "README.md").read_text()
    assert "GRESO" in card and "2506.02177" in card and "Act Only When It Pays" in card


@pytest.mark.distributed
def test_two_processes_have_identical_state_and_full_batches(tiny_model_path, tmp_path):
    script = Path(__file__).parent / "scripts" / "ds_two_processes.py"
    env = dict(os.environ, ZVP_TEST_MODEL=tiny_model_path, ZVP_TEST_OUT=str(tmp_path))
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script)]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    for algorithm in ("grpo_ds", "greso"):
        r0, r1 = ranks[0][algorithm], ranks[1][algorithm]
        assert len(r0["batches"]) == len(r1["batches"]) == 3  # one assembled batch per optimizer step
        for b0, b1 in zip(r0["batches"], r1["batches"]):
            # configured size on both processes, and the global token count is the sum over both processes
            assert b0["rows"] == b1["rows"] == 8
            assert b0["num_items_in_batch"] == b1["num_items_in_batch"] == b0["mask_sum"] + b1["mask_sum"]
            assert b0["min_abs_advantage"] > 0 and b1["min_abs_advantage"] > 0  # no zero-variance group
        assert r0["loss_rows"] == r1["loss_rows"] == [4] * 6  # 3 steps x 2 micro-batches of 4 rows
        assert r0["rollouts"] == r1["rollouts"] and r0["ds_stats"] == r1["ds_stats"]
        assert r0["ds_stats"]["rounds"] > 3  # some step needed more than one round
    assert ranks[0]["greso"]["state"] == ranks[1]["greso"]["state"]
    assert ranks[0]["greso"]["state"]["traces"]
