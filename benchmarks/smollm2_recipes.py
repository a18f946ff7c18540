# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""The SmolLM2 CPU recipes' results: `recipes/smollm2_cpu_grpo.yaml` and `recipes/smollm2_cpu_rl_zvp.yaml` as written
(24 steps of 8 prompts x 8 completions), at seeds 42 and 43, each run `python recipes/train.py --config <recipe>
--seed <seed>` in its own process, one after the other. The recipes are identical apart from `algorithm`, so a seed
gives both methods the same prompts and the same held-out samples before training.

Writes `benchmarks/smollm2_recipes.json`: per run the held-out scores before and after (Acc@8, Pass@8, the
all-correct / all-wrong / mixed split, from the run's `summary.json`), TRL's logged training reward, zero-variance
share, token entropy and step time per step (`trainer_state.json`), the wall clock and peak resident memory of the
run's process, and the machine (CPU kind and versions); then the table recipes/README.md shows.

    python benchmarks/smollm2_recipes.py                  # 4 runs of about 30 minutes each on 2 cores
    python benchmarks/smollm2_recipes.py --report_only    # tabulate the runs that finished

Resumable: a run whose `record.json` (written once its process has ended well) exists in `--work_dir` is read back,
never redone (delete its folder to redo it). Needs the offline SmolLM2 copy (`python recipes/prepare_smollm2.py`).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from datetime import date
from pathlib import Path


HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
METHODS = ("grpo", "rl_zvp")
NAMES = {"grpo": "GRPO", "rl_zvp": "RL-ZVP"}


def machine_info() -> dict:
    """Where this result is measured: CPU vendor, model and instruction set, GPU, versions (zvp_trl.evaluation.machine)."""
    from zvp_trl.evaluation.machine import machine_info as info

    return info()


def finished_record(method: str, seed: int, work_dir: Path) -> dict | None:
    """The record of a run that finished before (its `record.json`), or None."""
    path = work_dir / f"{method}-s{seed}" / "record.json"
    return json.loads(path.read_text()) if path.is_file() else None


def run_one(method: str, seed: int, work_dir: Path, extra: list[str]) -> dict:
    """Runs one recipe in its own process (unless it finished before) and returns its record."""
    finished = finished_record(method, seed, work_dir)
    if finished is not None:
        return finished
    out = work_dir / f"{method}-s{seed}"
    record_path = out / "record.json"
    out.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable, str(ROOT / "recipes" / "train.py"),
        "--config", str(ROOT / "recipes" / f"smollm2_cpu_{method}.yaml"),
        "--seed", str(seed), "--output_dir", str(out), *extra,
    ]  # fmt: skip
    start = time.perf_counter()
    with open(out / "stdout.txt", "w") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        _, status, usage = os.wait4(process.pid, 0)  # the run's own peak resident memory (ru_maxrss, KiB on Linux)
        process.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - start
    if process.returncode != 0:
        raise SystemExit(f"{method} seed {seed} failed (exit {process.returncode}); see {out / 'stdout.txt'}")
    record = read_run(method, seed, out, wall_seconds=wall, peak_rss_bytes=usage.ru_maxrss * 1024)
    record_path.write_text(json.dumps(record, indent=2))
    return record


def read_run(method: str, seed: int, out: Path, wall_seconds: float | None, peak_rss_bytes: int | None) -> dict:
    """A finished run's record, from its `summary.json` and `trainer_state.json`."""
    summary = json.loads((out / "summary.json").read_text())
    history = json.loads((out / "trainer_state.json").read_text())["log_history"]
    steps = [
        {key: entry.get(key) for key in ("step", "reward", "frac_reward_zero_std", "entropy", "step_time")}
        for entry in history
        if "reward" in entry
    ]
    return {
        "method": method,
        "seed": seed,
        "date": date.today().isoformat(),
        "machine": summary["machine"],
        "global_steps": summary["global_steps"],
        "train_seconds": summary["train_seconds"],
        "wall_seconds": None if wall_seconds is None else round(wall_seconds, 1),
        "peak_rss_bytes": peak_rss_bytes,
        "heldout_before": summary["heldout_before"],
        "heldout_after": summary["heldout_after"],
        "steps": steps,
    }


def _split(scores: dict) -> str:
    return f"{scores['frac_all_correct']:.2f}/{scores['frac_all_wrong']:.2f}/{scores['frac_mixed']:.2f}"


