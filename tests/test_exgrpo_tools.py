# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""ExGRPO with TRL's tools and environments: a stored trajectory keeps its tool mask and messages, and its replay
trains only the model's own tokens without running its tool calls again."""

import functools
import math

import pytest
import tool_model
import torch
from cpu_config import cpu_config_kwargs
from datasets import Dataset
from recording import record_generations
from tool_model import ANSWER, TOOL_CALL, MultiplyEnvironment, TaskEnvironment

from zvp_trl.methods.exgrpo import ExGRPOTrainer
from zvp_trl.methods.exgrpo.buffer import ExperienceBuffer
from zvp_trl.methods.exgrpo.config import ExGRPOConfig


pytestmark = pytest.mark.trainer


G = 4
# What Qwen3's chat template appends after a tool call that returned 12: the tool-result tokens of a completion.
TOOL_RESULT = "\n<|im_start|>user\n<tool_response>\n12\n</tool_response><|im_end|>\n<|im_start|>assistant\n"
CALL_AND_ANSWER = [
    {
        "role": "assistant",
        "tool_calls": [{"type": "function", "function": {"name": "multiply", "arguments": {"a": 3, "b": 4}}}],
        "content": "",
    },
    {"role": "tool", "name": "multiply", "content": "12"},
    {"role": "assistant", "content": "The answer is \\boxed{12}."},
]
executed = []  # one entry per tool execution


@functools.wraps(tool_model.multiply)  # TRL reads a tool's schema from its signature and docstring
def multiply(a: int, b: int) -> int:
    executed.append((a, b))
    return tool_model.multiply(a, b)


class CountingEnvironment(MultiplyEnvironment):
    @functools.wraps(MultiplyEnvironment.multiply)
    def multiply(self, a: int, b: int) -> int:
        executed.append((a, b))
        return super().multiply(a, b)


class RewardingEnvironment(MultiplyEnvironment):
    def get_reward(self) -> float:
        return float(self.calls > 0)


def call_then_answer(tokenizer):
    """A `generate` that answers a first turn with the tool call and a turn after a tool result with the answer."""

    def generate(input_ids, **kwargs):
        texts = [ANSWER if "<tool_response>" in tokenizer.decode(row) else TOOL_CALL for row in input_ids.tolist()]
        ids = [tokenizer(text, add_special_tokens=False).input_ids for text in texts]
        width = max(map(len, ids))
        completion = torch.tensor([row + [tokenizer.pad_token_id] * (width - len(row)) for row in ids])
        return torch.cat([input_ids, completion.to(input_ids.device)], dim=1)

    return generate


def tool_trainer(tool_model_path, tmp_path, kind: str, rewarded: list, **overrides):
    def reward(completions, **kwargs):
        rewarded.append(completions)
        return [float(i % 2 == 0) for i in range(len(completions))]  # k = 2 of 4: every group is buffered

    prompts = [[{"role": "user", "content": f"What is {i} times 2?"}] for i in range(8)]
    values = cpu_config_kwargs(
        tmp_path,
        num_generations=G,
        max_completion_length=160,
        max_steps=3,
        exgrpo_start_threshold=None,  # mixed from the first batch: collected at step 1, replayed from step 2
        shuffle_dataset=False,
    )
    values.update(overrides)
    tools = {"tools": [multiply]} if kind == "tools" else {"environment_factory": CountingEnvironment}
    trainer = ExGRPOTrainer(
        model=tool_model_path,
        reward_funcs=reward,
        args=ExGRPOConfig(**values),
        train_dataset=Dataset.from_dict({"prompt": prompts}),
        **tools,
    )
    trainer.model.generate = call_then_answer(trainer.processing_class)
    return trainer


