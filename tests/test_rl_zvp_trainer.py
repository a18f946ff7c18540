# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
import copy
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from cpu_config import cpu_config_kwargs
from datasets import Dataset
from trl import GRPOTrainer

from zvp_trl import RLZVPConfig, RLZVPTrainer
from zvp_trl.core.step import LossStep


G = 4


def make_config(tmp_path, **overrides):
    values = cpu_config_kwargs(tmp_path, num_generations=G, max_completion_length=8, epsilon_high=0.28)
    values.update(overrides)
    return RLZVPConfig(**values)


def make_trainer(tiny_model_path, tmp_path, reward, **overrides):
    dataset = Dataset.from_dict({"prompt": [f"Q: {i}+1=?\nA:" for i in range(8)], "solution": ["0"] * 8})
    return RLZVPTrainer(
        model=tiny_model_path, reward_funcs=reward, args=make_config(tmp_path, **overrides), train_dataset=dataset
    )


def constant_reward(value):
    def reward(completions, **kwargs):
        return [value] * len(completions)

    reward.__name__ = f"constant_{value}"
    return reward


def alternating_reward(completions, **kwargs):
    """1, 0, 1, 0, ...: every group of G consecutive rows is mixed (non zero-variance)."""
    return [float(i % 2 == 0) for i in range(len(completions))]


def batch(trainer):
    rows = [trainer.train_dataset[i] for i in range(2) for _ in range(G)]
    torch.manual_seed(0)
    return trainer._generate_and_score_completions(rows)


def loss_and_grads(trainer, inputs, compute_loss):
    trainer.model.zero_grad()
    loss = compute_loss(trainer.model, inputs)
    loss.backward()
    return loss.detach(), [p.grad.clone() for p in trainer.model.parameters() if p.grad is not None]


@pytest.mark.trainer
def test_no_zero_variance_groups_matches_grpo_exactly(tiny_model_path, tmp_path):
    trainer = make_trainer(tiny_model_path, tmp_path, alternating_reward)
    inputs = batch(trainer)
    assert inputs["zvp_signs"].tolist() == [0.0] * 8
    ours = loss_and_grads(trainer, inputs, trainer._compute_loss)
    grpo = loss_and_grads(trainer, inputs, lambda model, x: GRPOTrainer._compute_loss(trainer, model, x))
    assert torch.equal(ours[0], grpo[0])
    assert len(ours[1]) == len(grpo[1]) > 0
    for a, b in zip(ours[1], grpo[1]):
        assert torch.equal(a, b)


@pytest.mark.trainer
def test_alpha_zero_is_grpo_exactly(tiny_model_path, tmp_path):
    """zvp_alpha=0 gives zero-variance groups no advantage: on a batch with all-correct, all-wrong and mixed groups
    the loss and every gradient equal TRL's, bit for bit (the control of the alpha dose-response)."""
    trainer = make_trainer(tiny_model_path, tmp_path, per_question, zvp_alpha=0.0)
    rows = [trainer.train_dataset[q] for q in range(4) for _ in range(G)]
    torch.manual_seed(0)
    inputs = trainer._generate_and_score_completions(rows)
    assert inputs["zvp_signs"].view(4, G)[:, 0].tolist() == [1.0, -1.0, 0.0, 0.0]
    ours = loss_and_grads(trainer, inputs, trainer._compute_loss)
    grpo = loss_and_grads(trainer, inputs, lambda model, x: GRPOTrainer._compute_loss(trainer, model, x))
    assert torch.equal(ours[0], grpo[0])
    assert len(ours[1]) == len(grpo[1]) > 0
    assert all(torch.equal(a, b) for a, b in zip(ours[1], grpo[1]))
    assert sum(g.abs().sum().item() for g in ours[1]) > 0  # the mixed groups' gradient


