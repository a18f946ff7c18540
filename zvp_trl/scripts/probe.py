# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""Probe a data set before training: how many prompts the model always solves, never solves, or sometimes solves, at
the training settings (docs/probe.md).

    python recipes/probe.py                                  # the embedded model and task
    python recipes/probe.py --config recipes/<recipe>.yaml --output_dir outputs/probe
    accelerate launch recipes/probe.py --model_name_or_path Qwen/Qwen3-1.7B-Base --dataset_name math \\
        --num_generations 8 --write_filtered true --output_dir outputs/probe_math

Takes the model, data, reward and generation arguments of recipes/train.py (and its YAML recipes) plus the probe's own
(`--probe_prompts_per_process`, `--probe_max_prompts`, `--write_filtered`, `--filter_min_solve_rate`,
`--filter_max_solve_rate`). Writes `probe.jsonl`, `summary.json`, `solve_rates.png` and `trajectories.jsonl` to
`--output_dir` (default `outputs/probe`; a recipe's own output_dir is its training's, so the probe does not use it);
rerunning into the same folder resumes.
"""

import dataclasses
import os
import shlex
import sys

from ..probing import ProbeArguments, probe
from .train import _datasets, _flag_value, _reward_funcs, field_help, make_parser, prepare_model
from .usage import SETUP, usage_errors


DEFAULT_OUTPUT_DIR = "outputs/probe"


def main(argv: list[str] | None = None) -> dict:
    from accelerate import PartialState

    argv = list(sys.argv[1:] if argv is None else argv)
    if "-h" in argv or "--help" in argv:
        print(__doc__)
        print("The probe's own fields:")
        print("\n".join(field_help(f) for f in dataclasses.fields(ProbeArguments)))
        print("\nAll fields, with recipes/train.py's model, data, reward and generation fields, follow.\n")
    parser, _, embedded = make_parser(argv, extra=(ProbeArguments,))
    if embedded:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
    script_args, probe_args, training_args, model_args = parser.parse_args_and_config(argv)
    if _flag_value(argv, "output_dir") is None:
        training_args.output_dir = DEFAULT_OUTPUT_DIR
    state = PartialState()
    prepare_model(script_args, training_args, model_args, state)
    train_dataset, _ = _datasets(script_args, embedded)
    reward_funcs = _reward_funcs(script_args.reward_funcs, script_args, training_args)
    train_command = None
    if probe_args.write_filtered:
        filtered = os.path.join(training_args.output_dir, "filtered.jsonl")
        train_command = f"python recipes/train.py --dataset_name {shlex.quote(filtered)}"
        if script_args.dataset_name in (None, "embedded") and script_args.prompt_template is None:
            train_command += " --prompt_template '{question}'"  # the embedded prompts, kept as they were
        elif script_args.prompt_template is not None:
            train_command += f" --prompt_template {shlex.quote(script_args.prompt_template)}"
    SETUP.done()
    return probe(
        model_args.model_name_or_path,
        reward_funcs,
        train_dataset,
        training_args,
        probe_args,
        model_name=model_args.model_name_or_path,
        dataset_name=script_args.dataset_name or "embedded-arithmetic",
        train_command=train_command,
    )


def cli() -> None:
    with usage_errors("recipes/probe.py"):
        main()
