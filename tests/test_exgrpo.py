# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
import hashlib
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from cpu_config import cpu_config_kwargs
from datasets import Dataset
from recording import cloned, record_generations

from zvp_trl.methods.exgrpo import ExGRPOConfig, ExGRPORLZVPConfig, ExGRPORLZVPTrainer, ExGRPOTrainer
from zvp_trl.methods.exgrpo.algorithm import (
    exgrpo_bucket_weights,
    mean_token_entropy,
    policy_shaping,
    replacements_for_retired,
    sample_bucket_counts,
    sample_buffer_prompts,
)
from zvp_trl.methods.exgrpo.buffer import BUFFER_FILE, ExperienceBuffer


G = 4


# ----------------------------------------------------------------------------------------------- pure functions


def normalised(raw):
    total = sum(raw.values())
    return {k: w / total for k, w in raw.items()}


def f32(values):
    """`values` rounded to float32, as the buffer stores log-probs."""
    return torch.tensor(values, dtype=torch.float32).tolist()


def weights_of(exponents):
    """Normalised exp(-e) for each bucket's exponent e, computed by hand."""
    return pytest.approx(normalised({k: math.exp(-e) for k, e in exponents.items()}), abs=1e-12)


@pytest.mark.unit
def test_bucket_weights_count_scale_is_the_default_g8():
    # G=8, every bucket k=1..7 present (4 listed twice: one bucket). N(k; 4, 1) ∝ exp(-(k - 4)^2 / 2).
    weights = exgrpo_bucket_weights([4, 1, 2, 3, 4, 5, 6, 7], 8)
    expected = normalised({k: math.exp(-((k - 4) ** 2) / 2) for k in range(1, 8)})
    assert list(weights) == list(range(1, 8))
    assert weights == pytest.approx(expected, abs=1e-12)
    # The values the official `_normal_mapping` gives, rounded: far from uniform.
    assert weights[4] == pytest.approx(0.3991, abs=1e-4)
    assert weights[3] == weights[5] == pytest.approx(0.2420, abs=1e-4)
    assert weights[2] == weights[6] == pytest.approx(0.0540, abs=1e-4)
    assert weights[1] == weights[7] == pytest.approx(0.0044, abs=1e-4)
    assert exgrpo_bucket_weights([1, 4, 7], 8, mode="count") == weights_of({1: 4.5, 4: 0.0, 7: 4.5})
    # Only the buckets that exist are normalised over: G=4, buckets 1 and 2.
    assert exgrpo_bucket_weights([1, 2], 4) == pytest.approx({1: 0.377541, 2: 0.622459}, abs=1e-6)
    assert exgrpo_bucket_weights([], 4) == {}


@pytest.mark.unit
def test_bucket_weights_count_scale_g16_by_hand():
    # G=16, buckets 1, 6, 8, 9, 15: N(k; 8, 1) -> exponents (k - 8)^2 / 2 = 24.5, 2, 0, 0.5, 24.5.
    weights = exgrpo_bucket_weights([9, 1, 6, 8, 15, 9], 16)
    total = math.exp(-24.5) * 2 + math.exp(-2) + 1 + math.exp(-0.5)
    assert weights[8] == pytest.approx(1 / total, abs=1e-12)  # 0.5741
    assert weights[9] == pytest.approx(math.exp(-0.5) / total, abs=1e-12)  # 0.3482
    assert weights[6] == pytest.approx(math.exp(-2) / total, abs=1e-12)  # 0.0777
    assert weights[1] == weights[15] == pytest.approx(math.exp(-24.5) / total, abs=1e-15)  # 1.3e-11
    assert weights[8] == pytest.approx(0.5741, abs=1e-4) and weights[1] < 1e-10
    assert sum(weights.values()) == pytest.approx(1.0)


@pytest.mark.unit
def test_bucket_weights_accuracy_scale_option_by_hand():
    # N(k/G; 0.5, 1) ∝ exp(-(k/G - 0.5)^2 / 2): nearly uniform. G=8, buckets 1..7.
    weights = exgrpo_bucket_weights(range(1, 8), 8, mode="accuracy")
    expected = normalised({k: math.exp(-((k / 8 - 0.5) ** 2) / 2) for k in range(1, 8)})
    assert weights == pytest.approx(expected, abs=1e-12)
    assert 0.1373 < min(weights.values()) < max(weights.values()) < 0.1474  # 0.137-0.147, rounded
    # G=16, buckets 1, 8, 15: exponents (7/16)^2 / 2 = 0.095703125, 0, 0.095703125.
    assert exgrpo_bucket_weights([1, 8, 15], 16, mode="accuracy") == weights_of(
        {1: 0.095703125, 8: 0.0, 15: 0.095703125}
    )


@pytest.mark.unit
@pytest.mark.parametrize("old, new", [("paper", "accuracy"), ("code", "count")])
def test_bucket_weighting_old_names_are_refused_with_the_new_ones(tmp_path, old, new):
    with pytest.raises(ValueError, match=f"'{old}' was renamed: use '{new}'"):
        exgrpo_bucket_weights([1], 4, mode=old)
    with pytest.raises(ValueError, match=f"exgrpo_bucket_weighting='{old}' was renamed: use '{new}'"):
        ExGRPOConfig(output_dir=str(tmp_path), use_cpu=True, exgrpo_bucket_weighting=old)
    with pytest.raises(ValueError, match="must be one of count, accuracy"):
        exgrpo_bucket_weights([1], 4, mode="uniform")


@pytest.mark.unit
def test_policy_shaping_value_and_gradient():
    w = torch.tensor([1.0, 0.1, 3.0], dtype=torch.float64, requires_grad=True)
    f = policy_shaping(w, beta=0.1)
    assert f.tolist() == pytest.approx([1 / 1.1, 0.5, 3 / 3.1])
    f.sum().backward()
    # d/dw w/(w+b) = b/(w+b)^2
    assert w.grad.tolist() == pytest.approx([0.1 / 1.21, 0.1 / 0.04, 0.1 / 3.1**2])


@pytest.mark.unit
def test_bucket_counts_overflow_is_redistributed():
    for seed in range(5):
        g = torch.Generator().manual_seed(seed)
        # Bucket 1 has almost all the probability but one question: the rest must come from bucket 4.
        assert sample_bucket_counts({1: 1, 4: 10}, {1: 0.99, 4: 0.01}, 5, g) == {1: 1, 4: 4}
    g = torch.Generator().manual_seed(0)
    assert sample_bucket_counts({1: 2, 3: 3}, {1: 0.5, 3: 0.5}, 100, g) == {1: 2, 3: 3}  # capped at the buffer
    a = sample_bucket_counts({2: 50, 3: 50}, {2: 0.3, 3: 0.7}, 20, torch.Generator().manual_seed(7))
    b = sample_bucket_counts({2: 50, 3: 50}, {2: 0.3, 3: 0.7}, 20, torch.Generator().manual_seed(7))
    assert a == b and sum(a.values()) == 20
    counts = sample_bucket_counts({2: 1000, 4: 1000}, {2: 0.25, 4: 0.75}, 400, torch.Generator().manual_seed(1))
    assert 255 < counts[4] < 345  # mean 300, sd 8.7


@pytest.mark.unit
def test_sample_buffer_prompts_without_replacement():
    buckets = {1: ["a", "b"], 2: ["c", "d", "e"]}
    chosen = sample_buffer_prompts(buckets, {1: 0.5, 2: 0.5}, 5, torch.Generator().manual_seed(3))
    assert sorted(chosen) == ["a", "b", "c", "d", "e"]
    chosen = sample_buffer_prompts(buckets, {1: 1.0, 2: 0.0}, 2, torch.Generator().manual_seed(3))
    assert sorted(chosen) == ["a", "b"]


@pytest.mark.unit
def test_mean_token_entropy_uses_valid_tokens_only():
    entropies = torch.tensor([[1.0, 3.0, 100.0], [2.0, 2.0, 2.0], [5.0, 5.0, 5.0]])
    mask = torch.tensor([[1, 1, 0], [1, 1, 1], [0, 0, 0]])
    assert mean_token_entropy(entropies, mask).tolist() == [2.0, 2.0, math.inf]


