# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""Crash and resume: a run SIGKILLed partway and resumed from its last complete checkpoint ends with exactly the
per-prompt state, logs and weights of the uninterrupted run, for every stateful trainer."""

import hashlib
import json
import math
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from zvp_trl.core.checkpoints import is_complete_checkpoint, last_complete_checkpoint
from zvp_trl.methods.exgrpo.buffer import BUFFER_FILE, ExperienceBuffer


SCRIPT = Path(__file__).parent / "scripts" / "resume_run.py"
STATEFUL = ["erpo", "erpo_rl_zvp", "erpo_ds", "grpo_ds", "greso", "exgrpo", "exgrpo_rl_zvp"]
# Wall-clock values differ between runs; everything else logged must not.
TIMING_KEYS = ("runtime", "per_second", "time", "total_flos")


def launch(*args, expect_killed=False):
    result = subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=600)
    if expect_killed:
        assert result.returncode == -9, result.stderr[-3000:]  # SIGKILL, not a Python error
    else:
        assert result.returncode == 0, result.stderr[-3000:]


def state(checkpoint: Path) -> dict:
    return json.loads((checkpoint / "zvp_state.json").read_text())


def buffer_file(checkpoint: Path) -> bytes | None:
    """The ExGRPO buffer file of a checkpoint (None when there is none), checked against zvp_state.json's summary."""
    path = checkpoint / BUFFER_FILE
    if not path.exists():
        return None
    data = path.read_bytes()
    assert hashlib.sha256(data).hexdigest() == state(checkpoint)["exgrpo_buffer"]["sha256"]
    return data


def log_after(checkpoint: Path, step: int) -> list[dict]:
    history = json.loads((checkpoint / "trainer_state.json").read_text())["log_history"]
    return [
        {k: v for k, v in entry.items() if not any(t in k for t in TIMING_KEYS)}
        for entry in history
        if entry["step"] > step
    ]


def same_floats(a, b) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same_floats(a[k], b[k]) for k in a)
    if isinstance(a, float) and math.isnan(a):
        return isinstance(b, float) and math.isnan(b)
    return a == b


@pytest.mark.distributed
@pytest.mark.parametrize("algorithm", STATEFUL)
def test_killed_mid_step_resumes_to_the_uninterrupted_run(tiny_model_path, tmp_path, algorithm):
    run, reference = tmp_path / "run", tmp_path / "reference"
    common = ["--algorithm", algorithm, "--model", tiny_model_path, "--max_steps", "6"]
    launch(*common, "--output_dir", str(run), "--kill_at", "4", "--kill_in", "generation", expect_killed=True)
    assert sorted(p.name for p in run.glob("checkpoint-*")) == ["checkpoint-1", "checkpoint-2", "checkpoint-3"]
    launch(*common, "--output_dir", str(run), "--resume", "--reference", str(reference))

    # The per-prompt state the resumed run started from is the uninterrupted run's at step 3, and after 3 more
    # steps (temperatures, skips, buffer draws made from it) it is again identical, bit for bit.
    assert state(run / "checkpoint-3") == state(reference / "checkpoint-3")
    final, expected = state(run / "checkpoint-6"), state(reference / "checkpoint-6")
    assert final == expected
    assert final != state(reference / "checkpoint-3")  # the state moved after the resume point
    # ExGRPO's buffer is in a file of its own: the same bytes (the summaries above hold their SHA-256).
    for name in ("checkpoint-3", "checkpoint-6"):
        assert buffer_file(run / name) == buffer_file(reference / name)
        assert (buffer_file(run / name) is not None) == algorithm.startswith("exgrpo")
    resumed_logs = log_after(run / "checkpoint-6", 3)
    assert len(resumed_logs) == 3 and same_floats(resumed_logs, log_after(reference / "checkpoint-6", 3))
    weights, expected_weights = (
        load_file(run / "checkpoint-6" / "model.safetensors"),
        load_file(reference / "checkpoint-6" / "model.safetensors"),
    )
    assert all(torch.equal(weights[k], expected_weights[k]) for k in expected_weights)


