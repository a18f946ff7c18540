# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""zvp_trl: learning from zero-variance prompts in RLVR, on top of TRL's `GRPOTrainer`."""

__version__ = "0.1.0.dev0"

from . import methods  # noqa: F401 (registers the package's methods)
from .core.adapter import GRPOBaselineTrainer
from .core.composition import ALGORITHMS, get_algorithm
from .core.config import GRPOBaselineConfig, ZVPBaseConfig
from .core.parts import MethodPart, PartContext
from .core.prompt_ids import prompt_id
from .core.registry import MethodSpec, NamedCombination, register
from .core.zero_variance import zero_variance_signs
from .data.math_datasets import BOXED_PROMPT_TEMPLATE, DATASETS, format_prompt, load_math_dataset
from .data.rewards import (
    accuracy_reward,
    boxed_format_reward,
    extract_boxed_answer,
    get_soft_overlong_punishment,
    make_accuracy_reward,
    math_verify_accuracy,
)
from .evaluation.accuracy import evaluate_accuracy, pass_at_k, sample_completions
from .methods.erpo import ERPOConfig, ERPODSConfig, ERPODSTrainer, ERPORLZVPConfig, ERPORLZVPTrainer, ERPOTrainer
from .methods.erpo.algorithm import PromptTemperatureHistory, erpo_next_temperature
from .methods.exgrpo import ExGRPOConfig, ExGRPORLZVPConfig, ExGRPORLZVPTrainer, ExGRPOTrainer
from .methods.exgrpo.algorithm import exgrpo_bucket_weights, policy_shaping
from .methods.exgrpo.buffer import ExperienceBuffer
from .methods.greso import GRESOConfig, GRESOTrainer
from .methods.greso.algorithm import GRESOState, greso_skip_probability
from .methods.grpo_ds import GRPODSConfig, GRPODSTrainer
from .methods.rl_zvp import RLZVPConfig, RLZVPTrainer
from .methods.rl_zvp.algorithm import rl_zvp_token_advantages
from .probing import ProbeArguments, probe


__all__ = [
    "ALGORITHMS",
    "ERPOConfig",
    "ERPODSConfig",
    "ERPODSTrainer",
    "ERPORLZVPConfig",
    "ERPORLZVPTrainer",
    "ERPOTrainer",
    "GRPODSConfig",
    "GRPODSTrainer",
    "ExGRPOConfig",
    "ExGRPORLZVPConfig",
    "ExGRPORLZVPTrainer",
    "ExGRPOTrainer",
    "ExperienceBuffer",
    "GRESOConfig",
    "GRESOState",
    "GRESOTrainer",
    "GRPOBaselineConfig",
    "GRPOBaselineTrainer",
    "PromptTemperatureHistory",
    "ZVPBaseConfig",
    "erpo_next_temperature",
    "ProbeArguments",
    "probe",
    "prompt_id",
    "RLZVPConfig",
    "RLZVPTrainer",
    "BOXED_PROMPT_TEMPLATE",
    "DATASETS",
    "accuracy_reward",
    "boxed_format_reward",
    "evaluate_accuracy",
    "exgrpo_bucket_weights",
    "extract_boxed_answer",
    "format_prompt",
    "get_algorithm",
    "MethodPart",
    "MethodSpec",
    "NamedCombination",
    "PartContext",
    "register",
    "get_soft_overlong_punishment",
    "greso_skip_probability",
    "load_math_dataset",
    "make_accuracy_reward",
    "math_verify_accuracy",
    "pass_at_k",
    "policy_shaping",
    "rl_zvp_token_advantages",
    "sample_completions",
    "zero_variance_signs",
]
