# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""Zero-variance detection, shared by every method (pure functions, no trainer inside): TRL's scalar reward per row,
the sign of each zero-variance group (+1 all-correct, -1 all-wrong), and whether every reward function is constant on a
group (TRL's `normalize_then_sum`)."""

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
