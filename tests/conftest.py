# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
import os

import pytest


os.environ.setdefault("HF_HUB_OFFLINE", "1")


def pytest_terminal_summary(terminalreporter):
    """Says which copies of the evaluation benchmarks the run tested (tests/math_eval_data.py), also under -q."""
    from math_eval_data import describe

    terminalreporter.write_line(describe())


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory):
    """A tiny Qwen3 model + tokenizer of the embedded task (3 warm-start steps), built once per session."""
    from zvp_trl.data.embedded import EmbeddedModelSpec, build_embedded_model

    path = tmp_path_factory.mktemp("tiny_model")
    spec = EmbeddedModelSpec(hidden_size=16, intermediate_size=32, num_hidden_layers=1, warmup_steps=3, batch_size=4)
    build_embedded_model(spec, path)
    return str(path)


@pytest.fixture(scope="session")
def tool_model_path(tmp_path_factory):
    """A tiny Qwen3 model whose tokenizer and chat template support TRL's tool calling (tests/tool_model.py)."""
    from tool_model import build_tool_model

    return build_tool_model(tmp_path_factory.mktemp("tool_model"))


@pytest.fixture(scope="session")
def every_trainer_run(tiny_model_path, tmp_path_factory):
    """`run(algorithm, fsdp2=False, zero_stage=None)`: the rank results of tests/scripts/every_trainer_two_processes.py
    on two processes (torchrun, gloo): plain DDP, FSDP2, or DeepSpeed ZeRO-`zero_stage`. Each run is launched once per
    session and shared by test_two_processes.py, test_fsdp2.py and test_deepspeed.py (which compare their sharded runs
    with the DDP runs of the same seed)."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).parent / "scripts" / "every_trainer_two_processes.py"
    runs = {}

    def run(algorithm: str, fsdp2: bool = False, zero_stage: int | None = None) -> list[dict]:
        key = (algorithm, fsdp2, zero_stage)
        if key not in runs:
            mode = "fsdp2" if fsdp2 else f"zero{zero_stage}" if zero_stage else "ddp"
            out = tmp_path_factory.mktemp(f"{algorithm}_{mode}")
            env = dict(os.environ, ZVP_TEST_MODEL=tiny_model_path, ZVP_TEST_OUT=str(out))
            command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
            command += [str(script), "--algorithm", algorithm, *(["--fsdp2"] if fsdp2 else [])]
            command += ["--deepspeed", str(zero_stage)] if zero_stage else []
            result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=240)
            assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
            runs[key] = [json.loads((out / f"rank{r}.json").read_text()) for r in range(2)]
        return runs[key]

    return run
