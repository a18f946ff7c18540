# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""TRL's vLLM server mode against a real vLLM server on the CPU, up to the point a CPU cannot pass: TRL's weight sync
runs on vLLM's NCCL weight-transfer engine, and `VLLMClient.init_communicator` refuses a non-CUDA device.

The server is started as `trl vllm-serve` would start it, by `zvp_trl.launch.vllm_cpu.trl_vllm_server` (TRL's
flags, through vLLM's OpenAI server module: see there why not the CLI).
"""

import collections
import json
import threading
import time

import pytest
import torch

from conftest import run_script


def _logps_at(model, prompt_ids: list[int], completion_ids: list[int], temperature: float) -> torch.Tensor:
    """The model's log-probs of `completion_ids` after `prompt_ids`, at `temperature`."""
    ids = torch.tensor([prompt_ids + completion_ids])
    with torch.no_grad():
        logits = model(ids).logits[0, len(prompt_ids) - 1 : -1].float() / temperature
    return torch.log_softmax(logits, dim=-1).gather(1, torch.tensor(completion_ids)[:, None])[:, 0]


def test_grouped_by_temperature_through_the_real_server(server, vllm_model_path):
    """ERPO's server path: one request per distinct temperature, all in flight at once, n completions per prompt,
    order restored, each prompt's completions sampled at its own temperature (vLLM's processed log-probs match the
    model's at T_i)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl.generation.vllm_client import VLLMClient

    from zvp_trl.core.per_row_temperature import generate_grouped_by_temperature

    tokenizer = AutoTokenizer.from_pretrained(vllm_model_path)
    model = AutoModelForCausalLM.from_pretrained(vllm_model_path).eval()
    client = VLLMClient(base_url=server, connection_timeout=60)
    prompts = [tokenizer(f"Q: {n}+1=?\nA:")["input_ids"] for n in (3, 14, 7, 9, 12)]
    temperatures = [1.0, 2.0, 1.0, 1.5, 2.0]
    n = 3
    calls, spans = [], []
    # Three calls that meet at a barrier of three before sending are in flight together by construction; calls made
    # one after the other could never meet it (the barrier would time out). The barrier also keeps a slow thread start
    # on a loaded machine from letting one request finish before another is sent.
    together = threading.Barrier(3, timeout=60)

    def generate(**kwargs):
        calls.append((kwargs["temperature"], len(kwargs["prompts"]), kwargs["n"]))
        together.wait()
        start = time.monotonic()
        try:
            return client.generate(**kwargs)
        finally:
            spans.append((start, time.monotonic()))

    output = generate_grouped_by_temperature(generate, prompts, temperatures, n, max_tokens=12)
    assert sorted(calls) == [(1.0, 2, n), (1.5, 1, n), (2.0, 2, n)]
    # The three requests were in flight together (concurrent, so the server batches them): each began before any ended.
    assert max(start for start, _ in spans) < min(end for _, end in spans), spans
    assert output["prompt_ids"] == prompts  # the original order
    assert len(output["completion_ids"]) == len(output["logprobs"]) == len(prompts) * n
    distance = collections.defaultdict(list)  # (sampled at, scored at) -> mean |vLLM - model| per completion
    for row, (completion, logprobs) in enumerate(zip(output["completion_ids"], output["logprobs"])):
        prompt = prompts[row // n]
        sampled_at = temperatures[row // n]
        vllm_logps = torch.tensor([lp[0] for lp in logprobs])
        for scored_at in {sampled_at, 1.0}:
            model_logps = _logps_at(model, prompt, completion, scored_at)
            distance[(sampled_at, scored_at)].append((vllm_logps - model_logps).abs().mean().item())
    means = {key: sum(values) / len(values) for key, values in distance.items()}
    print("mean |vLLM - model| log-prob per token, (sampled at, scored at):", means)
    for temperature in (1.0, 1.5, 2.0):
        assert means[(temperature, temperature)] < 0.01, means
    for temperature in (1.5, 2.0):
        assert means[(temperature, 1.0)] > 0.1, means  # so the check above tells temperatures apart


def test_trainer_stops_at_the_weight_transfer_on_a_cpu(server, vllm_model_path, tmp_path):
    """The exact point a CPU cannot pass: building the trainer connects TRL's NCCL weight-transfer communicator."""
    process = run_script(
        "vllm_run.py", "--algorithm", "erpo", "--model", vllm_model_path, "--output_dir", tmp_path / "out",
        "--result", tmp_path / "result.json", "--server_base_url", server, check=False,
    )  # fmt: skip
    assert process.returncode != 0
    assert "NotImplementedError" in process.stderr
    assert "needs a CUDA device" in process.stderr


@pytest.mark.parametrize("algorithm", ["erpo", "erpo_rl_zvp"])
def test_erpo_trains_through_the_server_up_to_the_weight_transfer(algorithm, server, vllm_model_path, tmp_path):
    """Everything but the weight transfer, in the real trainer: with learning rate 0 the server's weights stay the
    policy's, so the sync can be skipped. ERPO's elevated prompts come back from the server sampled at their own
    temperature (the trainer's log-probs at that temperature match the server's), in the right rows."""
    result = tmp_path / "result.json"
    run_script(
        "vllm_run.py", "--algorithm", algorithm, "--model", vllm_model_path, "--output_dir", tmp_path / "out",
        "--result", result, "--server_base_url", server, "--skip_weight_transfer", "--learning_rate", 0,
        "--max_steps", 6, "--save_steps", 100, "--record_rows",
    )  # fmt: skip
    run = json.loads(result.read_text())
    assert run["global_step"] == 6
    assert max(run["state_at_end"]["erpo_history"]["temperatures"].values()) == pytest.approx(2.0)
    by_temperature = collections.defaultdict(list)
    for row in run["rows"]:
        if row["tokens"]:
            by_temperature[row["temperature"]].append(row)
    assert {1.0, 1.5, 2.0} <= set(by_temperature)
    summary = {
        t: (len(rows), sum(r["is_ratio"] for r in rows) / len(rows), sum(r["logp_diff"] for r in rows) / len(rows))
        for t, rows in sorted(by_temperature.items())
    }
    print(f"{algorithm} via server: temperature -> (rows, mean per-row IS ratio, mean per-row |logp diff|)", summary)
    for _, ratio, difference in summary.values():
        assert abs(ratio - 1) < 0.01 and difference < 0.01, summary


@pytest.fixture(scope="module")
def vlm_server(vlm_model_path, tmp_path_factory):
    from zvp_trl.launch.vllm_cpu import trl_vllm_server

    log = tmp_path_factory.mktemp("vlm_server") / "server.log"
    with trl_vllm_server(vlm_model_path, log, max_model_len=256, env={"HF_HUB_OFFLINE": "1"}) as url:
        yield url


@pytest.mark.parametrize("algorithm", ["grpo", "erpo"])
def test_images_in_server_mode_stop_where_trl_stops(algorithm, vlm_server, vlm_model_path, tmp_path):
    """Vision-language prompts in server mode, with the tiny VLM vLLM's CPU build runs here (Idefics3, see
    `vlm_model_path`): TRL renders every prompt's images on the server (`image_features`), then stops placing the
    returned features into the prompt, before any per-temperature request: TRL's server path supports one run of image
    tokens per image, and Idefics3 writes a split image as several runs (one per tile). Plain GRPO stops at the same
    point, so this is TRL's limit; ERPO's per-temperature requests carry each prompt's own features (tested with
    TRL's `VLLMClient.generate` call shape in tests/test_erpo.py). Once TRL places such features, this test fails
    and is to become the real check of ERPO's image requests (`vllm_run.py --record_requests` records them)."""
    process = run_script(
        "vllm_run.py", "--algorithm", algorithm, "--model", vlm_model_path, "--output_dir", tmp_path / "out",
        "--result", tmp_path / "result.json", "--server_base_url", vlm_server, "--skip_weight_transfer",
        "--learning_rate", 0, "--max_steps", 2, "--images", "--record_requests", check=False,
    )  # fmt: skip
    assert process.returncode != 0
    assert "_place_features" in process.stderr
    assert "runs of image tokens in the prompt but 1 images were processed" in process.stderr