def row_values(record: dict) -> dict[str, str]:
    """The cells of one run's column of the table, as written."""
    after, steps = record["heldout_after"], record["steps"]
    rewards = [step["reward"] for step in steps]
    zero_variance = [step["frac_reward_zero_std"] for step in steps]
    entropy = [step["entropy"] for step in steps]
    return {
        "held-out Acc@8": f"{after['acc@8']:.3f}",
        "held-out Pass@8": f"{after['pass@8']:.3f}",
        "held-out all-correct / all-wrong / mixed": _split(after),
        "training reward, steps 1-4 / last 8 steps": f"{statistics.mean(rewards[:4]):.2f} / "
        f"{statistics.mean(rewards[-8:]):.2f}",
        "zero-variance groups: step 1 / last / mean": f"{zero_variance[0]:.2f}/{zero_variance[-1]:.2f}/"
        f"{statistics.mean(zero_variance):.2f}",
        "token entropy: step 1 / last": f"{entropy[0]:.2f}/{entropy[-1]:.2f}",
    }


def render_table(records: list[dict], seeds: list[int]) -> list[str]:
    """The markdown table of recipes/README.md: the base model (per seed) and one column per (seed, method)."""
    by_key = {(record["method"], record["seed"]): record for record in records}
    columns = [(method, seed) for seed in seeds for method in METHODS if (method, seed) in by_key]
    bases = [by_key[key]["heldout_before"] for key in columns if key[0] == METHODS[0]]
    header = " / ".join(str(seed) for seed in seeds if (METHODS[0], seed) in by_key)
    lines = [
        f"| | base ({header}) | " + " | ".join(f"{NAMES[m]} seed {s}" for m, s in columns) + " |",
        "|---|---|" + "---|" * len(columns),
    ]
    base_cells = {
        "held-out Acc@8": " / ".join(f"{base['acc@8']:.3f}" for base in bases),
        "held-out Pass@8": " / ".join(f"{base['pass@8']:.3f}" for base in bases),
        "held-out all-correct / all-wrong / mixed": ", ".join(_split(base) for base in bases),
    }
    cells = [row_values(by_key[key]) for key in columns]
    for name in cells[0] if cells else []:
        row = [name, base_cells.get(name, ""), *(c[name] for c in cells)]
        lines.append(("| " + " | ".join(row) + " |").replace("|  |", "| |"))
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 43])
    parser.add_argument("--work_dir", default=str(ROOT / "outputs" / "smollm2_recipes"), help="runs (not committed)")
    parser.add_argument("--output", default=str(HERE / "smollm2_recipes.json"), help="the results JSON (committed)")
    parser.add_argument("--report_only", action="store_true", help="only tabulate the runs that finished")
    args, extra = parser.parse_known_args()  # anything else goes to recipes/train.py (for a short check run)
    if extra and Path(args.output) == HERE / "smollm2_recipes.json":
        parser.error("arguments for recipes/train.py change the recipe: write them to another --output")
    work_dir = Path(args.work_dir)
    records = []
    for seed in args.seeds:
        for method in METHODS:
            if args.report_only:
                records += [record] if (record := finished_record(method, seed, work_dir)) else []
                continue
            print(f"{method} seed {seed} ...", flush=True)
            records.append(run_one(method, seed, work_dir, extra))
            record = records[-1]
            print(f"  held-out Acc@8 {record['heldout_after']['acc@8']:.3f} ({record['wall_seconds']} s)", flush=True)
    if not records:
        raise SystemExit(f"no finished run in {work_dir}")
    table = render_table(records, args.seeds)
    result = {
        "date": date.today().isoformat(),
        "machine": records[0]["machine"] if args.report_only else machine_info(),  # tabulated elsewhere: the runs'.
        "recipes": [f"recipes/smollm2_cpu_{method}.yaml" for method in METHODS],
        "extra_arguments": extra,
        "seeds": args.seeds,
        "runs": records,
        "table": table,
    }
    kinds = {record["machine"]["kind"] for record in records} | {result["machine"]["kind"]}
    if len(kinds) > 1:
        raise SystemExit(f"the runs come from several kinds of machine ({sorted(kinds)}): one table, one kind")
    Path(args.output).write_text(json.dumps(result, indent=2))
    print("\n".join(table))
    print(f"\nwrote {args.output}")


if __name__ == "__main__":
    main()
