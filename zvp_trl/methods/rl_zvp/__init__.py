# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""RL-ZVP (arXiv 2509.21880): entropy-guided token advantages for zero-variance groups. `algorithm` holds the pure
functions, `config` the `RLZVPConfig`, `part` the `RLZVPPart`; this module is the method's one registration."""

from ...core.papers import arxiv_paper
from ...core.registry import MethodSpec, register
from .config import RLZVPConfig
from .part import RLZVPPart


PAPER = arxiv_paper(
    "le2025noprompt",
    "No Prompt Left Behind: Exploiting Zero-Variance Prompts in LLM Reinforcement Learning via Entropy-Guided Advantage Shaping",
    "Thanh-Long V. Le and Myeongho Jeon and Kim Vu and Viet Lai and Eunho Yang",
    "2509.21880",
)

TRAINER_DOC = """
    Trainer for RL-ZVP, from [No Prompt Left Behind: Exploiting Zero-Variance Prompts in LLM Reinforcement Learning via
    Entropy-Guided Advantage Shaping](https://huggingface.co/papers/2509.21880).

    The only change w.r.t. [`~trl.GRPOTrainer`] is the advantage of zero-variance groups (all completions of a prompt
    got the same reward), which GRPO leaves at zero. They get token-level advantages from the current policy's
    per-token entropy `H`, detached: `alpha * H_t` for an all-correct group and `-alpha * (max_k H_k - H_t)` for an
    all-wrong group. The entropy comes from the policy forward pass that the loss already runs (no extra forward),
    at the sampling temperature, recomputed on every micro-batch and iteration. Zero-variance is decided on the
    rewards of the whole group, gathered over all processes. Other groups keep GRPO's advantage exactly.

    Args are those of [`~trl.GRPOTrainer`]; `args` is an [`RLZVPConfig`].
    """

SPEC = MethodSpec(
    name="rl_zvp", display="RL-ZVP", class_stem="RLZVP", part=RLZVPPart, config=RLZVPConfig,
    description="RL-ZVP: entropy-guided token advantages for zero-variance groups (arXiv 2509.21880)",
    paper=PAPER, tags=("rl-zvp",), precedence=50, trainer_doc=TRAINER_DOC, module=__name__,
)
RLZVPTrainer = register(SPEC)
