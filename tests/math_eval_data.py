# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""Which local JSON-lines copies of the evaluation benchmarks the tests read.

By default the fixtures in `tests/fixtures/math_eval/` (the first rows of each benchmark, kept with the tests), so the
suite needs nothing outside the repository. With `ZVP_TRL_MATH_EVAL_DIR` naming a folder of the complete copies (as
`.ci/run` sets it when it finds one), the tests that load benchmarks also run on those copies and check their full
row counts. A variable that names no folder is an error, never a silent fallback.
"""

import json
import os
from pathlib import Path


ENV_VAR = "ZVP_TRL_MATH_EVAL_DIR"
FIXTURE_DIR = Path(__file__).resolve().parent / "fixtures" / "math_eval"
FIXTURE_ROWS = 4  # rows in every fixture file

# Rows of the complete copies (those of the Hub datasets the registry names).
FULL_ROWS = {
    "math500": 500,
    "aime24": 30,
    "aime25": 30,
    "amc23": 40,
    "minerva": 272,
    "olympiadbench": 675,
    "gsm8k": 1319,
}


def full_copies_dir() -> Path | None:
    """The folder of complete copies named by `ZVP_TRL_MATH_EVAL_DIR`, or `None` when the variable is unset or empty."""
    value = os.environ.get(ENV_VAR, "").strip()
    if not value:
        return None
    path = Path(value).expanduser().resolve()
    if not path.is_dir():
        raise FileNotFoundError(f"{ENV_VAR}={value} is not a folder: unset it to test on tests/fixtures/math_eval.")
    return path


def data_dirs() -> dict[str, Path]:
    """`{"fixtures": ...}`, plus `{"full": ...}` when complete copies are given."""
    dirs = {"fixtures": FIXTURE_DIR}
    full = full_copies_dir()
    if full is not None:
        dirs["full"] = full
    return dirs


def math_eval_dir() -> Path:
    """The copies for tests that read a few rows: the complete copies when given, else the fixtures."""
    return full_copies_dir() or FIXTURE_DIR


def expected_rows(name: str, data_dir: Path) -> int:
    return FIXTURE_ROWS if data_dir == FIXTURE_DIR else FULL_ROWS[name]


def read_rows(path: Path, limit: int | None = None) -> list[dict]:
    rows = []
    with open(path) as f:
        for line in f:
            if limit is not None and len(rows) == limit:
                break
            rows.append(json.loads(line))
    return rows


def describe() -> str:
    """One line for pytest's header: which copies this run reads."""
    full = full_copies_dir()
    if full is None:
        return (
            f"math_eval data: tests/fixtures/math_eval ({FIXTURE_ROWS} rows per benchmark); "
            f"set {ENV_VAR} to also test complete copies"
        )
    return f"math_eval data: tests/fixtures/math_eval and the complete copies in {full} ({ENV_VAR})"
