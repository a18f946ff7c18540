# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
import json
import logging
from pathlib import Path

import pytest
from datasets import Dataset
from math_eval_data import expected_rows, math_eval_dir

from zvp_trl.data.math_datasets import (
    BOXED_PROMPT_TEMPLATE,
    DATASETS,
    DatasetSpec,
    format_prompt,
    last_boxed_content,
    load_math_dataset,
    parse_fewshot_examples,
    strip_dapo_instructions,
)


pytestmark = pytest.mark.unit


SUFFIX = "\nPlease reason step by step, and put your final answer within \\boxed{}."
MATH500 = math_eval_dir() / "math500.jsonl"  # the fixture's first rows, or the complete copy (ZVP_TRL_MATH_EVAL_DIR)
DAPO_PREFIX = (
    "Solve the following math problem step by step. The last line of your response should be of the form "
    "Answer: $Answer (without quotes) where $Answer is the answer to the problem.\n\n"
)
DAPO_SUFFIX = '\n\nRemember to put your answer on its own line after "Answer:".'


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


MATH_ROWS = [
    {
        "problem": "What is $1/2$ as a fraction?",
        "solution": "It is $\\boxed{\\frac{1}{2}}$.",
        "level": "Level 1",
        "type": "Algebra",
    },
    {
        "problem": "Compute $6 \\cdot 7$.",
        "solution": "First $\\boxed{40}$ is wrong; we get $6 \\cdot 7 = \\boxed{42}$.",
        "level": "Level 2",
        "type": "Prealgebra",
    },
    {
        "problem": "A problem whose solution has no box.",
        "solution": "The answer is 3.",
        "level": "Level 3",
        "type": "X",
    },
    {
        "problem": "Find the set.",
        "solution": "So the set is $\\boxed{\\{1, 2\\}}$.",
        "level": "Level 4",
        "type": "Counting",
    },
]


# ---------------------------------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------------------------------


class TestLastBoxedContent:
    @pytest.mark.parametrize(
        "text, expected",
        [
            ("$\\boxed{\\frac{1}{2}}$", "\\frac{1}{2}"),
            ("a \\boxed{1} then \\boxed{\\sqrt{\\frac{a}{b}}} end", "\\sqrt{\\frac{a}{b}}"),
            ("\\boxed{\\{1, 2\\}}", "\\{1, 2\\}"),
            ("\\boxed{ \\left( 3, \\frac{\\pi}{2} \\right) }.", "\\left( 3, \\frac{\\pi}{2} \\right)"),
            ("so the answer is $\\boxed 5$.", "5"),
            ("\\fbox{7}", "7"),
            ("no box here", None),
            ("\\boxed{\\frac{1}{2}", None),  # unbalanced
            ("", None),
            (None, None),
        ],
    )
    def test_cases(self, text, expected):
        assert last_boxed_content(text) == expected


class TestFormatPrompt:
    def test_template(self):
        assert BOXED_PROMPT_TEMPLATE == "{question}" + SUFFIX
        assert format_prompt("What is $1+1$?") == "What is $1+1$?" + SUFFIX

    def test_braces_in_question_are_kept(self):
        assert format_prompt("Is $\\{x\\}$ {odd}?", template="Q: {question}") == "Q: Is $\\{x\\}$ {odd}?"

    def test_no_template(self):
        assert format_prompt("2+2?", template=None) == "2+2?"

    def test_conversational(self):
        assert format_prompt("2+2?", conversational=True) == [{"role": "user", "content": "2+2?" + SUFFIX}]
        assert format_prompt("2+2?", conversational=True, system_prompt="Be brief.") == [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "2+2?" + SUFFIX},
        ]

    def test_invalid(self):
        with pytest.raises(ValueError, match="conversational=True"):
            format_prompt("2+2?", system_prompt="Be brief.")
        with pytest.raises(ValueError, match="placeholder"):
            format_prompt("2+2?", template="no placeholder")


