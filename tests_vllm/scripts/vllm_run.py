# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""Run by the vLLM tests in a subprocess: a few steps of `--algorithm` generating with vLLM on the CPU, in TRL's colocate
mode (default) or, with `--server_base_url`, through a running vLLM server.

Writes `--result` (JSON): TRL's log history, the per-run state (`zvp_state`-style dicts) right after a resume and at
the end, and, with `--record_rows`, one record per generated row (sampling temperature, the trainer's and vLLM's
log-probs of the row compared by `per_row_sampling_agreement`), and with `--record_requests` (server mode,
`--images`) one record per generation request sent to the server (decoded prompt, temperature, n, image hashes).

--images              : a vision-language model: conversational prompts, each question with an image of its own.

--no_weight_sync      : TRL's weight sync to vLLM is switched off (a control: vLLM then keeps sampling from the
                        initial weights while the policy moves on).
--resume CHECKPOINT   : resume from that checkpoint.
--kill_server PID,STEP: SIGKILLs the process group PID (a server started by `trl_vllm_server`, its engine processes
                        too) when optimizer step STEP begins (after checkpoint-(STEP-1) was saved, with save_steps 1),
                        and waits until the server refuses connections: the next generation request fails.
--enforce_eager       : colocate mode: the engine runs eagerly instead of compiling the model first (TRL builds the
                        engine without that option; the tests use it to start faster, one colocate run keeps the
                        compiled engine).