@pytest.mark.trainer
def test_relative_alpha_sets_the_zero_variance_share_and_is_logged(tiny_model_path, tmp_path):
    """zvp_alpha_rule="relative": in the loss, the zero-variance tokens' mean |advantage| is the target fraction of the
    mixed tokens' (computed here from the loss's own entropies), and `zvp/alpha` logs the alpha used."""
    target = 0.25
    trainer = make_trainer(
        tiny_model_path, tmp_path, per_question, zvp_alpha_rule="relative", zvp_alpha_relative_target=target
    )
    rows = [trainer.train_dataset[q] for q in range(4) for _ in range(G)]
    torch.manual_seed(0)
    inputs = trainer._generate_and_score_completions(rows)
    part = trainer.part("rl_zvp")
    original, seen = part.token_advantages, {}

    def spy(loss, loss_inputs, entropies):
        seen["advantages"] = original(loss, loss_inputs, entropies)
        return seen["advantages"]

    part.token_advantages = spy
    trainer._compute_loss(trainer.model, inputs)
    mask = inputs["completion_mask"].float()
    signs = inputs["zvp_signs"]
    zv, mixed = mask * (signs != 0)[:, None], mask * (signs == 0)[:, None]
    zv_scale = (seen["advantages"].abs() * zv).sum() / zv.sum()
    mixed_scale = (inputs["advantages"].abs()[:, None] * mixed).sum() / mixed.sum()
    assert mixed_scale > 0.5  # GRPO's normalized advantages on the mixed groups
    torch.testing.assert_close(zv_scale / mixed_scale, torch.tensor(target), rtol=1e-4, atol=0)
    metrics = {}
    part.log("train" if trainer.model.training else "eval", metrics)
    alpha = metrics["zvp/alpha"][0]
    assert 0 < alpha < trainer.args.zvp_alpha_max and alpha != trainer.args.zvp_alpha
    # The logged strength of the zero-variance signal is the same ratio, from the same tokens.
    assert metrics["zvp/adv_abs_mean_zero_variance"][0] == pytest.approx(zv_scale.item(), rel=1e-5)
    assert metrics["zvp/adv_abs_mean_mixed"][0] == pytest.approx(mixed_scale.item(), rel=1e-5)
    assert metrics["zvp/adv_abs_ratio"][0] == pytest.approx(target, rel=1e-4)


@pytest.mark.trainer
@pytest.mark.parametrize("value, sign", [(1.0, 1.0), (0.0, -1.0)])
def test_all_zero_variance_batch_has_gradient_where_grpo_has_none(tiny_model_path, tmp_path, value, sign):
    trainer = make_trainer(tiny_model_path, tmp_path, constant_reward(value))
    inputs = batch(trainer)
    assert inputs["zvp_signs"].tolist() == [sign] * 8
    assert torch.all(inputs["advantages"] == 0)  # GRPO's advantages, untouched
    grpo_loss, grpo_grads = loss_and_grads(
        trainer, inputs, lambda model, x: GRPOTrainer._compute_loss(trainer, model, x)
    )
    assert grpo_loss.item() == 0.0 and all(torch.count_nonzero(g) == 0 for g in grpo_grads)
    before = copy.copy(inputs)
    loss, grads = loss_and_grads(trainer, inputs, trainer._compute_loss)
    assert sum(g.abs().sum().item() for g in grads) > 0
    # Positive groups push their tokens up (negative loss), negative groups push them down.
    assert loss.item() * sign < 0
    # TRL's buffered inputs are not mutated.
    assert inputs.keys() == before.keys() and inputs["advantages"] is before["advantages"]
    assert inputs["advantages"].dim() == 1


def per_question(prompts, completions, **kwargs):
    """Question 0: every completion right; 1: none; 2 and 3: every other row right (3 with `complement`)."""
    rewards = []
    for i, prompt in enumerate(prompts):
        q = int(prompt.split(":")[1].split("+")[0])
        rewards.append(1.0 if q == 0 else 0.0 if q == 1 else float(i % 2 == 0))
    return rewards


def complement(prompts, completions, **kwargs):
    """0 on questions 0-2; on question 3, `(1 - per_question) / 2`. With reward weights (1, 2) question 3's weighted
    sum is then 1 on every row, while each function alone is mixed."""
    questions = [int(p.split(":")[1].split("+")[0]) for p in prompts]
    first = per_question(prompts, completions)
    return [0.0 if q < 3 else (1.0 - r) / 2 for q, r in zip(questions, first)]


