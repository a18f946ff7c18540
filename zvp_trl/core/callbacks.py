# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""Training callbacks: the rollout budget (`RolloutBudgetCallback`, added by every zvp_trl trainer when
`max_rollouts` is set), the training-dynamics plot (`DynamicsPlotCallback`) and the benchmark evaluation during
training (`BenchmarkEvalCallback`)."""

import json
import logging
import time
from pathlib import Path

from transformers import TrainerCallback

from ..data.math_datasets import PROMPT_OPTIONS, save_prompt_options
from ..evaluation import dynamics
from ..evaluation.benchmark_eval import EvaluationArguments, evaluate_model


logger = logging.getLogger(__name__)


# RL-ZVP paper, small scale: best checkpoint over training for Minerva, AMC23 and MATH; final one for the others.
PAPER_SELECTION = {"minerva": "best", "amc23": "best", "math500": "best"}


class RolloutBudgetCallback(TrainerCallback):
    """Stops training once `counter.total >= max_rollouts`: at the end of that optimizer step (`stop="step"`) or of the
    generation batch that spent the budget (`stop="generation"`: the step after which the buffered batch is used up,
    every `steps_per_generation * num_iterations / gradient_accumulation_steps` optimizer steps). The count is
    identical on every process, so every process stops at the same step."""

    def __init__(self, counter, max_rollouts: int, stop: str = "generation"):
        self.counter = counter
        self.max_rollouts = max_rollouts
        self.stop = stop

    def on_step_end(self, args, state, control, **kwargs):
        if self.counter.total < self.max_rollouts:
            return control
        if self.stop == "generation":
            per_generation = max(
                1, args.steps_per_generation * getattr(args, "num_iterations", 1) // args.gradient_accumulation_steps
            )
            if state.global_step % per_generation != 0:
                return control
        control.should_training_stop = True
        return control


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
        panels (`dict[str, list[str]]`, *optional*): title -> metric names / fnmatch patterns; default
            `zvp_trl.evaluation.dynamics.PANELS`.

    Example:
    ```python
    trainer = RLZVPTrainer(..., callbacks=[DynamicsPlotCallback()])
    ```
    """

    def __init__(
        self,
        every_n_logs: int = 1,
        filename: str = dynamics.DEFAULT_FILENAME,
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
        self.enabled = dynamics.matplotlib_available()
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
            written = dynamics.plot_training_dynamics(state.log_history, path, title=title, panels=self.panels)
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


class BenchmarkEvalCallback(TrainerCallback):
    """Evaluates the model on held-out benchmarks every `eval_steps` optimizer steps and at the end of training.

    Logs `eval/<benchmark>/acc@k` and `eval/<benchmark>/pass@k` into the trainer's log history (and so into
    `trainer_state.json`), and applies the paper's checkpoint-selection protocol: for a benchmark marked `"best"` in
    `selection` the best Acc@k over training counts (and, with `save_best=True`, that model is saved to
    `<output_dir>/best-<benchmark>`); for the others the final evaluation counts. The selected numbers are written to
    `<output_dir>/benchmark_selection.json`.

    The evaluation runs on the main process with the transformers backend; the other processes wait at the trainer's
    next collective, so keep the evaluation short relative to the distributed timeout (use `limit`).

    Args:
        benchmarks (`list[str]`): names from `zvp_trl.evaluation.math_benchmarks.BENCHMARKS`.
        eval_steps (`int`): evaluate every this many optimizer steps.
        selection (`dict[str, str]`, *optional*): benchmark -> `"best"` or `"final"`; default `PAPER_SELECTION`,
            benchmarks not listed use `"final"`.
        save_best (`bool`, *optional*, defaults to `False`): save the best model of each `"best"` benchmark.
        **evaluation_kwargs: fields of [`EvaluationArguments`] (`k`, `temperature`, `top_p`, `max_tokens`, `limit`,
            `data_dir`, `batch_size`, `prompt_template`, `conversational`, `seed`).
    """

    def __init__(self, benchmarks, eval_steps: int, selection=None, save_best: bool = False, **evaluation_kwargs):
        if eval_steps < 1:
            raise ValueError(f"eval_steps must be >= 1, got {eval_steps}.")
        self.benchmarks = list(benchmarks)
        self.eval_steps = eval_steps
        self.selection = {name: (selection or PAPER_SELECTION).get(name, "final") for name in self.benchmarks}
        bad = {name: mode for name, mode in self.selection.items() if mode not in ("best", "final")}
        if bad:
            raise ValueError(f"selection values must be 'best' or 'final', got {bad}.")
        self.save_best = save_best
        self.evaluation_kwargs = evaluation_kwargs
        self.selected: dict[str, dict] = {}
        self._last_step = None

    def _evaluate(self, args, state, model, processing_class):
        self._last_step = state.global_step
        if not state.is_world_process_zero:
            return
        model = getattr(model, "module", model)
        output_dir = Path(args.output_dir)
        eval_args = EvaluationArguments(
            model_name_or_path=getattr(model.config, "_name_or_path", None) or "policy",
            benchmarks=self.benchmarks,
            backend="transformers",
            output_dir=str(output_dir / "benchmark_eval" / f"step-{state.global_step}"),
            prompt_from_training=False,  # the prompt options are this run's (evaluation_kwargs), not the base model's
            **self.evaluation_kwargs,
        )
        summary = evaluate_model(eval_args, model=model, tokenizer=processing_class)
        k = eval_args.k
        metrics = {}
        for name, result in summary["results"].items():
            metrics[f"eval/{name}/acc@{k}"] = result[f"acc@{k}"]
            metrics[f"eval/{name}/pass@{k}"] = result[f"pass@{k}"]
            previous = self.selected.get(name)
            improved = previous is None or result[f"acc@{k}"] > previous[f"acc@{k}"]
            if self.selection[name] == "final" or improved:
                self.selected[name] = {"mode": self.selection[name], "step": state.global_step, **result}
                if self.selection[name] == "best" and self.save_best:
                    model.save_pretrained(output_dir / f"best-{name}")
                    processing_class.save_pretrained(output_dir / f"best-{name}")
                    # the prompt it was evaluated with, for recipes/evaluate.py (zvp_trl.data.math_datasets)
                    options = {key: self.evaluation_kwargs.get(key) for key in PROMPT_OPTIONS}
                    save_prompt_options(output_dir / f"best-{name}", options)
        state.log_history.append({**metrics, "step": state.global_step})
        output_dir.mkdir(parents=True, exist_ok=True)
        (output_dir / "benchmark_selection.json").write_text(json.dumps(self.selected, indent=2) + "\n")
        print(
            f"[zvp_trl] step {state.global_step}: " + ", ".join(f"{key} {value:.3f}" for key, value in metrics.items())
        )

    def on_step_end(self, args, state, control, model=None, processing_class=None, **kwargs):
        if state.global_step % self.eval_steps == 0:
            self._evaluate(args, state, model, processing_class)

    def on_train_end(self, args, state, control, model=None, processing_class=None, **kwargs):
        if self._last_step != state.global_step:  # the final model counts for the "final" benchmarks
            self._evaluate(args, state, model, processing_class)
