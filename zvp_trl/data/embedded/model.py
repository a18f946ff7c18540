# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""Builds, warm-starts and caches the tiny Qwen3 model of the embedded task.

The model is a `Qwen3ForCausalLM` with random initial weights (no download), briefly trained by supervised
next-token prediction on solutions of the arithmetic task that forget a carry or borrow at a fixed rate, so that RL
starts from a policy that solves some prompts always, some never and some sometimes. The result is saved with its
tokenizer under a cache directory keyed by the build settings; `ZVP_TRL_CACHE` overrides the cache location (default
`~/.cache/zvp_trl`).

The build runs on `BUILD_NUM_THREADS` CPU threads whatever the caller set: the CPU kernels' float sums depend on how
work is split between threads, and 800 warm-start steps turn those last bits into a measurably different model. So
the same spec gives the same weights, bit for bit, on the same machine whatever its core count. Across machines the
kernels differ too: the CPU instruction set (`torch.backends.cpu.get_cpu_capability()`) picks torch's own kernels and
the CPU's maker and model pick MKL's, so two AVX512 machines of different makers can build different models (the
first warm-start losses agree, the curves part after a few dozen steps). `build_info.json` records the torch
version, the instruction set, the CPU (`cpu_model()`) and the weights' checksum.
"""

import dataclasses
import hashlib
import json
import math
import platform
import random
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import PreTrainedTokenizerFast, Qwen3Config, Qwen3ForCausalLM

from ...models.cache import CACHE_ENV_VAR, build_once, cache_root  # noqa: F401 (CACHE_ENV_VAR re-exported)
from .task import generate_problems
from .tokenizer import build_tokenizer


# Bump when the build procedure changes, so stale caches are not reused.
# 3: the build runs on BUILD_NUM_THREADS threads (before, on whatever the calling process had).
BUILD_VERSION = 3
# CPU threads of the build, fixed so that the weights do not depend on the machine's core count or the launcher.
BUILD_NUM_THREADS = 2


@dataclass(frozen=True)
class EmbeddedModelSpec:
    """Everything that determines the embedded base model; its hash names the cache entry."""

    seed: int = 0
    hidden_size: int = 96
    intermediate_size: int = 256
    num_hidden_layers: int = 3
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    warmup_steps: int = 800
    batch_size: int = 64
    learning_rate: float = 3e-3
    difficulty: float = 0.25
    max_ops: int = 7
    max_operand: int = 20
    carry_slip_rate: float = 0.3
    # Attention head size; None = hidden_size // num_attention_heads (24 by default). vLLM's CPU attention only takes
    # some sizes (32, 64, 80, 96, 112, 128, 256, ...): VLLM_EMBEDDED_SPEC sets 32.
    head_dim: int | None = None

    def cache_key(self) -> str:
        fields = dataclasses.asdict(self)
        if fields["head_dim"] is None:
            del fields["head_dim"]  # the key of a spec without head_dim is the one it had before the field existed
        payload = json.dumps({"build_version": BUILD_VERSION, **fields}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


# The default embedded model with attention heads vLLM's CPU backend accepts (head_dim 32 instead of 24).
VLLM_EMBEDDED_SPEC = EmbeddedModelSpec(head_dim=32)


def model_config(spec: EmbeddedModelSpec, tokenizer: PreTrainedTokenizerFast) -> Qwen3Config:
    return Qwen3Config(
        vocab_size=len(tokenizer),
        hidden_size=spec.hidden_size,
        intermediate_size=spec.intermediate_size,
        num_hidden_layers=spec.num_hidden_layers,
        num_attention_heads=spec.num_attention_heads,
        num_key_value_heads=spec.num_key_value_heads,
        head_dim=spec.head_dim or spec.hidden_size // spec.num_attention_heads,
        max_position_embeddings=256,
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )


def _sft_batch(problems, completions, tokenizer) -> dict[str, torch.Tensor]:
    """Right-padded prompt+completion+EOS sequences; the loss only covers completion tokens and EOS."""
    sequences, labels = [], []
    for problem, completion in zip(problems, completions):
        prompt_ids = tokenizer(problem.prompt)["input_ids"]
        completion_ids = tokenizer(completion)["input_ids"] + [tokenizer.eos_token_id]
        sequences.append(prompt_ids + completion_ids)
        labels.append([-100] * len(prompt_ids) + completion_ids)
    width = max(len(s) for s in sequences)
    input_ids = torch.full((len(sequences), width), tokenizer.pad_token_id)
    label_ids = torch.full((len(sequences), width), -100)
    attention_mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for i, (seq, lab) in enumerate(zip(sequences, labels)):
        input_ids[i, : len(seq)] = torch.tensor(seq)
        label_ids[i, : len(lab)] = torch.tensor(lab)
        attention_mask[i, : len(seq)] = 1
    return {"input_ids": input_ids, "labels": label_ids, "attention_mask": attention_mask}


def warm_start(model: Qwen3ForCausalLM, tokenizer, spec: EmbeddedModelSpec, log_every: int = 0) -> list[float]:
    """Supervised warm start on freshly drawn problems; returns the loss history."""
    # Problems for the warm start come from their own seed stream, disjoint from the RL and held-out datasets.
    rng_seed = 1_000_003 * (spec.seed + 1)
    optimizer = torch.optim.AdamW(model.parameters(), lr=spec.learning_rate, weight_decay=0.0)
    warmup = max(1, spec.warmup_steps // 20)

    def lr_lambda(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, spec.warmup_steps - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda)
    model.train()
    losses = []
    for step in range(spec.warmup_steps):
        problems = generate_problems(spec.batch_size, rng_seed + step, spec.difficulty, spec.max_ops, spec.max_operand)
        slip_rng = random.Random(rng_seed + step)
        completions = [p.solution_with_slips(slip_rng, spec.carry_slip_rate) for p in problems]
        loss = model(**_sft_batch(problems, completions, tokenizer)).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
        if log_every and (step + 1) % log_every == 0:
            print(f"[zvp_trl] warm start step {step + 1}/{spec.warmup_steps}: loss {loss.item():.4f}", flush=True)
    model.eval()
    return losses


def cpu_model() -> str:
    """The CPU's maker and model as the build records it (Linux: `/proc/cpuinfo`'s vendor, family, model and name;
    elsewhere `platform.processor()`): two builds can only be expected to agree bit for bit where this agrees."""
    fields = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key in ("vendor_id", "cpu family", "model", "model name") and key not in fields:
                fields[key] = value.strip()
            if not line.strip() and fields:
                break  # the first processor's block is enough
    except OSError:
        pass
    if not fields:
        return platform.processor() or platform.machine() or "unknown"
    return (
        f"{fields.get('vendor_id', '?')} {fields.get('model name', '?')} "
        f"(family {fields.get('cpu family', '?')}, model {fields.get('model', '?')})"
    )


def build_platform() -> dict:
    """What a bit-for-bit equal build needs to share: torch version, CPU instruction set and CPU model."""
    return {
        "torch_version": torch.__version__,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpu_model": cpu_model(),
    }


def weights_checksum(state_dict: dict[str, torch.Tensor]) -> str:
    """SHA-256 of the tensors' bytes in name order: equal exactly when every weight is equal bit for bit."""
    digest = hashlib.sha256()
    for name in sorted(state_dict):
        digest.update(name.encode())
        digest.update(state_dict[name].detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def built_weights_checksum(model_path: str | Path) -> str | None:
    """The weights' SHA-256 that this module's build recorded in `model_path/build_info.json`; None for a model the
    package did not build (or one built before the checksum was recorded)."""
    info = Path(model_path) / "build_info.json"
    return json.loads(info.read_text()).get("weights_sha256") if info.is_file() else None


def build_embedded_model(spec: EmbeddedModelSpec, output_dir: str | Path, log_every: int = 0) -> dict:
    """Builds the model from nothing, warm-starts it and saves model + tokenizer + `build_info.json`. Runs on
    `BUILD_NUM_THREADS` threads and gives the caller's thread count back afterwards."""
    callers_threads = torch.get_num_threads()
    torch.set_num_threads(BUILD_NUM_THREADS)
    try:
        return _build(spec, Path(output_dir), log_every)
    finally:
        torch.set_num_threads(callers_threads)


def _build(spec: EmbeddedModelSpec, output_dir: Path, log_every: int) -> dict:
    start = time.perf_counter()
    random.seed(spec.seed)
    torch.manual_seed(spec.seed)
    tokenizer = build_tokenizer()
    model = Qwen3ForCausalLM(model_config(spec, tokenizer))
    losses = warm_start(model, tokenizer, spec, log_every=log_every) if spec.warmup_steps > 0 else []
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.save_pretrained(output_dir)
    tokenizer.save_pretrained(output_dir)
    info = {
        "spec": dataclasses.asdict(spec),
        "build_version": BUILD_VERSION,
        "num_parameters": sum(p.numel() for p in model.parameters()),
        "build_seconds": time.perf_counter() - start,
        "final_warm_start_loss": losses[-1] if losses else None,
        "weights_sha256": weights_checksum(model.state_dict()),
        **build_platform(),
        "num_threads": BUILD_NUM_THREADS,
        "warm_start_losses": losses[:: max(1, len(losses) // 50)],
    }
    (output_dir / "build_info.json").write_text(json.dumps(info, indent=2))
    return info


# Built copies of the default embedded models that ship with the package (`built-models/<cache key>/`: weights, tokenizer,
# build_info.json), so a first run does not spend minutes building, and every user starts from the same weights (a build
# on another CPU gives a model of the same kind, not the same bits). `python -m zvp_trl.scripts.build_embedded_model`
# builds them again and compares.
# (A folder name that is no Python identifier: package data, never taken for a namespace package.)
SHIPPED_DIR = Path(__file__).parent / "built-models"


def shipped_model_path(spec: EmbeddedModelSpec) -> Path | None:
    """The shipped built copy of `spec`'s model, or None when the package ships none for it."""
    path = SHIPPED_DIR / spec.cache_key()
    return path if (path / "build_info.json").is_file() else None


def _copy_shipped(source: Path, tmp: Path) -> dict:
    shutil.copytree(source, tmp)
    info = json.loads((tmp / "build_info.json").read_text())
    # The checksum is the built model's state dict (its tied LM head included), so it is read back as a model.
    if weights_checksum(Qwen3ForCausalLM.from_pretrained(tmp).state_dict()) != info["weights_sha256"]:
        raise RuntimeError(
            f"The shipped embedded model {source} does not match its recorded checksum: the package files are "
            "damaged. Reinstall zvp_trl, or build the model with `python -m zvp_trl.scripts.build_embedded_model`."
        )
    return {**info, "shipped": True}


def get_embedded_model_path(spec: EmbeddedModelSpec | None = None, log_every: int = 100, build: bool = False) -> Path:
    """Path of the cached base model for `spec`, putting it in the cache first if it is not there yet: a copy of the
    shipped build when the package ships one for `spec` (checked against its checksum), else built here (about 2
    minutes on 2 CPU cores for the default spec). `build=True` builds it here even where a shipped copy exists.

    The cache entry is written to a temporary directory and renamed into place, so an interrupted build never leaves a
    half-written cache entry behind.
    """
    spec = spec or EmbeddedModelSpec()
    path = cache_root() / "embedded" / spec.cache_key()
    if (path / "build_info.json").is_file():
        return path
    shipped = None if build else shipped_model_path(spec)
    if shipped is not None:
        info = build_once(path, "build_info.json", lambda tmp: _copy_shipped(shipped, tmp))
        if info is not None:
            print(
                f"[zvp_trl] embedded base model: the package's built copy (weights sha256 {info['weights_sha256'][:16]}), "
                f"cached in {path}",
                flush=True,
            )
        return path
    print(f"[zvp_trl] building the embedded base model (one time) into {path}", flush=True)
    info = build_once(path, "build_info.json", lambda tmp: build_embedded_model(spec, tmp, log_every=log_every))
    if info is not None:
        loss = info["final_warm_start_loss"]
        loss = "none" if loss is None else f"{loss:.4f}"
        print(
            f"[zvp_trl] built in {info['build_seconds']:.0f}s (final warm-start loss {loss}, "
            f"weights sha256 {info['weights_sha256'][:16]})"
        )
    return path
