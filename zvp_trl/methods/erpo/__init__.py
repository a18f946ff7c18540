# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""ERPO (arXiv 2511.04800): residual (all-correct) prompts re-sampled at a raised, capped per-prompt temperature.
`algorithm` holds the temperature rule and history, `config` the `ERPOConfig` and its pair checks, `part` the
`ERPOPart`; this module is the method's one registration, with its named combinations (ERPO + RL-ZVP, and ERPO on
DAPO's dynamic sampling, the ERPO paper's setting)."""

from ...core.composition import combination_attribute
from ...core.papers import arxiv_paper
from ...core.registry import MethodSpec, NamedCombination, register
from .config import ERPOConfig, ERPOWithExGRPO, ERPOWithRLZVP
from .part import ERPOPart


PAPER = arxiv_paper(
    "liu2025erpo",
    "Explore Data Left Behind in Reinforcement Learning for Reasoning Language Models",
    "Chenxi Liu and Junjie Liang and Yuqi Jia and Bochuan Cao and Yang Bai and Heng Huang and Xun Chen",
    "2511.04800",
)

TRAINER_DOC = """
    Trainer for ERPO, from [Explore Data Left Behind in Reinforcement Learning for Reasoning Language
    Models](https://huggingface.co/papers/2511.04800).

    A per-prompt history ([`~zvp_trl.methods.erpo.algorithm.PromptTemperatureHistory`]) records each prompt's groups. A prompt whose
    group came back all-correct (a *residual* prompt, which gives GRPO no signal) is sampled at a higher temperature
    the next time it is drawn, raised by `erpo_temperature_step` up to `erpo_max_temperature`, so it yields incorrect
    completions and a learning signal again. Optional RA gives all-correct groups a small negative advantage.

    Rows of one generation batch are sampled at their own temperatures on every generation path: transformers
    `generate` (a per-row logits processor), vLLM colocate (one `SamplingParams` per request) and vLLM server (one
    request per distinct temperature, sent at once, order restored). With `erpo_logprob_temperature="sampling"` the
    old, new and reference log-probs and entropies are computed at each row's temperature too, by scaling the last
    hidden state before TRL's fused LM head (exact for heads without bias or logit soft-capping). The history is
    updated from the gathered prompt ids and rewards, so it is identical on every process, and it is saved in every
    checkpoint. A group with an unscored completion (every reward function returned `None`/NaN for it) counts as
    mixed: it never raises the temperature and is not residual.

    A prompt's temperature rises only when the prompt is drawn again (about once per epoch without dynamic
    sampling), so in a run of a few epochs it is raised a few times at most; see [`ERPODSTrainer`] for ERPO on DAPO's
    dynamic sampling, the combination of the ERPO paper.

    Tools and environments (`tools`, `environment_factory` with a `train_dataset`) keep each row's temperature through
    TRL's multi-turn tool loop: the rows that called a tool continue at their own prompt's temperature. With
    environment-owned data (`environment_factory` and no `train_dataset`) a prompt is the one `reset()` returned,
    identified by its token ids ([`~zvp_trl.core.prompt_ids.token_prompt_id`]). With transformers continuous batching
    (`use_transformers_continuous_batching=True`), `generate_batch` is called once per distinct temperature.

    Args are those of [`~trl.GRPOTrainer`]; `args` is an [`ERPOConfig`].
    """

ERPORLZVP_TRAINER_DOC = """
    ERPO's per-prompt sampling temperatures with RL-ZVP's entropy-guided advantages for zero-variance groups.

    The two act on different stages: ERPO decides at which temperature each prompt is sampled (and updates its
    history from the group's rewards), RL-ZVP shapes the advantages of the groups that still come back zero-variance,
    from the current policy's entropy at each row's sampling temperature. Every option of [`ERPOTrainer`] and
    [`RLZVPTrainer`] applies; `args` is an [`ERPORLZVPConfig`]. The model card cites both papers.
    """
ERPORLZVP_CONFIG_DOC = """
    Configuration class for [`ERPORLZVPTrainer`]: ERPO's per-prompt sampling temperatures and RL-ZVP's entropy-guided
    advantages for zero-variance groups in one training. It has every field of [`ERPOConfig`] and [`RLZVPConfig`].
    RA (`erpo_ra_advantage > 0`) and RL-ZVP's positive advantages both target all-correct groups, so they cannot be
    combined: with RA on, set `zvp_use_positive=False`.
    """

ERPODS_TRAINER_DOC = """
    ERPO on top of DAPO's dynamic sampling: the combination the ERPO paper trains (per-prompt temperatures and RA on a
    DAPO baseline).

    Each generation round of [`GRPODSTrainer`] is an ERPO generation: its prompts are sampled at their own
    temperatures, every rolled-out group (kept or dropped) updates the prompt history, and RA sets the advantage of
    all-correct groups. Dynamic sampling then drops the groups with no signal: all-wrong groups, and all-correct ones
    unless RA gave them an advantage (`erpo_ra_advantage > 0`). A prompt is "all-correct" for both by
    `correct_threshold`. Every option of [`ERPOTrainer`] and [`GRPODSTrainer`] applies; `args` is an
    [`ERPODSConfig`]. The model card cites both papers.
    """
ERPODS_CONFIG_DOC = """
    Configuration class for [`ERPODSTrainer`]: ERPO (per-prompt sampling temperatures and RA) on top of DAPO's
    dynamic sampling, as the ERPO paper builds on DAPO. It has every field of [`ERPOConfig`] and [`GRPODSConfig`];
    DAPO's other ingredients are TRL settings (clip-higher `epsilon_high=0.28`, token-level `loss_type="dapo"`).

    With RA on (`erpo_ra_advantage > 0`), all-correct groups carry RA's negative advantage, so dynamic sampling keeps
    them and drops only the groups that still have no signal (all-wrong ones; all-correct ones too with RA off).
    """

ERPO_RL_ZVP = NamedCombination(
    "erpo_rl_zvp", ("erpo", "rl_zvp"), "ERPORLZVP",
    "ERPO's per-prompt temperatures + RL-ZVP's entropy-guided advantages, in one training",
    default_suffix="ERPO-RL-ZVP", trainer_doc=ERPORLZVP_TRAINER_DOC, config_doc=ERPORLZVP_CONFIG_DOC,
)
ERPO_DS = NamedCombination(
    "erpo_ds", ("erpo", "grpo_ds"), "ERPODS",
    "ERPO (per-prompt temperatures, RA) on DAPO's dynamic sampling, the combination of the ERPO paper",
    default_suffix="ERPO-DS", trainer_doc=ERPODS_TRAINER_DOC, config_doc=ERPODS_CONFIG_DOC,
)

SPEC = MethodSpec(
    name="erpo", display="ERPO", class_stem="ERPO", part=ERPOPart, config=ERPOConfig,
    description="ERPO: residual (all-correct) prompts are re-sampled at a raised per-prompt temperature "
    "(arXiv 2511.04800)",
    combined_with={"rl_zvp": ERPOWithRLZVP, "exgrpo": ERPOWithExGRPO},
    combinations=(ERPO_RL_ZVP, ERPO_DS),
    paper=PAPER, tags=("erpo",), precedence=40, trainer_doc=TRAINER_DOC, module=__name__,
)
ERPOTrainer = register(SPEC)


def __getattr__(name: str):
    """The named combinations' classes (`ERPORLZVPConfig`, `ERPODSTrainer`, ...), built on first use."""
    return combination_attribute(__name__, name)
