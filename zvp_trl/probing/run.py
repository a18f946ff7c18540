# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""The zero-variance probe: every prompt of a data set sampled `num_generations` times at the training settings and
scored with the training reward functions, before any training.

The probe drives TRL's own generation and scoring (`GRPOTrainer._generate_and_score_completions`, through the plain
GRPO trainer of this package and the run's own config): the same sampling settings, the same engine (transformers
`generate` or vLLM, colocate or server), the same reward functions, weights and `correct_threshold` as training, and
no optimizer step. On several processes each one samples its share of a batch; the rewards come back gathered, so the
main process writes every prompt's row, exactly once, in data-set order.

Output (`output_dir`), written batch by batch:
- `probe.jsonl`: one row per prompt: `index` (its row in the data set), `prompt_id` (as the trainers compute it),
  `num_correct`, `num_generations`, `kind` (`all_correct` / `all_wrong` / `mixed`, the training's zero-variance split),
  `reward_mean`, `reward_std`, `completion_length_mean`.
- `trajectories.jsonl`: the correct completions (token ids) of the prompts that were partially solved, for ExGRPO's warm
  start.
- `probe_settings.json`: what was probed and how; a rerun into the same `output_dir` resumes only with the same
  settings, after the last complete batch (each batch's rows are written at once and flushed).
- `summary.json`, `solve_rates.png` and the printed report, at the end (`zvp_trl.probing.report`).
"""

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..core.prompt_ids import dataset_prompt_ids
from ..core.warm_start import PROBE_FILE, SETTINGS_FILE, TRAJECTORIES_FILE, data_fingerprint
from ..core.zero_variance import zero_variance_signs


KINDS = {1.0: "all_correct", -1.0: "all_wrong", 0.0: "mixed"}
# The config fields that decide what a probe measures: a resumed probe, and a warm start from one, must match them.
GENERATION_FIELDS = (
    "num_generations",
    "temperature",
    "top_p",
    "top_k",
    "min_p",
    "repetition_penalty",
    "max_completion_length",
    "correct_threshold",
    "zero_variance_atol",
    "use_vllm",
    "seed",
)


@dataclass
class ProbeArguments:
    """Arguments of `recipes/probe.py` beside the training ones (model, data, rewards and generation settings are
    the training script's)."""

    probe_prompts_per_process: int = field(
        default=8,
        metadata={"help": "Prompts each process samples per batch (each num_generations times)."},
    )
    probe_max_prompts: int | None = field(
        default=None, metadata={"help": "Probe at most the first this many prompts of the data set. None: all."}
    )
    write_filtered: bool = field(
        default=False,
        metadata={
            "help": "Also write <output_dir>/filtered.jsonl: the data set's rows whose solve rate lies within "
            "[filter_min_solve_rate, filter_max_solve_rate] (all their columns), loadable by recipes/train.py "
            "--dataset_name."
        },
    )
    filter_min_solve_rate: float | None = field(
        default=None,
        metadata={
            "help": "Lowest solve rate (correct samples / num_generations) kept by --write_filtered, inclusive. None: "
            "above 0 (the never-solved prompts are dropped)."
        },
    )
    filter_max_solve_rate: float | None = field(
        default=None,
        metadata={
            "help": "Highest solve rate kept by --write_filtered, inclusive. None: below 1 (the always-solved prompts "
            "are dropped)."
        },
    )
    probe_plot: bool = field(default=True, metadata={"help": "Write solve_rates.png (needs matplotlib)."})

    def __post_init__(self):
        if self.probe_prompts_per_process < 1:
            raise ValueError(f"probe_prompts_per_process must be >= 1, got {self.probe_prompts_per_process}.")
        if self.probe_max_prompts is not None and self.probe_max_prompts < 1:
            raise ValueError(f"probe_max_prompts must be >= 1 or None, got {self.probe_max_prompts}.")
        low = 0.0 if self.filter_min_solve_rate is None else self.filter_min_solve_rate
        high = 1.0 if self.filter_max_solve_rate is None else self.filter_max_solve_rate
        if not 0.0 <= low <= high <= 1.0:
            raise ValueError(
                "filter_min_solve_rate and filter_max_solve_rate must satisfy 0 <= min <= max <= 1, got "
                f"{self.filter_min_solve_rate} and {self.filter_max_solve_rate}."
            )


def probe_settings(args, model_name: str, dataset_name: str, prompt_ids: list[str], num_processes: int) -> dict:
    settings = {name: getattr(args, name, None) for name in GENERATION_FIELDS}
    settings.update(
        model=str(model_name),
        dataset=str(dataset_name),
        data_sha256=data_fingerprint(prompt_ids),
        num_prompts=len(prompt_ids),
        num_processes=num_processes,
        prompt_id_column=getattr(args, "prompt_id_column", None),
    )
    return settings


def _read_done(path: Path) -> list[dict]:
    """The complete rows of a probe file; a torn last line (a probe killed while writing) is cut off the file."""
    if not path.is_file():
        return []
    rows, good_bytes = [], 0
    with open(path, "rb") as f:
        for line in f:
            if not line.endswith(b"\n"):
                break
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                break
            good_bytes += len(line)
    if good_bytes != path.stat().st_size:
        with open(path, "r+b") as f:
            f.truncate(good_bytes)
    return rows


def _append(path: Path, rows: list[dict]) -> None:
    if not rows:
        return
    with open(path, "a") as f:
        f.write("".join(json.dumps(row) + "\n" for row in rows))
        f.flush()
        os.fsync(f.fileno())


def check_same_settings(written: dict, current: dict, what: str) -> None:
    differences = [
        f"{key}: {written.get(key)!r} there, {current.get(key)!r} now"
        for key in sorted(set(written) | set(current))
        if written.get(key) != current.get(key)
    ]
    if differences:
        raise ValueError(f"{what} was made with other settings ({'; '.join(differences)}).")


def run_probe(trainer, dataset, output_dir, probe_args: ProbeArguments, model_name: str, dataset_name: str) -> dict:
    """Probes `dataset` with `trainer` (a GRPO trainer of this package, never trained here); returns the settings and
    the probe's rows (every prompt once, in data-set order, on every process)."""
    from accelerate.utils import broadcast_object_list, gather_object, set_seed

    accelerator = trainer.accelerator
    args = trainer.args
    G = args.num_generations
    world, rank = accelerator.num_processes, accelerator.process_index
    output_dir = Path(output_dir)
    num_prompts = (
        len(dataset) if probe_args.probe_max_prompts is None else min(len(dataset), probe_args.probe_max_prompts)
    )
    prompt_ids = dataset_prompt_ids(dataset, getattr(args, "prompt_id_column", None))[:num_prompts]
    settings = probe_settings(args, model_name, dataset_name, prompt_ids, world)
    probe_path, trajectories_path, settings_path = (
        output_dir / PROBE_FILE,
        output_dir / TRAJECTORIES_FILE,
        output_dir / SETTINGS_FILE,
    )

    # The main process decides what is already done (a resumed probe) and tells the others.
    shared = [None]
    if accelerator.is_main_process:
        output_dir.mkdir(parents=True, exist_ok=True)
        if settings_path.is_file():
            check_same_settings(
                json.loads(settings_path.read_text()), settings, f"The probe in {output_dir} (resumed)"
            )
        else:
            for stale in (probe_path, trajectories_path):
                stale.unlink(missing_ok=True)
            settings_path.write_text(json.dumps(settings, indent=2))
        done = _read_done(probe_path)
        done_indices = {row["index"] for row in done}
        _cut_trajectories(trajectories_path, done_indices)
        shared = [sorted(done_indices)]
    shared = broadcast_object_list(shared) if world > 1 else shared
    done_indices = set(shared[0])
    todo = [i for i in range(num_prompts) if i not in done_indices]

    per_process = probe_args.probe_prompts_per_process
    per_batch = per_process * world
    trainer.model.train()  # TRL samples at the training settings in train mode
    threshold, atol = getattr(args, "correct_threshold", 0.0), getattr(args, "zero_variance_atol", 1e-6)
    weights = trainer.reward_weights
    started = time.perf_counter()
    # Batches start at multiples of `per_batch` prompts of the remaining list; a probe resumed after complete batches
    # continues with the batches (and seeds) of the uninterrupted one.
    for start in range(0, len(todo), per_batch):
        batch = todo[start : start + per_batch]
        padded = batch + [batch[-1]] * (per_batch - len(batch))  # every process samples the same count (TRL's gather)
        mine = padded[rank * per_process : (rank + 1) * per_process]
        rows = [dict(dataset[int(i)]) for i in mine for _ in range(G)]
        set_seed(args.seed + batch[0] * 7919 + rank, device_specific=False)
        output, step = trainer._generate_round(rows)
        rewards = step.scalar_rewards(weights).float().cpu()  # every process's rows, in process order
        lengths = accelerator.gather(output["completion_mask"].sum(dim=1)).float().cpu()
        signs = zero_variance_signs(rewards, G, threshold, atol).view(-1, G)[:, 0]
        correct = (rewards > threshold).view(-1, G)  # NaN (unscored) is not correct
        grouped_rewards, grouped_lengths = rewards.view(-1, G), lengths.view(-1, G)
        trajectories = _partial_trajectories(trainer, output, correct, batch, padded, rank, per_process)
        trajectories = gather_object(trajectories) if world > 1 else trajectories
        if accelerator.is_main_process:
            records = []
            for group, index in enumerate(batch):
                values = grouped_rewards[group]
                finite = values[~torch.isnan(values)]
                records.append(
                    {
                        "index": int(index),
                        "prompt_id": prompt_ids[int(index)],
                        "num_correct": int(correct[group].sum()),
                        "num_unscored": int(torch.isnan(values).sum()),
                        "num_generations": G,
                        "kind": KINDS[float(signs[group])],
                        "reward_mean": float(finite.mean()) if len(finite) else None,
                        "reward_std": float(finite.std(unbiased=False)) if len(finite) else None,
                        "completion_length_mean": float(grouped_lengths[group].mean()),
                    }
                )
            # Trajectories first: a row in probe.jsonl means its prompt is done, trajectories included.
            _append(trajectories_path, trajectories)
            _append(probe_path, records)
        accelerator.wait_for_everyone()
    seconds = time.perf_counter() - started
    rows = _read_done(probe_path) if accelerator.is_main_process else None
    shared = broadcast_object_list([rows]) if world > 1 else [rows]
    rows = sorted(shared[0], key=lambda row: row["index"])
    return {"settings": settings, "rows": rows, "seconds": seconds}


def _partial_trajectories(trainer, output, correct, batch, padded, rank, per_process) -> list[dict]:
    """This process's correct completions of partially solved prompts, with their prompt's token ids and their
    per-token log-probs under the sampling policy (at the sampling temperature): what ExGRPO stores for a replay."""
    G = trainer.args.num_generations
    rows = [
        j * G + g
        for j in range(per_process)
        if rank * per_process + j < len(batch) and 0 < int(correct[rank * per_process + j].sum()) < G
        for g in range(G)
        if correct[rank * per_process + j, g] and int(output["completion_mask"][j * G + g].sum()) > 0
    ]
    if not rows:
        return []
    index = torch.tensor(rows, device=output["completion_ids"].device)
    prompt_ids, prompt_mask = output["prompt_ids"][index], output["prompt_mask"][index]
    completion_ids, completion_mask = output["completion_ids"][index], output["completion_mask"][index]
    with torch.no_grad():
        logps, _, _ = trainer._get_per_token_logps_and_entropies(
            trainer.model,
            torch.cat([prompt_ids, completion_ids], dim=1),
            torch.cat([prompt_mask, completion_mask], dim=1),
            completion_ids.size(1),
            batch_size=trainer.args.per_device_train_batch_size,
        )
    trajectories = []
    for i, row in enumerate(rows):
        keep = completion_mask[i].bool()
        trajectories.append(
            {
                "index": int(padded[rank * per_process + row // G]),
                "prompt_ids": prompt_ids[i][prompt_mask[i].bool()].tolist(),
                "completion_ids": completion_ids[i][keep].tolist(),
                "logps": [round(float(x), 6) for x in logps[i][keep].float().cpu()],
            }
        )
    return trajectories


def _cut_trajectories(path: Path, done_indices: set[int]) -> None:
    """Trajectories of prompts whose row was never written (a probe killed between the two writes) are dropped, so a
    resumed probe writes them once."""
    if not path.is_file():
        return
    kept = [row for row in _read_done(path) if row["index"] in done_indices]
    path.write_text("".join(json.dumps(row) + "\n" for row in kept))
