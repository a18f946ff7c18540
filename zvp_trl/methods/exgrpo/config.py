# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
from dataclasses import dataclass, field

from ...core.config import ZVPBaseConfig
from .algorithm import BUCKET_WEIGHTINGS, EXGRPO_LOSS_TYPES, check_bucket_weighting


@dataclass
class ExGRPOConfig(ZVPBaseConfig):
    r"""
    Configuration class for [`ExGRPOTrainer`].

    This class includes only the parameters that are specific to ExGRPO. For a full list of training arguments, please
    refer to [`~trl.GRPOConfig`] and [`ZVPBaseConfig`]; this class inherits every parameter from them. Two of TRL's
    defaults are changed to the paper's Dr.GRPO setting: `loss_type="dr_grpo"` and `scale_rewards="none"`
    (advantage = reward minus group mean, no std normalisation).

    Parameters:
        > Parameters that control the experience replay

        exgrpo_replay_ratio (`float`, *optional*, defaults to `0.5`):
            Fraction ρ of each process's prompt groups that come from the buffer once the mixed phase started (rounded
            down per process; fewer when the buffer holds fewer questions). Each such group is one replayed trajectory
            plus `num_generations - 1` fresh completions.
        exgrpo_shaping_beta (`float`, *optional*, defaults to `0.1`):
            β of the policy shaping `f(w) = w / (w + β)` applied, unclipped, to the importance ratio of replayed
            tokens against their recorded log-probs.
        exgrpo_bucket_weighting (`str`, *optional*, defaults to `"count"`):
            Bucket sampling weight, the paper's N(Acc; μ=0.5, σ=1) on one of two scales. `"count"`: N(k; G/2, 1), σ in
            units of the success count `k` (the official code's `_normal_mapping`; for G=8 bucket 4 gets about 0.40,
            3 and 5 0.24 each, 1 and 7 0.004 each). `"accuracy"`: N(k/G; 0.5, 1), σ in units of `k/G`, which makes
            the buckets nearly equally likely (0.137-0.147 each for G=8). The earlier names `"paper"` (now
            `"accuracy"`) and `"code"` (now `"count"`) are refused with an error naming the new ones.
        exgrpo_start_threshold (`float` or `None`, *optional*, defaults to `0.35`):
            Delayed start: training is on-policy until a generation batch's fraction of correct completions is above
            this value, then mixed for good. `None` starts mixed at once (the paper's Llama setting).
        exgrpo_collect_during_warmup (`bool`, *optional*, defaults to `False`):
            Whether the on-policy warm-up (before the mixed phase) already collects trajectories into the buffer. The
            official code collects only in the mixed phase, "to mitigate the collection of low-quality trajectories
            during the initial training stages"; the batch whose correct fraction starts the mixed phase is not
            collected either. Retirement (a group with all `G` correct) applies in both phases. `True` collects from
            the first batch.
        exgrpo_unclip_fresh (`bool`, *optional*, defaults to `True`):
            In the mixed phase, use the unclipped ratio for fresh tokens too, as the official code does
            (`loss_remove_clip=True` in its runs). `False` keeps the clipped surrogate that the paper's Eq. 4 writes
            (with `epsilon` / `epsilon_high`). The on-policy warm-up is TRL's clipped loss either way.
        exgrpo_exclude_retired (`bool`, *optional*, defaults to `True`):
            Retired questions (a group came back all correct) are not rolled out again as fresh prompts: a fresh group
            whose question is retired is replaced, before generation, by a question drawn uniformly without
            replacement from the non-retired questions of `train_dataset` (seeded by `seed`, the step and the
            process, so a resumed run draws the same ones). The official code drops them from its sampler from the
            next epoch on; with one draw per question per epoch the two coincide except that a replacement may
            repeat a question drawn elsewhere in the epoch. When every question is retired the drawn ones are kept.
            Needs a map-style `train_dataset`. `False`: retired questions stay in TRL's sampling.
        exgrpo_question_selection (`str`, *optional*, defaults to `"bucket"`):
            How buffered questions are chosen: `"bucket"` (Gaussian bucket weights, the method) or `"random"`
            (uniform over the buffer; the paper's "w/o question selection" ablation).
        exgrpo_trajectory_selection (`str`, *optional*, defaults to `"entropy"`):
            Which stored trajectory of a chosen question is replayed: `"entropy"` (lowest mean token entropy under
            the current policy, the method) or `"random"` (the "w/o trajectory selection" ablation).
        exgrpo_max_buffer_prompts (`int` or `None`, *optional*, defaults to `10000`):
            Most questions the buffer holds; beyond it the least recently updated question is evicted. `None`:
            unbounded.
        exgrpo_max_trajectories_per_prompt (`int` or `None`, *optional*, defaults to `8`):
            Most distinct correct trajectories kept per question (the oldest are dropped). `None`: unbounded.
    """

    loss_type: str = field(
        default="dr_grpo",
        metadata={
            "help": "Loss aggregation; ExGRPO uses Dr.GRPO's constant normaliser.",
            "choices": EXGRPO_LOSS_TYPES,
        },
    )
    scale_rewards: str = field(
        default="none",
        metadata={"help": "Reward scaling; ExGRPO uses Dr.GRPO advantages (group mean removed, no std scaling)."},
    )
    exgrpo_replay_ratio: float = field(
        default=0.5, metadata={"help": "Fraction of prompt groups taken from the buffer in the mixed phase."}
    )
    exgrpo_shaping_beta: float = field(
        default=0.1, metadata={"help": "beta of the policy shaping f(w) = w / (w + beta) for replayed tokens."}
    )
    exgrpo_bucket_weighting: str = field(
        default="count",
        metadata={
            "help": "Bucket weight: 'count' N(k; G/2, 1), the official code's (default), or 'accuracy' N(k/G; 0.5, 1), "
            "nearly uniform over the buckets. ('paper' is now 'accuracy', 'code' is now 'count'.)",
            "choices": list(BUCKET_WEIGHTINGS),
        },
    )
    exgrpo_start_threshold: float | None = field(
        default=0.35,
        metadata={"help": "Mixed phase starts after a batch's correct fraction exceeds this; None: from the start."},
    )
    exgrpo_collect_during_warmup: bool = field(
        default=False,
        metadata={
            "help": "Collect trajectories during the on-policy warm-up too (default: only in the mixed phase, as the "
            "official code)."
        },
    )
    exgrpo_unclip_fresh: bool = field(
        default=True,
        metadata={
            "help": "Mixed phase: unclipped ratio for fresh tokens too, as the official code (loss_remove_clip). "
            "False: the paper's clipped surrogate (Eq. 4)."
        },
    )
    exgrpo_exclude_retired: bool = field(
        default=True,
        metadata={"help": "Replace fresh groups of retired questions by non-retired ones from train_dataset."},
    )
    exgrpo_question_selection: str = field(
        default="bucket",
        metadata={
            "help": "Buffered question choice: 'bucket' (Gaussian bucket weights) or 'random' (ablation).",
            "choices": ["bucket", "random"],
        },
    )
    exgrpo_trajectory_selection: str = field(
        default="entropy",
        metadata={
            "help": "Replayed trajectory choice: 'entropy' (lowest mean entropy) or 'random' (ablation).",
            "choices": ["entropy", "random"],
        },
    )
    exgrpo_max_buffer_prompts: int | None = field(
        default=10000,
        metadata={"help": "Most questions in the buffer (least recently updated evicted first); None: unbounded."},
    )
    exgrpo_max_trajectories_per_prompt: int | None = field(
        default=8, metadata={"help": "Most distinct correct trajectories kept per question (oldest dropped)."}
    )

    def __post_init__(self):
        if not 0.0 <= self.exgrpo_replay_ratio < 1.0:
            raise ValueError(
                f"exgrpo_replay_ratio must be in [0, 1), got {self.exgrpo_replay_ratio}. The paper uses 0.5 (0 is "
                "on-policy training)."
            )
        if not self.exgrpo_shaping_beta > 0:
            raise ValueError(f"exgrpo_shaping_beta must be > 0, got {self.exgrpo_shaping_beta}. The paper uses 0.1.")
        check_bucket_weighting(self.exgrpo_bucket_weighting, "exgrpo_bucket_weighting")
        for name, value, choices in (
            ("exgrpo_question_selection", self.exgrpo_question_selection, ("bucket", "random")),
            ("exgrpo_trajectory_selection", self.exgrpo_trajectory_selection, ("entropy", "random")),
        ):
            if value not in choices:
                raise ValueError(f"{name} must be one of {', '.join(choices)}, got {value!r}.")
        for name in ("exgrpo_max_buffer_prompts", "exgrpo_max_trajectories_per_prompt"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be a positive integer or None (unbounded), got {value}.")
        if self.loss_type not in EXGRPO_LOSS_TYPES:
            raise ValueError(
                f"loss_type={self.loss_type!r} is not supported by ExGRPO: its mixed-policy loss shapes the importance "
                f"ratio of replayed tokens (f(w) = w / (w + beta)), and {self.loss_type!r} replaces that ratio with its "
                "own weighting (a soft gate, gamma weights or a length-unbiased sequence ratio), which has no defined "
                f"meaning for a replayed trajectory. Use one of {', '.join(EXGRPO_LOSS_TYPES)}; the paper uses "
                "'dr_grpo'."
            )
        if self.use_adaptive_entropy:
            raise ValueError(
                "use_adaptive_entropy=True is not supported by ExGRPOTrainer's mixed-policy loss; use a static "
                "entropy_coef (the official script uses 0.001) and use_adaptive_entropy=False."
            )
        super().__post_init__()
        if (self.per_device_train_batch_size * self.steps_per_generation) % self.num_generations != 0:
            raise ValueError(
                "ExGRPO replaces whole prompt groups on each process, so every process must hold whole groups: "
                f"per_device_train_batch_size * steps_per_generation ({self.per_device_train_batch_size} * "
                f"{self.steps_per_generation}) must be a multiple of num_generations ({self.num_generations})."
            )
