# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""Run by tests/test_rl_zvp_trainer.py under `torchrun --nproc_per_node 2` (gloo, CPU)."""

import os
from pathlib import Path

from accelerate import PartialState
from datasets import Dataset
from distributed_exit import exit_distributed

from zvp_trl import RLZVPConfig, RLZVPTrainer


def reward(completions, kind, **kwargs):
    rank = PartialState().process_index
    values = {"correct": 1.0, "wrong": 0.0, "split": 1.0 if rank == 0 else 0.0}
    return [values[k] for k in kind]


def main():
    out = Path(os.environ["ZVP_TEST_OUT"])
    dataset = Dataset.from_dict(
        {"prompt": ["Q: 1+1=?\nA:", "Q: 2+2=?\nA:", "Q: 3+3=?\nA:"], "kind": ["correct", "split", "wrong"]}
    )
    args = RLZVPConfig(
        output_dir=str(out / "run"),
        use_cpu=True,
        bf16=False,
        gradient_checkpointing=False,
        report_to="none",
        per_device_train_batch_size=6,
        num_generations=4,
        max_completion_length=4,
        max_steps=1,
        save_strategy="no",
        shuffle_dataset=False,
        seed=0,
    )
    trainer = RLZVPTrainer(model=os.environ["ZVP_TEST_MODEL"], reward_funcs=reward, args=args, train_dataset=dataset)
    generate = trainer._generate_and_score_completions
    signs = []

    def record(inputs):
        output = generate(inputs)
        signs.append(output["zvp_signs"].tolist())
        return output

    trainer._generate_and_score_completions = record
    trainer.train()
    rank = trainer.accelerator.process_index
    (out / f"signs_rank{rank}.txt").write_text(" ".join(str(s) for s in signs[0]))


if __name__ == "__main__":
    main()
    exit_distributed()
