# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""Stable prompt identity for per-prompt state (ERPO histories, GRESO traces, ExGRPO buffers).

The id of a dataset row is either the value of a column the user names (required when prompts repeat but must be
tracked apart, or to match ids across datasets) or a content hash of the row's `prompt`. Both are identical on every
process and across restarts. Python's built-in `hash()` is never used: it is salted per process.
"""

import hashlib
import json


def prompt_content_id(prompt) -> str:
    """16-hex-digit SHA-1 of the prompt (a string or a list of chat messages), stable across processes and runs."""
    text = json.dumps(prompt, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:16]


def token_prompt_id(token_ids) -> str:
    """The id of a prompt known only as token ids (environment-owned data: the prompt comes from the environment's
    `reset()`): `"tokens:"` + a 16-hex-digit SHA-1 of the ids."""
    text = ",".join(str(int(t)) for t in token_ids)
    return "tokens:" + hashlib.sha1(text.encode("ascii")).hexdigest()[:16]


def prompt_id(row: dict, column: str | None = None) -> str:
    """The id of one dataset row: `str(row[column])` when `column` is given, else the content hash of `row["prompt"]`."""
    if column is not None:
        if column not in row:
            raise KeyError(
                f"The prompt id column {column!r} is not in the dataset row (columns: {', '.join(sorted(row))}). "
                "Name an existing column, or leave the prompt id column unset to identify prompts by a hash of "
                "their content."
            )
        return str(row[column])
    if "prompt" not in row:
        raise KeyError(f"The dataset row has no 'prompt' column (columns: {', '.join(sorted(row))}).")
    return prompt_content_id(row["prompt"])


def dataset_prompt_ids(dataset, column: str | None = None) -> list[str]:
    """The id of every row of a map-style dataset, in index order (one column read, not a row-by-row scan, for a
    🤗 `datasets.Dataset`)."""
    if not (hasattr(dataset, "__len__") and hasattr(dataset, "__getitem__")):
        raise TypeError(
            f"Per-prompt ids of every dataset row need a map-style dataset (with __len__ and __getitem__), got "
            f"{type(dataset).__name__}."
        )
    name = "prompt" if column is None else column
    column_names = getattr(dataset, "column_names", None)
    if column_names is not None:
        if name not in column_names:
            raise KeyError(f"The dataset has no {name!r} column (columns: {', '.join(sorted(column_names))}).")
        values = dataset[name]
        return [str(v) if column is not None else prompt_content_id(v) for v in values]
    return [prompt_id(dataset[i], column) for i in range(len(dataset))]