@pytest.mark.trainer
@pytest.mark.parametrize("aggregation", ["sum_then_normalize", "normalize_then_sum"])
def test_multi_objective_aggregation_decides_which_groups_are_zero_variance(tiny_model_path, tmp_path, aggregation):
    """normalize_then_sum normalises each reward function within the group, so a group whose weighted sum is constant
    while its functions are not (question 3) has a real GRPO advantage there: RL-ZVP leaves it to GRPO. Groups on
    which every function is constant (questions 0 and 1) have zero advantage under both and are RL-ZVP's."""
    dataset = Dataset.from_dict({"prompt": [f"Q: {i}+1=?\nA:" for i in range(4)]})
    args = make_config(tmp_path, multi_objective_aggregation=aggregation, reward_weights=[1.0, 2.0])
    trainer = RLZVPTrainer(tiny_model_path, [per_question, complement], args=args, train_dataset=dataset)
    rows = [dataset[q] for q in range(4) for _ in range(G)]
    torch.manual_seed(0)
    inputs = trainer._generate_and_score_completions(rows)
    expected = {"sum_then_normalize": [1.0, -1.0, 0.0, 1.0], "normalize_then_sum": [1.0, -1.0, 0.0, 0.0]}
    assert inputs["zvp_signs"].view(4, G)[:, 0].tolist() == expected[aggregation]
    advantages = inputs["advantages"].view(4, G)
    assert torch.allclose(advantages[:2], torch.zeros(2, G), atol=1e-6)  # TRL: no signal on questions 0 and 1
    if aggregation == "normalize_then_sum":
        assert advantages[3].abs().min() > 0.5  # a real signal, kept (GRPO's advantage)
    else:
        assert torch.allclose(advantages[3], torch.zeros(G), atol=1e-6)  # the weighted sum is constant: none
    loss, grads = loss_and_grads(trainer, inputs, trainer._compute_loss)
    assert math.isfinite(loss.item()) and sum(g.abs().sum().item() for g in grads) > 0


@pytest.mark.trainer
def test_token_advantages_use_the_loss_forward_entropy(tiny_model_path, tmp_path):
    trainer = make_trainer(tiny_model_path, tmp_path, constant_reward(0.0), zvp_alpha=0.5)
    inputs = batch(trainer)
    seen = {}
    part = trainer.part("rl_zvp")
    original = part.token_advantages

    def spy(loss, loss_inputs, entropies):
        seen["entropies"] = entropies.detach().clone()
        seen["advantages"] = original(loss, loss_inputs, entropies)
        return seen["advantages"]

    part.token_advantages = spy
    trainer._compute_loss(trainer.model, inputs)
    mask = inputs["completion_mask"].float()
    entropy = seen["entropies"] * mask
    row_max = entropy.masked_fill(mask == 0, -1e9).max(dim=1, keepdim=True).values
    torch.testing.assert_close(seen["advantages"], -0.5 * (row_max - entropy) * mask)


@pytest.mark.trainer
@pytest.mark.parametrize(
    "overrides",
    [
        dict(gradient_accumulation_steps=2, steps_per_generation=2, per_device_train_batch_size=4),
        dict(num_iterations=2, per_device_train_batch_size=8),
        dict(gradient_accumulation_steps=2, num_iterations=2, steps_per_generation=4, per_device_train_batch_size=2),
    ],
)
def test_entropy_recomputed_on_every_micro_batch_and_iteration(tiny_model_path, tmp_path, overrides):
    trainer = make_trainer(tiny_model_path, tmp_path, constant_reward(1.0), max_steps=2, **overrides)
    calls = {"loss": 0, "shaped": 0}
    part = trainer.part("rl_zvp")
    compute_loss, token_advantages = trainer._compute_loss, part.token_advantages

    def counting_loss(model, inputs):
        calls["loss"] += 1
        return compute_loss(model, inputs)

    def counting_advantages(loss, inputs, entropies):
        calls["shaped"] += 1
        return token_advantages(loss, inputs, entropies)

    trainer._compute_loss, part.token_advantages = counting_loss, counting_advantages
    trainer.train()
    expected_micro_batches = 2 * trainer.args.gradient_accumulation_steps
    assert calls["loss"] == calls["shaped"] == expected_micro_batches
    for buffered in trainer._buffered_inputs:
        assert buffered["advantages"].dim() == 1  # the buffer keeps GRPO's (B,) advantages