@pytest.mark.parametrize("kind", ["tools", "environment_factory"])
def test_replayed_tool_trajectory_keeps_its_tool_mask_and_is_not_run_again(tool_model_path, tmp_path, kind):
    executed.clear()
    rewarded = []
    trainer = tool_trainer(tool_model_path, tmp_path / "run", kind, rewarded)
    tokenizer = trainer.processing_class
    pieces = [tokenizer(text, add_special_tokens=False).input_ids for text in (TOOL_CALL, TOOL_RESULT, ANSWER)]
    assert [len(p) for p in pieces] == [56, 26, 26]  # counted by hand: one token per character or special token
    expected_ids = pieces[0] + pieces[1] + pieces[2]
    expected_mask = [1] * 56 + [0] * 26 + [1] * 26
    batches = record_generations(
        trainer,
        lambda output: {
            k: output[k].clone() for k in ("completion_ids", "completion_mask", "tool_mask", "exgrpo_replay")
        },
    )
    trainer.train()

    # Every step stored the correct rows (0 and 2) of its fresh groups, each with its tool mask and messages: one
    # trajectory per question (rows 0 and 2 are the same tokens), 2 new questions at step 1, then 1 per step (the
    # other group is a replay).
    assert len(trainer.part("exgrpo").buffer) == 2 + 1 + 1
    assert all(len(entry["trajectories"]) == 1 for entry in trainer.part("exgrpo").buffer.entries.values())
    for entry in trainer.part("exgrpo").buffer.entries.values():
        (t,) = entry["trajectories"]
        assert t["ids"].tolist() == expected_ids and t["tool_mask"].tolist() == expected_mask
        assert t["messages"] == CALL_AND_ANSWER

    # Steps 2 and 3 replayed one group each: its row 0 is the stored trajectory, with the stored tool mask (zeros on
    # the tool-result tokens), so the loss trains only the model's tokens.
    assert [b["exgrpo_replay"].tolist() for b in batches] == [[False] * 8] + [[True] + [False] * 7] * 2
    for batch in batches:
        assert batch["tool_mask"][:, :108].tolist() == [expected_mask] * 8  # every row called the tool once
        assert batch["completion_ids"][0, :108].tolist() == expected_ids
        assert batch["completion_mask"][0].sum().item() == 108
    # Its tool call was not run again: 8 executions at step 1, then 7 per step (the 7 fresh rows). The reward
    # function scored the stored messages, as it scored the fresh rows' messages.
    assert len(executed) == 8 + 7 + 7
    assert [len(calls) for calls in rewarded] == [8, 8, 8]
    assert all(calls[0] == CALL_AND_ANSWER for calls in rewarded)
    logs = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert [entry["tools/call_frequency"] for entry in logs] == pytest.approx([1.0, 7 / 8, 7 / 8])
    assert [entry["exgrpo/replay_frac"] for entry in logs] == [0.0, 0.5, 0.5]
    assert all(math.isfinite(entry["loss"]) for entry in logs)

    # The masks and messages survive a checkpoint of the buffer.
    summary = trainer.part("exgrpo").buffer.save(str(tmp_path / "checkpoint"))
    resumed = ExperienceBuffer()
    resumed.load_state_dict(summary, directory=str(tmp_path / "checkpoint"))
    assert resumed.contents() == trainer.part("exgrpo").buffer.contents()


def test_environment_cases_without_a_defined_replay_are_refused(tool_model_path, tmp_path):
    def reward(completions, **kwargs):
        return [1.0] * len(completions)

    args = ExGRPOConfig(**cpu_config_kwargs(tmp_path, num_generations=G, exgrpo_exclude_retired=False))
    with pytest.raises(ValueError, match="ExGRPO with environment_factory needs a train_dataset"):
        ExGRPOTrainer(model=tool_model_path, reward_funcs=reward, args=args, environment_factory=TaskEnvironment)
    dataset = Dataset.from_dict({"prompt": [[{"role": "user", "content": "What is 3 times 4?"}]] * 2})
    with pytest.raises(ValueError, match="RewardingEnvironment defines get_reward"):
        ExGRPOTrainer(
            model=tool_model_path,
            reward_funcs=reward,
            args=args,
            train_dataset=dataset,
            environment_factory=RewardingEnvironment,
        )


def test_stored_rows_keep_their_tool_mask_and_messages_by_hand(tiny_model_path, tmp_path):
    # One group of 4 (rows 0 and 2 correct: k = 2). Row 0 has a tool-result token (position 1), row 2 none: row 0 is
    # stored with its mask and messages, row 2 as the model's tokens only.
    args = ExGRPOConfig(**cpu_config_kwargs(tmp_path, num_generations=G, per_device_train_batch_size=4))
    dataset = Dataset.from_dict({"prompt": ["Q: 1+1=?\nA:"] * 4})
    trainer = ExGRPOTrainer(
        model=tiny_model_path, reward_funcs=lambda completions, **kw: [0.0], args=args, train_dataset=dataset
    )
    output = {
        "prompt_ids": torch.tensor([[3, 4]] * 4),
        "prompt_mask": torch.ones(4, 2, dtype=torch.long),
        "completion_ids": torch.tensor([[5, 6, 7], [5, 8, 0], [9, 10, 0], [11, 0, 0]]),
        "completion_mask": torch.tensor([[1, 1, 1], [1, 1, 0], [1, 1, 0], [1, 0, 0]]),
        "tool_mask": torch.tensor([[1, 0, 1], [1, 0, 1], [1, 1, 1], [1, 1, 1]]),
        "old_per_token_logps": -torch.arange(12, dtype=torch.float32).view(4, 3),
    }
    messages = [[{"role": "assistant", "content": f"row {i}"}] for i in range(4)]
    correct = torch.tensor([True, False, True, False])
    part = trainer.part("exgrpo")
    part.update_buffer(
        [{"prompt": "Q: 1+1=?\nA:"}] * 4, output, correct, torch.zeros(4, dtype=torch.bool), True, messages
    )
    ((_, entry),) = trainer.part("exgrpo").buffer.entries.items()
    first, second = entry["trajectories"]
    assert first["ids"].tolist() == [5, 6, 7] and first["logps"].tolist() == [0.0, -1.0, -2.0]
    assert first["tool_mask"].tolist() == [1, 0, 1] and first["messages"] == messages[0]
    assert second["ids"].tolist() == [9, 10] and set(second) == {"ids", "logps"}  # all the model's tokens
