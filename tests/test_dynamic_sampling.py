# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from cpu_config import cpu_config_kwargs
from datasets import Dataset
from recording import record_generations

from zvp_trl.methods.grpo_ds import GRPODSTrainer
from zvp_trl.methods.grpo_ds.algorithm import (
    PromptSampler,
    concat_outputs,
    groups_per_process,
    plan_groups,
    select_rows,
)
from zvp_trl.methods.grpo_ds.config import GRPODSConfig


G = 4


def kind_reward(completions, kind, **kwargs):
    """All-correct / all-wrong groups by prompt kind; "mixed" prompts alternate 1, 0 over consecutive rows."""
    return [{"correct": 1.0, "wrong": 0.0}.get(k, float(i % 2 == 0)) for i, k in enumerate(kind)]


def constant_reward(completions, **kwargs):
    return [1.0] * len(completions)


def make_config(tmp_path, **overrides):
    values = cpu_config_kwargs(tmp_path, num_generations=G, max_completion_length=6, shuffle_dataset=False)
    values.update(overrides)
    return GRPODSConfig(**values)


def make_trainer(tiny_model_path, tmp_path, kinds, reward=kind_reward, **overrides):
    dataset = Dataset.from_dict({"prompt": [f"Q: {i}+1=?\nA:" for i in range(len(kinds))], "kind": kinds})
    return GRPODSTrainer(
        model=tiny_model_path, reward_funcs=reward, args=make_config(tmp_path, **overrides), train_dataset=dataset
    )


def spy_loss(trainer):
    seen = []
    compute_loss = trainer._compute_loss

    def spy(model, inputs):
        seen.append({k: (v.detach().clone() if isinstance(v, torch.Tensor) else v) for k, v in inputs.items()})
        return compute_loss(model, inputs)

    trainer._compute_loss = spy
    return seen


# ---------------------------------------------------------------------------------------------- helpers


@pytest.mark.unit
def test_the_rounds_help_leaves_what_happens_after_them_to_ds_on_exhausted():
    """`--help` said training stops with an error after `ds_max_generation_rounds`, which the default
    (`ds_on_exhausted="train"`) does not do."""
    import dataclasses

    from zvp_trl.methods.grpo_ds.config import GRPODSConfig

    fields = {field.name: field for field in dataclasses.fields(GRPODSConfig)}
    rounds_help = fields["ds_max_generation_rounds"].metadata["help"]
    assert "ds_on_exhausted" in rounds_help and "error" not in rounds_help
    assert fields["ds_on_exhausted"].default == "train"


@pytest.mark.unit
def test_prompt_sampler_epochs_and_state():
    sampler = PromptSampler(5, seed=1)
    first = sampler.draw(3) + sampler.draw(2)
    assert sorted(first) == [0, 1, 2, 3, 4]  # one epoch = a permutation
    second = sampler.draw(5)
    assert sorted(second) == [0, 1, 2, 3, 4] and second != first  # a fresh permutation per epoch
    state = sampler.state_dict()
    nxt = sampler.draw(4)
    restored = PromptSampler(5, seed=1)
    restored.load_state_dict(state)
    assert restored.draw(4) == nxt
    assert PromptSampler(4, seed=0, shuffle=False).draw(6) == [0, 1, 2, 3, 0, 1]


