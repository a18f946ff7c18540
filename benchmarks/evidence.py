# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""Settings where the methods differ by construction, by the protocol fixed in benchmarks/README.md ("Evidence where
the methods differ by construction") before any run of it:

- `cold_start`: prompts the base model never solves (every group all-wrong): GRPO's gradient is exactly zero, so
  only a method that learns from zero-variance groups (or changes what is sampled) can move.
- `saturation`: prompts the base model mostly solves (most groups all-correct), evaluated also one operation harder.
- `dose_response`: RL-ZVP's alpha on the standard embedded task, fixed and scale-free (`zvp_alpha_rule="relative"`).

Each experiment is resumable: the probe that fixes its task level and every (method, seed) run are written to their
own JSON under `--output_dir` (default `benchmarks/evidence/<experiment>/`) and read back, never redone; `--report`
only tabulates. The report writes `benchmarks/<experiment>.json` (the cold start: `benchmarks/cold_start.json`) and a
PNG of the training curves.

    python benchmarks/evidence.py cold_start            # probe, then 7 methods x 5 seeds
    python benchmarks/evidence.py saturation            # probe, then 3 methods x 5 seeds
    python benchmarks/evidence.py dose_response         # GRPO + 7 RL-ZVP settings x 3 seeds
    python benchmarks/evidence.py cold_start --report   # tabulate what has finished
    python benchmarks/evidence.py cold_start --seeds 42 --methods grpo rl_zvp   # a subset (same protocol)
