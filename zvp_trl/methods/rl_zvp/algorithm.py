# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""RL-ZVP's token-level advantages, as pure functions (no trainer inside); the zero-variance detection they build on
is shared by every method (`zvp_trl.core.zero_variance`).

RL-ZVP ("No Prompt Left Behind", arXiv 2509.21880, Eq. 5): a group whose rewards are all equal gives GRPO no signal.
RL-ZVP gives such a group token-level advantages built from the current policy's (detached) per-token entropy H:

- all-correct group: `A_t = alpha * H_t`
- all-wrong group:   `A_t = -alpha * (max_k H_k - H_t)`, the max over the valid tokens of the same completion.

The size of that signal follows the model's entropy scale, so one alpha means different things on two models.
`relative_alpha` sets alpha from the batch instead (the paper names an adaptive alpha as future work): so that the
zero-variance tokens' mean |advantage| is a chosen fraction of the mixed groups' tokens'.
"""

import torch


def masked_row_max(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """`(B,)` max of each row of `values` over the positions where `mask` is non-zero; 0 for rows with none."""
    row_max = values.masked_fill(mask == 0, float("-inf")).max(dim=1).values
    return torch.where(torch.isinf(row_max), torch.zeros_like(row_max), row_max)


@torch.no_grad()
def rl_zvp_token_advantages(
    advantages: torch.Tensor,
    zv_signs: torch.Tensor,
    entropies: torch.Tensor,
    completion_mask: torch.Tensor,
    alpha: float = 0.1,
    use_positive: bool = True,
    use_negative: bool = True,
    entropy_scaling: bool = True,
    constant_advantage: float = 1.0,
) -> torch.Tensor:
    """Token-level advantages: GRPO's on ordinary rows, RL-ZVP's entropy-guided ones on zero-variance rows.

    Args:
        advantages (`torch.Tensor`):
            `(B,)` GRPO advantages, broadcast over the tokens of rows that keep them.
        zv_signs (`torch.Tensor`):
            `(B,)` output of [`~zvp_trl.core.zero_variance.zero_variance_signs`] for these rows.
        entropies (`torch.Tensor`):
            `(B, T)` per-token entropies of the current policy (detached here).
        completion_mask (`torch.Tensor`):
            `(B, T)` 1 for valid completion tokens, 0 for padding.
        alpha (`float`, *optional*, defaults to `0.1`):
            Entropy scale (the paper's best value).
        use_positive (`bool`, *optional*, defaults to `True`):
            Give all-correct groups `alpha * H_t`; when `False` they keep their GRPO advantage.
        use_negative (`bool`, *optional*, defaults to `True`):
            Give all-wrong groups `-alpha * (max_k H_k - H_t)`; when `False` they keep their GRPO advantage.
        entropy_scaling (`bool`, *optional*, defaults to `True`):
            When `False`, zero-variance rows get the constant `+constant_advantage` / `-constant_advantage` on every
            token instead (the paper's "w/o entropy scaling" ablation).
        constant_advantage (`float`, *optional*, defaults to `1.0`):
            Magnitude used when `entropy_scaling=False`.

    Returns:
        `torch.Tensor`: `(B, T)` advantages, 0 on padded positions, without gradient, in float32 (or float64 for
        float64 entropies) whatever the entropies' precision.
    """
    if entropies.shape != completion_mask.shape or entropies.dim() != 2:
        raise ValueError(
            f"entropies {tuple(entropies.shape)} and completion_mask {tuple(completion_mask.shape)} must both be "
            "(B, T)."
        )
    batch = entropies.size(0)
    if advantages.shape != (batch,) or zv_signs.shape != (batch,):
        raise ValueError(
            f"advantages {tuple(advantages.shape)} and zv_signs {tuple(zv_signs.shape)} must both be ({batch},)."
        )
    # In float32 at least: under bf16 the entropies come from bf16 logits, and a bf16 result would round GRPO's own
    # advantages of the rows RL-ZVP leaves alone (and the entropy-guided ones beyond their inputs' error).
    dtype = torch.promote_types(entropies.dtype, torch.float32)
    mask = completion_mask.to(dtype)
    entropy = entropies.detach().to(dtype) * mask
    result = advantages.detach().to(dtype)[:, None].expand_as(entropy).clone()

    if entropy_scaling:
        positive = alpha * entropy
        # Max over the valid tokens of each completion; rows without valid tokens get 0 (they are masked anyway).
        negative = -alpha * (masked_row_max(entropy, mask)[:, None] - entropy)
    else:
        positive = torch.full_like(entropy, constant_advantage)
        negative = torch.full_like(entropy, -constant_advantage)

    if use_positive:
        result = torch.where((zv_signs > 0)[:, None], positive, result)
    if use_negative:
        result = torch.where((zv_signs < 0)[:, None], negative, result)
    return result * mask


@torch.no_grad()
def relative_alpha(
    advantages: torch.Tensor,
    zv_signs: torch.Tensor,
    entropies: torch.Tensor,
    completion_mask: torch.Tensor,
    target_ratio: float,
    max_alpha: float,
    use_positive: bool = True,
    use_negative: bool = True,
    default_mixed_scale: float = 1.0,
) -> tuple[float, float, float]:
    """A scale-free alpha: the one that makes the zero-variance tokens' mean |advantage| `target_ratio` times the
    mixed-group tokens' mean |advantage| in this batch.

    RL-ZVP's advantages are linear in alpha, so with `u` the mean over the valid tokens of the rows it shapes of the
    advantage at alpha = 1 (`H_t` on all-correct rows, `-(max_k H_k - H_t)` on all-wrong rows) and `m` the mean |GRPO
    advantage| over the valid tokens of the other rows (mixed groups), `alpha = target_ratio * m / u`, capped at
    `max_alpha` (a batch of near-zero entropies would otherwise get an unbounded alpha). Without mixed tokens (every
    group zero-variance), `m = default_mixed_scale`: the scale of TRL's group-normalized advantages (a mixed group's
    advantages have standard deviation 1). Without shaped tokens, or with `u = 0`, there is nothing to scale and the
    result is `max_alpha` (it multiplies zeros).

    Args:
        advantages, zv_signs, entropies, completion_mask: as for [`rl_zvp_token_advantages`].
        target_ratio (`float`): the wanted ratio of mean |advantage|, zero-variance tokens to mixed tokens.
        max_alpha (`float`): the cap.
        use_positive, use_negative (`bool`): which zero-variance rows RL-ZVP shapes.
        default_mixed_scale (`float`, *optional*, defaults to `1.0`): `m` when the batch has no mixed tokens.

    Returns:
        `tuple[float, float, float]`: `(alpha, u, m)`.
    """
    mask = completion_mask.to(entropies.dtype)
    shaped = ((zv_signs > 0) & use_positive) | ((zv_signs < 0) & use_negative)
    # RL-ZVP's advantages at alpha = 1 on the rows it shapes (0 elsewhere: GRPO's advantage there is replaced by 0).
    unit = rl_zvp_token_advantages(
        torch.zeros_like(advantages),
        zv_signs,
        entropies,
        completion_mask,
        alpha=1.0,
        use_positive=use_positive,
        use_negative=use_negative,
    )
    shaped_tokens = mask * shaped[:, None].to(mask.dtype)
    shaped_count = float(shaped_tokens.sum())
    unit_scale = float((unit.abs() * shaped_tokens).sum()) / shaped_count if shaped_count > 0 else 0.0
    mixed_tokens = mask * (zv_signs == 0)[:, None].to(mask.dtype)
    mixed_count = float(mixed_tokens.sum())
    if mixed_count > 0:
        mixed_scale = float((advantages.detach().abs().to(mask.dtype)[:, None] * mixed_tokens).sum()) / mixed_count
    else:
        mixed_scale = float(default_mixed_scale)
    if unit_scale <= 0:
        return float(max_alpha), unit_scale, mixed_scale
    return min(float(max_alpha), target_ratio * mixed_scale / unit_scale), unit_scale, mixed_scale