@pytest.mark.unit
def test_buffer_collect_move_retire_dedup_and_bounds():
    buf = ExperienceBuffer(max_prompts=2, max_trajectories=2)
    buf.update("p", 0, G, row={"prompt": "p"}, prompt_ids=[1], trajectories=[([5], [-0.1])])
    assert "p" not in buf  # k=0 never enters the buffer
    buf.update("p", 2, G, row={"prompt": "p"}, prompt_ids=[1], trajectories=[([5, 6], [-0.1, -0.2])])
    buf.update("p", 1, G, trajectories=[([5, 6], [-9.0, -9.0]), ([7], [-0.3])])  # duplicate ids ignored
    entry = buf.entries["p"]
    assert entry["k"] == 1
    # Stored as int32 ids and float32 log-probs (the first recorded log-probs of a duplicate are kept).
    assert [(t["ids"].dtype, t["logps"].dtype) for t in entry["trajectories"]] == [(torch.int32, torch.float32)] * 2
    assert [t["ids"].tolist() for t in entry["trajectories"]] == [[5, 6], [7]]
    assert [t["logps"].tolist() for t in entry["trajectories"]] == [f32([-0.1, -0.2]), f32([-0.3])]
    assert entry["prompt_ids"].tolist() == [1]
    buf.update("p", 3, G, trajectories=[([8], [-0.4])])  # per-prompt cap 2: the oldest is dropped
    assert [t["ids"].tolist() for t in buf.entries["p"]["trajectories"]] == [[7], [8]]
    buf.update("p", 0, G)  # no correct completion: no bucket 0, p keeps bucket 3 (official: no update at k <= 0)
    assert buf.buckets() == {3: ["p"]} and buf.entries["p"]["k"] == 3
    buf.update("q", 2, G, row={"prompt": "q"}, prompt_ids=[2], trajectories=[([9], [-0.5])])
    buf.update("p", 1, G)  # p becomes the most recently updated
    buf.update("r", 3, G, row={"prompt": "r"}, prompt_ids=[3], trajectories=[([9], [-0.5])])
    assert list(buf.entries) == ["p", "r"]  # cap 2 prompts: q (least recently updated) evicted
    buf.update("p", G, G)  # all correct: retired
    assert "p" not in buf and buf.retired == {"p"}
    buf.update("p", 2, G, row={"prompt": "p"}, prompt_ids=[1], trajectories=[([5], [-0.1])])
    assert "p" not in buf  # retired prompts never come back
    contents = json.loads(json.dumps(buf.contents()))
    other = ExperienceBuffer(max_prompts=2, max_trajectories=2)
    other.load_state_dict(contents)
    assert other.contents() == buf.contents() and other.retired == {"p"}
    assert other.state_dict() == buf.state_dict()


def small_buffer() -> ExperienceBuffer:
    buf = ExperienceBuffer(max_prompts=3, max_trajectories=2)
    buf.update("p", 2, G, row={"prompt": "P?", "n": 1}, prompt_ids=[11, 12], trajectories=[([5, 6], [-0.5, -0.25])])
    buf.update(
        "q", 1, G, row={"prompt": "Q?"}, prompt_ids=[13], trajectories=[([7], [-1.0]), ([8, 9, 10], [0, -2, -3])]
    )
    buf.retire("r")
    buf.retire("a")
    return buf


@pytest.mark.unit
def test_buffer_save_writes_one_safetensors_file_by_hand(tmp_path):
    from safetensors import safe_open
    from safetensors.torch import load_file

    buf = small_buffer()
    summary = buf.save(str(tmp_path))
    data = (tmp_path / BUFFER_FILE).read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == [BUFFER_FILE]  # no temporary file left
    assert summary == {
        "file": BUFFER_FILE,
        "prompts": 2,
        "trajectories": 3,
        "tokens": 6,
        "retired": 2,
        "sha256": hashlib.sha256(data).hexdigest(),
    }
    assert buf.state_dict() == summary  # computed without writing, the same bytes
    tensors = load_file(tmp_path / BUFFER_FILE)  # a standard safetensors file
    with safe_open(tmp_path / BUFFER_FILE, framework="pt") as f:
        # One metadata key: safetensors orders a map of several differently in each process (the SHA-256 would vary).
        assert f.metadata() == {"format": "zvp_trl.exgrpo_buffer/2"}
    assert {k: (v.dtype, v.tolist()) for k, v in tensors.items() if k != "metadata"} == {
        "prompt_k": (torch.int64, [2, 1]),
        "prompt_lengths": (torch.int64, [2, 1]),
        "trajectory_counts": (torch.int64, [1, 2]),
        "trajectory_lengths": (torch.int64, [2, 1, 3]),
        "prompt_token_ids": (torch.int32, [11, 12, 13]),
        "token_ids": (torch.int32, [5, 6, 7, 8, 9, 10]),
        "token_logps": (torch.float32, [-0.5, -0.25, -1.0, 0.0, -2.0, -3.0]),
    }
    assert json.loads(bytes(tensors["metadata"].tolist())) == {
        "pids": ["p", "q"],
        "rows": [{"prompt": "P?", "n": 1}, {"prompt": "Q?"}],
        "retired": ["a", "r"],
    }
    # 8 bytes per token (int32 id + float32 log-prob) and 8 per length: the file is the header plus exactly that.
    header = int.from_bytes(data[:8], "little")
    metadata_bytes = tensors["metadata"].numel()
    assert len(data) == 8 + header + 8 * (2 + 2 + 2 + 3) + 4 * 3 + 8 * 6 + metadata_bytes


@pytest.mark.unit
def test_buffer_load_restores_it_exactly_and_it_evolves_the_same(tmp_path):
    buf = small_buffer()
    summary = buf.save(str(tmp_path))
    other = ExperienceBuffer(max_prompts=3, max_trajectories=2)
    other.update("old", 1, G, row={"prompt": "O?"}, prompt_ids=[1], trajectories=[([1], [-1.0])])
    assert other.load(str(tmp_path)) == summary
    assert "old" not in other and other.contents() == buf.contents() and other.state_dict() == summary
    assert other.retired == {"a", "r"} and list(other.entries) == ["p", "q"]  # eviction order kept
    assert other.entries["q"]["trajectories"][1]["ids"].dtype == torch.int32
    for b in (buf, other):  # the same updates: the same evictions and dedups
        b.update("p", 3, G, trajectories=[([5, 6], [-9.0, -9.0]), ([4], [-0.1]), ([3], [-0.2])])
        b.update("s", 2, G, row={"prompt": "S?"}, prompt_ids=[14], trajectories=[([2], [-0.3])])
        b.update("t", 2, G, row={"prompt": "T?"}, prompt_ids=[15], trajectories=[([2], [-0.3])])
    assert list(other.entries) == ["p", "s", "t"]  # q, least recently updated, evicted
    assert [t["ids"].tolist() for t in other.entries["p"]["trajectories"]] == [[4], [3]]
    assert other.contents() == buf.contents() and other.state_dict() == buf.state_dict()
    assert other.state_dict() != summary


@pytest.mark.unit
def test_buffer_loads_the_inline_json_layout_of_older_checkpoints(tmp_path):
    # zvp_state.json's "exgrpo_buffer" as zvp_trl wrote it before the binary file (log-probs were float32 values
    # written as JSON floats).
    old = json.loads(
        '{"entries": [["p", {"k": 2, "row": {"prompt": "P?"}, "prompt_ids": [11, 12], "trajectories": '
        '[{"ids": [5, 6], "logps": [-0.5, -0.25]}, {"ids": [7], "logps": [-0.30000001192092896]}]}], '
        '["q", {"k": 1, "row": {"prompt": "Q?"}, "prompt_ids": [13], '
        '"trajectories": [{"ids": [8], "logps": [-1.0]}]}]], '
        '"retired": ["r"]}'
    )
    buf = ExperienceBuffer()
    buf.load_state_dict(old)
    assert buf.contents() == old  # nothing lost (the log-probs were float32 values)
    assert buf.entries["p"]["trajectories"][1]["logps"].dtype == torch.float32
    assert buf.entries["p"]["prompt_ids"].tolist() == [11, 12] and buf.retired == {"r"}
    again = ExperienceBuffer()
    again.load_state_dict(buf.save(str(tmp_path)), directory=str(tmp_path))
    assert again.contents() == old


def version_1_file(tensors: dict, metadata: dict) -> bytes:
    """A buffer file as zvp_trl wrote it in format version 1 (its own writer): a JSON header with sorted keys padded
    to 8 bytes, then the tensors' little-endian bytes in this order, 8-byte types first."""
    import struct

    order = ["prompt_k", "prompt_lengths", "trajectory_counts", "trajectory_lengths", "prompt_token_ids", "token_ids"]
    order += ["token_logps", "metadata"]
    names = {torch.int64: "I64", torch.int32: "I32", torch.float32: "F32", torch.uint8: "U8"}
    header, offset = {}, 0
    for name in order:
        t = tensors[name]
        header[name] = {"dtype": names[t.dtype], "shape": [t.numel()], "data_offsets": [offset, offset + t.nbytes]}
        offset += t.nbytes
    header["__metadata__"] = metadata
    encoded = json.dumps(header, sort_keys=True, separators=(",", ":")).encode("utf-8")
    encoded += b" " * (-len(encoded) % 8)
    return struct.pack("<Q", len(encoded)) + encoded + b"".join(tensors[name].numpy().tobytes() for name in order)


