# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""Run by tests/test_fsdp2.py under `torchrun --nproc_per_node 2` (gloo, CPU): RL-ZVP with a LoRA adapter under FSDP2
(zvp_trl.trainer.cpu_fsdp). Each rank writes `lora_rank{r}.json`: for every parameter of the prepared model, whether it is a
`DTensor` shard, whether it trains, and whether its full (gathered) value changed over training."""

import json
import os
from pathlib import Path

import torch
from datasets import Dataset
from distributed_exit import exit_distributed
from peft import LoraConfig
from torch.distributed.tensor import DTensor
from transformers import TrainerCallback

from zvp_trl.trainer.cpu_fsdp import enable_cpu_fsdp


def reward(completions, **kwargs):
    return [float(len(c) % 2) for c in completions]  # mixed groups: the adapters get a gradient


def full_values(model) -> dict[str, torch.Tensor]:
    return {
        name: (p.full_tensor() if isinstance(p, DTensor) else p).detach().clone()
        for name, p in model.named_parameters()
    }


def main():
    enable_cpu_fsdp()
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
        fsdp="full_shard",
        fsdp_config={"version": 2, "transformer_layer_cls_to_wrap": ["Qwen3DecoderLayer"]},
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
        def on_train_begin(self, args, state, control, **kwargs):  # prepared (sharded), before any optimizer step
            seen["before"] = full_values(trainer.model_wrapped)

    trainer.add_callback(Before())
    trainer.train()
    model = trainer.model_wrapped
    after = full_values(model)
    result = {
        "rank": trainer.accelerator.process_index,
        "distributed_type": trainer.accelerator.distributed_type.value,
        "model_class": type(model).__name__,
        "params": {
            name: {
                "dtensor": isinstance(p, DTensor),
                "trainable": p.requires_grad,
                "changed": not torch.equal(seen["before"][name], after[name]),
            }
            for name, p in model.named_parameters()
        },
    }
    (out / f"lora_rank{result['rank']}.json").write_text(json.dumps(result))


if __name__ == "__main__":
    main()
    exit_distributed()