@pytest.mark.unit
def test_select_and_concat_repad_left_and_right():
    a = {
        "prompt_ids": torch.tensor([[7, 1, 2], [1, 2, 3]]),
        "prompt_mask": torch.tensor([[0, 1, 1], [1, 1, 1]]),
        "completion_ids": torch.tensor([[5, 9], [6, 9]]),
        "completion_mask": torch.tensor([[1, 0], [1, 1]]),
        "advantages": torch.tensor([1.0, -1.0]),
        "num_items_in_batch": torch.tensor(3),
        "extra": ["a", "b"],
    }
    b = {
        "prompt_ids": torch.tensor([[4]]),
        "prompt_mask": torch.tensor([[1]]),
        "completion_ids": torch.tensor([[8, 8, 8]]),
        "completion_mask": torch.tensor([[1, 1, 1]]),
        "advantages": torch.tensor([0.5]),
        "num_items_in_batch": torch.tensor(3),
        "extra": ["c"],
    }
    one = select_rows(a, torch.tensor([1]))
    assert one["prompt_ids"].tolist() == [[1, 2, 3]] and one["extra"] == ["b"] and one["num_items_in_batch"] == 3
    merged = concat_outputs([one, b], {"prompt_ids": 7, "completion_ids": 9})
    assert merged["prompt_ids"].tolist() == [[1, 2, 3], [7, 7, 4]]  # prompts left-padded
    assert merged["prompt_mask"].tolist() == [[1, 1, 1], [0, 0, 1]]
    assert merged["completion_ids"].tolist() == [[6, 9, 9], [8, 8, 8]]  # completions right-padded
    assert merged["completion_mask"].tolist() == [[1, 1, 0], [1, 1, 1]]
    assert merged["advantages"].tolist() == [-1.0, 0.5] and merged["extra"] == ["b", "c"]


@pytest.mark.unit
@pytest.mark.parametrize(
    "overrides, match",
    [
        (dict(ds_max_generation_rounds=-1), "ds_max_generation_rounds"),
        (dict(ds_oversample_factor=0.5), "ds_oversample_factor"),
        (dict(zero_variance_atol=-1.0), "zero_variance_atol"),
    ],
)
def test_config_validation(tmp_path, overrides, match):
    with pytest.raises(ValueError, match=match):
        make_config(tmp_path, **overrides)


@pytest.mark.unit
def test_config_requires_groups_local_to_a_process(tmp_path, monkeypatch):
    # 2 processes x 2 rows = 4 rows per generation batch: fine for TRL (one group), but the group straddles processes.
    monkeypatch.setattr(GRPODSConfig, "world_size", property(lambda self: 2))
    with pytest.raises(ValueError, match=r"steps_per_generation \(2 \* 1 = 2\) must be a multiple of num_generations"):
        make_config(tmp_path, per_device_train_batch_size=2)
    make_config(tmp_path, per_device_train_batch_size=2, gradient_accumulation_steps=2)  # 4 rows per process: fine


# ---------------------------------------------------------------------------------------------- trainer


@pytest.mark.trainer
def test_zero_variance_groups_never_reach_the_loss(tiny_model_path, tmp_path):
    # No shuffling: the dataloader's first batch is prompts [0, 1], the trainer's own sampler then draws 0, 1, 2, ...
    kinds = ["correct", "mixed", "wrong", "mixed", "correct", "mixed"]
    trainer = make_trainer(tiny_model_path, tmp_path, kinds, max_steps=2)
    seen = spy_loss(trainer)
    trainer.train()
    assert len(seen) == 2
    for inputs in seen:
        assert inputs["completion_ids"].size(0) == 8  # the configured batch
        assert torch.all(inputs["advantages"].abs() > 0.5)  # only mixed groups (|A| ~ 0.87); ZV groups have A = 0
        assert inputs["num_items_in_batch"].item() == inputs["completion_mask"].sum().item()
    logs = [entry for entry in trainer.state.log_history if "loss" in entry]
    # Step 1: round 1 = dataloader [0 correct, 1 mixed] keeps 1; round 2 = sampler [0, 1] keeps 1.
    # Step 2: round 1 = dataloader [2 wrong, 3 mixed] keeps 1; round 2 = sampler [2, 3] keeps 1.
    assert [entry["ds/generation_rounds"] for entry in logs] == [2.0, 2.0]
    assert [entry["ds/frac_dropped"] for entry in logs] == [0.5, 0.5]
    assert trainer.rollouts.total == 4 * 8  # every generated completion, all rounds
    assert trainer.rollouts.kept == 2 * 8  # only those that reached the loss
    assert trainer.part("grpo_ds").ds_stats.state_dict() == {
        "rounds": 4,
        "generated_groups": 8,
        "dropped_groups": 4,
        "discarded_groups": 0,
        "exhausted_steps": 0,  # every batch filled up within the round limit
    }


