# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""What a probe's rows say: the summary (`summary.json`), the recommendations derived from it, the solve-rate figure
and the filtered data set. Pure functions of the rows, no trainer inside."""

import math
from datetime import datetime, timezone
from pathlib import Path

from ..evaluation.accuracy import acc_pass_at_k


SUMMARY_FILE = "summary.json"
FIGURE_FILE = "solve_rates.png"
FILTERED_FILE = "filtered.jsonl"
# A share at or above which a kind of zero-variance prompt is worth acting on.
NOTABLE_SHARE = 0.2


def summarize(rows: list[dict], settings: dict, seconds: float | None = None) -> dict:
    """The probe's numbers: the zero-variance split of the prompts, the rollouts plain GRPO would learn nothing from,
    Acc@G and Pass@G over the prompts, and what was probed."""
    if not rows:
        raise ValueError("The probe has no rows: the data set is empty or probe_max_prompts is 0.")
    G = settings["num_generations"]
    counts = {kind: sum(row["kind"] == kind for row in rows) for kind in ("all_correct", "all_wrong", "mixed")}
    n = len(rows)
    correct = [[True] * row["num_correct"] + [False] * (row["num_generations"] - row["num_correct"]) for row in rows]
    accuracy = acc_pass_at_k(correct, G)
    summary = {
        "num_prompts": n,
        "num_generations": G,
        "counts": counts,
        **{kind: counts[kind] / n for kind in counts},
        # Every prompt has G rollouts, so the share of rollouts in zero-variance groups is the share of such prompts.
        "zero_gradient_rollout_share": (counts["all_correct"] + counts["all_wrong"]) / n,
        f"acc@{G}": accuracy[f"acc@{G}"],
        f"pass@{G}": accuracy[f"pass@{G}"],
        "mean_completion_length": sum(row["completion_length_mean"] for row in rows) / n,
        "model": settings.get("model"),
        "dataset": settings.get("dataset"),
        "settings": settings,
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "seconds": None if seconds is None else round(seconds, 1),
    }
    summary["recommendations"] = recommend(summary)
    return summary


def expected_rounds(mixed_share: float) -> float:
    """Generation rounds dynamic sampling (GRPO-DS, GRESO without skips) needs on average to fill a batch when a share
    `mixed_share` of the groups it generates has a reward spread: each round keeps that share, so 1 / share rounds."""
    return math.inf if mixed_share <= 0 else 1.0 / mixed_share


def recommend(summary: dict) -> list[dict]:
    """Recommendations derived from the split, each with the finding, the suggestion and the config fields to set."""
    all_correct, all_wrong, mixed = summary["all_correct"], summary["all_wrong"], summary["mixed"]
    advice = []
    if all_wrong >= NOTABLE_SHARE:
        advice.append(
            {
                "finding": f"{all_wrong:.0%} of the prompts were never solved (all-wrong groups: no GRPO gradient).",
                "suggestion": "RL-ZVP's negative branch pushes down the confident tokens of these groups; or drop the "
                "never-solved prompts from the data (--write_filtered), or train a stronger model first.",
                "fields": ["--algorithm rl_zvp", "zvp_use_negative: true", "--write_filtered true"],
            }
        )
    if all_correct >= NOTABLE_SHARE:
        advice.append(
            {
                "finding": f"{all_correct:.0%} of the prompts were always solved (all-correct groups: no GRPO "
                "gradient).",
                "suggestion": "ERPO samples these prompts again at a raised temperature so they regain a spread; "
                "RL-ZVP's positive branch reinforces their low-entropy tokens; or drop them (--write_filtered).",
                "fields": ["--algorithm erpo (or erpo+rl_zvp)", "erpo_temperature_step", "erpo_max_temperature"],
            }
        )
    rounds = expected_rounds(mixed)
    if mixed > 0:
        advice.append(
            {
                "finding": f"{mixed:.0%} of the prompts have a reward spread: dynamic sampling (GRPO-DS, GRESO) needs "
                f"about {rounds:.1f} generation rounds per batch.",
                "suggestion": (
                    "Dynamic sampling is affordable here; give it room for unlucky batches."
                    if rounds <= 2
                    else "Dynamic sampling would generate several times per step; RL-ZVP learns from every group "
                    "instead, or GRESO skips likely zero-variance prompts before sampling them."
                ),
                "fields": [f"ds_max_generation_rounds: {max(2, math.ceil(2 * rounds))}"],
            }
        )
    else:
        advice.append(
            {
                "finding": "No prompt has a reward spread: plain GRPO and dynamic sampling learn nothing from this data.",
                "suggestion": "Use RL-ZVP (it learns from zero-variance groups), or change the data or the model.",
                "fields": ["--algorithm rl_zvp"],
            }
        )
    if all_correct + all_wrong >= 0.5:
        advice.append(
            {
                "finding": f"{all_correct + all_wrong:.0%} of the rollouts would give plain GRPO no gradient.",
                "suggestion": "With RL-ZVP, let alpha follow the batch: the scale-free rule sets it so the "
                "zero-variance tokens' mean |advantage| is a fixed share of the mixed tokens'.",
                "fields": ["zvp_alpha_rule: relative", "zvp_alpha_relative_target"],
            }
        )
    return advice


def report_text(summary: dict, output_dir: Path, train_command: str | None = None) -> str:
    G = summary["num_generations"]
    lines = [
        f"[zvp_trl probe] {summary['num_prompts']} prompts x {G} samples of {summary['model']} on {summary['dataset']}",
        f"  all-correct {summary['all_correct']:.1%}   all-wrong {summary['all_wrong']:.1%}   mixed "
        f"{summary['mixed']:.1%}   (rollouts with no GRPO gradient: {summary['zero_gradient_rollout_share']:.1%})",
        f"  acc@{G} {summary[f'acc@{G}']:.3f}   pass@{G} {summary[f'pass@{G}']:.3f}   mean completion length "
        f"{summary['mean_completion_length']:.1f} tokens",
    ]
    for item in summary["recommendations"]:
        lines.append(f"  - {item['finding']}")
        lines.append(f"    {item['suggestion']}  [{', '.join(item['fields'])}]")
    lines.append(f"  rows:    {(output_dir / 'probe.jsonl').resolve()}")
    lines.append(f"  summary: {(output_dir / SUMMARY_FILE).resolve()}")
    if (output_dir / FIGURE_FILE).is_file():
        lines.append(f"  figure:  {(output_dir / FIGURE_FILE).resolve()}")
    if (output_dir / FILTERED_FILE).is_file():
        lines.append(f"  filtered data: {(output_dir / FILTERED_FILE).resolve()}")
        if train_command:
            lines.append(f"  train on it:   {train_command}")
    return "\n".join(lines)


def plot_solve_rates(rows: list[dict], path: Path) -> None:
    """Histogram of per-prompt solve rates (correct samples out of G), each bar split by the prompts' zero-variance
    kind (a group of rewards all equal but not all correct or wrong by the threshold counts as its kind)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    G = rows[0]["num_generations"]
    colors = {"all_wrong": "#c0392b", "mixed": "#7f8c8d", "all_correct": "#27ae60"}
    figure, axes = plt.subplots(figsize=(6, 3.5))
    bottom = [0] * (G + 1)
    for kind, color in colors.items():
        heights = [sum(row["kind"] == kind and row["num_correct"] == k for row in rows) for k in range(G + 1)]
        axes.bar([k / G for k in range(G + 1)], heights, width=0.8 / G, bottom=bottom, color=color, label=kind)
        bottom = [b + h for b, h in zip(bottom, heights)]
    axes.set_xlabel(f"solve rate (correct samples / {G})")
    axes.set_ylabel("prompts")
    axes.set_title(f"Zero-variance probe: {len(rows)} prompts")
    axes.legend(frameon=False)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def kept_indices(rows: list[dict], min_rate: float | None, max_rate: float | None) -> list[int]:
    """Data-set indices whose solve rate is within the band: `[min_rate, max_rate]`, inclusive; None: above 0 (drop the
    never-solved) and below 1 (drop the always-solved)."""
    kept = []
    for row in rows:
        rate = row["num_correct"] / row["num_generations"]
        above = rate > 0 if min_rate is None else rate >= min_rate
        below = rate < 1 if max_rate is None else rate <= max_rate
        if above and below:
            kept.append(row["index"])
    return kept


def write_filtered(dataset, rows: list[dict], path: Path, min_rate: float | None, max_rate: float | None) -> int:
    """The data set's rows (all their columns) within the solve-rate band, as JSON lines; returns how many."""
    kept = kept_indices(rows, min_rate, max_rate)
    dataset.select(kept).to_json(str(path), lines=True)
    return len(kept)
