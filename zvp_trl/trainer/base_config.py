# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
import dataclasses
import warnings
from dataclasses import dataclass, field
from typing import ClassVar

from trl import GRPOConfig


def deprecated_field(new: str):
    """A field kept under an earlier name for one release: `None` unless given, then mapped to `new` with a
    `FutureWarning` by `ZVPBaseConfig.__post_init__`."""
    return field(default=None, metadata={"help": f"Deprecated, use {new}: removed in the next release."})


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
            buffer). `None`: a hash of the prompt's content (see [`~zvp_trl.algorithms.prompt_ids.prompt_id`]);
            identical prompts then share their state. With `remove_unused_columns=True` the column must survive column
            removal, so leave this `None` then.

    Earlier per-method names of these three fields (`zvp_correct_threshold`, `erpo_correct_threshold`,
    `exgrpo_correct_threshold`, `greso_correct_threshold`, `zvp_zero_variance_atol`, `ds_zero_variance_atol`,
    `erpo_prompt_id_column`, `exgrpo_prompt_id_column`, `greso_prompt_id_column`) still work in this release, with a
    `FutureWarning`; they are removed in the next one.
    """

    # Deprecated field -> the shared field it stands for; each config adds its own (collected over the MRO).
    _renamed_fields: ClassVar[dict[str, str]] = {}

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
    prompt_id_column: str | None = field(
        default=None,
        metadata={
            "help": "Dataset column identifying a prompt in per-prompt state (ERPO history, GRESO traces, ExGRPO "
            "buffer). None: a hash of the prompt content."
        },
    )

    def __post_init__(self):
        self._apply_renamed_fields()
        if self.zero_variance_atol < 0:
            raise ValueError(
                f"zero_variance_atol must be >= 0, got {self.zero_variance_atol}. The default is 1e-6 (a group is "
                "zero-variance when its rewards differ by at most this)."
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

    @classmethod
    def renamed_fields(cls) -> dict[str, str]:
        """Deprecated field name -> the shared field it stands for, over this config and its bases."""
        renamed = {}
        for klass in reversed(cls.__mro__):
            renamed.update(klass.__dict__.get("_renamed_fields", {}))
        return renamed

    def _apply_renamed_fields(self) -> None:
        """Moves the values given under deprecated names to the shared fields (with a `FutureWarning`), and refuses
        values that disagree. The deprecated fields are then `None`, so a saved config loads without warnings."""
        renamed = self.renamed_fields()
        defaults = {f.name: f.default for f in dataclasses.fields(self)}
        given: dict[str, list[tuple[str, object]]] = {}
        for old, new in renamed.items():
            value = getattr(self, old, None)
            if value is None:
                continue
            warnings.warn(
                f"{old} is deprecated and will be removed in the next release: use {new} (one field shared by every "
                "zvp_trl config) instead.",
                FutureWarning,
                stacklevel=3,
            )
            given.setdefault(new, []).append((old, value))
            setattr(self, old, None)
        for new, olds in given.items():
            current = getattr(self, new)
            named = olds + ([(new, current)] if current != defaults[new] else [])
            if len({value for _, value in named}) > 1:
                listed = ", ".join(f"{name}={value!r}" for name, value in named)
                raise ValueError(
                    f"{listed} disagree: they are one setting now. Set only {new} (the deprecated names are mapped "
                    "to it)."
                )
            setattr(self, new, olds[0][1])


@dataclass
class GRPOBaselineConfig(ZVPBaseConfig):
    r"""Configuration of [`GRPOBaselineTrainer`]: plain GRPO with the package's rollout accounting and budget."""
