# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""Training callbacks."""

import json
from pathlib import Path

from transformers import TrainerCallback

from .benchmark_eval import EvaluationArguments, evaluate_model


# RL-ZVP paper, small scale: best checkpoint over training for Minerva, AMC23 and MATH; final one for the others.
PAPER_SELECTION = {"minerva": "best", "amc23": "best", "math500": "best"}


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
        benchmarks (`list[str]`): names from `zvp_trl.math_benchmarks.BENCHMARKS`.
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
