# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
import math

import torch

from ...core.prompt_ids import prompt_id
from ..grpo_ds.algorithm import kept_totals
from ..grpo_ds.part import DynamicSamplingPart
from .algorithm import GRESOState, next_round_size


class GRESOPart(DynamicSamplingPart):
    """GRESO as a part (see [`GRESOTrainer`]): dynamic sampling whose rounds skip likely zero-variance prompts before
    rollout and adapt their size; the prompts' traces and skip probabilities are its checkpointed state."""

    name = "greso"

    def __init__(self, context):
        super().__init__(context)
        self.greso_state = GRESOState(
            p_easy=self.args.greso_p_easy,
            p_hard=self.args.greso_p_hard,
            floor=self.args.greso_min_explore_prob,
            seed=self.args.seed,
            easy_threshold=self.args.greso_easy_threshold,
            hard_threshold=self.args.greso_hard_threshold,
        )

    def checkpointed_state(self) -> dict[str, object]:
        return {**super().checkpointed_state(), "greso": self.greso_state}

    def warm_start(self, probe) -> None:
        """Each probed group is one observation of its prompt: its mean reward appended to the prompt's trace, as a
        scored round records it (None when a completion was unscored)."""
        for row in probe.rows:
            self.greso_state.record(row["prompt_id"], None if row.get("num_unscored") else row["reward_mean"])

    def _prompt_id(self, row: dict) -> str:
        return prompt_id(row, self.args.prompt_id_column)

    def select_round_rows(self, rows: list[dict], batch: dict) -> tuple[list[dict], list[str]]:
        # batch["examined"] / batch["skipped"]: prompts examined / skipped for this optimizer batch (all processes).
        batch.setdefault("examined", 0)
        batch.setdefault("skipped", 0)
        G = self.context.num_generations
        world, rank = self.context.num_processes, self.context.process_index
        n = len(rows) // G  # prompts per process in this round
        # Every process decides for every process's candidates (same ids, same generator draws), so all of them know
        # which prompts each process keeps without further communication.
        candidate_ids = self.context.collectives.gather_object([self._prompt_id(row) for row in rows[::G]])
        candidate_rows = [rows[j * G] if r == rank else None for r in range(world) for j in range(n)]
        selected = [[] for _ in range(world)]  # per process: (prompt id, row or None for other processes)
        max_draws = int(10 / self.args.greso_min_explore_prob) + 10
        draws = 0
        while True:
            skips = self.greso_state.decide_skips(candidate_ids)
            for r in range(world):
                for j in range(n):
                    k = r * n + j
                    if len(selected[r]) == n:
                        break  # this process is full; its remaining candidates are not examined
                    batch["examined"] += 1
                    if skips[k]:
                        batch["skipped"] += 1
                    else:
                        selected[r].append((candidate_ids[k], candidate_rows[k]))
            if min(len(s) for s in selected) == n:
                break
            draws += 1
            if draws > max_draws:
                raise RuntimeError(
                    f"GRESO skipped nearly every prompt it drew ({batch['skipped']} of {batch['examined']}) and could not "
                    "fill a generation round. Raise greso_min_explore_prob or use a larger train_dataset."
                )
            indices = self._prompt_sampler.draw(n * world)
            candidate_rows = [self.dataset_row(i) for i in indices]
            candidate_ids = [self._prompt_id(row) for row in candidate_rows]
            candidate_rows = [row if k // n == rank else None for k, row in enumerate(candidate_rows)]
        round_ids = [pid for per_process in selected for pid, _ in per_process]  # every process's, in process order
        return [dict(row) for _, row in selected[rank] for _ in range(G)], round_ids

    def next_round_groups(self, kept: list[list[int]], target: int, zero_variance_ratio: float, default: int):
        if not self.args.greso_adaptive_rounds:
            return default, False
        G, world = self.context.num_generations, self.context.num_processes
        totals = kept_totals(kept)
        if self.args.ds_fill_scope == "global":
            missing_groups = max(world * target - sum(totals), 0)
        else:
            missing_groups = sum(max(target - count, 0) for count in totals)
        size, last = next_round_size(
            missing_groups * G,
            zero_variance_ratio,
            G,
            default_size=default * world,
            min_size=math.ceil(self.args.greso_min_round_fraction * target * world),
            beta=self.args.greso_round_beta,
        )
        return math.ceil(size / world), last and self.args.greso_train_short_batch

    def on_round_scored(self, group_signs: torch.Tensor, group_means: torch.Tensor, round_ids) -> None:
        for pid, mean in zip(round_ids, group_means.tolist(), strict=True):
            self.greso_state.record(pid, mean)  # NaN (an unscored completion) is recorded as None

    def on_batch_assembled(self, step_signs: torch.Tensor, batch: dict) -> None:
        easy_ratio = (step_signs > 0).float().mean().item()
        hard_ratio = (step_signs < 0).float().mean().item()
        if int(self.context.run.epoch or 0) >= self.args.greso_adapt_from_epoch:
            self.greso_state.update_probabilities(
                easy_ratio,
                hard_ratio,
                easy_target=self.args.greso_easy_target,
                hard_target=self.args.greso_hard_target,
                delta=self.args.greso_delta_p,
                p_min=self.args.greso_p_min,
                p_max=self.args.greso_p_max,
            )
        metrics = self.context.metrics["train"]
        metrics["greso/p_easy"].append(self.greso_state.p_easy)
        metrics["greso/p_hard"].append(self.greso_state.p_hard)
        metrics["greso/frac_skipped"].append(batch.get("skipped", 0) / max(batch.get("examined", 0), 1))
        metrics["greso/frac_easy"].append(easy_ratio)
        metrics["greso/frac_hard"].append(hard_ratio)
