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
