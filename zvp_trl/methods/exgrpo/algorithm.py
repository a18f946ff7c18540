# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""Building blocks of ExGRPO ("Learning to Reason from Experience", arXiv 2510.02245), free of any trainer.

- `exgrpo_bucket_weights`: sampling probability of each non-empty bucket of buffered questions (bucket = the
  question's latest number of correct completions `k` out of `G`), N(k; G/2, 1) by default as in the official code.
- `policy_shaping`: the shaping `f(w) = w / (w + beta)` applied to the importance ratio of replayed tokens.
- `sample_bucket_counts` / `sample_buffer_prompts`: how many questions each bucket gives to a batch (multinomial,
  overflow redistributed) and which ones (without replacement within a bucket).
- `replacements_for_retired`: fresh questions that stand in for retired ones drawn by the dataset sampler.
- `mean_token_entropy`: the trajectory-selection criterion (mean over the valid tokens of a trajectory).
- `exgrpo_per_token_loss`: the mixed-policy objective per token (Eq. 4): fresh tokens use the loss type's clipped
  surrogate, a replayed token `-A * f(w)` against the log-probs recorded when it was collected.

The buffer that holds the trajectories is `zvp_trl.methods.exgrpo.buffer.ExperienceBuffer`.
"""

import math
import random

import torch


BUCKET_WEIGHTINGS = ("count", "accuracy")
# Earlier names of the two weightings, refused with a message that names the new ones ("paper" was the accuracy
# scale, "code" the count scale).
_RENAMED_BUCKET_WEIGHTINGS = {"paper": "accuracy", "code": "count"}


def check_bucket_weighting(mode: str, name: str = "mode") -> None:
    """Raises `ValueError` unless `mode` is one of `BUCKET_WEIGHTINGS`; the earlier names `"paper"` and `"code"` get a
    message naming their replacement."""
    if mode in BUCKET_WEIGHTINGS:
        return
    if mode in _RENAMED_BUCKET_WEIGHTINGS:
        raise ValueError(
            f"{name}={mode!r} was renamed: use {_RENAMED_BUCKET_WEIGHTINGS[mode]!r}. The weightings are 'count' "
            "(N(k; G/2, 1), sigma in units of the success count k, the official code's and the default) and "
            "'accuracy' (N(k/G; 0.5, 1), sigma in units of k/G, nearly uniform over the buckets)."
        )
    raise ValueError(f"{name} must be one of {', '.join(BUCKET_WEIGHTINGS)}, got {mode!r}.")


def exgrpo_bucket_weights(num_correct_values, num_generations: int, mode: str = "count") -> dict[int, float]:
    """Normalised sampling weight of every non-empty bucket.

    The paper's p ∝ N(Acc; μ=0.5, σ=1) is read, as in the official code (`WeightedBucketSampler._normal_mapping`), on
    the success-count scale: μ = G/2 and σ = 1 correct completion. For G=8 that gives buckets k=4, 3/5, 2/6, 1/7 the
    relative weights 1, 0.61, 0.14, 0.011 (the paper's σ=1.5 ablation is "near-uniform" only on this scale). Reading
    σ=1 in units of Acc = k/G instead makes every bucket nearly equally likely (0.137-0.147 each for G=8); that
    reading is the `"accuracy"` option, never the default.

    Args:
        num_correct_values (iterable of `int`):
            The latest number of correct completions `k` of every buffered question (repeats allowed); the distinct
            values are the non-empty buckets.
        num_generations (`int`):
            Group size `G`.
        mode (`str`, *optional*, defaults to `"count"`):
            `"count"`: weight ∝ exp(-(k - G/2)² / 2), i.e. N(k; G/2, 1) (the official code). `"accuracy"`: weight ∝
            exp(-(k/G - 0.5)² / 2), i.e. N(k/G; 0.5, 1). The earlier names `"paper"` (= `"accuracy"`) and `"code"`
            (= `"count"`) raise a `ValueError` naming the new ones.

    Returns:
        `dict[int, float]`: bucket `k` -> probability, summing to 1 (empty dict when there is no bucket).
    """
    check_bucket_weighting(mode)
    buckets = sorted({int(k) for k in num_correct_values})
    if not buckets:
        return {}
    if mode == "accuracy":
        raw = {k: math.exp(-((k / num_generations - 0.5) ** 2) / 2.0) for k in buckets}
    else:
        raw = {k: math.exp(-((k - num_generations / 2.0) ** 2) / 2.0) for k in buckets}
    total = sum(raw.values())
    return {k: w / total for k, w in raw.items()}


def policy_shaping(ratio, beta: float = 0.1):
    """`f(w) = w / (w + beta)`: ExGRPO's shaping of the importance ratio of replayed tokens (differentiable, works on
    tensors and floats). It damps large ratios (f < 1 always) and boosts the gradient of low-probability tokens."""
    return ratio / (ratio + beta)


def sample_bucket_counts(
    bucket_sizes: dict[int, int], probs: dict[int, float], n: int, generator: torch.Generator
) -> dict[int, int]:
    """How many questions each bucket gives: `Multinomial(n, probs)`, then the draws beyond a bucket's size are
    redistributed, again by a multinomial draw proportional to `probs`, among the buckets that still have room,
    until none is left. `n` is first capped at the total size. Deterministic for a given `generator` state.
    """
    keys = sorted(bucket_sizes)
    counts = {k: 0 for k in keys}
    remaining = min(n, sum(bucket_sizes[k] for k in keys))
    while remaining > 0:
        open_keys = [k for k in keys if counts[k] < bucket_sizes[k]]
        weights = torch.tensor([probs[k] for k in open_keys], dtype=torch.float64)
        if not (weights.sum() > 0):  # every open bucket has weight 0: uniform over them
            weights = torch.ones(len(open_keys), dtype=torch.float64)
        drawn = torch.multinomial(weights, remaining, replacement=True, generator=generator)
        draws = torch.bincount(drawn, minlength=len(open_keys)).tolist()
        remaining = 0
        for k, d in zip(open_keys, draws, strict=True):
            take = min(d, bucket_sizes[k] - counts[k])
            counts[k] += take
            remaining += d - take
    return counts


def sample_buffer_prompts(
    buckets: dict[int, list], probs: dict[int, float], n: int, generator: torch.Generator
) -> list:
    """Draws `min(n, buffered questions)` questions: bucket counts from `sample_bucket_counts`, then the questions of
    each bucket without replacement (uniformly, in the bucket's stored order permuted by `generator`). Returned in
    bucket order (ascending `k`)."""
    sizes = {k: len(v) for k, v in buckets.items() if v}
    counts = sample_bucket_counts(sizes, probs, n, generator)
    chosen = []
    for k in sorted(counts):
        if counts[k]:
            order = torch.randperm(sizes[k], generator=generator)[: counts[k]].tolist()
            chosen.extend(buckets[k][i] for i in order)
    return chosen


def replacements_for_retired(
    group_pids: list[str], retired: set[str], dataset_pids: list[str], rng: random.Random
) -> dict[int, int]:
    """`{group position: dataset index}` for the groups of `group_pids` whose question is in `retired`: dataset
    questions that are neither retired nor already in the batch, drawn uniformly without replacement with `rng`.
    Fewer (possibly none) when not enough such questions remain; the groups left out keep their question."""
    retired_groups = [g for g, pid in enumerate(group_pids) if pid in retired]
    if not retired_groups:
        return {}
    in_batch = set(group_pids)
    candidates = [i for i, pid in enumerate(dataset_pids) if pid not in retired and pid not in in_batch]
    picks = rng.sample(candidates, min(len(retired_groups), len(candidates)))
    return dict(zip(retired_groups, picks))


def mean_token_entropy(entropies: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-row mean of `entropies` over the valid tokens (`mask` 1) — the paper's H(o) (the official code averages
    over the pad positions instead, a bug this does not reproduce). Rows without a valid token get +inf."""
    mask = mask.to(entropies.dtype)
    count = mask.sum(dim=1)
    mean = (entropies * mask).sum(dim=1) / count.clamp(min=1.0)
    return torch.where(count > 0, mean, torch.full_like(mean, float("inf")))


# ---------------------------------------------------------------- the mixed-policy objective


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
    # Ratios, their clipping and f(w) in float32 at least: under bf16 the log-probs come from bf16 logits, and a ratio
    # formed in bf16 (steps of 1/128 near 1) can land on the other side of 1 + epsilon_high than its exact value.
    dtype = torch.promote_types(per_token_logps.dtype, torch.float32)
    per_token_logps, old_per_token_logps = per_token_logps.to(dtype), old_per_token_logps.to(dtype)
    recorded_logps, advantages = recorded_logps.to(dtype), advantages.to(dtype)
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
