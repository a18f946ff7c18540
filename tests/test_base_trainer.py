# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""What every zvp_trl trainer shares: rollout accounting, the rollout budget, resumable data order, the shared config
fields (and their deprecated names), default configs and the generation batch's rewards."""

import dataclasses
from types import SimpleNamespace

import pytest
import torch
import transformers
from cpu_config import cpu_config_kwargs
from datasets import Dataset
from recording import record_generations
from trl.trainer.utils import RepeatSampler

from zvp_trl import ALGORITHMS, GRPOBaselineConfig, GRPOBaselineTrainer, ZVPBaseConfig, get_algorithm
from zvp_trl.core.sampler import EpochSeededRepeatSampler


def epochs(sampler, n):
    orders = []
    for epoch in range(n):
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(epoch)
        orders.append(list(sampler))
    return orders


@pytest.mark.unit
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


def make_trainer(tiny_model_path, tmp_path, reward_funcs=alternating_reward, **overrides):
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
        reward_funcs=reward_funcs,
        args=GRPOBaselineConfig(**values),
        train_dataset=dataset,
    )


@pytest.mark.trainer
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


@pytest.mark.trainer
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


@pytest.mark.unit
def test_max_rollouts_must_be_positive(tmp_path):
    with pytest.raises(ValueError, match="max_rollouts"):
        ZVPBaseConfig(output_dir=str(tmp_path), max_rollouts=0)
    with pytest.raises(ValueError, match="max_rollouts_stop"):
        ZVPBaseConfig(output_dir=str(tmp_path), max_rollouts_stop="epoch")


# ----------------------------------------------------------------------------- one config and one plumbing for all

SHARED_FIELDS = {"correct_threshold": 0.0, "zero_variance_atol": 1e-6, "prompt_id_column": None}
# Per-method names these fields had while the package was developed, never released: no config has them.
EARLIER_NAMES = [
    "zvp_correct_threshold", "zvp_zero_variance_atol", "erpo_correct_threshold", "erpo_prompt_id_column",
    "exgrpo_correct_threshold", "exgrpo_prompt_id_column", "greso_correct_threshold", "greso_prompt_id_column",
    "ds_zero_variance_atol",
]  # fmt: skip


@pytest.mark.unit
@pytest.mark.parametrize("algorithm", sorted(ALGORITHMS))
def test_every_config_has_the_shared_fields_once(algorithm, tmp_path):
    config_class, _ = get_algorithm(algorithm).load()
    names = [f.name for f in dataclasses.fields(config_class)]
    for name, default in SHARED_FIELDS.items():
        assert names.count(name) == 1
        assert getattr(config_class(**cpu_config_kwargs(tmp_path)), name) == default
        assert next(f for f in dataclasses.fields(config_class) if f.name == name).metadata["help"]


@pytest.mark.unit
@pytest.mark.parametrize("algorithm", sorted(ALGORITHMS))
def test_no_config_has_the_earlier_per_method_names(algorithm, tmp_path):
    config_class, _ = get_algorithm(algorithm).load()
    names = {f.name for f in dataclasses.fields(config_class)}
    assert names.isdisjoint(EARLIER_NAMES)
    with pytest.raises(TypeError, match="erpo_correct_threshold"):
        config_class(**cpu_config_kwargs(tmp_path, erpo_correct_threshold=0.5))


@pytest.mark.unit
def test_zero_variance_atol_is_checked_once_for_every_method(tmp_path):
    for algorithm in ALGORITHMS:
        config_class, _ = get_algorithm(algorithm).load()
        with pytest.raises(ValueError, match="zero_variance_atol must be >= 0"):
            config_class(**cpu_config_kwargs(tmp_path, zero_variance_atol=-1.0))


