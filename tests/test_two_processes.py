# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""Every registered algorithm, trained on two processes (gloo, CPU): identical per-prompt state on both processes, and
group-level decisions taken on whole groups (all processes' rows), checked against values computed by hand from the
reward design of `scripts/every_trainer_two_processes.py` (see its docstring) and the rows each process reported.

Layouts: grpo / rl_zvp / erpo / erpo_rl_zvp run the *split* layout, where every generation batch is
`[c c c c s s | s s w w w w]` (process 0 | process 1): the `split` prompt's group has 2 rows on each process, rewarded
1 on process 0 and 0 on process 1 -- mixed as a whole, constant on each half. GRPO-DS, GRESO and ExGRPO(+RL-ZVP)
require whole groups on each process (`per_device_train_batch_size * steps_per_generation % num_generations == 0`,
checked below), so they run the *whole-group* layout; there a `split` prompt is all-correct when process 0 rolls it out
and all-wrong on process 1, and a `mixed` prompt has k = G/2 correct completions on process 0 and k = 1 on process 1:
the outcome of a prompt depends on which process rolled it out, which the other process can only learn by gathering.
"""

from collections import Counter, OrderedDict
from dataclasses import dataclass
from pathlib import Path

import pytest

from zvp_trl.core.composition import ALGORITHMS, get_algorithm


pytestmark = pytest.mark.distributed


WORLD = 2
# Every `_checkpointed_state` entry must be checked below beyond equality; a new one fails here until it is.
KNOWN_STATE = {"rollouts", "erpo_history", "ds_sampler", "dynamic_sampling", "greso", "exgrpo_buffer", "exgrpo_phase"}


@dataclass
class Group:
    pid: str
    kind: str
    owners: list[int]  # process of each row
    rewards: list[float]
    replay: list[bool]  # ExGRPO: row holds a replayed trajectory

    @property
    def k(self) -> int:
        return sum(r > 0 for r in self.rewards)

    @property
    def sign(self) -> int:
        """+1 all-correct, -1 all-wrong, 0 mixed: decided on the whole group."""
        return 1 if self.k == len(self.rewards) else -1 if self.k == 0 else 0

    @property
    def is_split(self) -> bool:
        return len(set(self.owners)) > 1


@dataclass
class Round:
    step: int
    groups: list[Group]


def expected_reward(kind: str, rank: int, position: int, num_generations: int) -> float:
    """The reward design, by hand: correct 1, wrong 0, split 1 on process 0 / 0 on process 1, mixed correct on the first
    G/2 positions of its group on process 0 and on the first one on process 1."""
    return {
        "correct": 1.0,
        "wrong": 0.0,
        "split": float(rank == 0),
        "mixed": float(position < (num_generations // 2 if rank == 0 else 1)),
    }[kind]


def global_rounds(ranks: list[dict]) -> list[Round]:
    """Every reward computation, with the rows of both processes in process order (TRL's gathered order), grouped."""
    G = ranks[0]["num_generations"]
    assert len({len(r["rounds"]) for r in ranks}) == 1
    replay_flags = {}  # (rank, batch) -> replay flags, when the trainer reports them
    for rank, r in enumerate(ranks):
        for b, batch in enumerate(r["batches"]):
            if "exgrpo_replay" in batch:
                replay_flags[rank, b] = [bool(x) for x in batch["exgrpo_replay"]]
    rounds = []
    for index, parts in enumerate(zip(*(r["rounds"] for r in ranks))):
        assert len({p["step"] for p in parts}) == 1
        rewards = [x for p in parts for x in p["rewards"]]
        assert all(p["gathered_rewards"] == rewards for p in parts)  # gathered identically, in process order
        ids = [x for p in parts for x in p["ids"]]
        kinds = [x for p in parts for x in p["kinds"]]
        owners = [rank for rank, p in enumerate(parts) for _ in p["ids"]]
        replay = [x for rank, p in enumerate(parts) for x in replay_flags.get((rank, index), [False] * len(p["ids"]))]
        assert len(ids) % G == 0
        groups = []
        for start in range(0, len(ids), G):
            rows = slice(start, start + G)
            assert len(set(ids[rows])) == 1 and len(set(kinds[rows])) == 1  # the G copies of a prompt are adjacent
            group = Group(ids[start], kinds[start], owners[rows], rewards[rows], replay[rows])
            assert group.rewards == [expected_reward(group.kind, o, j, G) for j, o in enumerate(group.owners)]
            groups.append(group)
        rounds.append(Round(parts[0]["step"], groups))
    return rounds


def rows_of(rnd: Round, rank: int) -> list[tuple[Group, int]]:
    """(group, index in group) of each of `rank`'s rows of a round, in its local order."""
    return [(g, j) for g in rnd.groups for j, owner in enumerate(g.owners) if owner == rank]


# ------------------------------------------------------------------------------------------------ per-state checks


def split_layout_error(algorithm: str, tmp_path: Path) -> str | None:
    """Why the algorithm's config rejects the split layout on two processes (None if it accepts it)."""
    config_class, _ = get_algorithm(algorithm).load()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(config_class, "world_size", property(lambda self: WORLD))
        try:
            config_class(
                output_dir=str(tmp_path / "config"),
                use_cpu=True,
                bf16=False,
                activation_checkpointing=False,
                per_device_train_batch_size=3,
                gradient_accumulation_steps=2,
                num_generations=4,
            )
        except ValueError as error:
            return str(error)
    return None


def check_layout(ranks, rounds, tmp_path):
    layout = ranks[0]["layout"]
    error = split_layout_error(ranks[0]["algorithm"], tmp_path)
    # The whole-group layout only because the config rejects groups split across processes.
    assert layout == ("split" if error is None else "whole")
    assert error is None or "multiple of num_generations" in error
    if layout == "split":
        for rnd in rounds:
            # [c c c c s s | s s w w w w]: the middle group really is split, 2 rows on each process.
            assert [g.kind for g in rnd.groups] == ["correct", "split", "wrong"]
            split = rnd.groups[1]
            assert split.owners == [0, 0, 1, 1] and split.rewards == [1.0, 1.0, 0.0, 0.0] and split.sign == 0
            assert [g.sign for g in rnd.groups] == [1, 0, -1]
    else:
        assert not any(g.is_split for rnd in rounds for g in rnd.groups)
        # The rank-dependent outcomes happened: a split prompt all-correct on process 0 and all-wrong on process 1,
        # mixed prompts with k = G/2 on process 0 and k = 1 on process 1.
        G = ranks[0]["num_generations"]
        seen = {(g.kind, g.owners[0], g.k) for rnd in rounds for g in rnd.groups if not any(g.replay)}
        assert {("split", 0, G), ("split", 1, 0), ("mixed", 0, G // 2), ("mixed", 1, 1)} <= seen


def check_rollouts(ranks, rounds, state):
    local_rows = ranks[0]["local_rows"]
    assert state["rollouts"] == {
        "total": sum(len(g.rewards) for rnd in rounds for g in rnd.groups),  # every round of every step
        "kept": ranks[0]["max_steps"] * WORLD * local_rows,  # one full batch per optimizer step
    }


def check_advantages(ranks, rounds, state):
    local_rows = ranks[0]["local_rows"]
    if "dynamic_sampling" in state:
        # Only groups with distinct rewards reach the loss, a full batch on every process.
        for r in ranks:
            for batch in r["batches"]:
                assert len(batch["advantages"]) == local_rows and min(map(abs, batch["advantages"])) > 0
        return
    for rank, r in enumerate(ranks):
        assert len(r["batches"]) == len(rounds)
        for rnd, batch in zip(rounds, r["batches"]):
            rows = rows_of(rnd, rank)
            assert len(batch["advantages"]) == len(rows)
            for (group, j), advantage in zip(rows, batch["advantages"]):
                mean = sum(group.rewards) / len(group.rewards)
                if group.sign != 0:
                    assert advantage == 0.0  # zero-variance group: no GRPO signal
                else:  # split rows included: +0.87 on process 0, -0.87 on process 1, never 0
                    assert advantage != 0.0 and (advantage > 0) == (group.rewards[j] > mean)


def check_rl_zvp(ranks, rounds, state):
    for rank, r in enumerate(ranks):
        for rnd, batch in zip(rounds, r["batches"]):
            expected = [0.0 if g.replay[j] else float(g.sign) for g, j in rows_of(rnd, rank)]
            assert batch["zvp_signs"] == expected
    if ranks[0]["layout"] == "split":
        # Literally: process 0 holds [c c c c s s], process 1 [s s w w w w]; the split rows get no ZV sign.
        assert all(b["zvp_signs"] == [1.0] * 4 + [0.0] * 2 for b in ranks[0]["batches"])
        assert all(b["zvp_signs"] == [0.0] * 2 + [-1.0] * 4 for b in ranks[1]["batches"])


def check_erpo(ranks, rounds, state):
    history = state["erpo_history"]
    base, step, cap = history["base"], history["step"], history["max_temperature"]
    assert base == ranks[0]["base_temperature"]
    temperatures, updates = {}, Counter()
    dynamic_sampling = "dynamic_sampling" in state
    sampled_at = {}  # dynamic sampling: step -> temperatures of the kept groups of its rounds (and the step before)
    for b, rnd in enumerate(rounds):
        if dynamic_sampling:  # a batch gathers several rounds' kept groups (carried ones: one step older)
            kept = {temperatures.get(g.pid, base) for g in rnd.groups if g.sign == 0}
            sampled_at.setdefault(rnd.step, set()).update(kept)
            sampled_at.setdefault(rnd.step + 1, set()).update(kept)
        else:
            for rank, r in enumerate(ranks):  # each row sampled at its prompt's temperature before this batch
                expected = [temperatures.get(g.pid, base) for g, _ in rows_of(rnd, rank)]
                assert r["batches"][b]["erpo_temperatures"] == pytest.approx(expected)
        for g in rnd.groups:  # raised after an all-correct group (whole group), held otherwise
            if g.k == len(g.rewards):
                temperatures[g.pid] = min(temperatures.get(g.pid, base) + step, cap)
            updates[g.pid] += 1
    assert history["temperatures"] == pytest.approx(temperatures)
    assert history["num_updates"] == dict(updates)  # every rolled-out group, dropped ones too
    if dynamic_sampling:
        for r in ranks:
            for batch in r["batches"]:
                allowed = sampled_at[batch["step"]]
                assert all(any(t == pytest.approx(a) for a in allowed) for t in batch["erpo_temperatures"])
    if ranks[0]["layout"] == "split":
        # By hand: 6 prompts, 3 per step, 4 steps: each prompt drawn twice; only the correct ones climbed, to 1.2.
        kinds = ranks[0]["dataset"]
        assert history["num_updates"] == {pid: 2 for pid in kinds}
        assert history["temperatures"] == pytest.approx(
            {pid: base + 2 * step for pid, kind in kinds.items() if kind == "correct"}
        )
        # The split prompts (all-correct on process 0's rows) were never treated as residual.
        assert not any(kinds[pid] == "split" for pid in history["temperatures"])
        assert ranks[0]["batches"][-1]["erpo_temperatures"] == pytest.approx([base + step] * 4 + [base] * 2)


def check_dynamic_sampling(ranks, rounds, state):
    """One global batch (`ds_fill_scope="global"`): rounds go on only while all processes together lack kept groups;
    then every process trains on the same number of groups (GRESO: fewer after a short last round), kept groups of
    one process filling the other's batch where needed."""
    G = ranks[0]["num_generations"]
    target = ranks[0]["local_rows"] // G  # groups per process and optimizer batch
    args = ranks[0]["args"]
    assert args["ds_fill_scope"] == "global"
    groups = [g for rnd in rounds for g in rnd.groups]
    carry_cap = WORLD * target if args["ds_carry_over"] else 0
    carried, discarded, later_rounds_groups, borrowed = 0, 0, 0, False
    for step in range(ranks[0]["max_steps"]):
        step_rounds = [rnd for rnd in rounds if rnd.step == step]
        trained = [len(r["batches"][step]["advantages"]) for r in ranks]
        assert trained[0] == trained[1] and trained[0] % G == 0  # the same whole groups on every process
        trained = trained[0] // G
        total, own = carried, [0] * WORLD
        for i, rnd in enumerate(step_rounds):
            # Another round only while all processes together lack groups with distinct rewards.
            assert i == 0 or total < WORLD * target
            later_rounds_groups += len(rnd.groups) if i > 0 else 0
            for g in rnd.groups:
                total += g.sign == 0
                own[g.owners[0]] += g.sign == 0
        if trained < target:  # GRESO's short last round
            assert "greso" in state and args["greso_train_short_batch"] and total < WORLD * target
        else:
            assert trained == target and total >= WORLD * target
        borrowed |= carried == 0 and min(own) < trained  # a process trained on the other one's groups
        surplus = total - WORLD * trained
        carried = min(surplus, carry_cap)
        discarded += surplus - carried
    assert borrowed  # per-process filling would have needed another round at some step
    assert state["dynamic_sampling"] == {
        "rounds": len(rounds),
        "generated_groups": len(groups),
        "dropped_groups": sum(g.sign != 0 for g in groups),  # split prompts included: zero-variance on each process
        "discarded_groups": discarded,
        "exhausted_steps": 0,  # no batch ran out of generation rounds
    }
    sampler = state["ds_sampler"]
    drawn = sampler["epoch"] * len(ranks[0]["dataset"]) + sampler["position"]
    # Every round after a step's first draws all its prompts (the first round's come from the dataloader).
    if "greso" in state:
        assert drawn >= later_rounds_groups  # plus the fresh prompts that replaced skipped ones
    else:
        assert drawn == later_rounds_groups


def check_greso(ranks, rounds, state):
    greso, args = state["greso"], ranks[0]["args"]
    traces = {}
    for rnd in rounds:
        for g in rnd.groups:
            # the group's mean reward on the process that rolled it out
            traces.setdefault(g.pid, []).append(sum(g.rewards) / len(g.rewards))
    assert greso["traces"] == traces
    # A split prompt's trace holds 1.0 and 0.0: all-correct where process 0 rolled it out, all-wrong on process 1.
    kinds = ranks[0]["dataset"]
    assert any(kinds[pid] == "split" and {1.0, 0.0} <= set(t) for pid, t in traces.items())
    p_easy, p_hard = args["greso_p_easy"], args["greso_p_hard"]
    assert args["greso_adapt_from_epoch"] == 0
    for step in range(ranks[0]["max_steps"]):
        signs = [g.sign for rnd in rounds if rnd.step == step for g in rnd.groups]
        easy, hard = signs.count(1) / len(signs), signs.count(-1) / len(signs)
        delta, low, high = args["greso_delta_p"], args["greso_p_min"], args["greso_p_max"]
        p_easy = max(p_easy - delta, low) if easy >= args["greso_easy_target"] else min(p_easy + delta, high)
        p_hard = max(p_hard - delta, low) if hard >= args["greso_hard_target"] else min(p_hard + delta, high)
    assert greso["p_easy"] == pytest.approx(p_easy) and greso["p_hard"] == pytest.approx(p_hard)
    assert greso["draws"] >= len(rounds)  # at least one skip decision per round


def check_exgrpo(ranks, rounds, state):
    G, args = ranks[0]["num_generations"], ranks[0]["args"]
    local_groups = ranks[0]["local_rows"] // G
    per_process = int(args["exgrpo_replay_ratio"] * local_groups)
    threshold = args["exgrpo_start_threshold"]
    active, draws, buffer, retired, last_owner = threshold is None, 0, OrderedDict(), set(), {}
    collected_from = None  # the first batch that collected (the first mixed one, by default)
    for b, rnd in enumerate(rounds):
        # Replays: one group per process once the mixed phase started and the buffer holds questions.
        chosen = min(per_process * WORLD, len(buffer)) if active else 0
        draws += bool(active and buffer)
        # Collection (and bucket moves) only in the mixed phase, unless asked for in the warm-up; retirement always.
        collect = active or args["exgrpo_collect_during_warmup"]
        if collect and collected_from is None:
            collected_from = b
        for rank, r in enumerate(ranks):
            flags = r["batches"][b]["exgrpo_replay"]
            assert sum(flags) == len(range(rank, chosen, WORLD))
            assert all(not f or i % G == 0 for i, f in enumerate(flags))  # the first row of a replayed group
        for g in rnd.groups:
            if args["exgrpo_exclude_retired"]:
                assert g.pid not in retired  # a retired question is never rolled out again (fresh or replayed)
            else:
                assert g.pid not in retired or not any(g.replay)  # drawn fresh again, but never replayed
            if any(g.replay):
                assert g.pid in buffer
            if g.k == G:
                buffer.pop(g.pid, None)
                retired.add(g.pid)
            elif not collect or g.k == 0:
                pass  # no bucket 0: a group with no correct completion changes nothing
            elif g.pid in buffer:
                buffer[g.pid] = g.k
                buffer.move_to_end(g.pid)
            elif any(r > 0 and not p for r, p in zip(g.rewards, g.replay)):
                buffer[g.pid] = g.k
            if not any(g.replay):
                last_owner[g.pid] = g.owners[0]
        correct = sum(r > 0 for g in rnd.groups for r in g.rewards) / sum(len(g.rewards) for g in rnd.groups)
        active = active or correct > threshold
    assert state["exgrpo_phase"] == {"active": active, "draws": draws}
    buffer_state = state["exgrpo_buffer"]
    assert [(pid, entry["k"]) for pid, entry in buffer_state["entries"]] == list(buffer.items())
    assert buffer_state["retired"] == sorted(retired)
    kinds = ranks[0]["dataset"]
    # Retired: the correct prompt, and a split prompt rolled out on process 0 (all-correct there).
    assert {kinds[pid] for pid in retired} == {"correct", "split"}
    for pid, entry in buffer_state["entries"]:
        assert kinds[pid] == "mixed" and entry["row"]["kind"] == "mixed" and entry["prompt_ids"]
        assert entry["trajectories"] and all(len(t["ids"]) == len(t["logps"]) > 0 for t in entry["trajectories"])
        assert all(x <= 0 for t in entry["trajectories"] for x in t["logps"])
    # Bucketed by the whole group's count: G/2 where process 0 rolled it out (last), 1 on process 1 -- unless a
    # replayed group updated it since, whose count includes the replayed row.
    assert any(k == G // 2 for k in buffer.values()) and any(k == 1 for k in buffer.values())
    assert all(k > 0 for k in buffer.values())
    # Mixed phase from the second step on; that step is the first to collect, and replays start at the third.
    assert active and collected_from == 1 and draws == ranks[0]["max_steps"] - 2


CHECKS = {
    "ds_sampler": check_dynamic_sampling,  # with "dynamic_sampling"
    "erpo_history": check_erpo,
    "greso": check_greso,
    "exgrpo_buffer": check_exgrpo,  # with "exgrpo_phase"
}


def check_run(ranks: list[dict], tmp_path: Path) -> None:
    r0, r1 = ranks
    state = r0["state"]
    # (a) identical per-prompt state on both processes, exactly (as JSON, like a checkpoint's zvp_state.json) ...
    assert r0["state"] == r1["state"]
    # ... and non-trivial: every registered object moved away from its initial state.
    assert set(state) <= KNOWN_STATE, f"unchecked checkpointed state: {set(state) - KNOWN_STATE}"
    assert set(state) == set(r0["initial_state"]) == set(r1["initial_state"])
    for name in state:
        assert state[name] != r0["initial_state"][name], name
    assert r0["global_step"] == r1["global_step"] == r0["max_steps"] >= 3
    # (b) group-level decisions on whole groups, against hand-computed values.
    rounds = global_rounds(ranks)
    assert {rnd.step for rnd in rounds} == set(range(r0["max_steps"]))
    check_layout(ranks, rounds, tmp_path)
    check_rollouts(ranks, rounds, state)
    check_advantages(ranks, rounds, state)
    if "zvp_signs" in r0["batches"][0]:
        check_rl_zvp(ranks, rounds, state)
    for name, check in CHECKS.items():
        if name in state:
            check(ranks, rounds, state)


# Every registered algorithm, and a composition of three methods by name (zvp_trl.core.composition).
@pytest.mark.parametrize("algorithm", [*ALGORITHMS, "erpo+exgrpo+rl_zvp"])
def test_two_processes_agree_and_decide_on_whole_groups(every_trainer_run, tmp_path, algorithm):
    ranks = every_trainer_run(algorithm)
    assert [r["rank"] for r in ranks] == [0, 1] and all(r["world_size"] == WORLD for r in ranks)
    # What the processes ran, from inside: plain DDP over gloo, full (unsharded) parameters.
    assert all(r["distributed_type"] == "MULTI_CPU" and r["backend"] == "gloo" and not r["is_fsdp2"] for r in ranks)
    assert all(r["parameters"]["num_dtensor_shard0"] == 0 for r in ranks)
    assert all(r["algorithm"] == algorithm for r in ranks)
    check_run(ranks, tmp_path)
