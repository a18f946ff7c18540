# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""Training data for RL with verifiable math rewards.

Turns MATH, DAPO-Math-17k and NuminaMath-style datasets (from the Hugging Face Hub or from a local
json/jsonl/parquet file) into the format expected by TRL's [`~trl.GRPOTrainer`]:

- `prompt`: the question formatted with a prompt template (a string for base models, or a list of chat messages
  `[{"role": "user", "content": ...}]` when `conversational=True`),
- `solution`: the gold final answer (e.g. `"\\frac{1}{2}"` or `"42"`), read by the math reward functions,
- `question`: the raw question, kept for logging and deduplication.

Example:

```python
from zvp_trl.data.math_datasets import load_math_dataset

train_dataset = load_math_dataset("math")  # DigitalLearningGmbH/MATH-lighteval, train split
train_dataset = load_math_dataset("data/my_problems.jsonl", column_mapping={"question": "q", "answer": "a"})
```
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from datasets import Dataset, load_dataset

from .rewards import extract_boxed_answer


logger = logging.getLogger(__name__)

__all__ = [
    "BOXED_PROMPT_TEMPLATE",
    "DATASETS",
    "DatasetSpec",
    "check_examples",
    "check_prompt_column",
    "format_prompt",
    "last_boxed_content",
    "load_math_dataset",
    "parse_fewshot_examples",
    "strip_dapo_instructions",
]

BOXED_PROMPT_TEMPLATE = "{question}\nPlease reason step by step, and put your final answer within \\boxed{}."
"""Prompt template of the RL-ZVP paper for base models. `{question}` is replaced by the question."""

PROMPT_FILE = "prompt.json"
"""Written by `recipes/train.py` into its `output_dir` before training: the prompt options of the run (`None`: the
default), which `recipes/evaluate.py` reads back so that a trained model is asked the way it was trained."""
PROMPT_OPTIONS = ("prompt_template", "conversational", "system_prompt", "fewshot_examples")


def save_prompt_options(output_dir: str | Path, options: Mapping[str, Any]) -> Path:
    """Writes `PROMPT_FILE` with the `PROMPT_OPTIONS` of `options` into `output_dir`; returns its path."""
    path = Path(output_dir) / PROMPT_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({name: options[name] for name in PROMPT_OPTIONS}, indent=2) + "\n")
    return path


def saved_prompt_options(model_path: str | Path) -> tuple[dict[str, Any], Path] | None:
    """The prompt options a `recipes/train.py` run saved for the model in `model_path` (its `output_dir`, or one of
    its `checkpoint-<step>` and `best-<benchmark>` folders: the folder's own file first, which a later run in the same
    `output_dir` does not replace), with the file they come from; `None` where there is none (a Hub id, a model not
    trained by `recipes/train.py`)."""
    folder = Path(model_path)
    if folder.exists():
        folder = folder.resolve()  # `.` inside a checkpoint folder has a name
    candidates = [folder / PROMPT_FILE]
    if re.fullmatch(r"checkpoint-\d+|best-[\w.-]+", folder.name):
        candidates.append(folder.parent / PROMPT_FILE)
    for path in candidates:
        if path.is_file():
            saved = json.loads(path.read_text())
            return {name: saved.get(name) for name in PROMPT_OPTIONS}, path
    return None


AnswerFrom = Literal["column", "last_boxed"]


# ---------------------------------------------------------------------------------------------------------------------
# Prompt formatting and answer extraction
# ---------------------------------------------------------------------------------------------------------------------


