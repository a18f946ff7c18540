# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""Every registered algorithm trains through TRL's vLLM colocate mode (vLLM's CPU build), syncs its weights into
vLLM, logs its metrics, updates its per-prompt state and resumes from a checkpoint; ERPO's elevated rows are sampled
and scored at their own temperature."""

import collections
import json

import pytest

from conftest import run_script
from zvp_trl.core.composition import ALGORITHMS


# Metrics each method logs (besides TRL's), and the state entries its checkpoints hold.
METHOD_METRICS = {
    "grpo": ["rollouts/total"],
    "rl_zvp": ["zvp/frac_zv_positive", "zvp/frac_zv_negative"],
    "erpo": ["erpo/temperature_mean", "erpo/frac_residual", "erpo/is_ratio_base", "erpo/logp_diff_base"],
    "erpo_rl_zvp": ["erpo/temperature_mean", "erpo/is_ratio_base", "zvp/frac_zv_positive"],
    "erpo_ds": ["erpo/temperature_mean", "erpo/is_ratio_base", "ds/generation_rounds", "ds/frac_dropped"],
    "grpo_ds": ["ds/generation_rounds", "ds/frac_dropped"],
    "greso": ["ds/generation_rounds", "greso/p_easy", "greso/frac_skipped"],
    "exgrpo": ["exgrpo/active", "exgrpo/buffer_prompts", "exgrpo/replay_frac"],
    "exgrpo_rl_zvp": ["exgrpo/buffer_prompts", "zvp/frac_zv_positive"],
}
ERPO_ALGORITHMS = ("erpo", "erpo_rl_zvp", "erpo_ds")
# ERPO runs longer, so prompts come back often enough to be elevated (step 0.5: 1.0 -> 1.5 -> 2.0).
MAX_STEPS = {"erpo": 6, "erpo_rl_zvp": 6, "erpo_ds": 6}
SAVE_STEPS = 2
# The one colocate run whose engine compiles the model, as TRL builds it; the others run it eagerly
# (`vllm_run.py --enforce_eager`), which starts faster and samples the same distributions.
COMPILED = "grpo"
EAGER = ["--enforce_eager"]


def _state_is_updated(algorithm: str, state: dict) -> None:
    """The per-prompt state after a few steps holds what the reward pattern must have produced."""
    assert state["rollouts"]["total"] > 0
    if algorithm in ERPO_ALGORITHMS:
        temperatures = state["erpo_history"]["temperatures"]
        # Prompts 0 and 4 (n % 4 == 0) are always solved: elevated, up to the cap 2.0.
        assert temperatures, "no prompt was elevated"
        assert max(temperatures.values()) == pytest.approx(2.0)
    if algorithm == "greso":
        assert state["greso"]["traces"], "GRESO recorded no prompt"
    if algorithm in ("grpo_ds", "greso", "erpo_ds"):
        assert state["dynamic_sampling"]["dropped_groups"] > 0
    if algorithm.startswith("exgrpo"):
        # Mixed prompts (n % 4 in {2, 3}) put correct trajectories in the buffer; always-solved ones are retired.
        # (The buffer's state is its summary: counts and the SHA-256 of its checkpoint file.)
        assert state["exgrpo_buffer"]["prompts"] > 0 and state["exgrpo_buffer"]["tokens"] > 0, "the buffer is empty"
        assert state["exgrpo_buffer"]["retired"] > 0, "no always-solved prompt was retired"


@pytest.fixture(scope="module")
def colocate_runs(vllm_model_path, tmp_path_factory):
    """Per algorithm, run lazily: a run with checkpoints, then a second process resuming from its checkpoint-2."""
    runs = {}

    def get(algorithm: str) -> dict:
        if algorithm not in runs:
            root = tmp_path_factory.mktemp(f"colocate_{algorithm}")
            steps = MAX_STEPS.get(algorithm, 3)
            first = root / "first.json"
            extra = ["--record_rows"] if algorithm in ERPO_ALGORITHMS else []
            extra += [] if algorithm == COMPILED else EAGER
            run_script(
                "vllm_run.py", "--algorithm", algorithm, "--model", vllm_model_path, "--output_dir",
                root / "out", "--result", first, "--max_steps", steps, "--save_steps", SAVE_STEPS, *extra,
            )  # fmt: skip
            checkpoint = root / "out" / f"checkpoint-{SAVE_STEPS}"
            resumed = root / "resumed.json"
            run_script(
                "vllm_run.py", "--algorithm", algorithm, "--model", vllm_model_path, "--output_dir",
                root / "out", "--result", resumed, "--max_steps", steps, "--save_steps", SAVE_STEPS,
                "--resume", checkpoint, *([] if algorithm == COMPILED else EAGER),
            )  # fmt: skip
            runs[algorithm] = {
                "first": json.loads(first.read_text()),
                "resumed": json.loads(resumed.read_text()),
                # the per-run state, without the record of the method that wrote it (no trainer state holds it)
                "checkpoint_state": {
                    name: value
                    for name, value in json.loads((checkpoint / "zvp_state.json").read_text()).items()
                    if name != "written_by"
                },
                "steps": steps,
            }
        return runs[algorithm]

    return get


@pytest.mark.parametrize("algorithm", list(ALGORITHMS))
def test_every_algorithm_trains_and_resumes_through_vllm_colocate(algorithm, colocate_runs):
    run = colocate_runs(algorithm)
    first, resumed, steps = run["first"], run["resumed"], run["steps"]
    assert first["global_step"] == steps
    assert first["enforce_eager"] is resumed["enforce_eager"] is (algorithm != COMPILED)
    logs = [entry for entry in first["log_history"] if "loss" in entry]
    assert [entry["step"] for entry in logs] == list(range(1, steps + 1))
    for entry in logs:
        # vLLM generated every step: TRL logs the distance between vLLM's and the trainer's log-probs.
        difference = entry["sampling/sampling_logp_difference/mean"]
        # Weights synced: with lr 1e-2 the policy moves far within a step (without the sync this distance exceeds
        # 1 from step 2 on, see test_without_weight_sync_vllm_samples_from_stale_weights).
        assert difference < 0.05, (entry["step"], difference)
        for key in METHOD_METRICS[algorithm]:
            assert key in entry, f"{key} not logged at step {entry['step']}"
    assert any(entry.get("grad_norm", 0) > 0 for entry in logs), "no step had a gradient"
    _state_is_updated(algorithm, first["state_at_end"])

    # The resumed process starts from exactly the checkpoint's state and trains the remaining steps through vLLM.
    assert resumed["state_at_begin"] == run["checkpoint_state"]
    assert resumed["global_step"] == steps
    resumed_logs = [entry for entry in resumed["log_history"] if "loss" in entry]
    # The history up to the checkpoint is restored from it, then the resumed process logs the remaining steps.
    assert [entry["step"] for entry in resumed_logs] == list(range(1, steps + 1))
    assert resumed_logs[:SAVE_STEPS] == logs[:SAVE_STEPS]
    for entry in resumed_logs[SAVE_STEPS:]:
        assert entry["sampling/sampling_logp_difference/mean"] < 0.05, (entry["step"], entry)
    assert resumed["state_at_end"]["rollouts"]["total"] > run["checkpoint_state"]["rollouts"]["total"]


def test_without_weight_sync_vllm_samples_from_stale_weights(vllm_model_path, tmp_path):
    """The control of the weight-sync assertion above: the same run with TRL's sync switched off."""
    result = tmp_path / "result.json"
    run_script(
        "vllm_run.py", "--algorithm", "rl_zvp", "--model", vllm_model_path, "--output_dir", tmp_path / "out",
        "--result", result, "--max_steps", 3, "--save_steps", 100, "--no_weight_sync", *EAGER,
    )  # fmt: skip
    logs = [entry for entry in json.loads(result.read_text())["log_history"] if "loss" in entry]
    assert logs[0]["sampling/sampling_logp_difference/mean"] < 0.05  # step 1: both still hold the initial weights
    assert all(entry["sampling/sampling_logp_difference/mean"] > 1.0 for entry in logs[1:])


