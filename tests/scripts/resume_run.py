# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""Run by tests/test_resume.py in a subprocess: one training of `--algorithm`, optionally SIGKILLed partway.

--kill_at STEP --kill_in generation : the process kills itself (SIGKILL) while scoring the completions of optimizer
                                      step STEP, i.e. mid-step, after checkpoint-(STEP-1) was saved.
--kill_at STEP --kill_in save       : it kills itself while saving checkpoint-STEP, after the model weights were
                                      written and before the optimizer, RNG, zvp_state.json and trainer_state.json.
--kill_at STEP --kill_in buffer_save: (ExGRPO) it kills itself while writing the buffer file of checkpoint-STEP,
                                      once part of it is written (before zvp_state.json and trainer_state.json).
--prefill_buffer PROMPTS,TOKENS     : (ExGRPO, not when resuming) before training, buffers PROMPTS extra questions
                                      with 8 trajectories of TOKENS tokens each (seeded), a checkpoint of realistic
                                      size; their groups are replayed like any other.
--resume                            : resumes with resume_from_checkpoint=True (the last complete checkpoint).
--resume_step STEP                  : resumes from the path OUTPUT_DIR/checkpoint-STEP.
--reference DIR                     : after the run, the same process trains uninterrupted into DIR (same settings),
                                      so both runs share the process's thread settings.
--fsdp2 STATE_DICT_TYPE             : under `torchrun --nproc_per_node 2`, train with FSDP2 on the CPU processes
                                      (zvp_trl.launch.cpu_fsdp), checkpoints as SHARDED_STATE_DICT or FULL_STATE_DICT.
--per_node                          : under `accelerate launch --num_machines 2 --machine_rank R ...`, each "node"
                                      writes into OUTPUT_DIR/node-R (and DIR/node-R), as nodes without a shared disk.
