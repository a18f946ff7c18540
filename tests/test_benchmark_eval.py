# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
import json

import pytest
from math_eval_data import ENV_VAR, FIXTURE_DIR, FIXTURE_ROWS, data_dirs, expected_rows, math_eval_dir, read_rows

from zvp_trl.evaluation.benchmark_eval import (
    EvaluationArguments,
    _Generator,
    evaluate_model,
    markdown_table,
    vllm_engine_kwargs,
)
from zvp_trl.evaluation.math_benchmarks import BENCHMARKS, load_benchmark


DATA_DIR = math_eval_dir()  # the fixtures' first rows, or the complete copies named by ZVP_TRL_MATH_EVAL_DIR


@pytest.mark.unit
@pytest.mark.parametrize(
    "name, row, expected",
    [
        ("amc23", {"problem": "q", "answer": "27.0"}, "27"),
        ("amc23", {"problem": "q", "answer": "2.5"}, "2.5"),
        ("olympiadbench", {"question": "q", "context": "None", "final_answer": "['2']"}, "2"),
        ("olympiadbench", {"question": "q", "context": None, "final_answer": "['$1$', '$3$']"}, "$1$, $3$"),
        ("olympiadbench", {"question": "q", "final_answer": ["\\frac{1}{2}"]}, "\\frac{1}{2}"),
        ("minerva", {"problem": "q", "solution": "so \\boxed{4.5e33} and \\boxed{1.6}"}, "1.6"),
        ("minerva", {"problem": "q", "answer": "7", "solution": "\\boxed{8}"}, "7"),
        ("gsm8k", {"question": "q", "answer": "work <<1+1=2>>\n#### 1,234"}, "1234"),
        (
            "math500",
            {"problem": "q", "answer": "\\left( 3, \\frac{\\pi}{2} \\right)"},
            "\\left( 3, \\frac{\\pi}{2} \\right)",
        ),
        ("aime24", {"problem": "q", "answer": "204"}, "204"),
    ],
)
def test_answer_readers(name, row, expected):
    assert BENCHMARKS[name].read_answer(row) == expected


@pytest.mark.unit
def test_olympiad_question_includes_context():
    spec = BENCHMARKS["olympiadbench"]
    assert spec.question({"question": "Find x.", "context": "Let x=2."}) == "Let x=2.\nFind x."
    assert spec.question({"question": "Find x.", "context": "None"}) == "Find x."


@pytest.mark.unit
@pytest.mark.parametrize("copies", list(data_dirs()))
@pytest.mark.parametrize(
    "name, first_answer",
    [
        ("math500", "\\left( 3, \\frac{\\pi}{2} \\right)"),
        ("aime24", "204"),
        ("aime25", "70"),
        ("amc23", "27"),
        ("minerva", "1.6"),
        ("olympiadbench", "2"),
        ("gsm8k", "18"),
    ],
)
def test_local_copies_load(name, first_answer, copies):
    data_dir = data_dirs()[copies]
    dataset = load_benchmark(name, data_dir=data_dir)
    assert len(dataset) == expected_rows(name, data_dir) and dataset[0]["answer"] == first_answer
    assert all(dataset["question"]) and all(dataset["answer"])
    assert dataset["index"] == list(range(len(dataset)))
    first = load_benchmark(name, data_dir=data_dir, limit=3)
    assert len(first) == 3 and first["question"] == dataset["question"][:3]
    if copies == "full":  # the fixtures are the complete copies' first rows, unchanged
        file = BENCHMARKS[name].local_file
        assert read_rows(FIXTURE_DIR / file) == read_rows(data_dir / file, limit=FIXTURE_ROWS)


@pytest.mark.unit
def test_complete_copies_are_tested_only_where_the_variable_names_a_folder(tmp_path, monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    assert data_dirs() == {"fixtures": FIXTURE_DIR} and math_eval_dir() == FIXTURE_DIR
    monkeypatch.setenv(ENV_VAR, str(tmp_path))
    assert data_dirs() == {"fixtures": FIXTURE_DIR, "full": tmp_path} and math_eval_dir() == tmp_path
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "missing"))
    with pytest.raises(FileNotFoundError, match=ENV_VAR):
        data_dirs()


