# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""RL-ZVP against GRPO on a real pretrained model, by the protocol fixed in benchmarks/README.md ("Real-model evidence:
RL-ZVP vs GRPO on SmolLM2-135M-Instruct") before any run: same rollouts, paired seeds, held-out and harder
out-of-distribution evaluation, and the paired difference RL-ZVP - GRPO with its 95% confidence interval.

Phases, each resumable (a finished piece is read back from its JSON, never redone):

1. `level`: the base model's zero-variance share on the first 32 training prompts x 8 samples at the protocol's task
   level; the protocol's rule picks the level (one operation; two if that share is below 50%).
2. `base`: the base model's held-out and out-of-distribution scores (once, shared by every run: all models are
   evaluated with the same sampling seed).
3. `runs`: per seed, GRPO then RL-ZVP (then the ablations with `--ablations`): `recipes/train.py` with the SmolLM2
   recipe and the protocol's overrides, in a subprocess, then the evaluation of the final model.
4. `report`: `real_model_summary.json`, a markdown table (printed) and `real_model.png` (mean curves over seeds with
   bands of one standard deviation: training accuracy, entropy, zero-variance shares).

    python benchmarks/real_model.py                    # the whole protocol (6 seeds x GRPO, RL-ZVP)
    python benchmarks/real_model.py --ablations        # + positive-only, negative-only RL-ZVP, ERPO+RL-ZVP (3 seeds)
    python benchmarks/real_model.py --report_only      # tabulate what has finished
    python benchmarks/real_model.py --device cuda      # the same protocol on a GPU (its own --output_dir)

Needs the offline SmolLM2 copy (`python recipes/prepare_smollm2.py`) or Hub access (`--model_name_or_path
HuggingFaceTB/SmolLM2-135M-Instruct`). Every JSON names the machine it ran on.
"""

import argparse
import json
import math
import random
import statistics
import subprocess
import sys
import time
from datetime import date
from pathlib import Path


REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

DEFAULT_OUTPUT_DIR = Path(__file__).with_name("real_model")
RECIPE = REPO_ROOT / "recipes" / "smollm2_cpu_rl_zvp.yaml"  # the SmolLM2 recipe: prompt, reward, objective, optimizer

# The protocol (benchmarks/README.md). Changing any of these makes a different experiment: use another --output_dir.
PROTOCOL = {
    "seeds": [42, 43, 44, 45, 46, 47],
    "ablation_seeds": [42, 43, 44],
    "max_steps": 10,
    "prompts_per_step": 4,
    "num_generations": 8,
    "max_completion_length": 48,
    "learning_rate": 2.0e-5,
    "level_probe_prompts": 32,  # base model's zero-variance share, measured on the first training prompts
    "level_rule_threshold": 0.5,  # below it, the task moves from one operation to two
    "heldout_draw": 128,  # drawn from the held-out stream; prompts also in training are dropped, then the first 64 kept
    "heldout_prompts": 64,
    "ood_prompts": 32,  # two-operation chains (one more than the task level), from their own seed
    "ood_seed": 3,
    "eval_samples": 8,
    "eval_temperature": 1.0,
    "eval_seed": 1234,
}

METHODS = {
    # name: (recipe algorithm, extra command-line overrides)
    "grpo": ("grpo", []),
    "rl_zvp": ("rl_zvp", []),
}
ABLATIONS = {
    "rl_zvp_positive_only": ("rl_zvp", ["--zvp_use_negative", "false"]),
    "rl_zvp_negative_only": ("rl_zvp", ["--zvp_use_positive", "false"]),
    "erpo_rl_zvp": ("erpo_rl_zvp", []),
}

# Logged per step by every method (TRL's names), plus the zero-variance split recomputed from the rewards.
CURVES = {
    "training accuracy (mean reward)": "reward",
    "token entropy": "entropy",
    "zero-variance groups": "frac_reward_zero_std",
}


def machine() -> str:
    """Where a run is measured, in one line: CPU model and instruction set (and GPU), cores
    (zvp_trl.evaluation.machine)."""
    from zvp_trl.evaluation.machine import machine_info

    return machine_info()["kind"]


def versions() -> dict:
    import torch
    import transformers
    import trl

    return {"torch": torch.__version__, "transformers": transformers.__version__, "trl": trl.__version__}


# ---------------------------------------------------------------------------------------------------------------------
# Prompts


def script_arguments(level: int, num_train_prompts: int, num_eval_prompts: int):
    """The recipe's prompt settings at task `level`, as `recipes/train.py` parses them."""
    import yaml

    from zvp_trl.scripts.train import TrainScriptArguments

    recipe = yaml.safe_load(RECIPE.read_text())
    return TrainScriptArguments(
        algorithm="grpo",
        dataset_name="embedded",
        conversational=recipe["conversational"],
        prompt_template=recipe["prompt_template"],
        fewshot_examples=recipe["fewshot_examples"],
        embedded_num_train_prompts=num_train_prompts,
        embedded_num_eval_prompts=num_eval_prompts,
        embedded_max_ops=level,
    )