@pytest.mark.unit
def test_buffer_loads_a_version_1_file(tmp_path):
    # The small buffer written by the earlier zvp_trl (format version 1, no tool masks): it loads with the summary
    # and contents it had, every trajectory all the model's tokens.
    metadata = {"pids": ["p", "q"], "rows": [{"prompt": "P?", "n": 1}, {"prompt": "Q?"}], "retired": ["a", "r"]}
    encoded = json.dumps(metadata, separators=(",", ":")).encode("utf-8")
    tensors = {
        "prompt_k": torch.tensor([2, 1]),
        "prompt_lengths": torch.tensor([2, 1]),
        "trajectory_counts": torch.tensor([1, 2]),
        "trajectory_lengths": torch.tensor([2, 1, 3]),
        "prompt_token_ids": torch.tensor([11, 12, 13], dtype=torch.int32),
        "token_ids": torch.tensor([5, 6, 7, 8, 9, 10], dtype=torch.int32),
        "token_logps": torch.tensor([-0.5, -0.25, -1.0, 0.0, -2.0, -3.0]),
        "metadata": torch.frombuffer(bytearray(encoded), dtype=torch.uint8),
    }
    data = version_1_file(tensors, {"format": "zvp_trl.exgrpo_buffer", "version": "1"})
    (tmp_path / BUFFER_FILE).write_bytes(data)
    buf = ExperienceBuffer(max_prompts=3, max_trajectories=2)
    summary = {"file": BUFFER_FILE, "prompts": 2, "trajectories": 3, "tokens": 6, "retired": 2}
    buf.load_state_dict({**summary, "sha256": hashlib.sha256(data).hexdigest()}, directory=str(tmp_path))
    assert buf.contents() == small_buffer().contents()
    assert all("tool_mask" not in t for e in buf.entries.values() for t in e["trajectories"])
    # Saved again, it is a version 2 file: the same tensors (no tool tensors: no trajectory has tool results).
    again = buf.save(str(tmp_path / "again"))
    assert again == small_buffer().state_dict() and again["sha256"] != hashlib.sha256(data).hexdigest()
    # A later format version is refused with the versions this one reads.
    (tmp_path / "v9").mkdir()
    (tmp_path / "v9" / BUFFER_FILE).write_bytes(version_1_file(tensors, {"format": "zvp_trl.exgrpo_buffer/9"}))
    with pytest.raises(ValueError, match="format version '9'.*reads versions 1 to 2"):
        ExperienceBuffer().load(str(tmp_path / "v9"))


@pytest.mark.unit
def test_buffer_load_refuses_a_missing_foreign_truncated_or_mismatched_file(tmp_path):
    buf = small_buffer()
    summary = buf.save(str(tmp_path / "a"))
    fresh = ExperienceBuffer()
    with pytest.raises(FileNotFoundError, match=BUFFER_FILE):
        fresh.load(str(tmp_path / "missing"))
    with pytest.raises(FileNotFoundError, match="whole checkpoint folder"):
        fresh.load_state_dict(summary, directory=str(tmp_path / "missing"))
    with pytest.raises(ValueError, match="directory"):
        fresh.load_state_dict(summary)
    data = (tmp_path / "a" / BUFFER_FILE).read_bytes()
    (tmp_path / "cut").mkdir()
    (tmp_path / "cut" / BUFFER_FILE).write_bytes(data[:-3])
    with pytest.raises(ValueError, match="truncated"):
        fresh.load(str(tmp_path / "cut"))
    (tmp_path / "garbage").mkdir()
    (tmp_path / "garbage" / BUFFER_FILE).write_bytes(b"\x10" + data[1:])  # a header length that is wrong
    with pytest.raises(ValueError, match=f"{tmp_path / 'garbage' / BUFFER_FILE}.*truncated or corrupted.*another"):
        fresh.load(str(tmp_path / "garbage"))
    from safetensors.torch import save_file

    (tmp_path / "foreign").mkdir()
    save_file({"token_ids": torch.zeros(3, dtype=torch.int32)}, str(tmp_path / "foreign" / BUFFER_FILE))
    with pytest.raises(ValueError, match="not a saved ExGRPO buffer"):
        fresh.load(str(tmp_path / "foreign"))
    # A file that is not the one zvp_state.json describes (one log-prob changed).
    buf.entries["q"]["trajectories"][1]["logps"][0] = -2.5
    buf.save(str(tmp_path / "b"))
    with pytest.raises(ValueError, match="does not match"):
        fresh.load_state_dict(summary, directory=str(tmp_path / "b"))
    assert len(fresh) == 0 and not fresh.retired  # every refusal left the buffer as it was
    fresh.load_state_dict(summary, directory=str(tmp_path / "a"))
    assert fresh.state_dict() == summary