def format_prompt(
    question: str,
    template: str | None = BOXED_PROMPT_TEMPLATE,
    conversational: bool = False,
    system_prompt: str | None = None,
    examples: Sequence[Sequence[str]] | None = None,
) -> str | list[dict[str, str]]:
    """Formats a question into a GRPO prompt.

    Args:
        question (`str`):
            The raw math question.
        template (`str` or `None`, *optional*, defaults to `BOXED_PROMPT_TEMPLATE`):
            Template containing the `{question}` placeholder. The placeholder is substituted literally (no
            `str.format`), so braces such as `\\boxed{}` need no escaping. If `None`, the question is used as is.
        conversational (`bool`, *optional*, defaults to `False`):
            If `True`, return a list of chat messages (for chat models) instead of a plain string (for base models).
        system_prompt (`str` or `None`, *optional*):
            System message prepended to the conversation. Only valid with `conversational=True`.
        examples (`Sequence[tuple[str, str]]` or `None`, *optional*):
            Worked examples shown before the question, as `(question, answer)` pairs (few-shot prompting). Each
            example question goes through the same template. With `conversational=True` every pair becomes a user turn
            and an assistant turn before the final user turn; otherwise the pairs are written as
            `"<formatted question> <answer>\n\n"` blocks before the formatted question.

    Returns:
        `str` or `list[dict[str, str]]`: The prompt string, or the list of messages if `conversational=True`.

    Example:

    >>> format_prompt("What is 3+4?", "{question}", conversational=True, examples=[("What is 1+1?", "2")])
    [{'role': 'user', 'content': 'What is 1+1?'}, {'role': 'assistant', 'content': '2'}, {'role': 'user', 'content': \
'What is 3+4?'}]
    """
    if template is not None and "{question}" not in template:
        raise ValueError(f"The prompt template must contain the '{{question}}' placeholder, got {template!r}.")
    examples = check_examples(examples)

    def fill(text: str) -> str:
        return text if template is None else template.replace("{question}", text)

    if not conversational:
        if system_prompt is not None:
            raise ValueError(
                "`system_prompt` is only supported with `conversational=True`; for base models, put the text in the "
                "`template` instead."
            )
        return "".join(f"{fill(q)} {a}\n\n" for q, a in examples) + fill(question)
    messages = [{"role": "system", "content": system_prompt}] if system_prompt is not None else []
    for example_question, example_answer in examples:
        messages.append({"role": "user", "content": fill(example_question)})
        messages.append({"role": "assistant", "content": example_answer})
    messages.append({"role": "user", "content": fill(question)})
    return messages


def check_examples(examples: Any) -> list[tuple[str, str]]:
    """Validates few-shot `examples` (a sequence of `(question, answer)` string pairs; `None` for none) and returns
    them as a list of tuples. Raises a `ValueError` naming the bad entry otherwise."""
    if examples is None:
        return []
    if isinstance(examples, (str, dict)):
        raise ValueError(
            f"examples must be a list of [question, answer] pairs, got {type(examples).__name__} {examples!r}."
        )
    checked = []
    for i, pair in enumerate(examples):
        if isinstance(pair, (str, dict)) or len(pair) != 2 or not all(isinstance(x, str) for x in pair):
            raise ValueError(
                f"examples[{i}] must be a [question, answer] pair of strings, got {pair!r}. Example: "
                '[["What is 25+17?", "25+17 = 42. The answer is \\boxed{42}."]]'
            )
        checked.append((pair[0], pair[1]))
    return checked