def probe_prompts(level: int):
    """The level probe's prompts: the first training prompts of the split (the runs train on the first `num_train`)."""
    from zvp_trl.scripts.train import _datasets

    num_train = PROTOCOL["max_steps"] * PROTOCOL["prompts_per_step"]
    args = script_arguments(level, max(num_train, PROTOCOL["level_probe_prompts"]), 0)
    probe, _ = _datasets(args, embedded=False)
    return probe.select(range(PROTOCOL["level_probe_prompts"]))


def prompt_sets(level: int) -> dict:
    """Training prompts (in split order), held-out prompts (disjoint from training) and the harder out-of-distribution
    prompts (chains of `level + 1` operations), as chat messages with their solutions."""
    from zvp_trl.data.embedded.task import PROMPT_FORMAT, sample_problem
    from zvp_trl.scripts.train import _datasets, _embedded_as_questions

    num_train = PROTOCOL["max_steps"] * PROTOCOL["prompts_per_step"]
    args = script_arguments(level, num_train, PROTOCOL["heldout_draw"])
    train, heldout = _datasets(args, embedded=False)
    if len(heldout) < PROTOCOL["heldout_prompts"]:
        raise RuntimeError(f"only {len(heldout)} held-out prompts remain after removing training prompts")
    heldout = heldout.select(range(PROTOCOL["heldout_prompts"]))
    rng = random.Random(PROTOCOL["ood_seed"])
    problems = [sample_problem(rng, level + 1) for _ in range(PROTOCOL["ood_prompts"])]
    from datasets import Dataset

    ood = Dataset.from_dict(
        {
            "prompt": [PROMPT_FORMAT.format(expression=p.expression) for p in problems],
            "solution": [str(p.answer) for p in problems],
        }
    )
    ood = _embedded_as_questions(ood, args)
    return {
        "train": train,
        "probe": probe_prompts(level),
        "heldout": heldout,
        "ood": ood,
    }


# ---------------------------------------------------------------------------------------------------------------------
# Evaluation


def load_model(path: str, device: str):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).to(device)
    return model, tokenizer


def score(model, tokenizer, dataset, device: str, seed: int) -> dict:
    """Acc@8, Pass@8, never-solved share (all 8 samples wrong) and the all-correct / mixed shares; bf16 autocast."""
    import torch

    from zvp_trl.data.rewards import accuracy_reward
    from zvp_trl.evaluation.accuracy import evaluate_accuracy, render_for_generation

    prompts = [render_for_generation(tokenizer, messages) for messages in dataset["prompt"]]
    start = time.perf_counter()
    with torch.autocast(device_type=device, dtype=torch.bfloat16):
        result = evaluate_accuracy(
            model,
            tokenizer,
            prompts,
            dataset["solution"],
            accuracy_reward,
            k=PROTOCOL["eval_samples"],
            temperature=PROTOCOL["eval_temperature"],
            max_new_tokens=PROTOCOL["max_completion_length"],
            seed=seed,
            add_special_tokens=False,
        )
    result["never_solved"] = result["frac_all_wrong"]
    result["seconds"] = round(time.perf_counter() - start, 1)
    return result


