# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""Registry of the training algorithms `recipes/train.py` can run: name -> (config class, trainer class)."""

import importlib
from dataclasses import dataclass


@dataclass(frozen=True)
class Algorithm:
    name: str
    config: str  # "module:Class", imported lazily so that listing algorithms stays cheap
    trainer: str
    description: str

    def load(self) -> tuple[type, type]:
        return _import(self.config), _import(self.trainer)


def _import(path: str) -> type:
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)


ALGORITHMS: dict[str, Algorithm] = {
    algorithm.name: algorithm
    for algorithm in [
        Algorithm("grpo", "trl:GRPOConfig", "trl:GRPOTrainer", "plain GRPO (zero-variance groups get no signal)"),
        Algorithm(
            "rl_zvp",
            "zvp_trl.trainer.rl_zvp_config:RLZVPConfig",
            "zvp_trl.trainer.rl_zvp_trainer:RLZVPTrainer",
            "RL-ZVP: entropy-guided token advantages for zero-variance groups (arXiv 2509.21880)",
        ),
    ]
}

DEFAULT_ALGORITHM = "rl_zvp"


def get_algorithm(name: str) -> Algorithm:
    if name not in ALGORITHMS:
        raise ValueError(f"Unknown algorithm {name!r}. Choose one of: {', '.join(ALGORITHMS)} (--algorithm NAME).")
    return ALGORITHMS[name]