class TestFewShotExamples:
    EXAMPLES = [("What is 25+17?", "\\boxed{42}"), ("What is 30-1?", "\\boxed{29}")]

    def test_plain_prompt_writes_each_example_through_the_template(self):
        prompt = format_prompt("What is 3+4?", template="Q: {question}\nA:", examples=self.EXAMPLES)
        assert prompt == "Q: What is 25+17?\nA: \\boxed{42}\n\nQ: What is 30-1?\nA: \\boxed{29}\n\nQ: What is 3+4?\nA:"

    def test_chat_prompt_has_a_user_and_an_assistant_turn_per_example(self):
        prompt = format_prompt("3+4?", conversational=True, system_prompt="Be brief.", examples=self.EXAMPLES[:1])
        assert prompt == [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "What is 25+17?" + SUFFIX},
            {"role": "assistant", "content": "\\boxed{42}"},
            {"role": "user", "content": "3+4?" + SUFFIX},
        ]

    def test_no_examples_changes_nothing(self):
        assert format_prompt("2+2?", examples=[]) == format_prompt("2+2?") == format_prompt("2+2?", examples=None)

    @pytest.mark.parametrize(
        "bad", ["What is 1+1?", [("What is 1+1?",)], [("q", "a", "extra")], [("q", 2)], [{"q": "a"}], {"q": "a"}]
    )
    def test_malformed_examples_are_refused(self, bad):
        with pytest.raises(ValueError, match="question, answer"):
            format_prompt("2+2?", examples=bad)

    def test_parse_from_json_or_list(self):
        assert parse_fewshot_examples('[["What is 1+1?", "\\\\boxed{2}"]]') == [("What is 1+1?", "\\boxed{2}")]
        assert parse_fewshot_examples([["q", "a"]]) == [("q", "a")]
        assert parse_fewshot_examples(None) is None
        assert parse_fewshot_examples("[]") is None
        with pytest.raises(ValueError, match="my_field must be a JSON list"):
            parse_fewshot_examples("[[q, a]]", "my_field")
        with pytest.raises(ValueError, match=r"my_field: examples\[0\]"):
            parse_fewshot_examples('[["only a question"]]', "my_field")

    def test_dataset_prompts_get_the_examples(self, tmp_path):
        path = tmp_path / "data.jsonl"
        path.write_text(json.dumps({"problem": "What is 3+4?", "answer": "7"}) + "\n")
        ds = load_math_dataset(str(path), conversational=True, examples=self.EXAMPLES[:1])
        assert [m["role"] for m in ds[0]["prompt"]] == ["user", "assistant", "user"]
        assert ds[0]["question"] == "What is 3+4?" and ds[0]["solution"] == "7"


def test_strip_dapo_instructions():
    assert strip_dapo_instructions(DAPO_PREFIX + "Find $x$." + DAPO_SUFFIX) == "Find $x$."
    assert strip_dapo_instructions("  Find $x$.\n") == "Find $x$."


def test_registry():
    assert set(DATASETS) == {"math", "dapo_math_17k", "dapo_math_17k_original", "numina_math_cot"}
    assert DATASETS["math"] == DatasetSpec(
        "DigitalLearningGmbH/MATH-lighteval", "default", "train", "problem", "solution", "last_boxed", False
    )
    assert DATASETS["dapo_math_17k"].hub_id == "open-r1/DAPO-Math-17k-Processed"
    assert DATASETS["dapo_math_17k"].config == "en"
    assert DATASETS["dapo_math_17k_original"].answer_column == "reward_model.ground_truth"
    assert DATASETS["dapo_math_17k_original"].dedupe
    assert DATASETS["numina_math_cot"].answer_from == "last_boxed"


# ---------------------------------------------------------------------------------------------------------------------
# Loading local files
# ---------------------------------------------------------------------------------------------------------------------


