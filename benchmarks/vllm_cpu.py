# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""vLLM's CPU build against transformers `generate`, on the offline SmolLM2-135M-Instruct at the SmolLM2 CPU
recipe's settings (8 chat prompts x 8 completions, up to 64 new tokens, T = 1, top_p 1, one worked example).

1. Generation: completions/s and generated tokens/s of `vllm.LLM.generate` (the engine TRL's colocate mode builds:
   dtype from the checkpoint, processed log-probs returned) and of `model.generate` (TRL's transformers path: fp32,
   sampling, `num_return_sequences` via repeated rows), each in its own process, alternating rounds.
2. Training: `recipes/train.py --config recipes/smollm2_cpu_rl_zvp.yaml` for a few steps with `--use_vllm true`
   (colocate), the same with `--vllm_importance_sampling_correction false` (TRL's correction costs one more no-grad
   forward over the batch), and without vLLM; TRL's logged `step_time` per step (the first step, which builds
   caches, is left out).

Prints the ratios (vLLM / transformers) and writes benchmarks/vllm_cpu.json. Needs an environment with `vllm-cpu`
(docs/vllm.md, "On a CPU"); the children get the CPU vLLM environment (`zvp_trl.launch.vllm_cpu.vllm_cpu_environment`).

    python benchmarks/vllm_cpu.py [--rounds 2] [--repeats 3] [--train_rounds 1] [--train_steps 3]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path


def machine_info() -> dict:
    """Where this result is measured: CPU vendor, model and instruction set, GPU, versions (zvp_trl.evaluation.machine)."""
    from zvp_trl.evaluation.machine import machine_info as info

    return info()


ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "recipes" / "smollm2_cpu_rl_zvp.yaml"
PROMPTS, G, MAX_TOKENS = 8, 8, 64


def _recipe_prompts() -> list[str]:
    """The recipe's first 8 training prompts, rendered with SmolLM2's chat template as TRL renders them."""
    import yaml
    from transformers import AutoTokenizer

    from zvp_trl.data.math_datasets import format_prompt, parse_fewshot_examples
    from zvp_trl.models.resolve import resolve_model_name

    recipe = yaml.safe_load(RECIPE.read_text())
    tokenizer = AutoTokenizer.from_pretrained(resolve_model_name(recipe["model_name_or_path"]))
    examples = parse_fewshot_examples(recipe["fewshot_examples"])
    questions = [
        f"What is {a}+{b}?" for a, b in [(7, 12), (3, 15), (18, 2), (9, 9), (14, 5), (6, 11), (20, 1), (4, 8)]
    ]
    prompts = []
    for question in questions[:PROMPTS]:
        messages = format_prompt(question, template=recipe["prompt_template"], conversational=True, examples=examples)
        prompts.append(tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True))
    return prompts


def _generation_worker(backend: str, repeats: int) -> dict:
    import torch
    from transformers import AutoTokenizer

    from zvp_trl.models.resolve import resolve_model_name

    path = resolve_model_name("smollm2-offline")
    tokenizer = AutoTokenizer.from_pretrained(path)
    prompts = _recipe_prompts()
    prompt_ids = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
    start = time.perf_counter()
    if backend == "vllm":
        from vllm import LLM, SamplingParams

        llm = LLM(model=path, max_model_len=1024, max_num_batched_tokens=4096, logprobs_mode="processed_logprobs")
        params = SamplingParams(n=1, temperature=1.0, top_p=1.0, max_tokens=MAX_TOKENS, logprobs=0)
        requests = [{"prompt_token_ids": ids} for ids in prompt_ids for _ in range(G)]

        def generate():
            outputs = llm.generate(requests, params, use_tqdm=False)
            return [len(o.outputs[0].token_ids) for o in outputs]
    else:
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
        tokenizer.padding_side = "left"
        rows = [p for p in prompts for _ in range(G)]
        batch = tokenizer(rows, return_tensors="pt", padding=True, add_special_tokens=False)

        def generate():
            with torch.no_grad():
                out = model.generate(
                    **batch, do_sample=True, temperature=1.0, top_p=1.0, top_k=0, max_new_tokens=MAX_TOKENS,
                    pad_token_id=tokenizer.pad_token_id,
                )  # fmt: skip
            completions = out[:, batch["input_ids"].size(1) :]
            lengths = []
            for row in completions.tolist():
                length = len(row)
                if tokenizer.eos_token_id in row:
                    length = row.index(tokenizer.eos_token_id) + 1
                lengths.append(length)
            return lengths

    setup_seconds = time.perf_counter() - start
    generate()  # warm-up
    seconds, tokens = [], []
    for _ in range(repeats):
        t = time.perf_counter()
        lengths = generate()
        seconds.append(time.perf_counter() - t)
        tokens.append(sum(lengths))
    return {"setup_seconds": setup_seconds, "seconds": seconds, "tokens": tokens, "completions": PROMPTS * G}


def _child_env() -> dict:
    from zvp_trl.launch.vllm_cpu import vllm_cpu_environment

    return {**os.environ, **vllm_cpu_environment(kv_cache_gib=2), "HF_HUB_OFFLINE": "1"}


