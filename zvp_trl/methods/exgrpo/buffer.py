# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""ExGRPO's experience buffer (pure; no trainer inside): the replicated, bounded store of the correct trajectories of
partially solved questions (int32 token ids, float32 log-probs; for a trajectory with tool results, also its tool mask
and messages), bucketed by each question's latest number of correct completions, and checkpointed as one safetensors
file (`save` / `load`)."""

import hashlib
import json
import os
from collections import OrderedDict

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save, save_file


# The buffer's checkpoint file, written next to zvp_state.json (see `ExperienceBuffer.save`).
BUFFER_FILE = "exgrpo_buffer.safetensors"
BUFFER_FORMAT = "zvp_trl.exgrpo_buffer"
BUFFER_FORMAT_VERSION = "2"
# The file's header metadata is this one key: safetensors writes the metadata map in an order that differs from one
# process to the next, so a second key would make the file's bytes (and its SHA-256) differ between processes and
# runs. Version 1 files (no tool masks or messages) carry {"format": BUFFER_FORMAT, "version": "1"} and still load.
_HEADER = {"format": f"{BUFFER_FORMAT}/{BUFFER_FORMAT_VERSION}"}
# The file's tensors (all 1-D). The safetensors library lays them out itself (aligned, in its own order).
_TENSORS = {
    "prompt_k": torch.int64,  # (P,) latest k of each buffered prompt, in buffer (eviction) order
    "prompt_lengths": torch.int64,  # (P,) prompt token count of each prompt
    "trajectory_counts": torch.int64,  # (P,) stored trajectories of each prompt
    "trajectory_lengths": torch.int64,  # (M,) tokens of each trajectory, prompt by prompt, oldest first
    "prompt_token_ids": torch.int32,  # (sum of prompt_lengths,) the prompts' token ids, concatenated
    "token_ids": torch.int32,  # (T,) the trajectories' token ids, concatenated
    "token_logps": torch.float32,  # (T,) their recorded log-probs
    "metadata": torch.uint8,  # UTF-8 JSON: {"pids": [...], "rows": [...], "retired": [...], "messages": [...]?}
}
# Only in a file whose buffer holds a trajectory with tool results (version 2): the others' tokens are all the model's.
_TOOL_TENSORS = {
    "tool_masked": torch.uint8,  # (M,) 1 for a trajectory with a stored tool mask, 0 for one without
    "tool_mask": torch.uint8,  # (tokens of the masked trajectories,) their masks, concatenated: 1 model, 0 tool result
}
_READ_CHUNK = 16 * 1024 * 1024  # bytes read at a time to hash the file
_INT32 = torch.iinfo(torch.int32)


def _token_ids(values) -> torch.Tensor:
    """A 1-D int32 CPU copy of `values` (a list or an integer tensor); ids outside int32 are refused."""
    t = torch.as_tensor(values)
    if t.dim() != 1:
        raise ValueError(f"Token ids must be 1-D, got shape {tuple(t.shape)}.")
    if t.numel() == 0:
        return torch.zeros(0, dtype=torch.int32)
    if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
        raise TypeError(f"Token ids must be integers, got {t.dtype}.")
    if int(t.min()) < _INT32.min or int(t.max()) > _INT32.max:
        raise ValueError("Token ids must fit in int32 (the buffer stores them as int32).")
    return t.detach().to(device="cpu", dtype=torch.int32, copy=True)


def _logps(values) -> torch.Tensor:
    """A 1-D float32 CPU copy of `values`."""
    t = torch.as_tensor(values, dtype=torch.float32) if not torch.is_tensor(values) else values
    if t.dim() != 1:
        raise ValueError(f"Log-probs must be 1-D, got shape {tuple(t.shape)}.")
    return t.detach().to(device="cpu", dtype=torch.float32, copy=True)


def _tool_mask(values, length: int) -> torch.Tensor | None:
    """A 1-D uint8 CPU copy of a trajectory's tool mask (TRL's `tool_mask`: 1 for the model's own tokens, 0 for
    tool-result tokens), or None when every token is the model's (nothing to store)."""
    if values is None:
        return None
    t = torch.as_tensor(values)
    if t.dim() != 1 or t.numel() != length:
        raise ValueError(
            f"A trajectory's tool mask must be 1-D with one value per token id ({length}), got shape {tuple(t.shape)}."
        )
    if t.is_complex() or not bool(((t == 0) | (t == 1)).all()):
        raise ValueError("A tool mask holds 1 (the model's own tokens) and 0 (tool-result tokens) only.")
    if bool((t == 1).all()):
        return None
    return t.detach().to(device="cpu", dtype=torch.uint8, copy=True)


