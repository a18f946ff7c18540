# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""The probe's generation speed with vLLM against vLLM's own offline throughput on the same prompts.

One process, one vLLM engine: the one TRL's colocate mode builds for the probe's trainer (`recipes/probe.py
--use_vllm true --vllm_mode colocate`). The probe runs over N prompts x G samples in batches of
`--prompts_per_batch` prompts; every call it makes to `LLM.generate` is timed, and its completion tokens counted.
Then the same engine generates the same rows (each prompt's token ids G times, TRL's colocate request: n=1 per row,
the same sampling parameters and log-probs) in one offline `LLM.generate` call, `--repeats` times. Printed: the
generation throughput ratio (probe / offline, completion tokens per second of generation) and the end-to-end ratio
(the whole probe: generation, reward scoring, the forwards for ExGRPO's trajectories, writing).

    python benchmarks/probe_vllm.py [--prompts 64] [--num_generations 8] [--max_tokens 64] [--prompts_per_batch 64]

Needs the vLLM environment (docs/vllm.md); on a CPU machine vLLM's CPU build. The model is the embedded task's (built
with heads vLLM's CPU attention takes), the prompts its training prompts. Writes benchmarks/probe_vllm.json.
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--num_generations", type=int, default=8)
    parser.add_argument("--max_tokens", type=int, default=64)
    parser.add_argument("--prompts_per_batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--output", default=str(Path(__file__).with_name("probe_vllm.json")))
    cli = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    import torch
    from vllm import SamplingParams

    from zvp_trl import GRPOBaselineConfig, GRPOBaselineTrainer, accuracy_reward
    from zvp_trl.data.embedded import make_split
    from zvp_trl.evaluation.machine import machine_info
    from zvp_trl.launch.vllm_cpu import enable_vllm_cpu_weight_sync, vllm_platform_is_cpu
    from zvp_trl.models.resolve import resolve_model_name
    from zvp_trl.probing import ProbeArguments
    from zvp_trl.probing.run import run_probe

    if vllm_platform_is_cpu():
        enable_vllm_cpu_weight_sync()
    model = resolve_model_name(None, use_vllm=True)
    dataset = make_split("train", cli.prompts)
    G = cli.num_generations
    with tempfile.TemporaryDirectory() as scratch:
        config = GRPOBaselineConfig(
            output_dir=scratch,
            use_cpu=not torch.cuda.is_available(),
            use_vllm=True,
            vllm_mode="colocate",
            vllm_max_model_length=256,
            num_generations=G,
            max_completion_length=cli.max_tokens,
            per_device_train_batch_size=G,
            report_to="none",
            seed=0,
        )
        trainer = GRPOBaselineTrainer(model=model, reward_funcs=accuracy_reward, args=config, train_dataset=dataset)
        llm = trainer.vllm_generation.llm
        calls = []
        generate = llm.generate

        def timed(*args, **kwargs):
            start = time.perf_counter()
            outputs = generate(*args, **kwargs)
            tokens = sum(len(o.token_ids) for out in outputs for o in out.outputs)
            calls.append((time.perf_counter() - start, tokens))
            return outputs

        prompt_ids = [trainer.processing_class(row["prompt"])["input_ids"] for row in dataset]
        requests = [{"prompt_token_ids": ids} for ids in prompt_ids for _ in range(G)]
        params = SamplingParams(
            n=1, temperature=config.temperature, top_p=config.top_p, top_k=config.top_k, min_p=0.0,
            repetition_penalty=config.repetition_penalty, max_tokens=cli.max_tokens,
            logprobs=trainer.vllm_generation.logprobs,
        )  # fmt: skip

        def offline() -> tuple[float, int]:
            start = time.perf_counter()
            outputs = generate(requests, sampling_params=params, use_tqdm=False)
            return time.perf_counter() - start, sum(len(o.token_ids) for out in outputs for o in out.outputs)

        offline()  # warm-up (first-call compilation and caches)
        offline_runs = [offline() for _ in range(cli.repeats)]
        llm.generate = timed
        start = time.perf_counter()
        run_probe(trainer, dataset, Path(scratch) / "probe", ProbeArguments(cli.prompts_per_batch), model, "embedded")
        probe_seconds = time.perf_counter() - start
        llm.generate = generate
        offline_runs += [offline() for _ in range(cli.repeats)]

    offline_rate = statistics.median(tokens / seconds for seconds, tokens in offline_runs)
    generation_seconds, probe_tokens = sum(c[0] for c in calls), sum(c[1] for c in calls)
    result = {
        "date": date.today().isoformat(),
        "machine": machine_info(),
        "settings": vars(cli) | {"model": "embedded (vLLM heads)"},
        "offline_tokens_per_s": offline_rate,
        "offline_runs": offline_runs,
        "probe_generation_tokens_per_s": probe_tokens / generation_seconds,
        "probe_end_to_end_tokens_per_s": probe_tokens / probe_seconds,
        "probe_generate_calls": len(calls),
        "generation_ratio": probe_tokens / generation_seconds / offline_rate,
        "end_to_end_ratio": probe_tokens / probe_seconds / offline_rate,
    }
    Path(cli.output).write_text(json.dumps(result, indent=1))
    print(
        f"offline vLLM {offline_rate:.0f} tok/s; probe generation {result['probe_generation_tokens_per_s']:.0f} tok/s "
        f"(x{result['generation_ratio']:.2f}), end to end {result['probe_end_to_end_tokens_per_s']:.0f} tok/s "
        f"(x{result['end_to_end_ratio']:.2f}), {len(calls)} generate calls"
    )


if __name__ == "__main__":
    main()