def evaluate_model(path: str, sets: dict, device: str) -> dict:
    model, tokenizer = load_model(path, device)
    return {
        "heldout": score(model, tokenizer, sets["heldout"], device, PROTOCOL["eval_seed"]),
        "ood": score(model, tokenizer, sets["ood"], device, PROTOCOL["eval_seed"]),
    }


# ---------------------------------------------------------------------------------------------------------------------
# Phases


def write_json(path: Path, payload: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(payload, indent=2) + "\n")
    tmp.replace(path)  # never a half-written file: a run killed here is redone, not misread


def choose_level(model_path: str, out: Path, device: str) -> int:
    path = out / "level.json"
    if path.exists():
        return json.loads(path.read_text())["level"]
    model, tokenizer = load_model(model_path, device)
    probe = probe_prompts(1)
    result = score(model, tokenizer, probe, device, PROTOCOL["eval_seed"])
    zero_variance = result["frac_all_correct"] + result["frac_all_wrong"]
    level = 1 if zero_variance >= PROTOCOL["level_rule_threshold"] else 2
    write_json(
        path,
        {
            "level": level,
            "rule": f"1 if the base model's zero-variance share on the first {PROTOCOL['level_probe_prompts']} training "
            f"prompts x {PROTOCOL['eval_samples']} samples is >= {PROTOCOL['level_rule_threshold']}, else 2",
            "probe_level_1": result,
            "zero_variance_share": zero_variance,
            "machine": machine(),
            "date": date.today().isoformat(),
        },
    )
    print(f"[real_model] base zero-variance share at one operation: {zero_variance:.2f} -> level {level}", flush=True)
    return level


def evaluate_base(model_path: str, sets: dict, out: Path, device: str) -> dict:
    path = out / "base.json"
    if path.exists():
        return json.loads(path.read_text())
    result = {"eval": evaluate_model(model_path, sets, device), "machine": machine(), "date": date.today().isoformat()}
    write_json(path, result)
    return result


def train_command(algorithm: str, extra: list[str], seed: int, level: int, run_dir: Path, args) -> list:
    steps, per_step, generations = PROTOCOL["max_steps"], PROTOCOL["prompts_per_step"], PROTOCOL["num_generations"]
    command = [
        sys.executable,
        str(REPO_ROOT / "recipes" / "train.py"),
        "--config", str(RECIPE),
        "--algorithm", algorithm,
        "--model_name_or_path", args.model_name_or_path,
        "--seed", str(seed),
        "--output_dir", str(run_dir),
        "--max_steps", str(steps),
        "--embedded_num_train_prompts", str(steps * per_step),
        "--embedded_num_eval_prompts", "0",  # evaluated here, on the protocol's sets
        "--embedded_max_ops", str(level),
        "--num_generations", str(generations),
        "--generation_batch_size", str(per_step * generations),
        "--per_device_train_batch_size", "16",
        "--gradient_accumulation_steps", str(per_step * generations // 16),
        "--max_completion_length", str(PROTOCOL["max_completion_length"]),
        "--learning_rate", str(PROTOCOL["learning_rate"]),
        "--logging_steps", "1",
        "--dynamics_plot", "false",
        "--save_strategy", "no",
    ]  # fmt: skip
    if args.device == "cuda":
        command += ["--use_cpu", "false"]
    return command + extra


def portable(command: list[str], work_dir) -> list[str]:
    """The command as anyone can read it back: the repository's files relative to its root, the run folders under
    `<work_dir>` (the machine's own paths are not part of the result)."""
    work = str(Path(work_dir).resolve())
    words = []
    for word in command:
        if word.startswith(work):
            word = "<work_dir>" + word[len(work) :]
        elif word.startswith(str(REPO_ROOT) + "/"):
            word = word[len(str(REPO_ROOT)) + 1 :]
        words.append(word)
    return words


def run_one(method: str, seed: int, level: int, sets: dict, out: Path, args) -> dict:
    path = out / "runs" / f"{method}_seed{seed}.json"
    if path.exists():
        return json.loads(path.read_text())
    algorithm, extra = {**METHODS, **ABLATIONS}[method]
    run_dir = Path(args.work_dir) / f"{method}_seed{seed}"
    command = train_command(algorithm, extra, seed, level, run_dir, args)
    print(f"[real_model] {method} seed {seed}: training ...", flush=True)
    start = time.perf_counter()
    log_path = Path(args.work_dir) / f"{method}_seed{seed}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w") as log:
        completed = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, cwd=REPO_ROOT)
    if completed.returncode != 0:
        raise RuntimeError(f"{method} seed {seed} failed (exit {completed.returncode}); log: {log_path}")
    train_seconds = time.perf_counter() - start
    state = json.loads((run_dir / "trainer_state.json").read_text())
    steps = [entry for entry in state["log_history"] if "reward" in entry]
    evaluation = evaluate_model(str(run_dir), sets, args.device)
    result = {
        "method": method,
        "seed": seed,
        "level": level,
        "train_seconds_with_start_up": round(train_seconds, 1),
        "eval": evaluation,
        "steps": [
            {
                key: entry.get(key)
                for key in (
                    "step",
                    "reward",
                    "entropy",
                    "frac_reward_zero_std",
                    "zvp/frac_zv_positive",
                    "zvp/frac_zv_negative",
                    "completions/mean_length",
                    "step_time",
                )
            }
            for entry in steps
        ],  # fmt: skip
        "command": portable(command[1:], args.work_dir),
        "machine": machine(),
        "versions": versions(),
        "date": date.today().isoformat(),
    }
    write_json(path, result)
    print(
        f"[real_model] {method} seed {seed}: held-out Acc@8 {evaluation['heldout']['acc@8']:.3f}, "
        f"Pass@8 {evaluation['heldout']['pass@8']:.3f}, OOD Acc@8 {evaluation['ood']['acc@8']:.3f} "
        f"({train_seconds:.0f}s training)",
        flush=True,
    )
    return result


