# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""Each method's part decides on hand-made rows and rewards, in the unit tier (tests/part_stand_in.py: no model, no
TRL trainer): which rows are zero-variance and what advantages their tokens get (RL-ZVP), which temperature a row is
sampled at and which groups get RA (ERPO), which groups are dropped and what fills the batch (GRPO-DS), which prompts
are skipped before rollout (GRESO), which trajectories are stored, retired or replayed (ExGRPO). Expected values are
worked out by hand in the comments."""

import pytest
import torch
from cpu_config import cpu_config_kwargs
from datasets import Dataset
from part_stand_in import StandIn, generation_output, scored_step

from zvp_trl.core.prompt_ids import prompt_id
from zvp_trl.core.step import LossStep
from zvp_trl.methods.erpo.config import ERPOConfig
from zvp_trl.methods.erpo.part import ERPOPart
from zvp_trl.methods.exgrpo.config import ExGRPOConfig
from zvp_trl.methods.exgrpo.part import ExGRPOPart
from zvp_trl.methods.greso.config import GRESOConfig
from zvp_trl.methods.greso.part import GRESOPart
from zvp_trl.methods.grpo_ds.algorithm import PromptSampler
from zvp_trl.methods.grpo_ds.config import GRPODSConfig
from zvp_trl.methods.grpo_ds.part import DynamicSamplingPart
from zvp_trl.methods.rl_zvp.config import RLZVPConfig
from zvp_trl.methods.rl_zvp.part import RLZVPPart


pytestmark = pytest.mark.unit

G = 4  # completions per prompt; 8 rows per process: two groups a round


def rows_of(*prompts: str) -> list[dict]:
    return [{"prompt": p, "solution": "1"} for p in prompts for _ in range(G)]


# ----------------------------------------------------------------------------------------------------- RL-ZVP


def test_rl_zvp_part_marks_zero_variance_rows_by_their_whole_group(tmp_path):
    args = RLZVPConfig(**cpu_config_kwargs(tmp_path, num_generations=G))
    part = StandIn(args, [RLZVPPart]).part("rl_zvp")
    # Group 0 all correct (+1), group 1 all wrong (-1).
    output = generation_output(8)
    part.after_scoring(scored_step(rows_of("a", "b"), [1, 1, 1, 1, 0, 0, 0, 0]), output)
    assert output["zvp_signs"].tolist() == [1, 1, 1, 1, -1, -1, -1, -1]
    # Group 0 mixed (one wrong), group 1 all wrong; a replayed row (ExGRPO) keeps its own treatment (0).
    output = generation_output(8)
    step = scored_step(rows_of("a", "b"), [1, 0, 1, 1, 0, 0, 0, 0])
    step.replayed_rows = [False] * 4 + [True] + [False] * 3
    part.after_scoring(step, output)
    assert output["zvp_signs"].tolist() == [0, 0, 0, 0, 0, -1, -1, -1]
    # An unscored row (NaN) makes its group not zero-variance.
    output = generation_output(8)
    part.after_scoring(scored_step(rows_of("a", "b"), [1, 1, 1, float("nan"), 0, 0, 0, 0]), output)
    assert output["zvp_signs"].tolist() == [0, 0, 0, 0, -1, -1, -1, -1]


def test_rl_zvp_part_token_advantages_by_hand(tmp_path):
    args = RLZVPConfig(**cpu_config_kwargs(tmp_path, num_generations=G, zvp_alpha=0.1))
    part = StandIn(args, [RLZVPPart]).part("rl_zvp")
    entropies = torch.tensor([[0.5, 1.0, 0.2], [0.5, 1.0, 0.2], [0.5, 1.0, 0.2], [0.4, 0.8, 3.0]])
    inputs = {
        "completion_mask": torch.tensor([[1, 1, 1], [1, 1, 1], [1, 1, 0], [1, 1, 0]]),
        "advantages": torch.tensor([0.0, 0.0, 0.7, 0.0]),
        "zvp_signs": torch.tensor([1.0, -1.0, 0.0, -1.0]),
    }
    loss = LossStep()
    advantages = part.token_advantages(loss, inputs, entropies)
    expected = [
        [0.05, 0.10, 0.02],  # all-correct: 0.1 * H
        [-0.05, 0.0, -0.08],  # all-wrong: -0.1 * (max H = 1.0 - H)
        [0.7, 0.7, 0.0],  # mixed: GRPO's advantage on valid tokens, 0 on padding
        [-0.04, 0.0, 0.0],  # all-wrong: the max over valid tokens only (0.8, not the padded 3.0)
    ]
    torch.testing.assert_close(advantages, torch.tensor(expected), atol=1e-7, rtol=0)
    # TRL's sequence-level rules see the group's sign on zero-variance rows, GRPO's advantage elsewhere.
    assert loss.sequence_advantages.view(-1).tolist() == pytest.approx([1.0, -1.0, 0.7, -1.0])


def test_rl_zvp_part_switches_each_branch(tmp_path):
    args = RLZVPConfig(**cpu_config_kwargs(tmp_path, num_generations=G, zvp_alpha=0.1, zvp_use_positive=False))
    part = StandIn(args, [RLZVPPart]).part("rl_zvp")
    entropies = torch.tensor([[0.5, 1.0], [0.5, 1.0]])
    inputs = {
        "completion_mask": torch.ones(2, 2, dtype=torch.long),
        "advantages": torch.zeros(2),
        "zvp_signs": torch.tensor([1.0, -1.0]),
    }
    # Without the positive branch the all-correct row keeps GRPO's zero advantage; the all-wrong one is shaped.
    advantages = part.token_advantages(None, inputs, entropies)
    torch.testing.assert_close(advantages, torch.tensor([[0.0, 0.0], [-0.05, 0.0]]))


# ------------------------------------------------------------------------------------------------------- ERPO


def erpo_part(tmp_path, **overrides):
    settings = dict(num_generations=G, temperature=1.0, erpo_temperature_step=0.25, erpo_max_temperature=1.5)
    args = ERPOConfig(**cpu_config_kwargs(tmp_path, **{**settings, **overrides}))
    trainer = StandIn(args, [ERPOPart])
    return trainer, trainer.part("erpo")


def erpo_round(part, prompts, rewards, advantages=None):
    step = scored_step(rows_of(*prompts), rewards)
    part.before_generation(step)
    output = generation_output(len(step.rows), advantages=advantages)
    part.after_scoring(step, output)
    return step, output


def test_erpo_part_raises_an_all_correct_prompts_temperature_next_time(tmp_path):
    trainer, part = erpo_part(tmp_path)
    assert trainer.row_temperature_logprobs  # erpo_logprob_temperature="sampling": log-probs at each row's T
    # Round 1: every row at the base temperature; "a" comes back all correct, "b" mixed.
    step, output = erpo_round(part, ["a", "b"], [1, 1, 1, 1, 1, 0, 0, 0])
    assert step.sampling_temperatures == [1.0] * 8
    assert output["erpo_temperatures"].tolist() == [1.0] * 8
    # Round 2: "a" at 1.0 + 0.25, "c" (never seen) at the base; "a" all correct again.
    step, output = erpo_round(part, ["a", "c"], [1, 1, 1, 1, 0, 0, 1, 0])
    assert step.sampling_temperatures == [1.25] * 4 + [1.0] * 4
    assert part.loss_logprob_temperatures(output).tolist() == [1.25] * 4 + [1.0] * 4
    # Round 3: 1.5 (the cap); round 4: still 1.5.
    step, _ = erpo_round(part, ["a", "b"], [1, 1, 1, 1, 1, 0, 0, 0])
    assert step.sampling_temperatures[:4] == [1.5] * 4
    step, _ = erpo_round(part, ["a", "b"], [1, 1, 1, 1, 1, 0, 0, 0])
    assert step.sampling_temperatures == [1.5] * 4 + [1.0] * 4
    # A batch all at the base temperature computes its log-probs at the base temperature (None).
    assert part.loss_logprob_temperatures({"erpo_temperatures": torch.ones(8)}) is None
    metrics = trainer.context.metrics["train"]
    assert metrics["erpo/frac_elevated"] == [0.0, 0.5, 0.5, 0.5]
    assert metrics["erpo/frac_all_correct"] == [0.5, 0.5, 0.5, 0.5]


def test_erpo_part_ra_gives_all_correct_groups_a_negative_advantage(tmp_path):
    _, part = erpo_part(tmp_path, erpo_ra_advantage=0.2)
    advantages = [0.0] * 4 + [0.5, -0.5, 0.5, -0.5]
    _, output = erpo_round(part, ["a", "b"], [1, 1, 1, 1, 1, 0, 1, 0], advantages=advantages)
    assert output["advantages"].tolist() == pytest.approx([-0.2] * 4 + [0.5, -0.5, 0.5, -0.5])
    # With RA, all-correct groups carry a signal: a batch assembler keeps them, drops only all-wrong ones.
    assert part.groups_with_signal(torch.tensor([1.0, -1.0, 0.0])).tolist() == [0.0, -1.0, 0.0]


def test_erpo_part_leaves_evaluation_alone(tmp_path):
    trainer, part = erpo_part(tmp_path)
    trainer.context.run.training = False
    step, output = erpo_round(part, ["a", "b"], [1] * 8)
    assert step.sampling_temperatures is None and "erpo_temperatures" not in output
    assert part.history.temperatures == {}


# ---------------------------------------------------------------------------------------------------- GRPO-DS


def prompt_number(row: dict) -> int:
    return int(row["prompt"][1:])


def rule_rewards(rows: list[dict]) -> list[float]:
    """Prompt q<n>: all correct when n is even (zero-variance), one of four correct when n is odd (mixed)."""
    return [1.0 if prompt_number(row) % 2 == 0 or i % G == 0 else 0.0 for i, row in enumerate(rows)]


def generate_round(rounds: list[list[dict]]):
    def run(rows):
        rounds.append(rows)
        step = scored_step(rows, rule_rewards(rows))
        output = generation_output(len(rows))
        output["prompt_number"] = torch.tensor([prompt_number(row) for row in rows])
        return output, step

    return run


def ds_trainer(tmp_path, part_class, config_class, **overrides):
    dataset = Dataset.from_dict({"prompt": [f"q{n}" for n in range(16)], "solution": ["1"] * 16})
    args = config_class(**cpu_config_kwargs(tmp_path, num_generations=G, **overrides))
    return StandIn(args, [part_class], train_dataset=dataset), dataset


def test_grpo_ds_part_drops_zero_variance_groups_and_fills_the_batch_with_fresh_prompts(tmp_path):
    trainer, _ = ds_trainer(tmp_path, DynamicSamplingPart, GRPODSConfig)
    part = trainer.part("grpo_ds")
    # The draws the part makes after its first round, from the same seeded sampler.
    draws = PromptSampler(16, trainer.context.args.seed, trainer.context.args.shuffle_dataset).draw(2 * 10)
    rounds = []
    batch = part.assemble_batch(rows_of("q0", "q1"), generate_round(rounds))
    # Round 1: q0 (even: all correct) dropped, q1 kept. Then rounds of two fresh prompts until two groups are kept.
    odd = [n for n in draws if n % 2]
    needed_rounds = 1 + next(r for r in range(1, 11) if sum(n % 2 for n in draws[: 2 * r]) >= 1)
    assert len(rounds) == needed_rounds
    assert [prompt_number(row) for row in rounds[1]] == [draws[0]] * G + [draws[1]] * G
    # The batch: q1's group, then the first fresh odd prompt's; every row of a kept group, in order.
    assert batch["prompt_number"].tolist() == [1] * G + [odd[0]] * G
    assert batch["completion_ids"].size(0) == 2 * G
    rolled = [1 + 1] + [2] * (needed_rounds - 1)  # groups rolled out per round
    stats = part.ds_stats
    assert stats.generated_groups == sum(rolled)
    kept = 1 + sum(n % 2 for n in draws[: 2 * (needed_rounds - 1)])
    assert stats.dropped_groups == sum(rolled) - kept
    assert trainer.context.metrics["train"]["ds/generation_rounds"] == [float(needed_rounds)]
    # A surplus kept group is carried to the next batch: it comes first there.
    if kept > 2:
        assert part._carry is not None and part._carry["prompt_number"][0].item() == odd[1]


def test_grpo_ds_part_counts_an_unscored_group_as_kept(tmp_path):
    trainer, _ = ds_trainer(tmp_path, DynamicSamplingPart, GRPODSConfig)
    part = trainer.part("grpo_ds")
    # NaN rewards (unscored) make a group non-zero-variance: the group is kept, like any mixed group.
    assert part.group_signs(torch.tensor([1.0, 1, 1, 1, 1, 1, 1, float("nan")])).tolist() == [1.0, 0.0]
    assert part.group_signs(torch.tensor([0.0, 0, 0, 0, 1, 0, 0, 0])).tolist() == [-1.0, 0.0]


# ------------------------------------------------------------------------------------------------------ GRESO


def test_greso_part_skips_prompts_with_an_easy_trace_before_rollout(tmp_path):
    trainer, _ = ds_trainer(
        tmp_path, GRESOPart, GRESOConfig, greso_p_easy=0.05, greso_p_min=0.05, greso_min_explore_prob=1e-9
    )
    part = trainer.part("greso")
    # q0 was all-correct three times: skipped with probability 1 - max(0.05**3, 1e-9) = 0.999875. q1 has no trace:
    # never skipped.
    for _ in range(3):
        part.greso_state.record(prompt_id({"prompt": "q0", "solution": "1"}, None), 1.0)
    candidates = rows_of("q0", "q1")
    draws = PromptSampler(16, trainer.context.args.seed, trainer.context.args.shuffle_dataset).draw(2)
    batch = {}
    rows, round_ids = part.select_round_rows(candidates, batch)
    # q0 skipped; q1 kept; the round is refilled from the sampler's next draw (its first prompt fills the gap, and
    # q0 is skipped again if drawn).
    refill = next(n for n in draws if n != 0)
    assert [row["prompt"] for row in rows] == ["q1"] * G + [f"q{refill}"] * G
    assert round_ids == [prompt_id(rows[0], None), prompt_id(rows[G], None)]
    # Skipped: q0 among the candidates, and again when the redraw's first prompt is q0 itself.
    assert batch["skipped"] == 1 + draws.index(refill)
    # After scoring, each prompt's trace gets its group's mean reward.
    part.on_round_scored(torch.tensor([0.0, 1.0]), torch.tensor([0.25, 1.0]), round_ids)
    assert part.greso_state.traces[round_ids[0]] == [0.25]
    assert part.greso_state.traces[round_ids[1]][-1] == 1.0


# ----------------------------------------------------------------------------------------------------- ExGRPO


def test_exgrpo_part_stores_partially_solved_groups_retires_solved_ones_and_replays(tmp_path):
    dataset = Dataset.from_dict({"prompt": [f"q{n}" for n in range(8)], "solution": ["1"] * 8})
    args = ExGRPOConfig(
        **cpu_config_kwargs(
            tmp_path, num_generations=G, exgrpo_start_threshold=None, exgrpo_replay_ratio=0.5,
            exgrpo_trajectory_selection="random",
        )
    )  # fmt: skip
    trainer = StandIn(args, [ExGRPOPart], train_dataset=dataset)
    part = trainer.part("exgrpo")
    pid = {n: prompt_id({"prompt": f"q{n}", "solution": "1"}, None) for n in range(8)}

    # Round 1: the buffer is empty, nothing to replay. q0 is partially solved (rows 1 and 3 correct), q1 solved by
    # every completion.
    step = scored_step(rows_of("q0", "q1"), [0, 1, 0, 1, 1, 1, 1, 1])
    part.choose_rows(step)
    assert step.completion_overrides is None and step.replayed_rows == [False] * 8
    output = generation_output(8)
    part.after_scoring(step, output)
    buffer = part.buffer
    # q0 is stored with its two correct trajectories (rows 1 and 3: completions 2,3,4 and 4,5,6 and their log-probs),
    # in bucket k=2; q1 is retired.
    assert list(buffer.entries) == [pid[0]] and buffer.retired == {pid[1]}
    stored = buffer.entries[pid[0]]["trajectories"]
    assert [t["ids"].tolist() for t in stored] == [[2, 3, 4], [4, 5, 6]]
    expected_logps = torch.tensor([[-0.02, -0.03, -0.04], [-0.04, -0.05, -0.06]])
    torch.testing.assert_close(torch.stack([t["logps"] for t in stored]), expected_logps)
    assert buffer.buckets() == {2: [pid[0]]}

    # Round 2 of q1 and q2: the retired q1 is replaced by a question of train_dataset that is not retired, and half
    # the groups (one of two) is replaced by a replay of q0: its first row carries a stored trajectory.
    step = scored_step(rows_of("q1", "q2"), [0] * 8)
    part.choose_rows(step)
    prompts = [row["prompt"] for row in step.rows]
    assert prompts[:G] == ["q0"] * G and "q1" not in prompts
    assert step.replayed_rows == [True] + [False] * 7
    assert list(step.completion_overrides) == [0]
    assert step.completion_overrides[0]["ids"].tolist() in ([2, 3, 4], [4, 5, 6])
    assert step.part_data["exgrpo"]["replayed"] == 1
