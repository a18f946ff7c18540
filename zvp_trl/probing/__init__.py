# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""The zero-variance probe: how many prompts of a data set a model always solves, never solves, or sometimes solves,
at the training settings, before paying for training (`recipes/probe.py`, or `zvp_trl.probe(...)`, this package's
`probe`; docs/probe.md)."""

import json
from pathlib import Path

from ..core.warm_start import PROBE_FILE, SETTINGS_FILE, TRAJECTORIES_FILE, ProbeResult
from ..evaluation.machine import machine_info
from .report import FIGURE_FILE, FILTERED_FILE, SUMMARY_FILE, plot_solve_rates, recommend, report_text, summarize
from .run import ProbeArguments, run_probe


__all__ = [
    "FIGURE_FILE",
    "FILTERED_FILE",
    "PROBE_FILE",
    "SETTINGS_FILE",
    "SUMMARY_FILE",
    "TRAJECTORIES_FILE",
    "ProbeArguments",
    "ProbeResult",
    "probe",
    "recommend",
    "summarize",
]


def probe(
    model,
    reward_funcs,
    train_dataset,
    args=None,
    probe_args: ProbeArguments | None = None,
    *,
    model_name: str | None = None,
    dataset_name: str | None = None,
    processing_class=None,
    train_command: str | None = None,
    print_report: bool = True,
) -> dict:
    """Probes `train_dataset`: `args.num_generations` samples per prompt at `args`' generation settings, scored by
    `reward_funcs` (as `GRPOTrainer` takes them) with `args.correct_threshold`. Writes `probe.jsonl`,
    `trajectories.jsonl`, `summary.json` and `solve_rates.png` to `args.output_dir` (and `filtered.jsonl` with
    `probe_args.write_filtered`), prints the report on the main process, and returns the summary.

    `args` is any config of this package (or a `GRPOConfig`): the probe runs it through the plain GRPO trainer, never
    trains, and samples exactly as a run with that config would. A probe into an `output_dir` that holds one with the
    same settings resumes after its last complete batch."""
    from ..core.adapter import GRPOBaselineTrainer
    from ..core.config import GRPOBaselineConfig

    probe_args = probe_args or ProbeArguments()
    args = args or GRPOBaselineConfig(output_dir="probe")
    trainer = GRPOBaselineTrainer.for_generation_only(
        model=model,
        reward_funcs=reward_funcs,
        args=args,
        train_dataset=train_dataset,
        processing_class=processing_class,
    )
    model_name = model_name or (model if isinstance(model, str) else trainer.model.config.name_or_path)
    dataset_name = dataset_name or "dataset"
    result = run_probe(trainer, train_dataset, args.output_dir, probe_args, model_name, dataset_name)
    summary = summarize(result["rows"], result["settings"], result["seconds"])
    summary["machine"] = machine_info()
    output_dir = Path(args.output_dir)
    if trainer.accelerator.is_main_process:
        if probe_args.write_filtered:
            from .report import write_filtered

            summary["filtered_rows"] = write_filtered(
                train_dataset,
                result["rows"],
                output_dir / FILTERED_FILE,
                probe_args.filter_min_solve_rate,
                probe_args.filter_max_solve_rate,
            )
        if probe_args.probe_plot:
            plot_solve_rates(result["rows"], output_dir / FIGURE_FILE)
        (output_dir / SUMMARY_FILE).write_text(json.dumps(summary, indent=2))
        if print_report:
            print(report_text(summary, output_dir, train_command), flush=True)
    trainer.accelerator.wait_for_everyone()
    return summary
