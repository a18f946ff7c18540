# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
import logging
import math

import torch
from datasets import IterableDataset

from ...core.parts import MethodPart
from .algorithm import (
    GroupPlan,
    PromptSampler,
    concat_outputs,
    groups_per_process,
    kept_totals,
    per_row_to,
    plan_groups,
    select_rows,
)


logger = logging.getLogger(__name__)


class DynamicSamplingStats:
    """Running totals over the run (all processes), checkpointed: generation rounds, groups rolled out, groups dropped
    as zero-variance and surplus groups discarded (beyond what can be carried)."""

    def __init__(self):
        self.rounds = 0
        self.generated_groups = 0
        self.dropped_groups = 0
        self.discarded_groups = 0
        self.exhausted_steps = 0  # optimizer batches trained short of groups with signal (ds_on_exhausted="train")

    def state_dict(self) -> dict:
        return dict(vars(self))

    def load_state_dict(self, state: dict) -> None:
        for key in vars(self):
            setattr(self, key, int(state.get(key, 0)))


class DynamicSamplingPart(MethodPart):
    """DAPO's dynamic sampling as a part (see [`GRPODSTrainer`]): it assembles each training batch from generation
    rounds (`assemble_batch`), dropping zero-variance groups and drawing fresh prompts until the batch is full."""

    name = "grpo_ds"
    assembles_batches = True

    def __init__(self, context):
        super().__init__(context)
        label = f"{type(self).__name__} ({self.name})"
        dataset = context.train_dataset
        if isinstance(dataset, IterableDataset):
            raise NotImplementedError(
                f"{label} draws extra prompts by index, so train_dataset must be a map-style datasets.Dataset, not an "
                "IterableDataset."
            )
        if context.is_vision_language:
            raise NotImplementedError(f"{label} does not support vision-language models.")
        self._carry = None  # local rows of kept groups carried to the next optimizer batch (in memory only)
        self._prompt_sampler = None
        if dataset is not None:
            self._prompt_sampler = PromptSampler(len(dataset), self.args.seed, self.args.shuffle_dataset)
        self.ds_stats = DynamicSamplingStats()

    def checkpointed_state(self) -> dict[str, object]:
        state = {"ds_sampler": self._prompt_sampler} if self._prompt_sampler is not None else {}
        return {**state, "dynamic_sampling": self.ds_stats}

    # ------------------------------------------------------------------ hooks of GRESO's part

    def select_round_rows(self, rows: list[dict], batch: dict) -> tuple[list[dict], list[str] | None]:
        """Rows to roll out in a generation round, given the candidate rows (same count on every process), and the
        prompt ids of every process's groups of the round for `on_round_scored` (None when not needed). GRESO
        replaces prompts it skips here. `batch`: the hooks' own data of the optimizer batch being assembled (empty at
        its first round), handed on to `on_batch_assembled`."""
        return rows, None

    def on_round_scored(self, group_signs: torch.Tensor, group_means: torch.Tensor, round_ids) -> None:
        """Called after each round with the `(world * local groups,)` zero-variance signs of its groups, in process
        order (+1 all-correct, -1 all-wrong, 0 kept), their mean scalar rewards (NaN for a group with an unscored
        completion) and the round's prompt ids from `select_round_rows`."""

    def on_batch_assembled(self, step_signs: torch.Tensor, batch: dict) -> None:
        """Called once per optimizer batch with the signs of every group rolled out for it (all rounds, all
        processes)."""

    # ------------------------------------------------------------------ sampling

    def draw_rows(self, prompts_per_process: int) -> list[dict]:
        """Draws `prompts_per_process * num_processes` fresh prompts (same draw on every process), keeps this
        process's contiguous share and repeats each prompt `num_generations` times, like TRL's sampler."""
        world, rank = self.context.num_processes, self.context.process_index
        indices = self._prompt_sampler.draw(prompts_per_process * world)
        mine = indices[rank * prompts_per_process : (rank + 1) * prompts_per_process]
        return [self.dataset_row(i) for i in mine for _ in range(self.context.num_generations)]

    def dataset_row(self, index: int) -> dict:
        # As the dataloader hands rows (unused columns dropped when TRL drops them), so all rounds' rows are alike.
        return self.context.dataset_row(index)

    def group_signs(self, rewards: torch.Tensor) -> torch.Tensor:
        """`(global groups,)` zero-variance signs (dropped when non-zero) from the gathered scalar rewards (NaN when
        every function left the row unscored, which makes the group non-zero-variance)."""
        signs = self.context.row_signs(rewards, self.context.num_generations)[:: self.context.num_generations]
        return self.context.groups_with_signal(signs)  # e.g. ERPO's RA: all-correct groups keep an advantage

    # ------------------------------------------------------------------ the generation loop

    def next_round_groups(self, kept: list[list[int]], target: int, zero_variance_ratio: float, default: int):
        """Prompts per process of the next generation round, and whether it is the batch's last round (after which
        the batch trains even if short). GRPO-DS: always `default`, never last. GRESO adapts it."""
        return default, False

    def assemble_batch(self, inputs: list[dict], generate_round) -> dict:
        """This process's training batch for one optimizer step: generation rounds (`generate_round(rows)` runs the
        trainer's round: the parts' row choices and sampling settings, TRL's generation and scoring, the parts'
        after-scoring) until the kept groups fill the batch."""
        G = self.context.num_generations
        world, rank = self.context.num_processes, self.context.process_index
        scope = self.args.ds_fill_scope
        target_rows = self.args.per_device_train_batch_size * self.args.steps_per_generation
        target_groups = target_rows // G
        if len(inputs) != target_rows:
            raise ValueError(f"Expected a generation batch of {target_rows} rows per process, got {len(inputs)}.")
        default_groups = math.ceil(self.args.ds_oversample_factor * target_groups)

        pool = []  # local parts (output dicts of kept rows), oldest first
        local_carried = 0
        if self._carry is not None:
            pool.append(self._carry)
            local_carried = self._carry["completion_ids"].size(0) // G
            self._carry = None
        # kept[part][process]: kept groups per part (carried groups, then each round), known identically everywhere.
        carried = self.context.collectives.gather(
            torch.tensor([local_carried], device=self.context.device)
        )
        kept = [carried.view(-1).cpu().tolist()]

        rounds, step_signs, last, groups, exhausted = 0, [], False, 0, False
        dropped = []  # local dropped groups of each round, for padding an exhausted batch (ds_on_exhausted="train")
        batch_data = {}  # the hooks' own data of this batch (select_round_rows -> on_batch_assembled)
        round_groups = default_groups
        rows = list(inputs)
        if round_groups > target_groups:
            rows += self.draw_rows(round_groups - target_groups)
        # At least one round per optimizer batch, so every batch has fresh rollouts and carried groups are at most one
        # optimizer step old.
        while True:
            max_rounds = self.args.ds_max_generation_rounds
            if max_rounds and rounds >= max_rounds:
                message = (
                    f"Dynamic sampling ran ds_max_generation_rounds={max_rounds} generation rounds and holds only "
                    f"{self._fill_description(kept, target_groups)} groups with distinct rewards "
                    f"({sum(s.numel() for s in step_signs)} groups rolled out for this batch, "
                    f"{int(sum((s != 0).sum() for s in step_signs))} zero-variance). Nearly every prompt gets the "
                    "same reward for all its completions: raise ds_max_generation_rounds (0 = unlimited) or "
                    "ds_oversample_factor, use a dataset of suitable difficulty, or check the reward function."
                )
                if self.args.ds_on_exhausted == "error":
                    raise RuntimeError(
                        message + " (ds_on_exhausted='train' trains such a step on the groups it holds instead.)"
                    )
                if self.context.is_main_process:
                    logger.warning(
                        "%s Training this step on the groups it holds, padded with zero-variance groups (no "
                        "gradient) (ds_on_exhausted='train').",
                        message,
                    )
                exhausted = True
                break
            if rounds > 0:
                rows = self.draw_rows(round_groups)
            rows, round_ids = self.select_round_rows(rows, batch_data)
            rounds += 1
            output, round_step = generate_round(rows)
            rewards = round_step.scalar_rewards(self.context.reward_weights)
            signs = self.group_signs(rewards).cpu()
            means = rewards.view(-1, G).mean(dim=1).cpu()
            self.on_round_scored(signs, means, round_ids)
            step_signs.append(signs)
            keep = (signs == 0).view(world, -1)  # (process, local group)
            kept.append(keep.sum(dim=1).tolist())
            local_keep = keep[rank].repeat_interleave(G).nonzero().view(-1)
            if local_keep.numel():
                pool.append(select_rows(output, local_keep))
            if self.args.ds_on_exhausted == "train" and max_rounds:
                local_drop = (~keep[rank]).repeat_interleave(G).nonzero().view(-1)
                if local_drop.numel():
                    dropped = [*dropped, select_rows(output, local_drop)][-target_groups:]  # enough to pad a batch
            groups = groups_per_process(
                kept, target_groups, scope, allow_short=last, num_generations=G,
                steps_per_generation=self.args.steps_per_generation,
            )  # fmt: skip
            if groups:
                break
            zero_variance_ratio = (signs != 0).float().mean().item()
            round_groups, last = self.next_round_groups(kept, target_groups, zero_variance_ratio, default_groups)

        if exhausted:
            batch, groups = self._exhausted_batch(pool, dropped, target_groups)
            plan = GroupPlan(train=[[] for _ in range(world)], carry=[[] for _ in range(world)], discarded=0)
            self.ds_stats.exhausted_steps += 1
        else:
            carry_cap = target_groups if self.args.ds_carry_over else 0
            plan = plan_groups(kept, groups, carry_cap, scope)
            batch, self._carry = self._distribute_groups(pool, plan, output)
        loss_mask = batch["completion_mask"]
        if "tool_mask" in batch:
            loss_mask = loss_mask * batch["tool_mask"]
        batch["num_items_in_batch"] = self.context.collectives.gather(loss_mask.sum()).sum()

        all_signs = torch.cat(step_signs)
        carried_groups = sum(len(c) for c in plan.carry)
        self.ds_stats.rounds += rounds
        self.ds_stats.generated_groups += all_signs.numel()
        self.ds_stats.dropped_groups += int((all_signs != 0).sum())
        self.ds_stats.discarded_groups += plan.discarded
        metrics = self.context.metrics["train"]
        metrics["ds/generation_rounds"].append(float(rounds))
        metrics["ds/frac_dropped"].append((all_signs != 0).float().mean().item())
        metrics["ds/carried_groups"].append(float(carried_groups))
        metrics["ds/discarded_groups"].append(float(plan.discarded))
        metrics["ds/moved_groups"].append(float(plan.moved()))
        metrics["ds/batch_fill"].append(groups / target_groups)
        metrics["ds/exhausted_steps"] = [float(self.ds_stats.exhausted_steps)]  # a running total
        self.on_batch_assembled(all_signs, batch_data)
        return batch

    def _exhausted_batch(self, pool: list[dict], dropped: list[dict], target: int) -> tuple[dict, int]:
        """This process's batch when the rounds ran out (`ds_on_exhausted="train"`): its own kept groups (oldest first,
        at most `target`), padded to `target` groups with the latest rounds' zero-variance groups, whose zero
        advantages give no gradient (as TRL's own trainer trains on them). Nothing moves between processes and
        nothing is carried. Returns the batch and the number of kept groups in it."""
        G = self.context.num_generations
        parts, have = [], 0

        def take_from(outputs: list[dict]) -> None:
            nonlocal have
            for part in outputs:
                take = min(part["completion_ids"].size(0) // G, target - have)
                if take > 0:
                    parts.append(select_rows(part, torch.arange(take * G)))
                    have += take

        take_from(pool)
        kept_groups = have
        take_from(list(reversed(dropped)))  # the latest rounds' first
        if have < target:
            raise RuntimeError(
                f"Dynamic sampling ran out of generation rounds with {have} of {target} groups on process "
                f"{self.context.process_index} to train on; raise ds_oversample_factor."
            )
        return concat_outputs(parts, self._pad_values()), kept_groups

    def _fill_description(self, kept: list[list[int]], target: int) -> str:
        totals = kept_totals(kept)
        if self.args.ds_fill_scope == "global":
            return f"{sum(totals)} of the {len(totals) * target} (all processes)"
        return f"{min(totals)} (the emptiest process) of the {target} per process"

    def _distribute_groups(self, pool: list[dict], plan: GroupPlan, last_output: dict) -> tuple[dict, dict | None]:
        """This process's batch and carry from the plan: its own groups that stay, plus the groups other processes
        send it (one collective, only when some group moves). Groups travel on the CPU; per-row values only."""
        G = self.context.num_generations
        rank = self.context.process_index
        local = concat_outputs(pool, self._pad_values()) if pool else None

        def rows_of(groups: list[int]) -> torch.Tensor:
            return torch.tensor([j * G + i for j in groups for i in range(G)], dtype=torch.long)

        parts = []
        staying = [j for source, j in plan.train[rank] if source == rank]
        if staying:
            parts.append(select_rows(local, rows_of(staying)))
        if plan.moved():
            outgoing = {}
            for dest, groups in enumerate(plan.train):
                mine = [j for source, j in groups if source == rank and dest != rank]
                if mine:
                    outgoing[dest] = per_row_to(select_rows(local, rows_of(mine)), "cpu")
            received = self.context.collectives.gather_object([outgoing])
            device = self.context.device
            for source, sent in enumerate(received):
                if source != rank and rank in sent:
                    rows = per_row_to(sent[rank], device)
                    # TRL reads the batch size from the first value: keep the generation output's key order.
                    parts.append({key: rows.get(key, value) for key, value in last_output.items()})
        batch = concat_outputs(parts, self._pad_values())
        carry = select_rows(local, rows_of(plan.carry[rank])) if plan.carry[rank] else None
        return batch, carry

    def _pad_values(self) -> dict[str, float]:
        pad_id = self.context.pad_token_id
        return {"prompt_ids": pad_id, "completion_ids": pad_id, "tool_mask": 1}
