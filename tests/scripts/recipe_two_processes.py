# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""Reward of the recipe smoke runs of tests/test_recipes.py, in process and under a two-process launch of
`recipes/train.py`, which imports it by its dotted path `recipe_two_processes.mixed_reward` (this folder on
PYTHONPATH / sys.path).

The embedded model of the smoke runs is warm-started for a few steps only, so the recipes' `accuracy` reward is 0 for
every completion: every group is all-wrong, and dynamic sampling (GRPO-DS, GRESO) would re-sample for ever. Added to
it, this reward gives each completion a deterministic pseudo-random 0 or 1 from a hash of its text, so most groups
are mixed, some zero-variance, and every method's code path runs.

With `ZVP_TEST_PROBE_DIR` set, each process also writes `process<index>.json` there on its first call: what its
Accelerator runs (distributed type, process count and index, backend, FSDP version, DeepSpeed ZeRO stage and
whether zvp_trl.launch.cpu_deepspeed promoted the state to DeepSpeed), so
the tests assert the mode from inside the launched processes.
"""

import hashlib
import json
import os
from pathlib import Path


def _probe() -> None:
    folder = os.environ.get("ZVP_TEST_PROBE_DIR")
    if not folder:
        return
    from accelerate.state import AcceleratorState

    from zvp_trl.launch.cpu_deepspeed import cpu_deepspeed_promoted

    state = AcceleratorState()
    path = Path(folder) / f"process{state.process_index}.json"
    if path.exists():
        return
    plugin = getattr(state, "fsdp_plugin", None)
    probe = {
        "distributed_type": state.distributed_type.value,
        "num_processes": state.num_processes,
        "process_index": state.process_index,
        "world_size_env": int(os.environ.get("WORLD_SIZE", "1")),
        "backend": state.backend,
        "fsdp_version": getattr(plugin, "fsdp_version", None),
        "zero_stage": state.deepspeed_plugin.zero_stage if state.deepspeed_plugin is not None else None,
        "deepspeed_promoted_by_zvp_trl": cpu_deepspeed_promoted(),
        "mixed_precision": str(state.mixed_precision),
        "deepspeed_bf16": (
            str(state.deepspeed_plugin.deepspeed_config.get("bf16", {}).get("enabled")).lower() == "true"
            if state.deepspeed_plugin is not None
            else None
        ),
    }
    path.write_text(json.dumps(probe))


def mixed_reward(completions, **kwargs) -> list[float]:
    _probe()
    rewards = []
    for completion in completions:
        text = completion if isinstance(completion, str) else completion[-1]["content"]
        rewards.append(float(hashlib.sha256(text.encode()).digest()[0] % 2))
    return rewards
