# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
import math

import pytest
import torch

from zvp_trl import rl_zvp_token_advantages, zero_variance_signs


pytestmark = pytest.mark.unit


def test_zero_variance_signs_hand_values():
    nan = math.nan
    rewards = torch.tensor([1.0, 1, 1, 0, 0, 0, 1, 0, 1, nan, 1, 1])
    expected = [1.0, 1, 1, -1, -1, -1, 0, 0, 0, 0, 0, 0]
    assert zero_variance_signs(rewards, 3).tolist() == expected


def test_zero_variance_threshold_and_tolerance():
    # Common reward equal to the threshold is not "above" it: negative.
    assert zero_variance_signs(torch.tensor([0.5, 0.5]), 2, correct_threshold=0.5).tolist() == [-1.0, -1.0]
    assert zero_variance_signs(torch.tensor([0.5, 0.5]), 2, correct_threshold=0.4).tolist() == [1.0, 1.0]
    assert zero_variance_signs(torch.tensor([-1.0, -1.0]), 2).tolist() == [-1.0, -1.0]  # +-1 rewards
    assert zero_variance_signs(torch.tensor([1.0, 1.0 + 1e-7]), 2).tolist() == [1.0, 1.0]
    assert zero_variance_signs(torch.tensor([1.0, 1.1]), 2).tolist() == [0.0, 0.0]
    assert zero_variance_signs(torch.tensor([1.0, 1.1]), 2, atol=0.2).tolist() == [1.0, 1.0]


def test_zero_variance_signs_rejects_bad_shapes():
    with pytest.raises(ValueError, match="num_generations=3"):
        zero_variance_signs(torch.zeros(4), 3)
    with pytest.raises(ValueError, match="1-D"):
        zero_variance_signs(torch.zeros(2, 2), 2)


def _batch():
    advantages = torch.tensor([0.0, 0.0, 0.7, 0.0, 0.3])
    signs = torch.tensor([1.0, -1.0, 0.0, -1.0, 0.0])
    entropies = torch.tensor(
        [[1.0, 2.0, 3.0], [1.0, 3.0, 2.0], [5.0, 5.0, 5.0], [1.0, 2.0, 9.0], [0.0, 0.0, 0.0]], requires_grad=True
    )
    mask = torch.tensor([[1, 1, 0], [1, 1, 1], [1, 1, 0], [1, 1, 0], [0, 0, 0]])
    return advantages, signs, entropies, mask


def test_rl_zvp_token_advantages_hand_values():
    result = rl_zvp_token_advantages(*_batch(), alpha=0.1)
    expected = torch.tensor(
        [
            [0.1, 0.2, 0.0],  # positive: alpha * H, padding 0
            [-0.2, 0.0, -0.1],  # negative: -alpha * (max H - H), max = 3
            [0.7, 0.7, 0.0],  # non-ZV: GRPO advantage broadcast
            [-0.1, 0.0, 0.0],  # negative: the padded 9.0 is not part of the max (max = 2)
            [0.0, 0.0, 0.0],  # no valid token
        ]
    )
    torch.testing.assert_close(result, expected)
    assert not result.requires_grad


def test_rl_zvp_switches():
    advantages, signs, entropies, mask = _batch()
    advantages = torch.tensor([0.25, -0.5, 0.7, -0.5, 0.3])  # distinct values show which rows keep GRPO's
    no_positive = rl_zvp_token_advantages(advantages, signs, entropies, mask, use_positive=False)
    torch.testing.assert_close(no_positive[0], torch.tensor([0.25, 0.25, 0.0]))
    torch.testing.assert_close(no_positive[1], torch.tensor([-0.2, 0.0, -0.1]))
    no_negative = rl_zvp_token_advantages(advantages, signs, entropies, mask, use_negative=False)
    torch.testing.assert_close(no_negative[1], torch.tensor([-0.5, -0.5, -0.5]))
    torch.testing.assert_close(no_negative[3], torch.tensor([-0.5, -0.5, 0.0]))
    torch.testing.assert_close(no_negative[0], torch.tensor([0.1, 0.2, 0.0]))
    constant = rl_zvp_token_advantages(
        advantages, signs, entropies, mask, entropy_scaling=False, constant_advantage=2.0
    )
    torch.testing.assert_close(
        constant,
        torch.tensor([[2.0, 2.0, 0.0], [-2.0, -2.0, -2.0], [0.7, 0.7, 0.0], [-2.0, -2.0, 0.0], [0.0, 0.0, 0.0]]),
    )
    scaled = rl_zvp_token_advantages(advantages, signs, entropies, mask, alpha=0.5)
    torch.testing.assert_close(scaled[0], torch.tensor([0.5, 1.0, 0.0]))


