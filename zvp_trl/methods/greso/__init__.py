# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""GRESO (arXiv 2506.02177): prompts likely to be zero-variance skipped before rollout, then dynamic sampling.
`algorithm` holds the skip probabilities, traces and round sizes, `config` the `GRESOConfig`, `part` the `GRESOPart`
(dynamic sampling's part, refined); this module is the method's one registration."""

from ...core.papers import arxiv_paper
from ...core.registry import MethodSpec, register
from .config import GRESOConfig
from .part import GRESOPart


PAPER = arxiv_paper(
    "zheng2025greso",
    "Act Only When It Pays: Efficient Reinforcement Learning for LLM Reasoning via Selective Rollouts",
    "Haizhong Zheng and Yang Zhou and Brian R. Bartoldson and Bhavya Kailkhura and Fan Lai and Jiawei Zhao and Beidi Chen",
    "2506.02177",
)

TRAINER_DOC = """
    Trainer for GRESO, from [Act Only When It Pays: Efficient Reinforcement Learning for LLM Reasoning via Selective
    Rollouts](https://huggingface.co/papers/2506.02177), following its official code.

    On top of [`GRPODSTrainer`] (dynamic sampling after rollout, which GRESO also applies), prompts are skipped
    **before** rollout. Every prompt keeps a trace of the mean reward of each of its groups, identified by
    [`~zvp_trl.core.prompt_ids.prompt_id`]. As in the official code, a record is easy when its mean reward is at least
    `greso_easy_threshold` (0.98) and hard when it is at most `greso_hard_threshold` (0.11). A prompt whose last `z`
    records are easy is skipped with probability `1 - max(p_easy ** z, greso_min_explore_prob)`; otherwise, if its
    last record is hard, with `1 - max(p_hard ** z, greso_min_explore_prob)`, `z` counting its trailing hard records.
    With 0/1 rewards, easy is all-correct (G < 50) and hard is at most `floor(0.11 * G)` correct: all-wrong at G=8,
    but also one correct out of 16 at G=16. A skipped prompt is not rolled out (so not counted in `rollouts/total`)
    and gets no record; each process replaces its skipped prompts with fresh ones from the trainer's sampler, so every
    generation round has its planned size. As in the official code, the first round of a batch rolls out
    `ds_oversample_factor * P` prompts per process and later rounds adapt their size to what is missing
    (`greso_adaptive_rounds`, `greso_round_beta` 1.25, at least `greso_min_round_fraction` of the batch); when the
    estimate fits in one round, that round is the last and the batch trains even if short
    (`greso_train_short_batch`, see [`~zvp_trl.methods.greso.algorithm.next_round_size`]). Once per training step
    (generation batch), `p_easy` / `p_hard` move by `greso_delta_p` towards the target fractions of all-correct /
    all-wrong (zero-variance) groups among the groups rolled out in that step (see `greso_adapt_from_epoch`).

    Skip decisions use a generator seeded from `args.seed` and a decision counter, and traces are updated from the
    gathered rewards, so the state is identical on every process; it is saved in checkpoints (`zvp_state.json`) and
    restored on resume.

    Logged on top of the `ds/` metrics: `greso/p_easy`, `greso/p_hard` (after the step's update),
    `greso/frac_skipped` (fraction of the prompts examined for the step that were skipped), `greso/frac_easy` and
    `greso/frac_hard` (fractions of the groups rolled out that were all-correct / all-wrong).

    Args are those of [`~trl.GRPOTrainer`]; `args` is a [`GRESOConfig`].
    """

SPEC = MethodSpec(
    name="greso", display="GRESO", class_stem="GRESO", part=GRESOPart, config=GRESOConfig,
    description="GRESO: skip likely zero-variance prompts before rollout, then dynamic sampling (arXiv 2506.02177)",
    incompatible={
        "rl_zvp": "GRESO skips the prompts likely to be zero-variance before rollout and drops the zero-variance "
        "groups after it, so RL-ZVP, which learns from those groups, never sees one",
        "grpo_ds": "GRESO is dynamic sampling with pre-rollout skipping: name greso alone",
        "erpo": "GRESO skips before rollout the prompts whose groups came back all-correct, the ones ERPO samples "
        "again at a raised temperature",
    },
    paper=PAPER, tags=("greso",), precedence=20, trainer_doc=TRAINER_DOC, module=__name__,
)
GRESOTrainer = register(SPEC)
