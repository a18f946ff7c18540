# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""Dynamic sampling's batch assembly as pure functions (no trainer inside).

After each generation round, every process knows how many groups with distinct rewards ("kept" groups) each process
holds, from the gathered rewards. These functions decide, identically on every process and without communication:

- whether the optimizer batch can be assembled (`groups_per_process`): with `scope="global"` (verl's DAPO trainer,
  the default) the kept groups of all processes count together, `world * target` of them fill the batch whichever
  process rolled them out; with `scope="process"` every process must hold `target` groups of its own;
- which kept group trains on which process, which ones are carried to the next optimizer batch and how many are
  discarded (`plan_groups`), so that every process trains on the same number of groups and as few groups as possible
  move between processes.

It also holds the pieces that draw and assemble the batch: `PromptSampler` (the seeded prompt order of the extra
rounds, checkpointed), `select_rows` and `concat_outputs` (rows of TRL's generation outputs, re-padded).

Kept groups are identified by `(process, local index)`, the local index counting a process's kept groups in the order
they were kept (carried groups first, then round by round). Oldest groups are used first: the global order is by part
(the carried groups, then each round), then by process, then by local index.
"""

import random
from dataclasses import dataclass

import torch


SCOPES = ("global", "process")


@dataclass
class GroupPlan:
    """Where the kept groups go.

    Attributes:
        train: per destination process, the `(source process, local index)` of the groups it trains on, in the global
            order (oldest first).
        carry: per process, the local indices of its own groups carried to the next optimizer batch.
        discarded: number of kept groups neither trained on nor carried.
    """

    train: list[list[tuple[int, int]]]
    carry: list[list[int]]
    discarded: int

    def moved(self) -> int:
        """Number of groups that train on another process than the one that rolled them out."""
        return sum(src != dest for dest, groups in enumerate(self.train) for src, _ in groups)


def _check_scope(scope: str) -> None:
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {SCOPES}, got {scope!r}.")


def kept_totals(kept: list[list[int]]) -> list[int]:
    """Kept groups per process, summed over the parts (`kept[part][process]`)."""
    return [sum(column) for column in zip(*kept, strict=True)]


def groups_per_process(
    kept: list[list[int]],
    target: int,
    scope: str = "global",
    allow_short: bool = False,
    num_generations: int = 1,
    steps_per_generation: int = 1,
) -> int:
    """Groups each process trains on if the batch were assembled now, or 0 when it cannot be yet.

    `target` when the batch is full: `sum(kept) >= world * target` (global) or every process holds `target` (process).
    Otherwise, with `allow_short` (GRESO's last round), the largest `g < target` that the kept groups can give every
    process and whose `g * num_generations` rows split into `steps_per_generation` equal micro-batches; 0 when there
    is none (or without `allow_short`).
    """
    _check_scope(scope)
    totals = kept_totals(kept)
    world = len(totals)
    available = sum(totals) // world if scope == "global" else min(totals)
    if available >= target:
        return target
    if not allow_short:
        return 0
    for g in range(min(available, target - 1), 0, -1):
        if (g * num_generations) % steps_per_generation == 0:
            return g
    return 0


def plan_groups(kept: list[list[int]], groups: int, carry_per_process: int, scope: str = "global") -> GroupPlan:
    """Assigns kept groups: every process trains on `groups` of them; up to `carry_per_process` groups per process
    (`world * carry_per_process` in all, with the global scope) are carried, the rest discarded.

    Global scope: the oldest `world * groups` groups train (by part: carried groups, then round by round; within the
    part that does not fit whole, each process's own groups first cover what it still lacks, then process order).
    Each process trains on as many of its own selected groups as it can (up to `groups`); the remainder fills the
    other processes, in process order. Surplus groups are carried oldest first, up to `world * carry_per_process`,
    and stay on the process that holds them (the next batch pools them again). Process scope: each process trains on
    its own oldest `groups` groups and carries its next `carry_per_process`.
    """
    _check_scope(scope)
    totals = kept_totals(kept)
    world = len(totals)
    parts = _groups_by_part(kept)
    order = [group for part in parts for group in part]  # by part, then process, then local index
    if scope == "process":
        if min(totals) < groups:
            raise ValueError(f"Every process needs {groups} kept groups, got {totals}.")
        own = [[g for g in order if g[0] == r] for r in range(world)]
        train = [own[r][:groups] for r in range(world)]
        carry = [[j for _, j in own[r][groups : groups + carry_per_process]] for r in range(world)]
        discarded = sum(totals) - world * groups - sum(len(c) for c in carry)
        return GroupPlan(train, carry, discarded)
    if sum(totals) < world * groups:
        raise ValueError(f"{world} processes x {groups} groups need {world * groups} kept groups, got {sum(totals)}.")
    # Oldest parts first. In the part that does not fit whole, each process's own groups first cover what it still
    # lacks, so that groups of the same age stay where they are; the rest of the room is filled in process order.
    selected, room = set(), world * groups
    held = [0] * world  # selected groups per process
    for part_groups in parts:
        if len(part_groups) <= room:
            chosen = part_groups
        else:
            chosen = []
            for r in range(world):
                own = [g for g in part_groups if g[0] == r]
                chosen += own[: max(min(groups - held[r], room - len(chosen)), 0)]
            taken = set(chosen)
            chosen += [g for g in part_groups if g not in taken][: room - len(chosen)]
        for group in chosen:
            held[group[0]] += 1
        selected.update(chosen)
        room -= len(chosen)
        if room == 0:
            break
    train, overflow = [[] for _ in range(world)], []
    for group in order:
        if group in selected:
            source = group[0]
            (train[source] if len(train[source]) < groups else overflow).append(group)
    for r in range(world):
        while len(train[r]) < groups:
            train[r].append(overflow.pop(0))
    rank_of = {group: i for i, group in enumerate(order)}
    train = [sorted(groups_of, key=rank_of.__getitem__) for groups_of in train]
    surplus = [group for group in order if group not in selected][: world * carry_per_process]
    carry = [[j for source, j in surplus if source == r] for r in range(world)]
    return GroupPlan(train, carry, sum(totals) - len(selected) - len(surplus))


def _groups_by_part(kept: list[list[int]]) -> list[list[tuple[int, int]]]:
    """Per part, its groups as `(process, local index)`, in process order."""
    parts, offsets = [], [0] * len(kept[0])
    for part in kept:
        groups = []
        for r, count in enumerate(part):
            groups.extend((r, offsets[r] + j) for j in range(count))
            offsets[r] += count
        parts.append(groups)
    return parts


class PromptSampler:
    """Draws dataset indices epoch by epoch from a seeded permutation (a fresh one per epoch), identically on every
    process. Its position is checkpointed, so a resumed run draws the prompts the interrupted run would have drawn."""

    def __init__(self, size: int, seed: int, shuffle: bool = True):
        if size < 1:
            raise ValueError("Dynamic sampling needs a non-empty train_dataset to draw prompts from.")
        self.size = size
        self.seed = seed
        self.shuffle = shuffle
        self.epoch = 0
        self.position = 0
        self._order = None

    def _permutation(self) -> list[int]:
        if self._order is None:
            order = list(range(self.size))
            if self.shuffle:
                # Not the global RNG (TRL seeds it per device) and not the dataloader's permutation (same seed).
                random.Random(f"zvp-ds-sampler-{self.seed}-{self.epoch}").shuffle(order)
            self._order = order
        return self._order

    def draw(self, n: int) -> list[int]:
        indices = []
        while len(indices) < n:
            if self.position >= self.size:
                self.epoch, self.position, self._order = self.epoch + 1, 0, None
            take = min(n - len(indices), self.size - self.position)
            indices.extend(self._permutation()[self.position : self.position + take])
            self.position += take
        return indices

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.position, self._order = int(state["epoch"]), int(state["position"]), None


# Keys of TRL's generation output that are left-padded; every other (B, T) tensor is right-padded.
_LEFT_PADDED = ("prompt_ids", "prompt_mask")


def select_rows(output: dict, index: torch.Tensor) -> dict:
    """The rows `index` (1-D long tensor) of a generation output: every per-row tensor and list is indexed; 0-dim
    tensors (batch-global scalars) and `None` are kept as they are."""
    selected = {}
    for key, value in output.items():
        if isinstance(value, torch.Tensor) and value.dim() > 0:
            selected[key] = value[index.to(value.device)]
        elif isinstance(value, list):
            selected[key] = [value[i] for i in index.tolist()]
        else:
            selected[key] = value
    return selected


def _is_per_row(value) -> bool:
    return isinstance(value, list) or (isinstance(value, torch.Tensor) and value.dim() > 0)


def per_row_to(output: dict, device) -> dict:
    """The per-row values of a generation output (tensors moved to `device`)."""
    return {
        key: value.to(device) if isinstance(value, torch.Tensor) else value
        for key, value in output.items()
        if _is_per_row(value)
    }


def concat_outputs(parts: list[dict], pad_values: dict[str, float]) -> dict:
    """Concatenates generation outputs row-wise. 2-D tensors of different widths are padded first: `prompt_ids` /
    `prompt_mask` on the left (TRL left-pads prompts), every other one on the right, with `pad_values[key]` (default
    0). 0-dim tensors and `None` are taken from the last part (recompute batch-global values afterwards)."""
    if len(parts) == 1:
        return dict(parts[0])
    keys = parts[0].keys()
    for part in parts[1:]:
        if part.keys() != keys:
            raise ValueError(
                f"Cannot concatenate generation outputs with different keys: {sorted(keys)} vs {sorted(part.keys())}."
            )
    merged = {}
    for key in keys:
        values = [part[key] for part in parts]
        first = values[-1]
        if isinstance(first, torch.Tensor) and first.dim() > 0:
            if first.dim() == 2:
                width = max(v.size(1) for v in values)
                padded = []
                for v in values:
                    missing = width - v.size(1)
                    if missing:
                        filler = v.new_full((v.size(0), missing), pad_values.get(key, 0))
                        v = torch.cat([filler, v] if key in _LEFT_PADDED else [v, filler], dim=1)
                    padded.append(v)
                values = padded
            elif first.dim() > 2:
                raise NotImplementedError(
                    f"Cannot concatenate the {first.dim()}-D output {key!r} (multimodal inputs)."
                )
            merged[key] = torch.cat(values, dim=0)
        elif isinstance(first, list):
            merged[key] = [item for v in values for item in v]
        else:
            merged[key] = first
    return merged