@pytest.mark.unit
def test_missing_local_copy_and_unknown_name(tmp_path):
    with pytest.raises(FileNotFoundError, match="math500"):
        load_benchmark("math500", data_dir=tmp_path)
    with pytest.raises(ValueError, match="Unknown benchmark"):
        load_benchmark("mathh500")


@pytest.mark.unit
def test_embedded_benchmark_limit_is_a_prefix():
    full, first = load_benchmark("embedded"), load_benchmark("embedded", limit=5)
    assert len(full) == 256 and first["question"] == full["question"][:5]


@pytest.mark.trainer
def test_end_to_end_resumes_and_writes_table(tiny_model_path, tmp_path, monkeypatch):
    args = EvaluationArguments(
        model_name_or_path=tiny_model_path,
        benchmarks=["gsm8k", "embedded"],
        data_dir=str(DATA_DIR),
        limit=3,
        k=2,
        max_tokens=8,
        backend="transformers",
        output_dir=str(tmp_path),
        conversational=False,
    )
    summary = evaluate_model(args)
    assert summary["backend"] == "transformers"
    for name in ("gsm8k", "embedded"):
        records = [json.loads(line) for line in (tmp_path / f"{name}.jsonl").read_text().splitlines()]
        assert len(records) == 6 and {r["sample"] for r in records} == {0, 1}
        assert all(set(r) >= {"question", "completion", "extracted", "correct", "gold"} for r in records)
        assert summary["results"][name]["num_questions"] == 3
    assert records[0]["question"].startswith("Q: ")  # embedded prompts are used as they are
    # Plant a known outcome, then resume: nothing is generated again and the stored verdicts are used.
    path = tmp_path / "gsm8k.jsonl"
    records = [json.loads(line) for line in path.read_text().splitlines()]
    for r in records:
        r["correct"] = r["index"] == 0 or (r["index"] == 1 and r["sample"] == 0)
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    monkeypatch.setattr(_Generator, "generate", lambda *a, **k: pytest.fail("resumed evaluation generated again"))
    resumed = evaluate_model(args)
    gsm8k = resumed["results"]["gsm8k"]
    assert gsm8k["acc@2"] == pytest.approx((1.0 + 0.5 + 0.0) / 3)
    assert gsm8k["pass@2"] == pytest.approx((1.0 + 1.0 + 0.0) / 3)
    table = (tmp_path / "results.md").read_text()
    assert "| gsm8k | embedded | average |" in table and "50.00 / 66.67" in table
    assert table == markdown_table(resumed)


@pytest.mark.trainer
def test_a_correct_completion_is_scored_correct(tiny_model_path, tmp_path, monkeypatch):
    args = EvaluationArguments(
        model_name_or_path=tiny_model_path,
        benchmarks=["amc23"],
        data_dir=str(DATA_DIR),
        limit=2,
        k=2,
        backend="transformers",
        output_dir=str(tmp_path),
        conversational=False,
    )
    monkeypatch.setattr(
        _Generator, "generate", lambda self, prompts, n: [["so \\boxed{27}", "no answer"], ["\\boxed{0}"] * 2]
    )
    result = evaluate_model(args)["results"]["amc23"]
    assert result["acc@2"] == pytest.approx(0.25) and result["pass@2"] == pytest.approx(0.5)