class TestLoadMathFormat:
    def test_jsonl(self, tmp_path, caplog):
        path = write_jsonl(tmp_path / "math.jsonl", MATH_ROWS)
        with caplog.at_level(logging.WARNING, logger="zvp_trl.data.math_datasets"):
            ds = load_math_dataset(str(path))
        assert "Dropped 1/4 rows" in caplog.text
        assert ds.column_names == ["prompt", "solution", "question"]
        assert ds["solution"] == ["\\frac{1}{2}", "42", "\\{1, 2\\}"]
        assert ds["question"] == ["What is $1/2$ as a fraction?", "Compute $6 \\cdot 7$.", "Find the set."]
        assert ds[0]["prompt"] == (
            "What is $1/2$ as a fraction?\nPlease reason step by step, and put your final answer within \\boxed{}."
        )

    def test_json_array_keep_columns(self, tmp_path):
        path = tmp_path / "math.json"
        path.write_text(json.dumps(MATH_ROWS))
        ds = load_math_dataset(path, keep_columns=True)
        assert ds.column_names == ["prompt", "solution", "question", "problem", "level", "type"]
        assert ds["level"] == ["Level 1", "Level 2", "Level 4"]
        assert ds[1]["solution"] == "42"  # source `solution` text replaced by the answer

    def test_parquet_conversational(self, tmp_path):
        path = tmp_path / "math.parquet"
        Dataset.from_list(MATH_ROWS).to_parquet(str(path))
        ds = load_math_dataset(str(path), conversational=True, system_prompt="You are a mathematician.")
        assert len(ds) == 3
        assert ds[1]["prompt"] == [
            {"role": "system", "content": "You are a mathematician."},
            {"role": "user", "content": "Compute $6 \\cdot 7$." + SUFFIX},
        ]
        assert ds[1]["solution"] == "42"

    def test_explicit_answer_from_column(self, tmp_path):
        path = write_jsonl(tmp_path / "math.jsonl", MATH_ROWS)
        ds = load_math_dataset(str(path), answer_from="column", template=None)
        assert len(ds) == 4
        assert ds[2]["solution"] == "The answer is 3."
        assert ds[2]["prompt"] == "A problem whose solution has no box."


def test_dapo_processed(tmp_path):
    rows = [
        {"prompt": "Find the sum of $1$ and $2$.", "solution": "3", "data_source": "dapo"},
        {"prompt": "Let $x^2 = 4$ with $x > 0$. Find $x$.", "solution": "2", "data_source": "dapo"},
    ]
    ds = load_math_dataset(str(write_jsonl(tmp_path / "dapo.jsonl", rows)))
    assert ds.to_list() == [
        {
            "prompt": "Find the sum of $1$ and $2$." + SUFFIX,
            "solution": "3",
            "question": "Find the sum of $1$ and $2$.",
        },
        {
            "prompt": "Let $x^2 = 4$ with $x > 0$. Find $x$." + SUFFIX,
            "solution": "2",
            "question": "Let $x^2 = 4$ with $x > 0$. Find $x$.",
        },
    ]


def _dapo_original_rows() -> list[dict]:
    def row(question: str, answer: str, index: int) -> dict:
        return {
            "data_source": "math_dapo",
            "prompt": [{"role": "user", "content": DAPO_PREFIX + question + DAPO_SUFFIX}],
            "ability": "MATH",
            "reward_model": {"ground_truth": answer, "style": "rule-lighteval/MATH_v2"},
            "extra_info": {"index": str(index)},
        }

    questions = [("Find $2+3$.", "5"), ("How many primes are below $10$?", "4"), ("Compute $10^2$.", "100")]
    return [row(q, a, i) for i, (q, a) in enumerate(questions)] * 3 + [row("Find $2+3$.", "5", 99)]


class TestDapoOriginal:
    def test_inferred(self, tmp_path):
        path = write_jsonl(tmp_path / "dapo_original.jsonl", _dapo_original_rows())
        ds = load_math_dataset(str(path))  # mapping, answer_from and dedupe inferred
        assert len(ds) == 3
        assert ds["question"] == ["Find $2+3$.", "How many primes are below $10$?", "Compute $10^2$."]
        assert ds["solution"] == ["5", "4", "100"]
        assert ds[0]["prompt"] == "Find $2+3$." + SUFFIX

    def test_explicit_mapping_no_dedupe(self, tmp_path):
        path = tmp_path / "dapo_original.parquet"
        Dataset.from_list(_dapo_original_rows()).to_parquet(str(path))
        ds = load_math_dataset(
            str(path), column_mapping={"question": "prompt", "answer": "reward_model.ground_truth"}, dedupe=False
        )
        assert len(ds) == 10
        assert ds["solution"][:4] == ["5", "4", "100", "5"]

    def test_conversational(self, tmp_path):
        path = write_jsonl(tmp_path / "dapo_original.jsonl", _dapo_original_rows())
        ds = load_math_dataset(str(path), conversational=True, template=None)
        assert ds[2]["prompt"] == [{"role": "user", "content": "Compute $10^2$."}]


