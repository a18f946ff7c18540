# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""The per-step data of a zvp_trl trainer, in one object the trainer owns (`trainer.zvp_step`).

TRL's `GRPOTrainer` runs one generation batch through several of its private hooks (`_generate_and_score_completions`
calls `_generate_single_turn`, `_get_per_token_logps_and_entropies` and `_calculate_rewards`), and one loss through
others (`_compute_loss` calls `_get_per_token_logps_and_entropies`, `get_off_policy_mask`, `get_gamma_weights`). What a
method decides for a batch or a loss, and what TRL computes in one hook that a method needs in another, lives here.
A generation round's data is opened by `begin_generation()` at the start of the round and stays readable until the next
round opens (the round's caller reads its rewards after TRL returned it); a loss's data is opened by `begin_loss()` and
closed by `end_loss()` when the loss is computed. So no hook ever reads what an earlier round or loss left behind.
"""

from dataclasses import dataclass, field

import torch

from .zero_variance import scalar_rewards


@dataclass
class GenerationStep:
    """One call of `_generate_and_score_completions` (one generation round: dynamic sampling runs several per
    optimizer batch)."""

    # (all processes' rows, reward functions): TRL's gathered reward matrix, in process order, once scored.
    gathered_rewards: torch.Tensor | None = None
    # This process's rows the round generates (a part may replace some before generation: ExGRPO's replays).
    rows: list[dict] = field(default_factory=list)
    # Per local row, whether its completion is not the current policy's sample (a replayed trajectory); None: none is.
    replayed_rows: list[bool] | None = None
    # Per local row, its prompt id (zvp_trl.core.prompt_ids), when a part needs it; None otherwise.
    prompt_ids: list[str] | None = None
    # Per local row, the temperature it is sampled at; None: every row at the base temperature.
    sampling_temperatures: list[float] | None = None
    # Environment-owned data: the rows' temperatures are decided at the first generation call, from the prompts the
    # environments' reset() returned (identified by their token ids, kept in `environment_prompt_ids`).
    temperatures_from_prompts: bool = False
    environment_prompt_ids: list[str] | None = None
    # The prompt token ids of the batch's first generation call: TRL's tool loop continues a subset of them.
    sampled_prompts: list[list[int]] | None = None
    # {local row: trajectory}: completions that replace the generated ones at the first generation call (ExGRPO's
    # replays); `trajectory["ids"]` the token ids. With tools, TRL's tool loop leaves these rows alone (their tool
    # calls are not run again); the row's tool mask is `trajectory["tool_mask"]` (1 the model's tokens, 0 tool results;
    # absent: all the model's) and the messages the reward functions get are `trajectory["messages"]` (absent: TRL's
    # parse of the token ids).
    completion_overrides: dict[int, dict] | None = None
    # TRL's messages of this process's rows after its tool loop (what the reward functions score), when it ran one.
    completions: list | None = None
    # A part's own data of the round, from one of its events to a later one (name -> data).
    part_data: dict = field(default_factory=dict)

    def scalar_rewards(self, reward_weights: torch.Tensor) -> torch.Tensor:
        """(all processes' rows,) TRL's scalar reward of the round: the weighted sum over the reward functions, NaN
        where every function left a row unscored."""
        if self.gathered_rewards is None:
            raise RuntimeError("No rewards were computed for this generation batch yet.")
        return scalar_rewards(self.gathered_rewards, reward_weights)


@dataclass
class LossStep:
    """One call of `_compute_loss`."""

    # The loss's inputs (a shallow copy of TRL's buffered batch), when a method rewrites their advantages from the
    # policy forward the loss runs (RL-ZVP): consumed by that forward.
    pending_inputs: dict | None = None
    # (B, 1) per-sequence advantages for TRL's sequence-level rules, when the loss's advantages are per token.
    sequence_advantages: torch.Tensor | None = None


@dataclass
class ZVPStep:
    """What the current generation batch and the current loss carry between TRL's hooks (see the module docstring)."""

    generation: GenerationStep | None = None
    loss: LossStep | None = None
    # (rows,) temperatures of the next log-prob forward, when not all at the base temperature: the old / reference
    # log-probs of the generation batch, or the policy forward of the loss.
    logprob_temperatures: torch.Tensor | None = field(default=None)

    def begin_generation(self) -> GenerationStep:
        """Opens the data of a new generation round (the previous round's is dropped)."""
        self.generation = GenerationStep()
        self.logprob_temperatures = None
        return self.generation

    def begin_loss(self) -> LossStep:
        self.loss = LossStep()
        self.logprob_temperatures = None
        return self.loss

    def end_loss(self) -> None:
        self.loss = None
        self.logprob_temperatures = None