def _trajectory(values) -> dict:
    """A trajectory as the buffer stores it, from `(ids, logps)`, `(ids, logps, tool_mask)` or `(ids, logps,
    tool_mask, messages)`."""
    if not 2 <= len(values) <= 4:
        raise ValueError(
            "A trajectory is (ids, logps), (ids, logps, tool_mask) or (ids, logps, tool_mask, messages); got "
            f"{len(values)} values."
        )
    ids, logps, mask, messages = (*values, None, None)[:4]
    ids, logps = _token_ids(ids), _logps(logps)
    if logps.numel() != ids.numel():
        raise ValueError(f"A trajectory has {ids.numel()} token ids but {logps.numel()} log-probs; they must match.")
    trajectory = {"ids": ids, "logps": logps}
    mask = _tool_mask(mask, ids.numel())
    if mask is not None:
        trajectory["tool_mask"] = mask
    if messages is not None:
        trajectory["messages"] = messages
    return trajectory


def _file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_READ_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class ExperienceBuffer:
    """Replay buffer of correct trajectories, keyed by a stable prompt id (string).

    Per buffered prompt (`entries[pid]`, a dict): `"k"` (its latest number of correct completions out of `G`, with
    `0 < k < G`: a group with no correct completion leaves it unchanged), `"row"` (the dataset row, to rebuild the
    prompt; must be JSON-serialisable), `"prompt_ids"` (the prompt's token ids, a 1-D int32 tensor) and
    `"trajectories"`, a list of `{"ids": completion token ids (1-D int32 tensor), "logps": the per-token log-probs
    recorded when it was collected (1-D float32 tensor)}`. A trajectory with tool-result tokens (a multi-turn rollout
    of TRL's tool loop) also has `"tool_mask"` (1-D uint8 tensor, TRL's `tool_mask`: 1 for the model's own tokens, 0
    for tool results), and `"messages"` when it was collected with them (the messages TRL handed the reward functions,
    JSON-serialisable); a trajectory without `"tool_mask"` is all the model's tokens. Retired prompts (a group with all
    `G` correct) are removed and remembered in `retired`; they are never buffered again.

    Bounds and eviction: at most `max_prompts` prompts (`None`: unbounded) — when a new prompt would exceed it, the
    least recently updated prompt is evicted (every update with `0 < k < G` moves a prompt to the most-recent end);
    at most `max_trajectories` trajectories per prompt — the oldest are dropped first. Trajectories are deduplicated
    by their token ids (a duplicate keeps its first recorded log-probs, tool mask and messages). The retired set only
    holds ids.

    Memory: 8 bytes per stored token (4 for the id, 4 for the log-prob; 1 more for a trajectory with tool results)
    plus 1.5-3.3 KB per trajectory of Python, tensor and allocator overhead: 10,000 prompts x 8 trajectories x 2,048
    tokens measured 1.56 GB resident (x 4,096 tokens: 3.0 GB). Every process holds the whole buffer
    (benchmarks/README.md, "Per-prompt state at scale", has the measurements and the reasons).

    Every update is deterministic, so processes that apply the same (gathered) updates in the same order hold the
    same buffer.

    Checkpoints: `save(directory)` writes the whole buffer to one safetensors file, `exgrpo_buffer.safetensors`, with
    the `safetensors` library (atomically: a temporary file renamed into place), and returns a small JSON-safe summary
    of it, `state_dict()` (counts and the file's SHA-256). `load(directory)` restores a buffer from that file;
    `load_state_dict(state, directory)` restores it from a checkpoint folder and checks that the file is the one
    `state` describes. `load_state_dict` also accepts the inline layout of `contents()`, in which zvp_trl wrote the
    buffer into zvp_state.json before the binary file, so older checkpoints keep loading.
    """

    def __init__(self, max_prompts: int | None = None, max_trajectories: int | None = None):
        self.max_prompts = max_prompts
        self.max_trajectories = max_trajectories
        self.entries: OrderedDict[str, dict] = OrderedDict()
        self.retired: set[str] = set()

    def __len__(self) -> int:
        return len(self.entries)

    def __contains__(self, pid) -> bool:
        return pid in self.entries

    def buckets(self) -> dict[int, list[str]]:
        """`k` -> buffered prompt ids with that latest `k` (in buffer order), non-empty buckets only."""
        out: dict[int, list[str]] = {}
        for pid, entry in self.entries.items():
            if entry["trajectories"]:
                out.setdefault(entry["k"], []).append(pid)
        return out

    def retire(self, pid: str) -> None:
        self.entries.pop(pid, None)
        self.retired.add(pid)

    def update(
        self,
        pid: str,
        k: int,
        num_generations: int,
        row: dict | None = None,
        prompt_ids=None,
        trajectories=(),
    ) -> None:
        """Applies one group's outcome: `k == G` retires the prompt; `k == 0` changes nothing (a buffered prompt keeps
        its bucket and its place in the eviction order, as the official code skips bucket updates at `k <= 0`, so no
        buffered prompt is ever in a bucket 0); otherwise a buffered prompt moves to bucket `k`, and an unbuffered,
        non-retired prompt with at least one trajectory enters the buffer. New correct `trajectories` are added to a
        (non-retired) buffered prompt: each `(ids, logps)`, `(ids, logps, tool_mask)` or `(ids, logps, tool_mask,
        messages)`, the first three of equal length, as lists or 1-D tensors (stored as int32 / float32 / uint8
        copies; a tool mask of all ones, or None, stores nothing). `prompt_ids` (a list or a 1-D tensor) is stored
        when the prompt enters."""
        if k >= num_generations:
            self.retire(pid)
            return
        if pid in self.retired or k <= 0:
            return
        # Checked and copied before anything changes, so that a refused trajectory leaves the buffer as it was.
        trajectories = [_trajectory(t) for t in trajectories]
        entry = self.entries.get(pid)
        if entry is None:
            if not any(t["ids"].numel() for t in trajectories):
                return
            prompt = _token_ids([] if prompt_ids is None else prompt_ids)
            entry = {"k": int(k), "row": row, "prompt_ids": prompt, "trajectories": []}
            self.entries[pid] = entry
        entry["k"] = int(k)
        self.entries.move_to_end(pid)
        stored = entry["trajectories"]
        for new in trajectories:
            ids = new["ids"]
            if ids.numel() == 0:
                continue
            # Exact comparison with the prompt's trajectories of the same length (at most `max_trajectories` + the
            # new ones): no hash, so no collision and nothing that differs between processes.
            if any(t["ids"].numel() == ids.numel() and torch.equal(t["ids"], ids) for t in stored):
                continue
            stored.append(new)
        if self.max_trajectories is not None and len(stored) > self.max_trajectories:
            del stored[: len(stored) - self.max_trajectories]
        while self.max_prompts is not None and len(self.entries) > self.max_prompts:
            self.entries.popitem(last=False)

    # ------------------------------------------------------------------ checkpoints

    def _tensors(self) -> dict[str, torch.Tensor]:
        """The file's tensors: the per-prompt and per-trajectory values, and every trajectory's tokens concatenated
        into one tensor per kind (a copy of the stored tokens: safetensors writes contiguous tensors)."""
        entries = list(self.entries.values())
        trajectories = [t for entry in entries for t in entry["trajectories"]]
        metadata = {
            "pids": list(self.entries),
            "rows": [entry["row"] for entry in entries],
            "retired": sorted(self.retired),
        }
        if any("messages" in t for t in trajectories):
            metadata["messages"] = [t.get("messages") for t in trajectories]
        try:
            encoded = json.dumps(metadata, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        except TypeError as error:
            raise TypeError(
                f"ExperienceBuffer rows and messages must be JSON-serialisable to be saved: {error}"
            ) from None

        def concatenated(chunks, dtype):
            return torch.cat(chunks) if chunks else torch.zeros(0, dtype=dtype)

        def counts(values):
            return torch.tensor(values, dtype=torch.int64)

        tensors = {
            "prompt_k": counts([entry["k"] for entry in entries]),
            "prompt_lengths": counts([entry["prompt_ids"].numel() for entry in entries]),
            "trajectory_counts": counts([len(entry["trajectories"]) for entry in entries]),
            "trajectory_lengths": counts([t["ids"].numel() for t in trajectories]),
            "prompt_token_ids": concatenated([entry["prompt_ids"] for entry in entries], torch.int32),
            "token_ids": concatenated([t["ids"] for t in trajectories], torch.int32),
            "token_logps": concatenated([t["logps"] for t in trajectories], torch.float32),
            "metadata": torch.frombuffer(bytearray(encoded), dtype=torch.uint8),
        }
        if any("tool_mask" in t for t in trajectories):
            flags = [int("tool_mask" in t) for t in trajectories]
            tensors["tool_masked"] = torch.tensor(flags, dtype=torch.uint8)
            tensors["tool_mask"] = concatenated(
                [t["tool_mask"] for t in trajectories if "tool_mask" in t], torch.uint8
            )
        return tensors

    def _summary(self, sha256: str) -> dict:
        return {
            "file": BUFFER_FILE,
            "prompts": len(self.entries),
            "trajectories": sum(len(entry["trajectories"]) for entry in self.entries.values()),
            "tokens": sum(t["ids"].numel() for entry in self.entries.values() for t in entry["trajectories"]),
            "retired": len(self.retired),
            "sha256": sha256,
        }

    def state_dict(self) -> dict:
        """A small JSON-safe summary of the buffer: `{"file", "prompts", "trajectories", "tokens", "retired",
        "sha256"}`, the SHA-256 being that of the file `save` writes (so two buffers have equal summaries exactly when
        they hold the same prompts, rows, tokens, log-probs, tool masks, messages, order and retired ids). This is
        what zvp_state.json holds; the buffer itself goes to `save(directory)`, which returns the same summary.
        Computing it here serialises the buffer in memory (two copies of its tokens, transiently)."""
        data = save(self._tensors(), metadata=_HEADER)
        return self._summary(hashlib.sha256(data).hexdigest())

    def save(self, directory: str) -> dict:
        """Writes the buffer to `directory/exgrpo_buffer.safetensors` (created if needed) and returns its
        `state_dict()` summary.

        The file is a safetensors file written by the `safetensors` library (readable with
        `safetensors.torch.load_file`): the flat int32 token ids and float32 log-probs of every trajectory, their
        lengths, the prompts' `k` and token ids, a uint8 tensor holding the JSON of the prompt ids, dataset rows,
        retired ids (and the messages of trajectories that have them) and, when a trajectory has tool results, the
        tool masks. It is written to a temporary file that then replaces the old one, so a process killed while
        saving never leaves half a file under the final name. Saving holds one extra copy of the stored tokens (the
        concatenated tensors) while it writes: at 10,000 prompts x 8 x 2,048 tokens a peak of 2.89 GB for a 1.56 GB
        buffer, where the earlier hand-written writer, streaming trajectory by trajectory, peaked at 1.64 GB
        (benchmarks/README.md); the library is used all the same, the extra copy lasting only while one process
        saves."""
        os.makedirs(directory, exist_ok=True)
        path = os.path.join(directory, BUFFER_FILE)
        tmp = f"{path}.tmp"
        try:
            save_file(self._tensors(), tmp, metadata=_HEADER)
            summary = self._summary(_file_sha256(tmp))
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.remove(tmp)
            raise
        return summary

    def load(self, directory: str) -> dict:
        """Replaces the buffer's prompts and retired ids with those saved in `directory/exgrpo_buffer.safetensors`
        (its `max_prompts` and `max_trajectories` stay this buffer's) and returns the file's `state_dict()` summary.
        The buffer is left unchanged if the file is missing or malformed."""
        path = os.path.join(directory, BUFFER_FILE)
        if not os.path.isfile(path):
            raise FileNotFoundError(
                f"{path} is missing: {directory} holds no saved ExGRPO buffer (ExperienceBuffer.save writes it)."
            )
        entries, retired, summary = _read_buffer_file(path)
        self.entries, self.retired = entries, retired
        return summary

    def contents(self) -> dict:
        """The whole buffer as JSON-safe Python lists: `{"entries": [[pid, {"k", "row", "prompt_ids",
        "trajectories": [{"ids", "logps"} (plus "tool_mask" and "messages" where stored), ...]}], ...],
        "retired": sorted ids}` (the layout zvp_state.json used before the binary file). For inspection and tests: at
        scale it costs the memory the tensors save."""

        def trajectory(t: dict) -> dict:
            out = {"ids": t["ids"].tolist(), "logps": t["logps"].tolist()}
            if "tool_mask" in t:
                out["tool_mask"] = t["tool_mask"].tolist()
            if "messages" in t:
                out["messages"] = t["messages"]
            return out

        return {
            "entries": [
                [
                    pid,
                    {
                        "k": entry["k"],
                        "row": entry["row"],
                        "prompt_ids": entry["prompt_ids"].tolist(),
                        "trajectories": [trajectory(t) for t in entry["trajectories"]],
                    },
                ]
                for pid, entry in self.entries.items()
            ],
            "retired": sorted(self.retired),
        }

    def load_state_dict(self, state: dict, directory: str | None = None) -> None:
        """Restores the buffer from a checkpoint: `state` is either the inline layout of `contents()` (older
        checkpoints' zvp_state.json), or a `state_dict()` summary, whose file is read from `directory` (the
        checkpoint folder) and must match it (same SHA-256)."""
        if "entries" in state:
            self.entries = OrderedDict(
                (
                    pid,
                    {
                        "k": int(entry["k"]),
                        "row": entry["row"],
                        "prompt_ids": _token_ids(entry["prompt_ids"]),
                        "trajectories": [_inline_trajectory(t) for t in entry["trajectories"]],
                    },
                )
                for pid, entry in state["entries"]
            )
            self.retired = set(state["retired"])
            return
        if directory is None:
            raise ValueError(
                "This ExperienceBuffer state is a summary of a saved buffer file: pass the folder that holds "
                f"{state.get('file', BUFFER_FILE)} as `directory`."
            )
        name = os.path.basename(state.get("file", BUFFER_FILE))
        path = os.path.join(directory, name)
        if not os.path.isfile(path):
            raise FileNotFoundError(
                f"{path} is missing: the checkpoint's zvp_state.json describes an ExGRPO buffer saved in that file. "
                "Copy the whole checkpoint folder, or resume from another checkpoint."
            )
        entries, retired, summary = _read_buffer_file(path)
        if {**summary, "file": name} != {**state, "file": name}:
            raise ValueError(
                f"{path} does not match the buffer summary in zvp_state.json (file: {summary}, expected: {state}): "
                "the file was replaced or corrupted. Resume from another checkpoint."
            )
        self.entries, self.retired = entries, retired


def _inline_trajectory(t: dict) -> dict:
    """A trajectory of the inline JSON layout (`contents()`) as the buffer stores it."""
    out = {"ids": _token_ids(t["ids"]), "logps": _logps(t["logps"])}
    mask = _tool_mask(t.get("tool_mask"), out["ids"].numel())
    if mask is not None:
        out["tool_mask"] = mask
    if t.get("messages") is not None:
        out["messages"] = t["messages"]
    return out


def _file_version(metadata: dict | None, path: str) -> str:
    """The format version of a buffer file from its safetensors header metadata; raises if it is not one."""
    metadata = metadata or {}
    if metadata == {"format": BUFFER_FORMAT, "version": "1"}:
        return "1"
    name, _, version = metadata.get("format", "").partition("/")
    if name != BUFFER_FORMAT or set(metadata) != {"format"}:
        raise ValueError(f"{path} is not a saved ExGRPO buffer (format {metadata.get('format')!r}).")
    if version != BUFFER_FORMAT_VERSION:
        raise ValueError(
            f"{path} was saved in ExGRPO buffer format version {version!r}; this zvp_trl reads versions 1 to "
            f"{BUFFER_FORMAT_VERSION}. Load it with the zvp_trl version that wrote it."
        )
    return version


def _read_buffer_file(path: str) -> tuple[OrderedDict, set, dict]:
    """Reads a file written by `ExperienceBuffer.save` (any version this module reads) with the safetensors library,
    returning the entries, the retired ids and the file's summary (as `ExperienceBuffer.state_dict()`). Raises
    `ValueError` naming the file if it is not such a file, or is truncated or corrupted."""
    sha256 = _file_sha256(path)
    try:
        # Memory-mapped: each trajectory is copied out of the mapped file into a tensor of its own.
        with safe_open(path, framework="pt", device="cpu") as f:
            version = _file_version(f.metadata(), path)
            names = set(f.keys())
            expected = set(_TENSORS) | (set(_TOOL_TENSORS) if names & set(_TOOL_TENSORS) else set())
            if names != expected or (version == "1" and names & set(_TOOL_TENSORS)):
                raise ValueError(f"{path} holds the tensors {sorted(names)}, not those of a saved ExGRPO buffer.")
            flat = {name: f.get_tensor(name) for name in sorted(names)}
            return _parse_buffer_tensors(flat, path, sha256)
    except SafetensorError as error:
        raise ValueError(
            f"{path} is not a readable safetensors file: it is truncated or corrupted (safetensors: {error}). "
            "Resume from another checkpoint, or copy this one again in full."
        ) from None


def _parse_buffer_tensors(flat: dict[str, torch.Tensor], path: str, sha256: str) -> tuple[OrderedDict, set, dict]:
    for name, t in flat.items():
        dtype = {**_TENSORS, **_TOOL_TENSORS}[name]
        if t.dtype != dtype or t.dim() != 1:
            raise ValueError(f"{path}: tensor {name!r} is not laid out as `ExperienceBuffer.save` writes it.")

    def split(name: str, lengths: list[int]) -> list[torch.Tensor]:
        if sum(lengths) != flat[name].numel():
            raise ValueError(f"{path}: the lengths do not add up to the size of {name!r}.")
        return [part.clone() for part in torch.split(flat[name], lengths)]

    k = flat["prompt_k"].tolist()
    prompt_lengths = flat["prompt_lengths"].tolist()
    counts = flat["trajectory_counts"].tolist()
    lengths = flat["trajectory_lengths"].tolist()
    if not len(k) == len(prompt_lengths) == len(counts) or sum(counts) != len(lengths):
        raise ValueError(f"{path}: the per-prompt tensors disagree in size.")
    if min(prompt_lengths + lengths, default=0) < 0:
        raise ValueError(f"{path}: a length is negative.")
    prompts = split("prompt_token_ids", prompt_lengths)
    ids = split("token_ids", lengths)
    logps = split("token_logps", lengths)
    masks = [None] * len(lengths)
    if "tool_masked" in flat:
        flags = flat["tool_masked"].tolist()
        if len(flags) != len(lengths) or not set(flags) <= {0, 1}:
            raise ValueError(f"{path}: 'tool_masked' does not flag each trajectory with 0 or 1.")
        masked = [i for i, flag in enumerate(flags) if flag]
        for i, mask in zip(masked, split("tool_mask", [lengths[i] for i in masked]), strict=True):
            if not bool((mask <= 1).all()):
                raise ValueError(f"{path}: a tool mask holds a value other than 0 and 1.")
            masks[i] = mask
    try:
        metadata = json.loads(bytes(flat["metadata"].numpy()).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path}: its metadata tensor is not UTF-8 JSON ({error}).") from None
    if not isinstance(metadata, dict) or not {"pids", "rows", "retired"} <= set(metadata):
        raise ValueError(f"{path}: its metadata does not hold the prompt ids, rows and retired ids.")
    if not len(metadata["pids"]) == len(metadata["rows"]) == len(k):
        raise ValueError(f"{path}: the metadata does not list one id and one row per prompt.")
    messages = metadata.get("messages", [None] * len(lengths))
    if not isinstance(messages, list) or len(messages) != len(lengths):
        raise ValueError(f"{path}: the metadata does not list the messages of each trajectory.")
    entries, start = OrderedDict(), 0
    for i, pid in enumerate(metadata["pids"]):
        trajectories = []
        for j in range(start, start + counts[i]):
            trajectory = {"ids": ids[j], "logps": logps[j]}
            if masks[j] is not None:
                trajectory["tool_mask"] = masks[j]
            if messages[j] is not None:
                trajectory["messages"] = messages[j]
            trajectories.append(trajectory)
        entries[pid] = {
            "k": int(k[i]),
            "row": metadata["rows"][i],
            "prompt_ids": prompts[i],
            "trajectories": trajectories,
        }
        start += counts[i]
    retired = set(metadata["retired"])
    summary = {
        "file": BUFFER_FILE,
        "prompts": len(entries),
        "trajectories": len(lengths),
        "tokens": flat["token_ids"].numel(),
        "retired": len(retired),
        "sha256": sha256,
    }
    return entries, retired, summary
