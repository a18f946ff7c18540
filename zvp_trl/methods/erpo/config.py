# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
from dataclasses import dataclass, field

from ...core.config import ZVPBaseConfig
from .algorithm import ON_MIXED, TRIGGERS


LOGPROB_TEMPERATURES = ("sampling", "base")


@dataclass
class ERPOConfig(ZVPBaseConfig):
    r"""
    Configuration class for [`ERPOTrainer`].

    This class includes only the parameters that are specific to ERPO. For a full list of training arguments, please
    refer to [`~trl.GRPOConfig`] and [`ZVPBaseConfig`]; this class inherits every parameter from them. The ERPO paper
    (arXiv 2511.04800) does not publish its exact rule; each unpublished choice is an option below with a documented
    default. The base temperature is the config's `temperature`.

    Parameters:
        > Parameters that control the per-prompt temperature

        erpo_temperature_step (`float`, *optional*, defaults to `0.1`):
            Additive increase of a prompt's sampling temperature after a triggering group.
        erpo_max_temperature (`float`, *optional*, defaults to `1.5`):
            Cap on a prompt's sampling temperature. Must be >= `temperature` (the base).
        erpo_trigger (`str`, *optional*, defaults to `"all_correct"`):
            Groups that raise the temperature: `"all_correct"` (the paper's residual prompts) or
            `"all_correct_or_all_wrong"`.
        erpo_on_mixed (`str`, *optional*, defaults to `"hold"`):
            What a mixed group does to an elevated prompt: `"hold"` (keep its temperature), `"reset"` (back to base)
            or `"decay"` (down by one step).
        erpo_ra_advantage (`float`, *optional*, defaults to `0.0`):
            RA ("reactivate training signal"): all-correct zero-variance groups get the advantage `-erpo_ra_advantage`
            instead of 0. `0` turns RA off.
        erpo_logprob_temperature (`str`, *optional*, defaults to `"sampling"`):
            Temperature of the old, new and reference log-probs and entropies: `"sampling"` (each row's own sampling
            temperature, so the ratio is on-policy) or `"base"` (the config's `temperature` for every row; elevated
            rows are then off-policy).
    """

    erpo_temperature_step: float = field(
        default=0.1, metadata={"help": "Additive increase of a prompt's temperature after a triggering group."}
    )
    erpo_max_temperature: float = field(
        default=1.5, metadata={"help": "Cap on a prompt's sampling temperature (>= temperature, the base)."}
    )
    erpo_trigger: str = field(
        default="all_correct",
        metadata={"help": "Groups that raise the temperature.", "choices": list(TRIGGERS)},
    )
    erpo_on_mixed: str = field(
        default="hold",
        metadata={"help": "What a mixed group does to an elevated prompt's temperature.", "choices": list(ON_MIXED)},
    )
    erpo_ra_advantage: float = field(
        default=0.0,
        metadata={"help": "RA: all-correct zero-variance groups get advantage -erpo_ra_advantage (0 = off)."},
    )
    erpo_logprob_temperature: str = field(
        default="sampling",
        metadata={
            "help": "Temperature of old/new/reference log-probs and entropies: each row's sampling temperature "
            "('sampling') or the base temperature ('base').",
            "choices": list(LOGPROB_TEMPERATURES),
        },
    )

    def __post_init__(self):
        if not self.erpo_temperature_step > 0:
            raise ValueError(f"erpo_temperature_step must be > 0, got {self.erpo_temperature_step}.")
        if not self.temperature > 0:
            raise ValueError(f"temperature (ERPO's base temperature) must be > 0, got {self.temperature}.")
        if not self.erpo_max_temperature >= self.temperature:  # NaN too: min(t, nan) would be no cap at all
            raise ValueError(
                f"erpo_max_temperature={self.erpo_max_temperature} is below the base temperature "
                f"(temperature={self.temperature}). Set erpo_max_temperature >= temperature."
            )
        if self.erpo_trigger not in TRIGGERS:
            raise ValueError(f"erpo_trigger must be one of {', '.join(TRIGGERS)}, got {self.erpo_trigger!r}.")
        if self.erpo_on_mixed not in ON_MIXED:
            raise ValueError(f"erpo_on_mixed must be one of {', '.join(ON_MIXED)}, got {self.erpo_on_mixed!r}.")
        if self.erpo_ra_advantage < 0:
            raise ValueError(
                f"erpo_ra_advantage must be >= 0 (it is the size of a negative advantage), got {self.erpo_ra_advantage}."
            )
        if self.erpo_logprob_temperature not in LOGPROB_TEMPERATURES:
            raise ValueError(
                f"erpo_logprob_temperature must be one of {', '.join(LOGPROB_TEMPERATURES)}, got "
                f"{self.erpo_logprob_temperature!r}."
            )
        super().__post_init__()


class ERPOWithRLZVP:
    """The checks of ERPO combined with RL-ZVP (a mixin of the composed config, see `MethodSpec.combined_with`)."""

    def __post_init__(self):
        if self.erpo_ra_advantage > 0 and self.zvp_use_positive:
            raise ValueError(
                "erpo_ra_advantage > 0 (ERPO's RA) and zvp_use_positive=True (RL-ZVP's advantage for all-correct groups) "
                "both set the advantage of all-correct groups. Set erpo_ra_advantage=0, or zvp_use_positive=False to "
                "let RA decide it."
            )
        super().__post_init__()


class ERPOWithExGRPO:
    """The checks and defaults of ERPO combined with ExGRPO (docs/training.md, "Combining methods by name"): ERPO
    samples all-correct questions again hotter, so ExGRPO keeps drawing them (`exgrpo_exclude_retired=False`); a
    replayed trajectory's log-probs need one temperature (`erpo_logprob_temperature="base"`)."""

    defaults = {"erpo_logprob_temperature": "base", "exgrpo_exclude_retired": False}

    def __post_init__(self):
        if self.erpo_logprob_temperature != "base":
            raise ValueError(
                "ERPO combined with ExGRPO needs erpo_logprob_temperature='base': a replayed trajectory's recorded "
                "log-probs and its loss log-probs must be at one temperature, and the temperature ERPO gives its "
                "question changes between the batch that stored it and the batch that replays it. Leave "
                "erpo_logprob_temperature at its default ('base') for this combination."
            )
        if self.exgrpo_exclude_retired and self.erpo_trigger == "all_correct":
            raise ValueError(
                "ERPO combined with ExGRPO: with exgrpo_exclude_retired=True ExGRPO never rolls out again a question "
                "whose group came back all-correct, the very questions erpo_trigger='all_correct' samples again at a "
                "raised temperature. Leave exgrpo_exclude_retired at its default (False) for this combination, or "
                "set erpo_trigger='all_correct_or_all_wrong'."
            )
        if self.erpo_ra_advantage > 0:
            raise ValueError(
                "ERPO's RA (erpo_ra_advantage > 0) gives all-correct groups a negative advantage, which would push "
                "down the correct trajectories ExGRPO replays: set erpo_ra_advantage=0 when combining ERPO with "
                "ExGRPO."
            )
        super().__post_init__()
