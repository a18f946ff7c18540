# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""Building blocks of ExGRPO ("Learning to Reason from Experience", arXiv 2510.02245), free of any trainer.

- `exgrpo_bucket_weights`: sampling probability of each non-empty bucket of buffered questions (bucket = the
  question's latest number of correct completions `k` out of `G`), N(k; G/2, 1) by default as in the official code.
- `policy_shaping`: the shaping `f(w) = w / (w + beta)` applied to the importance ratio of replayed tokens.
- `sample_bucket_counts` / `sample_buffer_prompts`: how many questions each bucket gives to a batch (multinomial,
  overflow redistributed) and which ones (without replacement within a bucket).
- `replacements_for_retired`: fresh questions that stand in for retired ones drawn by the dataset sampler.
- `mean_token_entropy`: the trajectory-selection criterion (mean over the valid tokens of a trajectory).
- `ExperienceBuffer`: the replicated, bounded, JSON-checkpointable store of correct trajectories.
"""

import math
import random
from collections import OrderedDict

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


class ExperienceBuffer:
    """Replay buffer of correct trajectories, keyed by a stable prompt id (string).

    Per buffered prompt: `k` (its latest number of correct completions out of `G` with `0 < k < G`: a group with no
    correct completion leaves it unchanged), the dataset row (to rebuild the prompt; must be JSON-serialisable), the
    prompt token ids, and a list of trajectories, each
    `{"ids": completion token ids, "logps": per-token log-probs recorded when it was collected}`. Retired prompts
    (a group with all `G` correct) are removed and remembered in `retired`; they are never buffered again.

    Bounds and eviction: at most `max_prompts` prompts (`None`: unbounded) — when a new prompt would exceed it, the
    least recently updated prompt is evicted (every update with `0 < k < G` moves a prompt to the most-recent end);
    at most `max_trajectories` trajectories per prompt — the oldest are dropped first. Trajectories are deduplicated by their
    token ids (a duplicate keeps its first recorded log-probs). The retired set only holds ids.

    Every update is deterministic, so processes that apply the same (gathered) updates in the same order hold the
    same buffer. `state_dict()` is JSON-safe (lists, ints, floats, strings).
    """

    def __init__(self, max_prompts: int | None = None, max_trajectories: int | None = None):
        self.max_prompts = max_prompts
        self.max_trajectories = max_trajectories
        self.entries: OrderedDict[str, dict] = OrderedDict()
        self.retired: set[str] = set()

    def __len__(self) -> int:
        return len(self.entries)

    def __contains__(self, pid) -> bool:
        return pid in self.entries

    def buckets(self) -> dict[int, list[str]]:
        """`k` -> buffered prompt ids with that latest `k` (in buffer order), non-empty buckets only."""
        out: dict[int, list[str]] = {}
        for pid, entry in self.entries.items():
            if entry["trajectories"]:
                out.setdefault(entry["k"], []).append(pid)
        return out

    def retire(self, pid: str) -> None:
        self.entries.pop(pid, None)
        self.retired.add(pid)

    def update(
        self,
        pid: str,
        k: int,
        num_generations: int,
        row: dict | None = None,
        prompt_ids: list[int] | None = None,
        trajectories: list[tuple[list[int], list[float]]] = (),
    ) -> None:
        """Applies one group's outcome: `k == G` retires the prompt; `k == 0` changes nothing (a buffered prompt keeps
        its bucket and its place in the eviction order, as the official code skips bucket updates at `k <= 0`, so no
        buffered prompt is ever in a bucket 0); otherwise a buffered prompt moves to bucket `k`, and an unbuffered,
        non-retired prompt with at least one trajectory enters the buffer. New correct `trajectories` (`(ids, logps)`
        pairs) are added to a (non-retired) buffered prompt."""
        if k >= num_generations:
            self.retire(pid)
            return
        if pid in self.retired or k <= 0:
            return
        entry = self.entries.get(pid)
        if entry is None:
            if not trajectories:
                return
            entry = {"k": int(k), "row": row, "prompt_ids": list(prompt_ids or []), "trajectories": []}
            self.entries[pid] = entry
        entry["k"] = int(k)
        self.entries.move_to_end(pid)
        seen = {tuple(t["ids"]) for t in entry["trajectories"]}
        for ids, logps in trajectories:
            key = tuple(int(i) for i in ids)
            if key in seen or not key:
                continue
            seen.add(key)
            entry["trajectories"].append({"ids": list(key), "logps": [float(x) for x in logps]})
        if self.max_trajectories is not None and len(entry["trajectories"]) > self.max_trajectories:
            del entry["trajectories"][: len(entry["trajectories"]) - self.max_trajectories]
        while self.max_prompts is not None and len(self.entries) > self.max_prompts:
            self.entries.popitem(last=False)

    def state_dict(self) -> dict:
        return {
            "entries": [[pid, entry] for pid, entry in self.entries.items()],
            "retired": sorted(self.retired),
        }

    def load_state_dict(self, state: dict) -> None:
        self.entries = OrderedDict((pid, entry) for pid, entry in state["entries"])
        self.retired = set(state["retired"])
