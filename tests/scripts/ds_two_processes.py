# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""Run by tests/test_greso.py under `torchrun --nproc_per_node 2` (gloo, CPU): GRPO-DS then GRESO, 3 steps each.

Writes `rank{r}.json` with, per algorithm, the assembled batches (rows, local completion-mask sum, the global
`num_items_in_batch`, smallest |advantage|), the rows of every micro-batch reaching the loss, the rollout counters,
the dynamic-sampling totals and (GRESO) the full state.
"""

import json
import os
from pathlib import Path

from datasets import Dataset
from distributed_exit import exit_distributed

from zvp_trl.methods.greso import GRESOTrainer
from zvp_trl.methods.greso.config import GRESOConfig
from zvp_trl.methods.grpo_ds import GRPODSTrainer
from zvp_trl.methods.grpo_ds.config import GRPODSConfig


# 4 mixed prompts out of 12: most groups are zero-variance, so processes keep different numbers of groups per round.
KINDS = ["mixed", "correct", "wrong"] * 4


def reward(completions, kind, **kwargs):
    return [{"correct": 1.0, "wrong": 0.0}.get(k, float(i % 2 == 0)) for i, k in enumerate(kind)]


def run(config_class, trainer_class, out: Path) -> dict:
    dataset = Dataset.from_dict({"prompt": [f"Q: {i}+2=?\nA:" for i in range(len(KINDS))], "kind": KINDS})
    args = config_class(
        output_dir=str(out),
        use_cpu=True,
        bf16=False,
        gradient_checkpointing=False,
        report_to="none",
        per_device_train_batch_size=4,
        gradient_accumulation_steps=2,
        num_generations=4,
        max_completion_length=6,
        max_steps=3,
        logging_steps=1,
        save_strategy="no",
        seed=0,
        ds_max_generation_rounds=0,
    )
    trainer = trainer_class(model=os.environ["ZVP_TEST_MODEL"], reward_funcs=reward, args=args, train_dataset=dataset)
    batches, loss_rows = [], []
    generate, compute_loss = trainer._generate_and_score_completions, trainer._compute_loss

    def record_batch(inputs):
        output = generate(inputs)
        batches.append(
            {
                "rows": output["completion_ids"].size(0),
                "mask_sum": int(output["completion_mask"].sum()),
                "num_items_in_batch": int(output["num_items_in_batch"]),
                "min_abs_advantage": float(output["advantages"].abs().min()),
            }
        )
        return output

    def record_loss(model, inputs):
        loss_rows.append(inputs["completion_ids"].size(0))
        return compute_loss(model, inputs)

    trainer._generate_and_score_completions, trainer._compute_loss = record_batch, record_loss
    trainer.train()
    result = {
        "batches": batches,
        "loss_rows": loss_rows,
        "rollouts": trainer.rollouts.state_dict(),
        "ds_stats": trainer.part(trainer.part_names[0]).ds_stats.state_dict(),
    }
    if isinstance(trainer, GRESOTrainer):
        result["state"] = trainer.part("greso").greso_state.state_dict()
    return result


def main():
    out = Path(os.environ["ZVP_TEST_OUT"])
    results = {
        "grpo_ds": run(GRPODSConfig, GRPODSTrainer, out / "ds"),
        "greso": run(GRESOConfig, GRESOTrainer, out / "greso"),
    }
    import torch.distributed as dist

    rank = dist.get_rank() if dist.is_initialized() else 0
    (out / f"rank{rank}.json").write_text(json.dumps(results))


if __name__ == "__main__":
    main()
    exit_distributed()
