# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
import pytest
import torch
from cpu_config import cpu_config_kwargs
from datasets import Dataset

from zvp_trl.trainer.dynamic_sampling_config import GRPODSConfig
from zvp_trl.trainer.dynamic_sampling_trainer import GRPODSTrainer, PromptSampler, concat_outputs, select_rows


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


@pytest.mark.parametrize(
    "overrides, match",
    [
        (dict(ds_max_generation_rounds=-1), "ds_max_generation_rounds"),
        (dict(ds_oversample_factor=0.5), "ds_oversample_factor"),
        (dict(ds_zero_variance_atol=-1.0), "ds_zero_variance_atol"),
    ],
)
def test_config_validation(tmp_path, overrides, match):
    with pytest.raises(ValueError, match=match):
        make_config(tmp_path, **overrides)


def test_config_requires_groups_local_to_a_process(tmp_path, monkeypatch):
    # 2 processes x 2 rows = 4 rows per generation batch: fine for TRL (one group), but the group straddles processes.
    monkeypatch.setattr(GRPODSConfig, "world_size", property(lambda self: 2))
    with pytest.raises(ValueError, match=r"steps_per_generation \(2 \* 1 = 2\) must be a multiple of num_generations"):
        make_config(tmp_path, per_device_train_batch_size=2)
    make_config(tmp_path, per_device_train_batch_size=2, gradient_accumulation_steps=2)  # 4 rows per process: fine


# ---------------------------------------------------------------------------------------------- trainer


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
    assert trainer.ds_stats.state_dict() == {
        "rounds": 4,
        "generated_groups": 8,
        "dropped_groups": 4,
        "discarded_groups": 0,
    }


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
    assert trainer._carry is None


def test_surplus_is_discarded_without_carry_over(tiny_model_path, tmp_path):
    kinds = ["mixed", "mixed", "mixed", "mixed"]
    trainer = make_trainer(
        tiny_model_path, tmp_path, kinds, max_steps=1, ds_oversample_factor=2.0, ds_carry_over=False
    )
    trainer.train()
    assert trainer._carry is None and trainer.ds_stats.discarded_groups == 2


def test_raises_after_the_round_limit(tiny_model_path, tmp_path):
    trainer = make_trainer(tiny_model_path, tmp_path, ["a", "b"], reward=constant_reward, ds_max_generation_rounds=3)
    with pytest.raises(RuntimeError, match="ds_max_generation_rounds=3"):
        trainer.train()
    assert trainer.rollouts.total == 3 * 8  # exactly 3 rounds were generated, then the error


def test_assembled_batch_size_and_num_items_with_gradient_accumulation(tiny_model_path, tmp_path):
    # Local generation batch 2 x 8 = 16 rows (4 groups), split in 2 micro-batches; different completion lengths in
    # different rounds exercise the re-padding.
    kinds = ["correct", "mixed", "wrong", "mixed", "mixed", "correct", "mixed", "wrong"]
    trainer = make_trainer(
        tiny_model_path, tmp_path, kinds, shuffle_dataset=True, gradient_accumulation_steps=2, ds_oversample_factor=1.5
    )
    generate = trainer._generate_and_score_completions
    outputs = []

    def record(inputs):
        outputs.append(generate(inputs))
        return outputs[-1]

    trainer._generate_and_score_completions = record
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


def test_max_rollouts_stops_at_the_right_count(tiny_model_path, tmp_path):
    # Every step needs 2 rounds of 8 completions (see test_zero_variance_groups_never_reach_the_loss), so a budget
    # of 20 completions is spent after step 2 (16 < 20 <= 32), not step 1 or 3.
    kinds = ["correct", "mixed", "wrong", "mixed", "correct", "mixed"]
    trainer = make_trainer(tiny_model_path, tmp_path, kinds, max_steps=10, max_rollouts=20)
    trainer.train()
    assert trainer.state.global_step == 2
    assert trainer.rollouts.total == 32


def test_eval_mode_does_not_filter(tiny_model_path, tmp_path):
    trainer = make_trainer(tiny_model_path, tmp_path, ["a", "b"], reward=constant_reward)
    trainer.model.eval()
    rows = [trainer.train_dataset[i] for i in range(2) for _ in range(G)]
    output = trainer._generate_and_score_completions(rows)
    assert output["completion_ids"].size(0) == 8 and trainer.rollouts.total == 0


def test_requires_its_config_and_names_dapo_in_the_model_card(tiny_model_path, tmp_path):
    from trl import GRPOConfig

    args = GRPOConfig(output_dir=str(tmp_path), use_cpu=True, bf16=False, num_generations=G)
    with pytest.raises(TypeError, match="GRPODSConfig"):
        GRPODSTrainer(model=tiny_model_path, reward_funcs=constant_reward, args=args)
    trainer = make_trainer(tiny_model_path, tmp_path, ["a", "b"])
    trainer.create_model_card(model_name="tiny-ds")
    card = (tmp_path / "README.md").read_text()
    assert "GRPO-DS" in card and "2503.14476" in card and "DAPO" in card