@pytest.mark.trainer
def test_metrics_and_rollout_totals_are_logged(tiny_model_path, tmp_path):
    trainer = make_trainer(tiny_model_path, tmp_path, alternating_reward, max_steps=2)
    trainer.train()
    logs = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert len(logs) == 2
    for step, entry in enumerate(logs, start=1):
        assert entry["zvp/frac_zv_positive"] == 0.0 and entry["zvp/frac_zv_negative"] == 0.0
        assert entry["zvp/adv_mean_positive"] is None and entry["zvp/adv_mean_negative"] is None
        assert entry["zvp/entropy_max_mean"] > 0
        assert entry["zvp/alpha"] == pytest.approx(0.1)  # the fixed alpha, logged too
        # no zero-variance token: no ratio (None), while the mixed tokens' scale is there
        assert entry["zvp/adv_abs_ratio"] is None and entry["zvp/adv_abs_mean_zero_variance"] is None
        assert entry["zvp/adv_abs_mean_mixed"] > 0
        assert entry["rollouts/total"] == 8 * step
        assert entry["rollouts/grad_steps"] == step


@pytest.mark.trainer
def test_positive_and_negative_metrics(tiny_model_path, tmp_path):
    trainer = make_trainer(tiny_model_path, tmp_path, constant_reward(1.0), max_steps=1)
    trainer.train()
    entry = next(e for e in trainer.state.log_history if "loss" in e)
    assert entry["zvp/frac_zv_positive"] == 1.0 and entry["zvp/frac_zv_negative"] == 0.0
    assert entry["zvp/adv_mean_positive"] > 0 and entry["zvp/adv_mean_negative"] is None
    # alpha * mean entropy, and the mean entropy is at most the mean of the row maxima
    assert entry["zvp/adv_mean_positive"] <= 0.1 * entry["zvp/entropy_max_mean"] + 1e-6
    # only zero-variance tokens (all positive): their mean |advantage| is the mean advantage; no mixed scale, no ratio
    assert entry["zvp/adv_abs_mean_zero_variance"] == pytest.approx(entry["zvp/adv_mean_positive"])
    assert entry["zvp/adv_abs_mean_mixed"] is None and entry["zvp/adv_abs_ratio"] is None


@pytest.mark.unit
@pytest.mark.parametrize(
    "overrides, match",
    [
        (dict(zvp_alpha=-0.1), "zvp_alpha must be >= 0"),
        (dict(zvp_alpha=math.inf), "zvp_alpha must be >= 0 and finite"),
        (dict(zvp_constant_advantage=0.0), "zvp_constant_advantage"),
        (dict(zvp_alpha_rule="adaptive"), "zvp_alpha_rule must be 'fixed' or 'relative'"),
        (dict(zvp_alpha_relative_target=0.0), "zvp_alpha_relative_target must be > 0"),
        (dict(zvp_alpha_max=math.nan), "zvp_alpha_max must be > 0 and finite"),
    ],
)
def test_unsupported_configurations_raise(tmp_path, overrides, match):
    with pytest.raises(ValueError, match=match):
        make_config(tmp_path, **overrides)


@pytest.mark.trainer
@pytest.mark.parametrize("loss_type", ["grpo", "bnpo", "dr_grpo", "dapo", "cispo", "sapo", "luspo", "vespo"])
def test_supported_loss_types_give_a_gradient_on_zero_variance_batches(tiny_model_path, tmp_path, loss_type):
    trainer = make_trainer(tiny_model_path, tmp_path, constant_reward(0.0), loss_type=loss_type)
    inputs = batch(trainer)
    loss, grads = loss_and_grads(trainer, inputs, trainer._compute_loss)
    assert torch.isfinite(loss) and sum(g.abs().sum().item() for g in grads) > 0


