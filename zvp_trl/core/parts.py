# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""Methods as parts: one method's logic, run by the trainer (the adapter to TRL, `ZVPBaseTrainer`) at the step
events it declares, with the step's data handed to it (`zvp_trl.core.step`).

A part never overrides a TRL hook and never reads what another hook left on the trainer: the adapter calls it with
the data of the event. Events, in the order the adapter runs them for a training generation batch, then for each
loss:

| event | when | what a part does there |
|---|---|---|
| `assemble_batch(inputs, generate_round)` | a training batch is needed | run rounds until the batch is full (dynamic sampling, GRESO); `groups_with_signal(signs)` asks the other parts which zero-variance groups still carry a signal (ERPO's RA) |
| `choose_rows(step)` | a generation round starts | replace rows of `step.rows` (ExGRPO: retired questions, replays), give completions that replace generated ones (`step.completion_overrides`, `step.replayed_rows`) |
| `before_generation(step)` | the rows are chosen, before TRL generates `step.rows` | set the rows' sampling settings (`step.sampling_temperatures`), or ask for them at the first generation call (`step.temperatures_from_prompts`) |
| `before_sampling(step)` | the round's first generation call, with `step.temperatures_from_prompts` (environment-owned data: `step.environment_prompt_ids` now known) | set `step.sampling_temperatures` |
| `after_scoring(step, output)` | after TRL scored the batch (`step.gathered_rewards` is set) | add per-row values to the batch (`output`), update its state, log |
| `loss_logprob_temperatures(inputs)` | a loss starts | the rows' temperatures for the loss's log-probs (when the trainer computes log-probs at per-row temperatures) |
| `compute_loss(loss, model, inputs)` | a loss starts | the whole loss instead of TRL's (ExGRPO's mixed phase), or None |
| `shapes_token_advantages` / `token_advantages(loss, inputs, entropies)` | in the loss, after the policy forward | replace the batch's per-sequence advantages by per-token ones, from the forward's entropies; set `loss.sequence_advantages` for TRL's sequence-level rules |
| `log(mode, metrics)` | when the trainer logs | add the part's metrics for the window |
| `checkpointed_state()` | at construction | name -> object with `state_dict` / `load_state_dict`, saved in every checkpoint |

A trainer class lists its parts in `_parts` (a tuple of part classes); a trainer's parts are those of its class and
of its bases, each once, bases first.
"""

from typing import ClassVar

import torch

from .step import GenerationStep, LossStep


class MethodPart:
    """Base class of a method's part (see the module docstring). `trainer` is the adapter running it: the part reads
    the run's settings (`trainer.args`), the processes (`trainer.accelerator`) and the metrics (`trainer._metrics`)
    from it."""

    name: ClassVar[str] = ""
    # Whether the part rewrites the loss's advantages from the policy forward (the adapter then arms that forward).
    shapes_token_advantages: ClassVar[bool] = False
    # Whether the part assembles each training batch from generation rounds (`assemble_batch`); at most one does.
    assembles_batches: ClassVar[bool] = False

    def __init__(self, trainer):
        self.trainer = trainer

    @classmethod
    def refuse_construction(cls, kwargs: dict) -> None:
        """Raises for trainer arguments the part cannot work with (`kwargs`: the trainer's keyword arguments), before
        TRL builds anything (models, vLLM, environments)."""

    @property
    def args(self):
        return self.trainer.args

    def checkpointed_state(self) -> dict[str, object]:
        return {}

    def assemble_batch(self, inputs: list[dict], generate_round) -> dict:
        """The training batch from this process's `inputs`, built by calling `generate_round(rows)` (which runs one
        round: the other events, TRL's generation and scoring; it returns the round's output and `GenerationStep`)
        as often as needed (parts with `assembles_batches` only)."""
        raise NotImplementedError

    def groups_with_signal(self, group_signs: torch.Tensor) -> torch.Tensor:
        """`(groups,)` zero-variance signs of a round's groups (+1 all-correct, -1 all-wrong, 0 mixed), with 0 for the
        zero-variance groups this part gives a learning signal (a batch assembler keeps those)."""
        return group_signs

    def choose_rows(self, step: GenerationStep) -> None:
        """A generation round of `step.rows` (this process's) starts: a part may replace rows."""

    def before_generation(self, step: GenerationStep) -> None:
        """The round's rows are chosen (`step.rows`): a part may set their sampling settings."""

    def before_sampling(self, step: GenerationStep) -> None:
        """The round's first generation call, for a part that set `step.temperatures_from_prompts`."""

    def loss_logprob_temperatures(self, inputs: dict) -> torch.Tensor | None:
        """`(B,)` temperatures of the loss's log-probs, or None for the base temperature."""
        return None

    def compute_loss(self, loss: LossStep, model, inputs: dict) -> torch.Tensor | None:
        """The loss of `inputs`, when the part computes it instead of TRL (at most one part does for a batch)."""
        return None

    def after_scoring(self, step: GenerationStep, output: dict) -> None:
        """The batch was generated and scored: `step.gathered_rewards` holds every process's rewards."""

    def token_advantages(self, loss: LossStep, inputs: dict, entropies: torch.Tensor) -> torch.Tensor:
        """`(B, T)` advantages of the loss's rows from the policy forward's entropies (parts with
        `shapes_token_advantages` only)."""
        raise NotImplementedError

    def log(self, mode: str, metrics: dict) -> None:
        """Adds the part's metrics to `metrics` (the trainer's `_metrics[mode]`) before the trainer logs them."""


def parts_of(trainer_class: type) -> tuple[type[MethodPart], ...]:
    """The part classes of a trainer class: its own and its bases' (`_parts`), each once, bases first."""
    found: list[type[MethodPart]] = []
    for klass in reversed(trainer_class.__mro__):
        for part in vars(klass).get("_parts", ()):
            # A part that specialises an earlier one takes its place (GRESO's part is dynamic sampling's, refined).
            found = [other for other in found if not issubclass(part, other)]
            if part not in found:
                found.append(part)
    return tuple(found)