@pytest.mark.trainer
def test_surplus_groups_are_carried_to_the_next_step(tiny_model_path, tmp_path):
    # ds_oversample_factor=2: each round rolls out 4 prompts (dataloader's 2 + 2 from the sampler).
    # Step 1: dataloader [0, 1] + sampler [0, 1], all mixed -> 4 kept, 2 used, 2 carried.
    # Step 2: carried 2 are used; dataloader [2, 3] + sampler [2, 3] are all zero-variance -> nothing new kept.
    kinds = ["mixed", "mixed", "correct", "wrong"]
    trainer = make_trainer(tiny_model_path, tmp_path, kinds, max_steps=2, ds_oversample_factor=2.0)
    seen = spy_loss(trainer)
    trainer.train()
    logs = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert [entry["ds/carried_groups"] for entry in logs] == [2.0, 0.0]
    assert [entry["ds/generation_rounds"] for entry in logs] == [1.0, 1.0]
    assert all(torch.all(inputs["advantages"].abs() > 0.5) for inputs in seen)
    assert [inputs["completion_ids"].size(0) for inputs in seen] == [8, 8]
    assert trainer.rollouts.total == 2 * 16 and trainer.rollouts.kept == 16
    assert trainer.part("grpo_ds")._carry is None


@pytest.mark.trainer
def test_surplus_is_discarded_without_carry_over(tiny_model_path, tmp_path):
    kinds = ["mixed", "mixed", "mixed", "mixed"]
    trainer = make_trainer(
        tiny_model_path, tmp_path, kinds, max_steps=1, ds_oversample_factor=2.0, ds_carry_over=False
    )
    trainer.train()
    assert trainer.part("grpo_ds")._carry is None and trainer.part("grpo_ds").ds_stats.discarded_groups == 2


@pytest.mark.trainer
def test_raises_after_the_round_limit(tiny_model_path, tmp_path):
    trainer = make_trainer(
        tiny_model_path, tmp_path, ["a", "b"], reward=constant_reward, ds_max_generation_rounds=3,
        ds_on_exhausted="error",
    )  # fmt: skip
    with pytest.raises(RuntimeError, match="ds_max_generation_rounds=3.*ds_on_exhausted='train'"):
        trainer.train()
    assert trainer.rollouts.total == 3 * 8  # exactly 3 rounds were generated, then the error


@pytest.mark.trainer
def test_out_of_rounds_trains_on_what_it_holds_with_a_warning(tiny_model_path, tmp_path, caplog):
    """The default (`ds_on_exhausted="train"`): a batch whose rounds ran out trains on its groups with distinct rewards,
    padded with the latest zero-variance groups (zero advantage), warns, and counts the step; the count survives a
    checkpoint. Before, training stopped with the error (a user's whole run, for one hard batch)."""
    import logging

    # One mixed prompt of four; batch: 2 groups per process; one round of 2 prompts per batch.
    trainer = make_trainer(
        tiny_model_path, tmp_path, ["mixed", "correct", "wrong", "correct"], ds_max_generation_rounds=1,
        per_device_train_batch_size=8, max_steps=2, save_strategy="steps", save_steps=1,
    )  # fmt: skip
    seen = spy_loss(trainer)
    with caplog.at_level(logging.WARNING, logger="zvp_trl.methods.grpo_ds.part"):
        trainer.train()
    assert trainer.state.global_step == 2
    assert sum("ds_max_generation_rounds=1" in r.message and "Training this step" in r.message for r in caplog.records)
    assert trainer.part("grpo_ds").ds_stats.exhausted_steps == 2
    assert [e["ds/exhausted_steps"] for e in trainer.state.log_history if "ds/exhausted_steps" in e] == [1.0, 2.0]
    assert [inputs["completion_ids"].size(0) for inputs in seen] == [8, 8]  # full batches of 2 groups
    # Step 1 rolled out the mixed and a correct prompt: the mixed group's 4 rows have advantages, the padded group's
    # are 0 (TRL shuffles the rows of a batch); step 2 (wrong, correct) holds padding only.
    assert [int((inputs["advantages"] != 0).sum()) for inputs in seen] == [G, 0]
    # The batch's share of groups with distinct rewards: 1 of 2, then none.
    assert [e["ds/batch_fill"] for e in trainer.state.log_history if "ds/batch_fill" in e] == [0.5, 0.0]
    saved = json.loads((tmp_path / "checkpoint-1" / "zvp_state.json").read_text())
    assert saved["dynamic_sampling"]["exhausted_steps"] == 1