--save_on_each_node                 : passes save_on_each_node=True (every node's main process writes checkpoints).
--deepspeed STAGE                   : under `torchrun --nproc_per_node 2`, train with DeepSpeed ZeRO-STAGE on the CPU
                                      processes (zvp_trl.launch.cpu_deepspeed): checkpoints hold DeepSpeed's
                                      global_step*/ folder with one shard per process, and the gathered model.
--bf16                              : with --deepspeed, DeepSpeed's bf16 mode (the recipes' precision).
"""

import argparse
import os
import signal

import torch
from datasets import Dataset

from zvp_trl.core.composition import get_algorithm


ALGORITHM_OVERRIDES = {
    "exgrpo": {"exgrpo_start_threshold": None},
    "exgrpo_rl_zvp": {"exgrpo_start_threshold": None},
    "greso": {"greso_adapt_from_epoch": 0},
}


def reward(completions, prompts, completion_ids, trainer_state, **kwargs):
    if KILL["in"] == "generation" and trainer_state.global_step == KILL["at"] - 1:
        os.kill(os.getpid(), signal.SIGKILL)
    values = []
    for prompt, ids in zip(prompts, completion_ids):
        n = int(prompt.split(":")[1].split("+")[0])
        # Prompts 0, 4: always solved; 1, 5: never; the others: depends on the sampled tokens.
        values.append({0: 1.0, 1: 0.0}.get(n % 4, float(sum(ids) % 2 == 0)))
    return values


KILL = {"in": None, "at": None}


def fsdp2_args(state_dict_type: str | None) -> dict:
    if state_dict_type is None:
        return {}
    config = {"version": 2, "state_dict_type": state_dict_type, "transformer_layer_cls_to_wrap": ["Qwen3DecoderLayer"]}
    return {"fsdp": "full_shard", "fsdp_config": config}


def deepspeed_args(stage: int | None, bf16: bool = False) -> dict:
    if stage is None:
        return {}
    zero = {"stage": stage, **({"stage3_gather_16bit_weights_on_model_save": True} if stage == 3 else {})}
    config = {
        "zero_optimization": zero,
        "train_micro_batch_size_per_gpu": "auto",
        "gradient_accumulation_steps": "auto",
        "gradient_clipping": "auto",
        "bf16": {"enabled": "auto" if bf16 else False},  # "auto": the training arguments' bf16, as the recipes
    }
    return {"deepspeed": config}


def prefill_buffer(trainer, prompts: int, tokens: int) -> None:
    """Buffers `prompts` questions (not in the dataset) with 8 distinct trajectories of `tokens` tokens each."""
    generator = torch.Generator().manual_seed(1234)
    vocab = len(trainer.processing_class)
    G = trainer.num_generations
    for i in range(prompts):
        prompt = f"Q:{100 + i}+1=?\nA:"
        trajectories = [
            (torch.randint(3, vocab, (tokens,), generator=generator), -torch.rand(tokens, generator=generator) * 5)
            for _ in range(8)
        ]
        prompt_ids = trainer.processing_class(prompt)["input_ids"]
        trainer.part("exgrpo").buffer.update(f"prefill-{i}", 1 + i % (G - 1), G, {"prompt": prompt}, prompt_ids, trajectories)


def kill_while_writing_the_buffer(trainer) -> None:
    """At step KILL["at"], SIGKILLs the process while the buffer file is written: the safetensors library writes the
    temporary file, which is cut to its first 1 MB (what a process killed partway through a larger write leaves; a
    smaller file is left whole, before it is renamed into place), and the process is killed."""
    import zvp_trl.methods.exgrpo.buffer as exgrpo_buffer

    save_file = exgrpo_buffer.save_file

    def save_file_and_die(tensors, filename, metadata=None):
        if trainer.state.global_step != KILL["at"]:
            return save_file(tensors, filename, metadata=metadata)
        save_file(tensors, filename, metadata=metadata)
        if os.path.getsize(filename) > 1 << 20:
            os.truncate(filename, 1 << 20)
        os.kill(os.getpid(), signal.SIGKILL)

    exgrpo_buffer.save_file = save_file_and_die


def train(
    algorithm: str,
    model: str,
    output_dir: str,
    max_steps: int,
    resume: bool | str,
    fsdp2: str | None = None,
    prefill: tuple[int, int] | None = None,
    zero_stage: int | None = None,
    save_on_each_node: bool = False,
    bf16: bool = False,
):
    config_class, trainer_class = get_algorithm(algorithm).load()
    args = config_class(
        **fsdp2_args(fsdp2),
        **deepspeed_args(zero_stage, bf16),
        output_dir=output_dir,
        use_cpu=True,
        bf16=bf16,
        gradient_checkpointing=False,
        report_to="none",
        per_device_train_batch_size=8,
        num_generations=4,
        max_completion_length=6,
        max_steps=max_steps,
        logging_steps=1,
        save_strategy="steps",
        save_steps=1,
        seed=0,
        save_on_each_node=save_on_each_node,
        **ALGORITHM_OVERRIDES.get(algorithm, {}),
    )
    dataset = Dataset.from_dict({"prompt": [f"Q:{i}+1=?\nA:" for i in range(8)]})
    trainer = trainer_class(model=model, reward_funcs=reward, args=args, train_dataset=dataset)
    if KILL["in"] == "save":
        save = trainer._save_optimizer_and_scheduler

        def save_or_die(output_dir):
            if trainer.state.global_step == KILL["at"]:
                os.kill(os.getpid(), signal.SIGKILL)
            return save(output_dir)

        trainer._save_optimizer_and_scheduler = save_or_die
    if KILL["in"] == "buffer_save":
        kill_while_writing_the_buffer(trainer)
    if prefill and not resume:
        prefill_buffer(trainer, *prefill)
    trainer.train(resume_from_checkpoint=resume or None)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--algorithm", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--max_steps", type=int, default=6)
    parser.add_argument("--kill_at", type=int)
    parser.add_argument("--kill_in", choices=["generation", "save", "buffer_save"])
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--resume_step", type=int)
    parser.add_argument("--reference")
    parser.add_argument("--fsdp2", choices=["SHARDED_STATE_DICT", "FULL_STATE_DICT"])
    parser.add_argument("--deepspeed", type=int, choices=(2, 3))
    parser.add_argument("--bf16", action="store_true", help="with --deepspeed: DeepSpeed's bf16 mode")
    parser.add_argument("--per_node", action="store_true")
    parser.add_argument("--save_on_each_node", action="store_true")
    parser.add_argument("--prefill_buffer", type=lambda s: tuple(int(x) for x in s.split(",")))
    cli = parser.parse_args()
    torch.set_num_threads(1)  # every run of a comparison computes in the same order
    if cli.fsdp2:
        from zvp_trl.launch.cpu_fsdp import enable_cpu_fsdp

        enable_cpu_fsdp()
    if cli.deepspeed:
        from zvp_trl.launch.cpu_deepspeed import enable_cpu_deepspeed

        enable_cpu_deepspeed()
    KILL.update({"in": cli.kill_in, "at": cli.kill_at})
    options = dict(
        fsdp2=cli.fsdp2, prefill=cli.prefill_buffer, zero_stage=cli.deepspeed, save_on_each_node=cli.save_on_each_node,
        bf16=cli.bf16,
    )
    output_dir, reference = cli.output_dir, cli.reference
    if cli.per_node:  # one process per node: the node's index is the process's rank
        node = int(os.environ["RANK"]) // int(os.environ["LOCAL_WORLD_SIZE"])
        output_dir = os.path.join(output_dir, f"node-{node}")
        reference = reference and os.path.join(reference, f"node-{node}")
    resume = os.path.join(output_dir, f"checkpoint-{cli.resume_step}") if cli.resume_step else cli.resume
    try:
        train(cli.algorithm, cli.model, output_dir, cli.max_steps, resume, **options)
    except ValueError as error:  # shown to the test in one line, whichever process raised it
        print(f"REFUSED: {error}", flush=True)
        raise
    if reference:
        KILL.update({"in": None, "at": None})
        train(cli.algorithm, cli.model, reference, cli.max_steps, False, **options)
    if cli.fsdp2 or cli.deepspeed or cli.per_node:
        from distributed_exit import exit_distributed

        exit_distributed()


if __name__ == "__main__":
    main()
