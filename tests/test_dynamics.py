# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
import json
import logging
import struct
from types import SimpleNamespace

import pytest
from cpu_config import cpu_config_kwargs
from datasets import Dataset

import zvp_trl.evaluation.dynamics as dynamics
from zvp_trl import RLZVPConfig, RLZVPTrainer, accuracy_reward
from zvp_trl.core.callbacks import DynamicsPlotCallback
from zvp_trl.evaluation.dynamics import dynamics_panels, plot_training_dynamics


pytest.importorskip("matplotlib")

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
COMMON = ["Reward / accuracy", "Entropy", "Mean completion length", "Rollouts (cumulative)"]


def history(extra, steps=(1, 2, 3)):
    """A TRL-shaped log history: one entry per logged step plus the end-of-training summary (no `step` metrics)."""
    entries = []
    for i, step in enumerate(steps):
        entry = {
            "loss": 0.01 * i,
            "reward": 0.4 + 0.05 * i,
            "reward_std": 0.3,
            "rewards/accuracy_reward/mean": 0.4 + 0.05 * i,
            "rewards/accuracy_reward/std": 0.4,
            "frac_reward_zero_std": 0.3 + 0.02 * i,
            "entropy": 0.9 - 0.1 * i,
            "completions/mean_length": 40.0 + i,
            "rollouts/total": 64.0 * (i + 1),
            "rollouts/kept": 64.0 * (i + 1),
            "step_time": 1.0,
            "epoch": 0.1 * step,
            "step": step,
        }
        entry.update({key: value(i) if callable(value) else value for key, value in extra.items()})
        entries.append(entry)
    entries.append({"train_runtime": 3.0, "train_loss": 0.01, "epoch": 0.3, "step": steps[-1], "total_flos": 0.0})
    return entries


RL_ZVP = {
    "zvp/frac_zv_positive": lambda i: 0.1 + 0.01 * i,
    "zvp/frac_zv_negative": 0.2,
    "zvp/adv_mean_positive": 0.05,
    "zvp/adv_mean_negative": None,  # TRL logs None when every value was NaN; still drawn from the other metric
    "zvp/entropy_max_mean": 2.0,
}
ERPO = {
    "erpo/temperature_mean": lambda i: 1.0 + 0.05 * i,
    "erpo/temperature_max": lambda i: 1.0 + 0.1 * i,
    "erpo/frac_elevated": 0.1,
    "erpo/frac_reactivated": None,
    "erpo/frac_residual": 0.2,
    "erpo/frac_all_correct": 0.2,
    "erpo/num_elevated_prompts": 5.0,
}
EXGRPO = {
    "exgrpo/active": 1.0,
    "exgrpo/replay_frac": 0.5,
    "exgrpo/buffer_prompts": lambda i: 10.0 * i,
    "exgrpo/retired": float("nan"),  # NaN never counts as logged
    "exgrpo/retired_redrawn": 0.0,
    "exgrpo/bucket_low": 1.0,
}


@pytest.mark.unit
def test_panels_rl_zvp():
    panels = dynamics_panels(history(RL_ZVP))
    assert list(panels) == [
        "Zero-variance groups (fraction)",
        "Reward / accuracy",
        "Entropy",
        "Mean completion length",
        "RL-ZVP mean token advantage",
        "Rollouts (cumulative)",
    ]
    assert panels["Zero-variance groups (fraction)"] == [
        "frac_reward_zero_std",
        "zvp/frac_zv_positive",
        "zvp/frac_zv_negative",
    ]
    assert panels["Reward / accuracy"] == ["reward", "rewards/accuracy_reward/mean"]
    assert panels["RL-ZVP mean token advantage"] == ["zvp/adv_mean_positive"]


@pytest.mark.unit
def test_panels_erpo():
    panels = dynamics_panels(history(ERPO))
    assert set(panels) == {
        "Zero-variance groups (fraction)",
        *COMMON,
        "ERPO temperature",
        "ERPO residual prompts (fraction)",
    }
    assert panels["Zero-variance groups (fraction)"] == ["frac_reward_zero_std"]
    assert panels["ERPO temperature"] == ["erpo/temperature_mean", "erpo/temperature_max"]
    assert panels["ERPO residual prompts (fraction)"] == ["erpo/frac_residual", "erpo/frac_elevated"]


@pytest.mark.unit
def test_panels_exgrpo_and_benchmark_eval():
    log = history(EXGRPO)
    log.insert(2, {"eval/math500/acc@8": 0.3, "eval/math500/pass@8": 0.6, "eval/amc23/acc@8": 0.1, "step": 2})
    panels = dynamics_panels(log)
    assert set(panels) == {
        "Zero-variance groups (fraction)",
        *COMMON,
        "ExGRPO buffer (prompts)",
        "ExGRPO replay (fraction)",
        "Benchmark accuracy",
    }
    assert panels["ExGRPO buffer (prompts)"] == ["exgrpo/buffer_prompts"]
    assert panels["Benchmark accuracy"] == ["eval/amc23/acc@8", "eval/math500/acc@8", "eval/math500/pass@8"]


@pytest.mark.unit
def test_panels_baselines_and_empty():
    ds = {"ds/generation_rounds": 2.0, "ds/frac_dropped": 0.4, "ds/carried_groups": 0.0}
    greso = {"greso/p_easy": 0.5, "greso/p_hard": 0.5, "greso/frac_skipped": 0.1, "greso/frac_easy": 0.1}
    assert {"GRPO-DS dropped groups (fraction)", "GRPO-DS generation rounds"} <= set(dynamics_panels(history(ds)))
    assert dynamics_panels(history(greso))["GRESO skipping"] == ["greso/frac_skipped", "greso/p_easy", "greso/p_hard"]
    assert dynamics_panels([]) == {}
    assert dynamics_panels([{"train_runtime": 1.0, "step": 3}, {"reward": 1.0}]) == {}  # no step -> not plotted
    assert dynamics_panels(history({}), panels={"Mine": ["reward", "missing"]}) == {"Mine": ["reward"]}


