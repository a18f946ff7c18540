# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""Run by tests/test_exgrpo.py under `torchrun --nproc_per_node 2` (gloo, CPU)."""

import json
import os
from pathlib import Path

from accelerate import PartialState
from datasets import Dataset
from distributed_exit import exit_distributed

from zvp_trl.methods.exgrpo import ExGRPOTrainer
from zvp_trl.methods.exgrpo.config import ExGRPOConfig


def reward(completions, **kwargs):
    # Process 0: 2 of 4 correct per group; process 1: 1 of 4. The first row of every group is correct, so a
    # replayed (correct) trajectory in that row stays correct.
    every = 2 if PartialState().process_index == 0 else 4
    return [float(i % every == 0) for i in range(len(completions))]


def main():
    out = Path(os.environ["ZVP_TEST_OUT"])
    dataset = Dataset.from_dict({"prompt": [f"Q: {i}+2=?\nA:" for i in range(8)]})
    args = ExGRPOConfig(
        output_dir=str(out / "run"),
        use_cpu=True,
        bf16=False,
        gradient_checkpointing=False,
        report_to="none",
        per_device_train_batch_size=8,
        num_generations=4,
        max_completion_length=4,
        max_steps=3,
        save_strategy="no",
        seed=0,
        exgrpo_start_threshold=None,
    )
    trainer = ExGRPOTrainer(model=os.environ["ZVP_TEST_MODEL"], reward_funcs=reward, args=args, train_dataset=dataset)
    generate = trainer._generate_and_score_completions
    replays = []

    def record(inputs):
        output = generate(inputs)
        replays.append(int(output["exgrpo_replay"].sum()))
        return output

    trainer._generate_and_score_completions = record
    trainer.train()
    rank = trainer.accelerator.process_index
    state = {"buffer": trainer.part("exgrpo").buffer.contents(), "phase": trainer.part("exgrpo").phase.state_dict()}
    (out / f"buffer_rank{rank}.json").write_text(json.dumps({**state, "replays": replays}))


if __name__ == "__main__":
    main()
    exit_distributed()