@pytest.mark.unit
def test_buffer_save_is_atomic(tmp_path, monkeypatch):
    import zvp_trl.methods.exgrpo.buffer as exgrpo_buffer

    buf = small_buffer()
    summary = buf.save(str(tmp_path))
    before = (tmp_path / BUFFER_FILE).read_bytes()
    buf.update("z", 1, G, row={"prompt": "Z?"}, prompt_ids=[1], trajectories=[([1, 2], [-1.0, -1.0])])
    written = []

    def fail_midway(tensors, filename, metadata=None):
        # The library writes the whole file, which is then cut to half as a write that fails midway leaves it.
        real(tensors, filename, metadata=metadata)
        data = Path(filename).read_bytes()
        Path(filename).write_bytes(data[: len(data) // 2])
        written.append(filename)
        raise OSError("disk full")

    real = exgrpo_buffer.save_file
    monkeypatch.setattr(exgrpo_buffer, "save_file", fail_midway)
    with pytest.raises(OSError, match="disk full"):
        buf.save(str(tmp_path))
    assert written == [str(tmp_path / BUFFER_FILE) + ".tmp"]  # written under a temporary name
    # The previous file is intact and no temporary file is left behind.
    assert sorted(p.name for p in tmp_path.iterdir()) == [BUFFER_FILE]
    assert (tmp_path / BUFFER_FILE).read_bytes() == before
    assert ExperienceBuffer().load(str(tmp_path)) == summary


CALL_MESSAGES = [
    {
        "role": "assistant",
        "content": "",
        "tool_calls": [{"type": "function", "function": {"name": "f", "arguments": {}}}],
    },
    {"role": "tool", "name": "f", "content": "7"},
    {"role": "assistant", "content": "7"},
]


def tool_buffer() -> ExperienceBuffer:
    """Prompt p: a trajectory with tool results (tokens 2-3 of 6), messages and all, and a plain one; prompt q: one
    with tool results (tokens 0 and 2 of 3) without messages."""
    buf = ExperienceBuffer()
    buf.update(
        "p",
        2,
        G,
        {"prompt": "P?"},
        [11],
        [
            ([1, 2, 3, 4, 5, 6], [-0.5] * 6, [1, 1, 0, 0, 1, 1], CALL_MESSAGES),
            ([7, 8], [-1.0, -2.0], torch.ones(2, dtype=torch.long)),  # all the model's: nothing stored
        ],
    )
    buf.update("q", 1, G, {"prompt": "Q?"}, [12], [(torch.tensor([9, 10, 11]), [-3.0] * 3, torch.tensor([0, 1, 0]))])
    return buf


@pytest.mark.unit
def test_buffer_stores_tool_masks_and_messages_by_hand(tmp_path):
    from safetensors.torch import load_file

    buf = tool_buffer()
    p, plain = buf.entries["p"]["trajectories"]
    assert p["tool_mask"].dtype == torch.uint8 and p["tool_mask"].tolist() == [1, 1, 0, 0, 1, 1]
    assert p["messages"] == CALL_MESSAGES and set(plain) == {"ids", "logps"}
    assert buf.entries["q"]["trajectories"][0]["tool_mask"].tolist() == [0, 1, 0]
    # A duplicate keeps its first tool mask (as its first log-probs).
    buf.update("q", 1, G, trajectories=[([9, 10, 11], [0.0] * 3, [1, 1, 0])])
    assert [t["tool_mask"].tolist() for t in buf.entries["q"]["trajectories"]] == [[0, 1, 0]]

    summary = buf.save(str(tmp_path))
    assert summary["trajectories"] == 3 and summary["tokens"] == 11
    tensors = load_file(tmp_path / BUFFER_FILE)
    # One flag per trajectory (file order: p's two, then q's), and the flagged trajectories' masks, concatenated.
    assert tensors["tool_masked"].tolist() == [1, 0, 1] and tensors["tool_masked"].dtype == torch.uint8
    assert tensors["tool_mask"].tolist() == [1, 1, 0, 0, 1, 1, 0, 1, 0]
    assert json.loads(bytes(tensors["metadata"].tolist()))["messages"] == [CALL_MESSAGES, None, None]
    data = (tmp_path / BUFFER_FILE).read_bytes()
    header = int.from_bytes(data[:8], "little")
    # 8 bytes per token and per length, 1 per flag and per masked token, plus the JSON.
    assert len(data) == 8 + header + 8 * (2 + 2 + 2 + 3) + 4 * 2 + 8 * 11 + 3 + 9 + tensors["metadata"].numel()

    other = ExperienceBuffer()
    assert other.load(str(tmp_path)) == summary == buf.state_dict()
    assert other.contents() == buf.contents()
    (p2, plain2), (q2,) = (e["trajectories"] for e in other.entries.values())
    assert p2["tool_mask"].tolist() == [1, 1, 0, 0, 1, 1] and p2["messages"] == CALL_MESSAGES
    assert "tool_mask" not in plain2 and "messages" not in q2 and q2["tool_mask"].tolist() == [0, 1, 0]
    # The inline layout carries them too.
    inline = ExperienceBuffer()
    inline.load_state_dict(json.loads(json.dumps(buf.contents())))
    assert inline.state_dict() == summary
    # Another mask is another file.
    buf.entries["q"]["trajectories"][0]["tool_mask"][1] = 0
    assert buf.state_dict()["sha256"] != summary["sha256"]


@pytest.mark.unit
def test_buffer_refuses_bad_tool_masks(tmp_path):
    from safetensors.torch import save_file

    buf = ExperienceBuffer()
    with pytest.raises(ValueError, match="one value per token id \\(2\\)"):
        buf.update("p", 1, G, {"prompt": "P?"}, [1], [([1, 2], [-1.0, -1.0], [1, 0, 1])])
    with pytest.raises(ValueError, match="1 \\(the model's own tokens\\) and 0 \\(tool-result tokens\\) only"):
        buf.update("p", 1, G, {"prompt": "P?"}, [1], [([1, 2], [-1.0, -1.0], [1, 2])])
    with pytest.raises(ValueError, match="got 5 values"):
        buf.update("p", 1, G, {"prompt": "P?"}, [1], [([1], [-1.0], [1], None, "extra")])
    assert len(buf) == 0
    # A file whose flags do not cover every trajectory.
    tool_buffer().save(str(tmp_path))
    tensors = load_file_tensors(tmp_path / BUFFER_FILE)
    tensors["tool_masked"] = torch.tensor([1, 0], dtype=torch.uint8)
    (tmp_path / "bad").mkdir()
    save_file(tensors, str(tmp_path / "bad" / BUFFER_FILE), metadata={"format": "zvp_trl.exgrpo_buffer/2"})
    with pytest.raises(ValueError, match="'tool_masked' does not flag each trajectory"):
        ExperienceBuffer().load(str(tmp_path / "bad"))


def load_file_tensors(path) -> dict:
    from safetensors.torch import load_file

    return {name: t.clone() for name, t in load_file(path).items()}


@pytest.mark.unit
def test_buffer_stores_compact_copies_and_checks_its_inputs():
    batch_ids = torch.arange(4000, dtype=torch.long).view(4, 1000)
    batch_logps = -torch.rand(4, 1000, dtype=torch.float64)
    buf = ExperienceBuffer()
    buf.update("p", 1, G, {"prompt": "P?"}, batch_ids[0, :3], [(batch_ids[1, :500], batch_logps[1, :500])])
    t = buf.entries["p"]["trajectories"][0]
    # Own storage of exactly 500 tokens (a view would keep the whole batch alive), int32 / float32.
    assert t["ids"].untyped_storage().nbytes() == 500 * 4 and t["logps"].untyped_storage().nbytes() == 500 * 4
    assert t["ids"].tolist() == list(range(1000, 1500))
    assert torch.equal(t["logps"], batch_logps[1, :500].float())
    assert buf.entries["p"]["prompt_ids"].untyped_storage().nbytes() == 3 * 4
    batch_ids[1, 0] = -7  # the caller's tensors may change afterwards
    assert t["ids"][0].item() == 1000
    with pytest.raises(ValueError, match="int32"):
        buf.update("p", 1, G, trajectories=[([2**31], [-1.0])])
    with pytest.raises(ValueError, match="must match"):
        buf.update("p", 1, G, trajectories=[([1, 2], [-1.0])])
    with pytest.raises(TypeError, match="integers"):
        buf.update("p", 1, G, trajectories=[(torch.tensor([1.0]), [-1.0])])


@pytest.mark.unit
def test_replacements_for_retired_by_hand():
    import random

    batch = ["a", "r1", "b", "r2"]
    dataset = ["a", "b", "c", "r1", "d", "r2", "e"]
    picks = replacements_for_retired(batch, {"r1", "r2"}, dataset, random.Random(0))
    assert sorted(picks) == [1, 3]  # the retired groups, and only them
    assert {dataset[i] for i in picks.values()} <= {"c", "d", "e"}  # neither retired nor already in the batch
    assert len(set(picks.values())) == 2  # without replacement
    assert picks == replacements_for_retired(batch, {"r1", "r2"}, dataset, random.Random(0))  # seeded
    assert replacements_for_retired(["a", "b"], {"r1"}, dataset, random.Random(0)) == {}
    # Not enough candidates left: as many as there are, the other retired group keeps its question.
    assert len(replacements_for_retired(batch, {"r1", "r2", "c", "d"}, dataset, random.Random(0))) == 1


@pytest.mark.unit
def test_dataset_prompt_ids_match_row_ids():
    from zvp_trl.core.prompt_ids import dataset_prompt_ids, prompt_id

    dataset = Dataset.from_dict({"prompt": ["x", "y"], "uid": [7, 9]})
    assert dataset_prompt_ids(dataset) == [prompt_id(row) for row in dataset]
    assert dataset_prompt_ids(dataset, "uid") == ["7", "9"]
    assert dataset_prompt_ids([{"prompt": "x"}]) == [prompt_id({"prompt": "x"})]  # a plain list of rows
    with pytest.raises(KeyError, match="'id'"):
        dataset_prompt_ids(dataset, "id")


@pytest.mark.unit
def test_config_validation_and_defaults(tmp_path):
    config = ExGRPOConfig(output_dir=str(tmp_path), use_cpu=True, per_device_train_batch_size=8, num_generations=G)
    assert (config.loss_type, config.scale_rewards, config.exgrpo_replay_ratio) == ("dr_grpo", "none", 0.5)
    assert (config.exgrpo_bucket_weighting, config.exgrpo_collect_during_warmup) == ("count", False)
    with pytest.raises(ValueError, match="exgrpo_replay_ratio"):
        ExGRPOConfig(output_dir=str(tmp_path), use_cpu=True, exgrpo_replay_ratio=1.0)
    for loss_type in ("sapo", "vespo", "luspo"):
        with pytest.raises(
            ValueError, match=f"loss_type='{loss_type}' is not supported by ExGRPO.*no defined meaning"
        ):
            ExGRPOConfig(output_dir=str(tmp_path), use_cpu=True, loss_type=loss_type)
    with pytest.raises(ValueError, match="exgrpo_question_selection"):
        ExGRPOConfig(output_dir=str(tmp_path), use_cpu=True, exgrpo_question_selection="uniform")
    with pytest.raises(ValueError, match="exgrpo_trajectory_selection"):
        ExGRPOConfig(output_dir=str(tmp_path), use_cpu=True, exgrpo_trajectory_selection="lowest")


# ----------------------------------------------------------------------------------------------- trainer


def make_config(tmp_path, config_class=ExGRPOConfig, **overrides):
    values = cpu_config_kwargs(tmp_path, num_generations=G, max_completion_length=8)
    values.update(overrides)
    return config_class(**values)


def make_trainer(tiny_model_path, tmp_path, reward, trainer_class=ExGRPOTrainer, **overrides):
    config_class = ExGRPORLZVPConfig if trainer_class is ExGRPORLZVPTrainer else ExGRPOConfig
    dataset = Dataset.from_dict({"prompt": [f"Q: {i}+1=?\nA:" for i in range(8)], "solution": ["0"] * 8})
    return trainer_class(
        model=tiny_model_path,
        reward_funcs=reward,
        args=make_config(tmp_path, config_class, **overrides),
        train_dataset=dataset,
    )


def alternating_reward(completions, **kwargs):
    return [float(i % 2 == 0) for i in range(len(completions))]


def hand_logps_and_entropies(model, input_ids, attention_mask, T):
    logits = model(input_ids=input_ids, attention_mask=attention_mask).logits[:, -T - 1 : -1].float()
    logp = torch.log_softmax(logits, dim=-1)
    token_logps = logp.gather(-1, input_ids[:, -T:].unsqueeze(-1)).squeeze(-1)
    entropies = -(logp.exp() * logp).sum(-1)
    return token_logps, entropies


@pytest.mark.trainer
def test_trajectory_choice_is_lowest_mean_entropy(tiny_model_path, tmp_path):
    trainer = make_trainer(tiny_model_path, tmp_path, alternating_reward)
    model = trainer.model
    trajectories = [[5, 6, 7, 8], [9, 10], [11, 12, 13], [14]]
    entry = {"prompt_ids": [3, 4, 5], "trajectories": [{"ids": t, "logps": [0.0] * len(t)} for t in trajectories]}
    expected = []
    with torch.no_grad():
        for t in trajectories:
            ids = torch.tensor([entry["prompt_ids"] + t])
            _, ent = hand_logps_and_entropies(model, ids, torch.ones_like(ids), len(t))
            expected.append(ent.mean().item())
    assert len(set(expected)) == len(expected)
    generator = torch.Generator().manual_seed(0)
    assert trainer.part("exgrpo").select_trajectory(entry, generator) == min(range(4), key=expected.__getitem__)
    # Reversing the candidates must follow the entropies, not the position.
    entry["trajectories"].reverse()
    assert trainer.part("exgrpo").select_trajectory(entry, generator) == 3 - min(range(4), key=expected.__getitem__)
    # The "w/o trajectory selection" ablation draws uniformly: every candidate comes up.
    trainer.args.exgrpo_trajectory_selection = "random"
    assert {trainer.part("exgrpo").select_trajectory(entry, generator) for _ in range(64)} == {0, 1, 2, 3}


@pytest.mark.trainer
def test_trajectory_choice_ignores_tool_result_tokens(tiny_model_path, tmp_path):
    # The mean entropy is over the model's own tokens: masking tool results can change which trajectory is chosen.
    trainer = make_trainer(tiny_model_path, tmp_path, alternating_reward)
    trajectories = [[5, 6, 7, 8], [9, 10, 11, 12]]
    entropies = []
    with torch.no_grad():
        for t in trajectories:
            ids = torch.tensor([[3, 4, 5] + t])
            entropies.append(hand_logps_and_entropies(trainer.model, ids, torch.ones_like(ids), 4)[1][0])
    entry = {"prompt_ids": [3, 4, 5], "trajectories": [{"ids": t, "logps": [0.0] * 4} for t in trajectories]}
    winner = min(range(2), key=lambda i: entropies[i].mean().item())
    part = trainer.part("exgrpo")
    assert part.select_trajectory(entry, torch.Generator()) == winner
    # Keep only the winner's highest-entropy token and the other's lowest-entropy one as the model's.
    loser = 1 - winner
    assert entropies[winner].max() > entropies[loser].min()
    for i, keep in ((winner, entropies[winner].argmax()), (loser, entropies[loser].argmin())):
        entry["trajectories"][i]["tool_mask"] = torch.nn.functional.one_hot(keep, 4).to(torch.uint8)
    assert part.select_trajectory(entry, torch.Generator()) == loser


def loss_inputs(trainer, replay, recorded, advantages):
    torch.manual_seed(0)
    prompt_ids = torch.tensor([[3, 4, 5], [0, 4, 6]])
    prompt_mask = torch.tensor([[1, 1, 1], [0, 1, 1]])
    completion_ids = torch.tensor([[7, 8, 9, 10], [11, 12, 13, 0]])
    completion_mask = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]])
    return {
        "prompt_ids": prompt_ids,
        "prompt_mask": prompt_mask,
        "completion_ids": completion_ids,
        "completion_mask": completion_mask,
        "advantages": torch.tensor(advantages),
        "num_items_in_batch": torch.tensor(7.0),
        "exgrpo_replay": torch.tensor(replay),
        "exgrpo_recorded_logps": recorded,
        "exgrpo_mixed": torch.tensor(1.0),
    }