def test_rl_zvp_rejects_mismatched_shapes():
    advantages, signs, entropies, mask = _batch()
    with pytest.raises(ValueError, match="completion_mask"):
        rl_zvp_token_advantages(advantages, signs, entropies, mask[:, :2])
    with pytest.raises(ValueError, match="zv_signs"):
        rl_zvp_token_advantages(advantages, signs[:3], entropies, mask)


def test_scalar_rewards_weighted_nansum_with_unscored_rows_nan():
    from zvp_trl.core.zero_variance import scalar_rewards

    rewards_per_func = torch.tensor([[1.0, 0.5], [float("nan"), 1.0], [float("nan"), float("nan")]])
    out = scalar_rewards(rewards_per_func, torch.tensor([2.0, 1.0]))
    assert out[:2].tolist() == [2.5, 1.0] and torch.isnan(out[2])


def test_constant_per_function_by_hand():
    from zvp_trl.core.zero_variance import constant_per_function

    nan = float("nan")
    rewards = torch.tensor(
        [
            [1.0, 0.5], [1.0, 0.5],  # both constant
            [1.0, 0.0], [0.0, 0.5],  # weighted sum 1 * f1 + 2 * f2 = 1 on both rows, functions mixed
            [0.0, nan], [0.0, nan],  # the second function leaves the whole group unscored
            [0.0, nan], [0.0, 1.0],  # the second function scores one row only
            [0.3, 0.2], [0.3 + 1e-7, 0.2],  # within atol
        ]
    )  # fmt: skip
    assert (
        constant_per_function(rewards, 2).tolist() == [True] * 2 + [False] * 2 + [True] * 2 + [False] * 2 + [True] * 2
    )
    with pytest.raises(ValueError, match="not a whole number of groups"):
        constant_per_function(rewards[:3], 2)
    with pytest.raises(ValueError, match=r"\(rows, functions\)"):
        constant_per_function(rewards[:, 0], 2)


def test_relative_alpha_by_hand():
    from zvp_trl.methods.rl_zvp.algorithm import relative_alpha

    # Row 0: all-correct group, entropies [0.2, 0.4] -> unit advantages [0.2, 0.4].
    # Row 1: all-wrong group, entropies [0.1, 0.5, pad] -> unit advantages -(0.5 - H) = [-0.4, 0.0].
    # Rows 2, 3: a mixed group, GRPO advantages +1.5 / -0.5, 2 and 1 valid tokens.
    advantages = torch.tensor([0.0, 0.0, 1.5, -0.5])
    signs = torch.tensor([1.0, -1.0, 0.0, 0.0])
    entropies = torch.tensor([[0.2, 0.4, 9.0], [0.1, 0.5, 9.0], [1.0, 1.0, 1.0], [1.0, 1.0, 1.0]])
    mask = torch.tensor([[1, 1, 0], [1, 1, 0], [1, 1, 0], [1, 0, 0]])
    # u = (0.2 + 0.4 + 0.4 + 0.0) / 4 = 0.25; m = (1.5 + 1.5 + 0.5) / 3 = 7/6; alpha = 0.1 * m / u = 7/15
    alpha, u, m = relative_alpha(advantages, signs, entropies, mask, target_ratio=0.1, max_alpha=10.0)
    assert u == pytest.approx(0.25) and m == pytest.approx(7 / 6) and alpha == pytest.approx(7 / 15)
    # Only the all-correct row shaped: u = 0.3, alpha = 0.1 * (7/6) / 0.3 = 7/18.
    alpha, u, _ = relative_alpha(advantages, signs, entropies, mask, 0.1, 10.0, use_negative=False)
    assert u == pytest.approx(0.3) and alpha == pytest.approx(7 / 18)
    # Capped.
    alpha, _, _ = relative_alpha(advantages, signs, entropies, mask, target_ratio=100.0, max_alpha=2.0)
    assert alpha == 2.0
    # No mixed rows: m is the nominal scale of group-normalized advantages, 1.
    alpha, u, m = relative_alpha(advantages[:2], signs[:2], entropies[:2], mask[:2], 0.1, 10.0)
    assert m == 1.0 and alpha == pytest.approx(0.1 / 0.25)
    # Nothing to shape (only mixed rows, or zero entropies): the cap, which multiplies zeros.
    assert relative_alpha(advantages[2:], signs[2:], entropies[2:], mask[2:], 0.1, 3.0)[0] == 3.0
    zero = torch.zeros_like(entropies)
    assert relative_alpha(advantages, signs, zero, mask, 0.1, 3.0)[:2] == (3.0, 0.0)
    # With that alpha, the shaped tokens' mean |advantage| is target * m.
    alpha, u, m = relative_alpha(advantages, signs, entropies, mask, 0.1, 10.0)
    shaped = rl_zvp_token_advantages(advantages, signs, entropies, mask, alpha=alpha)
    zv_tokens = mask[:2].float()
    assert ((shaped[:2].abs() * zv_tokens).sum() / zv_tokens.sum()).item() == pytest.approx(0.1 * m)
