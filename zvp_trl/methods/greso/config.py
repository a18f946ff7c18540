# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
from dataclasses import dataclass, field

from ..grpo_ds.config import GRPODSConfig


@dataclass
class GRESOConfig(GRPODSConfig):
    r"""
    Configuration class for [`GRESOTrainer`].

    This class includes only the parameters that are specific to GRESO's pre-rollout skipping. For a full list of
    training arguments, please refer to [`GRPODSConfig`] (GRESO also applies dynamic sampling after rollout),
    [`ZVPBaseConfig`] and [`~trl.GRPOConfig`]; this class inherits every parameter from them. The defaults are the
    official code's, which RL-ZVP used "exactly".

    Parameters:
        > Parameters that control the pre-rollout skipping

        greso_p_easy (`float`, *optional*, defaults to `0.5`):
            Initial exploration probability of easy prompts: a prompt whose last `z` records are easy (see
            `greso_easy_threshold`) is skipped with probability `1 - max(p_easy ** z, greso_min_explore_prob)`.
        greso_p_hard (`float`, *optional*, defaults to `0.5`):
            Initial exploration probability of hard prompts (same rule with `p_hard`, for a prompt whose last record
            is hard, `z` counting its trailing hard records; see `greso_hard_threshold`).
        greso_easy_threshold (`float`, *optional*, defaults to `0.98`):
            A group's record is easy when its mean reward is at least this value (the official rule). With 0/1
            rewards: all correct for G < 50.
        greso_hard_threshold (`float`, *optional*, defaults to `0.11`):
            A group's record is hard when its mean reward is at most this value (the official rule). The value fits
            the official reward scale (1 correct, 0.1 wrong answer, 0 format error). With 0/1 rewards it means at
            most `floor(0.11 * G)` correct: all wrong at G=8, but `k <= 1` at G=16 and `k <= 3` at G=32. To skip
            only all-wrong prompts at any G with 0/1 rewards, set a value below `1 / G` (e.g. 0.0).
        greso_easy_target (`float`, *optional*, defaults to `1/12`):
            Target fraction of all-correct (zero-variance) groups among the groups rolled out in a training step (`alpha_easy`, a
            third of the official target zero-variance ratio 0.25). Above it `p_easy` decreases by
            `greso_delta_p` (more skipping), below it increases.
        greso_hard_target (`float`, *optional*, defaults to `1/6`):
            Target fraction of all-wrong groups (`alpha_hard`, two thirds of 0.25); adapts `p_hard` the same way.
        greso_delta_p (`float`, *optional*, defaults to `0.01`):
            Step of the adaptation of `p_easy` and `p_hard`, applied once per training step (generation batch).
        greso_p_min (`float`, *optional*, defaults to `0.05`):
            Lower bound of `p_easy` and `p_hard`.
        greso_p_max (`float`, *optional*, defaults to `0.95`):
            Upper bound of `p_easy` and `p_hard`.
        greso_min_explore_prob (`float`, *optional*, defaults to `0.01`):
            A prompt is always rolled out with at least this probability (skip probability at most `1 - this`).
        greso_adapt_from_epoch (`int`, *optional*, defaults to `1`):
            `p_easy` / `p_hard` adapt only once the training epoch (`int(trainer.state.epoch)`) is at least this value.
            The default `1` is the official code's (it adapts only when `epoch > 0`: in the first epoch no prompt has
            a trace yet, so skipping cannot act and the observed ratios say nothing about it). `0` adapts from the
            first step.
        greso_adaptive_rounds (`bool`, *optional*, defaults to `True`):
            GRESO's adaptive round size (official code). The first round of a batch rolls out `ds_oversample_factor *
            P` prompts per process; each later round `max(min, min(first, estimate))`, where `estimate =
            floor(missing_completions / (1 - zvr) / num_generations * greso_round_beta)` over all processes and `zvr`
            is the last round's zero-variance fraction; when the estimate fits in one first-size round it is the last
            round (see `greso_train_short_batch`). `False`: every round has the first round's size.
        greso_round_beta (`float`, *optional*, defaults to `1.25`):
            The estimate's safety factor (`beta`; official 1.25).
        greso_min_round_fraction (`float`, *optional*, defaults to `0.25`):
            Smallest adaptive round, as a fraction of the optimizer batch's prompts over all processes (official: 64
            of 256).
        greso_train_short_batch (`bool`, *optional*, defaults to `True`):
            After the last round, train even if the batch is still short, as the official code does: every process
            trains on the same number of groups, the largest the kept groups allow whose rows split into
            `steps_per_generation` equal micro-batches (logged as `ds/batch_fill` < 1). If no group can be given to
            every process, rounds go on. `False`: rounds go on (adaptive sizes) until the batch is full.
    """

    greso_p_easy: float = field(
        default=0.5,
        metadata={"help": "Initial exploration probability of prompts whose last records are easy."},
    )
    greso_p_hard: float = field(
        default=0.5,
        metadata={"help": "Initial exploration probability of prompts whose last record is hard."},
    )
    greso_easy_threshold: float = field(
        default=0.98,
        metadata={"help": "A group is easy when its mean reward is >= this value (official: 0.98)."},
    )
    greso_hard_threshold: float = field(
        default=0.11,
        metadata={
            "help": "A group is hard when its mean reward is <= this value (official: 0.11; with 0/1 rewards at "
            "G=16 that includes 1 correct of 16)."
        },
    )
    greso_easy_target: float = field(
        default=1 / 12,
        metadata={"help": "Target fraction of all-correct groups per training step (alpha_easy); adapts p_easy."},
    )
    greso_hard_target: float = field(
        default=1 / 6,
        metadata={"help": "Target fraction of all-wrong groups per training step (alpha_hard); adapts p_hard."},
    )
    greso_delta_p: float = field(
        default=0.01, metadata={"help": "Step of the once-per-training-step adaptation of p_easy and p_hard."}
    )
    greso_p_min: float = field(default=0.05, metadata={"help": "Lower bound of p_easy and p_hard."})
    greso_p_max: float = field(default=0.95, metadata={"help": "Upper bound of p_easy and p_hard."})
    greso_min_explore_prob: float = field(
        default=0.01, metadata={"help": "A prompt is always rolled out with at least this probability."}
    )
    greso_adapt_from_epoch: int = field(
        default=1,
        metadata={
            "help": "p_easy / p_hard adapt only once int(state.epoch) >= this value (1: the official code's "
            "'epoch > 0'; 0: from the first step)."
        },
    )
    greso_adaptive_rounds: bool = field(
        default=True,
        metadata={
            "help": "Adaptive size of later generation rounds from the missing completions and the last round's "
            "zero-variance fraction (official). False: every round has the first round's size."
        },
    )
    greso_round_beta: float = field(
        default=1.25, metadata={"help": "Safety factor of the adaptive round-size estimate (official: 1.25)."}
    )
    greso_min_round_fraction: float = field(
        default=0.25,
        metadata={
            "help": "Smallest adaptive round, as a fraction of the optimizer batch's prompts (official 64/256)."
        },
    )
    greso_train_short_batch: bool = field(
        default=True,
        metadata={
            "help": "Train after the last adaptive round even if the batch is short (official). False: rounds go on "
            "until it is full."
        },
    )

    def __post_init__(self):
        for name in ("greso_p_easy", "greso_p_hard", "greso_p_min", "greso_p_max"):
            value = getattr(self, name)
            if not 0.0 < value <= 1.0:
                raise ValueError(f"{name} must be in (0, 1], got {value}.")
        if self.greso_p_min > self.greso_p_max:
            raise ValueError(
                f"greso_p_min ({self.greso_p_min}) must not exceed greso_p_max ({self.greso_p_max}); the official "
                "values are 0.05 and 0.95."
            )
        for name in ("greso_easy_target", "greso_hard_target"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be a fraction of groups in [0, 1], got {value}.")
        if self.greso_delta_p < 0:
            raise ValueError(f"greso_delta_p must be >= 0, got {self.greso_delta_p}.")
        if not 0.0 < self.greso_min_explore_prob <= 1.0:
            raise ValueError(
                f"greso_min_explore_prob must be in (0, 1], got {self.greso_min_explore_prob}: with 0 a prompt could "
                "be skipped forever."
            )
        if self.greso_hard_threshold >= self.greso_easy_threshold:
            raise ValueError(
                f"greso_hard_threshold ({self.greso_hard_threshold}) must be below greso_easy_threshold "
                f"({self.greso_easy_threshold}); the official values are 0.11 and 0.98."
            )
        if not self.greso_round_beta > 0:
            raise ValueError(f"greso_round_beta must be > 0, got {self.greso_round_beta}; the official value is 1.25.")
        if not 0.0 < self.greso_min_round_fraction <= 1.0:
            raise ValueError(
                f"greso_min_round_fraction must be in (0, 1], got {self.greso_min_round_fraction}; the official "
                "value is 0.25 (64 of 256 prompts)."
            )
        if self.greso_adapt_from_epoch < 0:
            raise ValueError(f"greso_adapt_from_epoch must be >= 0, got {self.greso_adapt_from_epoch}.")
        super().__post_init__()