def mixed_loss_case(tiny_model_path, tmp_path):
    """A trainer in training mode and the loss inputs of one replayed row (0) and one fresh row (1)."""
    trainer = make_trainer(tiny_model_path, tmp_path, alternating_reward)
    trainer.current_gradient_accumulation_steps = 1
    trainer.model.train()
    recorded = torch.tensor([[-1.0, -2.0, -0.5, -3.0], [0.0, 0.0, 0.0, 0.0]])
    return trainer, recorded, loss_inputs(trainer, [True, False], recorded, [0.75, -0.25])


@pytest.mark.trainer
def test_replayed_row_loss_uses_shaping_and_recorded_logps(tiny_model_path, tmp_path):
    trainer, recorded, inputs = mixed_loss_case(tiny_model_path, tmp_path)
    model = trainer.model
    param = next(p for p in model.parameters() if p.requires_grad)

    model.zero_grad()
    loss = trainer._compute_loss(model, inputs)
    loss.backward()
    grad = param.grad.clone()

    # Hand computation: row 0 replayed -> -A f(w), w = exp(logp - recorded); row 1 fresh on-policy -> ratio 1, -A.
    model.zero_grad()
    ids = torch.cat([inputs["prompt_ids"], inputs["completion_ids"]], 1)
    am = torch.cat([inputs["prompt_mask"], inputs["completion_mask"]], 1)
    logps, _ = hand_logps_and_entropies(model, ids, am, 4)
    w = torch.exp(logps[0] - recorded[0])
    row0 = (-0.75 * w / (w + 0.1)).sum()
    ratio1 = torch.exp(logps[1] - logps[1].detach())
    row1 = (0.25 * ratio1 * inputs["completion_mask"][1]).sum()
    expected = (row0 + row1) / (2 * trainer.max_completion_length)  # dr_grpo: B * max_completion_length
    expected.backward()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert torch.allclose(grad, param.grad, rtol=1e-4, atol=1e-7)
    assert trainer._metrics["train"]["exgrpo/replay_ratio_mean"][-1] == pytest.approx(w.mean().item(), rel=1e-5)

    # Other recorded log-probs change the loss of the replayed row.
    inputs2 = loss_inputs(trainer, [True, False], recorded - 1.0, [0.75, -0.25])
    assert trainer._compute_loss(model, inputs2).item() != pytest.approx(loss.item(), rel=1e-4)


@pytest.mark.trainer
def test_replayed_tool_result_tokens_are_out_of_the_mixed_loss(tiny_model_path, tmp_path):
    # A replayed row whose tokens 1 and 2 are tool results (tool_mask 0): only tokens 0 and 3 are in its loss.
    trainer, recorded, inputs = mixed_loss_case(tiny_model_path, tmp_path)
    model = trainer.model
    inputs["tool_mask"] = torch.tensor([[1, 0, 0, 1], [1, 1, 1, 1]])
    loss = trainer._compute_loss(model, inputs)
    ids = torch.cat([inputs["prompt_ids"], inputs["completion_ids"]], 1)
    am = torch.cat([inputs["prompt_mask"], inputs["completion_mask"]], 1)
    with torch.no_grad():
        logps, _ = hand_logps_and_entropies(model, ids, am, 4)
    w = torch.exp(logps[0] - recorded[0])
    row0 = (-0.75 * w / (w + 0.1) * torch.tensor([1.0, 0.0, 0.0, 1.0])).sum()
    row1 = (0.25 * inputs["completion_mask"][1]).sum()  # fresh, on-policy: ratio 1
    assert loss.item() == pytest.approx(((row0 + row1) / (2 * trainer.max_completion_length)).item(), rel=1e-5)
    # The replayed tokens' mean ratio covers the model's tokens only.
    assert trainer._metrics["train"]["exgrpo/replay_ratio_mean"][-1] == pytest.approx(
        w[[0, 3]].mean().item(), rel=1e-5
    )
    # The tool-result tokens' recorded log-probs change nothing; the model's tokens' do.
    moved = recorded.clone()
    moved[0, 1:3] -= 5.0
    assert trainer._compute_loss(model, {**inputs, "exgrpo_recorded_logps": moved}).item() == pytest.approx(
        loss.item()
    )
    moved[0, 0] -= 5.0
    assert trainer._compute_loss(model, {**inputs, "exgrpo_recorded_logps": moved}).item() != pytest.approx(
        loss.item()
    )


@pytest.mark.trainer
@pytest.mark.parametrize(
    "options",
    [
        dict(loss_type="dr_grpo"),
        dict(loss_type="dapo"),
        dict(loss_type="grpo"),
        dict(loss_type="bnpo"),
        dict(loss_type="cispo", epsilon_high=1.5),
        dict(loss_type="dr_grpo", importance_sampling_level="sequence"),
        dict(loss_type="grpo", importance_sampling_level="sequence"),
        dict(loss_type="dapo", top_entropy_quantile=0.5),
        dict(loss_type="dapo", off_policy_mask_threshold=0.05),
        dict(loss_type="bnpo", entropy_coef=0.01),
    ],
    ids=lambda o: "-".join(f"{v}" for v in o.values()),
)
def test_mixed_loss_without_replay_equals_trl_loss_and_metrics(tiny_model_path, tmp_path, options):
    # With no replayed row the mixed-phase loss is TRL's: same value and the same metrics, for every loss type and
    # TRL option ExGRPO supports.
    trainer = make_trainer(tiny_model_path, tmp_path, alternating_reward, exgrpo_unclip_fresh=False, **options)
    trainer.current_gradient_accumulation_steps = 1
    trainer.model.train()
    old = torch.tensor([[-2.0, -3.0, -1.0, -2.5], [-2.0, -2.0, -2.0, 0.0]])  # off-policy: clipping matters
    inputs = loss_inputs(trainer, [False, False], torch.zeros(2, 4), [0.75, -0.25])
    inputs["old_per_token_logps"] = old
    inputs["sampling_per_token_logps"] = old - 0.5  # far from the policy: off-policy masking drops row 2
    metrics = trainer._metrics["train"]
    metrics.clear()
    mixed = trainer._compute_loss(trainer.model, inputs)
    mixed_metrics = {k: v[-1] for k, v in metrics.items()}
    metrics.clear()
    inputs["exgrpo_mixed"] = torch.tensor(0.0)  # on-policy phase: TRL's own _compute_loss
    trl_loss = trainer._compute_loss(trainer.model, inputs)
    trl_metrics = {k: v[-1] for k, v in metrics.items()}
    assert mixed.item() == pytest.approx(trl_loss.item(), rel=1e-5)
    assert set(trl_metrics) <= set(mixed_metrics), set(trl_metrics) - set(mixed_metrics)
    for key, value in trl_metrics.items():
        assert mixed_metrics[key] == pytest.approx(value, rel=1e-5, nan_ok=True), key