@pytest.mark.trainer
def test_assembled_batch_size_and_num_items_with_gradient_accumulation(tiny_model_path, tmp_path):
    # Local generation batch 2 x 8 = 16 rows (4 groups), split in 2 micro-batches; different completion lengths in
    # different rounds exercise the re-padding.
    kinds = ["correct", "mixed", "wrong", "mixed", "mixed", "correct", "mixed", "wrong"]
    trainer = make_trainer(
        tiny_model_path, tmp_path, kinds, shuffle_dataset=True, gradient_accumulation_steps=2, ds_oversample_factor=1.5
    )
    outputs = record_generations(trainer, lambda output: output)
    seen = spy_loss(trainer)
    trainer.train()
    (batch,) = outputs
    assert batch["completion_ids"].size(0) == 16 and batch["prompt_ids"].size(0) == 16
    assert batch["num_items_in_batch"].item() == batch["completion_mask"].sum().item()
    assert torch.all(batch["advantages"].abs() > 0.5)
    # Prompt tensors stay left-padded (last column always a real token), completions right-padded.
    assert torch.all(batch["prompt_mask"][:, -1] == 1)
    mask = batch["completion_mask"]
    assert torch.equal(mask, mask.cummin(dim=1).values)
    assert [inputs["completion_ids"].size(0) for inputs in seen] == [8, 8]
    assert all(inputs["num_items_in_batch"].item() == mask.sum().item() for inputs in seen)


@pytest.mark.trainer
def test_max_rollouts_stops_at_the_right_count(tiny_model_path, tmp_path):
    # Every step needs 2 rounds of 8 completions (see test_zero_variance_groups_never_reach_the_loss), so a budget
    # of 20 completions is spent after step 2 (16 < 20 <= 32), not step 1 or 3.
    kinds = ["correct", "mixed", "wrong", "mixed", "correct", "mixed"]
    trainer = make_trainer(tiny_model_path, tmp_path, kinds, max_steps=10, max_rollouts=20)
    trainer.train()
    assert trainer.state.global_step == 2
    assert trainer.rollouts.total == 32


@pytest.mark.trainer
def test_eval_mode_does_not_filter(tiny_model_path, tmp_path):
    trainer = make_trainer(tiny_model_path, tmp_path, ["a", "b"], reward=constant_reward)
    trainer.model.eval()
    rows = [trainer.train_dataset[i] for i in range(2) for _ in range(G)]
    output = trainer._generate_and_score_completions(rows)
    assert output["completion_ids"].size(0) == 8 and trainer.rollouts.total == 0


@pytest.mark.trainer
def test_requires_its_config_and_names_dapo_in_the_model_card(tiny_model_path, tmp_path):
    from trl import GRPOConfig

    args = GRPOConfig(output_dir=str(tmp_path), use_cpu=True, bf16=False, num_generations=G)
    with pytest.raises(TypeError, match="GRPODSConfig"):
        GRPODSTrainer(model=tiny_model_path, reward_funcs=constant_reward, args=args)
    trainer = make_trainer(tiny_model_path, tmp_path, ["a", "b"])
    trainer.create_model_card(model_name="tiny-ds")
    card = (tmp_path / "README.md").read_text()
    assert "GRPO-DS" in card and "2503.14476" in card and "DAPO" in card


# ---------------------------------------------------------------------------------------------- batch plans


