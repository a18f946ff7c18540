# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""Two steps of every algorithm on the installed TRL (CI runs this file with trl 1.15.0 and 1.16.0).

The reward makes every kind of group in each batch (all-correct, all-wrong, mixed), so each method's parts act.
Where TRL's loss cannot run (trl 1.15 on a CPU, see `trl_support`), the test runs both steps' generation rounds with
the method's parts (sampling, scoring, per-prompt state, batch assembly) as TRL's training step calls them, and then
checks that training stops where plain TRL stops, with TRL's own error.
"""

import math
import re

import pytest
from datasets import Dataset
from trl import GRPOConfig, GRPOTrainer
from trl_support import LOSS_RUNS_HERE, TRL_STOPS_AT

from zvp_trl import ALGORITHMS, get_algorithm


pytestmark = pytest.mark.trainer


def by_prompt(prompts, completions, **kwargs):
    """Questions 0, 3, ...: every completion right; 1, 4, ...: every one wrong; 2, 5, ...: alternate rows right."""
    rewards = []
    for i, prompt in enumerate(prompts):
        question = int(re.search(r"Q: (\d+)", prompt).group(1))
        rewards.append(1.0 if question % 3 == 0 else 0.0 if question % 3 == 1 else float(i % 2 == 0))
    return rewards


def values(tmp_path, **overrides):
    return dict(
        output_dir=str(tmp_path), use_cpu=True, bf16=False, gradient_checkpointing=False, report_to="none",
        per_device_train_batch_size=6, num_generations=2, max_completion_length=4, max_steps=2, logging_steps=1,
        save_strategy="no", seed=0, learning_rate=1e-2, **overrides,
    )  # fmt: skip


# ExGRPO records a stored trajectory's log-probs (a TRL log-prob forward) while the generation round scores it.
STORES_LOG_PROBS = {"exgrpo", "exgrpo_rl_zvp"}
DATASET = Dataset.from_dict({"prompt": [f"Q: {i}+1=?\nA:" for i in range(6)]})


def test_plain_trl(tiny_model_path, tmp_path):
    trainer = GRPOTrainer(tiny_model_path, by_prompt, args=GRPOConfig(**values(tmp_path)), train_dataset=DATASET)
    if LOSS_RUNS_HERE:
        trainer.train()
        assert trainer.state.global_step == 2
    else:
        with pytest.raises(AttributeError, match=re.escape(TRL_STOPS_AT)):
            trainer.train()


@pytest.mark.parametrize("algorithm", list(ALGORITHMS))
def test_two_steps_of(algorithm, tiny_model_path, tmp_path):
    config_class, trainer_class = get_algorithm(algorithm).load()
    method = {"exgrpo_start_threshold": None} if algorithm.startswith("exgrpo") else {}  # the mixed phase at once
    trainer = trainer_class(tiny_model_path, by_prompt, args=config_class(**values(tmp_path, **method)),
                            train_dataset=DATASET)  # fmt: skip
    if LOSS_RUNS_HERE:
        trainer.train()
        losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
        assert len(losses) == 2 and all(math.isfinite(loss) for loss in losses)
        assert trainer.rollouts.kept > 0
        return
    # Both steps' generation batches, through TRL's `_prepare_inputs` as its training step calls it.
    trainer.model.train()
    batches = iter(trainer.get_train_dataloader())
    if algorithm in STORES_LOG_PROBS:
        with pytest.raises(AttributeError, match=re.escape(TRL_STOPS_AT)):
            trainer._prepare_inputs(next(batches))
        assert trainer.rollouts.total == 0 and len(trainer.part("exgrpo").buffer) == 0
        return
    for step in range(2):
        inputs = trainer._prepare_inputs(next(batches))
        trainer._step += 1  # what TRL's training_step does after preparing its inputs
        rows = inputs["completion_ids"].size(0)
        assert rows == inputs["advantages"].size(0) and 0 < rows <= 6 and rows % 2 == 0, step  # GRESO may skip
    assert trainer.rollouts.total >= 12
    with pytest.raises(AttributeError, match=re.escape(TRL_STOPS_AT)):
        trainer.train()