@pytest.mark.trainer
@pytest.mark.parametrize(
    "options",
    [
        dict(loss_type="cispo", epsilon_high=1.5),
        dict(importance_sampling_level="sequence"),
        dict(top_entropy_quantile=0.5),
        dict(off_policy_mask_threshold=0.05),
    ],
    ids=lambda o: "-".join(f"{v}" for v in o.values()),
)
def test_mixed_loss_with_a_replayed_row_under_trl_options(tiny_model_path, tmp_path, options):
    # A replayed row keeps its shaped loss under every option; a gradient flows and the loss is finite.
    trainer = make_trainer(tiny_model_path, tmp_path, alternating_reward, **options)
    trainer.current_gradient_accumulation_steps = 1
    trainer.model.train()
    recorded = torch.tensor([[-1.0, -2.0, -0.5, -3.0], [0.0, 0.0, 0.0, 0.0]])
    inputs = loss_inputs(trainer, [True, False], recorded, [0.75, -0.25])
    inputs["sampling_per_token_logps"] = torch.full((2, 4), -9.0)  # off-policy masking would drop row 2
    trainer.model.zero_grad()
    loss = trainer._compute_loss(trainer.model, inputs)
    loss.backward()
    grads = [p.grad for p in trainer.model.parameters() if p.grad is not None]
    assert torch.isfinite(loss) and sum(g.abs().sum().item() for g in grads) > 0
    # The replayed row's loss changes with its recorded log-probs: it is still shaped against them.
    inputs2 = loss_inputs(trainer, [True, False], recorded - 1.0, [0.75, -0.25])
    inputs2["sampling_per_token_logps"] = inputs["sampling_per_token_logps"]
    assert trainer._compute_loss(trainer.model, inputs2).item() != pytest.approx(loss.item(), rel=1e-4)


@pytest.mark.trainer
def test_mixed_phase_fresh_tokens_are_unclipped_by_default(tiny_model_path, tmp_path):
    # The official code removes the clip in the mixed phase (loss_remove_clip=True): fresh tokens' loss is -ratio * A,
    # which is TRL's clipped loss with clip bounds so wide that they never bind.
    trainer = make_trainer(tiny_model_path, tmp_path, alternating_reward, loss_type="dr_grpo")
    assert trainer.args.exgrpo_unclip_fresh is True
    trainer.current_gradient_accumulation_steps = 1
    trainer.model.train()
    old = torch.tensor([[-2.0, -3.0, -1.0, -2.5], [-2.0, -2.0, -2.0, 0.0]])  # off-policy: the clip would bind
    inputs = loss_inputs(trainer, [False, False], torch.zeros(2, 4), [0.75, -0.25])
    inputs["old_per_token_logps"] = old
    unclipped = trainer._compute_loss(trainer.model, inputs).item()
    inputs["exgrpo_mixed"] = torch.tensor(0.0)  # on-policy phase: TRL's own clipped loss
    clipped = trainer._compute_loss(trainer.model, inputs).item()
    assert unclipped != pytest.approx(clipped, rel=1e-3)  # the clip binds for these log-probs
    trainer.epsilon_low = trainer.epsilon_high = 1e9
    assert unclipped == pytest.approx(trainer._compute_loss(trainer.model, inputs).item(), rel=1e-5)


def run_and_record(trainer):
    outputs = record_generations(trainer, cloned("exgrpo_mixed", "exgrpo_replay", "completion_ids"))
    trainer.train()
    return outputs


@pytest.mark.trainer
def test_delayed_start_then_mixed_for_good_with_replays(tiny_model_path, tmp_path):
    calls = []

    def reward(completions, **kwargs):
        # Generation batches: all wrong (0 correct), then half correct (0.5 > 0.35) from the second on.
        calls.append(1)
        n = len(calls)
        return [float(n >= 2 and i % 2 == 0) for i in range(len(completions))]

    trainer = make_trainer(tiny_model_path, tmp_path, reward, max_steps=4)
    outputs = run_and_record(trainer)
    assert [float(o["exgrpo_mixed"]) for o in outputs] == [0.0, 0.0, 1.0, 1.0]
    assert trainer.part("exgrpo").phase.active
    # Every row reaches the loss, in both phases (the mixed loss replaces TRL's, the accounting is not in the loss).
    assert trainer.rollouts.kept == trainer.rollouts.total == sum(o["completion_ids"].size(0) for o in outputs) > 0
    # Batch 2 started the mixed phase but, being a warm-up batch, was not collected; batch 3 (mixed; 2 prompts, 2 of
    # 4 correct each) filled the buffer; batch 4 replays floor(0.5 * 2) = 1 group.
    assert [int(o["exgrpo_replay"].sum()) for o in outputs] == [0, 0, 0, 1]
    assert outputs[3]["exgrpo_replay"].tolist() == [True] + [False] * 7
    actives = [h["exgrpo/active"] for h in trainer.state.log_history if "exgrpo/active" in h]
    assert actives == [0.0, 0.0, 1.0, 1.0]
    # The replayed row's completion is a stored trajectory of that question.
    stored = {tuple(t["ids"].tolist()) for e in trainer.part("exgrpo").buffer.entries.values() for t in e["trajectories"]}
    row = outputs[3]["completion_ids"][0].tolist()
    assert any(tuple(row[: len(s)]) == s for s in stored)


@pytest.mark.trainer
@pytest.mark.parametrize("collect_during_warmup", [False, True])
def test_no_collection_before_the_mixed_phase(tiny_model_path, tmp_path, collect_during_warmup):
    calls = []

    def reward(completions, **kwargs):
        # Batches 1-2: 2 of 4 correct per group (0.5, partially solved); batch 3: 3 of 4 (0.75 > 0.6, starts the
        # mixed phase); then 2 of 4 again.
        calls.append(1)
        if len(calls) == 3:
            return [float(i % 4 != 3) for i in range(len(completions))]
        return [float(i % 2 == 0) for i in range(len(completions))]

    trainer = make_trainer(
        tiny_model_path,
        tmp_path,
        reward,
        max_steps=5,
        exgrpo_start_threshold=0.6,
        exgrpo_collect_during_warmup=collect_during_warmup,
    )
    generate = trainer._generate_and_score_completions
    sizes = []  # buffered questions when each generation batch starts, and after the last one

    def record(inputs):
        sizes.append(len(trainer.part("exgrpo").buffer))
        output = generate(inputs)
        return output

    trainer._generate_and_score_completions = record
    trainer.train()
    sizes.append(len(trainer.part("exgrpo").buffer))
    replays = [h["exgrpo/replay_frac"] for h in trainer.state.log_history if "exgrpo/replay_frac" in h]
    actives = [h["exgrpo/active"] for h in trainer.state.log_history if "exgrpo/active" in h]
    assert actives == [0.0, 0.0, 0.0, 1.0, 1.0]
    if collect_during_warmup:
        # Every batch brings its 2 partially solved questions (8 prompts in the dataset, 2 per batch).
        assert sizes[:4] == [0, 2, 4, 6] and sizes[-1] >= 6
        assert replays == [0.0, 0.0, 0.0, 0.5, 0.5]
    else:
        # Nothing is buffered before the mixed phase; batch 4 (the first mixed one) collects, batch 5 replays.
        assert sizes == [0, 0, 0, 0, 2, sizes[-1]] and sizes[-1] >= 2
        assert replays == [0.0, 0.0, 0.0, 0.0, 0.5]