@pytest.mark.unit
def test_groups_per_process_global_and_process_scopes():
    # kept[part][process]: 2 processes, 2 groups each needed.
    assert groups_per_process([[0, 0], [4, 0]], 2, "global") == 2  # 4 groups in all: full for both
    assert groups_per_process([[0, 0], [4, 0]], 2, "process") == 0  # process 1 holds none of its own
    assert groups_per_process([[1, 0], [2, 2]], 2, "process") == 2
    assert groups_per_process([[0, 0], [2, 1]], 2, "global") == 0  # 3 < 4
    with pytest.raises(ValueError, match="scope"):
        groups_per_process([[1, 1]], 1, "everywhere")


@pytest.mark.unit
def test_groups_per_process_short_batch_splits_into_micro_batches():
    # GRESO's last round: 5 groups over 2 processes -> 2 each (a group of 4 rows, 2 micro-batches: any g works).
    assert groups_per_process([[0, 0], [5, 0]], 4, "global", allow_short=True, num_generations=4,
                              steps_per_generation=2) == 2  # fmt: skip
    # G=3 rows per group, 2 micro-batches: g * 3 must be even, so 3 available per process -> 2.
    assert groups_per_process([[0, 0], [3, 3]], 4, "global", allow_short=True, num_generations=3,
                              steps_per_generation=2) == 2  # fmt: skip
    # 1 group for 2 processes: nothing can be given to both.
    assert groups_per_process([[0, 0], [1, 0]], 4, "global", allow_short=True, num_generations=4) == 0
    assert groups_per_process([[0, 0], [1, 3]], 4, "process", allow_short=True, num_generations=4) == 1


@pytest.mark.unit
def test_plan_moves_a_surplus_to_the_process_that_lacks_groups():
    plan = plan_groups([[0, 0], [4, 0]], groups=2, carry_per_process=2)
    assert plan.train == [[(0, 0), (0, 1)], [(0, 2), (0, 3)]]
    assert plan.carry == [[], []] and plan.discarded == 0 and plan.moved() == 2


@pytest.mark.unit
def test_plan_uses_carried_groups_first_and_keeps_same_age_groups_local():
    # Process 0 carries 2 groups; the round gave 4 to each. The carried ones train first; from the round, process 1's
    # own groups cover its share, so nothing moves. Surplus: oldest first (process 0's, then process 1's), 4 at most.
    plan = plan_groups([[2, 0], [4, 4]], groups=2, carry_per_process=2)
    assert plan.train == [[(0, 0), (0, 1)], [(1, 0), (1, 1)]]
    assert plan.moved() == 0
    assert plan.carry == [[2, 3, 4, 5], []] and plan.discarded == 2
    # Without carry-over the surplus is discarded.
    assert plan_groups([[2, 0], [4, 4]], groups=2, carry_per_process=0).discarded == 6


@pytest.mark.unit
def test_plan_process_scope_never_moves_groups():
    plan = plan_groups([[2, 0], [4, 4]], groups=2, carry_per_process=2, scope="process")
    assert plan.train == [[(0, 0), (0, 1)], [(1, 0), (1, 1)]]
    assert plan.carry == [[2, 3], [2, 3]] and plan.discarded == 2 and plan.moved() == 0
    with pytest.raises(ValueError, match="Every process needs 2"):
        plan_groups([[0, 0], [4, 0]], groups=2, carry_per_process=0, scope="process")


@pytest.mark.unit
def test_plan_three_processes_fill_deficits_in_process_order():
    # Round 1: process 0 kept 3, process 2 kept 1; round 2: process 1 kept 2. 2 groups per process needed (6 in all).
    plan = plan_groups([[0, 0, 0], [3, 0, 1], [0, 2, 0]], groups=2, carry_per_process=0)
    assert plan.train == [[(0, 0), (0, 1)], [(1, 0), (1, 1)], [(0, 2), (2, 0)]]
    assert plan.moved() == 1 and plan.discarded == 0
    # The boundary part fills the processes that still lack groups first: round 2 gives 4 groups, room 2; process 1
    # lacks 2 and process 2 lacks 1, so process 1 takes its own 2 (in process order) and nothing else is needed.
    plan = plan_groups([[0, 0, 0], [3, 0, 1], [1, 2, 1]], groups=2, carry_per_process=0)
    assert plan.train == [[(0, 0), (0, 1)], [(1, 0), (1, 1)], [(0, 2), (2, 0)]]
    assert plan.discarded == 2


