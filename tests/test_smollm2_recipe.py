# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""The CPU recipes on a real pretrained chat model (SmolLM2-135M-Instruct, offline copy):
`recipes/smollm2_cpu_rl_zvp.yaml` and `recipes/smollm2_cpu_grpo.yaml`.

- Both parse with the training script's real parser (every key lands in a field with the YAML's value), name the
  offline SmolLM2 and the embedded arithmetic prompts as chat messages, and differ only in `algorithm` and
  `output_dir`.
- The held-out prompts of the before/after evaluation are not training prompts.
- The recipe itself (every setting: batch, G, lengths, bf16 autocast on CPU, chat prompts, held-out evaluation) runs
  one real training step with the model swapped for the tiny fixture model, given a ChatML chat template, so that the
  chat-template path runs too. The full runs on SmolLM2 (about 30 minutes each) are not part of the tests.
"""

import dataclasses
import json
import shutil
import sys
from pathlib import Path

import pytest
import torch
import yaml

from zvp_trl.models.smollm2 import SMOLLM2_OFFLINE_NAME
from zvp_trl.scripts import train as train_script


REPO = Path(__file__).resolve().parents[1]
RL_ZVP = REPO / "recipes" / "smollm2_cpu_rl_zvp.yaml"
GRPO = REPO / "recipes" / "smollm2_cpu_grpo.yaml"
RECIPES = {"rl_zvp": RL_ZVP, "grpo": GRPO}
PROMPT_TEMPLATE = "{question}\nPut your final answer within \\boxed{}."
# The one worked example before every question: operands outside the task's 0..20, so it answers no task prompt.
EXAMPLE = ("What is 25+17?", "25+17 = 42. The answer is \\boxed{42}.")

# ChatML, the format of SmolLM2-Instruct's template (without its default system message, to keep the tiny model's
# character-level prompts short).
CHATML_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def _value(x):
    if x == []:
        return "none"  # report_to: none is parsed into []
    return getattr(x, "value", x)  # enums (lr_scheduler_type, save_strategy, ...) as their YAML string


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("ZVP_TRL_CACHE", str(tmp_path_factory.getbasetemp() / "zvp_cache"))


@pytest.fixture
def one_thread(monkeypatch):
    """One intra-op thread: `main` raises a single CPU process to every core, which on shared cores makes a tiny
    model's run much slower."""
    threads = torch.get_num_threads()
    monkeypatch.setattr(train_script, "_use_all_cores_on_single_cpu_process", lambda: None)
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _parse(recipe: Path, *extra: str):
    argv = ["--config", str(recipe), *extra]
    parser, algorithm, embedded = train_script.make_parser(argv)
    script_args, training_args, model_args = parser.parse_args_and_config(argv)
    return algorithm, embedded, script_args, training_args, model_args


@pytest.mark.unit
@pytest.mark.parametrize("algorithm", list(RECIPES))
def test_recipe_is_parsed_by_the_training_parser_with_every_key(algorithm):
    recipe = RECIPES[algorithm]
    config = yaml.safe_load(recipe.read_text())
    parsed_algorithm, embedded, *parsed = _parse(recipe)
    assert parsed_algorithm == config["algorithm"] == algorithm and not embedded
    # Unknown keys would have raised; every key also lands in a field with the YAML's value and type.
    for key, value in config.items():
        holder = next(obj for obj in parsed if hasattr(obj, key))
        if key == "fewshot_examples":  # a JSON string in the YAML, read into (question, answer) pairs
            value = [tuple(pair) for pair in json.loads(value)]
        assert _value(getattr(holder, key)) == value, key
    script_args, args, model_args = parsed
    assert model_args.model_name_or_path == SMOLLM2_OFFLINE_NAME
    assert script_args.dataset_name == "embedded"  # the embedded arithmetic prompts, for any model
    assert script_args.conversational and script_args.prompt_template == PROMPT_TEMPLATE
    assert script_args.fewshot_examples == [EXAMPLE]
    assert script_args.reward_funcs == ["accuracy"]
    assert script_args.embedded_num_eval_prompts > 0 and script_args.summary_num_samples == 8
    # 8 prompts x G = 8 per optimizer step, generated once and used once; one pass over the training prompts.
    assert args.num_generations == 8 and args.generation_batch_size == 64
    assert args.per_device_train_batch_size * args.gradient_accumulation_steps == args.generation_batch_size
    assert args.steps_per_generation == args.gradient_accumulation_steps and args.num_iterations == 1
    assert script_args.embedded_num_train_prompts == args.max_steps * args.generation_batch_size // 8
    assert args.use_cpu and args.bf16 and not args.gradient_checkpointing and args.beta == 0.0
    assert args.seed == 42 and args.output_dir == f"outputs/smollm2-cpu-{algorithm}"
    header = recipe.read_text()
    assert f"--config recipes/{recipe.name}" in header and "python recipes/prepare_smollm2.py" in header


