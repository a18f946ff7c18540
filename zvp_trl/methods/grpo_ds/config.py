# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
from dataclasses import dataclass, field

from ...core.config import ZVPBaseConfig


@dataclass
class GRPODSConfig(ZVPBaseConfig):
    r"""
    Configuration class for [`GRPODSTrainer`] (GRPO with DAPO's dynamic sampling).

    This class includes only the parameters that are specific to dynamic sampling. For a full list of training
    arguments, please refer to [`~trl.GRPOConfig`] and [`ZVPBaseConfig`]; this class inherits every parameter from
    them. DAPO's other ingredients are plain TRL settings: clip-higher is `epsilon_high=0.28`, the token-level loss is
    `loss_type="dapo"` (the default), overlong filtering is `mask_truncated_completions=True` and the soft overlong
    punishment is the reward `trl.rewards.get_soft_overlong_punishment` (RL-ZVP's GRPO-DS baseline omits it).

    Dynamic sampling needs the completions of a prompt on one process: `per_device_train_batch_size *
    steps_per_generation` must be a multiple of `num_generations`.

    Parameters:
        > Parameters that control dynamic sampling

        ds_max_generation_rounds (`int`, *optional*, defaults to `10`):
            Most generation rounds per optimizer batch (DAPO's `max_num_gen_batches`; its recipe uses 10). What
            happens when the batch is still not full of groups with distinct rewards after this many rounds is
            `ds_on_exhausted`. `0` means unlimited.
        ds_on_exhausted (`str`, *optional*, defaults to `"train"`):
            When the rounds run out: `"train"` trains the step on the groups with distinct rewards it holds, padded
            with the latest rounds' zero-variance groups (zero advantages: no gradient, as TRL's own trainer trains
            on them), with a warning and the running count `ds/exhausted_steps` (checkpointed); `"error"` stops
            training with an error that says why (verl's and DAPO's behaviour). A skipped step is not offered: a
            step without a loss does not exist in transformers' loop, and an optimizer step on zero gradients still
            moves AdamW's moments and applies weight decay.
        ds_oversample_factor (`float`, *optional*, defaults to `1.0`):
            Each generation round rolls out `ceil(ds_oversample_factor * P)` prompts per process, where `P =
            per_device_train_batch_size * steps_per_generation / num_generations` is the number of prompts per process
            in one optimizer batch (DAPO's recipe over-samples 3x). The first round uses the dataloader's `P` prompts
            plus extra prompts from the trainer's own sampler; later rounds draw all their prompts from it.
        ds_carry_over (`bool`, *optional*, defaults to `True`):
            Carry the surplus of kept groups (beyond one optimizer batch) to the next optimizer batch, where they are
            used first, instead of discarding them. At most one optimizer batch is carried (the rest is discarded),
            so a carried group is at most one optimizer step old. Carried groups live in memory only: after resuming
            from a checkpoint they are gone and the batch is refilled by fresh rollouts.
        ds_fill_scope (`str`, *optional*, defaults to `"global"`):
            How the optimizer batch is filled. `"global"` (verl's DAPO trainer): generation rounds go on until all
            processes together hold `num_processes * P` kept groups; then every process trains on `P` of them, groups
            moving between processes where one holds a surplus and another a deficit (one collective). `"process"`:
            rounds go on until every process holds `P` kept groups of its own (more rounds with several processes;
            no group moves).
    """

    ds_max_generation_rounds: int = field(
        default=10,
        metadata={
            "help": "Most generation rounds per optimizer batch (DAPO's max_num_gen_batches, 10 in its recipe); "
            "what a batch not yet full after them does is ds_on_exhausted. 0: unlimited."
        },
    )
    ds_on_exhausted: str = field(
        default="train",
        metadata={
            "help": "When ds_max_generation_rounds run out before the batch is full: 'train' the step on the groups "
            "held, padded with zero-variance groups (no gradient; warned, counted in ds/exhausted_steps), or stop "
            "with an 'error' (verl's behaviour).",
            "choices": ["train", "error"],
        },
    )
    ds_oversample_factor: float = field(
        default=1.0,
        metadata={
            "help": "Each generation round rolls out ceil(factor * P) prompts per process, P = prompts per process in "
            "one optimizer batch (DAPO's recipe: 3)."
        },
    )
    ds_carry_over: bool = field(
        default=True,
        metadata={
            "help": "Carry surplus kept groups (up to one optimizer batch) to the next optimizer batch instead of "
            "discarding them. Not saved in checkpoints: after a resume the batch is refilled by fresh rollouts."
        },
    )
    ds_fill_scope: str = field(
        default="global",
        metadata={
            "help": "'global' (verl's DAPO): kept groups of all processes fill one global batch, redistributed so that "
            "every process trains on the same number. 'process': every process fills its own share.",
            "choices": ["global", "process"],
        },
    )

    def __post_init__(self):
        if self.ds_on_exhausted not in ("train", "error"):
            raise ValueError(
                f"ds_on_exhausted must be 'train' (train the step on the groups held) or 'error' (stop), got "
                f"{self.ds_on_exhausted!r}."
            )
        if self.ds_max_generation_rounds < 0:
            raise ValueError(
                f"ds_max_generation_rounds must be >= 0 (0 = unlimited), got {self.ds_max_generation_rounds}. DAPO's "
                "recipe uses 10."
            )
        if not self.ds_oversample_factor >= 1.0:
            raise ValueError(
                f"ds_oversample_factor must be >= 1.0, got {self.ds_oversample_factor}: a generation round must roll "
                "out at least the prompts of one optimizer batch."
            )
        if self.ds_fill_scope not in ("global", "process"):
            raise ValueError(
                f"ds_fill_scope must be 'global' (one batch for all processes, verl's DAPO) or 'process' (each process "
                f"fills its own share), got {self.ds_fill_scope!r}."
            )
        super().__post_init__()
        # steps_per_generation is resolved by GRPOConfig.__post_init__, so this check comes after it.
        local_rows = self.per_device_train_batch_size * self.steps_per_generation
        if local_rows % self.num_generations != 0:
            raise ValueError(
                f"Dynamic sampling keeps or drops whole groups on each process, so per_device_train_batch_size * "
                f"steps_per_generation ({self.per_device_train_batch_size} * {self.steps_per_generation} = "
                f"{local_rows}) must be a multiple of num_generations ({self.num_generations}). Change "
                "per_device_train_batch_size, steps_per_generation (or gradient_accumulation_steps) or "
                "num_generations."
            )
