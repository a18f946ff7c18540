# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.

import torch

from ..algorithms.rl_zvp import masked_row_max, rl_zvp_token_advantages
from . import papers
from .base import ZVPBaseTrainer
from .rl_zvp_config import RLZVPConfig


class RLZVPTrainer(ZVPBaseTrainer):
    """
    Trainer for RL-ZVP, from [No Prompt Left Behind: Exploiting Zero-Variance Prompts in LLM Reinforcement Learning via
    Entropy-Guided Advantage Shaping](https://huggingface.co/papers/2509.21880).

    The only change w.r.t. [`~trl.GRPOTrainer`] is the advantage of zero-variance groups (all completions of a prompt
    got the same reward), which GRPO leaves at zero. They get token-level advantages from the current policy's
    per-token entropy `H`, detached: `alpha * H_t` for an all-correct group and `-alpha * (max_k H_k - H_t)` for an
    all-wrong group. The entropy comes from the policy forward pass that the loss already runs (no extra forward),
    at the sampling temperature, recomputed on every micro-batch and iteration. Zero-variance is decided on the
    rewards of the whole group, gathered over all processes. Other groups keep GRPO's advantage exactly.

    Args are those of [`~trl.GRPOTrainer`]; `args` is an [`RLZVPConfig`].
    """

    _tag_names = ["trl", "rl-zvp"]
    _name = "RL-ZVP"
    _paper = papers.RL_ZVP
    _config_class = RLZVPConfig
    _default_suffix = "RL-ZVP"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._pending_loss_inputs = None  # armed by _compute_loss, consumed by the policy forward it triggers
        self._sequence_advantages = None  # (B, 1) per-sequence advantage signs of the loss being computed
        # Per mode, summed since the last log: positive adv sum/count, negative adv sum/count, sum of row max entropy,
        # rows.
        self._zvp_window = {"train": None, "eval": None}

    def _generate_and_score_completions(self, inputs):
        output = super()._generate_and_score_completions(inputs)
        mode = "train" if self.model.training else "eval"
        num_generations = self.num_generations if mode == "train" else self.num_generations_eval
        # TRL's scalar reward (sum_then_normalize); a row that every reward function left unscored is NaN, which
        # makes its group non-zero-variance (it keeps GRPO's advantage).
        # The all-correct / all-wrong shares are logged by the base trainer, for every method.
        signs = self._row_signs(self._gathered_scalar_rewards(), num_generations)
        output["zvp_signs"] = self._local_rows(signs, output["prompt_ids"].size(0)).to(self.accelerator.device)
        return output

    def _compute_loss(self, model, inputs):
        # Work on a shallow copy: `inputs` is TRL's buffered batch, reused when num_iterations > 1.
        inputs = dict(inputs)
        self._pending_loss_inputs = inputs
        try:
            return super()._compute_loss(model, inputs)
        finally:
            self._pending_loss_inputs = None
            self._sequence_advantages = None

    def _per_sequence(self, advantages: torch.Tensor) -> torch.Tensor:
        """TRL's sequence-level rules (off-policy masking, VESPO's gamma weights) read the sign of a sequence's
        advantage. RL-ZVP's token advantages of a zero-variance row all have its group's sign (all-correct >= 0,
        all-wrong <= 0), so the sequence's sign is the group's; other rows keep GRPO's sequence advantage."""
        sequence = self._sequence_advantages
        if sequence is None or advantages.dim() != 2 or sequence.size(0) != advantages.size(0):
            return advantages
        return sequence.to(advantages.device, advantages.dtype)

    def get_off_policy_mask(self, advantages, **kwargs):
        return super().get_off_policy_mask(advantages=self._per_sequence(advantages), **kwargs)

    def get_gamma_weights(self, advantages, **kwargs):
        return super().get_gamma_weights(advantages=self._per_sequence(advantages), **kwargs)

    def _get_per_token_logps_and_entropies(self, *args, **kwargs):
        logps, entropies, aux_loss = super()._get_per_token_logps_and_entropies(*args, **kwargs)
        inputs, self._pending_loss_inputs = self._pending_loss_inputs, None
        # Only the policy forward of _compute_loss is armed; it runs before _compute_loss reads "advantages".
        if inputs is not None and entropies is not None:
            inputs["advantages"] = self._token_advantages(inputs, entropies)
        return logps, entropies, aux_loss

    def _token_advantages(self, inputs, entropies: torch.Tensor) -> torch.Tensor:
        mask = inputs["completion_mask"]
        if "tool_mask" in inputs:
            mask = mask * inputs["tool_mask"]
        advantages = inputs["advantages"]
        if advantages.dim() != 1:
            raise ValueError("RLZVPTrainer expects TRL's per-sequence (B,) advantages before it shapes them.")
        signs = inputs["zvp_signs"]
        token_advantages = rl_zvp_token_advantages(
            advantages,
            signs,
            entropies,
            mask,
            alpha=self.args.zvp_alpha,
            use_positive=self.args.zvp_use_positive,
            use_negative=self.args.zvp_use_negative,
            entropy_scaling=self.args.zvp_entropy_scaling,
            constant_advantage=self.args.zvp_constant_advantage,
        )
        self._accumulate_metrics(token_advantages, signs, entropies.detach(), mask)
        # Per-sequence advantages for TRL's sequence-level rules: the group's sign on zero-variance rows.
        self._sequence_advantages = torch.where(signs != 0, signs.to(advantages.dtype), advantages).unsqueeze(1)
        return token_advantages

    def _accumulate_metrics(self, token_advantages, signs, entropies, mask) -> None:
        mask = mask.to(token_advantages.dtype)
        positive = (signs > 0).to(mask.dtype)[:, None] * mask
        negative = (signs < 0).to(mask.dtype)[:, None] * mask
        valid_rows = (mask.sum(dim=1) > 0).to(mask.dtype)
        row_max = masked_row_max(entropies, mask)
        local = torch.stack(
            [
                (token_advantages * positive).sum(),
                positive.sum(),
                (token_advantages * negative).sum(),
                negative.sum(),
                row_max.sum(),
                valid_rows.sum(),
            ]
        ).float()
        mode = "train" if self.model.training else "eval"
        # Summed locally; reduced over processes once per logging window, in `log`.
        window = self._zvp_window[mode]
        self._zvp_window[mode] = local if window is None else window + local

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        mode = "train" if self.model.training else "eval"
        window, self._zvp_window[mode] = self._zvp_window[mode], None
        if window is not None:
            # `log` runs on every process, so this collective is matched everywhere.
            pos_sum, pos_count, neg_sum, neg_count, max_entropy_sum, rows = self.accelerator.reduce(
                window.to(self.accelerator.device), reduction="sum"
            ).tolist()
            # Token-weighted means over the logging window; NaN (logged as None) when no such row was seen.
            metrics = self._metrics[mode]
            metrics["zvp/adv_mean_positive"] = [pos_sum / pos_count if pos_count else float("nan")]
            metrics["zvp/adv_mean_negative"] = [neg_sum / neg_count if neg_count else float("nan")]
            metrics["zvp/entropy_max_mean"] = [max_entropy_sum / rows if rows else float("nan")]
        super().log(logs, start_time)