@pytest.mark.distributed
def test_global_fill_uses_other_processes_surplus_two_processes(tiny_model_path, tmp_path):
    # Process 1's first round is all zero-variance; process 0's is all mixed with twice what it needs. Filled
    # globally, process 0's surplus fills process 1's batch in one round; filled per process, process 1 needs a
    # second round.
    script = Path(__file__).parent / "scripts" / "ds_global_fill.py"
    env = dict(os.environ, ZVP_TEST_MODEL=tiny_model_path, ZVP_TEST_OUT=str(tmp_path))
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script)]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    for scope in ("global", "process", "exhausted"):  # every process takes the same decisions
        assert ranks[0][scope]["steps"] == ranks[1][scope]["steps"]
        assert ranks[0][scope]["ds_stats"] == ranks[1][scope]["ds_stats"]
    for rank in ranks:
        global_fill, process_fill = rank["global"], rank["process"]
        # Step 1: 1 round and 2 groups moved (globally) against 2 rounds (per process).
        assert global_fill["steps"][0] == {"rounds": 1.0, "moved": 2.0}
        assert process_fill["steps"][0] == {"rounds": 2.0, "moved": 0.0}
        assert global_fill["ds_stats"]["rounds"] < process_fill["ds_stats"]["rounds"]
        assert global_fill["ds_stats"]["generated_groups"] < process_fill["ds_stats"]["generated_groups"]
        for batch in global_fill["batches"] + process_fill["batches"]:
            # Full batches of groups with distinct rewards on both processes: process 1's first batch can only hold
            # process 0's groups (its own were all zero-variance, advantage 0).
            assert batch["rows"] == 8 and batch["min_abs_advantage"] > 0
        # Out of rounds after one: each process trains on what it holds, padded with zero-variance groups (zero
        # advantage): process 0 on its mixed group and one padded group, process 1 on two padded groups.
        exhausted = rank["exhausted"]
        assert exhausted["global_step"] == 2 and len(exhausted["losses"]) == 2
        assert exhausted["ds_stats"]["exhausted_steps"] == 2 and exhausted["exhausted_logged"] == [1.0, 2.0]
        assert [b["rows"] for b in exhausted["batches"]] == [8, 8]
    assert [b["rows_with_advantage"] for b in ranks[0]["exhausted"]["batches"]] == [G, G]
    assert [b["rows_with_advantage"] for b in ranks[1]["exhausted"]["batches"]] == [0, 0]


@pytest.mark.trainer
@pytest.mark.parametrize("algorithm", ["grpo_ds", "greso", "erpo_ds", "exgrpo"])
def test_a_trainer_that_draws_prompts_by_index_refuses_an_iterable_dataset(algorithm, tiny_model_path, tmp_path):
    """Dynamic sampling draws extra prompts by index, and ExGRPO replaces retired questions by other rows
    (`exgrpo_exclude_retired`, the default): an `IterableDataset` is refused at construction, naming what to pass."""
    from zvp_trl.core.composition import get_algorithm

    config_class, trainer_class = get_algorithm(algorithm).load()
    args = config_class(**cpu_config_kwargs(tmp_path, num_generations=4))
    iterable = Dataset.from_dict({"prompt": [f"Q: {i}+1=?\nA:" for i in range(8)]}).to_iterable_dataset()
    with pytest.raises((NotImplementedError, ValueError), match="map-style"):
        trainer_class(model=tiny_model_path, reward_funcs=kind_reward, args=args, train_dataset=iterable)
    if algorithm == "exgrpo":  # without the replacement of retired questions, nothing is drawn by index
        args = config_class(**cpu_config_kwargs(tmp_path, num_generations=4), exgrpo_exclude_retired=False)
        trainer_class(model=tiny_model_path, reward_funcs=kind_reward, args=args, train_dataset=iterable)
