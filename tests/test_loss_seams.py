# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""The loss seams the adapter relies on, checked against TRL itself:

- TRL's loss-type aggregation exists once in the core (`zvp_trl.core.loss`), and it equals TRL's own
  `GRPOTrainer._compute_loss` for every `loss_type` on the same batch (ExGRPO's mixed loss aggregates with it);
- the token-advantage step (RL-ZVP) rewrites a loss's advantages from the entropies of its policy forward, which works
  because TRL's `_compute_loss` runs that forward before it reads `inputs["advantages"]`.
"""

import dataclasses
import re

import pytest
import torch
from cpu_config import cpu_config_kwargs
from datasets import Dataset
from trl import GRPOConfig, GRPOTrainer

from zvp_trl import GRPOBaselineConfig, GRPOBaselineTrainer
from zvp_trl.core.loss import LOSS_TYPES, aggregate_loss, entropy_bonus, kl_penalty
from zvp_trl.core.parts import LossSettings


B, P, T = 4, 3, 5
ACCUMULATION = 2


@pytest.mark.unit
def test_every_trl_loss_type_is_covered():
    help_text = next(f for f in dataclasses.fields(GRPOConfig) if f.name == "loss_type").metadata["help"]
    named = help_text.split("Supported values are", 1)[1].split(".", 1)[0]
    assert sorted(LOSS_TYPES) == sorted(re.findall(r"'(\w+)'", named))


@pytest.mark.unit
def test_aggregation_by_hand():
    per_token_loss = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]])
    settings = LossSettings(max_completion_length=4, steps_per_generation=2)
    expected = {
        "grpo": ((1 + 2) / 2 + (4 + 5 + 6) / 3) / 2,  # mean over sequences of each sequence's token mean
        "bnpo": (1 + 2 + 4 + 5 + 6) / 5,  # token mean over the micro-batch
        "dr_grpo": (1 + 2 + 4 + 5 + 6) / (2 * 4),  # over sequences * max_completion_length
        "luspo": ((1 + 2) + (4 + 5 + 6)) / 2,  # sequence sums, averaged
        "dapo": (1 + 2 + 4 + 5 + 6) / (10 / 2 * 3 / 2),  # num_items_in_batch / processes, times accumulation / spg
    }
    for loss_type, value in expected.items():
        loss, policy_loss = aggregate_loss(
            per_token_loss,
            mask,
            dataclasses.replace(settings, loss_type=loss_type),
            training=True,
            accumulation_steps=3,
            num_items_in_batch=torch.tensor(10.0),
            num_processes=2,
        )
        divided = value if loss_type == "dapo" else value / 3
        assert loss.item() == pytest.approx(divided) and policy_loss.item() == pytest.approx(value), loss_type
    # Evaluation: no accumulation.
    loss, _ = aggregate_loss(per_token_loss, mask, settings, training=False, accumulation_steps=3,
                             num_items_in_batch=torch.tensor(10.0))  # fmt: skip
    assert loss.item() == pytest.approx(18 / 10)  # dapo in evaluation: over num_items_in_batch / processes
    with pytest.raises(ValueError, match="num_items_in_batch"):
        aggregate_loss(per_token_loss, mask, settings, training=True, accumulation_steps=1)
    assert kl_penalty(torch.zeros(1), torch.zeros(1)).item() == 0.0
    bonus = entropy_bonus(per_token_loss, mask, dataclasses.replace(settings, entropy_coef=0.5), training=True,
                          accumulation_steps=3)  # fmt: skip
    assert bonus.item() == pytest.approx(0.5 * (18 / 5) / 3)


def _reward(completions, **kwargs):
    return [float(i % 2) for i in range(len(completions))]


@pytest.fixture(scope="module")
def trainer(tiny_model_path, tmp_path_factory):
    args = GRPOBaselineConfig(
        **cpu_config_kwargs(
            tmp_path_factory.mktemp("seams"), per_device_train_batch_size=B, num_generations=2,
            max_completion_length=T, steps_per_generation=2, max_steps=1, save_strategy="no",
        )
    )  # fmt: skip
    dataset = Dataset.from_dict({"prompt": [f"Q: {i}+1=?\nA:" for i in range(8)]})
    trainer = GRPOBaselineTrainer(tiny_model_path, _reward, args=args, train_dataset=dataset)
    trainer.model.train()
    trainer.current_gradient_accumulation_steps = ACCUMULATION
    return trainer


def _batch(trainer) -> dict:
    generator = torch.Generator().manual_seed(0)
    vocab = trainer.model.config.vocab_size
    completion_mask = torch.ones(B, T, dtype=torch.long)
    completion_mask[0, 3:] = 0  # rows of different lengths
    completion_mask[2, 1:] = 0
    return {
        "prompt_ids": torch.randint(3, vocab, (B, P), generator=generator),
        "prompt_mask": torch.ones(B, P, dtype=torch.long),
        "completion_ids": torch.randint(3, vocab, (B, T), generator=generator),
        "completion_mask": completion_mask,
        "advantages": torch.tensor([0.7, -0.4, 1.2, -0.9]),
        "num_items_in_batch": torch.tensor(float(completion_mask.sum() * 2)),
    }


def _per_token_loss(loss_type: str, trainer, batch: dict, logps: torch.Tensor) -> torch.Tensor:
    """The per-token loss TRL forms before aggregating, for this batch with no old log-probs (the ratio is
    `exp(logp - logp.detach())`: 1, with the policy's gradient), no KL, no masks, written out per loss type from
    TRL's formulas."""
    advantages = batch["advantages"].unsqueeze(1)
    mask = batch["completion_mask"]
    args = trainer.args
    log_ratio = logps - logps.detach()
    if loss_type == "luspo":  # sequence-level ratio
        log_ratio = ((log_ratio * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)).unsqueeze(-1)
    ratio = torch.exp(log_ratio)
    if loss_type in ("grpo", "bnpo", "dr_grpo", "dapo", "luspo"):
        clipped = torch.clamp(ratio, 1 - trainer.epsilon_low, 1 + trainer.epsilon_high)
        return -torch.min(ratio * advantages, clipped * advantages)
    if loss_type == "cispo":
        return -torch.clamp(ratio, max=trainer.epsilon_high).detach() * advantages * logps
    if loss_type == "sapo":
        temperatures = torch.where(advantages > 0, args.sapo_temperature_pos, args.sapo_temperature_neg)
        return -(torch.sigmoid(temperatures * (ratio - 1)) * 4 / temperatures) * advantages
    gamma = (args.vespo_k_pos, args.vespo_lambda_pos, args.vespo_k_neg, args.vespo_lambda_neg)
    phi = GRPOTrainer.get_gamma_weights(advantages, log_ratio, mask, None, *gamma)
    return -phi * advantages * logps


@pytest.mark.trainer
@pytest.mark.parametrize("loss_type", LOSS_TYPES)
def test_the_cores_aggregation_equals_trls_compute_loss(trainer, loss_type, monkeypatch):
    batch = _batch(trainer)
    monkeypatch.setattr(trainer, "loss_type", loss_type)
    if loss_type == "luspo":  # LUSPO is a sequence-level loss
        monkeypatch.setattr(trainer, "importance_sampling_level", "sequence")
    expected = GRPOTrainer._compute_loss(trainer, trainer.model, dict(batch))
    input_ids = torch.cat([batch["prompt_ids"], batch["completion_ids"]], dim=1)
    attention_mask = torch.cat([batch["prompt_mask"], batch["completion_mask"]], dim=1)
    logps, _, _ = trainer._get_per_token_logps_and_entropies(trainer.model, input_ids, attention_mask, T)
    settings = dataclasses.replace(trainer.part_context.loss, loss_type=loss_type)
    loss, _ = aggregate_loss(
        _per_token_loss(loss_type, trainer, batch, logps),
        batch["completion_mask"],
        settings,
        training=True,
        accumulation_steps=ACCUMULATION,
        num_items_in_batch=batch["num_items_in_batch"],
        num_processes=1,
    )
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-7)
    # The same gradient too.
    weights = [p for p in trainer.model.parameters() if p.requires_grad]
    grads_expected = torch.autograd.grad(expected, weights, allow_unused=True)
    grads = torch.autograd.grad(loss, weights, allow_unused=True)
    assert any(g is not None and g.abs().sum() > 0 for g in grads_expected)
    for grad, grad_expected in zip(grads, grads_expected, strict=True):
        if grad_expected is None:
            assert grad is None
        else:
            torch.testing.assert_close(grad, grad_expected, rtol=1e-4, atol=1e-8)


class _ReadLog(dict):
    """A batch that records when a key is read."""

    def __init__(self, *args, events, **kwargs):
        super().__init__(*args, **kwargs)
        self.events = events

    def __getitem__(self, key):
        self.events.append(f"read {key}")
        return super().__getitem__(key)

    def get(self, key, default=None):
        self.events.append(f"read {key}")
        return super().get(key, default)


@pytest.mark.trainer
def test_trl_runs_the_policy_forward_before_it_reads_the_advantages(trainer, monkeypatch):
    """The contract the token-advantage step relies on: TRL's `_compute_loss` asks for the entropies of its policy
    forward (`_get_per_token_logps_and_entropies(..., compute_entropy=True)`) before it reads `inputs["advantages"]`,
    so the advantages the adapter writes from those entropies are the ones TRL's loss uses."""
    events = []
    forward = trainer._get_per_token_logps_and_entropies

    def recorded(*args, **kwargs):
        events.append(f"forward entropy={kwargs.get('compute_entropy')}")
        return forward(*args, **kwargs)

    monkeypatch.setattr(trainer, "_get_per_token_logps_and_entropies", recorded)
    GRPOTrainer._compute_loss(trainer, trainer.model, _ReadLog(_batch(trainer), events=events))
    assert "forward entropy=True" in events and "read advantages" in events
    assert events.index("forward entropy=True") < events.index("read advantages"), events
    assert events.count("forward entropy=True") == 1  # one policy forward: the one the adapter arms
