# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""A one-file picture of the training dynamics the papers plot, drawn from the trainer's `state.log_history`.

[`DynamicsPlotCallback`] keeps `<output_dir>/training_dynamics.png` up to date during training: one figure with a
panel per group of logged metrics (zero-variance fractions, reward, entropy, completion length, RL-ZVP advantages,
ERPO temperatures, ExGRPO buffer, GRPO-DS / GRESO filtering, rollouts, benchmark accuracy), x = global step. Only the
panels whose metrics were logged are drawn. [`dynamics_panels`] is the pure panel selection and
[`plot_training_dynamics`] draws a figure from any log history, e.g. a finished run's `trainer_state.json`:

```bash
python -m zvp_trl.dynamics runs/quick/trainer_state.json  # writes runs/quick/training_dynamics.png
```

matplotlib is an optional dependency (the `dev` extra). Without it the callback warns once and draws nothing; training
is unaffected. The figure is drawn with matplotlib's Agg canvas directly (no `pyplot`), so the process-wide backend,
open figures and the `report_to` trackers are left alone; the callback only reads the log history.
"""

import argparse
import fnmatch
import importlib.util
import json
import logging
import math
import os
import time
from pathlib import Path

from transformers import TrainerCallback


logger = logging.getLogger(__name__)

DEFAULT_FILENAME = "training_dynamics.png"

# Panel title -> metric names or fnmatch patterns, in drawing order. Metric names are those the trainers log: TRL's
# GRPOTrainer (`reward`, `entropy`, ...), zvp_trl/trainer/* (`zvp/`, `erpo/`, `exgrpo/`, `ds/`, `greso/`,
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


class DynamicsPlotCallback(TrainerCallback):
    """Keeps a PNG of the training dynamics up to date: `<output_dir>/<filename>`, redrawn from `state.log_history`
    every `every_n_logs` log events and at the end of training, on the main process only.

    The callback only reads the log history (it adds nothing to the logs and leaves the `report_to` trackers alone). A
    drawing failure is logged as a warning and never stops training. Without matplotlib it warns once and does nothing.

    A redraw takes about a second on a busy CPU (ten panels), which is not free next to the embedded task's ~2 s steps
    with a small `logging_steps`; `min_interval_seconds` bounds that cost whatever the logging frequency.

    Args:
        every_n_logs (`int`, *optional*, defaults to `1`): redraw every this many log events (`logging_steps`).
        min_interval_seconds (`float`, *optional*, defaults to `30.0`): and at most once per this many seconds
            (0 = every `every_n_logs` log events); the end of training always redraws.
        filename (`str`, *optional*, defaults to `"training_dynamics.png"`): file name (or path relative to
            `output_dir`; an absolute path is used as is).
        panels (`dict[str, list[str]]`, *optional*): title -> metric names / fnmatch patterns; default `PANELS`.

    Example:
    ```python
    trainer = RLZVPTrainer(..., callbacks=[DynamicsPlotCallback()])
    ```
    """

    def __init__(
        self,
        every_n_logs: int = 1,
        filename: str = DEFAULT_FILENAME,
        panels=None,
        min_interval_seconds: float = 30.0,
    ):
        if every_n_logs < 1:
            raise ValueError(f"every_n_logs must be >= 1, got {every_n_logs}.")
        if min_interval_seconds < 0:
            raise ValueError(f"min_interval_seconds must be >= 0, got {min_interval_seconds}.")
        self.every_n_logs = every_n_logs
        self.min_interval_seconds = min_interval_seconds
        self._last_draw: float | None = None
        self.filename = filename
        self.panels = panels
        self.enabled = matplotlib_available()
        if not self.enabled:
            logger.warning(
                "DynamicsPlotCallback: matplotlib is not installed, so no training-dynamics plot will be drawn "
                "(`pip install matplotlib` to get one)."
            )
        self.num_logs = 0
        self.last_path: Path | None = None

    def _draw(self, args, state):
        if not (self.enabled and state.is_world_process_zero):
            return
        self._last_draw = time.monotonic()
        path = Path(args.output_dir) / self.filename
        title = f"{getattr(args, 'run_name', None) or args.output_dir} - step {state.global_step}"
        try:
            written = plot_training_dynamics(state.log_history, path, title=title, panels=self.panels)
        except Exception as error:  # a plot must never cost a training run
            logger.warning(f"DynamicsPlotCallback: could not draw {path}: {error!r}")
            return
        if written is not None:
            self.last_path = written

    def on_log(self, args, state, control, logs=None, **kwargs):
        self.num_logs += 1
        if self.num_logs % self.every_n_logs:
            return
        if self._last_draw is not None and time.monotonic() - self._last_draw < self.min_interval_seconds:
            return
        self._draw(args, state)

    def on_train_end(self, args, state, control, **kwargs):
        self._draw(args, state)


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