@pytest.mark.trainer
def test_sequence_rules_read_the_group_sign_of_zero_variance_rows(tiny_model_path, tmp_path):
    # Rows: all-correct ZV, all-wrong ZV, GRPO positive, GRPO negative; every row far off-policy (mean KL 1.0).
    trainer = make_trainer(tiny_model_path, tmp_path, alternating_reward, off_policy_mask_threshold=0.5)
    signs = torch.tensor([1.0, -1.0, 0.0, 0.0])
    grpo = torch.tensor([0.0, 0.0, 0.7, -0.7])
    # RL-ZVP's token advantages: >= 0 on the all-correct row; <= 0 on the all-wrong row, with 0 at its max-entropy
    # token (the second), which a token-level reading would keep.
    token_advantages = torch.tensor(
        [[0.2, 0.1, 0.3], [-0.2, 0.0, -0.1], [0.7, 0.7, 0.7], [-0.7, -0.7, -0.7]]
    )  # fmt: skip
    mask = torch.ones(4, 3)
    logps = torch.full((4, 3), -2.0)
    kwargs = dict(per_token_logps=logps, sampling_per_token_logps=logps + 1.0, mask=mask, off_policy_threshold=0.5)
    trainer.zvp_step.loss = LossStep(sequence_advantages=torch.where(signs != 0, signs, grpo).unsqueeze(1))
    kept = trainer.get_off_policy_mask(advantages=token_advantages, **kwargs)
    # TRL's sequence rule on the group's sign: keep the non-negative sequences, drop the negative ones.
    assert kept.tolist() == [[1.0], [0.0], [1.0], [0.0]]
    assert torch.equal(kept, GRPOTrainer.get_off_policy_mask(advantages=torch.tensor([[1.0], [-1.0], [0.7], [-0.7]]),
                                                             **kwargs))  # fmt: skip
    # Read token by token, the all-wrong row would keep its max-entropy token: not a sequence rule.
    assert GRPOTrainer.get_off_policy_mask(advantages=token_advantages, **kwargs)[1].tolist() == [0.0, 1.0, 0.0]
    # VESPO's gamma weights: one weight per sequence, from the same signs.
    gamma = dict(log_ratio_per_token=torch.zeros(4, 3), mask=mask, importance_sampling_ratio=None)
    weights = trainer.get_gamma_weights(advantages=token_advantages, **gamma)
    expected = GRPOTrainer.get_gamma_weights(advantages=torch.tensor([[1.0], [-1.0], [0.7], [-0.7]]), **gamma)
    assert weights.shape == (4, 1) and torch.equal(weights, expected)
    # Outside a loss computation (no sequence advantages), TRL's rule is applied unchanged.
    trainer.zvp_step.loss = None
    assert trainer.get_off_policy_mask(advantages=token_advantages, **kwargs).shape == (4, 3)


@pytest.mark.trainer
def test_trls_static_sequence_rules_keep_their_shape(tiny_model_path, tmp_path):
    """`get_off_policy_mask` / `get_gamma_weights` stay TRL's static methods on the class, called as TRL documents
    them (positional or keyword); on a trainer, positional calls work too and read the loss's sequence advantages."""
    advantages = torch.tensor([[1.0], [-1.0]])
    logps, mask = torch.full((2, 3), -2.0), torch.ones(2, 3)
    positional = (advantages, logps, logps + 1.0, mask, 0.5)
    expected = GRPOTrainer.get_off_policy_mask(*positional)
    assert RLZVPTrainer.get_off_policy_mask is GRPOTrainer.get_off_policy_mask
    assert torch.equal(RLZVPTrainer.get_off_policy_mask(*positional), expected)
    gamma = (advantages, torch.zeros(2, 3), mask, None)
    assert torch.equal(RLZVPTrainer.get_gamma_weights(*gamma), GRPOTrainer.get_gamma_weights(*gamma))
    trainer = make_trainer(tiny_model_path, tmp_path, alternating_reward)
    assert torch.equal(trainer.get_off_policy_mask(*positional), expected)
    # During a loss whose sequence advantages say otherwise, the trainer's call reads them (positionally too).
    trainer.zvp_step.loss = LossStep(sequence_advantages=torch.tensor([[-1.0], [1.0]]))
    flipped = GRPOTrainer.get_off_policy_mask(torch.tensor([[-1.0], [1.0]]), *positional[1:])
    assert torch.equal(trainer.get_off_policy_mask(torch.zeros(2, 3), *positional[1:]), flipped)
    trainer.zvp_step.loss = None


