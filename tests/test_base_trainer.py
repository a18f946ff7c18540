# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""What every zvp_trl trainer shares: rollout accounting, the rollout budget, resumable data order."""

import pytest
from datasets import Dataset
from trl.trainer.utils import RepeatSampler

from zvp_trl import GRPOBaselineConfig, GRPOBaselineTrainer, ZVPBaseConfig
from zvp_trl.trainer.base import EpochSeededRepeatSampler


def epochs(sampler, n):
    orders = []
    for epoch in range(n):
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(epoch)
        orders.append(list(sampler))
    return orders


def test_epoch_order_matches_trl_and_survives_a_restart():
    data = list(range(10))
    trl_orders = epochs(RepeatSampler(data, mini_repeat_count=2, batch_size=5, seed=3), 3)
    ours = epochs(EpochSeededRepeatSampler.from_sampler(RepeatSampler(data, 2, batch_size=5, seed=3)), 3)
    assert ours == trl_orders  # an uninterrupted run is unchanged
    assert trl_orders[1] != trl_orders[0]
    # A fresh sampler (a resumed run) asked for epoch 2 gives epoch 2's order; TRL's gives epoch 0's.
    fresh = EpochSeededRepeatSampler.from_sampler(RepeatSampler(data, 2, batch_size=5, seed=3))
    fresh.set_epoch(2)
    assert list(fresh) == trl_orders[2]
    assert list(RepeatSampler(data, 2, batch_size=5, seed=3)) == trl_orders[0] != trl_orders[2]


def alternating_reward(completions, **kwargs):
    return [float(i % 2 == 0) for i in range(len(completions))]


def make_trainer(tiny_model_path, tmp_path, **overrides):
    values = dict(
        output_dir=str(tmp_path),
        use_cpu=True,
        bf16=False,
        report_to="none",
        per_device_train_batch_size=8,
        num_generations=4,
        max_completion_length=4,
        max_steps=10,
        logging_steps=1,
        save_strategy="no",
        seed=0,
    )
    values.update(overrides)
    dataset = Dataset.from_dict({"prompt": [f"Q: {i}+1=?\nA:" for i in range(8)]})
    return GRPOBaselineTrainer(
        model=tiny_model_path,
        reward_funcs=alternating_reward,
        args=GRPOBaselineConfig(**values),
        train_dataset=dataset,
    )


@pytest.mark.parametrize("stop, last_step", [("step", 5), ("generation", 6)])
def test_max_rollouts_stops_training_and_kept_counts_each_row_once(tiny_model_path, tmp_path, stop, last_step):
    # 8 completions per generation, each generation batch used for 2 optimizer steps (num_iterations=2): generations
    # at steps 1, 3, 5 bring the total to 8, 16, 24, so the budget of 20 is spent at step 5; "generation" also runs
    # step 6, the second pass over that batch.
    trainer = make_trainer(tiny_model_path, tmp_path, max_rollouts=20, num_iterations=2, max_rollouts_stop=stop)
    trainer.train()
    assert trainer.state.global_step == last_step
    assert trainer.rollouts.total == 24
    assert trainer.rollouts.kept == 24  # GRPO keeps every row; reused rows (num_iterations=2) count once
    last = [entry for entry in trainer.state.log_history if "rollouts/total" in entry][-1]
    assert last["rollouts/total"] == 24 and last["rollouts/kept"] == 24 and last["rollouts/grad_steps"] == last_step


def test_max_rollouts_generation_stop_with_gradient_accumulation(tiny_model_path, tmp_path):
    # 2 rows per micro-batch, 2 micro-batches per optimizer step, a generation batch of 8 rows = 2 optimizer steps:
    # generations at steps 1, 3 (8, 16 completions); a budget of 10 is spent at step 3 and its batch ends at step 4.
    trainer = make_trainer(
        tiny_model_path,
        tmp_path,
        max_rollouts=10,
        per_device_train_batch_size=2,
        gradient_accumulation_steps=2,
        steps_per_generation=4,
    )
    trainer.train()
    assert (trainer.state.global_step, trainer.rollouts.total) == (4, 16)


def test_max_rollouts_must_be_positive(tmp_path):
    with pytest.raises(ValueError, match="max_rollouts"):
        ZVPBaseConfig(output_dir=str(tmp_path), max_rollouts=0)
    with pytest.raises(ValueError, match="max_rollouts_stop"):
        ZVPBaseConfig(output_dir=str(tmp_path), max_rollouts_stop="epoch")