@pytest.mark.unit
def test_the_two_recipes_differ_only_in_algorithm_and_output_dir():
    rl_zvp, grpo = (yaml.safe_load(path.read_text()) for path in (RL_ZVP, GRPO))
    assert (rl_zvp.pop("algorithm"), grpo.pop("algorithm")) == ("rl_zvp", "grpo")
    assert rl_zvp.pop("output_dir") != grpo.pop("output_dir")
    assert rl_zvp == grpo
    # Parsed too: the same values in every shared field (the RL-ZVP config only adds its own zvp_* fields).
    _, _, script_zvp, args_zvp, model_zvp = _parse(RL_ZVP)
    _, _, script_grpo, args_grpo, model_grpo = _parse(GRPO)
    assert vars(model_zvp) == vars(model_grpo)
    assert {**vars(script_zvp), "algorithm": None} == {**vars(script_grpo), "algorithm": None}
    differing = {
        field.name
        for field in dataclasses.fields(args_grpo)
        if getattr(args_grpo, field.name) != getattr(args_zvp, field.name)
    }
    assert differing == {"output_dir"}, differing


@pytest.mark.unit
def test_held_out_prompts_are_chat_questions_never_trained_on():
    _, _, script_args, args, _ = _parse(RL_ZVP)
    train, heldout = train_script._datasets(script_args, embedded=False)
    assert len(train) == script_args.embedded_num_train_prompts
    assert 32 <= len(heldout) <= script_args.embedded_num_eval_prompts
    example_turns = [
        {"role": "user", "content": PROMPT_TEMPLATE.replace("{question}", EXAMPLE[0])},
        {"role": "assistant", "content": EXAMPLE[1]},
    ]
    for prompt in list(train["prompt"]) + list(heldout["prompt"]):
        assert len(prompt) == 3 and prompt[:2] == example_turns and prompt[2]["role"] == "user"
        question = prompt[2]["content"]
        assert question.startswith("What is ") and question.endswith("?\nPut your final answer within \\boxed{}.")
    questions = [prompt[2]["content"] for prompt in heldout["prompt"]]
    assert len(set(questions)) == len(questions)
    assert not set(questions) & {prompt[2]["content"] for prompt in train["prompt"]}
    assert example_turns[0]["content"] not in questions
    # The gold answers are the expressions' values (one operation on operands 0..20).
    for prompt, solution in zip(heldout["prompt"], heldout["solution"]):
        expression = prompt[2]["content"].removeprefix("What is ").split("?")[0]
        assert int(solution) == eval(expression) and expression.count("+") + expression.count("-") == 1


@pytest.fixture
def tiny_chat_model(tiny_model_path, tmp_path):
    """The tiny fixture model with a ChatML chat template (a copy: the session fixture stays untouched)."""
    from transformers import AutoTokenizer

    path = tmp_path / "tiny_chat_model"
    shutil.copytree(tiny_model_path, path)
    tokenizer = AutoTokenizer.from_pretrained(path)
    tokenizer.chat_template = CHATML_TEMPLATE
    tokenizer.save_pretrained(path)
    return str(path)


