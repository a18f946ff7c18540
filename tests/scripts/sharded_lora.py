# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""Run by tests/test_fsdp2.py and tests/test_deepspeed.py under `torchrun --nproc_per_node 2` (gloo, CPU): RL-ZVP with a
LoRA adapter, sharded over the two processes: `--mode fsdp2` (FSDP2, zvp_trl.launch.cpu_fsdp) or `--mode zero3`
(DeepSpeed ZeRO-3, zvp_trl.launch.cpu_deepspeed). Each rank writes `lora_rank{r}.json`: what the processes ran and,
for every parameter of the prepared model, whether it is sharded (an FSDP2 `DTensor`, a ZeRO-3 partition) and how
much of it this process holds, whether it trains, and whether its full (gathered) value changed over training."""

import argparse
import json
import os
from pathlib import Path

import torch
from datasets import Dataset
from distributed_exit import exit_distributed
from peft import LoraConfig
from transformers import TrainerCallback


MODES = {
    "fsdp2": {
        "fsdp": "full_shard",
        "fsdp_config": {"version": 2, "transformer_layer_cls_to_wrap": ["Qwen3DecoderLayer"]},
    },
    "zero3": {
        "deepspeed": {
            "zero_optimization": {"stage": 3},
            "train_micro_batch_size_per_gpu": "auto",
            "gradient_accumulation_steps": "auto",
            "bf16": {"enabled": False},
        }
    },
}


def reward(completions, **kwargs):
    return [float(len(c) % 2) for c in completions]  # mixed groups: the adapters get a gradient


def prepared_model(trainer, mode: str):
    return trainer.model_wrapped.module if mode == "zero3" else trainer.model_wrapped


def full_values(model, mode: str) -> dict[str, torch.Tensor]:
    """Every parameter's whole value (gathered from the shards: a collective, every process calls it)."""
    params = dict(model.named_parameters())
    if mode == "zero3":
        import deepspeed

        with deepspeed.zero.GatheredParameters(list(params.values())):
            return {name: p.detach().clone() for name, p in params.items()}
    from torch.distributed.tensor import DTensor

    return {name: (p.full_tensor() if isinstance(p, DTensor) else p).detach().clone() for name, p in params.items()}


def shard_layout(p, mode: str) -> dict:
    if mode == "zero3":
        partitioned = hasattr(p, "ds_tensor")
        return {
            "sharded": partitioned,
            "local_numel": p.ds_tensor.numel() if partitioned else p.numel(),
            "numel": p.ds_numel if partitioned else p.numel(),
        }
    from torch.distributed.tensor import DTensor

    sharded = isinstance(p, DTensor)
    return {"sharded": sharded, "local_numel": (p.to_local() if sharded else p).numel(), "numel": p.numel()}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", choices=sorted(MODES), required=True)
    mode = parser.parse_args().mode
    if mode == "zero3":
        from zvp_trl.launch.cpu_deepspeed import enable_cpu_deepspeed

        enable_cpu_deepspeed()
    else:
        from zvp_trl.launch.cpu_fsdp import enable_cpu_fsdp

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
        **MODES[mode],
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
            seen["before"] = full_values(prepared_model(trainer, mode), mode)

    trainer.add_callback(Before())
    trainer.train()
    model = prepared_model(trainer, mode)
    after = full_values(model, mode)
    result = {
        "rank": trainer.accelerator.process_index,
        "distributed_type": trainer.accelerator.distributed_type.value,
        "model_class": type(trainer.model_wrapped).__name__,
        "zero_stage": trainer.model_wrapped.zero_optimization_stage() if mode == "zero3" else None,
        "params": {
            name: {
                **shard_layout(p, mode),
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
