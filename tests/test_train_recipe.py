# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""The training entry point, through the same `main` that `recipes/train.py` calls."""

import contextlib
import json
import traceback
import warnings
from pathlib import Path

import pytest
import torch

from zvp_trl.scripts.train import EMBEDDED_TRAINING_DEFAULTS, _datasets, main, make_parser


TINY_RUN = [
    "--max_steps", "2",
    "--embedded_warmup_steps", "5",
    "--embedded_num_train_prompts", "32",
    "--embedded_num_eval_prompts", "4",
    "--summary_num_samples", "2",
    "--per_device_train_batch_size", "8",
    "--num_generations", "4",
    "--max_completion_length", "12",
    "--logging_steps", "1",
    "--save_steps", "1",
]  # fmt: skip


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("ZVP_TRL_CACHE", str(tmp_path_factory.getbasetemp() / "zvp_cache"))


@pytest.mark.trainer
def test_two_step_grpo_run_writes_model_metrics_and_summary(tmp_path, capsys, monkeypatch):
    from accelerate import Accelerator

    # The run ends through Accelerator.end_training (trackers finished, process group torn down), after the summary.
    ended = []
    end_training = Accelerator.end_training
    monkeypatch.setattr(
        Accelerator,
        "end_training",
        lambda self: (ended.append((tmp_path / "summary.json").is_file()), end_training(self))[1],
    )
    summary = main([*TINY_RUN, "--algorithm", "grpo", "--output_dir", str(tmp_path)])
    assert ended == [True]
    assert summary["algorithm"] == "grpo" and summary["global_steps"] == 2
    for name in ("model.safetensors", "config.json", "tokenizer.json", "trainer_state.json", "summary.json"):
        assert (tmp_path / name).is_file(), name
    assert (tmp_path / "checkpoint-2" / "trainer_state.json").is_file()
    history = json.loads((tmp_path / "trainer_state.json").read_text())["log_history"]
    logged = [entry for entry in history if "frac_reward_zero_std" in entry]
    assert len(logged) == 2 and all(0.0 <= e["frac_reward_zero_std"] <= 1.0 for e in logged)
    assert all("rewards/accuracy_reward/mean" in e for e in logged)
    on_disk = json.loads((tmp_path / "summary.json").read_text())
    build_info = json.loads((Path(summary["model"]) / "build_info.json").read_text())
    assert on_disk["base_model_sha256"] == build_info["weights_sha256"]  # which build of the base model this run used
    # Where it ran: the kind of CPU a rerun must match to reproduce it bit for bit.
    assert on_disk["machine"]["instruction_set"] and on_disk["machine"]["torch"] == torch.__version__
    for key in ("heldout_before", "heldout_after"):
        stats = on_disk[key]
        assert stats["num_prompts"] == 4
        assert stats["frac_all_correct"] + stats["frac_all_wrong"] + stats["frac_mixed"] == pytest.approx(1.0)
    out = capsys.readouterr().out
    assert f"summary: {(tmp_path / 'summary.json').resolve()}" in out
    # The dynamics plot is on by default and sits next to the model.
    assert (tmp_path / "training_dynamics.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"plot:    {(tmp_path / 'training_dynamics.png').resolve()}" in out


@contextlib.contextmanager
def future_warnings():
    """Yields the (file, message start) of the code that called into each FutureWarning of the block: the frame just
    outside the module that issued the warning."""
    callers = []

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, FutureWarning):
            frames = [
                f for f in traceback.extract_stack()[:-1] if not f.filename.endswith(("warnings.py", "contextlib.py"))
            ]
            issuing = max(i for i, f in enumerate(frames) if f.filename == filename)
            caller = frames[issuing - 1].filename if issuing > 0 else filename
            callers.append((caller, str(message).split(" is deprecated")[0] + " is deprecated"))

    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = show
        yield callers