def png_size(path):
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def state(log_history, main=True, step=3):
    return SimpleNamespace(log_history=log_history, is_world_process_zero=main, global_step=step)


@pytest.mark.trainer
@pytest.mark.parametrize("extra", [RL_ZVP, ERPO, EXGRPO], ids=["rl_zvp", "erpo", "exgrpo"])
def test_callback_writes_png(tmp_path, extra):
    args = SimpleNamespace(output_dir=str(tmp_path / "run"), run_name=None)
    callback = DynamicsPlotCallback(min_interval_seconds=0)
    log = history({**extra, **RL_ZVP})
    callback.on_log(args, state(log), None, logs=log[-2])
    path = tmp_path / "run" / "training_dynamics.png"
    width, height = png_size(path)
    assert width > 400 and height > 200
    assert sorted(p.name for p in path.parent.iterdir()) == ["training_dynamics.png"]  # no temporary file left
    path.unlink()
    callback.on_train_end(args, state(log), None)
    assert path.is_file() and callback.last_path == path


@pytest.mark.trainer
def test_callback_schedule_main_process_and_filename(tmp_path):
    args = SimpleNamespace(output_dir=str(tmp_path), run_name="r")
    callback = DynamicsPlotCallback(every_n_logs=2, filename="plots/dyn.png", min_interval_seconds=0)
    path = tmp_path / "plots" / "dyn.png"
    log = history(RL_ZVP)
    callback.on_log(args, state(log), None)
    assert not path.exists()  # first log event: not yet
    callback.on_log(args, state(log), None)
    assert path.is_file()
    other = tmp_path / "other"
    callback.on_train_end(SimpleNamespace(output_dir=str(other), run_name=None), state(log, main=False), None)
    assert not other.exists()  # only the main process draws
    callback.on_train_end(args, state([]), None)  # nothing plottable: keeps the last picture, no error
    assert path.is_file()
    with pytest.raises(ValueError, match="every_n_logs"):
        DynamicsPlotCallback(every_n_logs=0)
    with pytest.raises(ValueError, match="min_interval_seconds"):
        DynamicsPlotCallback(min_interval_seconds=-1)


@pytest.mark.trainer
def test_min_interval_throttles_log_redraws(tmp_path):
    args = SimpleNamespace(output_dir=str(tmp_path), run_name=None)
    path = tmp_path / "training_dynamics.png"
    callback = DynamicsPlotCallback(min_interval_seconds=3600)
    log = history(RL_ZVP)
    callback.on_log(args, state(log), None)
    assert path.is_file()  # the first log event draws
    path.unlink()
    callback.on_log(args, state(log), None)
    assert not path.exists()  # too soon after the last drawing
    callback.on_train_end(args, state(log), None)
    assert path.is_file()  # the end of training always draws


@pytest.mark.unit
def test_drawing_failure_only_warns(tmp_path, monkeypatch, caplog):
    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(dynamics, "plot_training_dynamics", boom)
    with caplog.at_level(logging.WARNING, logger="zvp_trl.core.callbacks"):
        DynamicsPlotCallback().on_train_end(SimpleNamespace(output_dir=str(tmp_path)), state(history({})), None)
    assert "disk full" in caplog.text


@pytest.mark.unit
def test_without_matplotlib_warns_and_skips(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(dynamics, "matplotlib_available", lambda: False)
    with caplog.at_level(logging.WARNING, logger="zvp_trl.core.callbacks"):
        callback = DynamicsPlotCallback()
    assert "matplotlib is not installed" in caplog.text
    callback.on_train_end(SimpleNamespace(output_dir=str(tmp_path)), state(history({})), None)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.trainer
def test_cli_on_trainer_state(tmp_path):
    (tmp_path / "trainer_state.json").write_text(json.dumps({"log_history": history(ERPO)}))
    assert dynamics.main([str(tmp_path)]) == tmp_path / "training_dynamics.png"
    png_size(tmp_path / "training_dynamics.png")
    assert plot_training_dynamics([], tmp_path / "none.png") is None and not (tmp_path / "none.png").exists()


@pytest.mark.trainer
def test_real_training_leaves_png(tiny_model_path, tmp_path):
    dataset = Dataset.from_dict(
        {"prompt": [f"Q: {i}+1=?\nA:" for i in range(8)], "solution": [str(i + 1) for i in range(8)]}
    )
    args = RLZVPConfig(**cpu_config_kwargs(tmp_path, num_generations=4, max_completion_length=8, max_steps=2))
    callback = DynamicsPlotCallback(min_interval_seconds=0)
    trainer = RLZVPTrainer(
        model=tiny_model_path, reward_funcs=accuracy_reward, args=args, train_dataset=dataset, callbacks=[callback]
    )
    trainer.train()
    path = tmp_path / "training_dynamics.png"
    png_size(path)
    assert callback.num_logs == 3  # two logged steps + the end-of-training summary
    panels = dynamics_panels(trainer.state.log_history)
    assert {"Zero-variance groups (fraction)", "Reward / accuracy", "Entropy", "Mean completion length"} <= set(panels)
    assert {"zvp/frac_zv_positive", "zvp/frac_zv_negative"} <= set(panels["Zero-variance groups (fraction)"])