def assert_same_run_from(run: Path, reference: Path, resumed_from: int, last: int) -> None:
    """The resumed run ends with the uninterrupted run's state, buffer file, logs and weights."""
    final = state(run / f"checkpoint-{last}")
    assert final == state(reference / f"checkpoint-{last}")
    assert buffer_file(run / f"checkpoint-{last}") == buffer_file(reference / f"checkpoint-{last}") is not None
    resumed_logs = log_after(run / f"checkpoint-{last}", resumed_from)
    assert len(resumed_logs) == last - resumed_from
    assert same_floats(resumed_logs, log_after(reference / f"checkpoint-{last}", resumed_from))
    weights = load_file(run / f"checkpoint-{last}" / "model.safetensors")
    expected_weights = load_file(reference / f"checkpoint-{last}" / "model.safetensors")
    assert all(torch.equal(weights[k], expected_weights[k]) for k in expected_weights)


@pytest.mark.slow
@pytest.mark.distributed
def test_realistic_buffer_killed_mid_step_resumes_bit_identically(tiny_model_path, tmp_path):
    # 64 extra questions x 8 trajectories x 2,048 tokens (1M tokens, an 8 MB buffer file) on top of what training
    # collects; their groups are drawn and replayed (2,048-token rows) like the others.
    run, reference = tmp_path / "run", tmp_path / "reference"
    common = ["--algorithm", "exgrpo", "--model", tiny_model_path, "--max_steps", "6", "--prefill_buffer", "64,2048"]
    launch(*common, "--output_dir", str(run), "--kill_at", "4", "--kill_in", "generation", expect_killed=True)
    launch(*common, "--output_dir", str(run), "--resume", "--reference", str(reference))
    saved = state(run / "checkpoint-3")
    assert saved == state(reference / "checkpoint-3")
    assert saved["exgrpo_buffer"]["tokens"] >= 64 * 8 * 2048 and saved["exgrpo_buffer"]["prompts"] >= 64
    assert (run / "checkpoint-3" / BUFFER_FILE).stat().st_size > 8 * 64 * 8 * 2048  # int32 id + float32 log-prob
    assert (run / "checkpoint-3" / "zvp_state.json").stat().st_size < 2000  # the summary only
    assert buffer_file(run / "checkpoint-3") == buffer_file(reference / "checkpoint-3")
    assert_same_run_from(run, reference, 3, 6)
    assert state(run / "checkpoint-6")["exgrpo_phase"]["draws"] == 6  # every step replayed
    assert state(run / "checkpoint-6") != saved


@pytest.mark.slow
@pytest.mark.distributed
def test_killed_while_writing_the_buffer_resumes_from_the_checkpoint_before(tiny_model_path, tmp_path):
    run, reference = tmp_path / "run", tmp_path / "reference"
    # A 2 MB buffer file; the process is killed once 1 MB of checkpoint-3's is written.
    common = ["--algorithm", "exgrpo", "--model", tiny_model_path, "--max_steps", "5", "--prefill_buffer", "16,2048"]
    launch(*common, "--output_dir", str(run), "--kill_at", "3", "--kill_in", "buffer_save", expect_killed=True)
    checkpoint = run / "checkpoint-3"
    partial = checkpoint / (BUFFER_FILE + ".tmp")
    assert (checkpoint / "model.safetensors").is_file() and (checkpoint / "optimizer.pt").is_file()
    assert 1 << 20 <= partial.stat().st_size < (run / "checkpoint-2" / BUFFER_FILE).stat().st_size
    assert not (checkpoint / BUFFER_FILE).exists() and not (checkpoint / "zvp_state.json").exists()
    assert not is_complete_checkpoint(str(checkpoint))
    with pytest.warns(UserWarning, match="checkpoint-3"):
        assert last_complete_checkpoint(str(run)) == str(run / "checkpoint-2")
    launch(*common, "--output_dir", str(run), "--resume", "--reference", str(reference))
    assert not partial.exists() and is_complete_checkpoint(str(checkpoint))  # rewritten by the resumed run
    assert state(checkpoint) == state(reference / "checkpoint-3")
    assert_same_run_from(run, reference, 2, 5)


