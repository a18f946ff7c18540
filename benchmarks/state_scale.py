# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""Per-prompt state at the recipes' scale: memory per process, checkpoint size, save and load time.

ExGRPO's buffer is filled synthetically (P prompts x 8 trajectories x L tokens, random token ids below Qwen3's
vocabulary size and random log-probs, 150-token prompts, a short dataset row each) in two layouts:

- `tensors` (after): `zvp_trl.methods.exgrpo.buffer.ExperienceBuffer`, int32 ids / float32 log-probs per trajectory, checkpointed
  with `ExperienceBuffer.save` (one safetensors file) plus its summary in zvp_state.json, resumed with
  `load_state_dict(summary, directory)` (which checks the file's SHA-256).
- `lists` (before): a reference copy of the earlier layout (`ListLayoutBuffer` below, the same update rules), Python
  lists of ints and floats filled from `.tolist()` as the trainer did, checkpointed as JSON inside zvp_state.json.

Each case runs in two fresh processes: one fills the buffer, saves a checkpoint and times the per-step work, the
other loads the checkpoint, so each process's peak RSS is its own. Reported per case: the buffer's resident memory
(RSS after filling minus RSS before), the peak RSS increase over the whole fill/save/step process and over the load
process, checkpoint size, save and load time, and the per-step buffer work of the 8B recipe (512 prompts per
generation batch, replay ratio 0.5): drawing 256 questions, preparing their candidates for the entropy selection (the
padded batch of each question's trajectories, as `ExGRPOPart.select_trajectory` builds it, without the
forward) and the injected row (ids list and recorded log-probs), and collecting one generation batch (256 partially
solved groups x 4 new correct trajectories: half of them for buffered questions, half new ones that evict others).
Under ZeRO-3 every process prepares all 256 candidates, so that is the number timed.

The per-prompt state of the other methods is measured at a 1M-prompt dataset, every prompt seen: ERPO's history
(2 groups per prompt, 10% at an elevated temperature), GRESO's traces (2 records per prompt), the dynamic-sampling
prompt sampler, and ExGRPO's retired ids (500k retired prompts, an otherwise empty buffer).

The `lists` layout is measured only up to `--max_list_tokens` stored tokens (default 33M, i.e. up to 1000 x 8 x 4096:
about 3 GB of Python objects); larger `lists` cases (up to 27 GB) are extrapolated linearly per stored token from the
largest measured one and marked so.

    python benchmarks/state_scale.py [--cases 1000x1024 10000x2048 ...] [--layouts tensors lists] [--workdir /tmp]
"""

import argparse
import gc
import json
import os
import platform
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import OrderedDict
from datetime import date
from pathlib import Path


def machine_info() -> dict:
    """Where this result is measured: CPU vendor, model and instruction set, GPU, versions (zvp_trl.evaluation.machine)."""
    from zvp_trl.evaluation.machine import machine_info as info

    return info()


TRAJECTORIES = 8
VOCAB = 151_936  # Qwen3's vocabulary
PROMPT_TOKENS = 150
REPLAYS_PER_STEP = 256  # the 8B recipe: 512 prompts per generation batch x replay ratio 0.5
COLLECT_GROUPS = 256  # partially solved groups of one generation batch
COLLECT_PER_GROUP = 4  # new correct trajectories per group
G = 8
DEFAULT_CASES = ["1000x1024", "1000x4096", "10000x1024", "10000x2048", "10000x4096"]
STATE_FILE = "zvp_state.json"


class ListLayoutBuffer:
    """The earlier `ExperienceBuffer` storage, kept as a reference: every trajectory a dict of Python lists, the
    whole buffer JSON in zvp_state.json. Same update rules as `zvp_trl.methods.exgrpo.buffer.ExperienceBuffer`."""

    def __init__(self, max_prompts=None, max_trajectories=None):
        self.max_prompts = max_prompts
        self.max_trajectories = max_trajectories
        self.entries = OrderedDict()
        self.retired = set()

    def buckets(self):
        out = {}
        for pid, entry in self.entries.items():
            if entry["trajectories"]:
                out.setdefault(entry["k"], []).append(pid)
        return out

    def update(self, pid, k, num_generations, row=None, prompt_ids=None, trajectories=()):
        if k >= num_generations:
            self.entries.pop(pid, None)
            self.retired.add(pid)
            return
        if pid in self.retired or k <= 0:
            return
        entry = self.entries.get(pid)
        if entry is None:
            if not trajectories:
                return
            entry = {"k": int(k), "row": row, "prompt_ids": list(prompt_ids or []), "trajectories": []}
            self.entries[pid] = entry
        entry["k"] = int(k)
        self.entries.move_to_end(pid)
        seen = {tuple(t["ids"]) for t in entry["trajectories"]}
        for ids, logps in trajectories:
            key = tuple(int(i) for i in ids)
            if key in seen or not key:
                continue
            seen.add(key)
            entry["trajectories"].append({"ids": list(key), "logps": [float(x) for x in logps]})
        if self.max_trajectories is not None and len(entry["trajectories"]) > self.max_trajectories:
            del entry["trajectories"][: len(entry["trajectories"]) - self.max_trajectories]
        while self.max_prompts is not None and len(self.entries) > self.max_prompts:
            self.entries.popitem(last=False)

    def state_dict(self):
        return {"entries": [[pid, entry] for pid, entry in self.entries.items()], "retired": sorted(self.retired)}

    def load_state_dict(self, state):
        self.entries = OrderedDict((pid, entry) for pid, entry in state["entries"])
        self.retired = set(state["retired"])


def rss() -> int:
    """Resident memory of this process now, in bytes."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def row_of(i: int) -> dict:
    return {"prompt": f"Problem {i}: find the value of x such that ... (a typical math question)", "solution": str(i)}


def batch(generator, rows: int, tokens: int):
    """`rows` random trajectories of `tokens` tokens: int64 ids (as generation returns them) and float32 log-probs."""
    import torch

    ids = torch.randint(3, VOCAB, (rows, tokens), generator=generator)
    logps = -torch.rand(rows, tokens, generator=generator) * 4
    return ids, logps


def make_buffer(layout: str, prompts: int):
    if layout == "tensors":
        from zvp_trl.methods.exgrpo.buffer import ExperienceBuffer

        return ExperienceBuffer(max_prompts=prompts, max_trajectories=TRAJECTORIES)
    return ListLayoutBuffer(max_prompts=prompts, max_trajectories=TRAJECTORIES)


def as_trajectories(layout: str, ids, logps, lengths):
    """What the trainer hands the buffer for each stored row: tensor copies (after) or `.tolist()` (before)."""
    if layout == "tensors":
        return [(ids[i, :n].clone(), logps[i, :n].clone()) for i, n in enumerate(lengths)]
    return [(ids[i, :n].tolist(), logps[i, :n].tolist()) for i, n in enumerate(lengths)]


def fill(buffer, layout: str, prompts: int, tokens: int, generator) -> None:
    import torch

    for p in range(prompts):
        ids, logps = batch(generator, TRAJECTORIES, tokens)
        prompt_ids = torch.randint(3, VOCAB, (PROMPT_TOKENS,), generator=generator)
        prompt_ids = prompt_ids if layout == "tensors" else prompt_ids.tolist()
        trajectories = as_trajectories(layout, ids, logps, [tokens] * TRAJECTORIES)
        buffer.update(f"p{p}", 1 + p % (G - 1), G, row_of(p), prompt_ids, trajectories)


def time_step(buffer, layout: str, tokens: int, generator, repeats: int = 3) -> dict:
    """Median seconds of the per-step buffer work (see the module docstring)."""
    import torch

    from zvp_trl.methods.exgrpo.algorithm import exgrpo_bucket_weights, sample_buffer_prompts

    draw, select, collect = [], [], []
    for r in range(repeats):
        start = time.perf_counter()
        buckets = buffer.buckets()
        probs = exgrpo_bucket_weights(buckets.keys(), G)
        chosen = sample_buffer_prompts(buckets, probs, REPLAYS_PER_STEP, torch.Generator().manual_seed(r))
        draw.append(time.perf_counter() - start)

        start = time.perf_counter()
        recorded = torch.zeros(len(chosen), tokens)
        injected = []
        for i, pid in enumerate(chosen):
            entry = buffer.entries[pid]
            trajectories = entry["trajectories"]
            width = max(len(t["ids"]) for t in trajectories)
            completion_ids = torch.zeros((len(trajectories), width), dtype=torch.long)
            completion_mask = torch.zeros((len(trajectories), width), dtype=torch.long)
            for j, t in enumerate(trajectories):
                completion_ids[j, : len(t["ids"])] = torch.as_tensor(t["ids"], dtype=torch.long)
                completion_mask[j, : len(t["ids"])] = 1
            prompt = torch.as_tensor(entry["prompt_ids"], dtype=torch.long).expand(len(trajectories), -1)
            torch.cat([prompt, completion_ids], dim=1)
            chosen_t = trajectories[0]  # the pick needs the forward; any one costs the same
            injected.append(chosen_t["ids"].tolist() if layout == "tensors" else list(chosen_t["ids"]))
            recorded[i, : len(chosen_t["ids"])] = torch.as_tensor(chosen_t["logps"], dtype=torch.float32)
        select.append(time.perf_counter() - start)

        ids, logps = batch(generator, COLLECT_GROUPS * COLLECT_PER_GROUP, tokens)
        pids = list(buffer.entries)
        start = time.perf_counter()
        for g in range(COLLECT_GROUPS):
            rows = slice(g * COLLECT_PER_GROUP, (g + 1) * COLLECT_PER_GROUP)
            trajectories = as_trajectories(layout, ids[rows], logps[rows], [tokens] * COLLECT_PER_GROUP)
            pid = pids[g % len(pids)] if g % 2 == 0 else f"new-{r}-{g}"
            prompt_ids = torch.randint(3, VOCAB, (PROMPT_TOKENS,), generator=generator)
            prompt_ids = prompt_ids if layout == "tensors" else prompt_ids.tolist()
            buffer.update(pid, 3, G, row_of(g), prompt_ids, trajectories)
        collect.append(time.perf_counter() - start)
        del ids, logps
    return {
        "draw_s": statistics.median(draw),
        "select_s": statistics.median(select),
        "collect_s": statistics.median(collect),
    }


def save(buffer, layout: str, directory: str) -> None:
    """What the trainer's checkpoint writes for the buffer: its file and zvp_state.json (tmp file + rename)."""
    if layout == "tensors":
        state = {"exgrpo_buffer": buffer.save(directory)}
    else:
        state = {"exgrpo_buffer": buffer.state_dict()}
    tmp = os.path.join(directory, STATE_FILE + ".tmp")
    with open(tmp, "w") as f:
        json.dump(state, f)
    os.replace(tmp, os.path.join(directory, STATE_FILE))


def warm_up(layout: str) -> None:
    """Imports and first calls (zvp_trl pulls in transformers and TRL) before the baseline RSS is taken, so that the
    measured increase is the buffer's own."""
    import torch

    torch.set_num_threads(1)
    buffer = make_buffer(layout, 4)
    fill(buffer, layout, 4, 16, torch.Generator().manual_seed(1))
    time_step(buffer, layout, 16, torch.Generator().manual_seed(1), repeats=1)
    directory = tempfile.mkdtemp()
    try:
        save(buffer, layout, directory)
        load(make_buffer(layout, 4), layout, directory)
    finally:
        shutil.rmtree(directory)
    del buffer
    gc.collect()


def fill_worker(layout: str, prompts: int, tokens: int, directory: str) -> dict:
    import torch

    warm_up(layout)
    base = rss()
    buffer = make_buffer(layout, prompts)
    generator = torch.Generator().manual_seed(0)
    start = time.perf_counter()
    fill(buffer, layout, prompts, tokens, generator)
    fill_s = time.perf_counter() - start
    gc.collect()
    memory = rss() - base
    stored = sum(len(t["ids"]) for e in buffer.entries.values() for t in e["trajectories"])
    start = time.perf_counter()
    save(buffer, layout, directory)
    save_s = time.perf_counter() - start
    files = {name: os.path.getsize(os.path.join(directory, name)) for name in sorted(os.listdir(directory))}
    step = time_step(buffer, layout, tokens, generator)  # after saving: collecting changes the buffer
    return {
        "stored_tokens": stored,
        "buffer_memory_bytes": memory,
        "peak_fill_save_bytes": peak_rss() - base,
        "fill_s": fill_s,
        "save_s": save_s,
        "checkpoint_bytes": sum(files.values()),
        "files": files,
        **step,
    }


def load(buffer, layout: str, directory: str) -> None:
    """What resuming from the checkpoint does for the buffer."""
    with open(os.path.join(directory, STATE_FILE)) as f:
        state = json.load(f)["exgrpo_buffer"]
    if layout == "tensors":
        buffer.load_state_dict(state, directory=directory)  # reads the file, checks its SHA-256
    else:
        buffer.load_state_dict(state)


def load_worker(layout: str, prompts: int, directory: str) -> dict:
    warm_up(layout)
    base = rss()
    buffer = make_buffer(layout, prompts)
    start = time.perf_counter()
    load(buffer, layout, directory)
    load_s = time.perf_counter() - start
    gc.collect()
    return {"load_s": load_s, "loaded_memory_bytes": rss() - base, "peak_load_bytes": peak_rss() - base}


PER_PROMPT_STATES = ("erpo_history", "greso", "ds_sampler", "exgrpo_retired")


def per_prompt_state_worker(name: str, prompts: int, directory: str) -> dict:
    """One of `PER_PROMPT_STATES` at a `prompts`-prompt dataset, every prompt seen (see the module docstring): its
    memory, checkpoint size (what the trainer writes for it), save time (state_dict + JSON, plus the buffer file for
    the retired ids) and load time (JSON + load_state_dict)."""
    from zvp_trl.methods.erpo.algorithm import PromptTemperatureHistory
    from zvp_trl.methods.exgrpo.buffer import ExperienceBuffer
    from zvp_trl.methods.greso.algorithm import GRESOState
    from zvp_trl.methods.grpo_ds.algorithm import PromptSampler

    rng = random.Random(0)

    def pids():
        # Fresh strings shaped like prompt ids (16 hex digits), as the trainers make them row by row.
        return (f"{i:016x}" for i in range(prompts))

    def erpo_history():
        history = PromptTemperatureHistory(base=1.0, step=0.1, max_temperature=2.0)
        for pid in pids():
            history.num_updates[pid] = 2
            if rng.random() < 0.1:
                history.temperatures[pid] = 1.1
        return history

    def greso():
        state = GRESOState()
        for pid in pids():
            state.traces[pid] = [rng.random(), rng.random()]
        return state

    def ds_sampler():
        sampler = PromptSampler(prompts, seed=0)
        sampler.draw(prompts // 2)  # builds the epoch's permutation (kept in memory, not checkpointed)
        return sampler

    def exgrpo_retired():
        buffer = ExperienceBuffer()
        buffer.retired = {pid for i, pid in enumerate(pids()) if i % 2 == 0}
        return buffer

    make = {
        "erpo_history": erpo_history,
        "greso": greso,
        "ds_sampler": ds_sampler,
        "exgrpo_retired": exgrpo_retired,
    }[name]
    gc.collect()
    base = rss()
    obj = make()
    gc.collect()
    memory = rss() - base
    path = os.path.join(directory, STATE_FILE)
    start = time.perf_counter()
    state = obj.save(directory) if hasattr(obj, "save") else obj.state_dict()
    with open(path, "w") as f:
        json.dump({name: state}, f)
    save_s = time.perf_counter() - start
    size = sum(os.path.getsize(os.path.join(directory, n)) for n in os.listdir(directory))
    start = time.perf_counter()
    with open(path) as f:
        loaded = json.load(f)[name]
    if hasattr(obj, "save"):
        obj.load_state_dict(loaded, directory=directory)
    else:
        obj.load_state_dict(loaded)
    load_s = time.perf_counter() - start
    return {"memory_bytes": memory, "checkpoint_bytes": size, "save_s": save_s, "load_s": load_s}


def run_worker(*args: str) -> dict:
    command = [sys.executable, __file__, "--worker", *args]
    result = subprocess.run(command, capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
    if result.returncode != 0:
        raise RuntimeError(f"worker {args} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def parse_case(case: str) -> tuple[int, int]:
    prompts, tokens = case.lower().split("x")
    return int(prompts), int(tokens)


def gb(n) -> str:
    return f"{n / 1e9:.2f}"


def extrapolate(measured: dict, stored_tokens: int) -> dict:
    """A `lists` case scaled linearly per stored token from a measured one (the step work scales with the tokens of
    the drawn and collected trajectories, i.e. with the trajectory length)."""
    scale = stored_tokens / measured["stored_tokens"]
    out = {"stored_tokens": stored_tokens, "extrapolated_from": measured["case"]}
    for key in ("buffer_memory_bytes", "peak_fill_save_bytes", "peak_load_bytes", "checkpoint_bytes", "save_s"):
        out[key] = measured[key] * scale
    out["load_s"] = measured["load_s"] * scale
    return out


def table(results: dict) -> str:
    lines = [
        "| case (prompts x 8 x tokens) | layout | stored tokens | buffer memory (GB) | peak fill+step+save / load (GB) "
        "| checkpoint (GB) | save (s) | load (s) | draw / select 256 / collect 256x4 (ms) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for case, layouts in results["buffer"].items():
        for layout, r in layouts.items():
            note = f" (extrapolated from {r['extrapolated_from']})" if "extrapolated_from" in r else ""
            step = (
                f"{1000 * r['draw_s']:.1f} / {1000 * r['select_s']:.0f} / {1000 * r['collect_s']:.0f}"
                if "draw_s" in r
                else "-"
            )
            lines.append(
                f"| {case} | {layout}{note} | {r['stored_tokens'] / 1e6:.1f}M | {gb(r['buffer_memory_bytes'])} "
                f"| {gb(r['peak_fill_save_bytes'])} / {gb(r['peak_load_bytes'])} | {gb(r['checkpoint_bytes'])} "
                f"| {r['save_s']:.1f} | {r['load_s']:.1f} | {step} |"
            )
    if "per_prompt_state" in results:
        lines += [
            "",
            f"| per-prompt state at {results['per_prompt_state_prompts']:,} prompts | memory (MB) | checkpoint (MB) "
            "| save (s) | load (s) |",
            "|---|---|---|---|---|",
        ]
        for name, r in results["per_prompt_state"].items():
            lines.append(
                f"| {name} | {r['memory_bytes'] / 1e6:.0f} | {r['checkpoint_bytes'] / 1e6:.1f} | {r['save_s']:.2f} "
                f"| {r['load_s']:.2f} |"
            )
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", nargs="+", default=DEFAULT_CASES, help="PROMPTSxTOKENS (8 trajectories each)")
    parser.add_argument("--layouts", nargs="+", choices=["tensors", "lists"], default=["tensors", "lists"])
    parser.add_argument("--max_list_tokens", type=float, default=33e6, help="largest `lists` case actually run")
    parser.add_argument("--state_prompts", type=int, default=1_000_000, help="dataset size of the per-prompt state")
    parser.add_argument("--skip_state", action="store_true", help="skip ERPO / GRESO / DS / retired ids")
    parser.add_argument("--workdir", default=tempfile.gettempdir(), help="where checkpoints are written")
    parser.add_argument("--output", default=str(Path(__file__).with_suffix(".json")))
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        kind, *rest = args.worker
        if kind == "fill":
            out = fill_worker(rest[0], int(rest[1]), int(rest[2]), rest[3])
        elif kind == "load":
            out = load_worker(rest[0], int(rest[1]), rest[2])
        else:
            out = per_prompt_state_worker(rest[0], int(rest[1]), rest[2])
        print(json.dumps(out))
        return

    import torch

    results = {
        "date": date.today().isoformat(),
        "machine": machine_info(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "settings": {
            "trajectories_per_prompt": TRAJECTORIES,
            "prompt_tokens": PROMPT_TOKENS,
            "replays_per_step": REPLAYS_PER_STEP,
            "collect_groups": COLLECT_GROUPS,
            "collect_per_group": COLLECT_PER_GROUP,
        },
        "buffer": {},
    }
    largest_lists = None
    for case in args.cases:
        prompts, tokens = parse_case(case)
        results["buffer"][case] = {}
        for layout in args.layouts:
            stored = prompts * TRAJECTORIES * tokens
            if layout == "lists" and stored > args.max_list_tokens:
                if largest_lists is not None:
                    results["buffer"][case][layout] = extrapolate(largest_lists, stored)
                continue
            directory = tempfile.mkdtemp(prefix="zvp_state_scale_", dir=args.workdir)
            try:
                r = run_worker("fill", layout, str(prompts), str(tokens), directory)
                r.update(run_worker("load", layout, str(prompts), directory))
            finally:
                shutil.rmtree(directory, ignore_errors=True)
            r["case"] = case
            results["buffer"][case][layout] = r
            if layout == "lists" and (largest_lists is None or stored > largest_lists["stored_tokens"]):
                largest_lists = r
            print(f"{case} {layout}: {json.dumps(r)}", flush=True)
    if not args.skip_state:
        results["per_prompt_state"] = {}
        for name in PER_PROMPT_STATES:
            directory = tempfile.mkdtemp(prefix="zvp_state_scale_", dir=args.workdir)
            try:
                results["per_prompt_state"][name] = run_worker("state", name, str(args.state_prompts), directory)
            finally:
                shutil.rmtree(directory, ignore_errors=True)
        results["per_prompt_state_prompts"] = args.state_prompts
    print(table(results))
    with open(args.output, "w") as f:
        json.dump(results, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