def parse_fewshot_examples(value: Any, field_name: str = "fewshot_examples") -> list[tuple[str, str]] | None:
    """Reads few-shot examples given as a JSON string (command line) or a list (YAML, Python) of `[question, answer]`
    pairs; `None` or an empty list give `None`. Raises a `ValueError` naming `field_name` for anything else."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as error:
            raise ValueError(
                f"{field_name} must be a JSON list of [question, answer] pairs, got {value!r} ({error})."
            ) from None
    try:
        return check_examples(value) or None
    except ValueError as error:
        raise ValueError(f"{field_name}: {error}") from None


def last_boxed_content(text: str | None) -> str | None:
    """The content of the last `\\boxed{...}` of `text` (`None` when absent): see [`~rewards.extract_boxed_answer`]."""
    return extract_boxed_answer(text) if text else None


_DAPO_PREFIX = re.compile(
    r"^\s*Solve the following math problem step by step\.\s*The last line of your response should be of the form "
    r"Answer:\s*\$Answer \(without quotes\) where \$Answer is the answer to the problem\.\s*",
    flags=re.IGNORECASE,
)
_DAPO_SUFFIX = re.compile(r"\s*Remember to put your answer on its own line after \"Answer:\"\.?\s*$", re.IGNORECASE)


def strip_dapo_instructions(text: str) -> str:
    """Removes DAPO-Math-17k's instruction wrapper around a question, if present.

    The original `BytedTsinghua-SIA/DAPO-Math-17k` prompts read `"Solve the following math problem step by step. The
    last line of your response should be of the form Answer: $Answer (without quotes) where $Answer is the answer to
    the problem.\\n\\n{question}\\n\\nRemember to put your answer on its own line after \\"Answer:\\"."`. Text without
    the wrapper is returned stripped but otherwise unchanged.
    """
    return _DAPO_SUFFIX.sub("", _DAPO_PREFIX.sub("", text)).strip()


# ---------------------------------------------------------------------------------------------------------------------
# Dataset registry
# ---------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DatasetSpec:
    """Where a math dataset lives and how to read its question and answer.

    Args:
        hub_id (`str` or `None`):
            Hugging Face Hub dataset id, or `None` for a dataset without a Hub source (e.g. inferred for a local file).
        config (`str` or `None`, *optional*):
            Hub configuration (subset) name.
        split (`str`, *optional*, defaults to `"train"`):
            Default split.
        question_column (`str`, *optional*, defaults to `"problem"`):
            Column holding the question: a string, or a list of chat messages (the last user message is used). Nested
            fields are addressed with dots, e.g. `"reward_model.ground_truth"`.
        answer_column (`str`, *optional*, defaults to `"solution"`):
            Column holding the answer, or the solution text the answer is extracted from.
        answer_from (`str` or `None`, *optional*, defaults to `"column"`):
            `"column"`: the column holds the final answer; `"last_boxed"`: take the last `\\boxed{}` of the column's
            text; `None`: decide from the data (`"last_boxed"` if most sampled values contain `\\boxed`).
        dedupe (`bool`, *optional*, defaults to `False`):
            Whether to drop repeated questions (keeping the first occurrence).
    """

    hub_id: str | None
    config: str | None = None
    split: str = "train"
    question_column: str = "problem"
    answer_column: str = "solution"
    answer_from: AnswerFrom | None = "column"
    dedupe: bool = False


DATASETS: dict[str, DatasetSpec] = {
    # MATH (Hendrycks et al., 2021), 7.5k training problems. Columns: `problem`, `solution` (full solution whose last
    # `\boxed{}` is the answer), `level`, `type`.
    "math": DatasetSpec(
        "DigitalLearningGmbH/MATH-lighteval", "default", "train", "problem", "solution", answer_from="last_boxed"
    ),
    # DAPO-Math-17k, processed by Open-R1: `prompt` is the bare question string, `solution` the final answer.
    "dapo_math_17k": DatasetSpec("open-r1/DAPO-Math-17k-Processed", "en", "train", "prompt", "solution"),
    # Original DAPO-Math-17k: `prompt` is a list of chat messages wrapping the question in DAPO's instructions, the
    # answer is in `reward_model.ground_truth`. Each problem is repeated many times (~1.8M rows), hence `dedupe=True`.
    "dapo_math_17k_original": DatasetSpec(
        "BytedTsinghua-SIA/DAPO-Math-17k", None, "train", "prompt", "reward_model.ground_truth", dedupe=True
    ),
    # NuminaMath-CoT: `problem`, `solution` (chain of thought ending with a `\boxed{}` answer), `source`.
    "numina_math_cot": DatasetSpec(
        "AI-MO/NuminaMath-CoT", None, "train", "problem", "solution", answer_from="last_boxed"
    ),
}
"""Known training datasets, usable by name in [`load_math_dataset`]."""

_LOCAL_SUFFIXES = {".json": "json", ".jsonl": "json", ".parquet": "parquet"}
_QUESTION_CANDIDATES = ("problem", "question", "prompt")
_ANSWER_CANDIDATES = ("answer", "final_answer", "ground_truth", "reward_model.ground_truth", "solution")
_SNIFF_ROWS = 100


# ---------------------------------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------------------------------


def _has_column(dataset: Dataset, key: str) -> bool:
    """Whether `key` is a column of `dataset`, or a dotted path into a struct column."""
    if key in dataset.column_names:
        return True
    head, *rest = key.split(".")
    feature = dataset.features.get(head)
    for part in rest:
        if not isinstance(feature, dict) or part not in feature:
            return False
        feature = feature[part]
    return bool(rest) and feature is not None


def _get(row: Mapping[str, Any], key: str) -> Any:
    """Reads a (possibly dotted, nested) `key` from a row."""
    if key in row:
        return row[key]
    value: Any = row
    for part in key.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return value


def _question_text(value: Any) -> str | None:
    """Reads the question from a string or a list of chat messages, without DAPO's instruction wrapper."""
    if isinstance(value, list):  # conversational: use the last user message
        contents = [m.get("content") for m in value if isinstance(m, Mapping) and m.get("role") == "user"]
        value = contents[-1] if contents else None
    if value is None:
        return None
    return strip_dapo_instructions(str(value)) or None


