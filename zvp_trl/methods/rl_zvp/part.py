# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.

import torch

from ...core.parts import MethodPart
from ...core.step import GenerationStep, LossStep
from ...core.zero_variance import constant_per_function
from .algorithm import masked_row_max, relative_alpha, rl_zvp_token_advantages


class RLZVPPart(MethodPart):
    """RL-ZVP as a part (see [`RLZVPTrainer`]): after scoring, the zero-variance sign of every row (decided on its
    whole group's gathered rewards); in the loss, token advantages of zero-variance rows from the policy forward's
    entropies, and the group's sign as the sequence advantage for TRL's sequence-level rules; token-weighted advantage
    and entropy means per logging window."""

    name = "rl_zvp"
    shapes_token_advantages = True

    def __init__(self, context):
        super().__init__(context)
        # Per mode, summed since the last log: positive adv sum/count, negative adv sum/count, sum of row max entropy,
        # rows.
        self._window = {"train": None, "eval": None}

    def after_scoring(self, step: GenerationStep, output: dict) -> None:
        context = self.context
        num_generations = context.group_size
        # TRL's scalar reward (the weighted sum); a row that every reward function left unscored is NaN, which
        # makes its group non-zero-variance (it keeps GRPO's advantage).
        signs = context.row_signs(step.scalar_rewards(context.reward_weights), num_generations)
        if self.args.multi_objective_aggregation == "normalize_then_sum":
            # TRL normalises each function within the group: a group has zero advantage only when every function is
            # constant on it, so only such groups are RL-ZVP's (their sign still from the weighted sum).
            constant = constant_per_function(step.gathered_rewards, num_generations, self.args.zero_variance_atol)
            signs = signs * constant.to(signs.dtype)
        signs = context.local_rows(signs, output["prompt_ids"].size(0)).to(context.device)
        if step.replayed_rows is not None:
            # A replayed trajectory (ExGRPO) keeps its own treatment; the group's sign still counts it.
            replayed = torch.tensor(step.replayed_rows, dtype=torch.bool, device=signs.device)
            signs = torch.where(replayed, torch.zeros_like(signs), signs)
        output["zvp_signs"] = signs

    def token_advantages(self, loss: LossStep | None, inputs: dict, entropies: torch.Tensor) -> torch.Tensor:
        mask = inputs["completion_mask"]
        if "tool_mask" in inputs:
            mask = mask * inputs["tool_mask"]
        advantages = inputs["advantages"]
        if advantages.dim() != 1:
            raise ValueError("RLZVPTrainer expects TRL's per-sequence (B,) advantages before it shapes them.")
        signs = inputs["zvp_signs"]
        args = self.args
        alpha = args.zvp_alpha
        if args.zvp_alpha_rule == "relative" and args.zvp_entropy_scaling:
            alpha, _, _ = relative_alpha(
                advantages,
                signs,
                entropies,
                mask,
                args.zvp_alpha_relative_target,
                args.zvp_alpha_max,
                use_positive=args.zvp_use_positive,
                use_negative=args.zvp_use_negative,
            )
        token_advantages = rl_zvp_token_advantages(
            advantages,
            signs,
            entropies,
            mask,
            alpha=alpha,
            use_positive=args.zvp_use_positive,
            use_negative=args.zvp_use_negative,
            entropy_scaling=args.zvp_entropy_scaling,
            constant_advantage=args.zvp_constant_advantage,
        )
        self._accumulate_metrics(token_advantages, signs, entropies.detach(), mask, alpha)
        if loss is not None:
            # Per-sequence advantages for TRL's sequence-level rules: the group's sign on zero-variance rows.
            loss.sequence_advantages = torch.where(signs != 0, signs.to(advantages.dtype), advantages).unsqueeze(1)
        return token_advantages

    def _accumulate_metrics(self, token_advantages, signs, entropies, mask, alpha: float) -> None:
        mask = mask.to(token_advantages.dtype)
        positive = (signs > 0).to(mask.dtype)[:, None] * mask
        negative = (signs < 0).to(mask.dtype)[:, None] * mask
        mixed = (signs == 0).to(mask.dtype)[:, None] * mask
        magnitude = token_advantages.abs()
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
                torch.tensor(float(alpha), device=mask.device),
                torch.tensor(1.0, device=mask.device),
                (magnitude * (positive + negative)).sum(),
                (magnitude * mixed).sum(),
                mixed.sum(),
            ]
        ).float()
        mode = self.context.mode
        # Summed locally; reduced over processes once per logging window, in `log`.
        window = self._window[mode]
        self._window[mode] = local if window is None else window + local

    def log(self, mode: str, metrics: dict) -> None:
        window, self._window[mode] = self._window[mode], None
        if window is None:
            return
        # `log` runs on every process, so this collective is matched everywhere.
        reduced = self.context.collectives.reduce(window.to(self.context.device), reduction="sum").tolist()
        pos_sum, pos_count, neg_sum, neg_count, max_entropy_sum, rows, alpha_sum, batches = reduced[:8]
        zv_abs_sum, mixed_abs_sum, mixed_count = reduced[8:]
        # Token-weighted means over the logging window; NaN (logged as None) when no such row was seen.
        metrics["zvp/adv_mean_positive"] = [pos_sum / pos_count if pos_count else float("nan")]
        metrics["zvp/adv_mean_negative"] = [neg_sum / neg_count if neg_count else float("nan")]
        metrics["zvp/entropy_max_mean"] = [max_entropy_sum / rows if rows else float("nan")]
        # The alpha used, averaged over the loss micro-batches of the window (all processes).
        metrics["zvp/alpha"] = [alpha_sum / batches if batches else float("nan")]
        # How strong the zero-variance signal is against GRPO's: mean |advantage| of zero-variance tokens over mean
        # |advantage| of mixed-group tokens (NaN when the window had no tokens of either kind).
        zv_count = pos_count + neg_count
        zv_abs = zv_abs_sum / zv_count if zv_count else float("nan")
        mixed_abs = mixed_abs_sum / mixed_count if mixed_count else float("nan")
        metrics["zvp/adv_abs_mean_zero_variance"] = [zv_abs]
        metrics["zvp/adv_abs_mean_mixed"] = [mixed_abs]
        metrics["zvp/adv_abs_ratio"] = [zv_abs / mixed_abs if zv_count and mixed_count and mixed_abs else float("nan")]