@pytest.mark.trainer
@pytest.mark.parametrize("algorithm", list(RECIPES))
def test_recipe_runs_one_real_step_with_the_tiny_model(algorithm, tiny_chat_model, tmp_path, one_thread):
    """The recipe as it is, with only the model (the tiny fixture model with a chat template), `max_steps` and
    `output_dir` overridden: chat prompts through TRL's chat-template path, bf16 autocast on CPU, the recipe's batch
    and lengths, and the held-out evaluation before and after."""
    recipe = RECIPES[algorithm]
    out = tmp_path / "out"
    argv = ["--config", str(recipe), "--model_name_or_path", tiny_chat_model, "--max_steps", "1"]
    summary = train_script.main([*argv, "--output_dir", str(out)])

    _, _, script_args, _, _ = _parse(recipe)
    _, heldout = train_script._datasets(script_args, embedded=False)
    assert summary["algorithm"] == algorithm and summary["global_steps"] == 1
    assert summary["model"] == tiny_chat_model and summary["dataset"] == "embedded"
    for when in ("heldout_before", "heldout_after"):
        result = summary[when]
        assert result["num_prompts"] == len(heldout) and 0.0 <= result["acc@8"] <= result["pass@8"] <= 1.0
        split = result["frac_all_correct"] + result["frac_all_wrong"] + result["frac_mixed"]
        assert split == pytest.approx(1.0)
    assert summary["rollouts"] == {"total": 64, "kept": 64}  # 8 prompts x G = 8
    assert json.loads((out / "summary.json").read_text())["global_steps"] == 1
    history = json.loads((out / "trainer_state.json").read_text())["log_history"]
    step = next(entry for entry in history if "loss" in entry)
    assert 0.0 <= step["frac_reward_zero_std"] <= 1.0 and step["completions/max_length"] <= 64
    # Every trainer logs the zero-variance split; only RL-ZVP logs its advantages and entropies.
    assert "zvp/frac_zv_positive" in step and "zvp/frac_zv_negative" in step
    assert ("zvp/entropy_max_mean" in step) == (algorithm == "rl_zvp")
    assert (out / "model.safetensors").is_file() and (out / "chat_template.jinja").is_file()
    # recipes/evaluate.py asks the trained model the way it was trained, with no prompt option given: the recipe's
    # chat messages with its worked example, the embedded problems as questions (it dropped the example before).
    from transformers import AutoTokenizer

    from zvp_trl.data.math_datasets import BOXED_PROMPT_TEMPLATE, format_prompt
    from zvp_trl.evaluation.accuracy import render_for_generation
    from zvp_trl.evaluation.benchmark_eval import EvaluationArguments, _Generator, with_training_prompt

    assert json.loads((out / "prompt.json").read_text())["conversational"] is True
    tokenizer = AutoTokenizer.from_pretrained(out)
    for model_folder in (out, out / "checkpoint-1"):  # the final model, a checkpoint of the run
        args, source = with_training_prompt(EvaluationArguments(model_name_or_path=str(model_folder)))
        assert source == str(out / "prompt.json")
        generator = _Generator(args, model=object(), tokenizer=tokenizer)
        trained = format_prompt(
            "What is 3+4?", script_args.prompt_template or BOXED_PROMPT_TEMPLATE, True, script_args.system_prompt,
            script_args.fewshot_examples,
        )  # fmt: skip
        assert script_args.fewshot_examples and generator.render("What is 3+4?") == render_for_generation(
            generator.tokenizer, trained
        )
        assert generator.render("Q: 3+4=?\nA:", raw_prompt=True) == generator.render("What is 3+4?")


# ---------------------------------------------------------------------------------------------------------------------
# benchmarks/smollm2_recipes.py: the results table of recipes/README.md, from the runs' files
# ---------------------------------------------------------------------------------------------------------------------


