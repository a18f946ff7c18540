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


_DEEPSPEED_SHARD_RE = re.compile(r"^(?:\w+_)?zero_pp_rank_(\d+)_mp_rank_\d+_(optim|model)_states\.pt$")


def deepspeed_shard_ranks(checkpoint: str) -> tuple[str, dict[str, set[int]]] | None:
    """The DeepSpeed folder of a checkpoint (`global_step<N>`, named by its `latest` file when there is one) and the
    process ranks it holds ZeRO shards of, per kind (`optim`: every ZeRO stage; `model`: ZeRO-3's partitioned
    weights). None when the checkpoint has no DeepSpeed folder."""
    latest = os.path.join(checkpoint, "latest")
    if os.path.isfile(latest):
        with open(latest) as f:
            tags = [f.read().strip()]
    else:
        tags = sorted(name for name in os.listdir(checkpoint) if name.startswith("global_step"))
    tags = [t for t in tags if os.path.isdir(os.path.join(checkpoint, t))]
    if not tags:
        return None
    folder = os.path.join(checkpoint, tags[-1])
    ranks: dict[str, set[int]] = {"optim": set(), "model": set()}
    for name in os.listdir(folder):
        if m := _DEEPSPEED_SHARD_RE.match(name):
            ranks[m.group(2)].add(int(m.group(1)))
    return folder, ranks


def check_deepspeed_checkpoint(checkpoint: str, world_size: int) -> None:
    """Refuses a checkpoint DeepSpeed could not resume on `world_size` processes: no DeepSpeed folder, or ZeRO shards
    missing for some process (a shard lost or not copied) or written by another number of processes. Without this
    check the process lacking its shard fails alone and the others wait for it in a collective."""
    found = deepspeed_shard_ranks(checkpoint)
    if found is None:
        raise ValueError(
            f"{checkpoint} has no DeepSpeed global_step* folder, so DeepSpeed cannot resume from it: it was not written "
            "by a DeepSpeed run (or is incomplete). Resume a DeepSpeed run from a checkpoint of a DeepSpeed run, or "
            "start a new run from the checkpoint's model weights (model_name_or_path)."
        )
    folder, ranks = found
    expected = set(range(world_size))
    for kind, held in ranks.items():
        if kind == "model" and not held:
            continue  # ZeRO-1/2: one unpartitioned model file (mp_rank_00_model_states.pt)
        if held != expected:
            missing, extra = sorted(expected - held), sorted(held - expected)
            detail = []
            if missing:
                detail.append(f"no {kind} shard of process(es) {', '.join(map(str, missing))}")
            if extra:
                detail.append(
                    f"{kind} shards of process(es) {', '.join(map(str, extra))} beyond the {world_size} running"
                )
            raise ValueError(
                f"{folder} holds ZeRO {kind} shards of processes {sorted(held)}, but this run has {world_size} "
                f"processes: {'; '.join(detail)}. Resume with all of the checkpoint's shard files "
                f"(zero_pp_rank_<r>_mp_rank_00_{kind}_states.pt for every process r), on the number of processes that "
                "wrote them, or resume from an earlier complete checkpoint."
            )
