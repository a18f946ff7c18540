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
        max_rollouts_stop (`str`, *optional*, defaults to `"generation"`):
            When the budget stops training: `"generation"` at the end of the generation batch that spent it (after
            its last optimizer step, `steps_per_generation * num_iterations / gradient_accumulation_steps` steps per
            batch), so no generated completion goes unused, as the papers' "-r" runs did (verl finishes the
            iteration); `"step"` at the end of the optimizer step that spent it. The same when a generation batch
            is one optimizer step.
    """

    max_rollouts: int | None = field(
        default=None,
        metadata={
            "help": "Stop training once this many completions were generated (all processes; checked after each "
            "optimizer step). None: no rollout budget."
        },
    )

    max_rollouts_stop: str = field(
        default="generation",
        metadata={
            "help": "Stop on the budget at the end of the generation batch that spent it ('generation') or of the "
            "optimizer step ('step').",
            "choices": ["generation", "step"],
        },
    )

    def __post_init__(self):
        if self.max_rollouts_stop not in ("generation", "step"):
            raise ValueError(f"max_rollouts_stop must be 'generation' or 'step', got {self.max_rollouts_stop!r}.")
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