def _answer_text(value: Any, answer_from: AnswerFrom) -> str | None:
    if value is None:
        return None
    text = last_boxed_content(str(value)) if answer_from == "last_boxed" else str(value).strip()
    return text or None


def _infer_spec(dataset: Dataset) -> DatasetSpec:
    """Infers a spec from column names, for local files and Hub datasets not in `DATASETS`.

    Rule: the question column is the first of `problem`, `question`, `prompt` present, and the answer column the first
    of `answer`, `final_answer`, `ground_truth`, `reward_model.ground_truth`, `solution` present. Whether the answer is
    the column itself or the last `\\boxed{}` of its text is sniffed from the data. Datasets shaped like the original
    DAPO-Math-17k (answer in `reward_model.ground_truth`) are deduplicated.
    """
    question = next((c for c in _QUESTION_CANDIDATES if _has_column(dataset, c)), None)
    answer = next((c for c in _ANSWER_CANDIDATES if _has_column(dataset, c)), None)
    return DatasetSpec(
        hub_id=None,
        question_column=question or "question",  # placeholders, reported as missing by `_check_columns`
        answer_column=answer or "answer",
        answer_from=None,
        dedupe=answer == "reward_model.ground_truth",
    )


def _check_columns(dataset: Dataset, columns: dict[str, str], source: str) -> None:
    for role, column in columns.items():
        if not _has_column(dataset, column):
            raise ValueError(
                f"The {role} column {column!r} was not found in {source}. Available columns: "
                f"{dataset.column_names}. Pass `column_mapping={{'question': <question column>, 'answer': "
                f"<answer column>}}` to `load_math_dataset` to say which columns to use (nested fields as "
                f"'parent.child', e.g. 'reward_model.ground_truth'); in recipes/train.py, "
                f'`--dataset_column_mapping \'{{"question": ..., "answer": ...}}\'`.'
            )


def check_prompt_column(dataset: Any, name: str = "train_dataset") -> None:
    """Raises a `ValueError` naming the fix when a dataset given to a trainer has no `prompt` column.

    TRL's `GRPOTrainer` reads the prompts from that column and otherwise fails with a bare `KeyError: 'prompt'` at the
    first generation. A dict of datasets (an `eval_dataset`) is checked entry by entry; datasets whose columns are
    unknown (e.g. an `IterableDataset` without features) and `None` are not checked.
    """
    entries = dataset.items() if isinstance(dataset, Mapping) else [(None, dataset)]
    for key, entry in entries:
        columns = getattr(entry, "column_names", None)
        if columns is None or "prompt" in columns:
            continue
        label = name if key is None else f"{name}[{key!r}]"
        raise ValueError(
            f"{label} has no 'prompt' column (its columns: {columns}); GRPO trainers read the prompts from it. Rename "
            "the column that holds them (`dataset.rename_column(<column>, 'prompt')`), or build the dataset with "
            "`zvp_trl.load_math_dataset`, which writes `prompt` and `solution`."
        )


def _sniff_answer_from(dataset: Dataset, column: str) -> AnswerFrom:
    """`"last_boxed"` if most of the first non-empty values of `column` contain `\\boxed`, else `"column"`."""
    sample = [_get(row, column) for row in dataset.select(range(min(len(dataset), _SNIFF_ROWS)))]
    sample = [str(v) for v in sample if v is not None and str(v).strip()]
    boxed = sum("\\boxed" in v or "\\fbox" in v for v in sample)
    return "last_boxed" if sample and boxed * 2 > len(sample) else "column"