def _run_generation(backend: str, repeats: int) -> dict:
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        subprocess.run(
            [sys.executable, __file__, "--_worker", backend, "--_repeats", str(repeats), "--_out", out.name],
            env=_child_env(),
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        return json.loads(Path(out.name).read_text())


TRAINING_VARIANTS = {
    "transformers": ["--use_vllm", "false"],
    "vllm": ["--use_vllm", "true", "--vllm_mode", "colocate", "--vllm_max_model_length", "1024"],
    "vllm_no_is": ["--use_vllm", "true", "--vllm_mode", "colocate", "--vllm_max_model_length", "1024",
                   "--vllm_importance_sampling_correction", "false"],
}  # fmt: skip


def _run_training(variant: str, steps: int) -> dict:
    with tempfile.TemporaryDirectory() as output_dir:
        command = [
            sys.executable, str(ROOT / "recipes" / "train.py"), "--config", str(RECIPE), "--max_steps", str(steps),
            "--embedded_num_eval_prompts", "0", "--dynamics_plot", "false", "--output_dir", output_dir,
            *TRAINING_VARIANTS[variant],
        ]  # fmt: skip
        start = time.perf_counter()
        subprocess.run(command, env=_child_env(), check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wall = time.perf_counter() - start
        state = json.loads((Path(output_dir) / "trainer_state.json").read_text())
    step_times = [entry["step_time"] for entry in state["log_history"] if "step_time" in entry]
    return {"wall_seconds": wall, "step_times": step_times}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3, help="Timed generate calls per process.")
    parser.add_argument("--train_steps", type=int, default=3)
    parser.add_argument("--train_rounds", type=int, default=1)
    parser.add_argument("--output", default=str(Path(__file__).with_name("vllm_cpu.json")))
    parser.add_argument("--_worker", choices=["vllm", "transformers"], help=argparse.SUPPRESS)
    parser.add_argument("--_repeats", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--_out", help=argparse.SUPPRESS)
    cli = parser.parse_args()
    if cli._worker:
        Path(cli._out).write_text(json.dumps(_generation_worker(cli._worker, cli._repeats)))
        return

    generation = {"vllm": [], "transformers": []}
    training = {variant: [] for variant in TRAINING_VARIANTS}
    for round_index in range(cli.rounds):
        for backend in ("transformers", "vllm") if round_index % 2 == 0 else ("vllm", "transformers"):
            generation[backend].append(_run_generation(backend, cli.repeats))
            print(f"round {round_index + 1}: generation with {backend} done", flush=True)
    for round_index in range(cli.train_rounds):
        variants = list(TRAINING_VARIANTS) if round_index % 2 == 0 else list(reversed(TRAINING_VARIANTS))
        for variant in variants:
            training[variant].append(_run_training(variant, cli.train_steps))
            print(f"round {round_index + 1}: training with {variant} done", flush=True)

    summary = {}
    for backend in generation:
        seconds = [s for run in generation[backend] for s in run["seconds"]]
        tokens = [t for run in generation[backend] for t in run["tokens"]]
        summary[backend] = {
            "completions_per_second": statistics.median(PROMPTS * G / s for s in seconds),
            "tokens_per_second": statistics.median(t / s for t, s in zip(tokens, seconds)),
            "mean_completion_tokens": statistics.mean(tokens) / (PROMPTS * G),
            "setup_seconds": statistics.median(run["setup_seconds"] for run in generation[backend]),
        }
    for variant, runs in training.items():
        steps = [s for run in runs for s in run["step_times"][1:]]  # the first step builds caches
        summary.setdefault(variant, {})["train_step_seconds"] = statistics.median(steps)
        summary[variant]["train_wall_seconds"] = statistics.median(run["wall_seconds"] for run in runs)
    ratios = {
        "completions_per_second": summary["vllm"]["completions_per_second"]
        / summary["transformers"]["completions_per_second"],
        "tokens_per_second": summary["vllm"]["tokens_per_second"] / summary["transformers"]["tokens_per_second"],
        "train_step_time": summary["vllm"]["train_step_seconds"] / summary["transformers"]["train_step_seconds"],
        "train_step_time_without_is_correction": summary["vllm_no_is"]["train_step_seconds"]
        / summary["transformers"]["train_step_seconds"],
    }
    print(f"\n{PROMPTS} prompts x {G} completions, up to {MAX_TOKENS} new tokens, SmolLM2-135M-Instruct, CPU")
    print("| | transformers | vLLM (CPU) | vLLM / transformers |\n|---|---|---|---|")
    for key, label in [
        ("completions_per_second", "completions/s"),
        ("tokens_per_second", "generated tokens/s"),
        ("train_step_seconds", "training step (s, median)"),
    ]:
        ratio_key = {"train_step_seconds": "train_step_time"}.get(key, key)
        print(
            f"| {label} | {summary['transformers'][key]:.2f} | {summary['vllm'][key]:.2f} | {ratios[ratio_key]:.2f} |"
        )
    print(
        f"| training step, vLLM without IS correction (s) | {summary['transformers']['train_step_seconds']:.2f} | "
        f"{summary['vllm_no_is']['train_step_seconds']:.2f} | {ratios['train_step_time_without_is_correction']:.2f} |"
    )
    print(
        f"| start-up (s) | {summary['transformers']['setup_seconds']:.1f} | {summary['vllm']['setup_seconds']:.1f} | |"
    )
    result = {
        "date": date.today().isoformat(),
        "machine": machine_info(),
        "settings": {
            "prompts": PROMPTS,
            "completions_per_prompt": G,
            "max_tokens": MAX_TOKENS,
            "rounds": cli.rounds,
            "train_rounds": cli.train_rounds,
            "train_steps": cli.train_steps,
        },
        "summary": summary,
        "ratios_vllm_over_transformers": ratios,
        "raw": {"generation": generation, "training": training},
    }
    Path(cli.output).write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwritten to {cli.output}")


if __name__ == "__main__":
    main()