def test_numina(tmp_path):
    rows = [
        {
            "source": "olympiads",
            "problem": "Solve $x + 1 = 3$.",
            "solution": "Subtracting, $x = \\boxed{2}$.",
            "messages": [],
        },
        {
            "source": "cn_k12",
            "problem": "Simplify $\\sqrt{8}$.",
            "solution": "$\\sqrt{8} = \\boxed{2\\sqrt{2}}$",
            "messages": [],
        },
        {"source": "synthetic_math", "problem": "Prove it.", "solution": "Proof omitted.", "messages": []},
    ]
    ds = load_math_dataset(str(write_jsonl(tmp_path / "numina.jsonl", rows)))
    assert ds["solution"] == ["2", "2\\sqrt{2}"]
    assert ds["prompt"] == ["Solve $x + 1 = 3$." + SUFFIX, "Simplify $\\sqrt{8}$." + SUFFIX]


def test_custom_column_mapping(tmp_path):
    rows = [
        {"id": 0, "query": "What is $3 \\times 3$?", "meta": {"gold": 9}},
        {"id": 1, "query": "What is $3 + 9$?", "meta": {"gold": 12}},
        {"id": 2, "query": "Unanswered?", "meta": {"gold": None}},
    ]
    path = write_jsonl(tmp_path / "custom.jsonl", rows)
    ds = load_math_dataset(
        str(path), column_mapping={"question": "query", "answer": "meta.gold"}, template="Q: {question}\nA:"
    )
    assert ds.to_list() == [
        {"prompt": "Q: What is $3 \\times 3$?\nA:", "solution": "9", "question": "What is $3 \\times 3$?"},
        {"prompt": "Q: What is $3 + 9$?\nA:", "solution": "12", "question": "What is $3 + 9$?"},
    ]


def test_dedupe_flag(tmp_path):
    rows = [{"question": q, "answer": a} for q, a in [("a?", "1"), ("b?", "2"), ("a?", "3"), ("c?", "4"), ("b?", "5")]]
    path = write_jsonl(tmp_path / "dup.jsonl", rows)
    assert len(load_math_dataset(str(path))) == 5
    ds = load_math_dataset(str(path), dedupe=True)
    assert ds["question"] == ["a?", "b?", "c?"]
    assert ds["solution"] == ["1", "2", "4"]  # first occurrence kept


def test_max_samples(tmp_path):
    rows = [{"problem": f"Problem {i}?", "answer": str(i)} for i in range(20)]
    path = write_jsonl(tmp_path / "many.jsonl", rows)
    assert load_math_dataset(str(path), max_samples=3)["solution"] == ["0", "1", "2"]
    first = load_math_dataset(str(path), max_samples=5, seed=0)["solution"]
    assert first == load_math_dataset(str(path), max_samples=5, seed=0)["solution"]
    assert len(set(first)) == 5 and first != ["0", "1", "2", "3", "4"]
    assert first != load_math_dataset(str(path), max_samples=5, seed=1)["solution"]
    assert len(load_math_dataset(str(path), max_samples=100)) == 20