def _first_occurrences(values: list[str]) -> list[int]:
    seen: set[str] = set()
    indices = []
    for i, value in enumerate(values):
        if value not in seen:
            seen.add(value)
            indices.append(i)
    return indices


def load_math_dataset(
    name_or_path: str | Path,
    *,
    split: str = "train",
    config: str | None = None,
    column_mapping: dict[str, str] | None = None,
    answer_from: AnswerFrom | None = None,
    template: str | None = BOXED_PROMPT_TEMPLATE,
    conversational: bool = False,
    system_prompt: str | None = None,
    examples: Sequence[Sequence[str]] | None = None,
    max_samples: int | None = None,
    seed: int | None = None,
    dedupe: bool | None = None,
    keep_columns: bool = False,
) -> Dataset:
    """Loads a math dataset with the `prompt` and `solution` columns expected by GRPO and the math rewards.

    Steps: load, read the question (a string or the last user message of a chat; DAPO's instruction wrapper is
    stripped) and the answer (a column, or the last `\\boxed{}` of a solution text), drop rows without a question or an
    extractable answer (logging how many), optionally deduplicate by question (first occurrence kept), subsample, and
    format the prompt.

    Args:
        name_or_path (`str` or `Path`):
            One of:
            - a name from `DATASETS`: `"math"` (`DigitalLearningGmbH/MATH-lighteval`), `"dapo_math_17k"`
              (`open-r1/DAPO-Math-17k-Processed`, config `en`), `"dapo_math_17k_original"`
              (`BytedTsinghua-SIA/DAPO-Math-17k`) or `"numina_math_cot"` (`AI-MO/NuminaMath-CoT`);
            - a local `.json`, `.jsonl` or `.parquet` file (the whole file is used, `split` is ignored);
            - any other Hub dataset id, loaded with `datasets.load_dataset(name_or_path, config, split=split)`.
            For local files and unknown Hub ids, the columns are inferred when not given by `column_mapping`: the
            question is the first of `problem`, `question`, `prompt`, the answer the first of `answer`,
            `final_answer`, `ground_truth`, `reward_model.ground_truth`, `solution`.
        split (`str`, *optional*, defaults to `"train"`):
            Hub split to load.
        config (`str` or `None`, *optional*):
            Hub configuration; defaults to the registry's for known datasets.
        column_mapping (`dict[str, str]` or `None`, *optional*):
            `{"question": <source column>, "answer": <source column>}` (either key may be omitted). Nested fields are
            addressed with dots, e.g. `{"answer": "reward_model.ground_truth"}`.
        answer_from (`str` or `None`, *optional*):
            `"column"` (the answer column is the final answer) or `"last_boxed"` (extract the last `\\boxed{}` of the
            answer column's text). Defaults to the registry's value, else it is sniffed from the data: `"last_boxed"`
            if most of the first 100 answers contain `\\boxed`.
        template (`str` or `None`, *optional*, defaults to `BOXED_PROMPT_TEMPLATE`):
            Prompt template with a `{question}` placeholder; `None` uses the bare question.
        conversational (`bool`, *optional*, defaults to `False`):
            Whether prompts are chat messages (chat models) rather than strings (base models).
        system_prompt (`str` or `None`, *optional*):
            System message for conversational prompts.
        examples (`Sequence[tuple[str, str]]` or `None`, *optional*):
            Few-shot `(question, answer)` pairs shown before every question; see [`format_prompt`].
        max_samples (`int` or `None`, *optional*):
            Keep at most this many rows (after filtering and deduplication): the first ones if `seed` is `None`, else a
            random subset drawn with `seed`.
        seed (`int` or `None`, *optional*):
            Seed for subsampling with `max_samples`.
        dedupe (`bool` or `None`, *optional*):
            Whether to drop repeated questions. Defaults to the registry's value (`True` for the original DAPO-Math-17k
            and inferred DAPO-shaped data, else `False`).
        keep_columns (`bool`, *optional*, defaults to `False`):
            Keep the source columns (e.g. MATH's `level` and `type`). Source `prompt`, `solution` and `question`
            columns are always replaced.

    Returns:
        [`~datasets.Dataset`]: A dataset with the columns `prompt`, `solution` and `question` (plus the source columns
        if `keep_columns=True`).
    """
    name_or_path = str(name_or_path)
    path = Path(name_or_path)
    if name_or_path in DATASETS:
        spec = DATASETS[name_or_path]
        source = f"{name_or_path!r} ({spec.hub_id})"
        dataset = load_dataset(spec.hub_id, config or spec.config, split=split)
    elif path.suffix.lower() in _LOCAL_SUFFIXES or path.is_file():
        if path.suffix.lower() not in _LOCAL_SUFFIXES:
            raise ValueError(
                f"Unsupported file type {path.suffix!r} for {path}; use one of {sorted(_LOCAL_SUFFIXES)}."
            )
        if not path.is_file():
            raise FileNotFoundError(f"Dataset file not found: {path}")
        source = str(path)
        dataset = load_dataset(_LOCAL_SUFFIXES[path.suffix.lower()], data_files=str(path), split="train")
        spec = None
    else:
        spec = next((s for s in DATASETS.values() if s.hub_id == name_or_path), None)
        source = repr(name_or_path)
        dataset = load_dataset(name_or_path, config or (spec.config if spec else None), split=split)
    if spec is None:
        spec = _infer_spec(dataset)

    column_mapping = column_mapping or {}
    unknown = set(column_mapping) - {"question", "answer"}
    if unknown:
        raise ValueError(
            f"`column_mapping` keys must be 'question' and/or 'answer', got unexpected {sorted(unknown)}."
        )
    question_column = column_mapping.get("question", spec.question_column)
    answer_column = column_mapping.get("answer", spec.answer_column)
    _check_columns(dataset, {"question": question_column, "answer": answer_column}, source)
    answer_from = answer_from or spec.answer_from or _sniff_answer_from(dataset, answer_column)
    if answer_from not in ("column", "last_boxed"):
        raise ValueError(f"`answer_from` must be 'column' or 'last_boxed', got {answer_from!r}.")
    dedupe = spec.dedupe if dedupe is None else dedupe
    # Fail early (not inside `map`) on an invalid template / system prompt combination.
    format_prompt("", template=template, conversational=conversational, system_prompt=system_prompt, examples=examples)

    def extract(row: dict[str, Any]) -> dict[str, Any]:
        return {
            "question": _question_text(_get(row, question_column)),
            "solution": _answer_text(_get(row, answer_column), answer_from),
        }

    output_columns = {"prompt", "solution", "question"}
    remove = [c for c in dataset.column_names if not keep_columns or c in output_columns]
    dataset = dataset.map(extract, remove_columns=remove, desc="Extracting questions and answers")

    num_rows = len(dataset)
    dataset = dataset.filter(lambda row: row["question"] is not None and row["solution"] is not None)
    if len(dataset) < num_rows:
        logger.warning(
            "Dropped %d/%d rows of %s without a question or an extractable answer (answer_from=%r).",
            num_rows - len(dataset),
            num_rows,
            source,
            answer_from,
        )
    if len(dataset) == 0:
        raise ValueError(
            f"No rows of {source} have both a question (column {question_column!r}) and an answer (column "
            f"{answer_column!r}, answer_from={answer_from!r}). Check `column_mapping` and `answer_from`."
        )
    if dedupe:
        num_rows = len(dataset)
        dataset = dataset.select(_first_occurrences(list(dataset["question"])))
        logger.info("Deduplicated %s by question: %d -> %d rows.", source, num_rows, len(dataset))
    if max_samples is not None and max_samples < len(dataset):
        if seed is not None:
            dataset = dataset.shuffle(seed=seed)
        dataset = dataset.select(range(max_samples))

    def add_prompt(row: dict[str, Any]) -> dict[str, Any]:
        return {"prompt": format_prompt(row["question"], template, conversational, system_prompt, examples)}

    dataset = dataset.map(add_prompt, desc="Formatting prompts")
    extra_columns = [c for c in dataset.column_names if c not in output_columns]
    return dataset.select_columns(["prompt", "solution", "question", *extra_columns])
