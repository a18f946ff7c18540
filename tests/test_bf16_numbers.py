# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""The methods' numbers when the policy runs in bf16 (the recipes' precision): log-probs and entropies then come from
bf16 logits. Every decision that bf16 could flip is taken in float32, each shown with a case that bf16 gets wrong; the
values that follow from bf16 inputs stay within bf16's own error of the float32 ones.

bf16 keeps 8 significant bits: a value's relative rounding error is at most 2**-8 (0.39%), and near 1 its steps are
2**-7 (0.0078), as wide as the whole margin of a ratio that sits just below 1 + epsilon_high."""

import math

import pytest
import torch

from zvp_trl.core.step import GenerationStep
from zvp_trl.core.zero_variance import zero_variance_signs
from zvp_trl.methods.exgrpo.algorithm import exgrpo_per_token_loss, policy_shaping
from zvp_trl.methods.rl_zvp.algorithm import rl_zvp_token_advantages


pytestmark = pytest.mark.unit

BF16_RELATIVE = 2.0**-8


def bf16(x: torch.Tensor) -> torch.Tensor:
    return x.to(torch.bfloat16)


def test_rl_zvp_keeps_grpo_advantages_exact_and_its_own_within_bf16_error():
    generator = torch.Generator().manual_seed(0)
    entropies = torch.rand(4, 6, generator=generator) * 3  # nats, as a small vocabulary's
    mask = torch.ones(4, 6)
    mask[3, 4:] = 0
    advantages = torch.tensor([0.0, 0.0, 0.7071068, -0.7071068])  # rows 2, 3: a mixed group's GRPO advantages
    signs = torch.tensor([1.0, -1.0, 0.0, 0.0])
    assert bf16(advantages).float()[2] != advantages[2]  # bf16 would round GRPO's own advantage
    exact = rl_zvp_token_advantages(advantages, signs, entropies, mask, alpha=0.1)
    from_bf16 = rl_zvp_token_advantages(advantages, signs, bf16(entropies), mask, alpha=0.1)
    assert from_bf16.dtype == torch.float32
    # Rows RL-ZVP leaves alone keep GRPO's advantage bit for bit.
    assert torch.equal(from_bf16[2:], exact[2:]) and torch.equal(from_bf16[2, :], advantages[2].expand(6))
    # Its own: alpha * H (all-correct) and -alpha * (max H - H) (all-wrong), from entropies off by at most 2**-8 of
    # themselves: off by at most alpha * 2 * max H * 2**-8.
    tolerance = 0.1 * 2 * entropies.max().item() * BF16_RELATIVE
    assert (from_bf16[:2] - exact[:2]).abs().max().item() <= tolerance
    assert (from_bf16[:2] - exact[:2]).abs().max().item() > 0  # bf16 entropies did differ


def _pair_clipped_differently(bound: float) -> tuple[torch.Tensor, torch.Tensor]:
    """bf16 log-probs (new, old), both <= 0, whose exact ratio and the ratio formed in bf16 lie on either side of
    `bound` (a clip bound, 1 - epsilon_low or 1 + epsilon_high)."""
    olds = torch.arange(-1.0, -0.01, 1e-3).to(torch.bfloat16).unique()
    steps = torch.arange(-0.4, 0.4, 1e-4)
    new = (olds.float()[:, None] + steps[None, :]).to(torch.bfloat16)
    old = olds[:, None].expand_as(new)
    exact = torch.exp(new.double() - old.double())
    in_bf16 = torch.exp(new - old).double()  # computed and rounded in bf16
    found = (new <= 0) & ((exact - bound) * (in_bf16 - bound) < 0)
    index = found.nonzero()
    assert len(index) > 0, f"no bf16 pair straddles {bound}"
    i, j = index[0].tolist()
    return new[i, j].reshape(1, 1), old[i, j].reshape(1, 1)


@pytest.mark.parametrize("side", ["low", "high"])
def test_exgrpo_clips_by_the_exact_ratio_not_the_bf16_one(side):
    bound = 0.8 if side == "low" else 1.2
    new, old = _pair_clipped_differently(bound)
    exact_ratio = math.exp(new.item() - old.item())
    advantage = -1.0 if side == "low" else 1.0  # the side whose clip binds
    loss, fresh_ratio, _ = exgrpo_per_token_loss(
        new, old, torch.zeros(1, 1), torch.tensor([advantage]), torch.zeros(1, dtype=torch.bool), torch.ones(1, 1),
        loss_type="dr_grpo", epsilon_low=0.2, epsilon_high=0.2, unclip_fresh=False,
    )  # fmt: skip
    # TRL's surrogate -min(w A, clip(w) A) with the exact w: clipped at `bound` exactly when the exact ratio says so.
    clipped = exact_ratio < bound if side == "low" else exact_ratio > bound
    expected = -min(exact_ratio * advantage, min(max(exact_ratio, 0.8), 1.2) * advantage)
    assert loss.dtype == torch.float32 and loss.item() == pytest.approx(expected, rel=1e-6)
    assert fresh_ratio.item() == pytest.approx(exact_ratio, rel=1e-6)
    in_bf16 = torch.exp(new - old).item()
    assert clipped != (in_bf16 < bound if side == "low" else in_bf16 > bound)  # bf16 would have decided otherwise


def test_exgrpo_shapes_replayed_ratios_in_float32():
    generator = torch.Generator().manual_seed(1)
    new = bf16(-torch.rand(2, 5, generator=generator) * 4)
    recorded = (new.float() + (torch.rand(2, 5, generator=generator) - 0.5) * 0.4).to(torch.float32)
    mask, advantages, replay = torch.ones(2, 5), torch.tensor([0.5, -0.5]), torch.tensor([True, True])
    loss, _, replay_ratio = exgrpo_per_token_loss(
        new, new, recorded, advantages, replay, mask, loss_type="dr_grpo", shaping_beta=0.1
    )
    w = torch.exp(new.float() - recorded)  # the exact ratio of these inputs
    assert torch.allclose(replay_ratio, w, rtol=1e-6, atol=0)
    assert torch.allclose(loss, -policy_shaping(w, 0.1) * advantages[:, None], rtol=1e-6, atol=0)
    in_bf16 = torch.exp(new - bf16(recorded)).float()
    assert not torch.allclose(in_bf16, w, rtol=1e-4, atol=0)  # what a bf16 computation would have given


def test_zero_variance_and_correctness_are_decided_on_float32_rewards():
    # TRL's rewards are float32; their weighted sum stays float32.
    step = GenerationStep(gathered_rewards=torch.tensor([[0.501], [0.499], [1.0], [1.001]]))
    rewards = step.scalar_rewards(torch.tensor([1.0]))
    assert rewards.dtype == torch.float32
    # Correctness at correct_threshold=0.5: 0.501 is correct; in bf16 it would round to 0.5 and not be.
    assert (rewards > 0.5).tolist() == [True, False, True, True]
    assert bf16(rewards)[0].item() == 0.5
    # A group of 1.0 and 1.001 has a spread of 0.001 > atol: not zero-variance. In bf16 both are 1.0.
    signs = zero_variance_signs(rewards, 2, correct_threshold=0.5, atol=1e-6)
    assert signs.tolist() == [0.0, 0.0, 0.0, 0.0]
    assert zero_variance_signs(bf16(rewards).float(), 2, 0.5, 1e-6).tolist()[2:] == [1.0, 1.0]
