# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""Two "nodes" without a shared disk, on one machine: `accelerate launch --config_file recipes/accelerate/multi_gpu.yaml
--num_machines 2 --machine_rank {0,1} --main_process_ip 127.0.0.1` (one CPU process per node, gloo), each node writing
into an output directory of its own (tests/scripts/resume_run.py --per_node).

With `save_on_each_node=True` both nodes write complete checkpoints with the same per-prompt state, and a run killed on
both nodes resumes (each node from its own disk) to exactly the uninterrupted run. Without it only the first node
writes checkpoints (the second node's folders hold its RNG state alone), and resuming is refused on every node naming
`save_on_each_node`, instead of the second node starting from empty per-prompt state or the first one waiting forever.
"""

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from test_resume import buffer_file, log_after, same_floats, state

from zvp_trl.core.checkpoints import check_same_resume_checkpoint, is_complete_checkpoint


REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "tests" / "scripts" / "resume_run.py"
NODES = (0, 1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch_two_nodes(*args: str) -> list[subprocess.CompletedProcess]:
    """Starts both nodes' `accelerate launch` at once and waits for both."""
    port = str(free_port())
    launches = []
    for rank in NODES:
        command = [sys.executable, "-m", "accelerate.commands.launch"]
        command += [
            "--config_file",
            str(REPO / "recipes" / "accelerate" / "multi_gpu.yaml"),
            "--mixed_precision",
            "no",
        ]
        command += ["--num_machines", "2", "--machine_rank", str(rank), "--num_processes", "2"]
        command += ["--main_process_ip", "127.0.0.1", "--main_process_port", port]
        command += [str(SCRIPT), "--per_node", *args]
        launches.append(subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    results = []
    for rank, process in zip(NODES, launches):
        try:
            stdout, stderr = process.communicate(timeout=300)
        except subprocess.TimeoutExpired:
            for p in launches:
                p.kill()
            raise AssertionError(f"node {rank} did not finish within 300 s (a node waiting for the other?)") from None
        results.append(subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr))
    return results


def weights(checkpoint: Path) -> dict:
    return load_file(checkpoint / "model.safetensors")


def same_weights(a: Path, b: Path) -> bool:
    wa, wb = weights(a), weights(b)
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


@pytest.mark.distributed
@pytest.mark.parametrize("algorithm", ["erpo", "exgrpo"])
def test_save_on_each_node_kill_and_resume_on_two_nodes(tiny_model_path, tmp_path, algorithm):
    run, reference = tmp_path / "run", tmp_path / "reference"
    common = ["--algorithm", algorithm, "--model", tiny_model_path, "--max_steps", "6", "--save_on_each_node"]
    killed = launch_two_nodes(*common, "--output_dir", str(run), "--kill_at", "4", "--kill_in", "generation")
    for result in killed:  # each node's process SIGKILLed itself mid-step 4
        assert result.returncode != 0 and "exitcode: -9" in result.stderr, result.stderr[-3000:]

    # Both nodes wrote complete checkpoints 1-3 to their own disks, with the same per-prompt state and weights.
    nodes = [run / f"node-{rank}" for rank in NODES]
    for node in nodes:
        assert sorted(p.name for p in node.glob("checkpoint-*")) == ["checkpoint-1", "checkpoint-2", "checkpoint-3"]
        assert all(is_complete_checkpoint(str(p)) for p in node.glob("checkpoint-*"))
    for step in (1, 2, 3):
        a, b = (node / f"checkpoint-{step}" for node in nodes)
        assert state(a) == state(b)
        assert buffer_file(a) == buffer_file(b)
        assert (buffer_file(a) is not None) == (algorithm == "exgrpo")
        assert same_weights(a, b)
    # Each node holds its own process's RNG state (what it restores on resume).
    assert [sorted(p.name for p in (node / "checkpoint-3").glob("rng_state*")) for node in nodes] == [
        ["rng_state_0.pth"],
        ["rng_state_1.pth"],
    ]

    resumed = launch_two_nodes(*common, "--output_dir", str(run), "--resume", "--reference", str(reference))
    for result in resumed:
        assert result.returncode == 0, result.stderr[-3000:]
    for rank in NODES:
        node, expected = run / f"node-{rank}" / "checkpoint-6", reference / f"node-{rank}" / "checkpoint-6"
        assert state(node) == state(expected)
        assert state(node) != state(reference / f"node-{rank}" / "checkpoint-3")  # the state moved after the resume
        assert buffer_file(node) == buffer_file(expected)
        assert same_weights(node, expected)
        logs = log_after(node, 3)
        assert len(logs) == 3 and same_floats(logs, log_after(expected, 3))
    assert state(run / "node-0" / "checkpoint-6") == state(run / "node-1" / "checkpoint-6")


@pytest.mark.distributed
def test_resume_without_save_on_each_node_is_refused_on_every_node(tiny_model_path, tmp_path):
    run = tmp_path / "run"
    common = ["--algorithm", "erpo", "--model", tiny_model_path, "--output_dir", str(run)]
    first = launch_two_nodes(*common, "--max_steps", "2")
    assert all(result.returncode == 0 for result in first), first[1].stderr[-3000:]
    # transformers writes checkpoints from the first node's main process only: the second node's folders hold its
    # RNG state alone.
    assert is_complete_checkpoint(str(run / "node-0" / "checkpoint-2"))
    assert sorted(p.name for p in (run / "node-1" / "checkpoint-2").iterdir()) == ["rng_state_1.pth"]
    assert not is_complete_checkpoint(str(run / "node-1" / "checkpoint-2"))

    for resume in (["--resume"], ["--resume_step", "2"]):  # resume_from_checkpoint=True, and a checkpoint path
        results = launch_two_nodes(*common, "--max_steps", "4", *resume)
        for result in results:
            assert result.returncode != 0
            refusals = [line for line in result.stdout.splitlines() if line.startswith("REFUSED:")]
            assert len(refusals) == 1, result.stdout[-2000:] + result.stderr[-2000:]
            assert "processes [1] find none" in refusals[0] and "save_on_each_node=True" in refusals[0]
        # Nothing was trained or written by the refused runs.
        assert sorted(p.name for p in (run / "node-0").glob("checkpoint-*")) == ["checkpoint-1", "checkpoint-2"]
        history = json.loads((run / "node-0" / "checkpoint-2" / "trainer_state.json").read_text())["log_history"]
        assert max(entry["step"] for entry in history) == 2


@pytest.mark.unit
def test_check_same_resume_checkpoint():
    same = ["/a/node-0/checkpoint-4", "/b/node-1/checkpoint-4"]
    assert check_same_resume_checkpoint(same, "/a/node-0", "True") is None  # they agree
    with pytest.raises(ValueError, match=r"processes \[0, 2\] find a complete checkpoint.*processes \[1\] find none"):
        check_same_resume_checkpoint(["/a/checkpoint-4", None, "/a/checkpoint-4"], "/a", "True")
    with pytest.raises(ValueError, match="save_on_each_node=True"):
        check_same_resume_checkpoint(["/a/checkpoint-4", None], "/a", "/a/checkpoint-4")
    with pytest.raises(ValueError, match="process 0: checkpoint-4, process 1: checkpoint-3"):
        check_same_resume_checkpoint(["/a/checkpoint-4", "/b/checkpoint-3"], "/a", "True")
    with pytest.raises(ValueError, match="no process finds a complete checkpoint"):
        check_same_resume_checkpoint([None, None], "/a", "True")