@pytest.mark.distributed
def test_checkpoint_with_the_buffer_inline_in_json_resumes(tiny_model_path, tmp_path):
    """Checkpoints written before the binary buffer file held the buffer as lists in zvp_state.json: they resume to
    the same run."""
    run, reference = tmp_path / "run", tmp_path / "reference"
    common = ["--algorithm", "exgrpo", "--model", tiny_model_path, "--max_steps", "6"]
    launch(*common, "--output_dir", str(run), "--kill_at", "4", "--kill_in", "generation", expect_killed=True)
    # Rewrite checkpoint-3 in the earlier layout: the buffer as JSON lists in zvp_state.json, no buffer file.
    checkpoint = run / "checkpoint-3"
    saved = state(checkpoint)
    buffer = ExperienceBuffer()
    assert buffer.load(str(checkpoint)) == saved["exgrpo_buffer"]
    inline = json.loads(json.dumps(buffer.contents()))
    entries = inline["entries"]
    assert entries and all(isinstance(t["ids"], list) for _, entry in entries for t in entry["trajectories"])
    (checkpoint / "zvp_state.json").write_text(json.dumps({**saved, "exgrpo_buffer": inline}))
    (checkpoint / BUFFER_FILE).unlink()
    launch(*common, "--output_dir", str(run), "--resume", "--reference", str(reference))
    assert not (checkpoint / BUFFER_FILE).exists()  # resumed from it, not rewritten
    assert saved == state(reference / "checkpoint-3")
    assert_same_run_from(run, reference, 3, 6)


@pytest.mark.distributed
def test_killed_while_saving_resumes_from_the_checkpoint_before(tiny_model_path, tmp_path):
    run, reference = tmp_path / "run", tmp_path / "reference"
    common = ["--algorithm", "erpo", "--model", tiny_model_path, "--max_steps", "5"]
    launch(*common, "--output_dir", str(run), "--kill_at", "3", "--kill_in", "save", expect_killed=True)
    # checkpoint-3 exists with its weights but nothing after them; the resume must skip it.
    assert (run / "checkpoint-3" / "model.safetensors").is_file()
    assert not is_complete_checkpoint(str(run / "checkpoint-3"))
    with pytest.warns(UserWarning, match="checkpoint-3"):
        assert last_complete_checkpoint(str(run)) == str(run / "checkpoint-2")
    launch(*common, "--output_dir", str(run), "--resume", "--reference", str(reference))
    assert state(run / "checkpoint-5") == state(reference / "checkpoint-5")
    assert is_complete_checkpoint(str(run / "checkpoint-3"))  # rewritten by the resumed run


@pytest.mark.unit
def test_last_complete_checkpoint(tmp_path):
    assert last_complete_checkpoint(str(tmp_path / "missing")) is None
    for step, files in {2: ["trainer_state.json", "zvp_state.json"], 10: ["trainer_state.json"], 7: []}.items():
        folder = tmp_path / f"checkpoint-{step}"
        folder.mkdir()
        for name in files:
            (folder / name).write_text("{}")
    (tmp_path / "checkpoint-11").mkdir()
    (tmp_path / "checkpoint-11" / "trainer_state.json").write_text('{"log_hist')  # cut off mid-write
    (tmp_path / "checkpoint-11" / "zvp_state.json").write_text("{}")
    (tmp_path / "checkpoint-99.tmp").mkdir()  # not a checkpoint folder name
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert last_complete_checkpoint(str(tmp_path)) == str(tmp_path / "checkpoint-2")  # numeric, not lexical
    assert sorted(str(w.message).split(":")[0].rsplit("-", 1)[1] for w in caught) == ["10", "11", "7"]
    assert last_complete_checkpoint(str(tmp_path), require_state=False) == str(tmp_path / "checkpoint-10")


