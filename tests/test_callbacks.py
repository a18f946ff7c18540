# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
import json
from types import SimpleNamespace

import pytest

import zvp_trl.core.callbacks as callbacks
from zvp_trl.core.callbacks import BenchmarkEvalCallback


pytestmark = pytest.mark.unit


def test_best_and_final_selection(tmp_path, monkeypatch):
    scripted = iter(
        [{"math500": 0.30, "gsm8k": 0.50}, {"math500": 0.40, "gsm8k": 0.20}, {"math500": 0.35, "gsm8k": 0.60}]
    )

    def fake_evaluate(args, model=None, tokenizer=None):
        accuracies = next(scripted)
        return {
            "results": {
                name: {"acc@2": acc, "pass@2": acc + 0.1, "num_questions": 4} for name, acc in accuracies.items()
            }
        }

    monkeypatch.setattr(callbacks, "evaluate_model", fake_evaluate)
    saved = []
    model = SimpleNamespace(config=SimpleNamespace(_name_or_path="m"), save_pretrained=lambda p: saved.append(p))
    tokenizer = SimpleNamespace(save_pretrained=lambda p: None)
    callback = BenchmarkEvalCallback(["math500", "gsm8k"], eval_steps=10, save_best=True, k=2)
    assert callback.selection == {"math500": "best", "gsm8k": "final"}  # the paper's protocol by default
    args = SimpleNamespace(output_dir=str(tmp_path))
    state = SimpleNamespace(global_step=0, is_world_process_zero=True, log_history=[])
    for step in (5, 10, 20, 30):
        state.global_step = step
        callback.on_step_end(args, state, None, model=model, processing_class=tokenizer)
    callback.on_train_end(args, state, None, model=model, processing_class=tokenizer)  # step 30 already evaluated
    assert [entry["step"] for entry in state.log_history] == [10, 20, 30]
    assert state.log_history[1]["eval/math500/acc@2"] == 0.40
    assert state.log_history[1]["eval/gsm8k/pass@2"] == pytest.approx(0.3)
    selected = json.loads((tmp_path / "benchmark_selection.json").read_text())
    assert selected["math500"]["step"] == 20 and selected["math500"]["acc@2"] == 0.40  # best
    assert selected["gsm8k"]["step"] == 30 and selected["gsm8k"]["acc@2"] == 0.60  # final
    assert saved == [tmp_path / "best-math500", tmp_path / "best-math500"]  # steps 10 and 20 improved


def test_bad_callback_arguments():
    with pytest.raises(ValueError, match="eval_steps"):
        BenchmarkEvalCallback(["math500"], eval_steps=0)
    with pytest.raises(ValueError, match="selection"):
        BenchmarkEvalCallback(["math500"], eval_steps=1, selection={"math500": "max"})
