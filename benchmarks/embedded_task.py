# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""Measures the embedded task's base model: the build the package ships (what the default run copies into an empty
cache) and a build from nothing on this machine: build time, weights checksum (equal to the shipped build's only on
the same torch version and kind of CPU) and the zero-variance split of each model's groups on the training prompts
that `recipes/train.py` uses (8 samples per prompt at temperature 1).

    python benchmarks/embedded_task.py [--num_prompts 512] [--reuse_cache] [--no_build]
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


def split_of(path: Path, num_prompts: int) -> dict:
    """The zero-variance split of the model at `path` on the first training prompts of the default run."""
    train = make_split("train").select(range(num_prompts))
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
    return {
        "weights_sha256": built_weights_checksum(path),
        "sampling_seconds": round(time.perf_counter() - start, 1),
        **stats,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num_prompts", type=int, default=512)
    parser.add_argument(
        "--reuse_cache", action="store_true", help="take the shipped model from ZVP_TRL_CACHE, not an empty cache"
    )
    parser.add_argument(
        "--no_build", action="store_true", help="measure the shipped model only, no build from nothing"
    )
    args = parser.parse_args()

    spec = EmbeddedModelSpec(warmup_steps=TrainScriptArguments().embedded_warmup_steps)
    if not args.reuse_cache:
        os.environ["ZVP_TRL_CACHE"] = tempfile.mkdtemp(prefix="zvp_bench_")
    start = time.perf_counter()
    shipped_path = resolve_model_name("embedded", embedded_spec=spec)  # what the default run does
    shipped = {
        "seconds_to_cache": round(time.perf_counter() - start, 1),
        **split_of(Path(shipped_path), args.num_prompts),
    }
    result = {"date": date.today().isoformat(), "machine": machine_info(), "shipped": shipped}
    rows = [("shipped", shipped["seconds_to_cache"], shipped)]
    if not args.no_build:
        path = Path(tempfile.mkdtemp(prefix="zvp_build_")) / "model"
        start = time.perf_counter()
        build_embedded_model(spec, path)
        built = {"build_seconds": round(time.perf_counter() - start, 1), **split_of(path, args.num_prompts)}
        built["same_as_shipped"] = built["weights_sha256"] == shipped["weights_sha256"]
        result["fresh_build"] = built
        rows.append(("built here", built["build_seconds"], built))
    print("| model | seconds | weights SHA-256 | prompts | all-correct | all-wrong | mixed | acc@8 | pass@8 |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, seconds, stats in rows:
        print(
            f"| {name} | {seconds} | {stats['weights_sha256'][:16]}... | {stats['num_prompts']} | "
            f"{stats['frac_all_correct']:.3f} | {stats['frac_all_wrong']:.3f} | {stats['frac_mixed']:.3f} | "
            f"{stats['acc@8']:.3f} | {stats['pass@8']:.3f} |"
        )
    out = Path(__file__).with_name("embedded_task.json")
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written to {out}")


if __name__ == "__main__":
    main()