--server_base_url URL : server mode. TRL moves weights to the server over NCCL, which needs CUDA; on the CPU the
                        run stops at that point (TRL's `init_communicator` raises). `--skip_weight_transfer` skips
                        the communicator and the sync so generation through the server can be tested; with
                        `--learning_rate 0` the server's weights stay the policy's, so nothing is lost by skipping.
"""

import argparse
import json
import os
import signal
import time
import urllib.request

from datasets import Dataset
from transformers import TrainerCallback


ALGORITHM_OVERRIDES = {
    "exgrpo": {"exgrpo_start_threshold": None},
    "exgrpo_rl_zvp": {"exgrpo_start_threshold": None},
    "greso": {"greso_adapt_from_epoch": 0},
}
ERPO_OVERRIDES = {"erpo_temperature_step": 0.5, "erpo_max_temperature": 2.0}


def prompt_text(prompt) -> str:
    """The text of a prompt: itself, or (conversational) its last message's text parts."""
    if isinstance(prompt, str):
        return prompt
    content = prompt[-1]["content"]
    return content if isinstance(content, str) else "".join(p.get("text", "") for p in content if p["type"] == "text")


def image_of(n: int):
    """Question n's image: a 64 x 64 picture of its own (seeded noise), so no two questions share one."""
    import numpy as np
    from PIL import Image

    pixels = np.random.default_rng(n).integers(0, 256, size=(64, 64, 3), dtype=np.uint8)
    return Image.fromarray(pixels)


def reward(completions, prompts, completion_ids, **kwargs):
    """Prompts with n % 4 == 0 are always solved, n % 4 == 1 never, the others depending on the sampled tokens."""
    values = []
    for prompt, ids in zip(prompts, completion_ids):
        n = int(prompt_text(prompt).split(":")[1].split("+")[0])
        values.append({0: 1.0, 1: 0.0}.get(n % 4, float(sum(ids) % 2 == 0)))
    return values


class KillServer(TrainerCallback):
    def __init__(self, pid: int, step: int, url: str):
        self.pid, self.step, self.url = pid, step, url

    def on_step_begin(self, args, state, control, **kwargs):
        if state.global_step != self.step - 1:
            return
        os.killpg(self.pid, signal.SIGKILL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"{self.url}/health", timeout=2)
            except OSError:
                return  # refused: the server is gone
            time.sleep(0.2)
        raise RuntimeError(f"the server at {self.url} still answers 60 s after SIGKILL")


class StateAtTrainBegin(TrainerCallback):
    def __init__(self, trainer):
        self.trainer = trainer
        self.state = None

    def on_train_begin(self, args, state, control, **kwargs):
        # A copy: state_dict() may share lists with the live state, which training goes on to change.
        self.state = json.loads(
            json.dumps({n: obj.state_dict() for n, obj in self.trainer._checkpointed_state.items()})
        )


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--algorithm", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--result", required=True)
    parser.add_argument("--max_steps", type=int, default=3)
    parser.add_argument("--save_steps", type=int, default=2)
    parser.add_argument("--learning_rate", type=float, default=1e-2)
    parser.add_argument("--num_prompts", type=int, default=8)
    parser.add_argument("--prompts_per_step", type=int, default=4)
    parser.add_argument("--resume")
    parser.add_argument("--no_weight_sync", action="store_true")
    parser.add_argument("--record_rows", action="store_true")
    parser.add_argument("--erpo_logprob_temperature", default="sampling")
    parser.add_argument("--enforce_eager", action="store_true")
    parser.add_argument("--server_base_url")
    parser.add_argument("--skip_weight_transfer", action="store_true")
    parser.add_argument("--images", action="store_true")
    parser.add_argument("--record_requests", action="store_true")
    parser.add_argument("--kill_server", type=lambda text: tuple(int(x) for x in text.split(",")))
    cli = parser.parse_args()

    if cli.server_base_url is None:
        from zvp_trl.launch.vllm_cpu import enable_vllm_cpu_weight_sync

        enable_vllm_cpu_weight_sync()  # before the engine is built
        if cli.enforce_eager:
            import functools

            import trl.generation.vllm_generation as vllm_generation

            vllm_generation.LLM = functools.partial(vllm_generation.LLM, enforce_eager=True)
    if cli.skip_weight_transfer:
        from trl.generation.vllm_client import VLLMClient

        VLLMClient.init_communicator = lambda self, *a, **k: None

    from zvp_trl.core.per_row_temperature import per_row_sampling_agreement
    from zvp_trl.core.composition import get_algorithm

    config_class, trainer_class = get_algorithm(cli.algorithm).load()
    overrides = dict(ALGORITHM_OVERRIDES.get(cli.algorithm, {}))
    if cli.algorithm.startswith("erpo"):
        overrides.update(ERPO_OVERRIDES, erpo_logprob_temperature=cli.erpo_logprob_temperature)
    num_generations = 4
    args = config_class(
        output_dir=cli.output_dir,
        use_cpu=True,
        bf16=False,
        report_to="none",
        per_device_train_batch_size=num_generations * cli.prompts_per_step,
        num_generations=num_generations,
        max_completion_length=16,
        learning_rate=cli.learning_rate,
        max_steps=cli.max_steps,
        logging_steps=1,
        save_strategy="steps",
        save_steps=cli.save_steps,
        seed=0,
        use_vllm=True,
        vllm_mode="colocate" if cli.server_base_url is None else "server",
        vllm_server_base_url=cli.server_base_url,
        vllm_max_model_length=128 if cli.server_base_url is None else None,
        vllm_importance_sampling_correction=True,
        **overrides,
    )
    questions = [f"Q: {i}+1=?\nA:" for i in range(cli.num_prompts)]
    if cli.images:  # a vision-language model: conversational prompts, one image per question
        dataset = Dataset.from_dict(
            {
                "prompt": [[{"role": "user", "content": q}] for q in questions],
                "image": [image_of(i) for i in range(cli.num_prompts)],
            }
        )
    else:
        dataset = Dataset.from_dict({"prompt": questions})
    trainer = trainer_class(model=cli.model, reward_funcs=reward, args=args, train_dataset=dataset)
    if cli.no_weight_sync or cli.skip_weight_transfer:
        trainer.vllm_generation.sync_weights = lambda *a, **k: None
    requests = []
    if cli.record_requests:  # every generation request sent to the server: prompt, temperature, image hashes
        client = trainer.vllm_generation.vllm_client
        post = client._post

        def recording_post(url, **kwargs):
            body = kwargs.get("json") or {}
            if url.endswith("/inference/v1/generate"):  # TRL's multimodal path: one request per prompt
                requests.append(
                    {
                        "step": trainer.state.global_step,
                        "prompt": trainer.processing_class.decode(body["token_ids"]),
                        "temperature": body["sampling_params"]["temperature"],
                        "n": body["sampling_params"]["n"],
                        "image_hashes": (body.get("features") or {}).get("mm_hashes", {}).get("image"),
                    }
                )
            return post(url, **kwargs)

        client._post = recording_post
    rows = []
    if cli.record_rows:
        generate_and_score = trainer._generate_and_score_completions

        def recording(inputs):
            output = generate_and_score(inputs)
            if trainer.model.training and "sampling_per_token_logps" in output:
                stats = per_row_sampling_agreement(
                    output["old_per_token_logps"], output["sampling_per_token_logps"], output["completion_mask"]
                )
                temperatures = output.get("erpo_temperatures")
                for i in range(stats.size(0)):
                    rows.append(
                        {
                            "step": trainer.state.global_step,
                            "temperature": None if temperatures is None else float(temperatures[i]),
                            "is_ratio": float(stats[i, 0]),
                            "logp_diff": float(stats[i, 1]),
                            "tokens": int(output["completion_mask"][i].sum()),
                        }
                    )
            return output

        trainer._generate_and_score_completions = recording
    if cli.kill_server:
        trainer.add_callback(KillServer(*cli.kill_server, cli.server_base_url))
    at_begin = StateAtTrainBegin(trainer)
    trainer.add_callback(at_begin)
    trainer.train(resume_from_checkpoint=cli.resume)
    result = {
        "log_history": trainer.state.log_history,
        "global_step": trainer.state.global_step,
        "state_at_begin": at_begin.state,
        "state_at_end": {name: obj.state_dict() for name, obj in trainer._checkpointed_state.items()},
        "rows": rows,
        "requests": requests,
    }
    if cli.server_base_url is None:  # the colocated engine's own setting
        result["enforce_eager"] = trainer.vllm_generation.llm.llm_engine.vllm_config.model_config.enforce_eager
    with open(cli.result, "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main()
