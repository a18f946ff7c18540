# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""ExGRPO's mixed-policy objective per token, as a pure function (no trainer inside).

ExGRPO (arXiv 2510.02245, Eq. 4) mixes, in one group, fresh completions sampled by the current policy and one replayed
trajectory recorded earlier. Fresh tokens use the policy-gradient surrogate of the run's loss type; a replayed token
uses the shaped ratio `-A * f(w)`, `f(w) = w / (w + beta)`, unclipped, against the log-probs recorded when it was
collected (gradient through `f`). The trainer then applies TRL's masks, KL term and aggregation to the result.

Shapes: `B` rows, `T` completion tokens. Log-probs and the mask are `(B, T)`; advantages `(B,)`, `(B, 1)` or `(B, T)`
(token-level advantages, e.g. RL-ZVP's); `replay` is `(B,)` bool.
"""

import torch

from .exgrpo import policy_shaping


# Loss types whose fresh-token surrogate and aggregation the mixed loss implements.
EXGRPO_LOSS_TYPES = ("dr_grpo", "dapo", "grpo", "bnpo", "cispo")


def log_importance_weights(log_ratio: torch.Tensor, mask: torch.Tensor, level: str = "token") -> torch.Tensor:
    """`(B, T)` per-token log-ratios at `level="token"`; their masked mean per sequence, `(B, 1)`, at `"sequence"`
    (GSPO's sequence-level ratio, as TRL's `importance_sampling_level="sequence"`)."""
    if level == "token":
        return log_ratio
    if level == "sequence":
        mask = mask.to(log_ratio.dtype)
        return ((log_ratio * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)).unsqueeze(-1)
    raise ValueError(f"importance_sampling_level must be 'token' or 'sequence', got {level!r}.")


def exgrpo_per_token_loss(
    per_token_logps: torch.Tensor,
    old_per_token_logps: torch.Tensor,
    recorded_logps: torch.Tensor,
    advantages: torch.Tensor,
    replay: torch.Tensor,
    mask: torch.Tensor,
    *,
    loss_type: str = "dr_grpo",
    importance_sampling_level: str = "token",
    epsilon_low: float = 0.2,
    epsilon_high: float = 0.2,
    delta: float | None = None,
    unclip_fresh: bool = True,
    shaping_beta: float = 0.1,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The `(B, T)` per-token loss of ExGRPO's mixed phase, before masks, KL and aggregation.

    Fresh rows (`replay` False), with `w = exp(logp - old)` (or its sequence-level form):
    - `loss_type="cispo"`: `-min(w, epsilon_high).detach() * A * logp` (CISPO's truncated weight; untruncated with
      `unclip_fresh`);
    - otherwise the clipped surrogate `-min(w A, clip(w, 1 - epsilon_low, 1 + epsilon_high) A)` (with `delta`, `w` is
      also capped at `delta`, as TRL's two-sided clipping), or `-w A` with `unclip_fresh` (the official code's
      `loss_remove_clip`).
    Replayed rows: `-f(w*) A` with `w* = exp(logp - recorded)` (or its sequence-level form), unclipped.

    Returns `(per_token_loss, fresh_ratio, replay_ratio)`: the loss, and the detached ratios `w` and `w*` (`(B, T)`, or
    `(B, 1)` at sequence level) for metrics.
    """
    if loss_type not in EXGRPO_LOSS_TYPES:
        raise ValueError(f"loss_type must be one of {', '.join(EXGRPO_LOSS_TYPES)}, got {loss_type!r}.")
    if advantages.dim() == 1:
        advantages = advantages.unsqueeze(1)
    replay = replay.bool().unsqueeze(1)
    log_w = log_importance_weights(per_token_logps - old_per_token_logps, mask, importance_sampling_level)
    coef_1 = torch.exp(log_w)
    if loss_type == "cispo":
        weight = coef_1 if unclip_fresh else torch.clamp(coef_1, max=epsilon_high)
        fresh_loss = -weight.detach() * advantages * per_token_logps
    elif unclip_fresh:
        fresh_loss = -coef_1 * advantages
    else:
        coef_2 = torch.clamp(coef_1, 1 - epsilon_low, 1 + epsilon_high)
        if delta is not None:
            coef_1 = torch.clamp(coef_1, max=delta)
        fresh_loss = -torch.min(coef_1 * advantages, coef_2 * advantages)
    log_w_replay = log_importance_weights(per_token_logps - recorded_logps, mask, importance_sampling_level)
    replay_ratio = torch.exp(log_w_replay)
    replay_loss = -policy_shaping(replay_ratio, shaping_beta) * advantages
    per_token_loss = torch.where(replay, replay_loss, fresh_loss).expand_as(per_token_logps)
    return per_token_loss, torch.exp(log_w).detach(), replay_ratio.detach()