@pytest.mark.trainer
def test_a_group_with_no_correct_completion_never_makes_a_bucket_0(tiny_model_path, tmp_path, monkeypatch):
    import zvp_trl.methods.exgrpo.part as exgrpo_trainer

    calls = []

    def reward(completions, **kwargs):
        # Batch 1: 2 of 4 correct per group (both questions enter bucket 2); then nothing is ever correct, the
        # replayed row included, so every later group has k = 0.
        calls.append(1)
        return [float(len(calls) == 1 and i % 2 == 0) for i in range(len(completions))]

    drawn_from = []  # the buckets offered to each draw

    def sample(buckets, probs, n, generator):
        drawn_from.append(sorted(buckets))
        return real_sample(buckets, probs, n, generator)

    real_sample = exgrpo_trainer.sample_buffer_prompts
    monkeypatch.setattr(exgrpo_trainer, "sample_buffer_prompts", sample)
    trainer = make_trainer(tiny_model_path, tmp_path, reward, max_steps=4, exgrpo_start_threshold=None)
    outputs = run_and_record(trainer)
    # The two questions of batch 1 keep bucket 2 through the k = 0 groups (replayed or drawn fresh again).
    assert trainer.part("exgrpo").buffer.buckets().keys() == {2}
    assert all(entry["k"] == 2 for entry in trainer.part("exgrpo").buffer.entries.values())
    assert drawn_from == [[2], [2], [2]]  # batches 2-4 draw, never from a bucket 0
    assert [int(o["exgrpo_replay"].sum()) for o in outputs] == [0, 1, 1, 1]
    logs = [h for h in trainer.state.log_history if "exgrpo/bucket_0" in h]
    assert [h["exgrpo/bucket_0"] for h in logs] == [0.0] * 4 and logs[-1]["exgrpo/bucket_2"] == 2.0


@pytest.mark.trainer
def test_all_correct_group_is_retired(tiny_model_path, tmp_path):
    def reward(completions, prompts, **kwargs):
        # Prompt "Q: 0+1" is always solved; the others half of the time.
        return [1.0 if p.startswith("Q: 0+") else float(i % 2 == 0) for i, p in enumerate(prompts)]

    trainer = make_trainer(
        tiny_model_path, tmp_path, reward, max_steps=2, exgrpo_start_threshold=None, shuffle_dataset=False
    )
    trainer.train()
    from zvp_trl.core.prompt_ids import prompt_content_id

    retired = prompt_content_id("Q: 0+1=?\nA:")
    assert trainer.part("exgrpo").buffer.retired == {retired}
    assert retired not in trainer.part("exgrpo").buffer
    assert len(trainer.part("exgrpo").buffer) >= 1
    assert all(e["k"] == 2 for e in trainer.part("exgrpo").buffer.entries.values())


@pytest.mark.trainer
def test_random_question_selection_draws_uniformly_from_the_whole_buffer(tiny_model_path, tmp_path):
    trainer = make_trainer(tiny_model_path, tmp_path, alternating_reward, exgrpo_question_selection="random")
    # 6 questions in bucket 1 and 1 in bucket 2 (G = 4); bucket weighting would favour neither this way.
    for i in range(7):
        k = 1 if i < 6 else 2
        trainer.part("exgrpo").buffer.update(f"q{i}", k, G, {"prompt": f"P{i}"}, [3, 4], [([5, 6], [-1.0, -1.0])])
    rows = [{"prompt": f"fresh{g}"} for g in range(4) for _ in range(G)]  # 4 local groups: 2 are replaced
    counts = {}
    for _ in range(300):
        new_rows, replays, n = trainer.part("exgrpo").plan_replays(rows)
        assert n == 2 and sorted(replays) == [0, 1]
        replayed = [new_rows[g * G]["prompt"] for g in replays]
        assert len(set(replayed)) == 2  # without replacement
        for prompt in replayed:
            counts[prompt] = counts.get(prompt, 0) + 1
    # Uniform: each of the 7 questions is drawn with probability 2/7 per batch (about 86 of 300 times).
    assert set(counts) == {f"P{i}" for i in range(7)}
    assert all(50 <= c <= 125 for c in counts.values()), counts


@pytest.mark.trainer
@pytest.mark.parametrize("exclude", [True, False])
def test_retired_question_is_not_rolled_out_again(tiny_model_path, tmp_path, exclude):
    seen = []

    def reward(completions, prompts, **kwargs):
        seen.append(sorted(set(prompts)))
        # "Q: 0+1" is always solved (retired after its first group); the others half of the time.
        return [1.0 if p.startswith("Q: 0+") else float(i % 2 == 0) for i, p in enumerate(prompts)]

    # 8 prompts, 2 per step, in dataset order: "Q: 0+1" is drawn at steps 1 and 5 (the next epoch).
    trainer = make_trainer(
        tiny_model_path,
        tmp_path,
        reward,
        max_steps=6,
        shuffle_dataset=False,
        exgrpo_replay_ratio=0.0,
        exgrpo_exclude_retired=exclude,
    )
    trainer.train()
    solved = "Q: 0+1=?\nA:"
    assert solved in seen[0]
    assert all(len(prompts) == 2 for prompts in seen)
    redrawn = [h["exgrpo/retired_redrawn"] for h in trainer.state.log_history if "exgrpo/retired_redrawn" in h]
    if exclude:
        assert all(solved not in prompts for prompts in seen[1:])
        assert redrawn == [0, 0, 0, 0, 1, 0]
        assert solved not in seen[4] and len(seen[4]) == 2  # step 5 rolled out a replacement instead
    else:
        assert solved in seen[4]
        assert sum(redrawn) == 0


@pytest.mark.trainer
def test_buffer_is_checkpointed_and_restored(tiny_model_path, tmp_path):
    # Collection from the first (warm-up) batch, so that checkpoint-1 already holds a buffer.
    options = dict(exgrpo_collect_during_warmup=True)
    trainer = make_trainer(
        tiny_model_path, tmp_path, alternating_reward, max_steps=1, save_strategy="steps", save_steps=1, **options
    )
    trainer.train()
    state = json.loads((tmp_path / "checkpoint-1" / "zvp_state.json").read_text())
    assert state["exgrpo_phase"] == {"active": True, "draws": 0}  # 0.5 correct > 0.35
    # zvp_state.json holds the buffer's summary; the buffer itself is in its own file next to it.
    assert state["exgrpo_buffer"]["prompts"] == 2 and state["exgrpo_buffer"]["file"] == BUFFER_FILE
    assert state["exgrpo_buffer"] == trainer.part("exgrpo").buffer.state_dict()
    data = (tmp_path / "checkpoint-1" / BUFFER_FILE).read_bytes()
    assert hashlib.sha256(data).hexdigest() == state["exgrpo_buffer"]["sha256"]
    saved_contents = trainer.part("exgrpo").buffer.contents()
    assert len(saved_contents["entries"]) == 2
    resumed = make_trainer(tiny_model_path, tmp_path, alternating_reward, max_steps=1, **options)
    assert len(resumed.part("exgrpo").buffer) == 0 and not resumed.part("exgrpo").phase.active
    generate = resumed._generate_and_score_completions
    at_first_generation = []

    def record(inputs):  # the state the resumed run starts its next generation batch from
        snapshot = {
            "exgrpo_buffer": resumed.part("exgrpo").buffer.state_dict(),
            "contents": resumed.part("exgrpo").buffer.contents(),
            "exgrpo_phase": resumed.part("exgrpo").phase.state_dict(),
        }
        at_first_generation.append(json.loads(json.dumps(snapshot)))
        return generate(inputs)

    resumed._generate_and_score_completions = record
    resumed.train(resume_from_checkpoint=str(tmp_path / "checkpoint-1"))  # runs step 2
    assert at_first_generation[0]["exgrpo_buffer"] == state["exgrpo_buffer"]
    assert at_first_generation[0]["contents"] == saved_contents
    assert at_first_generation[0]["exgrpo_phase"] == {"active": True, "draws": 0}
    assert resumed.part("exgrpo").phase.draws == 1  # step 2 was mixed and drew from the restored buffer


@pytest.mark.trainer
def test_mixture_of_experts_logs_trl_aux_loss_in_the_mixed_phase(tiny_model_path, tmp_path):
    # A tiny Qwen3-MoE with the router loss on: the mixed phase adds it to the loss and logs TRL's `aux_loss`.
    from transformers import AutoTokenizer, Qwen3MoeConfig, Qwen3MoeForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_path)
    config = Qwen3MoeConfig(
        vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32, moe_intermediate_size=16, num_hidden_layers=1,
        num_attention_heads=2, num_key_value_heads=1, head_dim=8, num_local_experts=4, num_experts_per_tok=2,
        output_router_logits=True, router_aux_loss_coef=0.01, pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )  # fmt: skip
    torch.manual_seed(0)
    Qwen3MoeForCausalLM(config).save_pretrained(tmp_path / "moe")
    tokenizer.save_pretrained(tmp_path / "moe")
    trainer = make_trainer(str(tmp_path / "moe"), tmp_path / "out", alternating_reward, max_steps=2)
    assert trainer.aux_loss_enabled
    trainer.part("exgrpo").phase.active = True  # the mixed phase from the first step
    trainer.train()
    logs = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert len(logs) == 2 and all(entry["exgrpo/active"] == 1.0 for entry in logs)
    assert all(math.isfinite(entry["aux_loss"]) and entry["aux_loss"] > 0 for entry in logs)


