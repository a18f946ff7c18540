# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""Run (through the `every_trainer_run` fixture of tests/conftest.py) under `torchrun --nproc_per_node 2` (gloo, CPU):
`every_trainer_two_processes.py --algorithm NAME[,NAME...]` trains each named algorithm's trainer in turn, in the same
two processes (one launch per distributed set-up, so the processes start and import once, not once per algorithm);
`--fsdp2` runs them under accelerate's FSDP2 (`zvp_trl.launch.cpu_fsdp`, parameters sharded over the two CPU
processes), `--deepspeed STAGE` under DeepSpeed ZeRO-STAGE (`zvp_trl.launch.cpu_deepspeed`).

Trains that algorithm's trainer for `MAX_STEPS` optimizer steps on a tiny dataset with a deterministic reward that
depends on the dataset row's `kind`, on the process and (for `mixed`) on the row's position in its group, never on the
completion text, so every group-level outcome is known in advance:

- `correct`: 1 everywhere; `wrong`: 0 everywhere.
- `split`: 1 on process 0, 0 on process 1. A group split across the two processes is mixed as a whole although each
  half is constant (a decision taken on local rows only would call it zero-variance); a group that lies on one process
  is all-correct on process 0 and all-wrong on process 1.
- `mixed` (whole-group layout only): the first G/2 rows of the group correct on process 0, only the first row on
  process 1 (`k = G/2` or `k = 1`).

Layouts (TRL's dataloader gives process `r` the rows `[r * L, (r + 1) * L)` of each generation batch of `2 * L` rows,
`L = per_device_train_batch_size * steps_per_generation`, and the G copies of a prompt are adjacent):

- `split`: L = 3 * 2 = 6, G = 4, dataset `[correct, split, wrong] * 2` unshuffled, so every generation batch is
  `[c c c c s s | s s w w w w]`: the `split` group has 2 rows on each process.
- `whole`: for trainers whose config rejects the split layout (L % G != 0): GRPO-DS and GRESO keep or drop whole groups
  on each process, ExGRPO replaces whole groups (all require `per_device_train_batch_size * steps_per_generation %
  num_generations == 0`). L = 4 * 2 = 8, G = 4 (2 groups per process), 8 prompts (4 mixed, 2 split, 1 correct,
  1 wrong), shuffled with seed 0.

The layout is chosen by trying the split one first and falling back only when the config rejects it for that reason.