@pytest.mark.trainer
def test_resume_true_without_a_complete_checkpoint_is_a_clear_error(tiny_model_path, tmp_path):
    from datasets import Dataset

    from zvp_trl import RLZVPConfig, RLZVPTrainer

    args = RLZVPConfig(
        output_dir=str(tmp_path), use_cpu=True, report_to="none", per_device_train_batch_size=4, num_generations=4
    )
    trainer = RLZVPTrainer(
        model=tiny_model_path,
        reward_funcs=lambda completions, **kw: [0.0] * len(completions),
        args=args,
        train_dataset=Dataset.from_dict({"prompt": ["Q:1+1=?\nA:"] * 4}),
    )
    with pytest.raises(ValueError, match="no complete checkpoint"):
        trainer.train(resume_from_checkpoint=True)


@pytest.mark.trainer
def test_checkpoint_of_another_algorithm_is_refused(tiny_model_path, tmp_path):
    from datasets import Dataset

    from zvp_trl import ERPOConfig, ERPOTrainer

    checkpoint = tmp_path / "checkpoint-1"
    checkpoint.mkdir()
    (checkpoint / "zvp_state.json").write_text(json.dumps({"rollouts": {"total": 8, "kept": 8}}))
    args = ERPOConfig(
        output_dir=str(tmp_path), use_cpu=True, report_to="none", per_device_train_batch_size=4, num_generations=4
    )
    trainer = ERPOTrainer(
        model=tiny_model_path,
        reward_funcs=lambda completions, **kw: [0.0] * len(completions),
        args=args,
        train_dataset=Dataset.from_dict({"prompt": ["Q:1+1=?\nA:"] * 4}),
    )
    trainer.create_optimizer_and_scheduler(num_training_steps=1)
    with pytest.raises(ValueError, match="erpo_history.*different algorithm|different algorithm"):
        trainer._load_optimizer_and_scheduler(str(checkpoint))


@pytest.mark.trainer
@pytest.mark.parametrize(
    "written_by, resumed_with",
    [("rl_zvp", "grpo"), ("grpo", "rl_zvp"), ("erpo", "grpo"), ("erpo+rl_zvp", "erpo"), ("erpo", "erpo+rl_zvp")],
)
def test_a_checkpoint_resumes_only_into_the_algorithm_that_wrote_it(
    written_by, resumed_with, tiny_model_path, tmp_path
):
    """The checkpoint names the trainer and method parts that wrote it. A different method is refused even where the
    resuming trainer finds every state it needs (RL-ZVP keeps none; ERPO's history is a superset of GRPO's state); the
    same method resumes, its name spelled in either order. A checkpoint written before the writer was recorded is
    refused only for a state it lacks."""
    from datasets import Dataset

    from zvp_trl.core.composition import get_algorithm

    def trainer_of(algorithm, output_dir):
        config_class, trainer_class = get_algorithm(algorithm).load()
        args = config_class(
            output_dir=str(output_dir), use_cpu=True, report_to="none", per_device_train_batch_size=4,
            num_generations=4, max_completion_length=4, max_steps=1, save_strategy="steps", save_steps=1,
        )  # fmt: skip
        return trainer_class(
            model=tiny_model_path,
            reward_funcs=lambda completions, **kw: [float(i % 2) for i in range(len(completions))],
            args=args,
            train_dataset=Dataset.from_dict({"prompt": ["Q:1+1=?\nA:"] * 4}),
        )

    trainer_of(written_by, tmp_path / "written").train()
    checkpoint = str(tmp_path / "written" / "checkpoint-1")
    resuming = trainer_of(resumed_with, tmp_path / "resumed")
    resuming.create_optimizer_and_scheduler(num_training_steps=1)
    with pytest.raises(ValueError, match=r"was written by .*Trainer \(method parts: .*another method"):
        resuming._load_optimizer_and_scheduler(checkpoint)
    state_file = Path(checkpoint) / "zvp_state.json"
    state = json.loads(state_file.read_text())
    state.pop("written_by")
    state_file.write_text(json.dumps(state))
    if set(resuming._checkpointed_state) <= set(state):  # an earlier checkpoint: only a missing state shows
        resuming._load_optimizer_and_scheduler(checkpoint)
    else:
        with pytest.raises(ValueError, match="different algorithm"):
            resuming._load_optimizer_and_scheduler(checkpoint)
    if "+" in written_by:  # the same combination, named in the other order
        same = trainer_of("+".join(reversed(written_by.split("+"))), tmp_path / "same")
        same.create_optimizer_and_scheduler(num_training_steps=1)
        same._load_optimizer_and_scheduler(checkpoint)
        assert same.rollouts.total == 4


