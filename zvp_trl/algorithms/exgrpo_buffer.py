# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""ExGRPO's experience buffer (pure; no trainer inside): the replicated, bounded store of the correct trajectories of
partially solved questions (int32 token ids, float32 log-probs), bucketed by each question's latest number of correct
completions, and checkpointed as one binary file (`save` / `load`)."""

import hashlib
import json
import os
import struct
import sys
from collections import OrderedDict

import numpy as np
import torch


# The buffer's checkpoint file, written next to zvp_state.json (see `ExperienceBuffer.save`).
BUFFER_FILE = "exgrpo_buffer.safetensors"
BUFFER_FORMAT = "zvp_trl.exgrpo_buffer"
BUFFER_FORMAT_VERSION = "1"
# The file's tensors, in file order: lengths first, so that a reader can split the flat token arrays while it streams
# them; 8-byte types before 4-byte ones, so that every tensor starts aligned to its item size.
_LAYOUT = (
    ("prompt_k", torch.int64),  # (P,) latest k of each buffered prompt, in buffer (eviction) order
    ("prompt_lengths", torch.int64),  # (P,) prompt token count of each prompt
    ("trajectory_counts", torch.int64),  # (P,) stored trajectories of each prompt
    ("trajectory_lengths", torch.int64),  # (M,) tokens of each trajectory, prompt by prompt, oldest first
    ("prompt_token_ids", torch.int32),  # (sum of prompt_lengths,) the prompts' token ids, concatenated
    ("token_ids", torch.int32),  # (T,) the trajectories' token ids, concatenated
    ("token_logps", torch.float32),  # (T,) their recorded log-probs
    ("metadata", torch.uint8),  # UTF-8 JSON: {"pids": [...], "rows": [...], "retired": [...]}
)
_SAFETENSORS_DTYPES = {torch.int64: "I64", torch.int32: "I32", torch.float32: "F32", torch.uint8: "U8"}
_IO_BUFFER = 16 * 1024 * 1024  # bytes; per-trajectory writes and reads go through it
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


def _little_endian_bytes(t: torch.Tensor) -> memoryview:
    """The bytes of a contiguous CPU tensor, little-endian (as safetensors stores them), without a copy on
    little-endian machines."""
    array = t.numpy()
    if sys.byteorder != "little":
        array = array.astype(array.dtype.newbyteorder("<"))
    return memoryview(np.ascontiguousarray(array)).cast("B")


class ExperienceBuffer:
    """Replay buffer of correct trajectories, keyed by a stable prompt id (string).

    Per buffered prompt (`entries[pid]`, a dict): `"k"` (its latest number of correct completions out of `G`, with
    `0 < k < G`: a group with no correct completion leaves it unchanged), `"row"` (the dataset row, to rebuild the
    prompt; must be JSON-serialisable), `"prompt_ids"` (the prompt's token ids, a 1-D int32 tensor) and
    `"trajectories"`, a list of `{"ids": completion token ids (1-D int32 tensor), "logps": the per-token log-probs
    recorded when it was collected (1-D float32 tensor)}`. Retired prompts (a group with all `G` correct) are removed
    and remembered in `retired`; they are never buffered again.

    Bounds and eviction: at most `max_prompts` prompts (`None`: unbounded) — when a new prompt would exceed it, the
    least recently updated prompt is evicted (every update with `0 < k < G` moves a prompt to the most-recent end);
    at most `max_trajectories` trajectories per prompt — the oldest are dropped first. Trajectories are deduplicated
    by their token ids (a duplicate keeps its first recorded log-probs). The retired set only holds ids.

    Memory: 8 bytes per stored token (4 for the id, 4 for the log-prob) plus 1.5-3.3 KB per trajectory of Python,
    tensor and allocator overhead: 10,000 prompts x 8 trajectories x 2,048 tokens measured 1.57 GB resident (x 4,096
    tokens: 2.9 GB). Every process holds the whole buffer (benchmarks/README.md, "Per-prompt state at scale", has the
    measurements and the reasons).

    Every update is deterministic, so processes that apply the same (gathered) updates in the same order hold the
    same buffer.

    Checkpoints: `save(directory)` writes the whole buffer to one binary file, `exgrpo_buffer.safetensors`
    (atomically: a temporary file renamed into place), and returns a small JSON-safe summary of it, `state_dict()`
    (counts and the file's SHA-256). `load(directory)` restores a buffer from that file;
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
        non-retired prompt with at least one trajectory enters the buffer. New correct `trajectories` (`(ids, logps)`
        pairs of equal length, as lists or 1-D tensors; stored as int32 / float32 copies) are added to a
        (non-retired) buffered prompt. `prompt_ids` (a list or a 1-D tensor) is stored when the prompt enters."""
        if k >= num_generations:
            self.retire(pid)
            return
        if pid in self.retired or k <= 0:
            return
        trajectories = list(trajectories)
        entry = self.entries.get(pid)
        if entry is None:
            if not trajectories:
                return
            prompt = _token_ids([] if prompt_ids is None else prompt_ids)
            entry = {"k": int(k), "row": row, "prompt_ids": prompt, "trajectories": []}
            self.entries[pid] = entry
        entry["k"] = int(k)
        self.entries.move_to_end(pid)
        stored = entry["trajectories"]
        for ids, logps in trajectories:
            ids = _token_ids(ids)
            if ids.numel() == 0:
                continue
            # Exact comparison with the prompt's trajectories of the same length (at most `max_trajectories` + the
            # new ones): no hash, so no collision and nothing that differs between processes.
            if any(t["ids"].numel() == ids.numel() and torch.equal(t["ids"], ids) for t in stored):
                continue
            logps = _logps(logps)
            if logps.numel() != ids.numel():
                raise ValueError(
                    f"A trajectory has {ids.numel()} token ids but {logps.numel()} log-probs; they must match."
                )
            stored.append({"ids": ids, "logps": logps})
        if self.max_trajectories is not None and len(stored) > self.max_trajectories:
            del stored[: len(stored) - self.max_trajectories]
        while self.max_prompts is not None and len(self.entries) > self.max_prompts:
            self.entries.popitem(last=False)

    # ------------------------------------------------------------------ checkpoints

    def _sections(self) -> list[tuple[str, torch.dtype, list]]:
        """The file's tensors as `(name, dtype, chunks)`, in `_LAYOUT` order: each chunk a 1-D tensor (the stored
        tensors themselves: nothing is concatenated, so saving needs no second copy of the buffer)."""
        entries = list(self.entries.items())
        trajectories = [t for _, entry in entries for t in entry["trajectories"]]
        metadata = {
            "pids": [pid for pid, _ in entries],
            "rows": [entry["row"] for _, entry in entries],
            "retired": sorted(self.retired),
        }
        try:
            encoded = json.dumps(metadata, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        except TypeError as error:
            raise TypeError(f"ExperienceBuffer rows must be JSON-serialisable to be saved: {error}") from None
        chunks = {
            "prompt_k": [torch.tensor([entry["k"] for _, entry in entries], dtype=torch.int64)],
            "prompt_lengths": [torch.tensor([e["prompt_ids"].numel() for _, e in entries], dtype=torch.int64)],
            "trajectory_counts": [torch.tensor([len(e["trajectories"]) for _, e in entries], dtype=torch.int64)],
            "trajectory_lengths": [torch.tensor([t["ids"].numel() for t in trajectories], dtype=torch.int64)],
            "prompt_token_ids": [entry["prompt_ids"] for _, entry in entries],
            "token_ids": [t["ids"] for t in trajectories],
            "token_logps": [t["logps"] for t in trajectories],
            "metadata": [torch.frombuffer(bytearray(encoded), dtype=torch.uint8)],
        }
        return [(name, dtype, chunks[name]) for name, dtype in _LAYOUT]

    def _serialise(self, write) -> dict:
        """Streams the safetensors file to `write` (a callable taking bytes) and returns the summary `state_dict()`
        gives, with the SHA-256 of everything written."""
        sections = self._sections()
        digest = hashlib.sha256()
        header, offset = {}, 0
        for name, dtype, chunks in sections:
            numel = sum(c.numel() for c in chunks)
            end = offset + numel * dtype.itemsize
            header[name] = {"dtype": _SAFETENSORS_DTYPES[dtype], "shape": [numel], "data_offsets": [offset, end]}
            offset = end
        header["__metadata__"] = {"format": BUFFER_FORMAT, "version": BUFFER_FORMAT_VERSION}
        encoded = json.dumps(header, sort_keys=True, separators=(",", ":")).encode("utf-8")
        encoded += b" " * (-len(encoded) % 8)  # safetensors pads the header so that the data starts 8-aligned
        for piece in (struct.pack("<Q", len(encoded)), encoded):
            digest.update(piece)
            write(piece)
        for _, _, chunks in sections:
            for chunk in chunks:
                if chunk.numel():
                    data = _little_endian_bytes(chunk)
                    digest.update(data)
                    write(data)
        counts = {name: sum(c.numel() for c in chunks) for name, _, chunks in sections}
        return {
            "file": BUFFER_FILE,
            "prompts": len(self.entries),
            "trajectories": counts["trajectory_lengths"],
            "tokens": counts["token_ids"],
            "retired": len(self.retired),
            "sha256": digest.hexdigest(),
        }

    def state_dict(self) -> dict:
        """A small JSON-safe summary of the buffer: `{"file", "prompts", "trajectories", "tokens", "retired",
        "sha256"}`, the SHA-256 being that of the file `save` writes (so two buffers have equal summaries exactly when
        they hold the same prompts, rows, tokens, log-probs, order and retired ids). This is what zvp_state.json
        holds; the buffer itself goes to `save(directory)`. Computing it reads the whole buffer once."""
        return self._serialise(lambda data: None)

    def save(self, directory: str) -> dict:
        """Writes the buffer to `directory/exgrpo_buffer.safetensors` (created if needed) and returns its
        `state_dict()` summary.

        The file is a valid safetensors file (readable with `safetensors.torch.load_file`): the flat int32 token ids
        and float32 log-probs of every trajectory, their lengths, the prompts' `k` and token ids, and a uint8 tensor
        holding the JSON of the prompt ids, dataset rows and retired ids. It is streamed trajectory by trajectory
        (no second copy of the buffer in memory) to a temporary file that then replaces the old one, so a process
        killed while saving never leaves half a file under the final name."""
        os.makedirs(directory, exist_ok=True)
        path = os.path.join(directory, BUFFER_FILE)
        tmp = f"{path}.tmp"
        try:
            with open(tmp, "wb", buffering=_IO_BUFFER) as f:
                summary = self._serialise(f.write)
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.remove(tmp)
            raise
        return summary

    def load(self, directory: str) -> dict:
        """Replaces the buffer's prompts and retired ids with those saved in `directory/exgrpo_buffer.safetensors`
        (its `max_prompts` and `max_trajectories` stay this buffer's) and returns the file's `state_dict()` summary.
        The file is read trajectory by trajectory into the buffer's tensors (no second copy in memory); the buffer
        is left unchanged if the file is missing or malformed."""
        path = os.path.join(directory, BUFFER_FILE)
        if not os.path.isfile(path):
            raise FileNotFoundError(
                f"{path} is missing: {directory} holds no saved ExGRPO buffer (ExperienceBuffer.save writes it)."
            )
        with open(path, "rb", buffering=_IO_BUFFER) as f:
            entries, retired, summary = _read_buffer_file(f, path)
        self.entries, self.retired = entries, retired
        return summary

    def contents(self) -> dict:
        """The whole buffer as JSON-safe Python lists: `{"entries": [[pid, {"k", "row", "prompt_ids",
        "trajectories": [{"ids", "logps"}, ...]}], ...], "retired": sorted ids}` (the layout zvp_state.json used
        before the binary file). For inspection and tests: at scale it costs the memory the tensors save."""
        return {
            "entries": [
                [
                    pid,
                    {
                        "k": entry["k"],
                        "row": entry["row"],
                        "prompt_ids": entry["prompt_ids"].tolist(),
                        "trajectories": [
                            {"ids": t["ids"].tolist(), "logps": t["logps"].tolist()} for t in entry["trajectories"]
                        ],
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
                        "trajectories": [
                            {"ids": _token_ids(t["ids"]), "logps": _logps(t["logps"])} for t in entry["trajectories"]
                        ],
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
        with open(path, "rb", buffering=_IO_BUFFER) as f:
            entries, retired, summary = _read_buffer_file(f, path)
        if {**summary, "file": name} != {**state, "file": name}:
            raise ValueError(
                f"{path} does not match the buffer summary in zvp_state.json (file: {summary}, expected: {state}): "
                "the file was replaced or corrupted. Resume from another checkpoint."
            )
        self.entries, self.retired = entries, retired


def _read_buffer_file(f, path: str) -> tuple[OrderedDict, set, dict]:
    """Parses a file written by `ExperienceBuffer.save` from the open binary file `f`, returning the entries, the
    retired ids and the file's summary (as `ExperienceBuffer.state_dict()`). Raises `ValueError` if it is not such a
    file or is truncated."""
    digest = hashlib.sha256()

    def read_exact(n: int) -> bytes:
        data = f.read(n)
        if len(data) != n:
            raise ValueError(f"{path} is truncated.")
        digest.update(data)
        return data

    def read_into(t: torch.Tensor) -> torch.Tensor:
        if t.numel():
            view = memoryview(t.numpy()).cast("B")
            if f.readinto(view) != len(view):
                raise ValueError(f"{path} is truncated.")
            digest.update(view)
            if sys.byteorder != "little":  # the file is little-endian
                t.numpy().byteswap(inplace=True)
        return t

    try:
        (size,) = struct.unpack("<Q", read_exact(8))
        if size > 100_000_000:
            raise ValueError("header too large")
        header = json.loads(read_exact(size))
    except (struct.error, ValueError, UnicodeDecodeError) as error:
        raise ValueError(f"{path} is not a saved ExGRPO buffer ({error}).") from None
    meta = header.pop("__metadata__", {})
    if meta.get("format") != BUFFER_FORMAT:
        raise ValueError(f"{path} is not a saved ExGRPO buffer (format {meta.get('format')!r}).")
    if meta.get("version") != BUFFER_FORMAT_VERSION:
        raise ValueError(
            f"{path} was saved in ExGRPO buffer format version {meta.get('version')!r}; this zvp_trl reads version "
            f"{BUFFER_FORMAT_VERSION}. Load it with the zvp_trl version that wrote it."
        )
    offset, numels = 0, {}
    if sorted(header) != sorted(name for name, _ in _LAYOUT):
        raise ValueError(f"{path} holds the tensors {sorted(header)}, not those of a saved ExGRPO buffer.")
    for name, dtype in _LAYOUT:  # the file order `save` writes
        info = header[name]
        numels[name] = info["shape"][0] if len(info["shape"]) == 1 else -1
        expected = [offset, offset + numels[name] * dtype.itemsize]
        if info["dtype"] != _SAFETENSORS_DTYPES[dtype] or numels[name] < 0 or info["data_offsets"] != expected:
            raise ValueError(f"{path}: tensor {name!r} is not laid out as `ExperienceBuffer.save` writes it.")
        offset = expected[1]

    def read_flat(name: str, dtype: torch.dtype) -> torch.Tensor:
        return read_into(torch.empty(numels[name], dtype=dtype))

    def read_split(name: str, dtype: torch.dtype, lengths: list[int]) -> list[torch.Tensor]:
        if sum(lengths) != numels[name]:
            raise ValueError(f"{path}: the lengths do not add up to the size of {name!r}.")
        return [read_into(torch.empty(n, dtype=dtype)) for n in lengths]

    k = read_flat("prompt_k", torch.int64).tolist()
    prompt_lengths = read_flat("prompt_lengths", torch.int64).tolist()
    counts = read_flat("trajectory_counts", torch.int64).tolist()
    lengths = read_flat("trajectory_lengths", torch.int64).tolist()
    if not len(k) == len(prompt_lengths) == len(counts) or sum(counts) != len(lengths):
        raise ValueError(f"{path}: the per-prompt tensors disagree in size.")
    prompts = read_split("prompt_token_ids", torch.int32, prompt_lengths)
    ids = read_split("token_ids", torch.int32, lengths)
    logps = read_split("token_logps", torch.float32, lengths)
    metadata = json.loads(bytes(read_flat("metadata", torch.uint8).numpy()).decode("utf-8"))
    if f.read(1):
        raise ValueError(f"{path} has trailing bytes after its tensors.")
    if not len(metadata["pids"]) == len(metadata["rows"]) == len(k):
        raise ValueError(f"{path}: the metadata does not list one id and one row per prompt.")
    entries, start = OrderedDict(), 0
    for i, pid in enumerate(metadata["pids"]):
        stop = start + counts[i]
        trajectories = [{"ids": ids[j], "logps": logps[j]} for j in range(start, stop)]
        entries[pid] = {
            "k": int(k[i]),
            "row": metadata["rows"][i],
            "prompt_ids": prompts[i],
            "trajectories": trajectories,
        }
        start = stop
    retired = set(metadata["retired"])
    summary = {
        "file": BUFFER_FILE,
        "prompts": len(entries),
        "trajectories": len(lengths),
        "tokens": numels["token_ids"],
        "retired": len(retired),
        "sha256": digest.hexdigest(),
    }
    return entries, retired, summary