@pytest.mark.trainer
def test_rl_zvp_combination_runs_and_leaves_replayed_rows_alone(tiny_model_path, tmp_path):
    def reward(completions, **kwargs):
        return [1.0] * len(completions)  # every group all-correct -> zero-variance, shaped by RL-ZVP

    trainer = make_trainer(tiny_model_path, tmp_path, reward, trainer_class=ExGRPORLZVPTrainer, max_steps=1)
    trainer.part("exgrpo").phase.active = True
    trainer.part("exgrpo").buffer.update(
        "x",
        2,
        G,
        row={"prompt": "Q: 9+9=?\nA:", "solution": "0"},
        prompt_ids=[3],
        trajectories=[([5, 6], [-1.0, -1.0])],
    )
    seen = record_generations(trainer, lambda output: (output["exgrpo_replay"].clone(), output["zvp_signs"].clone()))
    trainer.train()
    replay, signs = seen[0]
    assert replay.tolist() == [True] + [False] * 7
    assert signs.tolist() == [0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]
    assert "zvp/adv_mean_positive" in trainer.state.log_history[0]
    assert trainer.part("exgrpo").buffer.retired  # the all-correct replay group was retired


@pytest.mark.distributed
def test_two_processes_hold_identical_buffers(tiny_model_path, tmp_path):
    script = Path(__file__).parent / "scripts" / "exgrpo_two_processes.py"
    env = dict(os.environ, ZVP_TEST_MODEL=tiny_model_path, ZVP_TEST_OUT=str(tmp_path))
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script)]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    rank0 = json.loads((tmp_path / "buffer_rank0.json").read_text())
    rank1 = json.loads((tmp_path / "buffer_rank1.json").read_text())
    assert rank0 == rank1
    assert len(rank0["buffer"]["entries"]) >= 2
    # Each process replayed one of its two groups in steps 2 and 3 (mixed from the start, buffer filled at step 1).
    assert rank0["replays"] == [0, 1, 1] and rank1["replays"] == [0, 1, 1]


@pytest.mark.trainer
@pytest.mark.parametrize("accumulation", [1, 2])  # 2: TRL computes old_per_token_logps itself and they are reused
def test_stored_logps_are_the_generating_policy_logps(tiny_model_path, tmp_path, accumulation):
    trainer = make_trainer(
        tiny_model_path,
        tmp_path,
        alternating_reward,
        learning_rate=0.0,  # the policy stays the one that generated
        gradient_accumulation_steps=accumulation,
        steps_per_generation=1,
        exgrpo_start_threshold=None,  # collected from the first batch (mixed phase, no replay):
        exgrpo_replay_ratio=0.0,  # every generation batch brings 2 new questions
    )
    trainer.train()
    entries = list(trainer.part("exgrpo").buffer.entries.values())
    assert len(entries) == 2 * accumulation and all(len(e["trajectories"]) >= 1 for e in entries)
    with torch.no_grad():
        for entry in entries:
            for t in entry["trajectories"]:
                ids = torch.cat([entry["prompt_ids"], t["ids"]]).long().unsqueeze(0)
                logps, _ = hand_logps_and_entropies(trainer.model, ids, torch.ones_like(ids), len(t["ids"]))
                assert torch.allclose(logps[0], t["logps"], atol=1e-4)


# ----------------------------------------------------------------------------------------------- sharded training


def record_nograd_forwards(trainer):
    """Wraps `trainer._get_per_token_logps_and_entropies`: appends (rows, compute_entropy) of every no-grad call."""
    calls = []
    inner = trainer._get_per_token_logps_and_entropies

    def wrapped(model, input_ids, *args, **kwargs):
        if not torch.is_grad_enabled():
            calls.append((int(input_ids.size(0)), bool(kwargs.get("compute_entropy", False))))
        return inner(model, input_ids, *args, **kwargs)

    trainer._get_per_token_logps_and_entropies = wrapped
    return calls


def assert_same_buffer(state, expected, atol=1e-6):
    """Buffer state dicts equal, the stored log-probs up to `atol` (the batch composition of their forward differs)."""
    assert state["retired"] == expected["retired"]
    assert [pid for pid, _ in state["entries"]] == [pid for pid, _ in expected["entries"]]
    assert len(state["entries"]) >= 1
    for (_, entry), (_, other) in zip(state["entries"], expected["entries"], strict=True):
        assert {k: v for k, v in entry.items() if k != "trajectories"} == {
            k: v for k, v in other.items() if k != "trajectories"
        }
        assert [t["ids"] for t in entry["trajectories"]] == [t["ids"] for t in other["trajectories"]]
        for t, u in zip(entry["trajectories"], other["trajectories"], strict=True):
            assert torch.allclose(torch.tensor(t["logps"]), torch.tensor(u["logps"]), rtol=0.0, atol=atol)


@pytest.mark.trainer
def test_sharding_is_detected_from_the_accelerator(tiny_model_path, tmp_path):
    trainer = make_trainer(tiny_model_path, tmp_path, alternating_reward)
    assert trainer.part("exgrpo").collective_forwards is False  # plain CPU: forwards are local
    trainer.is_fsdp_enabled = True
    assert trainer._sharded_forwards()
    trainer.is_fsdp_enabled = False
    trainer.is_deepspeed_enabled = True
    for stage, sharded in [(2, False), (3, True)]:
        trainer.args.deepspeed_plugin = type("Plugin", (), {"zero_stage": stage})()
        assert trainer._sharded_forwards() is sharded


@pytest.mark.trainer
def test_collective_forwards_give_the_same_buffer_and_replays(tiny_model_path, tmp_path):
    def run(collective):
        trainer = make_trainer(
            tiny_model_path, tmp_path / str(collective), alternating_reward, max_steps=3, exgrpo_start_threshold=None
        )
        trainer.part("exgrpo").collective_forwards = collective
        calls = record_nograd_forwards(trainer)
        replayed = record_generations(
            trainer, lambda output: output["completion_ids"][output["exgrpo_replay"]].tolist()
        )
        trainer.train()
        return trainer.part("exgrpo").buffer.contents(), replayed, calls

    buffer, replayed, calls = run(False)
    buffer_c, replayed_c, calls_c = run(True)
    assert_same_buffer(buffer_c, buffer)
    assert replayed_c == replayed and [len(r) for r in replayed] == [0, 1, 1]  # the same chosen trajectories
    # The collective path forwarded all 8 rows of each batch to store rows (rows 0 and 2 of each group are correct),
    # the default path only the rows to store; the selection forwards are the same (one process).
    assert [rows for rows, entropy in calls_c if not entropy] == [8, 8, 8]
    assert all(rows < 8 for rows, entropy in calls if not entropy)
    assert [c for c in calls_c if c[1]] == [c for c in calls if c[1]]
    assert any(entropy for _, entropy in calls)  # a selection forward ran (a question with 2 trajectories)


@pytest.mark.distributed
def test_collective_forwards_are_the_same_on_every_process(tiny_model_path, tmp_path):
    script = Path(__file__).parent / "scripts" / "exgrpo_sharded_forwards.py"
    env = dict(os.environ, ZVP_TEST_MODEL=tiny_model_path, ZVP_TEST_OUT=str(tmp_path))
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script)]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    rank0, rank1 = (json.loads((tmp_path / f"forwards_rank{r}.json").read_text()) for r in (0, 1))

    def forwards(run):  # what sharded parameters need equal on every process
        return run["calls"], run["select_calls"], run["forwards"]

    # Replay draw of the 2 buffered questions (3 and 1 trajectories), one per process: by default only the process
    # that drew the 3-trajectory question runs a selection forward; collectively both run it, and keep the same picks.
    assert sorted([rank0["draw_default"]["select_calls"], rank1["draw_default"]["select_calls"]]) == [0, 1]
    assert forwards(rank0["draw_collective"]) == forwards(rank1["draw_collective"]) == (1, 1, 1)
    for rank in (rank0, rank1):
        assert rank["draw_collective"]["replayed"] == rank["draw_default"]["replayed"]

    # Training: process 0 stores rows, process 1 none. By default their no-grad forwards differ (a deadlock under
    # ZeRO-3 / FSDP); collectively they are the same, and so are the buffers and the replayed trajectories.
    assert forwards(rank0["train_default"]) != forwards(rank1["train_default"])
    assert forwards(rank0["train_collective"]) == forwards(rank1["train_collective"])
    assert rank0["train_collective"]["select_calls"] >= 1  # a replay selection ran within training
    for rank in (rank0, rank1):
        assert rank["train_collective"]["replayed"] == rank["train_default"]["replayed"]
        assert_same_buffer(rank["train_collective"]["buffer"], rank["train_default"]["buffer"])
    assert rank0["train_collective"]["buffer"] == rank1["train_collective"]["buffer"]
