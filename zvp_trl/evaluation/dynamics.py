# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""A one-file picture of the training dynamics the papers plot, drawn from the trainer's `state.log_history`.

[`~zvp_trl.core.callbacks.DynamicsPlotCallback`] keeps `<output_dir>/training_dynamics.png` up to date during training: one figure with a
panel per group of logged metrics (zero-variance fractions, reward, entropy, completion length, RL-ZVP advantages,
ERPO temperatures, ExGRPO buffer, GRPO-DS / GRESO filtering, rollouts, benchmark accuracy), x = global step. Only the
panels whose metrics were logged are drawn. [`dynamics_panels`] is the pure panel selection and
[`plot_training_dynamics`] draws a figure from any log history, e.g. a finished run's `trainer_state.json`:

```bash
python -m zvp_trl.evaluation.dynamics runs/quick/trainer_state.json  # writes runs/quick/training_dynamics.png
```

matplotlib is an optional dependency (the `dev` extra). Without it the callback warns once and draws nothing; training
is unaffected. The figure is drawn with matplotlib's Agg canvas directly (no `pyplot`), so the process-wide backend,
open figures and the `report_to` trackers are left alone; the callback only reads the log history.
"""

import argparse
import fnmatch
import importlib.util
import json
import math
import os
from pathlib import Path


DEFAULT_FILENAME = "training_dynamics.png"

# Panel title -> metric names or fnmatch patterns, in drawing order. Metric names are those the trainers log: TRL's
# GRPOTrainer (`reward`, `entropy`, ...), zvp_trl/core and zvp_trl/methods (`zvp/`, `erpo/`, `exgrpo/`, `ds/`, `greso/`,
# `rollouts/`) and `BenchmarkEvalCallback` (`eval/<benchmark>/acc@k`).
PANELS: dict[str, list[str]] = {
    "Zero-variance groups (fraction)": ["frac_reward_zero_std", "zvp/frac_zv_positive", "zvp/frac_zv_negative"],
    "Reward / accuracy": ["reward", "rewards/*/mean"],
    "Entropy": ["entropy"],
    "Mean completion length": ["completions/mean_length"],
    "RL-ZVP mean token advantage": ["zvp/adv_mean_positive", "zvp/adv_mean_negative"],
    "ERPO temperature": ["erpo/temperature_mean", "erpo/temperature_max"],
    "ERPO residual prompts (fraction)": ["erpo/frac_residual", "erpo/frac_elevated", "erpo/frac_reactivated"],
    "ExGRPO buffer (prompts)": ["exgrpo/buffer_prompts", "exgrpo/retired"],
    "ExGRPO replay (fraction)": ["exgrpo/replay_frac"],
    "GRPO-DS dropped groups (fraction)": ["ds/frac_dropped"],
    "GRPO-DS generation rounds": ["ds/generation_rounds"],
    "GRESO skipping": ["greso/frac_skipped", "greso/p_easy", "greso/p_hard"],
    "Rollouts (cumulative)": ["rollouts/total", "rollouts/kept"],
    "Benchmark accuracy": ["eval/*/acc@*", "eval/*/pass@*"],
}


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _logged_metrics(log_history: list[dict]) -> set[str]:
    """Names with at least one finite number in an entry that has a `step`."""
    return {
        key
        for entry in log_history
        if "step" in entry
        for key, value in entry.items()
        if key != "step" and _finite(value)
    }


def dynamics_panels(log_history: list[dict], panels: dict[str, list[str]] | None = None) -> dict[str, list[str]]:
    """The panels to draw for a log history: `{title: [metric, ...]}`, only titles with at least one logged metric.

    A metric counts as logged when some entry with a `step` holds a finite number for it (TRL logs `None` for a metric
    that had no valid value). Exact names keep the order of `panels`; the matches of a pattern are sorted.

    Args:
        log_history (`list[dict]`): `trainer.state.log_history` (or the `log_history` of a `trainer_state.json`).
        panels (`dict[str, list[str]]`, *optional*): title -> metric names / fnmatch patterns; default `PANELS`.
    """
    logged = _logged_metrics(log_history)
    selected = {}
    for title, patterns in (PANELS if panels is None else panels).items():
        metrics = []
        for pattern in patterns:
            matches = sorted(fnmatch.filter(logged, pattern)) if any(c in pattern for c in "*?[") else [pattern]
            metrics += [name for name in matches if name in logged and name not in metrics]
        if metrics:
            selected[title] = metrics
    return selected


def _series(log_history: list[dict], metric: str) -> tuple[list[float], list[float]]:
    points = [
        (entry["step"], entry[metric]) for entry in log_history if "step" in entry and _finite(entry.get(metric))
    ]
    return [p[0] for p in points], [p[1] for p in points]


def matplotlib_available() -> bool:
    return importlib.util.find_spec("matplotlib") is not None


def plot_training_dynamics(
    log_history: list[dict],
    path: str | os.PathLike,
    title: str | None = None,
    panels: dict[str, list[str]] | None = None,
    ncols: int = 3,
    dpi: int = 100,
) -> Path | None:
    """Draws the panels of [`dynamics_panels`] into one PNG at `path`, written atomically (temporary file in the same
    folder, then `os.replace`), so a reader never sees a half-written image.

    Returns the path, or `None` (and writes nothing) when no panel metric was logged yet.

    Raises:
        `ImportError`: if matplotlib is not installed.
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as error:
        raise ImportError(
            "plotting the training dynamics needs matplotlib: `pip install matplotlib` (or the package's `dev` extra)."
        ) from error

    selected = dynamics_panels(log_history, panels)
    if not selected:
        return None
    path = Path(path)
    ncols = max(1, min(ncols, len(selected)))
    nrows = math.ceil(len(selected) / ncols)
    figure = Figure(figsize=(4.8 * ncols, 3.0 * nrows + (0.4 if title else 0.0)), dpi=dpi, layout="constrained")
    FigureCanvasAgg(figure)  # Agg canvas without pyplot: no global backend switch, nothing left open
    axes = figure.subplots(nrows, ncols, squeeze=False).ravel()
    for ax, (panel_title, metrics) in zip(axes, selected.items()):
        for metric in metrics:
            steps, values = _series(log_history, metric)
            ax.plot(steps, values, marker="o" if len(steps) <= 30 else None, markersize=3, linewidth=1.4, label=metric)
        ax.set_title(panel_title, fontsize=10)
        ax.set_xlabel("global step", fontsize=8)
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    for ax in axes[len(selected) :]:
        ax.set_visible(False)
    if title:
        figure.suptitle(title, fontsize=11)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        figure.savefig(tmp, format="png")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def main(argv: list[str] | None = None) -> Path | None:
    parser = argparse.ArgumentParser(description="Draw the training dynamics of a run from its trainer_state.json.")
    parser.add_argument("trainer_state", help="a trainer_state.json (or a folder holding one)")
    parser.add_argument("--output", help=f"PNG path (default: {DEFAULT_FILENAME} next to trainer_state.json)")
    args = parser.parse_args(argv)
    state_path = Path(args.trainer_state)
    if state_path.is_dir():
        state_path = state_path / "trainer_state.json"
    log_history = json.loads(state_path.read_text())["log_history"]
    output = Path(args.output) if args.output else state_path.parent / DEFAULT_FILENAME
    written = plot_training_dynamics(log_history, output, title=str(state_path.parent))
    print(f"[zvp_trl] wrote {written}" if written else f"[zvp_trl] no plottable metrics in {state_path}")
    return written


if __name__ == "__main__":
    main()
