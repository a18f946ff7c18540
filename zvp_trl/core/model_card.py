# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""The model card's "Method hyperparameters" section, added to TRL's card by every zvp_trl trainer."""

import dataclasses

from trl import GRPOConfig


# GRPOConfig fields every method's model card records next to the method's own fields.
CARD_GRPO_FIELDS = (
    "learning_rate",
    "lr_scheduler_type",
    "num_generations",
    "per_device_train_batch_size",
    "gradient_accumulation_steps",
    "steps_per_generation",
    "num_iterations",
    "max_completion_length",
    "temperature",
    "top_p",
    "epsilon",
    "epsilon_high",
    "loss_type",
    "scale_rewards",
    "beta",
    "seed",
)


def hyperparameters_markdown(trainer_name: str, args) -> str:
    """The model card's "Method hyperparameters" section: the method's own config fields (those its config adds to
    `GRPOConfig`) and the key GRPO fields, with their values in this run."""
    grpo_fields = {f.name for f in dataclasses.fields(GRPOConfig)}
    own = [f.name for f in dataclasses.fields(args) if f.name not in grpo_fields]
    lines = [
        "## Method hyperparameters",
        "",
        f"Trained with zvp_trl's `{trainer_name}` (`{type(args).__name__}`), on top of TRL's `GRPOTrainer`.",
        "",
        "| field | value |",
        "|---|---|",
    ]
    lines += [f"| `{name}` | `{getattr(args, name)!r}` |" for name in [*own, *CARD_GRPO_FIELDS]]
    return "\n".join(lines) + "\n"
