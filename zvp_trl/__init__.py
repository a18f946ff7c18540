# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""zvp_trl: learning from zero-variance prompts in RLVR, on top of TRL's `GRPOTrainer`."""

__version__ = "0.1.0.dev0"

from .algorithms.erpo import PromptTemperatureHistory, erpo_next_temperature
from .algorithms.exgrpo import exgrpo_bucket_weights, policy_shaping
from .algorithms.exgrpo_buffer import ExperienceBuffer
from .algorithms.greso import GRESOState, greso_skip_probability
from .algorithms.prompt_ids import prompt_id
from .algorithms.rl_zvp import rl_zvp_token_advantages, zero_variance_signs
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
from .trainer.base import GRPOBaselineTrainer
from .trainer.base_config import GRPOBaselineConfig, ZVPBaseConfig
from .trainer.dynamic_sampling_config import GRPODSConfig
from .trainer.dynamic_sampling_trainer import GRPODSTrainer
from .trainer.erpo_config import ERPOConfig, ERPODSConfig, ERPORLZVPConfig
from .trainer.erpo_trainer import ERPODSTrainer, ERPORLZVPTrainer, ERPOTrainer
from .trainer.exgrpo_config import ExGRPOConfig, ExGRPORLZVPConfig
from .trainer.exgrpo_trainer import ExGRPORLZVPTrainer, ExGRPOTrainer
from .trainer.greso_config import GRESOConfig
from .trainer.greso_trainer import GRESOTrainer
from .trainer.registry import ALGORITHMS, get_algorithm
from .trainer.rl_zvp_config import RLZVPConfig
from .trainer.rl_zvp_trainer import RLZVPTrainer


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
