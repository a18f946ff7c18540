# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""Run by tests/test_exgrpo.py under `torchrun --nproc_per_node 2` (gloo, CPU).

Counts, per process, the no-grad calls of `_get_per_token_logps_and_entropies` (and the model forwards they run) of
ExGRPO's default path and of its collective path (the part's `collective_forwards`, forced on: the path sharded
training takes), for (1) a replay draw from a hand-filled buffer whose two questions have 3 and 1 stored
trajectories (the process that draws the first needs a selection forward, the other none), and (2) a short training
run where process 0 has partially solved groups (rows to store) and process 1 none. Writes them to
`$ZVP_TEST_OUT/forwards_rank{rank}.json` with the buffers and the replayed trajectories, to compare the two paths.
"""

import json
import os
from pathlib import Path

import torch
from accelerate import PartialState
from datasets import Dataset
from distributed_exit import exit_distributed

from zvp_trl.methods.exgrpo import ExGRPOTrainer
from zvp_trl.methods.exgrpo.config import ExGRPOConfig


G = 4


def reward(completions, **kwargs):
    # Process 0: 2 of 4 correct per group (its rows are stored); process 1: none correct (it stores nothing).
    if PartialState().process_index == 0:
        return [float(i % 2 == 0) for i in range(len(completions))]
    return [0.0] * len(completions)


def make_trainer(out: Path, collective: bool, max_steps: int) -> tuple[ExGRPOTrainer, dict]:
    dataset = Dataset.from_dict({"prompt": [f"Q: {i}+2=?\nA:" for i in range(8)]})
    args = ExGRPOConfig(
        output_dir=str(out / "run"),
        use_cpu=True,
        bf16=False,
        gradient_checkpointing=False,
        report_to="none",
        per_device_train_batch_size=8,
        num_generations=G,
        max_completion_length=4,
        max_steps=max_steps,
        save_strategy="no",
        seed=0,
        exgrpo_start_threshold=None,
    )
    trainer = ExGRPOTrainer(model=os.environ["ZVP_TEST_MODEL"], reward_funcs=reward, args=args, train_dataset=dataset)
    trainer.part("exgrpo").collective_forwards = collective
    counts = {"calls": 0, "select_calls": 0, "forwards": 0}
    inner = trainer._get_per_token_logps_and_entropies
    armed = []

    def wrapped(model, input_ids, *args, **kwargs):
        if torch.is_grad_enabled():
            return inner(model, input_ids, *args, **kwargs)
        counts["calls"] += 1
        counts["select_calls"] += bool(kwargs.get("compute_entropy", False))
        armed.append(True)
        try:
            return inner(model, input_ids, *args, **kwargs)
        finally:
            armed.pop()

    def count_forward(module, args, kwargs):
        if armed:
            counts["forwards"] += 1

    trainer._get_per_token_logps_and_entropies = wrapped
    trainer.model.register_forward_pre_hook(count_forward, with_kwargs=True)
    return trainer, counts


def replay_draw(out: Path, collective: bool) -> dict:
    trainer, counts = make_trainer(out, collective, max_steps=1)
    many = [([5 + i, 6 + i, 7], [-1.0, -1.0, -1.0]) for i in range(3)]
    trainer.part("exgrpo").buffer.update("many", 2, G, {"prompt": "Q: 9+9=?\nA:"}, [3, 4], many)
    trainer.part("exgrpo").buffer.update("one", 2, G, {"prompt": "Q: 8+8=?\nA:"}, [3, 4], [([9, 10], [-1.0, -1.0])])
    rows = [{"prompt": f"Q: {g}+2=?\nA:"} for g in range(2) for _ in range(G)]  # 2 local groups: 1 replayed
    with torch.no_grad():
        _, replays, _ = trainer.part("exgrpo").plan_replays(rows)
    return {**counts, "replayed": [t["ids"].tolist() for t in replays.values()]}


def training_run(out: Path, collective: bool) -> dict:
    trainer, counts = make_trainer(out, collective, max_steps=2)
    generate = trainer._generate_and_score_completions
    replayed = []

    def record(inputs):
        output = generate(inputs)
        replayed.append(output["completion_ids"][output["exgrpo_replay"]].tolist())
        return output

    trainer._generate_and_score_completions = record
    trainer.train()
    return {**counts, "replayed": replayed, "buffer": trainer.part("exgrpo").buffer.contents()}


def main():
    out = Path(os.environ["ZVP_TEST_OUT"])
    result = {}
    for mode, collective in [("default", False), ("collective", True)]:
        result[f"draw_{mode}"] = replay_draw(out, collective)
        result[f"train_{mode}"] = training_run(out, collective)
    rank = PartialState().process_index
    (out / f"forwards_rank{rank}.json").write_text(json.dumps(result))


if __name__ == "__main__":
    main()
    exit_distributed()
