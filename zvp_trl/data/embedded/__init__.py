# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""The embedded task: an offline arithmetic-reasoning task, its tokenizer and a tiny warm-started Qwen3 model."""

from .model import (
    CACHE_ENV_VAR,
    VLLM_EMBEDDED_SPEC,
    EmbeddedModelSpec,
    build_embedded_model,
    cache_root,
    get_embedded_model_path,
)
from .task import ArithmeticProblem, generate_problems, make_dataset, make_split, sample_problem
from .tokenizer import build_tokenizer


__all__ = [
    "CACHE_ENV_VAR",
    "ArithmeticProblem",
    "EmbeddedModelSpec",
    "build_embedded_model",
    "build_tokenizer",
    "cache_root",
    "generate_problems",
    "get_embedded_model_path",
    "make_dataset",
    "make_split",
    "sample_problem",
    "VLLM_EMBEDDED_SPEC",
]
