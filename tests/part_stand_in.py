# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""What a method's part reads of the trainer running it, and nothing more, so that a part's decisions can be driven
with hand-made rows and tensors in the unit tier: no model, no TRL trainer, one process (imported as `part_stand_in`:
pytest puts tests/ on sys.path).

The zero-variance helpers are the adapter's own (`ZVPBaseTrainer._row_signs`, `_local_rows`), so a part decides
exactly as it does in a run. A part that asks for anything else fails with an AttributeError naming it.
"""

from collections import defaultdict
from types import SimpleNamespace

import torch

from zvp_trl.core.adapter import ZVPBaseTrainer
from zvp_trl.core.step import GenerationStep


class OneProcess:
    """`accelerate.Accelerator`'s surface the parts use, for a single process on the CPU."""

    num_processes = 1
    process_index = 0
    is_main_process = True
    device = torch.device("cpu")
    state = SimpleNamespace(deepspeed_plugin=None)

    def gather(self, tensor):
        return tensor

    def reduce(self, tensor, reduction="sum"):
        return tensor


class StandInTrainer:
    """The run a part belongs to: `args` (the method's config), one process, a metrics sink, the train dataset, the
    training mode and step, and the adapter's zero-variance helpers."""

    _row_signs = ZVPBaseTrainer._row_signs
    _local_rows = ZVPBaseTrainer._local_rows

    def __init__(self, args, part_classes=(), train_dataset=None, reward_weights=(1.0,)):
        self.args = args
        self.num_generations = args.num_generations
        self.num_generations_eval = args.num_generations_eval or args.num_generations
        self.model = SimpleNamespace(training=True)
        self.accelerator = OneProcess()
        self.state = SimpleNamespace(global_step=0, epoch=0.0)
        self._metrics = {"train": defaultdict(list), "eval": defaultdict(list)}
        self._tokenizer = SimpleNamespace(pad_token_id=0)
        self.reward_weights = torch.tensor(reward_weights)
        self.train_dataset = train_dataset
        self.prompts_from_environment = False
        self.environment_factories = None
        self.row_temperature_logprobs = False
        self._method_parts = [part_class(self) for part_class in part_classes]

    def enable_row_temperature_logprobs(self) -> None:
        self.row_temperature_logprobs = True

    def part(self, name: str):
        return next(part for part in self._method_parts if part.name == name)


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