# ---------------------------------------------------------------------------------------------------------------------
# Report

# 97.5% quantiles of Student's t for n - 1 = 1..30 degrees of freedom (two-sided 95% intervals).
T_975 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
         2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042]  # fmt: skip


def paired_difference(differences: list[float]) -> dict:
    """Mean of the paired differences and its two-sided 95% t interval."""
    n = len(differences)
    mean = sum(differences) / n if n else float("nan")
    if n < 2:
        return {"n": n, "mean": mean, "ci95": [float("nan"), float("nan")]}
    sd = statistics.stdev(differences)
    half = T_975[min(n - 1, len(T_975)) - 1] * sd / math.sqrt(n)
    return {"n": n, "mean": mean, "sd": sd, "ci95": [mean - half, mean + half]}


METRICS = [
    ("heldout", "acc@8", "held-out Acc@8"),
    ("heldout", "pass@8", "held-out Pass@8"),
    ("heldout", "never_solved", "held-out never solved"),
    ("ood", "acc@8", "OOD Acc@8"),
    ("ood", "pass@8", "OOD Pass@8"),
    ("ood", "never_solved", "OOD never solved"),
]


def report(out: Path, baseline: str = "grpo") -> dict:
    runs: dict[str, dict[int, dict]] = {}
    for path in sorted((out / "runs").glob("*.json")):
        run = json.loads(path.read_text())
        runs.setdefault(run["method"], {})[run["seed"]] = run
    base = json.loads((out / "base.json").read_text()) if (out / "base.json").exists() else None
    summary = {"protocol": PROTOCOL, "methods": {}, "paired_vs_" + baseline: {}}
    if (out / "level.json").exists():
        summary["level"] = json.loads((out / "level.json").read_text())["level"]
    lines = ["| metric | base | " + " | ".join(f"{m} (mean ± sd, n)" for m in runs) + " |"]
    lines.append("|---" * (2 + len(runs)) + "|")
    for split, key, label in METRICS:
        row = [label, f"{base['eval'][split][key]:.3f}" if base else "n/a"]
        for method, by_seed in runs.items():
            values = [r["eval"][split][key] for r in by_seed.values()]
            sd = statistics.stdev(values) if len(values) > 1 else float("nan")
            row.append(f"{statistics.mean(values):.3f} ± {sd:.3f} ({len(values)})")
            summary["methods"].setdefault(method, {})[f"{split}/{key}"] = {"values": values, "seeds": list(by_seed)}
        lines.append("| " + " | ".join(row) + " |")
    lines.append("")
    lines.append(f"Paired differences (method - {baseline}, same seeds), mean [95% CI]:")
    for method, by_seed in runs.items():
        if method == baseline or baseline not in runs:
            continue
        seeds = sorted(set(by_seed) & set(runs[baseline]))
        entry = {}
        for split, key, label in METRICS:
            diffs = [by_seed[s]["eval"][split][key] - runs[baseline][s]["eval"][split][key] for s in seeds]
            entry[f"{split}/{key}"] = {**paired_difference(diffs), "seeds": seeds}
            d = entry[f"{split}/{key}"]
            lines.append(
                f"- {method} {label}: {d['mean']:+.3f} [{d['ci95'][0]:+.3f}, {d['ci95'][1]:+.3f}] (n={d['n']})"
            )
        summary["paired_vs_" + baseline][method] = entry
    print("\n".join(lines))
    summary["table"] = lines
    write_json(out / "real_model_summary.json", summary)
    plot(runs, out / "real_model.png")
    return summary