@pytest.mark.trainer
@pytest.mark.parametrize("algorithm", ["erpo", "exgrpo"])
def test_save_only_model_checkpoints_keep_the_per_prompt_state(algorithm, tiny_model_path, tmp_path):
    """With `save_only_model=True` transformers saves no optimizer (and skips the hook that writes zvp_state.json);
    the per-prompt state is saved with the model all the same, and a resume restores it (with a fresh optimizer, as
    transformers resumes such a checkpoint)."""
    import re

    from datasets import Dataset

    from zvp_trl import get_algorithm

    def by_prompt(prompts, completions, **kwargs):  # question 0, 3: all right; 1, 4: all wrong; 2, 5: mixed
        questions = [int(re.search(r"Q: (\d+)", p).group(1)) for p in prompts]
        return [1.0 if q % 3 == 0 else 0.0 if q % 3 == 1 else float(i % 2 == 0) for i, q in enumerate(questions)]

    config_class, trainer_class = get_algorithm(algorithm).load()
    method = {"exgrpo_start_threshold": None} if algorithm == "exgrpo" else {}

    def build(max_steps):
        args = config_class(
            output_dir=str(tmp_path), use_cpu=True, bf16=False, report_to="none", per_device_train_batch_size=6,
            num_generations=2, max_completion_length=4, max_steps=max_steps, save_strategy="steps", save_steps=1,
            save_only_model=True, seed=0, **method,
        )  # fmt: skip
        dataset = Dataset.from_dict({"prompt": [f"Q: {i}+1=?\nA:" for i in range(6)]})
        return trainer_class(tiny_model_path, by_prompt, args=args, train_dataset=dataset)

    trainer = build(max_steps=2)
    trainer.train()
    for step in (1, 2):
        checkpoint = tmp_path / f"checkpoint-{step}"
        assert not (checkpoint / "optimizer.pt").exists()
        assert is_complete_checkpoint(str(checkpoint)), sorted(p.name for p in checkpoint.iterdir())
        assert state(checkpoint)["rollouts"]["total"] == 6 * step  # 6 completions per step
    final = {name: obj.state_dict() for name, obj in trainer._checkpointed_state.items()}
    final["written_by"] = {"trainer": type(trainer).__name__, "parts": trainer.part_names}
    assert json.loads(json.dumps(final)) == state(tmp_path / "checkpoint-2")  # the buffer's entry: its file's summary
    if algorithm == "erpo":
        assert state(tmp_path / "checkpoint-1")["erpo_history"] != {}  # questions 0 and 3 came back all-correct
    else:
        assert buffer_file(tmp_path / "checkpoint-1") is not None  # the mixed questions' correct trajectories
        assert state(tmp_path / "checkpoint-1")["exgrpo_buffer"]["trajectories"] > 0

    # What a resume loads (the hook transformers calls with the checkpoint): exactly the checkpoint's state.
    resumed = build(max_steps=2)
    resumed.create_optimizer_and_scheduler(num_training_steps=2)
    resumed._load_optimizer_and_scheduler(str(tmp_path / "checkpoint-1"))
    restored = {name: obj.state_dict() for name, obj in resumed._checkpointed_state.items()}
    restored["written_by"] = final["written_by"]  # the same method wrote and resumes it
    assert json.loads(json.dumps(restored)) == state(tmp_path / "checkpoint-1") != state(tmp_path / "checkpoint-2")
    # A real resume from it trains the second step on top of the restored state.
    resumed = build(max_steps=2)
    resumed.train(resume_from_checkpoint=str(tmp_path / "checkpoint-1"))
    assert resumed.state.global_step == 2 and resumed.rollouts.total == 12
