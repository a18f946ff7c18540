# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""Sampling-based evaluation: Acc@k, Pass@k and zero-variance statistics of a model on a prompt set."""

from collections.abc import Callable, Sequence

import torch


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased Pass@k estimator `1 - C(n-c, k) / C(n, k)` for `c` correct out of `n` samples.

    Computed as a product of ratios, so it stays exact and finite for large `n`.
    """
    if not 0 <= c <= n:
        raise ValueError(f"Need 0 <= c <= n, got n={n}, c={c}.")
    if not 1 <= k <= n:
        raise ValueError(f"Need 1 <= k <= n, got n={n}, k={k}.")
    if n - c < k:
        return 1.0
    # C(n-c, k) / C(n, k) = prod_{i=0}^{k-1} (n-c-i) / (n-i)
    ratio = 1.0
    for i in range(k):
        ratio *= (n - c - i) / (n - i)
    return 1.0 - ratio


def acc_pass_at_k(correct_per_question: Sequence[Sequence[bool]], k: int) -> dict[str, float]:
    """Acc@k (mean accuracy over the samples) and Pass@k (unbiased estimator, n = samples per question)."""
    questions = [list(c) for c in correct_per_question if len(c) > 0]
    if not questions:
        return {f"acc@{k}": float("nan"), f"pass@{k}": float("nan"), "num_questions": 0}
    accuracy = sum(sum(c) / len(c) for c in questions) / len(questions)
    passed = sum(pass_at_k(len(c), sum(c), min(k, len(c))) for c in questions) / len(questions)
    return {f"acc@{k}": accuracy, f"pass@{k}": passed, "num_questions": len(questions)}


def render_for_generation(tokenizer, prompt, **chat_template_kwargs) -> str:
    """The text a model generates from: a plain-text prompt as it is, chat messages through the tokenizer's chat
    template with the generation prompt (as TRL renders conversational prompts). Rendered chat prompts already hold
    their special tokens: sample them with `add_special_tokens=False`."""
    if isinstance(prompt, str):
        return prompt
    return tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True, **chat_template_kwargs)


@torch.no_grad()
def sample_completions(
    model,
    tokenizer,
    prompts: Sequence[str],
    num_samples: int,
    *,
    temperature: float = 1.0,
    top_p: float = 1.0,
    max_new_tokens: int = 64,
    batch_size: int = 64,
    seed: int | None = None,
    add_special_tokens: bool = True,
    progress: bool = False,
) -> list[list[str]]:
    """`num_samples` sampled completions per text prompt with `model.generate` (transformers backend).

    Prompts already rendered with a chat template should pass `add_special_tokens=False`."""
    if seed is not None:
        torch.manual_seed(seed)
    was_training = model.training
    model.eval()
    padding_side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    rows = [p for p in prompts for _ in range(num_samples)]
    texts = []
    try:
        starts = range(0, len(rows), batch_size)
        if progress:
            from tqdm.auto import tqdm

            starts = tqdm(starts, desc="sampling", unit="batch")
        for start in starts:
            batch = tokenizer(
                rows[start : start + batch_size],
                return_tensors="pt",
                padding=True,
                add_special_tokens=add_special_tokens,
            )
            batch = {k: v.to(model.device) for k, v in batch.items() if k in ("input_ids", "attention_mask")}
            output = model.generate(
                **batch,
                do_sample=True,
                temperature=temperature,
                top_p=top_p,
                max_new_tokens=max_new_tokens,
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=tokenizer.eos_token_id,
            )
            texts += tokenizer.batch_decode(output[:, batch["input_ids"].shape[1] :], skip_special_tokens=True)
    finally:
        tokenizer.padding_side = padding_side
        model.train(was_training)
    return [texts[i * num_samples : (i + 1) * num_samples] for i in range(len(prompts))]


def evaluate_accuracy(
    model,
    tokenizer,
    prompts: Sequence[str],
    solutions: Sequence[str],
    reward_fn: Callable[..., list[float | None]],
    k: int = 8,
    **sample_kwargs,
) -> dict[str, float]:
    """Acc@k (mean accuracy over k samples), Pass@k, and the split of prompts into all-correct / all-wrong / mixed.

    `reward_fn` is a TRL-style reward function called as `reward_fn(completions=..., solution=...)` returning 1.0 for
    a correct completion; unscorable (None) samples count as wrong.
    """
    completions = sample_completions(model, tokenizer, prompts, k, **sample_kwargs)
    flat = [c for group in completions for c in group]
    gold = [s for s in solutions for _ in range(k)]
    rewards = reward_fn(completions=flat, solution=gold)
    correct = [[(rewards[i * k + j] or 0.0) > 0.5 for j in range(k)] for i in range(len(prompts))]
    counts = [sum(group) for group in correct]
    n = max(1, len(prompts))
    scores = acc_pass_at_k(correct, k) if correct else {f"acc@{k}": 0.0, f"pass@{k}": 0.0}
    return {
        f"acc@{k}": scores[f"acc@{k}"],
        f"pass@{k}": scores[f"pass@{k}"],
        "frac_all_correct": sum(c == k for c in counts) / n,
        "frac_all_wrong": sum(c == 0 for c in counts) / n,
        "frac_mixed": sum(0 < c < k for c in counts) / n,
        "num_prompts": len(prompts),
    }
