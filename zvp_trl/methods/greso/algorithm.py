# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""GRESO's pre-rollout selective skipping as pure functions and a JSON-serialisable state (no trainer inside).

GRESO ("Act Only When It Pays", arXiv 2506.02177; rules taken from its official code, `presampling_selector.py`) keeps,
for every prompt, the trace of the mean reward of each of its groups. A prompt whose last `z` records are easy (mean
reward `>= easy_threshold`, 0.98) is skipped before rollout with probability `1 - max(p_easy ** z, floor)`; otherwise, if
its last record is hard (mean reward `<= hard_threshold`, 0.11), with probability `1 - max(p_hard ** z, floor)` where
`z` counts its trailing hard records. `p_easy` and `p_hard` adapt once per training step by `+/- delta_p` so that the
fractions of all-correct / all-wrong groups rolled out approach their targets (1/12 and 1/6 of the groups in the
official setup).

The thresholds apply to the group's mean reward, not to its number of correct completions. The official values fit
its reward scale (1 correct, 0.1 wrong answer, 0 format error). With 0/1 rewards and `G` completions, easy means all
correct for `G < 50`, and hard means at most `floor(0.11 * G)` correct: all wrong for `G < 10` (G=8), but `k <= 1` at
G=16 (1/16 = 0.0625 <= 0.11), `k <= 3` at G=32.
"""

import math
import random


EASY_THRESHOLD = 0.98  # official: a record counts towards the easy rule when its mean reward is >= 0.98
HARD_THRESHOLD = 0.11  # official: a record counts towards the hard rule when its mean reward is <= 0.11


def greso_skip_probability(consecutive: int, p: float, floor: float = 0.01) -> float:
    """`1 - max(p ** consecutive, floor)`: the probability of skipping a prompt whose last `consecutive` records were
    all easy (or all hard); 0 when `consecutive == 0` (a prompt with no such record is never skipped)."""
    if consecutive < 0:
        raise ValueError(f"consecutive must be >= 0, got {consecutive}.")
    if consecutive == 0:
        return 0.0
    return 1.0 - max(p**consecutive, floor)


def trailing_count(trace, condition) -> int:
    """Number of consecutive records at the end of `trace` for which `condition(record)` is true."""
    count = 0
    for record in reversed(trace):
        if not condition(record):
            break
        count += 1
    return count


def update_exploration_probability(
    p: float, ratio: float, target: float, delta: float = 0.01, p_min: float = 0.05, p_max: float = 0.95
) -> float:
    """GRESO's adaptive rule for `p_easy` / `p_hard`: when the observed fraction of groups of that kind reached its
    target (`ratio >= target`), lower `p` by `delta` (skip such prompts more), else raise it, clipped to
    `[p_min, p_max]`."""
    if ratio >= target:
        return max(p - delta, p_min)
    return min(p + delta, p_max)


def next_round_size(
    remaining_samples: int,
    zero_variance_ratio: float,
    num_generations: int,
    default_size: int,
    min_size: int = 64,
    beta: float = 1.25,
) -> tuple[int, bool]:
    """GRESO's size of the next generation round, in prompts, and whether it is the last round of the batch.

    The official rule (`ray_trainer.py`): the estimate `floor(remaining_samples / (1 - zvr) / num_generations * beta)`
    prompts, where `remaining_samples` is the number of completions the batch still misses and `zvr` the last round's
    zero-variance fraction; the round rolls out `max(min_size, min(default_size, estimate))` prompts, and when the
    estimate is at most `default_size` it is the last round: the batch trains after it even if it is still short. A
    round with only zero-variance groups (`zvr = 1`, where the official code divides by zero) asks for a full,
    non-final round.
    """
    if remaining_samples < 0 or num_generations < 1 or default_size < 1 or min_size < 1 or beta <= 0:
        raise ValueError(
            f"Invalid round-size inputs: remaining_samples={remaining_samples}, num_generations={num_generations}, "
            f"default_size={default_size}, min_size={min_size}, beta={beta}."
        )
    if zero_variance_ratio >= 1.0:
        return default_size, False
    estimate = math.floor(remaining_samples / (1.0 - zero_variance_ratio) / num_generations * beta)
    return max(min_size, min(default_size, estimate)), estimate <= default_size


class GRESOState:
    """Per-prompt traces of group mean rewards plus the two adaptive exploration probabilities, and the counter of the
    skip RNG.

    Every process holds an identical copy: traces are updated from gathered rewards and ids, and skip decisions use a
    generator seeded from `seed` and `draws` (never the global RNG, which TRL seeds per device).

    A trace record is a group's mean reward, or `None` for a group with an unscored completion (it counts as neither
    easy nor hard, so it breaks both runs). The thresholds are settings, not state: they are not checkpointed.

    Args:
        p_easy (`float`, *optional*, defaults to `0.5`): initial exploration probability of easy prompts.
        p_hard (`float`, *optional*, defaults to `0.5`): initial exploration probability of hard prompts.
        floor (`float`, *optional*, defaults to `0.01`): a prompt is always explored with at least this probability.
        seed (`int`, *optional*, defaults to `0`): seed of the skip decisions.
        easy_threshold (`float`, *optional*, defaults to `0.98`): a record is easy when its mean reward is at least
            this value (official).
        hard_threshold (`float`, *optional*, defaults to `0.11`): a record is hard when its mean reward is at most
            this value (official).
    """

    def __init__(
        self,
        p_easy: float = 0.5,
        p_hard: float = 0.5,
        floor: float = 0.01,
        seed: int = 0,
        easy_threshold: float = EASY_THRESHOLD,
        hard_threshold: float = HARD_THRESHOLD,
    ):
        self.traces: dict[str, list[float | None]] = {}
        self.p_easy = float(p_easy)
        self.p_hard = float(p_hard)
        self.floor = float(floor)
        self.seed = int(seed)
        self.easy_threshold = float(easy_threshold)
        self.hard_threshold = float(hard_threshold)
        self.draws = 0  # number of skip decisions taken so far (advances the RNG stream)

    def is_easy(self, record: float | None) -> bool:
        return record is not None and record >= self.easy_threshold

    def is_hard(self, record: float | None) -> bool:
        return record is not None and record <= self.hard_threshold

    def record(self, prompt_id: str, mean_reward: float | None) -> None:
        """Append a group's mean reward to the prompt's trace (`None` or NaN: the group had an unscored completion)."""
        if mean_reward is not None:
            if isinstance(mean_reward, bool) or not isinstance(mean_reward, (int, float)):
                raise TypeError(f"mean_reward must be a float or None, got {type(mean_reward).__name__}.")
            mean_reward = None if math.isnan(mean_reward) else float(mean_reward)
            if mean_reward is not None and math.isinf(mean_reward):
                raise ValueError(f"mean_reward must be finite, got {mean_reward}.")
        self.traces.setdefault(str(prompt_id), []).append(mean_reward)

    def skip_probability(self, prompt_id: str) -> float:
        """Probability of skipping the prompt before its next rollout: the easy rule when its trailing records are
        easy, else the hard rule when its last record is hard, else 0 (also for unseen prompts)."""
        trace = self.traces.get(str(prompt_id), [])
        z_easy = trailing_count(trace, self.is_easy)
        if z_easy > 0:
            return greso_skip_probability(z_easy, self.p_easy, self.floor)
        z_hard = trailing_count(trace, self.is_hard)
        return greso_skip_probability(z_hard, self.p_hard, self.floor)

    def decide_skips(self, prompt_ids: list[str]) -> list[bool]:
        """One skip decision per prompt (True = skip), from a generator seeded with `(seed, draws)`: identical on every
        process that holds the same state and asks about the same prompts in the same order."""
        rng = random.Random(f"greso-{self.seed}-{self.draws}")
        self.draws += 1
        return [rng.random() < self.skip_probability(pid) for pid in prompt_ids]

    def update_probabilities(
        self,
        easy_ratio: float,
        hard_ratio: float,
        easy_target: float = 1 / 12,
        hard_target: float = 1 / 6,
        delta: float = 0.01,
        p_min: float = 0.05,
        p_max: float = 0.95,
    ) -> None:
        """Adapt `p_easy` / `p_hard` once, from the fractions of all-correct / all-wrong groups of a training step."""
        self.p_easy = update_exploration_probability(self.p_easy, easy_ratio, easy_target, delta, p_min, p_max)
        self.p_hard = update_exploration_probability(self.p_hard, hard_ratio, hard_target, delta, p_min, p_max)

    def state_dict(self) -> dict:
        return {
            "traces": {pid: list(trace) for pid, trace in self.traces.items()},
            "trace_values": "mean_reward",
            "p_easy": self.p_easy,
            "p_hard": self.p_hard,
            "floor": self.floor,
            "seed": self.seed,
            "draws": self.draws,
        }

    def load_state_dict(self, state: dict) -> None:
        if state.get("trace_values") == "mean_reward":
            self.traces = {
                str(pid): [None if r is None else float(r) for r in trace] for pid, trace in state["traces"].items()
            }
        else:  # earlier checkpoints recorded the outcome: +1 all-correct, -1 all-wrong, 0 mixed
            outcome = {1: 1.0, -1: 0.0, 0: None}
            self.traces = {str(pid): [outcome[int(r)] for r in trace] for pid, trace in state["traces"].items()}
        self.p_easy = float(state["p_easy"])
        self.p_hard = float(state["p_hard"])
        self.floor = float(state.get("floor", self.floor))
        self.seed = int(state.get("seed", self.seed))
        self.draws = int(state.get("draws", 0))
