# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""Parts driven in the unit tier: a part gets a hand-made `PartContext` (the config, one process, a metrics sink, the
train dataset, the run state), never a trainer, so its decisions can be checked on hand-made rows and tensors with no
model and no TRL trainer (imported as `part_stand_in`: pytest puts tests/ on sys.path). A part that asks for what the
context does not hold (a model forward) fails naming it.
"""

import torch

from zvp_trl.core.parts import PartContext
from zvp_trl.core.step import GenerationStep


class StandIn:
    """Parts built on one hand-made context, looked up by name as `trainer.part(name)` does."""

    def __init__(self, args, part_classes=(), train_dataset=None, reward_weights=(1.0,)):
        self.row_temperature_logprobs = False

        def enable_row_temperature_logprobs():
            self.row_temperature_logprobs = True

        self.context = PartContext(
            args,
            reward_weights=reward_weights,
            train_dataset=train_dataset,
            enable_row_temperature_logprobs=enable_row_temperature_logprobs,
        )
        self.parts = [part_class(self.context) for part_class in part_classes]

    def part(self, name: str):
        return next(part for part in self.parts if part.name == name)


def scored_step(rows: list[dict], rewards: list[float]) -> GenerationStep:
    """A generation round of `rows`, scored by one reward function with `rewards` (one per row)."""
    step = GenerationStep(rows=list(rows))
    step.gathered_rewards = torch.tensor(rewards, dtype=torch.float32)[:, None]
    return step


def generation_output(num_rows: int, completion_length: int = 3, advantages=None) -> dict:
    """A generation batch of `num_rows` rows as TRL's `_generate_and_score_completions` returns it (prompt and
    completion ids whose values name their row: row r's completion is r+1, r+2, ...), all tokens valid."""
    rows = torch.arange(num_rows)
    completion_ids = rows[:, None] + 1 + torch.arange(completion_length)[None, :]
    output = {
        "prompt_ids": torch.stack([rows + 100, rows + 200], dim=1),
        "prompt_mask": torch.ones(num_rows, 2, dtype=torch.long),
        "completion_ids": completion_ids,
        "completion_mask": torch.ones(num_rows, completion_length, dtype=torch.long),
        "advantages": torch.zeros(num_rows) if advantages is None else torch.tensor(advantages, dtype=torch.float32),
        "old_per_token_logps": -0.01 * completion_ids.float(),
    }
    return output