"""

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path


HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(HERE))

from real_model import machine, paired_difference, versions, write_json  # noqa: E402


# The protocol (benchmarks/README.md). Changing any of these makes another experiment: use another --output_dir.
COMMON = {
    "probe_samples": 8,
    "probe_temperature": 1.0,
    "probe_seed": 1234,
    "num_train_prompts": 128,
    "num_eval_prompts": 128,
    "prompts_per_step": 16,
    "num_generations": 8,
    "rollout_budget": 5120,  # 40 steps of 16 prompts x 8 for GRPO: five passes over the 128 training prompts
}
# Each method with its defaults, as recipes/train.py's flags.
METHOD_ARGS = {
    "grpo": ["--algorithm", "grpo"],
    "rl_zvp": ["--algorithm", "rl_zvp"],
    "erpo": ["--algorithm", "erpo"],
    "erpo_all_wrong": ["--algorithm", "erpo", "--erpo_trigger", "all_correct_or_all_wrong"],
    "exgrpo": ["--algorithm", "exgrpo"],
    "grpo_ds": ["--algorithm", "grpo_ds"],
    "greso": ["--algorithm", "greso"],
}
PROTOCOL = {
    # Amended three times on 2026-12-02, each time after a probe and before any training run; the probes of the
    # rules that found no level are kept in evidence/cold_start_by_{length,warmup,operand}/level.json. The rule in
    # force: operands up to 1000 (the hardest candidate of the third rule, where one group of 128 was mixed), and as
    # training prompts the first 128 of the training stream that the probe finds all-wrong.
    "cold_start": {
        **COMMON,
        "keep": "all_wrong",
        "num_ops": None,  # the default task's mix of chain lengths
        "max_operand": 1000,
        "probe_draw": 160,  # training-stream prompts probed; the first num_train_prompts all-wrong ones are kept
        "max_completion_length": 160,
        "seeds": [42, 43, 44, 45, 46],
        "methods": {name: METHOD_ARGS[name] for name in METHOD_ARGS},
    },
    # Amended on 2026-12-03, after the probe of the first rule (the largest chain length in 7..1 at which at least half
    # the 128 training prompts are all-correct) found no length (at 1 operation 0.469 of them) and before any training
    # run; that probe is kept in evidence/saturation_by_length/level.json. The rule in force, the cold start's mirror:
    # chains of 1 operation, and as training prompts the first 128 of the training stream that the probe finds
    # all-correct.
    "saturation": {
        **COMMON,
        "keep": "all_correct",
        "num_ops": 1,
        "max_operand": 20,  # the task's default
        "probe_draw": 384,  # training-stream prompts probed; the first num_train_prompts all-correct ones are kept
        "max_completion_length": 96,
        "seeds": [42, 43, 44, 45, 46],
        "methods": {name: METHOD_ARGS[name] for name in ("grpo", "rl_zvp", "erpo")},
    },
    "dose_response": {
        # The standard embedded run (the learning table's budget): its defaults, nothing overridden but the method.
        "rollout_budget": 20480,
        "seeds": [42, 43, 44],
        "methods": {
            "grpo": METHOD_ARGS["grpo"],
            **{
                f"rl_zvp_alpha{alpha}": ["--algorithm", "rl_zvp", "--zvp_alpha", str(alpha)]
                for alpha in (0.0, 0.03, 0.1, 0.3, 1.0)
            },
            **{
                f"rl_zvp_relative{target}": [
                    "--algorithm",
                    "rl_zvp",
                    "--zvp_alpha_rule",
                    "relative",
                    "--zvp_alpha_relative_target",
                    str(target),
                ]  # fmt: skip
                for target in (0.1, 0.3)
            },
        },
    },
}
BASELINE = "grpo"
# Per-step log keys kept in each run's JSON (TRL's names and the methods' own).
STEP_KEYS = (
    "step", "rollouts/total", "reward", "entropy", "frac_reward_zero_std", "completions/mean_length",
    "zvp/frac_zv_positive", "zvp/frac_zv_negative", "zvp/adv_mean_positive", "zvp/adv_mean_negative", "zvp/alpha",
    "zvp/adv_abs_ratio", "erpo/temperature_mean", "erpo/temperature_max", "ds/generation_rounds", "ds/frac_dropped",
    "ds/exhausted_steps", "greso/frac_skipped", "exgrpo/buffer_prompts",
)  # fmt: skip


def level_args(experiment: str, level, out: Path) -> list[str]:
    if experiment == "dose_response":
        return []
    protocol = PROTOCOL[experiment]  # the probe's kept prompts, as written, as bare prompts
    task = ["--dataset_name", str(out / "train_prompts.jsonl"), "--prompt_template", "{question}"]
    task += ["--dataset_column_mapping", json.dumps({"question": "question", "answer": "answer"})]
    return [
        *task,
        "--embedded_num_eval_prompts", str(protocol["num_eval_prompts"]),
        "--per_device_train_batch_size", str(protocol["prompts_per_step"] * protocol["num_generations"]),
        "--num_generations", str(protocol["num_generations"]),
        "--max_completion_length", str(protocol["max_completion_length"]),
    ]  # fmt: skip


def base_model_path() -> str:
    """The shipped default base model (the name `embedded`, resolved as every entry point resolves it)."""
    from zvp_trl.data.embedded import EmbeddedModelSpec
    from zvp_trl.models.resolve import resolve_model_name

    return str(resolve_model_name("embedded", embedded_spec=EmbeddedModelSpec()))


def score(
    model_path: str,
    num_ops: int | None,
    split: str,
    num_prompts: int,
    max_new_tokens: int,
    seed: int,
    max_operand: int = 20,
    per_prompt: bool = False,
) -> dict:
    """Acc@8 / Pass@8 and the group split of `model_path` on `num_prompts` prompts of exactly `num_ops` operations
    (None: the default task's mix of chain lengths) on operands up to `max_operand`; `per_prompt` adds each prompt's
    number of correct samples."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from zvp_trl import accuracy_reward, evaluate_accuracy
    from zvp_trl.data.embedded import make_split

    if num_ops is None:
        prompts = make_split(split, num_prompts, max_operand=max_operand)
    else:
        prompts = make_split(split, num_prompts, max_ops=num_ops, min_ops=num_ops, max_operand=max_operand)
    model = AutoModelForCausalLM.from_pretrained(model_path)
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    counts = []

    def reward(completions, solution, **kwargs):  # the accuracy reward, counting each prompt's correct samples
        rewards = accuracy_reward(completions=completions, solution=solution, **kwargs)
        k = COMMON["probe_samples"]
        counts.extend(sum((r or 0.0) > 0.5 for r in rewards[i : i + k]) for i in range(0, len(rewards), k))
        return rewards

    result = evaluate_accuracy(
        model,
        tokenizer,
        list(prompts["prompt"]),
        list(prompts["solution"]),
        reward,
        k=COMMON["probe_samples"],
        temperature=COMMON["probe_temperature"],
        max_new_tokens=max_new_tokens,
        seed=seed,
    )
    if not per_prompt:
        return result
    return {**result, "correct_per_prompt": counts, "prompts": list(prompts["prompt"]),
            "solutions": list(prompts["solution"])}  # fmt: skip


def choose_level(experiment: str, out: Path) -> str | None:
    """The protocol's rule, on the base model's probe of the training prompts; written to `<out>/level.json`."""
    if experiment == "dose_response":
        return None
    path = out / "level.json"
    if path.exists():
        return json.loads(path.read_text())["level"]
    return filtered_prompts(experiment, out)


def kept_indices(correct_per_prompt: list[int], keep: str, limit: int) -> list[int]:
    """The first `limit` probed prompts with no correct sample (`keep="all_wrong"`) or only correct ones
    (`"all_correct"`), by their index in the probe."""
    wanted = {"all_wrong": 0, "all_correct": COMMON["probe_samples"]}[keep]
    return [i for i, correct in enumerate(correct_per_prompt) if correct == wanted][:limit]


def filtered_prompts(experiment: str, out: Path) -> str:
    """The training prompts: the first `num_train_prompts` of `probe_draw` training-stream prompts that the base
    model's probe finds all-wrong (cold start) or all-correct (saturation), as the protocol's `keep` says, written to
    `<out>/train_prompts.jsonl`; the probe to `<out>/level.json`."""
    protocol = PROTOCOL[experiment]
    probe = score(
        base_model_path(),
        protocol["num_ops"],
        "train",
        protocol["probe_draw"],
        protocol["max_completion_length"],
        protocol["probe_seed"],
        max_operand=protocol["max_operand"],
        per_prompt=True,
    )
    kept = kept_indices(probe["correct_per_prompt"], protocol["keep"], protocol["num_train_prompts"])
    if len(kept) < protocol["num_train_prompts"]:
        raise SystemExit(f"[evidence] {experiment}: only {len(kept)} {protocol['keep']} prompts in the probe's draw")
    rows = [{"question": probe["prompts"][i], "answer": probe["solutions"][i]} for i in kept]
    (out / "train_prompts.jsonl").parent.mkdir(parents=True, exist_ok=True)
    (out / "train_prompts.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    summary = {k: v for k, v in probe.items() if k not in ("prompts", "solutions")}
    chains = "the default mix of chain lengths" if protocol["num_ops"] is None else f"chains of {protocol['num_ops']}"
    level = f"{chains}, operands <= {protocol['max_operand']}, {len(kept)} probe-{protocol['keep']} prompts"
    write_json(
        out / "level.json",
        {"level": level, "keep": protocol["keep"], "probe": summary, "kept_indices": kept,
         "machine": machine(), "date": date.today().isoformat()},
    )  # fmt: skip
    print(f"[evidence] {experiment} probe: {json.dumps(summary)[:300]}; kept: {level}", flush=True)
    return level


def evaluate_heldout(experiment: str, model_path: str, harder: bool = False) -> dict:
    """The held-out score of a probe-filtered experiment: the held-out stream's first prompts on its chain lengths and
    operands (`harder`: one operation more), sampling seed fixed."""
    protocol = PROTOCOL[experiment]
    num_ops = protocol["num_ops"]
    if harder:
        num_ops += 1
    return score(
        model_path,
        num_ops,
        "heldout",
        protocol["num_eval_prompts"],
        protocol["max_completion_length"],
        protocol["probe_seed"],
        max_operand=protocol["max_operand"],
    )


def final_weights_sha256(run_dir: Path) -> str:
    from transformers import AutoModelForCausalLM

    from zvp_trl.data.embedded.model import weights_checksum

    return weights_checksum(AutoModelForCausalLM.from_pretrained(run_dir).state_dict())


def signal_history(steps: list[dict], num_generations: int) -> dict:
    """Groups generated and groups with a reward signal (not zero-variance), step by step, from the logged
    zero-variance share of everything generated in the step (GRPO-DS/GRESO: `ds/frac_dropped` over all their rounds;
    the others: TRL's `frac_reward_zero_std`); the first step with a mixed group and with a correct completion."""
    groups_total = signal_total = 0.0
    first_mixed = first_correct = None
    previous_rollouts = 0.0
    for entry in steps:
        rollouts = entry.get("rollouts/total") or previous_rollouts
        groups = (rollouts - previous_rollouts) / num_generations
        previous_rollouts = rollouts
        zero_variance = entry.get("ds/frac_dropped")
        if zero_variance is None:
            zero_variance = entry.get("frac_reward_zero_std")
        if zero_variance is None:
            continue
        groups_total += groups
        signal_total += (1.0 - zero_variance) * groups
        if first_mixed is None and zero_variance < 1.0:
            first_mixed = entry["step"]
        if first_correct is None and (entry.get("reward") or 0.0) > 0.0:
            first_correct = entry["step"]
    return {
        "groups_generated": round(groups_total, 3),
        "groups_with_signal": round(signal_total, 3),
        "first_step_with_mixed_group": first_mixed,
        "first_step_with_correct_completion": first_correct,
    }


def run_one(experiment: str, method: str, seed: int, level: int | None, out: Path, work: Path) -> dict:
    path = out / "runs" / f"{method}_seed{seed}.json"
    if path.exists():
        return json.loads(path.read_text())
    protocol = PROTOCOL[experiment]
    run_dir = work / f"{method}_seed{seed}"
    command = [
        sys.executable,
        str(REPO_ROOT / "recipes" / "train.py"),
        *protocol["methods"][method],
        *level_args(experiment, level, out),
        "--seed", str(seed),
        "--max_rollouts", str(protocol["rollout_budget"]),
        "--max_steps", "100000",  # the rollout budget stops the run
        "--logging_steps", "1",
        "--save_strategy", "no",
        "--dynamics_plot", "false",
        "--output_dir", str(run_dir),
    ]  # fmt: skip
    print(f"[evidence] {experiment} {method} seed {seed} ...", flush=True)
    log_path = work / f"{method}_seed{seed}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with open(log_path, "w") as log:
        completed = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, cwd=REPO_ROOT)
    wall = time.perf_counter() - start
    if completed.returncode != 0:
        failure = {"method": method, "seed": seed, "failed": True, "exit_code": completed.returncode}
        failure["log_tail"] = log_path.read_text()[-3000:]
        write_json(out / "failed" / f"{method}_seed{seed}.json", failure)
        raise RuntimeError(f"{experiment} {method} seed {seed} failed (exit {completed.returncode}); log: {log_path}")
    summary = json.loads((run_dir / "summary.json").read_text())
    if experiment != "dose_response":  # trained on a file: evaluated here, the base model once
        from zvp_trl.data.embedded.model import built_weights_checksum

        base_path = out / "base.json"
        if not base_path.exists():
            base = {"heldout": evaluate_heldout(experiment, base_model_path())}
            if experiment == "saturation":
                base["harder"] = evaluate_heldout(experiment, base_model_path(), harder=True)
            write_json(base_path, base)
        summary["heldout_before"] = json.loads(base_path.read_text())["heldout"]
        summary["heldout_after"] = evaluate_heldout(experiment, str(run_dir))
        summary["base_model_sha256"] = built_weights_checksum(base_model_path())
    history = json.loads((run_dir / "trainer_state.json").read_text())["log_history"]
    steps = [{k: e.get(k) for k in STEP_KEYS if k in e} for e in history if "loss" in e and "step" in e]
    result = {
        "experiment": experiment,
        "method": method,
        "seed": seed,
        "level": level,
        "command": command[2:],
        "global_steps": summary["global_steps"],
        "rollouts": summary.get("rollouts"),
        "train_seconds": summary["train_seconds"],
        "wall_seconds": round(wall, 1),
        "before": summary["heldout_before"],
        "after": summary["heldout_after"],
        "base_model_sha256": summary["base_model_sha256"],
        "final_weights_sha256": final_weights_sha256(run_dir),
        **signal_history(steps, PROTOCOL[experiment].get("num_generations", 8)),
        "steps": steps,
        "machine": machine(),
        "versions": versions(),
        "date": date.today().isoformat(),
    }
    result["weights_equal_base"] = result["final_weights_sha256"] == result["base_model_sha256"]
    if experiment == "saturation":  # one operation harder, the same sampling seed for every model
        result["harder_before"] = json.loads((out / "base.json").read_text())["harder"]
        result["harder_after"] = evaluate_heldout(experiment, str(run_dir), harder=True)
    write_json(path, result)
    print(
        f"[evidence] {experiment} {method} seed {seed}: held-out Acc@8 {result['before']['acc@8']:.3f} -> "
        f"{result['after']['acc@8']:.3f}, groups with signal {result['groups_with_signal']:.0f} of "
        f"{result['groups_generated']:.0f}, weights equal base: {result['weights_equal_base']} ({wall:.0f}s)",
        flush=True,
    )
    return result


# ---------------------------------------------------------------------------------------------------------------------
# Report


def mean_of(steps: list[dict], key: str, last: int | None = None) -> float | None:
    values = [s[key] for s in steps if s.get(key) is not None]
    if last:
        values = values[-last:]
    return statistics.mean(values) if values else None


def run_row(run: dict) -> dict:
    steps = run["steps"]
    row = {
        "acc@8_before": run["before"]["acc@8"],
        "acc@8_after": run["after"]["acc@8"],
        "pass@8_before": run["before"]["pass@8"],
        "pass@8_after": run["after"]["pass@8"],
        "steps": run["global_steps"],
        "groups_with_signal": run["groups_with_signal"],
        "groups_generated": run["groups_generated"],
        "first_step_with_mixed_group": run["first_step_with_mixed_group"],
        "first_step_with_correct_completion": run["first_step_with_correct_completion"],
        "weights_equal_base": run["weights_equal_base"],
        "entropy_first5": mean_of(steps[:5], "entropy"),
        "entropy_last5": mean_of(steps, "entropy", last=5),
        "length_last5": mean_of(steps, "completions/mean_length", last=5),
        "adv_abs_ratio_mean": mean_of(steps, "zvp/adv_abs_ratio"),
        "alpha_mean": mean_of(steps, "zvp/alpha"),
        "temperature_max_last": mean_of(steps, "erpo/temperature_max", last=1),
        "ds_exhausted_steps": mean_of(steps, "ds/exhausted_steps", last=1),
    }
    if "harder_after" in run:
        row["harder_acc@8_after"] = run["harder_after"]["acc@8"]
        row["harder_pass@8_after"] = run["harder_after"]["pass@8"]
    return row


def fmt(value, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    return f"{value:.{digits}f}"


def report(experiment: str, out: Path) -> dict:
    runs: dict[str, dict[int, dict]] = {}
    for path in sorted((out / "runs").glob("*.json")):
        run = json.loads(path.read_text())
        runs.setdefault(run["method"], {})[run["seed"]] = run
    protocol = PROTOCOL[experiment]
    order = [m for m in protocol["methods"] if m in runs]
    rows = {m: {s: run_row(r) for s, r in sorted(runs[m].items())} for m in order}
    level = json.loads((out / "level.json").read_text()) if (out / "level.json").exists() else None
    result = {
        "experiment": experiment,
        "protocol": protocol,
        "level": level,
        "runs": [{"method": m, "seed": s, **row} for m in order for s, row in rows[m].items()],
        "paired_vs_" + BASELINE: {},
    }
    metrics = ["acc@8_after", "pass@8_after"] + (["harder_acc@8_after"] if experiment == "saturation" else [])
    lines = [
        "| method | seeds | Acc@8 before -> after | Pass@8 after | steps | groups with signal | first mixed step | "
        "weights = base | entropy first5 -> last5 | length last5 | extra |",
        "|---" * 11 + "|",
    ]
    for method in order:
        by_seed = rows[method]

        def mean(key, by_seed=by_seed):
            values = [r[key] for r in by_seed.values() if r.get(key) is not None]
            return statistics.mean(values) if values else None

        def spread(key, by_seed=by_seed):
            values = [r[key] for r in by_seed.values() if r.get(key) is not None]
            return (
                f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"
                if len(values) > 1
                else fmt(mean(key))
            )

        firsts = [r["first_step_with_mixed_group"] for r in by_seed.values()]
        extra = []
        if mean("harder_acc@8_after") is not None:
            extra.append(f"harder Acc@8 {spread('harder_acc@8_after')}")
        if mean("adv_abs_ratio_mean") is not None:
            extra.append(f"ZV/mixed abs adv {mean('adv_abs_ratio_mean'):.3f}")
        if mean("temperature_max_last") is not None:
            extra.append(f"max T {mean('temperature_max_last'):.2f}")
        if mean("ds_exhausted_steps") is not None:
            extra.append(f"exhausted steps {mean('ds_exhausted_steps'):.1f}")
        lines.append(
            f"| {method} | {len(by_seed)} | {fmt(mean('acc@8_before'))} -> {spread('acc@8_after')} | "
            f"{spread('pass@8_after')} | {fmt(mean('steps'), 1)} | {fmt(mean('groups_with_signal'), 1)} of "
            f"{fmt(mean('groups_generated'), 0)} | {', '.join('-' if f is None else str(f) for f in firsts)} | "
            f"{sum(r['weights_equal_base'] for r in by_seed.values())}/{len(by_seed)} | "
            f"{fmt(mean('entropy_first5'))} -> {fmt(mean('entropy_last5'))} | {fmt(mean('length_last5'), 1)} | "
            f"{'; '.join(extra)} |"
        )
    lines.append("")
    lines.append(f"Paired differences (method - {BASELINE}, same seeds), mean [95% CI]:")
    for method in order:
        if method == BASELINE or BASELINE not in rows:
            continue
        seeds = sorted(set(rows[method]) & set(rows[BASELINE]))
        entry = {}
        for key in metrics:
            diffs = [rows[method][s][key] - rows[BASELINE][s][key] for s in seeds]
            d = entry[key] = {**paired_difference(diffs), "seeds": seeds}
            lines.append(f"- {method} {key}: {d['mean']:+.3f} [{d['ci95'][0]:+.3f}, {d['ci95'][1]:+.3f}] (n={d['n']})")
        result["paired_vs_" + BASELINE][method] = entry
    if experiment == "dose_response" and "rl_zvp_alpha0.0" in runs and BASELINE in runs:
        same = {s: runs["rl_zvp_alpha0.0"][s]["final_weights_sha256"] == runs[BASELINE][s]["final_weights_sha256"]
                for s in sorted(set(runs["rl_zvp_alpha0.0"]) & set(runs[BASELINE]))}  # fmt: skip
        result["alpha0_weights_equal_grpo"] = same
        lines.append(f"alpha = 0 final weights equal GRPO's (per seed): {same}")
    print("\n".join(lines))
    result["table"] = lines
    write_json(HERE / f"{experiment}.json", result)
    plot(runs, order, HERE / f"{experiment}.png", experiment)
    return result


def plot(runs: dict, order: list[str], path: Path, experiment: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [("reward", "training accuracy (mean reward)"), ("entropy", "token entropy"),
            ("frac_reward_zero_std", "zero-variance share")]  # fmt: skip
    fig, axes = plt.subplots(1, len(keys), figsize=(5 * len(keys), 3.8))
    for ax, (key, label) in zip(axes, keys):
        for method in order:
            curves = [[(s["rollouts/total"], s[key]) for s in r["steps"] if s.get(key) is not None]
                      for r in runs[method].values()]  # fmt: skip
            length = min(len(c) for c in curves)
            if length == 0:
                continue
            xs = [curves[0][i][0] for i in range(length)]
            ys = [statistics.mean(c[i][1] for c in curves) for i in range(length)]
            ax.plot(xs, ys, label=method)
        ax.set_xlabel("rollouts")
        ax.set_title(label)
    axes[0].legend(fontsize=7)
    fig.suptitle(f"{experiment}: mean over seeds")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("experiment", choices=list(PROTOCOL))
    parser.add_argument("--methods", nargs="+", help="a subset of the protocol's methods (default: all)")
    parser.add_argument("--seeds", nargs="+", type=int, help="a subset of the protocol's seeds (default: all)")
    parser.add_argument(
        "--output_dir", help="where the probe and the runs' JSON go (default benchmarks/evidence/<exp>)"
    )
    parser.add_argument(
        "--work_dir", help="where the runs' model folders and logs go (default: the temporary directory)"
    )
    parser.add_argument("--report", action="store_true", help="only tabulate the runs that finished")
    args = parser.parse_args()
    protocol = PROTOCOL[args.experiment]
    out = Path(args.output_dir or HERE / "evidence" / args.experiment)
    work = Path(args.work_dir or Path(tempfile.gettempdir()) / "zvp_evidence" / args.experiment)
    if not args.report:
        level = choose_level(args.experiment, out)
        methods = args.methods or list(protocol["methods"])
        unknown = sorted(set(methods) - set(protocol["methods"]))
        if unknown:
            raise SystemExit(f"unknown methods {unknown}; the protocol's: {list(protocol['methods'])}")
        for seed in args.seeds or protocol["seeds"]:
            for method in methods:
                run_one(args.experiment, method, seed, level, out, work)
    report(args.experiment, out)


if __name__ == "__main__":
    main()
