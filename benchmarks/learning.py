# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""Learning efficiency of every algorithm of the package on the embedded task, at the same rollout budget.

Each (algorithm, seed) is one `recipes/train.py` run in its own process, with the default run's settings, stopped by
`--max_rollouts` (completions generated, skipped prompts not counted) rather than by a number of steps, so methods
that generate more per optimizer step (GRPO-DS, GRESO) get fewer steps. Reported per algorithm (mean ± std over
seeds): held-out Acc@8 / Pass@8 after training (the same 256 held-out prompts, 8 samples at the training
temperature), optimizer steps, rollouts per optimizer step, the share of generated completions that received a
non-zero gradient signal, and the zero-variance fractions over training. One PNG plots the training accuracy (mean
accuracy reward of the completions generated) against rollouts for all methods.

    python benchmarks/learning.py              # full: 80 steps' worth of rollouts (20480), 3 seeds
    python benchmarks/learning.py --quick      # <= 10 minutes on 2 CPU cores: 1 seed, 5120 rollouts, 64 prompts
    python benchmarks/learning.py --algorithms greso exgrpo --merge   # re-run two methods, keep the other rows
    python benchmarks/learning.py --reuse --output_dir runs/x --output_name learning_x  # tabulate finished runs
"""

import argparse
import json
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


HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
ALGORITHMS = ["grpo", "rl_zvp", "erpo", "erpo_rl_zvp", "grpo_ds", "greso", "exgrpo"]
# Methods whose advantages give every zero-variance group a signal (all completions that reach the loss carry one).
SHAPING = {"rl_zvp", "erpo_rl_zvp"}
# Methods that drop zero-variance groups before the loss (every completion that reaches it carries a signal).
FILTERING = {"grpo_ds", "greso"}


def run_one(algorithm: str, seed: int, rollouts: int, eval_prompts: int, out: Path, reuse: bool = False) -> dict:
    if reuse:
        return read_run(algorithm, out, wall_seconds=None)
    out.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        str(ROOT / "recipes" / "train.py"),
        "--algorithm", algorithm,
        "--seed", str(seed),
        "--max_rollouts", str(rollouts),
        "--max_steps", "100000",  # the rollout budget stops the run
        "--save_strategy", "no",
        "--logging_steps", "2",  # a training-accuracy curve with enough points
        "--embedded_num_eval_prompts", str(eval_prompts),
        "--output_dir", str(out),
    ]  # fmt: skip
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    (out / "stdout.txt").write_text(result.stdout + result.stderr)
    if result.returncode != 0:
        raise RuntimeError(f"{algorithm} seed {seed} failed:\n{result.stderr[-3000:]}")
    return read_run(algorithm, out, wall_seconds=round(time.perf_counter() - start, 1))


def read_run(algorithm: str, out: Path, wall_seconds: float | None) -> dict:
    summary = json.loads((out / "summary.json").read_text())
    history = json.loads((out / "trainer_state.json").read_text())["log_history"]
    summary["wall_seconds"] = wall_seconds
    summary["curve"] = [
        (entry["rollouts/total"], entry["rewards/accuracy_reward/mean"])
        for entry in history
        if "rollouts/total" in entry and "rewards/accuracy_reward/mean" in entry
    ]
    zero_std = [entry["frac_reward_zero_std"] for entry in history if "frac_reward_zero_std" in entry]
    summary["frac_zero_variance_mean"] = statistics.fmean(zero_std) if zero_std else float("nan")
    positive = [entry["zvp/frac_zv_positive"] for entry in history if "zvp/frac_zv_positive" in entry]
    summary["frac_all_correct_mean"] = statistics.fmean(positive) if positive else None
    kept, total = summary["rollouts"]["kept"], summary["rollouts"]["total"]
    if algorithm in SHAPING or algorithm in FILTERING:
        signal = kept / total
    else:
        signal = (kept / total) * (1.0 - summary["frac_zero_variance_mean"])
    summary["frac_with_signal"] = signal
    return summary


def mean_std(values):
    values = [v for v in values if v is not None]
    if not values:
        return float("nan"), float("nan")
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1 seed, 5120 rollouts, 64 held-out prompts")
    parser.add_argument("--algorithms", nargs="+", default=ALGORITHMS)
    parser.add_argument("--seeds", nargs="+", type=int, default=None)
    parser.add_argument("--rollouts", type=int, default=None, help="budget of completions per run")
    parser.add_argument("--eval_prompts", type=int, default=None)
    parser.add_argument("--output_dir", default=str(ROOT / "outputs" / "learning"))
    parser.add_argument(
        "--reuse", action="store_true", help="only aggregate the runs already in --output_dir (those that finished)"
    )
    parser.add_argument(
        "--merge",
        action="store_true",
        help="replace only these algorithms' rows in the existing JSON (same budget, held-out prompts and seeds) and "
        "keep the others, each row dated",
    )
    parser.add_argument(
        "--output_name",
        default=None,
        help="name of the JSON / PNG written next to this script (default: learning, or learning_quick with --quick)",
    )
    args = parser.parse_args()
    seeds = args.seeds or ([42] if args.quick else [42, 43, 44])
    rollouts = args.rollouts or (20 * 256 if args.quick else 80 * 256)
    eval_prompts = args.eval_prompts or (64 if args.quick else 256)
    name = args.output_name or ("learning_quick" if args.quick else "learning")

    runs = {}
    for seed in seeds:  # seeds outermost, so an interrupted full run still has every method for the first seeds
        for algorithm in args.algorithms:
            out = Path(args.output_dir) / f"{algorithm}-s{seed}"
            if args.reuse and not (out / "summary.json").is_file():
                continue
            summary = run_one(algorithm, seed, rollouts, eval_prompts, out, reuse=args.reuse)
            runs.setdefault(algorithm, []).append(summary)
            after = summary["heldout_after"]
            print(
                f"{algorithm:12s} seed {seed}: acc@8 {after['acc@8']:.3f} pass@8 {after['pass@8']:.3f} "
                f"steps {summary['global_steps']} ({summary['wall_seconds'] or 0:.0f}s)",
                flush=True,
            )

    table = {}
    for algorithm, summaries in runs.items():
        steps = [s["global_steps"] for s in summaries]
        table[algorithm] = {
            "seeds": len(summaries),
            "acc_at_8": mean_std([s["heldout_after"]["acc@8"] for s in summaries]),
            "pass_at_8": mean_std([s["heldout_after"]["pass@8"] for s in summaries]),
            "acc_at_8_before": summaries[0]["heldout_before"]["acc@8"],
            "pass_at_8_before": summaries[0]["heldout_before"]["pass@8"],
            "grad_steps": mean_std(steps),
            "rollouts_per_step": mean_std([s["rollouts"]["total"] / s["global_steps"] for s in summaries]),
            "frac_with_signal": mean_std([s["frac_with_signal"] for s in summaries]),
            "frac_zero_variance": mean_std([s["frac_zero_variance_mean"] for s in summaries]),
            "date": date.today().isoformat(),
        }
    if args.merge:
        runs, table = merge_with_existing(HERE / f"{name}.json", runs, table, rollouts, eval_prompts, seeds)
    print(f"\nSame rollout budget: {rollouts} completions; held-out: {eval_prompts} prompts x 8 samples.\n")
    print("| method | seeds | Acc@8 | Pass@8 | grad steps | rollouts / step | completions with signal | ZV fraction |")
    print("|---|---|---|---|---|---|---|---|")
    for algorithm, row in table.items():
        acc, pas = row["acc_at_8"], row["pass_at_8"]
        print(
            f"| {algorithm} | {row['seeds']} | {acc[0]:.3f} ± {acc[1]:.3f} | {pas[0]:.3f} ± {pas[1]:.3f} | "
            f"{row['grad_steps'][0]:.0f} | {row['rollouts_per_step'][0]:.0f} | {row['frac_with_signal'][0]:.2f} | "
            f"{row['frac_zero_variance'][0]:.2f} |"
        )
    first = next(iter(table.values()))
    print(
        f"\nBase model (before training): Acc@8 {first['acc_at_8_before']:.3f}, Pass@8 {first['pass_at_8_before']:.3f}"
    )


    result = {
        "date": date.today().isoformat(),
        "machine": machine_info(),
        "rollout_budget": rollouts,
        "eval_prompts": eval_prompts,
        "seeds": seeds,
        "table": table,
        "runs": {a: [{k: v for k, v in s.items()} for s in summaries] for a, summaries in runs.items()},
    }
    (HERE / f"{name}.json").write_text(json.dumps(result, indent=2))
    plot(runs, HERE / f"{name}.png", rollouts)
    print(f"\nwrote {HERE / (name + '.json')} and {HERE / (name + '.png')}")


def merge_with_existing(path: Path, runs: dict, table: dict, rollouts: int, eval_prompts: int, seeds: list):
    """The existing results with these algorithms' rows and runs replaced (in the package's algorithm order)."""
    old = json.loads(path.read_text())
    setting = (old["rollout_budget"], old["eval_prompts"], old["seeds"])
    if setting != (rollouts, eval_prompts, seeds):
        raise SystemExit(
            f"--merge needs the setting of {path.name} (budget, held-out prompts, seeds) = {setting}, got "
            f"{(rollouts, eval_prompts, seeds)}."
        )
    for row in old["table"].values():
        row.setdefault("date", old["date"])
    merged_table, merged_runs = {**old["table"], **table}, {**old["runs"], **runs}
    order = [a for a in ALGORITHMS if a in merged_table] + [a for a in merged_table if a not in ALGORITHMS]
    return {a: merged_runs[a] for a in order}, {a: merged_table[a] for a in order}


def plot(runs: dict, path: Path, rollouts: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for algorithm, summaries in runs.items():
        for i, summary in enumerate(summaries):
            xs = [x for x, _ in summary["curve"]]
            ys = [y for _, y in summary["curve"]]
            ax.plot(xs, ys, color=f"C{list(runs).index(algorithm)}", alpha=0.8, label=algorithm if i == 0 else None)
    ax.set_xlabel("rollouts (completions generated)")
    ax.set_ylabel("training accuracy (mean reward of generated completions)")
    ax.set_xlim(0, rollouts * 1.02)
    ax.set_title("Embedded task, same rollout budget")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
