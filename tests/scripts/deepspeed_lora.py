# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""Run by tests/test_deepspeed.py under `torchrun --nproc_per_node 2` (gloo, CPU): RL-ZVP with a LoRA adapter under
DeepSpeed ZeRO-3 (zvp_trl.trainer.cpu_deepspeed). Each rank writes `lora_rank{r}.json`: for every parameter of the
engine's model, whether ZeRO-3 partitioned it (and how much of it this process holds), whether it trains, and whether
its full (gathered) value changed over training."""

import json
import os
from pathlib import Path

import torch
from datasets import Dataset
from distributed_exit import exit_distributed
from peft import LoraConfig
from transformers import TrainerCallback

from zvp_trl.trainer.cpu_deepspeed import enable_cpu_deepspeed


def reward(completions, **kwargs):
    return [float(len(c) % 2) for c in completions]  # mixed groups: the adapters get a gradient


def full_values(module) -> dict[str, torch.Tensor]:
    """Every parameter's whole value, gathered from the ZeRO-3 partitions (a collective: every process calls it)."""
    import deepspeed

    params = dict(module.named_parameters())
    with deepspeed.zero.GatheredParameters(list(params.values())):
        return {name: p.detach().clone() for name, p in params.items()}


def main():
    enable_cpu_deepspeed()
    from zvp_trl import RLZVPConfig, RLZVPTrainer

    out = Path(os.environ["ZVP_TEST_OUT"])
    args = RLZVPConfig(
        output_dir=str(out / "run"),
        use_cpu=True,
        bf16=False,
        gradient_checkpointing=False,
        report_to="none",
        per_device_train_batch_size=4,
        num_generations=4,
        max_completion_length=6,
        max_steps=3,
        learning_rate=1e-2,
        save_strategy="no",
        seed=0,
        deepspeed={
            "zero_optimization": {"stage": 3},
            "train_micro_batch_size_per_gpu": "auto",
            "gradient_accumulation_steps": "auto",
            "bf16": {"enabled": False},
        },
    )
    trainer = RLZVPTrainer(
        model=os.environ["ZVP_TEST_MODEL"],
        reward_funcs=reward,
        args=args,
        train_dataset=Dataset.from_dict({"prompt": [f"Q: {i}+2=?\nA:" for i in range(8)]}),
        peft_config=LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"),
    )
    seen = {}

    class Before(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):  # the engine is built, before any optimizer step
            seen["before"] = full_values(trainer.model_wrapped.module)

    trainer.add_callback(Before())
    trainer.train()
    engine = trainer.model_wrapped
    after = full_values(engine.module)
    result = {
        "rank": trainer.accelerator.process_index,
        "distributed_type": trainer.accelerator.distributed_type.value,
        "engine_class": type(engine).__name__,
        "zero_stage": engine.zero_optimization_stage(),
        "params": {
            name: {
                "partitioned": hasattr(p, "ds_tensor"),
                "local_numel": p.ds_tensor.numel() if hasattr(p, "ds_tensor") else p.numel(),
                "numel": p.ds_numel if hasattr(p, "ds_numel") else p.numel(),
                "trainable": p.requires_grad,
                "changed": not torch.equal(seen["before"][name], after[name]),
            }
            for name, p in engine.module.named_parameters()
        },
    }
    (out / f"lora_rank{result['rank']}.json").write_text(json.dumps(result))


if __name__ == "__main__":
    main()
    exit_distributed()