@pytest.mark.trainer
def test_default_algorithm_is_rl_zvp_and_logs_its_metrics(tmp_path):
    with future_warnings() as callers:
        summary = main([*TINY_RUN, "--output_dir", str(tmp_path)])
    # No deprecation from zvp_trl's code on the way (transformers 5.25 deprecates `gradient_checkpointing`): every
    # FutureWarning of the run comes from a call in another library (TRL 1.16 reads `is_gradient_checkpointing` when it
    # unwraps the model for generation).
    assert callers and not [c for c in callers if "/zvp_trl/" in c[0] or "/recipes/" in c[0]], callers
    assert {(Path(f).parent.name, m) for f, m in callers} == {("models", "`is_gradient_checkpointing` is deprecated")}
    assert summary["algorithm"] == "rl_zvp" and summary["global_steps"] == 2
    history = json.loads((tmp_path / "trainer_state.json").read_text())["log_history"]
    logged = [entry for entry in history if "loss" in entry]
    assert len(logged) == 2
    for key in ("zvp/frac_zv_positive", "zvp/frac_zv_negative", "zvp/entropy_max_mean", "rollouts/total"):
        assert all(key in entry for entry in logged), key
    assert [entry["rollouts/total"] for entry in logged] == [8.0, 16.0]
    assert (tmp_path / "checkpoint-2" / "zvp_state.json").is_file()


@pytest.mark.trainer
def test_erpo_rl_zvp_runs_from_the_recipe(tmp_path):
    summary = main([*TINY_RUN, "--algorithm", "erpo_rl_zvp", "--output_dir", str(tmp_path)])
    assert summary["algorithm"] == "erpo_rl_zvp" and summary["global_steps"] == 2
    assert summary["rollouts"] == {"total": 16, "kept": 16}
    history = json.loads((tmp_path / "trainer_state.json").read_text())["log_history"]
    logged = [entry for entry in history if "loss" in entry]
    for key in ("erpo/temperature_max", "erpo/frac_elevated", "zvp/frac_zv_positive"):
        assert all(key in entry for entry in logged), key
    assert all(1.0 <= entry["erpo/temperature_max"] <= 1.5 for entry in logged)
    state = json.loads((tmp_path / "checkpoint-2" / "zvp_state.json").read_text())
    assert set(state) == {"rollouts", "erpo_history", "written_by"}
    # The run's prompt options, in output_dir and in each checkpoint (recipes/evaluate.py reads them back).
    options = {"prompt_template": None, "conversational": False, "system_prompt": None, "fewshot_examples": None}
    for folder in (tmp_path, tmp_path / "checkpoint-1", tmp_path / "checkpoint-2"):
        assert json.loads((folder / "prompt.json").read_text()) == options, folder


