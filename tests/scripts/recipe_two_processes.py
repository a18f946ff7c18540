# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""Reward of the recipe smoke runs of tests/test_recipes.py, in process and under a two-process launch of
`recipes/train.py`, which imports it by its dotted path `recipe_two_processes.mixed_reward` (this folder on
PYTHONPATH / sys.path).

The embedded model of the smoke runs is warm-started for a few steps only, so the recipes' `accuracy` reward is 0 for
every completion: every group is all-wrong, and dynamic sampling (GRPO-DS, GRESO) would re-sample for ever. Added to
it, this reward gives each completion a deterministic pseudo-random 0 or 1 from a hash of its text, so most groups
are mixed, some zero-variance, and every method's code path runs.
"""

import hashlib


def mixed_reward(completions, **kwargs) -> list[float]:
    rewards = []
    for completion in completions:
        text = completion if isinstance(completion, str) else completion[-1]["content"]
        rewards.append(float(hashlib.sha256(text.encode()).digest()[0] % 2))
    return rewards
