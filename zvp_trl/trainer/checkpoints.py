# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""Which checkpoint a run resumes from.

transformers' `get_last_checkpoint` returns the highest-numbered `checkpoint-*` folder whether or not it was written
to the end; a process killed while saving leaves such a folder behind, and resuming from it fails (or, with state
files missing, would silently restart per-prompt state from scratch). `last_complete_checkpoint` skips incomplete
folders. A checkpoint is complete when the files transformers writes last (`trainer_state.json`, parseable) and the
zvp_trl state (`zvp_state.json`, parseable) are there: both are written after the model, optimizer and RNG states,
and zvp_state.json after the files of per-run state kept apart from it (ExGRPO's `exgrpo_buffer.safetensors`).
"""

import json
import os
import re
import warnings


STATE_FILE = "zvp_state.json"
TRAINER_STATE_FILE = "trainer_state.json"
_CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")


def _parses(path: str) -> bool:
    try:
        with open(path) as f:
            json.load(f)
    except (OSError, ValueError):
        return False
    return True


def is_complete_checkpoint(path: str, require_state: bool = True) -> bool:
    """Whether `path` holds a checkpoint written to the end (see the module docstring)."""
    if not _parses(os.path.join(path, TRAINER_STATE_FILE)):
        return False
    return not require_state or _parses(os.path.join(path, STATE_FILE))


def last_complete_checkpoint(output_dir: str, require_state: bool = True) -> str | None:
    """The highest-numbered complete `checkpoint-<step>` folder of `output_dir` (None when there is none). Incomplete
    ones are skipped with a warning naming them (they are left on disk)."""
    if not os.path.isdir(output_dir):
        return None
    steps = sorted(
        (int(m.group(1)), name)
        for name in os.listdir(output_dir)
        if (m := _CHECKPOINT_RE.match(name)) and os.path.isdir(os.path.join(output_dir, name))
    )
    for _, name in reversed(steps):
        path = os.path.join(output_dir, name)
        if is_complete_checkpoint(path, require_state):
            return path
        warnings.warn(
            f"Skipping {path}: it is incomplete (the run was probably interrupted while saving it).", stacklevel=2
        )
    return None
