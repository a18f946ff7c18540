# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""Run by tests/test_dynamic_sampling.py under `torchrun --nproc_per_node 2` (gloo, CPU): GRPO-DS with
`ds_fill_scope="global"`, then `"process"`, 2 steps each, on a reward that makes every group rolled out by process 1
in its first round zero-variance (constant reward) and every other group mixed. Then `"exhausted"`: one generation
round per batch and a reward under which only process 0's first group of each round is mixed, so every batch runs out
of rounds and trains on what it holds (`ds_on_exhausted="train"`).

Writes `rank{r}.json` with, per scope, the generation rounds and groups moved per step, every assembled batch (rows,
smallest |advantage|) and the dynamic-sampling totals.
"""

import json
import os
import sys
from pathlib import Path

import torch.distributed as dist
from datasets import Dataset
from distributed_exit import exit_distributed


sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for the shared CPU config
from cpu_config import cpu_config_kwargs  # noqa: E402

from zvp_trl.methods.grpo_ds import GRPODSTrainer
from zvp_trl.methods.grpo_ds.config import GRPODSConfig


G = 4


def run(scope: str, out: Path) -> dict:
    calls = [0]
    exhausted = scope == "exhausted"

    def reward(completions, **kwargs):
        if exhausted:  # process 0's first group alternates 1, 0; every other group is all-correct
            return [float(i % 2 == 0) if dist.get_rank() == 0 and i < G else 1.0 for i in range(len(completions))]
        first_round_of_process_1 = dist.get_rank() == 1 and calls[0] == 0
        calls[0] += 1
        if first_round_of_process_1:
            return [1.0] * len(completions)
        return [float(i % 2 == 0) for i in range(len(completions))]

    dataset = Dataset.from_dict({"prompt": [f"Q: {i}+2=?\nA:" for i in range(16)]})
    args = GRPODSConfig(
        **cpu_config_kwargs(
            out,
            per_device_train_batch_size=4,
            gradient_accumulation_steps=2,  # 8 rows = 2 groups per process per optimizer batch
            num_generations=G,
            max_completion_length=6,
            max_steps=2,
            ds_oversample_factor=2.0,  # 4 prompts per process per round
            ds_max_generation_rounds=1 if exhausted else 0,
            ds_fill_scope="global" if exhausted else scope,
        )
    )
    trainer = GRPODSTrainer(model=os.environ["ZVP_TEST_MODEL"], reward_funcs=reward, args=args, train_dataset=dataset)
    batches, steps = [], []
    generate = trainer._generate_and_score_completions

    def record_batch(inputs):
        output = generate(inputs)
        metrics = trainer._metrics["train"]
        steps.append({"rounds": metrics["ds/generation_rounds"][-1], "moved": metrics["ds/moved_groups"][-1]})
        batches.append(
            {
                "rows": output["completion_ids"].size(0),
                "min_abs_advantage": float(output["advantages"].abs().min()),
                "rows_with_advantage": int((output["advantages"] != 0).sum()),
            }
        )
        return output

    trainer._generate_and_score_completions = record_batch
    trainer.train()
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    exhausted_logged = [e["ds/exhausted_steps"] for e in trainer.state.log_history if "ds/exhausted_steps" in e]
    return {
        "steps": steps,
        "batches": batches,
        "ds_stats": trainer.part("grpo_ds").ds_stats.state_dict(),
        "global_step": trainer.state.global_step,
        "losses": losses,
        "exhausted_logged": exhausted_logged,
    }


def main():
    out = Path(os.environ["ZVP_TEST_OUT"])
    results = {scope: run(scope, out / scope) for scope in ("global", "process", "exhausted")}
    (out / f"rank{dist.get_rank()}.json").write_text(json.dumps(results))


if __name__ == "__main__":
    main()
    exit_distributed()
