# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
from dataclasses import dataclass, field

from trl import GRPOConfig


@dataclass
class ZVPBaseConfig(GRPOConfig):
    r"""
    Parameters every zvp_trl trainer shares on top of [`~trl.GRPOConfig`]; each method's config subclasses it.

    Parameters:
        max_rollouts (`int` or `None`, *optional*, defaults to `None`):
            Stop training at the end of the first optimizer step after which at least this many completions were
            generated (all processes together; prompts skipped before rollout are not counted). `None` means no
            rollout budget: `max_steps` / `num_train_epochs` decide. This makes "same rollout budget" comparisons
            between methods one flag; "same gradient steps" is `max_steps`.
    """

    max_rollouts: int | None = field(
        default=None,
        metadata={
            "help": "Stop training once this many completions were generated (all processes; checked after each "
            "optimizer step). None: no rollout budget."
        },
    )

    def __post_init__(self):
        # Checked before GRPOConfig's own checks, which divide by num_generations (0 gave a ZeroDivisionError).
        if self.num_generations is None or self.num_generations < 2:
            raise ValueError(
                f"num_generations must be >= 2, got {self.num_generations}: group advantages and zero-variance groups "
                "are defined over the num_generations completions of a prompt. Set num_generations >= 2 (the papers "
                "use 8)."
            )
        if self.max_rollouts is not None and self.max_rollouts < 1:
            raise ValueError(
                f"max_rollouts must be a positive number of completions or None (no budget), got {self.max_rollouts}."
            )
        super().__post_init__()


@dataclass
class GRPOBaselineConfig(ZVPBaseConfig):
    r"""Configuration of [`GRPOBaselineTrainer`]: plain GRPO with the package's rollout accounting and budget."""