def plot(runs: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = dict(CURVES)
    keys["zero-variance all-correct (RL-ZVP's log)"] = "zvp/frac_zv_positive"
    keys["zero-variance all-wrong (RL-ZVP's log)"] = "zvp/frac_zv_negative"
    fig, axes = plt.subplots(1, len(keys), figsize=(4.2 * len(keys), 3.4))
    for ax, (title, key) in zip(axes, keys.items()):
        for color, (method, by_seed) in enumerate(runs.items()):  # one colour per method in every panel
            curves = [[s.get(key) for s in run["steps"]] for run in by_seed.values()]
            curves = [c for c in curves if c and all(v is not None for v in c)]
            if not curves:
                continue
            length = min(len(c) for c in curves)
            steps = list(range(1, length + 1))
            mean = [statistics.mean(c[i] for c in curves) for i in range(length)]
            sd = [statistics.stdev([c[i] for c in curves]) if len(curves) > 1 else 0.0 for i in range(length)]
            ax.plot(steps, mean, color=f"C{color}", label=f"{method} ({len(curves)} seeds)")
            lower, upper = [m - s for m, s in zip(mean, sd)], [m + s for m, s in zip(mean, sd)]
            ax.fill_between(steps, lower, upper, color=f"C{color}", alpha=0.2)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("step")
        if ax.lines:
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output_dir", type=Path, default=DEFAULT_OUTPUT_DIR, help="JSON results (committed)")
    parser.add_argument("--work_dir", default="outputs/real_model", help="models and training logs (not committed)")
    parser.add_argument("--model_name_or_path", default="smollm2-offline")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--seeds", type=int, nargs="+", default=PROTOCOL["seeds"])
    parser.add_argument("--ablations", action="store_true", help="also the ablations, on the first 3 seeds")
    parser.add_argument("--report_only", action="store_true")
    args = parser.parse_args()
    if args.device == "cuda" and args.output_dir == DEFAULT_OUTPUT_DIR:
        args.output_dir = DEFAULT_OUTPUT_DIR.with_name("real_model_cuda")
    out = args.output_dir
    if args.report_only:
        report(out)
        return
    from zvp_trl.models.resolve import resolve_model_name

    model_path = resolve_model_name(args.model_name_or_path)
    level = choose_level(model_path, out, args.device)
    sets = prompt_sets(level)
    evaluate_base(model_path, sets, out, args.device)
    for seed in args.seeds:  # paired: both methods of a seed before the next seed
        for method in METHODS:
            run_one(method, seed, level, sets, out, args)
            report(out)
    if args.ablations:
        for seed in PROTOCOL["ablation_seeds"]:
            for method in ABLATIONS:
                run_one(method, seed, level, sets, out, args)
                report(out)


if __name__ == "__main__":
    main()
