# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""ExGRPO (arXiv 2510.02245): replay of partially solved prompts' correct trajectories, bucketed by accuracy.
`algorithm` holds the pure functions, `buffer` the experience buffer, `config` the `ExGRPOConfig`, `part` the
`ExGRPOPart`; this module is the method's one registration, with its named combination ExGRPO + RL-ZVP."""

from ...core.composition import combination_attribute
from ...core.papers import arxiv_paper
from ...core.registry import MethodSpec, NamedCombination, register
from .config import ExGRPOConfig
from .part import ExGRPOPart


PAPER = arxiv_paper(
    "zhan2025exgrpo",
    "ExGRPO: Learning to Reason from Experience",
    "Runzhe Zhan and Yafu Li and Zhi Wang and Xiaoye Qu and Dongrui Liu and Jing Shao and Derek F. Wong and Yu Cheng",
    "2510.02245",
)

TRAINER_DOC = """
    Trainer for ExGRPO, from [Learning to Reason from Experience](https://huggingface.co/papers/2510.02245).

    On top of [`~trl.GRPOTrainer`] (with Dr.GRPO advantages by default), it keeps a buffer of correct trajectories of
    partially solved questions and replays them:

    - **Collection** (every training generation batch of the mixed phase, from the rewards and rows gathered over all
      processes, so every process holds the same buffer): a question whose group has `0 < k < G` correct completions
      enters the buffer with its correct completions (token ids and their log-probs under the policy that generated
      them, recomputed before the update); a buffered question moves to bucket `k` (its latest `k`); a group with
      `k = 0` changes nothing (the question keeps its bucket, so there is no bucket 0, as in the official code). As in
      the official code, the on-policy warm-up collects nothing (`exgrpo_collect_during_warmup=True` collects from the
      first batch). In both phases a question with all `G` correct is retired (removed, never buffered again). With
      `exgrpo_exclude_retired` (default) a retired question is not rolled out again: a fresh group the dataset sampler
      draws for it is replaced, before generation, by a non-retired question of `train_dataset`.
    - **Delayed start**: on-policy training until a generation batch's fraction of correct completions is above
      `exgrpo_start_threshold`, then the mixed phase for good (from the next batch on).
    - **Mixed batches**: on each process, `floor(exgrpo_replay_ratio * groups)` prompt groups are replaced by buffered
      questions, drawn with a generator seeded identically on every process: bucket counts ~ multinomial over the
      non-empty buckets' Gaussian weights (`exgrpo_bucket_weighting`, N(k; G/2, 1) by default), overflow
      redistributed, questions without
      replacement. For each, the stored trajectory with the lowest mean token entropy under the current policy is
      chosen; the group is generated normally and its first completion is overwritten by that trajectory before
      scoring, so the group is 1 replayed + G-1 fresh completions and the replayed one takes part in the group mean.
    - **Loss**: replayed tokens use `-A * f(w)`, `f(w) = w / (w + beta)`, unclipped, with `w = exp(logp - recorded)`;
      fresh tokens use TRL's clipped surrogate (unclipped with `exgrpo_unclip_fresh`); then TRL's aggregation for
      `loss_type`.
    - **Tools and environments**: a trajectory built by TRL's tool loop is stored with its `tool_mask` (0 on the
      tool-result tokens) and its messages. Its replayed row is kept out of TRL's tool loop by the base trainer (its
      tool calls are not run again) and carries the stored mask and messages, so only the model's own tokens are
      trained and the reward functions score what they scored when it was collected. Refused: an environment that
      owns the reward (`get_reward`) and environment-owned data (no `train_dataset`), where a replay has no defined
      meaning.
    - **Sharded training** (DeepSpeed ZeRO-3 or FSDP, detected at construction into the part's `collective_forwards`):
      every forward gathers the sharded parameters collectively, so every process must run the same no-grad forwards,
      in the same order. The log-probs of the rows to store are then computed over all rows of the local generation
      batch (the same count on every process; skipped on every process when no group of the gathered batch is
      partially solved, or when TRL already computed `old_per_token_logps`) and the stored rows are indexed out of
      them; and every process selects the trajectories of all the replayed questions (the buffer and the draw are
      the same everywhere; single-trajectory entries, identical everywhere, need no forward) and keeps its own. The
      results are those of the default path (per-row log-probs up to the last bits, batching differing). Without
      sharding, only the rows to store and only this process's replays are forwarded.

    Args are those of [`~trl.GRPOTrainer`] (no `rollout_func`); `args` is an [`ExGRPOConfig`].
    """

EXGRPORLZVP_TRAINER_DOC = """
    ExGRPO's experience replay with RL-ZVP's entropy-guided advantages for zero-variance groups.

    RL-ZVP shapes the advantages of the fresh rows of zero-variance groups (decided on the whole group's rewards,
    replayed trajectory included); a replayed row keeps its ExGRPO treatment (Dr.GRPO advantage with the shaped,
    unclipped ratio). In the on-policy phase the loss is RL-ZVP's; in the mixed phase it is ExGRPO's mixed loss with
    RL-ZVP's token advantages. `args` is an [`ExGRPORLZVPConfig`]; the model card cites both papers.
    """
EXGRPORLZVP_CONFIG_DOC = """
    Configuration class for [`ExGRPORLZVPTrainer`]: ExGRPO's experience replay with RL-ZVP's entropy-guided advantages
    for zero-variance groups. It has every field of [`ExGRPOConfig`] (whose Dr.GRPO defaults `loss_type="dr_grpo"`,
    `scale_rewards="none"` apply) and [`RLZVPConfig`].
    """

EXGRPO_RL_ZVP = NamedCombination(
    "exgrpo_rl_zvp", ("exgrpo", "rl_zvp"), "ExGRPORLZVP",
    "ExGRPO's replay + RL-ZVP's entropy-guided advantages for fresh zero-variance groups",
    default_suffix="ExGRPO-RL-ZVP", trainer_doc=EXGRPORLZVP_TRAINER_DOC, config_doc=EXGRPORLZVP_CONFIG_DOC,
)

SPEC = MethodSpec(
    name="exgrpo", display="ExGRPO", class_stem="ExGRPO", part=ExGRPOPart, config=ExGRPOConfig,
    description="ExGRPO: replay of partially solved prompts' correct trajectories, bucketed by accuracy "
    "(arXiv 2510.02245)",
    incompatible={
        "grpo_ds": "both decide which groups fill a batch: ExGRPO replaces a fixed share of each generation batch's "
        "groups by replays, dynamic sampling drops zero-variance groups after rollout and rolls out fresh prompts in "
        "their place, so the replay share no longer holds",
        "greso": "both decide which groups fill a batch: ExGRPO replaces a fixed share of each generation batch's "
        "groups by replays, GRESO skips prompts and drops groups, so the replay share no longer holds",
    },
    combinations=(EXGRPO_RL_ZVP,),
    paper=PAPER, tags=("exgrpo",), precedence=10, trainer_doc=TRAINER_DOC, module=__name__,
)
ExGRPOTrainer = register(SPEC)


def __getattr__(name: str):
    """The named combination's classes (`ExGRPORLZVPConfig`, `ExGRPORLZVPTrainer`), built on first use."""
    return combination_attribute(__name__, name)
