# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from transformers import TrainingArguments
from trl import GRPOConfig


# transformers 5.25 renamed `gradient_checkpointing` to `activation_checkpointing` and warns (FutureWarning) whenever
# the old name carries the value; TRL's configs default the old name to True, so every run warned. Both names are
# accepted here: the value moves to the new name before transformers sees it. Before 5.25 there is only the old name.
ACTIVATION_CHECKPOINTING = "activation_checkpointing" in {f.name for f in dataclasses.fields(TrainingArguments)}


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

        > Parameters every method reads the same way

        correct_threshold (`float`, *optional*, defaults to `0.0`):
            A completion counts as correct when its reward (the weighted sum over the reward functions, as TRL sums
            them) is above this value; a zero-variance group is all-correct when its common reward is above it (the
            RL-ZVP paper's `R > 0`), all-wrong otherwise. Used by RL-ZVP, ERPO, ExGRPO, GRPO-DS and GRESO's
            statistics.
        zero_variance_atol (`float`, *optional*, defaults to `1e-6`):
            A group is zero-variance when the spread of its rewards (max - min) is at most this value. A group with an
            unscored (NaN) reward is never zero-variance.
        prompt_id_column (`str` or `None`, *optional*, defaults to `None`):
            Dataset column that identifies a prompt in per-prompt state (ERPO's history, GRESO's traces, ExGRPO's
            buffer). `None`: a hash of the prompt's content (see [`~zvp_trl.core.prompt_ids.prompt_id`]);
            identical prompts then share their state. With `remove_unused_columns=True` the column must survive column
            removal, so leave this `None` then.
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
    correct_threshold: float = field(
        default=0.0,
        metadata={
            "help": "A completion is correct when its weighted reward sum is above this value; a zero-variance group "
            "is all-correct when its common reward is."
        },
    )
    zero_variance_atol: float = field(
        default=1e-6, metadata={"help": "A group is zero-variance when max(R) - min(R) is at most this value."}
    )
    if ACTIVATION_CHECKPOINTING:
        gradient_checkpointing: bool | None = field(
            default=None,
            metadata={
                "help": "The name of activation_checkpointing before transformers 5.25, accepted without a warning "
                "(recipes keep it so they run on both). None: activation_checkpointing decides (TRL's default: on)."
            },
        )
        activation_checkpointing: bool | None = field(
            default=None,
            metadata={
                "help": "Recompute activations in the backward pass to save memory (transformers' gradient "
                "checkpointing). None: gradient_checkpointing if set, else on (TRL's default)."
            },
        )

    prompt_id_column: str | None = field(
        default=None,
        metadata={
            "help": "Dataset column identifying a prompt in per-prompt state (ERPO history, GRESO traces, ExGRPO "
            "buffer). None: a hash of the prompt content."
        },
    )
    init_from_probe: str | None = field(
        default=None,
        metadata={
            "help": "Folder of a finished probe of this run's model and data (recipes/probe.py --output_dir): the "
            "methods' per-prompt state starts from it instead of empty (ERPO's temperatures as if the probe were a "
            "first epoch, GRESO's traces, ExGRPO's buffer of correct trajectories). None: start empty. A probe of "
            "another model, data set or num_generations is refused."
        },
    )

    def __post_init__(self):
        if ACTIVATION_CHECKPOINTING:
            if self.activation_checkpointing is None:
                self.activation_checkpointing = True if self.gradient_checkpointing is None else self.gradient_checkpointing
            self.gradient_checkpointing = None  # transformers mirrors the new name into it, without a warning
        if self.zero_variance_atol < 0:
            raise ValueError(
                f"zero_variance_atol must be >= 0, got {self.zero_variance_atol}. The default is 1e-6 (a group is "
                "zero-variance when its rewards differ by at most this)."
            )
        if self.init_from_probe is not None and not Path(self.init_from_probe).is_dir():
            raise ValueError(
                f"init_from_probe={self.init_from_probe!r} is not a folder: give the --output_dir of a finished "
                "recipes/probe.py run, or leave init_from_probe unset."
            )
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