@pytest.mark.unit
@pytest.mark.parametrize("algorithm", sorted(ALGORITHMS))
def test_default_args_are_the_trainers_config_with_trls_naming(algorithm, monkeypatch):
    # TRL's defaults train in bf16, which transformers refuses on a machine without a GPU; skip that one check here.
    monkeypatch.setattr(transformers.TrainingArguments, "_validate_args", lambda self: None)
    config_class, trainer_class = get_algorithm(algorithm).load()
    model = SimpleNamespace(config=SimpleNamespace(_name_or_path="org/Tiny-Model"))
    for given in ("org/Tiny-Model", model):
        args = trainer_class._default_args(given)
        assert type(args) is config_class
        assert args.output_dir.startswith("Tiny-Model-") and " " not in args.output_dir
    suffixes = {get_algorithm(a).load()[1]._default_suffix for a in ALGORITHMS}
    assert len(suffixes) == len(ALGORITHMS)  # every trainer writes to its own default directory


@pytest.mark.unit
@pytest.mark.parametrize("algorithm", sorted(set(ALGORITHMS) - {"grpo"}))
def test_a_trainer_refuses_another_methods_config(algorithm, tmp_path):
    _, trainer_class = get_algorithm(algorithm).load()
    with pytest.raises(TypeError, match=f"needs a {trainer_class._config_class.__name__}"):
        trainer_class(
            model="unused", reward_funcs=alternating_reward, args=GRPOBaselineConfig(**cpu_config_kwargs(tmp_path))
        )


@pytest.mark.trainer
def test_row_signs_and_local_rows_of_the_base_trainer(tiny_model_path, tmp_path):
    trainer = make_trainer(tiny_model_path, tmp_path, correct_threshold=0.5, zero_variance_atol=0.1)
    rewards = torch.tensor([1.0, 0.95, 0.6, 0.6, 0.0, 0.05, 0.0, 1.0, float("nan"), 1.0])
    # groups of 2: all-correct (spread 0.05 <= 0.1), all-correct (0.6 > 0.5), all-wrong, mixed, unscored
    assert trainer._row_signs(rewards, 2).tolist() == [1, 1, 1, 1, -1, -1, 0, 0, 0, 0]
    assert trainer._local_rows(torch.arange(6), 3).tolist() == [0, 1, 2]  # process 0 of one
    with pytest.raises(RuntimeError, match="No rewards"):
        trainer.zvp_step.begin_generation().scalar_rewards(trainer.reward_weights)  # a round not scored yet


@pytest.mark.trainer
def test_gathered_rewards_are_those_of_the_current_batch(tiny_model_path, tmp_path):
    trainer = make_trainer(tiny_model_path, tmp_path, max_steps=1)
    seen = record_generations(trainer, lambda output: trainer.zvp_step.generation.scalar_rewards(trainer.reward_weights).tolist())
    trainer.train()
    assert seen == [[float(i % 2 == 0) for i in range(8)]]


@pytest.mark.trainer
def test_every_trainer_logs_the_zero_variance_split(tiny_model_path, tmp_path):
    # Prompt "Q: i+1=?" is always solved when i is even and never when i is odd: every group is zero-variance, and the
    # all-correct share of a step is the share of even prompts among the 2 it sampled.
    batches = []

    def parity_reward(prompts, completions, **kwargs):
        batches.append(prompts)
        return [float(int(p.split(":")[1].split("+")[0]) % 2 == 0) for p in prompts]

    trainer = make_trainer(tiny_model_path, tmp_path, reward_funcs=parity_reward, max_steps=3)
    trainer.train()
    logs = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert len(logs) == len(batches) == 3
    for entry, prompts in zip(logs, batches):
        groups = prompts[::4]  # 2 prompts x 4 completions
        even = sum(int(p.split(":")[1].split("+")[0]) % 2 == 0 for p in groups) / len(groups)
        assert entry["zvp/frac_zv_positive"] == even and entry["zvp/frac_zv_negative"] == 1.0 - even
        assert entry["frac_reward_zero_std"] == 1.0
