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
from dataclasses import dataclass


STATE_FILE = "zvp_state.json"
WRITER_KEY = "written_by"  # in STATE_FILE: the trainer class and method parts that wrote the checkpoint
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


# The files one of which holds a saved model's weights (transformers' and PEFT's names).
MODEL_WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
    "adapter_model.safetensors",
    "adapter_model.bin",
)


def has_model_weights(path: str) -> bool:
    """Whether the folder `path` holds a saved model's (or adapter's) weights."""
    return any(os.path.isfile(os.path.join(path, name)) for name in MODEL_WEIGHT_FILES)


def check_same_resume_checkpoint(found: list[str | None], output_dir: str, requested: str) -> None:
    """Checks that every process of a run finds the same complete checkpoint to resume from on its own disk.

    `found[i]` is the complete checkpoint process `i` found (the path it was given, or its last complete one for
    `resume_from_checkpoint=True`), or None; one entry for a single process. Every process must find the same one: on several nodes without a shared
    disk, transformers writes checkpoints from the first node's main process only (unless `save_on_each_node=True`),
    so the other nodes find nothing to resume from, and resuming them from empty per-prompt state would be a silent
    wrong result. Raises a `ValueError` that names the processes and the fix; returns when they agree (each process
    then resumes from its own path).
    """
    names = {None if path is None else os.path.basename(os.path.normpath(path)) for path in found}
    if names == {None}:
        raise ValueError(
            f"resume_from_checkpoint={requested}, but no process finds a complete checkpoint: {output_dir} holds no "
            "complete checkpoint (checkpoint-<step> with trainer_state.json and zvp_state.json). Pass a checkpoint "
            "path, or None to start from scratch."
        )
    if None in names:
        have = [i for i, path in enumerate(found) if path is not None]
        lack = [i for i, path in enumerate(found) if path is None]
        raise ValueError(
            f"resume_from_checkpoint={requested}: processes {have} find a complete checkpoint "
            f"({sorted(n for n in names if n is not None)}) but processes {lack} find none in {output_dir} on their "
            "disk. On several nodes without a shared disk only the first node writes checkpoints unless "
            "save_on_each_node=True; set it (or put output_dir on a disk every node shares), or copy the checkpoint "
            "to every node, then resume."
        )
    if len(names) > 1:
        per_process = ", ".join(f"process {i}: {os.path.basename(os.path.normpath(p))}" for i, p in enumerate(found))
        raise ValueError(
            f"resume_from_checkpoint={requested}: the processes find different last complete checkpoints "
            f"({per_process}), e.g. one node's disk holds a checkpoint the others lack. Pass the path of a checkpoint "
            "every node holds."
        )


_DEEPSPEED_SHARD_RE = re.compile(
    r"^(?P<prefix>\w+_)?zero_pp_rank_(?P<dp>\d+)_mp_rank_(?P<mp>\d+)_?(?P<kind>optim|model)_states\.pt$"
)
_DEEPSPEED_MODEL_RE = re.compile(r"^mp_rank_(?P<mp>\d+)_model_states\.pt$")
_GLOBAL_STEP_RE = re.compile(r"^global_step(\d+)$")


@dataclass
class DeepSpeedShards:
    """The ZeRO shard files of one DeepSpeed checkpoint folder (`global_step<N>/`): per kind (`optim`: every ZeRO
    stage >= 1; `model`: ZeRO-3's partitioned weights), the `(data-parallel rank, model-parallel rank)` pairs held and
    the file-name prefix (`bf16_` in bf16 runs); and the model-parallel ranks of unpartitioned model files
    (`mp_rank_<m>_model_states.pt`, ZeRO-0/1/2)."""

    folder: str
    shards: dict[str, set[tuple[int, int]]]
    prefixes: dict[str, str]
    whole_models: set[int]


def deepspeed_shard_ranks(checkpoint: str) -> DeepSpeedShards | None:
    """The DeepSpeed folder of a checkpoint and the shards it holds (see `DeepSpeedShards`): the folder its `latest`
    file names (what DeepSpeed loads), else the highest `global_step<N>`. None when there is no such folder."""
    latest = os.path.join(checkpoint, "latest")
    if os.path.isfile(latest):
        with open(latest) as f:
            tag = f.read().strip()
    else:
        steps = sorted((int(m.group(1)), n) for n in os.listdir(checkpoint) if (m := _GLOBAL_STEP_RE.match(n)))
        tag = steps[-1][1] if steps else None
    if tag is None or not os.path.isdir(os.path.join(checkpoint, tag)):
        return None
    folder = os.path.join(checkpoint, tag)
    found = DeepSpeedShards(folder, {"optim": set(), "model": set()}, {}, set())
    for name in os.listdir(folder):
        if m := _DEEPSPEED_SHARD_RE.match(name):
            found.shards[m["kind"]].add((int(m["dp"]), int(m["mp"])))
            found.prefixes[m["kind"]] = m["prefix"] or ""
        elif m := _DEEPSPEED_MODEL_RE.match(name):
            found.whole_models.add(int(m["mp"]))
    return found


