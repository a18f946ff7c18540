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

Kept groups are identified by `(process, local index)`, the local index counting a process's kept groups in the order
they were kept (carried groups first, then round by round). Oldest groups are used first: the global order is by part
(the carried groups, then each round), then by process, then by local index.
"""

from dataclasses import dataclass


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
    and stay on the process that holds them (the next batch pools them again). Process scope: each process trains on its own oldest `groups`
    groups and carries its next `carry_per_process`.
    """
    _check_scope(scope)
    totals = kept_totals(kept)
    world = len(totals)
    order = [group for part in _groups_by_part(kept) for group in part]  # by part, then process, then local index
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
    for part_groups in _groups_by_part(kept):
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