@pytest.mark.trainer
def test_a_resumed_evaluation_asks_again_what_another_prompt_produced(tiny_model_path, tmp_path, monkeypatch, capsys):
    """Each sample records its prompt; resuming with another prompt (or over samples written before the records held
    it) asks those questions again instead of mixing two prompts in one result."""
    import dataclasses

    args = EvaluationArguments(
        model_name_or_path=tiny_model_path, benchmarks=["amc23"], data_dir=str(DATA_DIR), limit=2, k=2,
        backend="transformers", output_dir=str(tmp_path), conversational=False,
    )  # fmt: skip
    asked = []

    def generate(self, prompts, n):
        asked.append(list(prompts))
        return [["\\boxed{27}"] * n for _ in prompts]

    monkeypatch.setattr(_Generator, "generate", generate)
    evaluate_model(args)
    evaluate_model(args)  # the same prompt: nothing is asked again
    assert len(asked) == 1 and len(asked[0]) == 2
    path = tmp_path / "amc23.jsonl"
    assert [json.loads(line)["prompt"] for line in path.read_text().splitlines()] == [
        p for p in asked[0] for _ in "kk"
    ]
    summary = evaluate_model(dataclasses.replace(args, prompt_template="{question} Box it."))
    assert len(asked) == 2 and all(prompt.endswith(" Box it.") for prompt in asked[1])
    assert summary["prompt"]["prompt_template"] == "{question} Box it." and "asked again" in capsys.readouterr().out
    records = [json.loads(line) for line in path.read_text().splitlines()]
    path.write_text("".join(json.dumps({k: v for k, v in r.items() if k != "prompt"}) + "\n" for r in records))
    evaluate_model(args)  # samples without their prompt: asked again
    assert len(asked) == 3 and asked[2] == asked[0]


@pytest.mark.trainer
def test_a_benchmark_file_overrides_the_data_dir(tiny_model_path, tmp_path, monkeypatch):
    own = tmp_path / "my_amc.jsonl"
    own.write_text(json.dumps({"problem": "1+1?", "answer": "2.0"}) + "\n")
    args = EvaluationArguments(
        model_name_or_path=tiny_model_path,
        benchmarks=["amc23"],
        data_dir=str(DATA_DIR),
        benchmark_files=[f"amc23={own}"],
        k=1,
        backend="transformers",
        output_dir=str(tmp_path / "out"),
        conversational=False,
    )
    monkeypatch.setattr(_Generator, "generate", lambda self, prompts, n: [["\\boxed{2}"]] * len(prompts))
    result = evaluate_model(args)["results"]["amc23"]
    assert result["num_questions"] == 1 and result["acc@1"] == 1.0


@pytest.mark.unit
def test_bad_arguments():
    with pytest.raises(ValueError, match="k must be"):
        EvaluationArguments(model_name_or_path="x", k=0)
    with pytest.raises(ValueError, match="name=path"):
        EvaluationArguments(model_name_or_path="x", benchmark_files=["math500.jsonl"])
    with pytest.raises(ValueError, match="backend"):
        EvaluationArguments(model_name_or_path="x", backend="tgi")
    with pytest.raises(ValueError, match=r"vllm_max_model_len \(64\) must exceed max_tokens \(64\)"):
        EvaluationArguments(model_name_or_path="x", max_tokens=64, vllm_max_model_len=64)


@pytest.mark.unit
def test_vllm_engine_options():
    # By default vLLM decides (compiled model, the model's context length); the options reach vllm.LLM as its own.
    assert vllm_engine_kwargs(EvaluationArguments(model_name_or_path="m", seed=3)) == {"model": "m", "seed": 3}
    args = EvaluationArguments(model_name_or_path="m", max_tokens=48, vllm_enforce_eager=True, vllm_max_model_len=512)
    assert vllm_engine_kwargs(args) == {"model": "m", "seed": 0, "enforce_eager": True, "max_model_len": 512}


@pytest.mark.unit
def test_the_training_runs_prompt_options_fill_what_evaluation_leaves_unset(tmp_path):
    """`prompt.json` of a recipes/train.py run is found from its output_dir, a checkpoint or a best-<benchmark>
    folder; it fills only the options not given, and `prompt_from_training=False` ignores it."""
    from zvp_trl.data.math_datasets import save_prompt_options
    from zvp_trl.evaluation.benchmark_eval import with_training_prompt

    run = tmp_path / "run"
    options = {"prompt_template": "{question} Box it.", "conversational": False, "system_prompt": None}
    path = save_prompt_options(run, {**options, "fewshot_examples": [["What is 1+1?", "\\boxed{2}"]]})
    for folder in (run, run / "checkpoint-12", run / "best-math500"):
        args, source = with_training_prompt(EvaluationArguments(model_name_or_path=str(folder)))
        assert source == str(path) and args.prompt_template == "{question} Box it." and args.conversational is False
        assert args.fewshot_examples == [("What is 1+1?", "\\boxed{2}")] and args.system_prompt is None
    given = EvaluationArguments(model_name_or_path=str(run), conversational=True, prompt_template="{question}?")
    args, _ = with_training_prompt(given)
    assert (args.conversational, args.prompt_template) == (True, "{question}?") and args.fewshot_examples
    assert given.fewshot_examples is None  # the caller's arguments are not changed
    for elsewhere in (run / "other", "Qwen/Qwen3-1.7B-Base"):
        assert with_training_prompt(EvaluationArguments(model_name_or_path=str(elsewhere))) == (
            EvaluationArguments(model_name_or_path=str(elsewhere)),
            None,
        )
    ignored = EvaluationArguments(model_name_or_path=str(run), prompt_from_training=False)
    assert with_training_prompt(ignored) == (ignored, None)


