# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""Acc@k / Pass@k of a model on the math benchmarks (the RL-ZVP paper's Table 1 protocol by default).

    python recipes/evaluate.py --model_name_or_path Qwen/Qwen3-1.7B-Base                      # the six benchmarks
    python recipes/evaluate.py --model_name_or_path smollm2-offline --benchmarks gsm8k math500 \\
        --data_dir path/to/math_eval --limit 20 --k 4 --max_tokens 256 --backend transformers  # local JSON-lines copies
    python recipes/evaluate.py --model_name_or_path outputs/embedded-rl_zvp --benchmarks embedded --top_p 1.0 \\
        --max_tokens 96                     # a trained embedded model; `embedded` names the untrained base model

Model names are resolved as in recipes/train.py (`zvp_trl.models.resolve.resolve_model_name`).

Writes <output_dir>/<benchmark>.jsonl, summary.json and results.md; rerunning resumes.
"""

import argparse
from pathlib import Path

from trl import TrlParser

from ..evaluation.benchmark_eval import EvaluationArguments, evaluate_model, uses_vllm
from ..evaluation.math_benchmarks import BENCHMARKS
from ..models.resolve import resolve_model_name
from .usage import SETUP, usage_errors


def main(argv=None):
    parser = TrlParser(
        (EvaluationArguments,), description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    (args,) = parser.parse_args_and_config(argv)
    if args.model_name_or_path is None:
        raise ValueError("--model_name_or_path is required.")
    unknown = [name for name in args.benchmarks if name not in BENCHMARKS]
    if unknown:
        raise ValueError(
            f"--benchmarks: unknown {', '.join(map(repr, unknown))}; choose from {', '.join(BENCHMARKS)}."
        )
    # The names recipes/train.py takes: `embedded`, `smollm2-offline`, a Hub id or a local path.
    args.model_name_or_path = resolve_model_name(args.model_name_or_path, use_vllm=uses_vllm(args))
    SETUP.done()
    summary = evaluate_model(args)
    print((Path(args.output_dir) / "results.md").read_text())
    print(f"per-sample results and summary in {args.output_dir}")
    return summary


def cli() -> None:
    """`recipes/evaluate.py`: `main` with usage errors reported as one line and exit status 2."""
    with usage_errors("recipes/evaluate.py"):
        main()


if __name__ == "__main__":
    cli()
