# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""Drop-in: the GRPOTrainer features a TRL user may already have switched on, for every registered trainer.

Each (trainer, scenario) either trains one optimizer step (finite loss, parameters change) or is refused at
construction with an error that names the field (`REFUSED`, listed in README's "Not supported"). The scenarios follow
TRL's own options: every `loss_type`, reward scaling and aggregation, several iterations and generation steps, a KL
term with a reference model, entropy filtering, overlong filtering, off-policy masking, several reward functions
(weighted, one async, one that leaves rows unscored), PEFT, conversational prompts, tools and environments, and extra
generation kwargs.
"""

import asyncio
import math

import pytest
import torch
from datasets import Dataset

from zvp_trl import ALGORITHMS, get_algorithm


G = 2
LOSS_TYPES = ["grpo", "bnpo", "dr_grpo", "dapo", "cispo", "sapo", "luspo", "vespo"]


def alternating(completions, **kwargs):
    return [float(i % 2 == 0) for i in range(len(completions))]


async def async_alternating(completions, **kwargs):
    await asyncio.sleep(0)
    return [float(i % 2 == 1) for i in range(len(completions))]


def first_of_four(completions, **kwargs):
    return [float(i % 4 == 0) for i in range(len(completions))]


def scores_half(completions, **kwargs):
    """Leaves every other pair of rows unscored (None), as a reward that only applies to some prompts."""
    return [None if (i // 2) % 2 else 0.5 for i in range(len(completions))]


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
    "mask_truncated_completions": ({"mask_truncated_completions": True}, None, "tiny"),
    "off_policy_mask_threshold": ({"off_policy_mask_threshold": 1e-3, "num_iterations": 2}, None, "tiny"),
    "reward_funcs: weighted, async, unscored rows": (
        {"reward_weights": [1.0, 0.5, 2.0], "_rewards": [alternating, async_alternating, scores_half]},
        None,
        "tiny",
    ),
    "multi_objective_aggregation=normalize_then_sum": (
        {"multi_objective_aggregation": "normalize_then_sum", "_rewards": [alternating, first_of_four]},
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
    **{
        (a, "multi_objective_aggregation=normalize_then_sum"): "multi_objective_aggregation"
        for a in ("rl_zvp", "erpo_rl_zvp", "exgrpo_rl_zvp")
    },
    **{(a, s): s for a in ("exgrpo", "exgrpo_rl_zvp") for s in ("tools", "environment_factory")},
}


def build(algorithm, scenario, model_path, tmp_path):
    overrides, trainer_kwargs, _ = SCENARIOS[scenario]
    overrides = dict(overrides)
    rewards = overrides.pop("_rewards", alternating)
    config_class, trainer_class = get_algorithm(algorithm).load()
    method = {"exgrpo_start_threshold": None} if algorithm.startswith("exgrpo") else {}  # the mixed phase at once
    values = dict(
        output_dir=str(tmp_path), use_cpu=True, bf16=False, gradient_checkpointing=False, report_to="none",
        per_device_train_batch_size=4, num_generations=G, max_completion_length=6, max_steps=1, learning_rate=1e-2,
        logging_steps=1, save_strategy="no", seed=0, **method,
    )  # fmt: skip
    values.update(overrides)
    args = config_class(**values)
    if SCENARIOS[scenario][2] == "tool":
        prompts = [[{"role": "user", "content": f"What is {i} times 2?"}] for i in range(8)]
    else:
        prompts = [f"Q: {i}+1=?\nA:" for i in range(8)]
    dataset = Dataset.from_dict({"prompt": prompts})
    kwargs = trainer_kwargs() if trainer_kwargs else {}
    return trainer_class(model=model_path, reward_funcs=rewards, args=args, train_dataset=dataset, **kwargs)


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
    (log,) = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert math.isfinite(log["loss"])
    after = dict(trainer.model.named_parameters())
    if scenario != "mask_truncated_completions":  # every completion of the tiny model may be truncated: no gradient
        assert any(not torch.equal(p, after[n]) for n, p in before.items()), "no parameter changed"


def test_refusals_are_listed_in_the_readme():
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    for (algorithm, scenario), field in REFUSED.items():
        assert field in readme, (algorithm, scenario)
