# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""Run by tests/test_erpo.py under `torchrun --nproc_per_node 2` (gloo, CPU): each rank writes its ERPO history."""

import json
import os
from pathlib import Path

from datasets import Dataset
from distributed_exit import exit_distributed

from zvp_trl import ERPOConfig, ERPOTrainer


def reward(completions, kind, **kwargs):
    return [{"correct": 1.0, "wrong": 0.0}.get(k, float(i % 2)) for i, k in enumerate(kind)]


def main():
    out = Path(os.environ["ZVP_TEST_OUT"])
    dataset = Dataset.from_dict(
        {"prompt": ["Q: 1+1=?\nA:", "Q: 2+2=?\nA:", "Q: 3+3=?\nA:"], "kind": ["correct", "mixed", "wrong"]}
    )
    args = ERPOConfig(
        output_dir=str(out / "run"),
        use_cpu=True,
        bf16=False,
        gradient_checkpointing=False,
        report_to="none",
        per_device_train_batch_size=6,
        num_generations=4,
        max_completion_length=4,
        max_steps=3,
        save_strategy="no",
        shuffle_dataset=False,
        seed=0,
    )
    trainer = ERPOTrainer(model=os.environ["ZVP_TEST_MODEL"], reward_funcs=reward, args=args, train_dataset=dataset)
    trainer.train()
    rank = trainer.accelerator.process_index
    (out / f"history_rank{rank}.json").write_text(json.dumps(trainer.part("erpo").history.state_dict()))


if __name__ == "__main__":
    main()
    exit_distributed()
