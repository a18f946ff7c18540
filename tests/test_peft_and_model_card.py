# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""LoRA (PEFT) with every trainer, and the model card each trainer writes (offline)."""

import re

import pytest
import torch
from datasets import Dataset
from peft import LoraConfig

from zvp_trl import ALGORITHMS, get_algorithm


# A field of each method's own config whose value the card must record.
METHOD_FIELD = {
    "grpo": "max_rollouts",
    "rl_zvp": "zvp_alpha",
    "erpo": "erpo_max_temperature",
    "erpo_rl_zvp": "erpo_temperature_step",
    "erpo_ds": "erpo_ra_advantage",
    "grpo_ds": "ds_max_generation_rounds",
    "greso": "greso_p_easy",
    "exgrpo": "exgrpo_shaping_beta",
    "exgrpo_rl_zvp": "exgrpo_replay_ratio",
}
PAPER_ID = {
    "grpo": None,
    "rl_zvp": "2509.21880",
    "erpo": "2511.04800",
    "erpo_rl_zvp": "2511.04800",
    "erpo_ds": "2511.04800",
    "grpo_ds": "2503.14476",
    "greso": "2506.02177",
    "exgrpo": "2510.02245",
    "exgrpo_rl_zvp": "2510.02245",
}


def reward(completions, prompts, **kwargs):
    # Prompt 0 all correct, prompt 1 all wrong, the others mixed: every method has something to do, and every batch
    # has a group with a GRPO gradient.
    values = []
    for i, p in enumerate(prompts):
        n = int(p.split(":")[1].split("+")[0])
        values.append({0: 1.0, 1: 0.0}.get(n, float(i % 2 == 0)))
    return values


def make_trainer(algorithm, model, tmp_path, **kwargs):
    config_class, trainer_class = get_algorithm(algorithm).load()
    overrides = {"exgrpo_start_threshold": None} if algorithm.startswith("exgrpo") else {}
    args = config_class(
        output_dir=str(tmp_path),
        use_cpu=True,
        bf16=False,
        report_to="none",
        per_device_train_batch_size=8,
        num_generations=4,
        max_completion_length=6,
        max_steps=2,
        learning_rate=1e-2,
        save_strategy="no",
        seed=0,
        **overrides,
    )
    dataset = Dataset.from_dict({"prompt": [f"Q: {i}+1=?\nA:" for i in range(8)]})
    return trainer_class(model=model, reward_funcs=reward, args=args, train_dataset=dataset, **kwargs)


@pytest.mark.unit
def test_every_algorithm_is_covered():
    assert set(METHOD_FIELD) == set(ALGORITHMS) == set(PAPER_ID)


@pytest.mark.trainer
@pytest.mark.parametrize("algorithm", list(ALGORITHMS))
def test_lora_trains_only_the_adapters(tiny_model_path, tmp_path, algorithm):
    peft_config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")
    trainer = make_trainer(algorithm, tiny_model_path, tmp_path, peft_config=peft_config)
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    trainer.train()
    assert trainer.state.global_step == 2
    changed = {n for n, p in trainer.model.named_parameters() if not torch.equal(p, before[n])}
    assert changed, "no parameter moved"
    assert all("lora_" in n for n in changed), sorted(changed)  # the base model stays frozen
    assert any("lora_B" in n for n in changed)


@pytest.mark.trainer
@pytest.mark.parametrize("algorithm", list(ALGORITHMS))
def test_model_card_names_method_cites_paper_and_records_hyperparameters(tiny_model_path, tmp_path, algorithm):
    config_class, trainer_class = get_algorithm(algorithm).load()
    trainer = make_trainer(algorithm, tiny_model_path, tmp_path)
    trainer.create_model_card(model_name="tiny")
    card = (tmp_path / "README.md").read_text()
    assert trainer_class._name in card
    for tag in trainer_class._tag_names:
        assert f"- {tag}" in card, tag
    if PAPER_ID[algorithm]:
        assert f"huggingface.co/papers/{PAPER_ID[algorithm]}" in card  # the link TRL's template makes
        assert trainer_class._paper["title"] in card
        assert (
            "@" in trainer_class._paper["citation"]
            and trainer_class._paper["citation"].split("{")[1].split(",")[0] in card
        )
    # The hyperparameter table: the method's own field and the GRPO settings, with this run's values, before the
    # citations.
    field = METHOD_FIELD[algorithm]
    row = re.search(rf"\| `{field}` \| `(.*)` \|", card)
    assert row and row.group(1) == repr(getattr(trainer.args, field))
    assert "| `num_generations` | `4` |" in card and "| `learning_rate` | `0.01` |" in card
    # The shared settings once, under their names; the deprecated per-method names not at all.
    if algorithm != "grpo":
        assert card.count("| `correct_threshold` | `0.0` |") == 1 and "_correct_threshold`" not in card
    if "## Citations" in card:
        assert card.index("## Method hyperparameters") < card.index("## Citations")