class TestErrors:
    def test_missing_inferred_columns(self, tmp_path):
        path = write_jsonl(tmp_path / "bad.jsonl", [{"text": "What?", "label": "1"}])
        with pytest.raises(ValueError) as excinfo:
            load_math_dataset(str(path))
        message = str(excinfo.value)
        assert "'question'" in message and "not found" in message
        assert "['text', 'label']" in message
        assert "column_mapping" in message

    def test_missing_mapped_column(self, tmp_path):
        path = write_jsonl(tmp_path / "custom.jsonl", [{"query": "What?", "label": "1"}])
        with pytest.raises(ValueError) as excinfo:
            load_math_dataset(str(path), column_mapping={"question": "query", "answer": "gold"})
        message = str(excinfo.value)
        assert "answer column 'gold'" in message
        assert "['query', 'label']" in message
        assert "column_mapping" in message

    def test_missing_nested_column(self, tmp_path):
        path = write_jsonl(tmp_path / "nested.jsonl", [{"q": "What?", "meta": {"gold": "1"}}])
        with pytest.raises(ValueError, match="'meta.answer'.*column_mapping"):
            load_math_dataset(str(path), column_mapping={"question": "q", "answer": "meta.answer"})

    def test_bad_inputs(self, tmp_path):
        with pytest.raises(FileNotFoundError):
            load_math_dataset(str(tmp_path / "missing.jsonl"))
        csv = tmp_path / "data.csv"
        csv.write_text("problem,answer\n1+1,2\n")
        with pytest.raises(ValueError, match="Unsupported file type"):
            load_math_dataset(str(csv))
        path = write_jsonl(tmp_path / "ok.jsonl", [{"problem": "1+1?", "answer": "2"}])
        with pytest.raises(ValueError, match="column_mapping"):
            load_math_dataset(str(path), column_mapping={"prompt": "problem"})
        with pytest.raises(ValueError, match="conversational=True"):
            load_math_dataset(str(path), system_prompt="Be brief.")


def test_math500_local_copy():
    ds = load_math_dataset(str(MATH500))  # inferred mapping: problem -> question, answer -> answer
    assert len(ds) == expected_rows("math500", MATH500.parent)
    assert ds.column_names == ["prompt", "solution", "question"]
    first = ds[0]
    assert first["solution"] == "\\left( 3, \\frac{\\pi}{2} \\right)"
    assert first["question"].startswith("Convert the point $(0,3)$ in rectangular coordinates to polar coordinates.")
    assert first["prompt"] == first["question"] + SUFFIX
    assert ds[1]["solution"] == "p - q"


def test_all_rows_dropped(tmp_path):
    path = write_jsonl(tmp_path / "nobox.jsonl", [{"problem": "p?", "solution": "no box"}])
    with pytest.raises(ValueError, match="No rows"):
        load_math_dataset(str(path), answer_from="last_boxed")


class TestHubRouting:
    """The Hub is unreachable offline: check which `load_dataset` call each name makes, on in-memory data."""

    @pytest.fixture
    def calls(self, monkeypatch):
        calls = []
        data = {
            "DigitalLearningGmbH/MATH-lighteval": MATH_ROWS,
            "BytedTsinghua-SIA/DAPO-Math-17k": _dapo_original_rows(),
            "someone/gsm-like": [{"question": "1+1?", "answer": 2}],
        }

        def fake_load_dataset(path, name=None, split=None, **kwargs):
            calls.append((path, name, split, kwargs))
            return Dataset.from_list(data[path])

        monkeypatch.setattr("zvp_trl.data.math_datasets.load_dataset", fake_load_dataset)
        return calls

    def test_registry_name(self, calls):
        ds = load_math_dataset("math", keep_columns=True)
        assert calls == [("DigitalLearningGmbH/MATH-lighteval", "default", "train", {})]
        assert ds["solution"] == ["\\frac{1}{2}", "42", "\\{1, 2\\}"]
        assert ds["type"] == ["Algebra", "Prealgebra", "Counting"]

    def test_known_hub_id_uses_registry_spec(self, calls):
        ds = load_math_dataset("BytedTsinghua-SIA/DAPO-Math-17k", split="train[:10]")
        assert calls == [("BytedTsinghua-SIA/DAPO-Math-17k", None, "train[:10]", {})]
        assert ds["solution"] == ["5", "4", "100"]  # deduplicated by default

    def test_unknown_hub_id(self, calls):
        ds = load_math_dataset("someone/gsm-like", config="main", split="test")
        assert calls == [("someone/gsm-like", "main", "test", {})]
        assert ds.to_list() == [{"prompt": "1+1?" + SUFFIX, "solution": "2", "question": "1+1?"}]
