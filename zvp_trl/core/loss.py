# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""TRL's loss terms, once: how `GRPOTrainer._compute_loss` (TRL 1.16) turns a `(B, T)` per-token loss into the loss
of a micro-batch for each `loss_type`, its KL penalty and its static entropy bonus. A part that computes a loss of its
own (ExGRPO's mixed phase) uses these, so its aggregation is TRL's; tests/test_loss_seams.py checks that they equal
TRL's own `_compute_loss` for every `loss_type` on the same batch.
"""

import torch

from .parts import LossSettings


# TRL 1.16's loss types (`GRPOConfig.loss_type`).
LOSS_TYPES = ("grpo", "bnpo", "dr_grpo", "dapo", "cispo", "sapo", "luspo", "vespo")


def aggregate_loss(
    per_token_loss: torch.Tensor,
    mask: torch.Tensor,
    settings: LossSettings,
    *,
    training: bool,
    accumulation_steps: int,
    num_items_in_batch: torch.Tensor | None = None,
    num_processes: int = 1,
) -> tuple[torch.Tensor, torch.Tensor]:
    """`(loss, policy_loss)`: the micro-batch's loss as TRL aggregates `per_token_loss` (`(B, T)`, or `(B, 1)`
    broadcast over the tokens) over `mask` for `settings.loss_type`, divided for gradient accumulation in training
    (except the token-count types, whose normaliser spans one accumulation window), and the undivided loss, detached
    (TRL's `policy_loss` metric).

    `num_items_in_batch`: the generation batch's loss tokens over all processes (TRL's input of that name), needed by
    `dapo`, `cispo` and `vespo`.
    """
    loss_type = settings.loss_type
    accumulation = accumulation_steps if training else 1.0  # no accumulation in evaluation
    if loss_type in ("grpo", "sapo"):
        loss = ((per_token_loss * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)).mean()
    elif loss_type == "bnpo":
        loss = (per_token_loss * mask).sum() / mask.sum().clamp(min=1.0)
    elif loss_type == "dr_grpo":
        loss = (per_token_loss * mask).sum() / (per_token_loss.size(0) * settings.max_completion_length)
    elif loss_type in ("dapo", "cispo", "vespo"):
        if num_items_in_batch is None:
            raise ValueError(f"loss_type={loss_type!r} normalises by num_items_in_batch, which was not given.")
        # `num_items_in_batch` spans the generation batch: rescaled to one accumulation window.
        normalizer = num_items_in_batch.clamp(min=1.0) / num_processes
        if training:
            normalizer = normalizer * accumulation_steps / settings.steps_per_generation
        loss = (per_token_loss * mask).sum() / normalizer
        return loss, loss.detach()
    elif loss_type == "luspo":
        loss = (per_token_loss * mask).sum(-1).mean()
    else:
        raise ValueError(f"Unknown loss_type {loss_type!r}: one of {', '.join(LOSS_TYPES)}.")
    return loss / accumulation, loss.detach()


def kl_penalty(
    per_token_logps: torch.Tensor, ref_per_token_logps: torch.Tensor, ratio: torch.Tensor | None = None
) -> torch.Tensor:
    """TRL's per-token KL estimate `exp(ref - logp) - (ref - logp) - 1`, times the importance ratio `ratio` when
    given (`use_bias_correction_kl`)."""
    difference = ref_per_token_logps - per_token_logps
    kl = torch.exp(difference) - difference - 1
    return kl * ratio if ratio is not None else kl


def entropy_bonus(
    entropies: torch.Tensor,
    mask: torch.Tensor,
    settings: LossSettings,
    *,
    training: bool,
    accumulation_steps: int,
    entropy_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """What TRL subtracts from the loss for its static entropy bonus: `entropy_coef` times the mean entropy over the
    tokens the policy loss acts on (`mask`, times `entropy_mask` with entropy filtering), divided for gradient
    accumulation in training."""
    effective = mask if entropy_mask is None else mask * entropy_mask
    accumulation = accumulation_steps if training else 1.0
    mean_entropy = (entropies * effective).sum() / effective.sum().clamp(min=1.0)
    return settings.entropy_coef * mean_entropy / accumulation
