# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""Step time and peak memory of zvp_trl trainers against plain `trl.GRPOTrainer`, on identical settings and seeds.

Each run is its own process (so peak memory is per run), and runs alternate between trainers round by round, so a
slow phase of the machine hits both. The learning rate is 0, so every trainer samples exactly the same sequences and
the ratio measures only the trainer's own work (RL-ZVP: zero-variance detection and token advantages from the entropy
the loss forward already computes; ERPO: the per-row temperature logits processor and history; ExGRPO: trajectory
selection and log-prob forwards for the buffer).

Every algorithm of the package is measured by default (`--trainers` picks some). GRPO-DS and GRESO generate more than
one batch per optimizer step (dropped zero-variance groups are replaced), so their step time is not the same unit of
work: the table also gives the time per 1000 generated completions, relative to TRL's.

    python benchmarks/overhead.py [--rounds 3] [--steps 10] [--warmup_steps 2] [--trainers rl_zvp erpo]
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from datetime import date
from pathlib import Path


def machine_info() -> dict:
    """Where this result is measured: CPU vendor, model and instruction set, GPU, versions (zvp_trl.evaluation.machine)."""
    from zvp_trl.evaluation.machine import machine_info as info

    return info()


def _trainers():
    from zvp_trl.core.composition import with_trl_reference

    return with_trl_reference()


TRAINERS = _trainers()


def worker(name: str, steps: int, warmup_steps: int, batch_size: int) -> dict:
    """One training run; returns the per-step wall times after warm-up and the peak memory."""
    import torch
    from transformers import TrainerCallback

    from zvp_trl import accuracy_reward
    from zvp_trl.data.embedded import make_split
    from zvp_trl.models.resolve import resolve_model_name

    class StepTimer(TrainerCallback):
        def __init__(self):
            self.times = []

        def on_step_begin(self, args, state, control, **kwargs):
            self.start = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            self.times.append(time.perf_counter() - self.start)

    config_class, trainer_class = TRAINERS[name].load()
    cuda = torch.cuda.is_available()
    args = config_class(
        output_dir=f"/tmp/zvp_overhead_{name}",
        use_cpu=not cuda,
        bf16=False,
        gradient_checkpointing=False,
        learning_rate=0.0,
        per_device_train_batch_size=batch_size,
        num_generations=8,
        max_completion_length=96,
        max_steps=warmup_steps + steps,
        logging_steps=1000,
        save_strategy="no",
        report_to="none",
        seed=0,
        epsilon_high=0.28,
    )
    timer = StepTimer()
    trainer = trainer_class(
        model=resolve_model_name("embedded"),
        reward_funcs=accuracy_reward,
        args=args,
        train_dataset=make_split("train", 512),
        callbacks=[timer],
    )
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    trainer.train()
    peak = torch.cuda.max_memory_allocated() if cuda else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    rollouts = getattr(trainer, "rollouts", None)  # zvp_trl trainers count generated completions
    generated = rollouts.total if rollouts is not None else batch_size * (warmup_steps + steps)
    return {
        "step_times": timer.times[warmup_steps:],
        "completions_per_step": generated / (warmup_steps + steps),
        "peak_memory_bytes": peak,
        "device": "cuda" if cuda else "cpu",
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=10, help="measured steps per run")
    parser.add_argument("--warmup_steps", type=int, default=2, help="steps per run left out of the timing")
    parser.add_argument("--batch_size", type=int, default=64, help="completions per step (8 per prompt)")
    parser.add_argument("--trainers", nargs="+", choices=[n for n in TRAINERS if n != "trl_grpo"], default=None)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    names = ["trl_grpo", *(args.trainers or [n for n in TRAINERS if n != "trl_grpo"])]

    if args.worker:
        print(json.dumps(worker(args.worker, args.steps, args.warmup_steps, args.batch_size)))
        return

    runs = {name: [] for name in names}
    for round_index in range(args.rounds):
        order = names if round_index % 2 == 0 else list(reversed(names))
        for name in order:
            command = [
                sys.executable,
                __file__,
                "--worker",
                name,
                "--steps",
                str(args.steps),
                "--warmup_steps",
                str(args.warmup_steps),
                "--batch_size",
                str(args.batch_size),
            ]
            result = subprocess.run(command, capture_output=True, text=True, env=dict(os.environ, HF_HUB_OFFLINE="1"))
            if result.returncode != 0:
                raise RuntimeError(f"{name} run failed:\n{result.stderr[-3000:]}")
            runs[name].append(json.loads(result.stdout.strip().splitlines()[-1]))
            print(
                f"round {round_index + 1}/{args.rounds} {name}: median step "
                f"{statistics.median(runs[name][-1]['step_times']):.3f}s",
                flush=True,
            )

    baseline = runs["trl_grpo"]
    rows = []
    for name, name_runs in runs.items():
        per_round_ratio = [
            statistics.median(ours["step_times"]) / statistics.median(base["step_times"])
            for ours, base in zip(name_runs, baseline)
        ]
        per_completion_ratio = [
            (statistics.median(ours["step_times"]) / ours["completions_per_step"])
            / (statistics.median(base["step_times"]) / base["completions_per_step"])
            for ours, base in zip(name_runs, baseline)
        ]
        memory_ratio = [
            ours["peak_memory_bytes"] / base["peak_memory_bytes"] for ours, base in zip(name_runs, baseline)
        ]
        rows.append(
            {
                "trainer": name,
                "median_step_s": statistics.median(t for run in name_runs for t in run["step_times"]),
                "step_time_ratio": statistics.median(per_round_ratio),
                "step_time_ratio_min": min(per_round_ratio),
                "step_time_ratio_max": max(per_round_ratio),
                "completions_per_step": statistics.median(r["completions_per_step"] for r in name_runs),
                "time_per_completion_ratio": statistics.median(per_completion_ratio),
                "peak_memory_ratio": statistics.median(memory_ratio),
            }
        )

    print(
        "\n| trainer | median step (s) | step time / TRL (median, min-max over rounds) | completions / step "
        "| time per completion / TRL | peak memory / TRL |"
    )
    print("|---|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['trainer']} | {row['median_step_s']:.3f} | {row['step_time_ratio']:.3f} "
            f"({row['step_time_ratio_min']:.3f}-{row['step_time_ratio_max']:.3f}) | {row['completions_per_step']:.0f} "
            f"| {row['time_per_completion_ratio']:.3f} | {row['peak_memory_ratio']:.3f} |"
        )
    import torch
    import trl

    result = {
        "date": date.today().isoformat(),
        "machine": machine_info(),
        "versions": {"torch": torch.__version__, "trl": trl.__version__},
        "settings": vars(args) | {"learning_rate": 0.0, "num_generations": 8, "max_completion_length": 96},
        "results": rows,
    }
    out = Path(__file__).with_name("overhead.json")
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written to {out}")


if __name__ == "__main__":
    main()