@pytest.mark.trainer
def test_a_model_trained_on_plain_prompts_is_not_asked_in_chat(tiny_model_path, tmp_path):
    """The tokenizer has a chat template, so without the training run's options evaluation would render chats; the run
    trained on plain text (`conversational` false), so it is asked in plain text. With `conversational`, the embedded
    problems are asked as questions, as recipes/train.py asks them."""
    from transformers import AutoTokenizer

    from zvp_trl.data.math_datasets import BOXED_PROMPT_TEMPLATE, PROMPT_OPTIONS, save_prompt_options
    from zvp_trl.evaluation.benchmark_eval import with_training_prompt

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_path)
    tokenizer.chat_template = "{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}{% endfor %}<assistant>"
    save_prompt_options(tmp_path, dict.fromkeys(PROMPT_OPTIONS) | {"conversational": False})
    args, _ = with_training_prompt(EvaluationArguments(model_name_or_path=str(tmp_path)))
    generator = _Generator(args, model=object(), tokenizer=tokenizer)
    assert generator.render("What is 3+4?") == BOXED_PROMPT_TEMPLATE.replace("{question}", "What is 3+4?")
    assert generator.render("Q: 3+4=?\nA:", raw_prompt=True) == "Q: 3+4=?\nA:"  # the embedded prompt, as trained
    chat = _Generator(EvaluationArguments(model_name_or_path="x", conversational=True), object(), tokenizer)
    asked = "<user>" + BOXED_PROMPT_TEMPLATE.replace("{question}", "What is 3+4?") + "<assistant>"
    assert chat.render("Q: 3+4=?\nA:", raw_prompt=True) == chat.render("What is 3+4?") == asked


@pytest.mark.trainer
def test_prompts_carry_the_training_system_prompt_and_examples(tiny_model_path, tmp_path):
    """A model trained with few-shot chat prompts is evaluated with the same prompt around each question."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_path)
    tokenizer.chat_template = (
        "{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}{% endfor %}"
        "{% if add_generation_prompt %}<assistant>{% endif %}"
    )
    args = EvaluationArguments(
        model_name_or_path=tiny_model_path,
        prompt_template="{question} Box it.",
        conversational=True,
        system_prompt="Be brief.",
        fewshot_examples='[["What is 25+17?", "\\\\boxed{42}"]]',
        output_dir=str(tmp_path),
    )
    assert args.fewshot_examples == [("What is 25+17?", "\\boxed{42}")]
    generator = _Generator(args, model=object(), tokenizer=tokenizer)
    assert generator.render("What is 3+4?") == (
        "<system>Be brief.<user>What is 25+17? Box it.<assistant>\\boxed{42}<user>What is 3+4? Box it.<assistant>"
    )
    plain = _Generator(
        EvaluationArguments(
            model_name_or_path="x",
            prompt_template="Q: {question}\nA:",
            conversational=False,
            fewshot_examples=[["What is 25+17?", "42"]],
        ),
        model=object(),
        tokenizer=tokenizer,
    )
    assert plain.render("What is 3+4?") == "Q: What is 25+17?\nA: 42\n\nQ: What is 3+4?\nA:"
    with pytest.raises(ValueError, match="fewshot_examples: examples\\[0\\]"):
        EvaluationArguments(model_name_or_path="x", fewshot_examples='[["only a question"]]')
