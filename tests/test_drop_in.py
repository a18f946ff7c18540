# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""Drop-in: the GRPOTrainer features a TRL user may already have switched on, for every registered trainer.

Each (trainer, scenario) either trains (finite losses, parameters change, and the method's own effect) or is refused
at construction with an error that names the field (`REFUSED`, listed in README's "Not supported"). The scenarios
follow TRL's own options: every `loss_type`, reward scaling and aggregation, several iterations and generation steps,
a KL term with a reference model, entropy filtering, overlong filtering, off-policy masking, several reward functions
(weighted, one async, one that leaves rows unscored), PEFT, conversational prompts, tools and environments, and extra
generation kwargs.

The rewards make every batch hold all three kinds of group: question 0 of each three is answered right by every
completion, question 1 by none, question 2 by every other row. Each step's generation batch holds every question once,
and training runs two generation batches, so each method acts where it should: RL-ZVP's advantages on the
zero-variance rows (positive on all-correct, negative on all-wrong), ERPO's raised temperature for the question that
came back all-correct, ExGRPO's replay of the mixed question's correct answer, dynamic sampling's dropped groups and
GRESO's skipped prompts (`EFFECTS`).
"""

import asyncio
import math
import re

import pytest
import torch
from datasets import Dataset

from zvp_trl import ALGORITHMS, get_algorithm


G = 2
LOSS_TYPES = ["grpo", "bnpo", "dr_grpo", "dapo", "cispo", "sapo", "luspo", "vespo"]


def question(prompt) -> int:
    text = prompt if isinstance(prompt, str) else prompt[-1]["content"]  # conversational: the user's message
    return int(re.search(r"\d+", text).group())


def by_question(prompts, completions, **kwargs):
    """1 for every completion of questions 0, 3, ...; 0 for questions 1, 4, ...; every other row right for 2, 5, ..."""
    kinds = [question(p) % 3 for p in prompts]
    return [1.0 if kind == 0 else 0.0 if kind == 1 else float(i % 2 == 0) for i, kind in enumerate(kinds)]


async def async_by_question(prompts, completions, **kwargs):
    await asyncio.sleep(0)
    return by_question(prompts, completions)


def scaled_by_question(prompts, completions, **kwargs):
    """The same judgement on another scale (normalize_then_sum's case)."""
    return [3.0 * r for r in by_question(prompts, completions)]


def scores_some(prompts, completions, **kwargs):
    """A reward that applies only to even questions (None elsewhere), 0 where it applies: unscored rows."""
    return [None if question(p) % 2 else 0.0 for p in prompts]


def tools_kwargs():
    from tool_model import multiply

    return {"tools": [multiply]}


def environment_kwargs():
    from tool_model import MultiplyEnvironment

    return {"environment_factory": MultiplyEnvironment}


# name -> (config overrides, trainer keyword arguments (a callable), model: "tiny" or "tool")
SCENARIOS = {
    **{f"loss_type={t}": ({"loss_type": t}, None, "tiny") for t in LOSS_TYPES},
    "scale_rewards=batch": ({"scale_rewards": "batch"}, None, "tiny"),
    "scale_rewards=none": ({"scale_rewards": "none"}, None, "tiny"),
    "num_iterations=2": ({"num_iterations": 2}, None, "tiny"),
    "steps_per_generation=2": ({"steps_per_generation": 2, "gradient_accumulation_steps": 1}, None, "tiny"),
    "beta>0": ({"beta": 0.04}, None, "tiny"),
    "top_entropy_quantile=0.5": ({"top_entropy_quantile": 0.5}, None, "tiny"),
    # Long enough that some completions of every kind of group end before the limit (and are not masked).
    "mask_truncated_completions": ({"mask_truncated_completions": True, "max_completion_length": 24}, None, "tiny"),
    "off_policy_mask_threshold": ({"off_policy_mask_threshold": 1e-3, "num_iterations": 2}, None, "tiny"),
    "reward_funcs: weighted, async, unscored rows": (
        {"reward_weights": [1.0, 0.5, 2.0], "_rewards": [by_question, async_by_question, scores_some]},
        None,
        "tiny",
    ),
    "multi_objective_aggregation=normalize_then_sum": (
        {"multi_objective_aggregation": "normalize_then_sum", "_rewards": [by_question, scaled_by_question]},
        None,
        "tiny",
    ),
    "peft": ({}, lambda: {"peft_config": __import__("peft").LoraConfig(r=4, target_modules=["q_proj"])}, "tiny"),
    "generation_kwargs": ({"generation_kwargs": {"repetition_penalty": 1.2}}, None, "tiny"),
    "conversational prompts": ({}, None, "tool"),
    "tools": ({}, tools_kwargs, "tool"),
    "environment_factory": ({}, environment_kwargs, "tool"),
}

# (algorithm, scenario) -> the field the refusal names. Every other combination trains.
REFUSED = {
    **{(a, f"loss_type={t}"): "loss_type" for a in ("exgrpo", "exgrpo_rl_zvp") for t in ("sapo", "luspo", "vespo")},
}


def logged(name):
    return lambda logs: [entry[name] for entry in logs if entry.get(name) is not None]


# part -> (what its effect is, a check on the training logs)
EFFECTS = {
    "rl_zvp": (
        "positive advantages on all-correct rows, negative on all-wrong ones",
        lambda logs: (
            any(v > 0 for v in logged("zvp/adv_mean_positive")(logs))
            and any(v < 0 for v in logged("zvp/adv_mean_negative")(logs))
        ),
    ),
    "erpo": ("a raised temperature", lambda logs: any(v > 0 for v in logged("erpo/frac_elevated")(logs))),
    "exgrpo": ("a replayed group", lambda logs: any(v > 0 for v in logged("exgrpo/replay_frac")(logs))),
    "grpo_ds": ("dropped groups", lambda logs: any(v > 0 for v in logged("ds/frac_dropped")(logs))),
    "greso": ("skipped prompts", lambda logs: any(v > 0 for v in logged("greso/frac_skipped")(logs))),
}


def build(algorithm, scenario, model_path, tmp_path):
    overrides, trainer_kwargs, _ = SCENARIOS[scenario]
    overrides = dict(overrides)
    rewards = overrides.pop("_rewards", by_question)
    config_class, trainer_class = get_algorithm(algorithm).load()
    method = {"exgrpo_start_threshold": None} if "exgrpo" in algorithm else {}  # the mixed phase at once
    if "greso" in algorithm:  # skip a prompt that was all-correct or all-wrong once with probability 0.95
        method.update(greso_p_easy=0.05, greso_p_hard=0.05)
    values = dict(
        output_dir=str(tmp_path), use_cpu=True, bf16=False, gradient_checkpointing=False, report_to="none",
        per_device_train_batch_size=3 * G, num_generations=G, max_completion_length=6, learning_rate=1e-2,
        logging_steps=1, save_strategy="no", seed=0, **method,
    )  # fmt: skip
    values.update(overrides)
    # Two generation batches, each holding every question of the dataset once.
    steps_per_generation = values.get("steps_per_generation") or 1
    values["max_steps"] = 2 * steps_per_generation * values.get("num_iterations", 1)
    questions = range(3 * steps_per_generation)
    args = config_class(**values)
    if SCENARIOS[scenario][2] == "tool":
        prompts = [[{"role": "user", "content": f"What is {i} times 2?"}] for i in questions]
    else:
        prompts = [f"Q: {i}+1=?\nA:" for i in questions]
    dataset = Dataset.from_dict({"prompt": prompts})
    kwargs = trainer_kwargs() if trainer_kwargs else {}
    return trainer_class(model=model_path, reward_funcs=rewards, args=args, train_dataset=dataset, **kwargs)


@pytest.mark.trainer
@pytest.mark.parametrize("scenario", list(SCENARIOS))
@pytest.mark.parametrize("algorithm", list(ALGORITHMS))
def test_grpo_trainer_scenario(algorithm, scenario, tiny_model_path, tool_model_path, tmp_path):
    model_path = tool_model_path if SCENARIOS[scenario][2] == "tool" else tiny_model_path
    field = REFUSED.get((algorithm, scenario))
    if field is not None:
        with pytest.raises(ValueError, match=field):
            build(algorithm, scenario, model_path, tmp_path)
        return
    trainer = build(algorithm, scenario, model_path, tmp_path)
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if p.requires_grad}
    trainer.train()
    logs = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert len(logs) == trainer.args.max_steps and all(math.isfinite(entry["loss"]) for entry in logs)
    after = dict(trainer.model.named_parameters())
    assert any(not torch.equal(p, after[n]) for n, p in before.items()), "no parameter changed"
    # The batches held all-correct and all-wrong groups (logged by every trainer), and each part acted on them.
    assert any(v > 0 for v in logged("zvp/frac_zv_positive")(logs)), logs
    assert any(v > 0 for v in logged("zvp/frac_zv_negative")(logs)), logs
    for part in trainer.part_names:
        effect, seen = EFFECTS[part]
        assert seen(logs), f"{part}: no {effect} in {logs}"


@pytest.mark.unit
def test_refusals_are_listed_in_the_readme():
    from pathlib import Path

    readme = " ".join((Path(__file__).resolve().parents[1] / "README.md").read_text().split())
    for (algorithm, scenario), field in REFUSED.items():
        assert field in readme, (algorithm, scenario)
    # The refusals tested elsewhere: ExGRPO's adaptive entropy (test_bad_inputs.py) and rollout_func
    # (test_composition.py), an iterable dataset with dynamic sampling or ExGRPO (test_dynamic_sampling.py).
    refusals = readme.split("refused at construction with the reason:", 1)[1].split("\n\n", 1)[0]
    for named in ("`use_adaptive_entropy`", "`rollout_func`", "iterable `train_dataset`", "`IterableDataset`"):
        assert named in refusals, named
    assert "vision-language" in refusals and all(f"`{name}`" in refusals for name in ("grpo_ds", "greso", "erpo_ds"))
