# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""Each method's numbers on one batch, computed by a trainer in bf16 (the recipes' `bf16: true`: autocast on the CPU,
float32 master weights) and by the same trainer in fp32, from the same weights.

Under autocast every matmul rounds its inputs and its output to bf16 (8 significant bits: a relative error of at most
2**-8 each). TRL's fused LM head projects in bf16 but folds each tile into float32 log-sum-exp statistics, so the
log-probs and entropies it returns are float32 numbers computed from bf16 logits. The logits of the model below pass
through a chain of such matmuls (attention and MLP projections, then the head), so each logit is off by a few 2**-8 of
the logit scale; a log-prob (target logit minus the log-partition) and an entropy (log-partition minus the expected
logit) each move by at most twice the largest logit error. The tolerance used throughout, `2 * ROUNDINGS * 2**-8 *
max|z / T|`, allows ROUNDINGS = 2 roundings of the largest logit (the head's inputs, then its output), twice; the
errors measured on this model are about a tenth of it for log-probs and far below it for entropies. Decisions (a ratio clipped or not, a group zero-variance or not) are formed from these float32 values and
float32 rewards, never in bf16: tests/test_bf16_numbers.py shows each with a case bf16 would get wrong."""

import math

import pytest
import torch
from cpu_config import cpu_config_kwargs
from datasets import Dataset
from test_erpo import reference_logps

from zvp_trl.core.composition import get_algorithm
from zvp_trl.methods.exgrpo.algorithm import exgrpo_per_token_loss, policy_shaping
from zvp_trl.methods.rl_zvp.algorithm import rl_zvp_token_advantages


pytestmark = pytest.mark.trainer

BF16_RELATIVE = 2.0**-8
ROUNDINGS = 2
TEMPERATURES = torch.tensor([1.0, 1.2, 1.5, 1.5, 1.0, 1.3])  # ERPO's raised temperatures, capped at 1.5
COMPLETION = 6


def tolerance(model, input_ids, attention_mask, temperatures) -> float:
    """`2 * ROUNDINGS * 2**-8 * max|z / T|` over the scored positions (module docstring)."""
    with torch.no_grad():
        logits = model(input_ids=input_ids, attention_mask=attention_mask).logits[:, -COMPLETION - 1 : -1]
    return 2 * ROUNDINGS * BF16_RELATIVE * (logits / temperatures[:, None, None]).abs().max().item()


def batch(vocab_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    input_ids = torch.randint(2, vocab_size, (len(TEMPERATURES), 12), generator=generator)
    attention_mask = torch.ones_like(input_ids)
    attention_mask[0, :3] = 0  # left padding on one row
    return input_ids, attention_mask


def perturb(model, seed: int = 1, scale: float = 0.02) -> None:
    """The same small update on either trainer's weights (as an optimizer step would make)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(torch.randn(parameter.shape, generator=generator) * scale)


# Prompt kinds and their rewards: "near" groups score 1.0 and 1.001, which bf16 would round to one value.
KINDS = ["correct", "wrong", "mixed", "near"]


def reward_by_kind(completions, kind, **kwargs):
    near = [1.0, 1.001]
    return [{"correct": 1.0, "wrong": 0.0, "mixed": float(i % 2), "near": near[i % 2]}[k] for i, k in enumerate(kind)]


def make(algorithm, model_path, tmp_path, **overrides):
    config_class, trainer_class = get_algorithm(algorithm).load()
    values = cpu_config_kwargs(tmp_path, num_generations=2, max_completion_length=COMPLETION, shuffle_dataset=False)
    values.update(overrides)
    dataset = Dataset.from_dict({"prompt": [f"Q: {i}+1=?\nA:" for i in range(len(KINDS))], "kind": KINDS})
    return trainer_class(
        model=model_path, reward_funcs=reward_by_kind, args=config_class(**values), train_dataset=dataset
    )


def precisions(algorithm, model_path, tmp_path, **overrides):
    """The same trainer in fp32 and in bf16; the bf16 one keeps float32 master weights and runs under autocast."""
    fp32 = make(algorithm, model_path, tmp_path / "fp32", bf16=False, **overrides)
    bf16 = make(algorithm, model_path, tmp_path / "bf16", bf16=True, **overrides)
    for trainer, on in ((fp32, False), (bf16, True)):
        with trainer.accelerator.autocast():  # what TRL's forwards run under
            assert torch.is_autocast_enabled("cpu") is on
            assert not on or torch.get_autocast_dtype("cpu") == torch.bfloat16
    assert all(p.dtype == torch.float32 for p in bf16.model.parameters())
    for a, b in zip(fp32.model.parameters(), bf16.model.parameters()):
        assert torch.equal(a, b)
    return fp32, bf16


def logps_at(trainer, input_ids, attention_mask, temperatures=None, entropy=False):
    trainer.zvp_step.logprob_temperatures = temperatures
    try:
        logps, entropies, _ = trainer._get_per_token_logps_and_entropies(
            trainer.model, input_ids, attention_mask, COMPLETION, compute_entropy=entropy
        )
    finally:
        trainer.zvp_step.logprob_temperatures = None
    return logps.detach(), None if entropies is None else entropies.detach()


def test_erpo_logprobs_and_ratios_at_raised_temperatures(tiny_model_path, tmp_path):
    fp32, bf16 = precisions("erpo", tiny_model_path, tmp_path, erpo_max_temperature=1.5)
    input_ids, attention_mask = batch(fp32.model.config.vocab_size)
    tol = tolerance(fp32.model, input_ids, attention_mask, TEMPERATURES)
    old32, _ = logps_at(fp32, input_ids, attention_mask, TEMPERATURES)
    old16, _ = logps_at(bf16, input_ids, attention_mask, TEMPERATURES)
    # fp32: log_softmax(z / T_i) by hand. bf16: float32 numbers (the ratio and its clip are formed from these in
    # float32, as TRL's loss forms them), within the tolerance, and really computed in bf16 (they differ).
    torch.testing.assert_close(
        old32, reference_logps(fp32.model, input_ids, attention_mask, COMPLETION, TEMPERATURES)[0]
    )
    assert old16.dtype == torch.float32
    error = (old16 - old32).abs().max().item()
    assert 0 < error <= tol, (error, tol)
    # Importance ratios w = exp(new - old) after the same update of both: within exp(2 tol) of each other (each
    # log-prob off by at most tol), and both exactly 1 before it (the same bf16 computation twice).
    assert torch.equal(logps_at(bf16, input_ids, attention_mask, TEMPERATURES)[0], old16)
    perturb(fp32.model), perturb(bf16.model)
    new32, _ = logps_at(fp32, input_ids, attention_mask, TEMPERATURES)
    new16, _ = logps_at(bf16, input_ids, attention_mask, TEMPERATURES)
    ratio32, ratio16 = torch.exp(new32 - old32), torch.exp(new16 - old16)
    assert (ratio32 - 1).abs().max() > 0.01  # the update moved the ratios
    assert ((ratio16 / ratio32).log().abs().max().item()) <= 2 * tol
    # Each row at its own temperature in bf16 too: a row at 1.5 is not the row at 1.0.
    base16, _ = logps_at(bf16, input_ids, attention_mask, None)
    assert (base16[2] - new16[2]).abs().max() > 2 * tol


def test_rl_zvp_token_advantages_from_bf16_entropies(tiny_model_path, tmp_path):
    fp32, bf16 = precisions("rl_zvp", tiny_model_path, tmp_path)
    input_ids, attention_mask = batch(fp32.model.config.vocab_size)
    T = torch.full((len(TEMPERATURES),), fp32.args.temperature)
    tol = tolerance(fp32.model, input_ids, attention_mask, T)
    _, h32 = logps_at(fp32, input_ids, attention_mask, entropy=True)
    _, h16 = logps_at(bf16, input_ids, attention_mask, entropy=True)
    assert h16.dtype == torch.float32 and 0 < (h16 - h32).abs().max().item() <= tol
    # Two zero-variance groups (all-correct rows 0-1, all-wrong rows 2-3) and a mixed one (rows 4-5).
    advantages = torch.tensor([0.0, 0.0, 0.0, 0.0, 0.7071068, -0.7071068])
    signs = torch.tensor([1.0, 1.0, -1.0, -1.0, 0.0, 0.0])
    mask = attention_mask[:, -COMPLETION:].float()
    alpha = fp32.args.zvp_alpha
    a32 = rl_zvp_token_advantages(advantages, signs, h32, mask, alpha=alpha)
    a16 = rl_zvp_token_advantages(advantages, signs, h16, mask, alpha=alpha)
    assert a16.dtype == torch.float32
    assert torch.equal(a16[4:], a32[4:])  # the mixed group's GRPO advantages, bit for bit
    # alpha * H_t and -alpha * (max_k H_k - H_t): off by at most alpha * tol and alpha * 2 tol.
    assert (a16[:2] - a32[:2]).abs().max().item() <= alpha * tol
    assert 0 < (a16[2:4] - a32[2:4]).abs().max().item() <= alpha * 2 * tol
    # The signs of the shaped advantages (the direction each token is pushed) are the same.
    assert torch.equal(torch.sign(a16 * mask), torch.sign(a32 * mask))


def test_exgrpo_stored_logprobs_shaping_and_mixed_loss(tiny_model_path, tmp_path):
    fp32, bf16 = precisions("exgrpo", tiny_model_path, tmp_path)
    input_ids, attention_mask = batch(fp32.model.config.vocab_size)
    T = torch.full((len(TEMPERATURES),), fp32.args.temperature)
    tol = tolerance(fp32.model, input_ids, attention_mask, T)
    output = {
        "prompt_ids": input_ids[:, :-COMPLETION],
        "prompt_mask": attention_mask[:, :-COMPLETION],
        "completion_ids": input_ids[:, -COMPLETION:],
        "completion_mask": attention_mask[:, -COMPLETION:],
    }
    # The log-probs a trajectory is stored with: the part's own no-grad forward of the generating policy.
    stored32 = fp32.part("exgrpo").generating_logps(output, None)
    stored16 = bf16.part("exgrpo").generating_logps(output, None)
    assert stored16.dtype == torch.float32 and 0 < (stored16 - stored32).abs().max().item() <= tol
    # A later policy replays them: w = exp(new - stored), f(w) = w / (w + beta), and the mixed loss.
    perturb(fp32.model), perturb(bf16.model)
    new32, _ = logps_at(fp32, input_ids, attention_mask)
    new16, _ = logps_at(bf16, input_ids, attention_mask)
    beta = fp32.args.exgrpo_shaping_beta
    mask = output["completion_mask"].float()
    advantages = torch.tensor([1.0, -1.0, 0.5, -0.5, 1.0, -1.0])
    replay = torch.tensor([True, True, True, False, False, False])  # rows 0-2 replayed, 3-5 fresh
    kwargs = dict(loss_type="dr_grpo", epsilon_low=0.2, epsilon_high=0.28, shaping_beta=beta)
    loss32, _, w32 = exgrpo_per_token_loss(new32, new32, stored32, advantages, replay, mask, **kwargs)
    loss16, _, w16 = exgrpo_per_token_loss(new16, new16, stored16, advantages, replay, mask, **kwargs)
    assert w16.dtype == loss16.dtype == torch.float32
    # w: within exp(2 tol); f(w): f'(w) = beta / (w + beta)**2, so |df| <= f'(w) * w * (exp(2 tol) - 1).
    rows = replay[:, None].expand_as(mask).bool() & mask.bool()
    assert ((w16[rows] / w32[rows]).log().abs().max().item()) <= 2 * tol
    f32, f16 = policy_shaping(w32, beta), policy_shaping(w16, beta)
    slope = beta / (torch.minimum(w16, w32) + beta) ** 2 * torch.maximum(w16, w32)
    assert ((f16 - f32).abs() <= slope * math.expm1(2 * tol) + 1e-7)[rows].all()
    # The loss per token: -f(w) A on replayed rows (off by at most |A| times that), TRL's clipped surrogate on fresh
    # rows (ratio 1 here, exactly as in fp32).
    assert torch.allclose(loss16[rows], (-f16 * advantages[:, None])[rows], rtol=1e-6, atol=0)
    assert ((loss16 - loss32).abs() <= (advantages.abs()[:, None] * slope * math.expm1(2 * tol)) + 1e-7)[rows].all()
    assert torch.equal(loss16[~replay], loss32[~replay])


@pytest.mark.parametrize("algorithm", ["grpo_ds", "greso"])
def test_zero_variance_split_of_a_bf16_run_is_the_fp32_one(tiny_model_path, tmp_path, algorithm):
    """DS and GRESO keep or drop a group on its rewards' spread. Trained two steps in each precision on prompts whose
    rewards do not depend on the completion: the same groups are kept and dropped, because rewards stay float32 (the
    reward functions' numbers, not the policy's). The "near" group (1.0 and 1.001) has a spread: it is kept, though
    bf16 would have rounded both rewards to 1.0 and dropped it as all-correct."""
    assert torch.tensor([1.0, 1.001]).to(torch.bfloat16).unique().numel() == 1
    overrides = {"max_steps": 2, "per_device_train_batch_size": 4, "save_strategy": "no"}
    if algorithm == "grpo_ds":
        overrides["ds_max_generation_rounds"] = 4
    runs = {}
    for precision in ("fp32", "bf16"):
        trainer = make(algorithm, tiny_model_path, tmp_path / precision, bf16=precision == "bf16", **overrides)
        seen = []
        compute_loss = trainer._compute_loss

        def spy(model, inputs, seen=seen, compute_loss=compute_loss):
            seen.append(inputs["advantages"].detach().clone())
            return compute_loss(model, inputs)

        trainer._compute_loss = spy
        trainer.train()
        logs = [{k: v for k, v in e.items() if k.startswith(("ds/", "greso/"))} for e in trainer.state.log_history]
        runs[precision] = (seen, [entry for entry in logs if entry])
    (seen32, logs32), (seen16, logs16) = runs["fp32"], runs["bf16"]
    assert logs16 == logs32 and logs32  # the same split, step by step
    assert len(seen16) == len(seen32) == 2
    for a16, a32 in zip(seen16, seen32):
        assert torch.equal(a16, a32)  # the same groups reach the loss, with the same advantages
        assert a16.dtype == torch.float32 and (a16 != 0).any()
    # The "near" group reached the loss: rewards 1.0, 1.001 -> A = +-0.0005 / (std 0.000707 + 1e-4) = +-0.6196.
    near = 0.0005 / (0.001 / math.sqrt(2) + 1e-4)
    assert any(torch.isclose(a.abs(), torch.tensor(near), atol=1e-3).any() for a in seen16)
