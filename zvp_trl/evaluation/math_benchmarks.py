# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""Registry of the papers' evaluation benchmarks: where each lives on the Hub, and how to read its question and answer.

Every benchmark can also be read from a local JSON-lines copy (`data_dir=` or `path=`), for machines without Hub
access: a folder holding each benchmark's rows under its `local_file` name (the first rows of each are in
`tests/fixtures/math_eval/`, in that format).
"""

import ast
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from datasets import Dataset, load_dataset

from ..data.rewards import extract_boxed_answer


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return None if text in ("", "None") else text


def _plain(row: dict) -> str | None:
    return _text(row.get("answer"))


def _float_string(row: dict) -> str | None:
    """AMC23 stores answers as floats written as strings ("27.0"): integral values become "27"."""
    text = _text(row.get("answer"))
    try:
        value = float(text)
    except (TypeError, ValueError):
        return text
    return str(int(value)) if value.is_integer() else text


def _answer_or_last_boxed(row: dict) -> str | None:
    """Minerva: the Hub copy has `answer`; the original data only a solution whose last \\boxed{} is the answer."""
    return _text(row.get("answer")) or extract_boxed_answer(str(row.get("solution") or ""))


def _olympiad_final_answer(row: dict) -> str | None:
    """OlympiadBench: `final_answer` is a list (or its Python literal as a string, e.g. "['2']"); several answers are
    joined with ", "."""
    value = row.get("final_answer")
    if isinstance(value, str):
        try:
            value = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            return _text(value)
    if isinstance(value, (list, tuple)):
        parts = [_text(v) for v in value]
        return ", ".join(p for p in parts if p) or None
    return _text(value)


def _gsm8k(row: dict) -> str | None:
    """GSM8K: the text after `#### ` in `answer`, thousands separators removed."""
    answer = str(row.get("answer") or "")
    if "####" not in answer:
        return None
    return _text(answer.split("####")[-1].replace(",", ""))


def _olympiad_question(row: dict) -> str | None:
    context, question = _text(row.get("context")), _text(row.get("question"))
    return f"{context}\n{question}" if context and question else question


@dataclass(frozen=True)
class BenchmarkSpec:
    name: str
    hub_id: str
    split: str
    local_file: str
    read_answer: Callable[[dict], str | None]
    question_column: str = "problem"
    config: str | None = None
    read_question: Callable[[dict], str | None] | None = None
    # The question is already a complete prompt (the embedded task); no prompt template is applied.
    raw_prompt: bool = False

    def question(self, row: dict) -> str | None:
        return self.read_question(row) if self.read_question else _text(row.get(self.question_column))


BENCHMARKS: dict[str, BenchmarkSpec] = {
    spec.name: spec
    for spec in [
        BenchmarkSpec("minerva", "math-ai/minervamath", "test", "minerva_math.jsonl", _answer_or_last_boxed),
        BenchmarkSpec("amc23", "math-ai/amc23", "test", "amc23.jsonl", _float_string),
        BenchmarkSpec("math500", "HuggingFaceH4/MATH-500", "test", "math500.jsonl", _plain),
        BenchmarkSpec("aime24", "HuggingFaceH4/aime_2024", "train", "aime24.jsonl", _plain),
        BenchmarkSpec("aime25", "yentinglin/aime_2025", "train", "aime25.jsonl", _plain),
        BenchmarkSpec(
            "olympiadbench",
            "Hothan/OlympiadBench",
            "train",
            "olympiadbench.jsonl",
            _olympiad_final_answer,
            config="OE_TO_maths_en_COMP",
            read_question=_olympiad_question,
        ),
        BenchmarkSpec(
            "gsm8k", "openai/gsm8k", "test", "gsm8k_test.jsonl", _gsm8k, question_column="question", config="main"
        ),
    ]
}
# The embedded task's held-out prompts (generated, no file): the same set `recipes/train.py` scores before/after.
EMBEDDED = BenchmarkSpec("embedded", "", "", "", _plain, question_column="prompt", raw_prompt=True)
BENCHMARKS[EMBEDDED.name] = EMBEDDED

# The six benchmarks of the RL-ZVP paper's Table 1.
PAPER_BENCHMARKS = ("minerva", "amc23", "math500", "aime24", "aime25", "olympiadbench")


def load_benchmark(
    name: str, *, data_dir: str | Path | None = None, path: str | Path | None = None, limit: int | None = None
) -> Dataset:
    """Rows of benchmark `name` as a dataset with `index`, `question` and `answer` columns.

    Read from `path` (a local JSON-lines file), else from `data_dir / <its local file name>`, else from the Hub.
    `limit` keeps the first rows (a documented, deterministic subset).
    """
    if name not in BENCHMARKS:
        raise ValueError(f"Unknown benchmark {name!r}; known: {', '.join(BENCHMARKS)}.")
    spec = BENCHMARKS[name]
    if spec is EMBEDDED:
        from ..data.embedded import make_split

        held_out = make_split("heldout")
        held_out = held_out.select(range(min(limit or len(held_out), len(held_out))))
        return Dataset.from_dict(
            {"index": list(range(len(held_out))), "question": held_out["prompt"], "answer": held_out["solution"]}
        )
    if path is None and data_dir is not None:
        path = Path(data_dir) / spec.local_file
    if path is not None:
        if not Path(path).is_file():
            raise FileNotFoundError(f"No local copy of {name} at {path}.")
        raw = load_dataset("json", data_files=str(path), split="train")
    else:
        raw = load_dataset(spec.hub_id, spec.config, split=spec.split)
    if limit is not None:
        raw = raw.select(range(min(limit, len(raw))))
    rows = {"index": [], "question": [], "answer": []}
    for index, row in enumerate(raw):
        question, answer = spec.question(row), spec.read_answer(row)
        if question is None or answer is None:
            raise ValueError(f"{name} row {index} has no readable question or answer: {sorted(row)}.")
        rows["index"].append(index)
        rows["question"].append(question)
        rows["answer"].append(answer)
    return Dataset.from_dict(rows)
