# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""Measures the embedded task's base model: build time from nothing, and the zero-variance split of its groups on the
training prompts that `recipes/train.py` uses (8 samples per prompt at temperature 1).

    python benchmarks/embedded_task.py [--num_prompts 512] [--reuse_cache]
"""

import argparse
import json
import os
import tempfile
import time
from datetime import date
from pathlib import Path

from transformers import AutoModelForCausalLM, AutoTokenizer

from zvp_trl import accuracy_reward, evaluate_accuracy
from zvp_trl.data.embedded import EmbeddedModelSpec, make_split
from zvp_trl.data.embedded.model import build_embedded_model, built_weights_checksum
from zvp_trl.models.resolve import resolve_model_name
from zvp_trl.scripts.train import EMBEDDED_TRAINING_DEFAULTS, TrainScriptArguments


def machine_info() -> dict:
    """Where this result is measured: CPU vendor, model and instruction set, GPU, versions (zvp_trl.evaluation.machine)."""
    from zvp_trl.evaluation.machine import machine_info as info

    return info()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num_prompts", type=int, default=512)
    parser.add_argument("--reuse_cache", action="store_true", help="use ZVP_TRL_CACHE instead of building afresh")
    args = parser.parse_args()

    defaults = TrainScriptArguments()
    if not args.reuse_cache:
        os.environ["ZVP_TRL_CACHE"] = tempfile.mkdtemp(prefix="zvp_bench_")
    start = time.perf_counter()
    spec = EmbeddedModelSpec(warmup_steps=defaults.embedded_warmup_steps)
    if args.reuse_cache:
        path = resolve_model_name("embedded", embedded_spec=spec)
    else:  # built from nothing (not the package's shipped build)
        path = Path(os.environ["ZVP_TRL_CACHE"]) / "model"
        build_embedded_model(spec, path)
    build_seconds = time.perf_counter() - start

    # The first prompts of the exact training set of the default run.
    train = make_split("train").select(range(args.num_prompts))
    model = AutoModelForCausalLM.from_pretrained(path)
    tokenizer = AutoTokenizer.from_pretrained(path)
    start = time.perf_counter()
    stats = evaluate_accuracy(
        model,
        tokenizer,
        list(train["prompt"]),
        list(train["solution"]),
        accuracy_reward,
        k=8,
        temperature=1.0,
        max_new_tokens=EMBEDDED_TRAINING_DEFAULTS["max_completion_length"],
        seed=0,
    )
    result = {
        "date": date.today().isoformat(),
        "machine": machine_info(),
        "build_seconds": round(build_seconds, 1),
        "built_afresh": not args.reuse_cache,
        "sampling_seconds": round(time.perf_counter() - start, 1),
        "weights_sha256": built_weights_checksum(path),
        **stats,
    }
    print("| build (s) | prompts | all-correct | all-wrong | mixed | acc@8 | pass@8 |")
    print("|---|---|---|---|---|---|---|")
    print(
        f"| {result['build_seconds']} | {stats['num_prompts']} | {stats['frac_all_correct']:.3f} | "
        f"{stats['frac_all_wrong']:.3f} | {stats['frac_mixed']:.3f} | {stats['acc@8']:.3f} | {stats['pass@8']:.3f} |"
    )
    out = Path(__file__).with_name("embedded_task.json")
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written to {out}")


if __name__ == "__main__":
    main()
