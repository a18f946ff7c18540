# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
import os

import pytest


os.environ.setdefault("HF_HUB_OFFLINE", "1")
if os.environ.get("PYTEST_XDIST_WORKER"):
    # Under pytest-xdist (`-n 2`) the workers share the cores. The small models of the in-process tests run as fast on
    # one thread as on two, and two workers of two threads each spend their time in OpenMP's busy waits (measured: the
    # drop-in tests took 122 s on two workers of two threads, 52 s on two workers of one, 84 s on one process); a test
    # that needs more threads sets them itself (the embedded model's build: two), and with passive waits it runs beside
    # the other worker without losing time to them (236 s there, 276 s alone on a process of two threads). Set before
    # torch is imported; the processes a test launches inherit them.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


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


_EVERY_TRAINER_ALGORITHMS = pytest.StashKey[frozenset]()


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    """Notes which algorithms the selected tests ask `every_trainer_run` for (after -m / -k deselected the others)."""
    config.stash[_EVERY_TRAINER_ALGORITHMS] = frozenset(
        item.callspec.params["algorithm"]
        for item in items
        if "every_trainer_run" in getattr(item, "fixturenames", ())
        and "algorithm" in getattr(getattr(item, "callspec", None), "params", {})
    )


@pytest.fixture(scope="session")
def every_trainer_run(tiny_model_path, tmp_path_factory, request):
    """`run(algorithm, fsdp2=False, zero_stage=None, bf16=False)`: the rank results of
    tests/scripts/every_trainer_two_processes.py on two processes (torchrun, gloo): plain DDP, FSDP2, or DeepSpeed
    ZeRO-`zero_stage` (in DeepSpeed's bf16 mode with `bf16`). The first request of a
    set-up launches it once for every registered algorithm that the selected tests ask for (each trained in turn in
    the same two processes: they start and import once per set-up; `pytest -m rl_zvp` launches only RL-ZVP's
    algorithms); the results are shared by test_two_processes.py, test_fsdp2.py and test_deepspeed.py (which compare
    their sharded runs with the DDP runs of the same seed). A launch that failed fails every test that
    asks for it, with its output, without being launched again."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    from zvp_trl.core.composition import ALGORITHMS

    script = Path(__file__).parent / "scripts" / "every_trainer_two_processes.py"
    launches = {}

    def launch(algorithms: tuple[str, ...], fsdp2: bool, zero_stage: int | None, bf16: bool) -> tuple[Path, str]:
        mode = ("fsdp2" if fsdp2 else f"zero{zero_stage}" if zero_stage else "ddp") + ("_bf16" if bf16 else "")
        out = tmp_path_factory.mktemp(f"every_trainer_{mode}")
        env = dict(os.environ, ZVP_TEST_MODEL=tiny_model_path, ZVP_TEST_OUT=str(out))
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
        command += [str(script), "--algorithm", ",".join(algorithms), *(["--fsdp2"] if fsdp2 else [])]
        command += ["--deepspeed", str(zero_stage)] if zero_stage else []
        command += ["--bf16"] if bf16 else []
        result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120 * len(algorithms))
        failure = "" if result.returncode == 0 else f"{mode} launch: " + result.stdout[-3000:] + result.stderr[-6000:]
        return out, failure

    def run(algorithm: str, fsdp2: bool = False, zero_stage: int | None = None, bf16: bool = False) -> list[dict]:
        # The selected tests' registered algorithms share one launch per set-up; any other name has one of its own.
        selected = request.config.stash.get(_EVERY_TRAINER_ALGORITHMS, frozenset())
        shared = algorithm in ALGORITHMS and algorithm in selected
        algorithms = tuple(a for a in ALGORITHMS if a in selected) if shared else (algorithm,)
        key = (algorithms, fsdp2, zero_stage, bf16)
        if key not in launches:
            launches[key] = launch(*key)
        out, failure = launches[key]
        assert not failure, failure
        return [json.loads((out / algorithm / f"rank{r}.json").read_text()) for r in range(2)]

    return run