def _smollm2_recipes_module():
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "smollm2_recipes.py"
    spec = importlib.util.spec_from_file_location("smollm2_recipes", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _record(method, seed, before, after, rewards, zero_variance, entropy):
    split = ("frac_all_correct", "frac_all_wrong", "frac_mixed")
    return {
        "method": method,
        "seed": seed,
        "machine": {"kind": "AMD EPYC, AVX-512, 2 cores"},
        "heldout_before": {"acc@8": before[0], "pass@8": before[1], **dict(zip(split, before[2:]))},
        "heldout_after": {"acc@8": after[0], "pass@8": after[1], **dict(zip(split, after[2:]))},
        "steps": [
            {"step": i + 1, "reward": r, "frac_reward_zero_std": z, "entropy": e}
            for i, (r, z, e) in enumerate(zip(rewards, zero_variance, entropy))
        ],
    }


@pytest.mark.unit
def test_smollm2_results_table_by_hand():
    module = _smollm2_recipes_module()
    steps = 10  # rewards 0.1, 0.2, ..., 1.0: steps 1-4 average 0.25, the last 8 0.65
    rewards = [round(0.1 * (i + 1), 1) for i in range(steps)]
    zero_variance = [0.875] + [0.5] * (steps - 2) + [0.25]  # mean (0.875 + 8 x 0.5 + 0.25) / 10 = 0.5125
    entropy = [0.8] + [0.3] * (steps - 2) + [0.04]
    before = (0.328125, 0.703125, 0.0, 0.296875, 0.703125)
    records = [
        _record("grpo", 42, before, (0.74, 0.838, 0.54, 0.16, 0.30), rewards, zero_variance, entropy),
        _record("rl_zvp", 42, before, (0.828, 0.973, 0.54, 0.03, 0.43), rewards[::-1], zero_variance, entropy),
    ]
    lines = module.render_table(records, [42])
    assert lines[0] == "| | base (42) | GRPO seed 42 | RL-ZVP seed 42 |"
    assert lines[2] == "| held-out Acc@8 | 0.328 | 0.740 | 0.828 |"
    assert lines[3] == "| held-out Pass@8 | 0.703 | 0.838 | 0.973 |"
    assert (
        lines[4] == "| held-out all-correct / all-wrong / mixed | 0.00/0.30/0.70 | 0.54/0.16/0.30 | 0.54/0.03/0.43 |"
    )
    # reversed rewards for RL-ZVP: steps 1-4 average 0.85, the last 8 0.45
    assert lines[5] == "| training reward, steps 1-4 / last 8 steps | | 0.25 / 0.65 | 0.85 / 0.45 |"
    assert lines[6] == "| zero-variance groups: step 1 / last / mean | | 0.88/0.25/0.51 | 0.88/0.25/0.51 |"
    assert lines[7] == "| token entropy: step 1 / last | | 0.80/0.04 | 0.80/0.04 |"
    assert len(lines) == 8


@pytest.mark.unit
def test_smollm2_results_refuse_a_changed_recipe_written_as_the_results(monkeypatch, capsys):
    module = _smollm2_recipes_module()
    monkeypatch.setattr(sys, "argv", ["smollm2_recipes.py", "--max_steps", "1"])
    with pytest.raises(SystemExit) as error:
        module.main()
    assert error.value.code == 2 and "another --output" in capsys.readouterr().err


@pytest.mark.unit
def test_smollm2_results_report_only_tabulates_the_finished_runs(tmp_path, monkeypatch, capsys):
    """`--report_only` reads each finished run's record.json (an unfinished run has none), runs nothing, and refuses
    records of two kinds of machine."""
    module = _smollm2_recipes_module()
    monkeypatch.setattr(module, "run_one", lambda *args: pytest.fail("--report_only must not run anything"))
    before, after = (0.25, 0.5, 0.0, 0.5, 0.5), (0.5, 0.75, 0.25, 0.25, 0.5)
    runs_machine = {"kind": "Intel, AVX-512, 64 cores"}  # not this machine: the table names the runs' machine
    finished = [
        dict(_record(method, 42, before, after, [0.5], [0.5], [0.5]), machine=runs_machine)
        for method in ("grpo", "rl_zvp")
    ]
    for record in finished:
        folder = tmp_path / "runs" / f"{record['method']}-s42"
        folder.mkdir(parents=True)
        (folder / "record.json").write_text(json.dumps(record))
    (tmp_path / "runs" / "grpo-s43").mkdir()  # started, never finished
    output = tmp_path / "table.json"
    argv = ["smollm2_recipes.py", "--report_only", "--seeds", "42", "43", "--work_dir", str(tmp_path / "runs")]
    monkeypatch.setattr(sys, "argv", [*argv, "--output", str(output)])
    module.main()
    written = json.loads(output.read_text())
    assert written["runs"] == finished and written["machine"] == runs_machine
    assert "| held-out Acc@8 | 0.250 | 0.500 | 0.500 |" in written["table"] and "0.500" in capsys.readouterr().out
    other = dict(finished[1], machine={"kind": "AMD EPYC, AVX2, 2 cores"})
    (tmp_path / "runs" / "rl_zvp-s42" / "record.json").write_text(json.dumps(other))
    with pytest.raises(SystemExit, match="several kinds of machine"):
        module.main()
    monkeypatch.setattr(sys, "argv", [*argv[:-1], str(tmp_path / "empty"), "--output", str(output)])
    with pytest.raises(SystemExit, match="no finished run"):
        module.main()