def _missing_description(kind: str, prefix: str, pairs: list[tuple[int, int]]) -> str:
    names = [f"{prefix}zero_pp_rank_{dp}_mp_rank_{mp:02d}_{kind}_states.pt" for dp, mp in pairs]
    shown = ", ".join(names[:4]) + (f" and {len(names) - 4} more" if len(names) > 4 else "")
    return f"no {kind} shard of data-parallel process(es) {', '.join(str(dp) for dp in sorted({d for d, _ in pairs}))} ({shown})"


def check_deepspeed_checkpoint(checkpoint: str, world_size: int, universal: bool = False) -> None:
    """Refuses a checkpoint DeepSpeed could not resume on `world_size` processes: no DeepSpeed folder, no model state,
    or ZeRO shards missing for some process (a shard lost or not copied) or written by another number of processes.
    Without this check the process lacking its shard fails alone and the others wait for it in a collective.

    With model parallelism (AutoTP) the shards are per (data-parallel rank, model-parallel rank): the model-parallel
    degree is read from the files. `universal=True` (DeepSpeed's `checkpoint.load_universal`, which reshards a
    universal checkpoint onto any number of processes) skips the per-process check."""
    if not os.path.isdir(checkpoint):
        raise FileNotFoundError(f"{checkpoint} does not exist: resume from an existing checkpoint folder.")
    if universal:
        return
    found = deepspeed_shard_ranks(checkpoint)
    if found is None:
        raise ValueError(
            f"{checkpoint} has no DeepSpeed global_step* folder (named by its `latest` file), so DeepSpeed cannot "
            "resume from it: it was not written by a DeepSpeed run (or is incomplete). Resume a DeepSpeed run from a "
            "checkpoint of a DeepSpeed run, or start a new run from the checkpoint's model weights "
            "(model_name_or_path)."
        )
    optim, model = found.shards["optim"], found.shards["model"]
    if not optim and not model:
        if found.whole_models:
            return  # ZeRO-0: whole model and optimizer in mp_rank_<m>_model_states.pt, nothing per process
        raise ValueError(
            f"{found.folder} holds neither ZeRO shards nor a model state file (mp_rank_00_model_states.pt): it is "
            "incomplete. Resume from an earlier complete checkpoint."
        )
    if not model and not found.whole_models:
        raise ValueError(
            f"{found.folder} holds ZeRO optimizer shards but no model state (neither ZeRO-3's "
            "zero_pp_rank_<r>_mp_rank_<m>_model_states.pt nor mp_rank_<m>_model_states.pt): it is incomplete. Resume "
            "from an earlier complete checkpoint."
        )
    mp_ranks = {mp for _, mp in optim | model} | found.whole_models
    mp_degree = max(mp_ranks) + 1
    dp_degree = world_size // mp_degree if world_size % mp_degree == 0 else None
    for kind, held in found.shards.items():
        if kind == "model" and not held:
            continue  # ZeRO-1/2: unpartitioned model files (mp_rank_<m>_model_states.pt)
        held_dp = sorted({dp for dp, _ in held})
        if dp_degree is None:
            raise ValueError(
                f"{found.folder} was written with {mp_degree}-way model parallelism, which does not divide the "
                f"{world_size} processes of this run. Resume on a multiple of {mp_degree} processes (the number that "
                "wrote the checkpoint), or from a universal checkpoint (checkpoint.load_universal)."
            )
        expected = {(dp, mp) for dp in range(dp_degree) for mp in range(mp_degree)}
        if held == expected:
            continue
        missing, extra = sorted(expected - held), sorted(held - expected)
        detail = []
        if missing:
            detail.append(_missing_description(kind, found.prefixes.get(kind, ""), missing))
        if extra:
            beyond = ", ".join(map(str, sorted({dp for dp, _ in extra})))
            detail.append(f"{kind} shards of data-parallel process(es) {beyond} beyond the {dp_degree} running")
        raise ValueError(
            f"{found.folder} holds ZeRO {kind} shards of data-parallel processes {held_dp}, but this run has "
            f"{dp_degree} data-parallel processes ({world_size} in all): {'; '.join(detail)}. Resume with all of "
            "the checkpoint's shard files, on the number of processes that wrote them, or from an earlier complete "
            "checkpoint (or from a universal checkpoint, checkpoint.load_universal, to change the process count)."
        )
