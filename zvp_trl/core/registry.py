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
        Algorithm(
            "grpo",
            "zvp_trl.core.config:GRPOBaselineConfig",
            "zvp_trl.core.adapter:GRPOBaselineTrainer",
            "plain GRPO (TRL's GRPOTrainer; zero-variance groups get no signal), with rollout accounting",
        ),
        Algorithm(
            "rl_zvp",
            "zvp_trl.methods.rl_zvp.config:RLZVPConfig",
            "zvp_trl.methods.rl_zvp.part:RLZVPTrainer",
            "RL-ZVP: entropy-guided token advantages for zero-variance groups (arXiv 2509.21880)",
        ),
        Algorithm(
            "erpo",
            "zvp_trl.methods.erpo.config:ERPOConfig",
            "zvp_trl.methods.erpo.part:ERPOTrainer",
            "ERPO: residual (all-correct) prompts are re-sampled at a raised per-prompt temperature (arXiv 2511.04800)",
        ),
        Algorithm(
            "erpo_rl_zvp",
            "zvp_trl.methods.erpo.config:ERPORLZVPConfig",
            "zvp_trl.methods.erpo.part:ERPORLZVPTrainer",
            "ERPO's per-prompt temperatures + RL-ZVP's entropy-guided advantages, in one training",
        ),
        Algorithm(
            "erpo_ds",
            "zvp_trl.methods.erpo.config:ERPODSConfig",
            "zvp_trl.methods.erpo.part:ERPODSTrainer",
            "ERPO (per-prompt temperatures, RA) on DAPO's dynamic sampling, the combination of the ERPO paper",
        ),
        Algorithm(
            "grpo_ds",
            "zvp_trl.methods.grpo_ds.config:GRPODSConfig",
            "zvp_trl.methods.grpo_ds.part:GRPODSTrainer",
            "GRPO-DS: DAPO dynamic sampling, zero-variance groups dropped and re-sampled (arXiv 2503.14476)",
        ),
        Algorithm(
            "greso",
            "zvp_trl.methods.greso.config:GRESOConfig",
            "zvp_trl.methods.greso.part:GRESOTrainer",
            "GRESO: skip likely zero-variance prompts before rollout, then dynamic sampling (arXiv 2506.02177)",
        ),
        Algorithm(
            "exgrpo",
            "zvp_trl.methods.exgrpo.config:ExGRPOConfig",
            "zvp_trl.methods.exgrpo.part:ExGRPOTrainer",
            "ExGRPO: replay of partially solved prompts' correct trajectories, bucketed by accuracy (arXiv 2510.02245)",
        ),
        Algorithm(
            "exgrpo_rl_zvp",
            "zvp_trl.methods.exgrpo.config:ExGRPORLZVPConfig",
            "zvp_trl.methods.exgrpo.part:ExGRPORLZVPTrainer",
            "ExGRPO's replay + RL-ZVP's entropy-guided advantages for fresh zero-variance groups",
        ),
    ]
}

DEFAULT_ALGORITHM = "rl_zvp"

# TRL's own trainer, the reference every benchmark measures the algorithms against.
TRL_GRPO = Algorithm("trl_grpo", "trl:GRPOConfig", "trl:GRPOTrainer", "TRL's GRPOTrainer, unchanged (the reference)")


def with_trl_reference() -> dict[str, Algorithm]:
    """`trl_grpo` (TRL's `GRPOTrainer`) first, then every registered algorithm: what the benchmarks compare."""
    return {TRL_GRPO.name: TRL_GRPO, **ALGORITHMS}


def get_algorithm(name: str) -> Algorithm:
    """The algorithm of that name: a registered one, or methods joined by `+` (`erpo+exgrpo+rl_zvp`, see
    `zvp_trl.core.composition`; a combination that is a registered trainer is that trainer)."""
    if "+" in name:
        from .composition import ComposedAlgorithm, check_combination, method_names, registered_name

        methods = method_names(name)
        check_combination(methods)
        registered = registered_name(methods)
        if registered is not None:
            return ALGORITHMS[registered]
        canonical = "+".join(methods)
        return ComposedAlgorithm(canonical, "", "", f"the methods {', '.join(methods)}, composed")
    if name not in ALGORITHMS:
        raise ValueError(
            f"Unknown algorithm {name!r}. Choose one of: {', '.join(ALGORITHMS)} (--algorithm NAME), or combine "
            "methods with '+' (e.g. erpo+exgrpo+rl_zvp)."
        )
    return ALGORITHMS[name]