@pytest.mark.trainer
def test_off_policy_masking_trains_zero_variance_groups(tiny_model_path, tmp_path):
    # num_iterations=2 makes the second pass off-policy; a tiny threshold drops every negative sequence then.
    trainer = make_trainer(
        tiny_model_path, tmp_path, constant_reward(0.0), off_policy_mask_threshold=1e-9, num_iterations=2,
        max_steps=2, learning_rate=1e-2,
    )  # fmt: skip
    before = [p.detach().clone() for p in trainer.model.parameters()]
    trainer.train()
    losses = [e["loss"] for e in trainer.state.log_history if "loss" in e]
    assert len(losses) == 2 and all(math.isfinite(x) for x in losses)
    assert any(not torch.equal(b, p) for b, p in zip(before, trainer.model.parameters()))


@pytest.mark.trainer
def test_requires_an_rl_zvp_config(tiny_model_path, tmp_path):
    from trl import GRPOConfig

    args = GRPOConfig(output_dir=str(tmp_path), use_cpu=True, bf16=False, num_generations=G)
    with pytest.raises(TypeError, match="RLZVPConfig"):
        RLZVPTrainer(model=tiny_model_path, reward_funcs=alternating_reward, args=args)


@pytest.mark.trainer
def test_model_card_names_the_method_and_paper(tiny_model_path, tmp_path):
    trainer = make_trainer(tiny_model_path, tmp_path, alternating_reward)
    trainer.create_model_card(model_name="tiny-rl-zvp")
    card = (tmp_path / "README.md").read_text()
    assert "RL-ZVP" in card and "2509.21880" in card and "No Prompt Left Behind" in card
    assert "rl-zvp" in card  # tag


@pytest.mark.distributed
def test_zero_variance_uses_whole_groups_split_across_two_processes(tiny_model_path, tmp_path):
    script = Path(__file__).parent / "scripts" / "rl_zvp_two_processes.py"
    env = dict(os.environ, ZVP_TEST_MODEL=tiny_model_path, ZVP_TEST_OUT=str(tmp_path))
    # torchrun sets WORLD_SIZE/RANK; accelerate then runs its CPU processes over gloo.
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script)]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    # Generation batch [A A A A B B | B B C C C C]: A all-correct, C all-wrong, B split across the two processes
    # with reward 1 on process 0 and 0 on process 1 -- zero-variance on each half, mixed as a whole.
    rank0 = (tmp_path / "signs_rank0.txt").read_text().split()
    rank1 = (tmp_path / "signs_rank1.txt").read_text().split()
    assert rank0 == ["1.0", "1.0", "1.0", "1.0", "0.0", "0.0"]
    assert rank1 == ["0.0", "0.0", "-1.0", "-1.0", "-1.0", "-1.0"]


@pytest.mark.trainer
def test_rollout_total_is_checkpointed_and_restored(tiny_model_path, tmp_path):
    trainer = make_trainer(
        tiny_model_path, tmp_path, alternating_reward, max_steps=2, save_strategy="steps", save_steps=1
    )
    trainer.train()
    state_file = tmp_path / "checkpoint-1" / "zvp_state.json"
    written_by = {"trainer": type(trainer).__name__, "parts": trainer.part_names}
    assert json.loads(state_file.read_text()) == {"rollouts": {"total": 8, "kept": 8}, "written_by": written_by}
    resumed = make_trainer(tiny_model_path, tmp_path, alternating_reward, max_steps=2, save_strategy="no")
    resumed.train(resume_from_checkpoint=str(tmp_path / "checkpoint-1"))
    assert resumed.rollouts.total == 16  # 8 restored + 8 generated after resuming
    (tmp_path / "checkpoint-2" / "zvp_state.json").unlink()
    again = make_trainer(tiny_model_path, tmp_path, alternating_reward, max_steps=3, save_strategy="no")
    with pytest.raises(FileNotFoundError, match="zvp_state.json"):
        again.train(resume_from_checkpoint=str(tmp_path / "checkpoint-2"))