def _rows_by_temperature(rows: list[dict]) -> dict[float, list[dict]]:
    by_temperature = collections.defaultdict(list)
    for row in rows:
        if row["tokens"] > 0:
            by_temperature[row["temperature"]].append(row)
    return dict(by_temperature)


def _mean(rows: list[dict], key: str) -> float:
    return sum(row[key] for row in rows) / len(rows)


# erpo_ds is left out: dynamic sampling drops the all-correct groups (RA off here), which are most elevated rows.
@pytest.mark.parametrize("algorithm", ["erpo", "erpo_rl_zvp"])
def test_erpo_elevated_rows_are_sampled_and_scored_at_their_temperature(algorithm, colocate_runs, tmp_path):
    """vLLM samples each elevated row at its temperature, and the trainer scores it there: per row, the importance
    ratio exp(trainer - vLLM) and the log-prob distance of elevated rows are those of base rows."""
    rows = _rows_by_temperature(colocate_runs(algorithm)["first"]["rows"])
    base = rows.pop(1.0)
    elevated = [row for temperature_rows in rows.values() for row in temperature_rows]
    assert set(rows) == {1.5, 2.0}, sorted(rows)
    assert len(base) >= 40 and len(elevated) >= 20, (len(base), len(elevated))
    summary = {
        temperature: (len(r), _mean(r, "is_ratio"), _mean(r, "logp_diff"))
        for temperature, r in [(1.0, base), *sorted(rows.items())]
    }
    print(f"{algorithm}: temperature -> (rows, mean per-row IS ratio, mean per-row |trainer - vLLM| logp)", summary)
    assert abs(_mean(elevated, "is_ratio") - _mean(base, "is_ratio")) < 0.05
    assert abs(_mean(base, "is_ratio") - 1) < 0.01
    # The mean ratio is near 1 even for a mismatched temperature (E_q[p/q] = 1 for tokens drawn from q), so the
    # per-token log-prob distance is the sharp check: elevated rows agree with vLLM as closely as base rows.
    assert _mean(elevated, "logp_diff") < 0.02
    assert _mean(elevated, "logp_diff") < 3 * _mean(base, "logp_diff")


def test_erpo_logprobs_at_the_base_temperature_disagree_with_vllm(vllm_model_path, tmp_path):
    """The control of the test above: with erpo_logprob_temperature='base' the trainer scores elevated rows at T=1
    while vLLM sampled them hotter, and the per-row distance to vLLM's log-probs shows it."""
    result = tmp_path / "result.json"
    run_script(
        "vllm_run.py", "--algorithm", "erpo", "--model", vllm_model_path, "--output_dir", tmp_path / "out",
        "--result", result, "--max_steps", 6, "--save_steps", 100, "--record_rows",
        "--erpo_logprob_temperature", "base", *EAGER,
    )  # fmt: skip
    rows = _rows_by_temperature(json.loads(result.read_text())["rows"])
    base = rows.pop(1.0)
    elevated = [row for temperature_rows in rows.values() for row in temperature_rows]
    assert elevated
    assert _mean(elevated, "logp_diff") > 10 * _mean(base, "logp_diff")
    assert _mean(elevated, "logp_diff") > 0.05
