# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""Pure advantage functions (no trainer inside): zero-variance detection and RL-ZVP's token-level advantages.

RL-ZVP ("No Prompt Left Behind", arXiv 2509.21880, Eq. 5): a group whose rewards are all equal gives GRPO no signal.
RL-ZVP gives such a group token-level advantages built from the current policy's (detached) per-token entropy H:

- all-correct group: `A_t = alpha * H_t`
- all-wrong group:   `A_t = -alpha * (max_k H_k - H_t)`, the max over the valid tokens of the same completion.

The size of that signal follows the model's entropy scale, so one alpha means different things on two models.
`relative_alpha` sets alpha from the batch instead (the paper names an adaptive alpha as future work): so that the
zero-variance tokens' mean |advantage| is a chosen fraction of the mixed groups' tokens'.
"""

import torch


def scalar_rewards(rewards_per_func: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """TRL's scalar reward per row (`sum_then_normalize`): the weighted `nansum` over reward functions, `(B,)`.

    A row that every reward function left unscored (all NaN) is NaN, so that the zero-variance rules treat its group as
    not zero-variance and no rule counts it as correct.
    """
    rewards = (rewards_per_func * weights.to(rewards_per_func.device).unsqueeze(0)).nansum(dim=1)
    rewards[torch.isnan(rewards_per_func).all(dim=1)] = torch.nan
    return rewards


def zero_variance_signs(
    rewards: torch.Tensor, num_generations: int, correct_threshold: float = 0.0, atol: float = 1e-6
) -> torch.Tensor:
    """Marks the rows of zero-variance groups.

    Args:
        rewards (`torch.Tensor`):
            1-D tensor of scalar rewards, grouped consecutively by `num_generations` (TRL's layout: the G completions
            of a prompt are adjacent). NaN marks an unscorable completion.
        num_generations (`int`):
            Group size G.
        correct_threshold (`float`, *optional*, defaults to `0.0`):
            A zero-variance group is positive (all correct) when its common reward is above this value (the paper's
            `R > 0`), negative otherwise.
        atol (`float`, *optional*, defaults to `1e-6`):
            A group is zero-variance when `max(R) - min(R) <= atol`.

    Returns:
        `torch.Tensor`: float tensor shaped like `rewards` with `+1` on every row of a positive zero-variance group,
        `-1` on every row of a negative one and `0` elsewhere. A group containing NaN is not zero-variance.
    """
    if rewards.dim() != 1:
        raise ValueError(f"rewards must be 1-D, got shape {tuple(rewards.shape)}.")
    if num_generations < 1 or rewards.numel() % num_generations != 0:
        raise ValueError(
            f"rewards has {rewards.numel()} rows, which is not a whole number of groups of num_generations="
            f"{num_generations}."
        )
    groups = rewards.float().view(-1, num_generations)
    has_nan = torch.isnan(groups).any(dim=1)
    filled = torch.nan_to_num(groups, nan=0.0)
    spread = filled.max(dim=1).values - filled.min(dim=1).values
    is_zero_variance = (spread <= atol) & ~has_nan
    sign = torch.where(filled.mean(dim=1) > correct_threshold, 1.0, -1.0)
    return (sign * is_zero_variance).repeat_interleave(num_generations)


def constant_per_function(rewards_per_func: torch.Tensor, num_generations: int, atol: float = 1e-6) -> torch.Tensor:
    """Per row, whether every reward function gives its whole group one value (within `atol`), or leaves the whole
    group unscored (NaN).

    Under TRL's `multi_objective_aggregation="normalize_then_sum"` each function is normalised within the group before
    the weighted sum, so a group's advantage is zero exactly when every function is constant on it: a group whose
    weighted sum is constant while its functions are not (say `f1 = [1, 0]`, `f2 = [0, 1]` with unequal weights)
    keeps a real advantage. A function scored on part of a group only is not constant on it.

    Args:
        rewards_per_func (`torch.Tensor`):
            `(rows, functions)` rewards, grouped consecutively by `num_generations` rows; NaN where a function left a
            row unscored.
        num_generations (`int`):
            Group size G.
        atol (`float`, *optional*, defaults to `1e-6`):
            A function is constant on a group when `max - min <= atol` there.

    Returns:
        `torch.Tensor`: bool tensor of shape `(rows,)`.
    """
    if rewards_per_func.dim() != 2:
        raise ValueError(f"rewards_per_func must be (rows, functions), got shape {tuple(rewards_per_func.shape)}.")
    rows, functions = rewards_per_func.shape
    if num_generations < 1 or rows % num_generations != 0:
        raise ValueError(
            f"rewards_per_func has {rows} rows, which is not a whole number of groups of num_generations="
            f"{num_generations}."
        )
    groups = rewards_per_func.float().view(-1, num_generations, functions)
    nan = torch.isnan(groups)
    filled = torch.nan_to_num(groups, nan=0.0)
    spread = filled.max(dim=1).values - filled.min(dim=1).values  # (groups, functions)
    constant = ((spread <= atol) & ~nan.any(dim=1)) | nan.all(dim=1)
    return constant.all(dim=1).repeat_interleave(num_generations)


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
            `(B,)` output of [`zero_variance_signs`] for these rows.
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
        `torch.Tensor`: `(B, T)` advantages, 0 on padded positions, without gradient.
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
    mask = completion_mask.to(entropies.dtype)
    entropy = entropies.detach() * mask
    result = advantages.detach().to(entropies.dtype)[:, None].expand_as(entropy).clone()

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