@pytest.mark.unit
def test_yaml_config_selects_algorithm_and_rejects_unknown_keys(tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text("algorithm: grpo\nlearning_rate: 3.0e-6\nnum_generations: 4\n")
    parser, name, embedded = make_parser(["--config", str(good)])
    assert name == "grpo" and embedded
    script_args, training_args, _ = parser.parse_args_and_config(["--config", str(good), "--output_dir", "x"])
    assert script_args.algorithm == "grpo"
    assert training_args.learning_rate == 3e-6  # YAML beats the embedded default
    assert training_args.per_device_train_batch_size == EMBEDDED_TRAINING_DEFAULTS["per_device_train_batch_size"]
    bad = tmp_path / "bad.yaml"
    bad.write_text("algorithm: grpo\nlearning_rat: 3.0e-6\n")
    parser, _, _ = make_parser(["--config", str(bad)])
    with pytest.raises(ValueError, match="learning_rat"):
        parser.parse_args_and_config(["--config", str(bad)])


@pytest.mark.unit
def test_command_line_overrides_embedded_defaults():
    parser, _, _ = make_parser([])
    _, training_args, _ = parser.parse_args_and_config(["--max_steps", "7", "--output_dir", "elsewhere"])
    assert training_args.max_steps == 7 and training_args.output_dir == "elsewhere"
    _, training_args, _ = parser.parse_args_and_config([])
    assert training_args.max_steps == EMBEDDED_TRAINING_DEFAULTS["max_steps"]
    assert training_args.output_dir == "outputs/embedded-rl_zvp"  # RL-ZVP is the default algorithm


@pytest.mark.unit
def test_prompt_options_from_the_command_line():
    """--fewshot_examples (JSON) and --system_prompt reach the training prompts; bad values are refused by name."""
    parser, _, _ = make_parser([])
    argv = ["--dataset_name", "embedded", "--conversational", "true", "--system_prompt", "Be brief."]
    argv += ["--fewshot_examples", '[["What is 25+17?", "\\\\boxed{42}"]]', "--embedded_num_train_prompts", "4"]
    script_args, _, _ = parser.parse_args_and_config(argv)
    assert script_args.fewshot_examples == [("What is 25+17?", "\\boxed{42}")]
    train, heldout = _datasets(script_args, embedded=True)
    for prompt in (train[0]["prompt"], heldout[0]["prompt"]):
        assert [m["role"] for m in prompt] == ["system", "user", "assistant", "user"]
        assert prompt[0]["content"] == "Be brief." and prompt[1]["content"].startswith("What is 25+17?\n")
        assert prompt[2]["content"] == "\\boxed{42}" and prompt[3]["content"].startswith("What is ")
    # Plain (base-model) prompts get the example as text before the question.
    script_args, _, _ = parser.parse_args_and_config(["--dataset_name", "embedded", *argv[6:]])
    train, _ = _datasets(script_args, embedded=True)
    assert train[0]["prompt"].startswith("What is 25+17?\n") and "\\boxed{42}\n\nWhat is " in train[0]["prompt"]
    with pytest.raises(ValueError, match="fewshot_examples must be a JSON list"):
        parser.parse_args_and_config(["--fewshot_examples", "[[What is 1+1?, 2]]"])
    with pytest.raises(ValueError, match=r"fewshot_examples: examples\[0\] must be a \[question, answer\] pair"):
        parser.parse_args_and_config(["--fewshot_examples", '[["What is 1+1?"]]'])
    with pytest.raises(ValueError, match="system_prompt needs conversational=true"):
        parser.parse_args_and_config(["--system_prompt", "Be brief."])


@pytest.mark.unit
def test_embedded_min_ops_and_max_operand_reach_the_splits_and_are_validated():
    parser, _, _ = make_parser([])
    argv = ["--embedded_max_ops", "10", "--embedded_min_ops", "10", "--embedded_num_train_prompts", "16"]
    script_args, _, _ = parser.parse_args_and_config([*argv, "--embedded_num_eval_prompts", "8"])
    train, heldout = _datasets(script_args, embedded=True)
    assert set(train["num_ops"]) == set(heldout["num_ops"]) == {10} and (len(train), len(heldout)) == (16, 8)
    with pytest.raises(ValueError, match=r"embedded_min_ops must be between 1 and embedded_max_ops \(9\)"):
        parser.parse_args_and_config(["--embedded_min_ops", "10"])
    script_args, _, _ = parser.parse_args_and_config(
        ["--embedded_max_operand", "500", "--embedded_num_eval_prompts", "64"]
    )
    _, heldout = _datasets(script_args, embedded=True)
    operands = [int(x) for p in heldout["prompt"] for x in p[3:-5].replace("-", "+").split("+")]
    assert max(operands) > 100 and min(operands) >= 0 and max(operands) <= 500
    with pytest.raises(ValueError, match="embedded_max_operand must be >= 1"):
        parser.parse_args_and_config(["--embedded_max_operand", "0"])


@pytest.mark.unit
def test_unknown_algorithm_names_the_choices():
    with pytest.raises(ValueError, match="Unknown algorithm 'nope'.*grpo"):
        make_parser(["--algorithm", "nope"])


@pytest.mark.unit
def test_help_lists_the_algorithm_fields(capsys):
    parser, _, _ = make_parser(["--algorithm", "grpo"])
    with pytest.raises(SystemExit):
        parser.parse_args_and_config(["--help"])
    out = capsys.readouterr().out
    for flag in ("--algorithm", "--num_generations", "--epsilon_high", "--model_name_or_path", "--reward_funcs"):
        assert flag in out


@pytest.mark.unit
@pytest.mark.parametrize("algorithm", ["greso", "erpo+rl_zvp"])
def test_help_shows_the_methods_own_fields_first(algorithm, capsys):
    """`recipes/train.py --algorithm X --help`: X's own fields, with their defaults and help, before argparse's
    ~1,500 lines of every GRPOConfig field."""
    with pytest.raises(SystemExit) as exit_info:
        main(["--algorithm", algorithm, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    first_own = {"greso": "--greso_p_easy (default: 0.5)", "erpo+rl_zvp": "--erpo_temperature_step (default: 0.1)"}
    assert out.startswith(f"recipes/train.py --algorithm {algorithm}: the method's own fields")
    assert out.index(first_own[algorithm]) < out.index("--per_device_train_batch_size")
    assert out.index("--init_from_probe (default: None)") < out.index("--per_device_train_batch_size")
    if algorithm == "erpo+rl_zvp":
        assert out.index("--zvp_alpha (default: 0.1)") < out.index("--per_device_train_batch_size")


@pytest.mark.unit
def test_model_without_dataset_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="--dataset_name is required"):
        main(
            [
                "--model_name_or_path",
                str(tmp_path),
                "--output_dir",
                str(tmp_path / "out"),
                "--use_cpu",
                "true",
                "--bf16",
                "false",
            ]
        )


@pytest.mark.trainer
def test_unknown_reward_function_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="Unknown reward function 'acuracy'"):
        main([*TINY_RUN, "--reward_funcs", "acuracy", "--output_dir", str(tmp_path)])


@pytest.mark.trainer
def test_benchmark_callback_logs_eval_metrics_during_training(tmp_path):
    main(
        [
            *TINY_RUN,
            "--output_dir",
            str(tmp_path),
            "--benchmark_eval",
            "embedded",
            "--benchmark_eval_steps",
            "1",
            "--benchmark_eval_limit",
            "2",
            "--benchmark_eval_k",
            "2",
            "--embedded_num_eval_prompts",
            "0",
        ]
    )
    history = json.loads((tmp_path / "trainer_state.json").read_text())["log_history"]
    evals = [entry for entry in history if "eval/embedded/acc@2" in entry]
    assert [entry["step"] for entry in evals] == [1, 2]
    # The embedded problems are asked as training asked them (plain prompts), not in the papers' template.
    records = [json.loads(line) for line in (tmp_path / "benchmark_eval" / "step-2" / "embedded.jsonl").open()]
    assert records and all(r["prompt"] == r["question"] and r["prompt"].startswith("Q: ") for r in records)
    assert all(0.0 <= entry["eval/embedded/pass@2"] <= 1.0 for entry in evals)
    selection = json.loads((tmp_path / "benchmark_selection.json").read_text())
    assert selection["embedded"]["mode"] == "final" and selection["embedded"]["step"] == 2
    assert (tmp_path / "benchmark_eval" / "step-2" / "embedded.jsonl").is_file()


@pytest.mark.unit
@pytest.mark.parametrize(
    "algorithm, field",
    [("erpo", "erpo_max_temperature"), ("erpo_rl_zvp", "zvp_alpha"), ("grpo_ds", "ds_max_generation_rounds"),
     ("greso", "greso_p_easy"), ("grpo", "max_rollouts"), ("exgrpo", "exgrpo_replay_ratio"),
     ("exgrpo_rl_zvp", "zvp_alpha")],
)  # fmt: skip
def test_every_algorithm_is_selectable_with_its_own_fields(algorithm, field):
    parser, name, _ = make_parser(["--algorithm", algorithm])
    script_args, training_args, _ = parser.parse_args_and_config(["--algorithm", algorithm, "--max_rollouts", "64"])
    assert name == script_args.algorithm == algorithm
    assert hasattr(training_args, field) and training_args.max_rollouts == 64


@pytest.mark.trainer
def test_same_seed_gives_identical_log_histories(tmp_path):
    timing = ("runtime", "per_second", "time", "total_flos")

    def history(out):
        main([*TINY_RUN, "--max_steps", "3", "--output_dir", str(out)])
        entries = json.loads((out / "trainer_state.json").read_text())["log_history"]
        return [{k: v for k, v in e.items() if not any(t in k for t in timing)} for e in entries]

    first, second = history(tmp_path / "a"), history(tmp_path / "b")
    assert len([e for e in first if "loss" in e]) == 3
    # every logged value (compared as JSON text, so NaN equals NaN): rewards, losses, entropies, ZV fractions
    assert json.dumps(first) == json.dumps(second)
    # and a different seed does change them (the comparison above can fail)
    main(
        [*TINY_RUN, "--max_steps", "3", "--seed", "1", "--dynamics_plot", "false", "--output_dir", str(tmp_path / "c")]
    )
    assert (
        not (tmp_path / "c" / "training_dynamics.png").exists() and (tmp_path / "a" / "training_dynamics.png").exists()
    )
    third = json.loads((tmp_path / "c" / "trainer_state.json").read_text())["log_history"]
    assert [e.get("loss") for e in third] != [e.get("loss") for e in first]