Each rank writes `NAME/rank{r}.json` for each algorithm: the layout and dataset, `{name: state_dict()}` of every object in
`trainer._checkpointed_state` (the ExGRPO buffer's whole `contents()`) before and after training, every reward computation it saw (`rounds`: step, the local
rows' prompt ids / kinds / rewards and the gathered rewards) and every training batch it produced (`batches`:
advantages plus whatever the trainer adds: RL-ZVP signs, ERPO temperatures, ExGRPO replay flags), the state after
the first optimizer step, and what the process runs (accelerate's distributed type, process count, how the model's
parameters are held: `DTensor` shards or plain tensors).
"""

import argparse
import gc
import json
import os
from pathlib import Path

from accelerate import PartialState
from datasets import Dataset
from distributed_exit import exit_distributed
from transformers import TrainerCallback

from zvp_trl import get_algorithm, prompt_id


G = 4
MAX_STEPS = 4
SPLIT_KINDS = ["correct", "split", "wrong"] * 2
WHOLE_KINDS = ["mixed", "mixed", "split", "split", "mixed", "correct", "mixed", "wrong"]
LAYOUTS = {
    "split": {"per_device_train_batch_size": 3, "gradient_accumulation_steps": 2, "shuffle_dataset": False},
    "whole": {"per_device_train_batch_size": 4, "gradient_accumulation_steps": 2, "shuffle_dataset": True},
}
# Options that make the per-prompt state move within a few steps (only those the algorithm's config has are used).
ALGORITHM_OPTIONS = {
    "greso_adapt_from_epoch": 0,  # adapt p_easy / p_hard from the first step (default: from epoch 1)
    "ds_max_generation_rounds": 20,
    "exgrpo_start_threshold": 0.2,  # mixed phase once a generation batch is > 20% correct
}
METHOD_PREFIXES = ("zvp_", "erpo_", "ds_", "greso_", "exgrpo_")


def reward_value(kind: str, rank: int, position: int) -> float:
    """The reward of a row, from its kind, its process and its position in its group (see the module docstring)."""
    if kind == "correct":
        return 1.0
    if kind == "wrong":
        return 0.0
    if kind == "split":
        return 1.0 if rank == 0 else 0.0
    if kind == "mixed":
        return float(position < (G // 2 if rank == 0 else 1))
    raise ValueError(kind)


def reward(completions, kind, **kwargs):
    rank = PartialState().process_index
    # Local row i is at position i % G of its group in the whole-group layout (mixed is not used in the split one).
    return [reward_value(k, rank, i % G) for i, k in enumerate(kind)]


# FSDP2 over the two CPU processes: decoder layers and the root sharded, state dicts sharded in checkpoints.
FSDP2_ARGS = {
    "fsdp": "full_shard",
    "fsdp_config": {
        "version": 2,
        "reshard_after_forward": True,
        "transformer_layer_cls_to_wrap": ["Qwen3DecoderLayer"],
    },
}


def deepspeed_args(stage: int, bf16: bool = False) -> dict:
    """DeepSpeed ZeRO-`stage` over the two CPU processes, fp32 (or bf16 from the training arguments, as the recipes'
    "auto"), batch numbers from the training arguments ("auto")."""
    return {
        "deepspeed": {
            "zero_optimization": {"stage": stage},
            "train_micro_batch_size_per_gpu": "auto",
            "gradient_accumulation_steps": "auto",
            "gradient_clipping": "auto",
            "bf16": {"enabled": "auto" if bf16 else False},
        }
    }


def build(algorithm: str, out: Path, fsdp2: bool = False, zero_stage: int | None = None, bf16: bool = False):
    config_class, trainer_class = get_algorithm(algorithm).load()
    fields = set(config_class.__dataclass_fields__)
    common = dict(
        **(FSDP2_ARGS if fsdp2 else {}),
        **(deepspeed_args(zero_stage, bf16) if zero_stage else {}),
        output_dir=str(out / "run"),
        use_cpu=True,
        bf16=bf16,
        gradient_checkpointing=False,
        report_to="none",
        num_generations=G,
        max_completion_length=4,
        max_steps=MAX_STEPS,
        logging_steps=1,
        save_strategy="no",
        seed=0,
        **{k: v for k, v in ALGORITHM_OPTIONS.items() if k in fields},
    )
    try:
        args, layout = config_class(**common, **LAYOUTS["split"]), "split"
    except ValueError as error:
        if "multiple of num_generations" not in str(error):
            raise
        args, layout = config_class(**common, **LAYOUTS["whole"]), "whole"
    kinds = SPLIT_KINDS if layout == "split" else WHOLE_KINDS
    dataset = Dataset.from_dict({"prompt": [f"Q: {i}+2=?\nA:" for i in range(len(kinds))], "kind": kinds})
    trainer = trainer_class(model=os.environ["ZVP_TEST_MODEL"], reward_funcs=reward, args=args, train_dataset=dataset)
    return trainer, layout, dataset


def state_of(trainer) -> dict:
    # Through JSON, as in a checkpoint's zvp_state.json (the deep copy also freezes the "before" snapshot); the ExGRPO
    # buffer, which checkpoints keep in a binary file, as its whole contents.
    return json.loads(
        json.dumps(
            {
                name: obj.contents() if hasattr(obj, "contents") else obj.state_dict()
                for name, obj in trainer._checkpointed_state.items()
            }
        )
    )


def parameter_layout(trainer) -> dict:
    """How the prepared model holds its parameters: FSDP2 `DTensor`s or DeepSpeed ZeRO partitions."""
    if trainer.is_deepspeed_enabled:
        return deepspeed_parameter_layout(trainer)
    return dtensor_parameter_layout(trainer)


def deepspeed_parameter_layout(trainer) -> dict:
    """The DeepSpeed engine's ZeRO stage, and how many parameters ZeRO-3 partitioned (`ds_tensor`: this process's
    part; `ds_numel`: the whole) with the local / global numbers of elements."""
    engine = trainer.model_wrapped
    params = list(engine.module.parameters())
    partitioned = [p for p in params if hasattr(p, "ds_tensor")]
    return {
        "model_class": type(engine).__name__,
        "zero_stage": engine.zero_optimization_stage(),
        "bf16": bool(engine.bfloat16_enabled()),
        "param_dtype": str(params[0].dtype),
        "num_params": len(params),
        "num_partitioned": len(partitioned),
        "num_dtensor_shard0": 0,
        "local_numel": sum(p.ds_tensor.numel() if hasattr(p, "ds_tensor") else p.numel() for p in params),
        "global_numel": sum(p.ds_numel if hasattr(p, "ds_numel") else p.numel() for p in params),
    }


def dtensor_parameter_layout(trainer) -> dict:
    """How the prepared model holds its parameters: how many are `DTensor`s sharded on dim 0 over the processes, and
    the local / global numbers of elements."""
    from torch.distributed.tensor import DTensor, Shard

    params = list(trainer.model_wrapped.parameters())
    sharded = [p for p in params if isinstance(p, DTensor) and tuple(p.placements) == (Shard(0),)]
    local = sum((p.to_local() if isinstance(p, DTensor) else p).numel() for p in params)
    return {
        "model_class": type(trainer.model_wrapped).__name__,
        "num_params": len(params),
        "num_dtensor_shard0": len(sharded),
        "local_numel": local,
        "global_numel": sum(p.numel() for p in params),
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--algorithm", required=True, help="one registered algorithm, or several separated by commas")
    parser.add_argument(
        "--fsdp2", action="store_true", help="train under accelerate's FSDP2 (zvp_trl.launch.cpu_fsdp)"
    )
    parser.add_argument(
        "--deepspeed",
        type=int,
        choices=(2, 3),
        help="train under DeepSpeed ZeRO-2 or ZeRO-3 (zvp_trl.launch.cpu_deepspeed)",
    )
    parser.add_argument("--bf16", action="store_true", help="under DeepSpeed: its bf16 mode (bf16=True, config 'auto')")
    cli = parser.parse_args()
    if cli.deepspeed:
        from zvp_trl.launch.cpu_deepspeed import enable_cpu_deepspeed

        enable_cpu_deepspeed()  # before the training arguments import DeepSpeed and the trainer builds its Accelerator
    if cli.fsdp2:
        from zvp_trl.launch.cpu_fsdp import enable_cpu_fsdp

        enable_cpu_fsdp()  # before the trainer builds its Accelerator
    out = Path(os.environ["ZVP_TEST_OUT"])
    for algorithm in cli.algorithm.split(","):
        train_and_report(algorithm, out / algorithm, fsdp2=cli.fsdp2, zero_stage=cli.deepspeed, bf16=cli.bf16)
        gc.collect()  # the trainer and the recording closures that refer to it


def train_and_report(algorithm: str, out: Path, fsdp2: bool, zero_stage: int | None, bf16: bool = False) -> None:
    """Trains `algorithm` on this process's rows and writes what it saw to `out/rank{r}.json`."""
    out.mkdir(parents=True, exist_ok=True)
    trainer, layout, dataset = build(algorithm, out, fsdp2=fsdp2, zero_stage=zero_stage, bf16=bf16)
    rank = trainer.accelerator.process_index
    initial_state = state_of(trainer)
    seen = {}

    class Snapshot(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 1:
                seen["state_after_first_step"] = state_of(trainer)
            if "parameters" not in seen:  # the model is prepared (wrapped, sharded) by now
                seen["parameters"] = parameter_layout(trainer)

    trainer.add_callback(Snapshot())

    rounds, batches = [], []
    calculate_rewards, generate = trainer._calculate_rewards, trainer._generate_and_score_completions

    def record_rewards(inputs, prompts, completions, completion_ids_list):
        gathered = calculate_rewards(inputs, prompts, completions, completion_ids_list)
        if trainer.model.training:
            rows = len(inputs)
            values = gathered[:, 0].tolist()
            rounds.append(
                {
                    "step": trainer.state.global_step,
                    "ids": [prompt_id(row) for row in inputs],
                    "kinds": [row["kind"] for row in inputs],
                    "rewards": values[rank * rows : (rank + 1) * rows],
                    "gathered_rewards": values,
                }
            )
        return gathered

    def record_batch(inputs):
        output = generate(inputs)
        if trainer.model.training:
            batch = {"step": trainer.state.global_step, "advantages": output["advantages"].tolist()}
            for key in ("zvp_signs", "erpo_temperatures", "exgrpo_replay"):
                if key in output:
                    batch[key] = output[key].tolist()
            batches.append(batch)
        return output

    # Instance attributes: TRL calls `self._calculate_rewards` / `self._generate_and_score_completions`, so these see
    # every reward computation (every dynamic-sampling round too) and every batch handed to the optimizer steps.
    trainer._calculate_rewards, trainer._generate_and_score_completions = record_rewards, record_batch
    trainer.train()

    accelerator = trainer.accelerator
    result = {
        "algorithm": algorithm,
        "rank": rank,
        "world_size": accelerator.num_processes,
        "distributed_type": str(accelerator.distributed_type.value),
        "is_fsdp2": bool(accelerator.is_fsdp2),
        "is_deepspeed": bool(trainer.is_deepspeed_enabled),
        "backend": accelerator.state.backend,
        "exgrpo_collective_forwards": (
            trainer.part("exgrpo").collective_forwards if "exgrpo" in trainer.part_names else None
        ),
        **seen,
        "layout": layout,
        "num_generations": G,
        "local_rows": trainer.args.per_device_train_batch_size * trainer.args.steps_per_generation,
        "global_step": trainer.state.global_step,
        "base_temperature": trainer.args.temperature,
        "max_steps": MAX_STEPS,
        # The method's own options (JSON-safe scalars), for the expectations computed in the test.
        "args": {k: v for k, v in vars(trainer.args).items() if k.startswith(METHOD_PREFIXES)},
        "dataset": {prompt_id(row): row["kind"] for row in dataset},
        "initial_state": initial_state,
        "state": state_of(trainer),
        "rounds": rounds,
        "batches": batches,
    }
    (out / f"rank{rank}.json").write_text(json.dumps(result))
    # The next algorithm's trainer builds its own Accelerator (and DeepSpeed engine) in these processes: let this
    # one's go first, on both processes together.
    accelerator.wait_for_everyone()
    accelerator.free_memory()


if __name__ == "__main__":
    main()
    exit_distributed()
