# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""GRPO-DS (DAPO's dynamic sampling, arXiv 2503.14476): zero-variance groups dropped after rollout and fresh prompts
rolled out in their place. `algorithm` holds the pure batch-assembly functions (GRESO builds on them), `config` the
`GRPODSConfig`, `part` the `DynamicSamplingPart`; this module is the method's one registration."""

from ...core.papers import arxiv_paper
from ...core.registry import MethodSpec, register
from .config import GRPODSConfig
from .part import DynamicSamplingPart


PAPER = arxiv_paper(
    "yu2025dapo",
    "DAPO: An Open-Source LLM Reinforcement Learning System at Scale",
    "Qiying Yu and Zheng Zhang and Ruofei Zhu and Yufeng Yuan and Xiaochen Zuo and Yu Yue and Tiantian Fan and Gaohong Liu and Lingjun Liu and Xin Liu and Haibin Lin and Zhiqi Lin and Bole Ma and Guangming Sheng and Yuxuan Tong and Chi Zhang and Mofan Zhang and Wang Zhang and Hang Zhu and Jinhua Zhu and Jiaze Chen and Jiangjie Chen and Chengyi Wang and Hongli Yu and Weinan Dai and Yuxuan Song and Xiangpeng Wei and Hao Zhou and Jingjing Liu and Wei-Ying Ma and Ya-Qin Zhang and Lin Yan and Mu Qiao and Yonghui Wu and Mingxuan Wang",
    "2503.14476",
)

TRAINER_DOC = """
    Trainer for GRPO with DAPO's dynamic sampling, from [DAPO: An Open-Source LLM Reinforcement Learning System at
    Scale](https://huggingface.co/papers/2503.14476) (RL-ZVP's "GRPO-DS" baseline).

    The only change w.r.t. [`~trl.GRPOTrainer`] is which groups reach the loss. After each generation round the groups
    whose completions all got the same reward (zero-variance groups, which give GRPO no gradient) are dropped, decided
    on the rewards of the whole group gathered over all processes; further rounds of fresh prompts are rolled out
    until the batch is full. With `ds_fill_scope="global"` (the default, as verl's DAPO trainer) the kept groups of
    all processes fill one batch of `num_processes * P` groups (`P = per_device_train_batch_size *
    steps_per_generation / num_generations`): each process trains on `P` of them, keeping its own where it can, and a
    process with a surplus sends groups to one with a deficit (one collective, only when some group moves). With
    `"process"` every process must hold `P` kept groups of its own, which takes more rounds. Fresh prompts come from
    the trainer's own seeded sampler over `train_dataset` (identical on every process, each process taking its own
    contiguous share). Every process runs the same number of rounds, since rounds contain collectives; all of them
    know every process's kept groups from the gathered rewards, so they take the same decisions (see
    [`~zvp_trl.methods.grpo_ds.algorithm.plan_groups`]). The assembled batch is re-padded and its `num_items_in_batch` (global
    count of loss tokens) recomputed. Surplus kept groups are carried to the next optimizer batch (see
    `ds_carry_over`).

    Advantages are TRL's, computed per generation round: with `scale_rewards="group"` (the default) they are what they
    would be after filtering; with `scale_rewards="batch"` the standard deviation is over the round, dropped groups
    included.

    Logged: `ds/generation_rounds` (rounds this optimizer batch), `ds/frac_dropped` (fraction of the groups rolled out
    that were zero-variance), `ds/carried_groups` and `ds/discarded_groups` (surplus groups carried / discarded, all
    processes), `ds/moved_groups` (groups trained on another process than the one that rolled them out) and
    `ds/batch_fill` (groups with distinct rewards per process trained on / `P`: below 1 on a step whose rounds ran out,
    padded with zero-variance groups, and after GRESO's short last round).
    `rollouts/total` counts every completion of every round; `rollouts/kept` only those that reach the loss.

    Args are those of [`~trl.GRPOTrainer`]; `args` is a [`GRPODSConfig`]. The training dataset must be map-style
    (indexable); vision-language inputs are not supported.
    """

SPEC = MethodSpec(
    name="grpo_ds", display="GRPO-DS", class_stem="GRPODS", part=DynamicSamplingPart, config=GRPODSConfig,
    description="GRPO-DS: DAPO dynamic sampling, zero-variance groups dropped and re-sampled (arXiv 2503.14476)",
    incompatible={
        "rl_zvp": "dynamic sampling drops zero-variance groups after rollout and rolls out fresh prompts in their "
        "place, so RL-ZVP, which learns from those groups, never sees one",
    },
    paper=PAPER, tags=("grpo-ds", "dapo"), precedence=30, trainer_doc=TRAINER_DOC, module=__name__,
)
GRPODSTrainer = register(SPEC)
