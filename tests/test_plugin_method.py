# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""A method in another package, as docs/adding_a_method.md builds it: the package's files are taken from the page,
installed as a folder on the path with its own metadata (an entry point in the group `zvp_trl.methods`), and trained
by name through `recipes/train.py`, alone and combined with ERPO, in fresh processes (as a user runs it)."""

import configparser
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from zvp_trl.core.parts import MethodPart


REPO = Path(__file__).resolve().parents[1]
PAGE = REPO / "docs" / "adding_a_method.md"
TINY = [
    "--max_steps", "2", "--embedded_warmup_steps", "5", "--embedded_num_train_prompts", "32",
    "--embedded_num_eval_prompts", "0", "--per_device_train_batch_size", "8", "--num_generations", "4",
    "--max_completion_length", "12", "--logging_steps", "1", "--save_steps", "1", "--dynamics_plot", "false",
    "--summary_num_samples", "0",
]  # fmt: skip


def page_files() -> dict[str, str]:
    """The files the page writes out: `<!-- file: PATH -->` followed by a fenced block."""
    found = re.findall(r"<!-- file: (\S+) -->\n```\w*\n(.*?)```", PAGE.read_text(), flags=re.DOTALL)
    return dict(found)


@pytest.mark.unit
def test_the_page_holds_the_package_and_documents_every_event():
    files = page_files()
    assert set(files) == {"zvp_negpush/__init__.py", "setup.cfg"}
    compile(files["zvp_negpush/__init__.py"], "zvp_negpush/__init__.py", "exec")
    entry_points = configparser.ConfigParser()
    entry_points.read_string(files["setup.cfg"])
    assert entry_points["options.entry_points"]["zvp_trl.methods"].split() == ["neg_push", "=", "zvp_negpush:SPEC"]
    # The part protocol table names every event a part may implement.
    text = PAGE.read_text()
    events = [name for name in vars(MethodPart) if not name.startswith("_") and callable(getattr(MethodPart, name))]
    assert len(events) >= 10
    for event in events:
        assert f"| `{event}(" in text, f"docs/adding_a_method.md does not document the part event {event}"


def install(folder: Path) -> dict:
    """The page's package in `folder`, with the metadata pip would write for it; the environment that finds it."""
    for name, content in page_files().items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(content)
    setup = configparser.ConfigParser()
    setup.read_string((folder / "setup.cfg").read_text())
    dist = folder / f"zvp_negpush-{setup['metadata']['version']}.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {setup['metadata']['name']}\nVersion: {setup['metadata']['version']}\n"
    )
    group = setup["options.entry_points"]["zvp_trl.methods"].strip()
    (dist / "entry_points.txt").write_text(f"[zvp_trl.methods]\n{group}\n")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(folder), env.get("PYTHONPATH")]))
    return env


def train(env, algorithm: str, out: Path) -> subprocess.CompletedProcess:
    command = [sys.executable, str(REPO / "recipes" / "train.py"), *TINY, "--algorithm", algorithm]
    return subprocess.run(
        [*command, "--output_dir", str(out), "--neg_push_advantage", "0.3"],
        env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip


@pytest.mark.distributed
@pytest.mark.slow
def test_an_installed_method_trains_by_name_alone_and_with_erpo(tmp_path, tmp_path_factory):
    env = install(tmp_path / "site")
    env["ZVP_TRL_CACHE"] = str(tmp_path_factory.getbasetemp() / "zvp_cache")
    listed = subprocess.run(
        [sys.executable, str(REPO / "recipes" / "train.py"), "--help"], env=env, capture_output=True, text=True
    )
    assert listed.returncode == 0 and "neg_push" in listed.stdout, listed.stderr[-2000:]
    refused = subprocess.run(
        [sys.executable, "-c", "import zvp_trl; zvp_trl.get_algorithm('rl_zvp+neg_push')"],
        env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert "rl_zvp and neg_push cannot be combined: both set the advantage of all-wrong groups" in refused.stderr

    for algorithm, parts in (("neg_push", ["neg_push"]), ("neg_push+erpo", ["erpo", "neg_push"])):
        out = tmp_path / algorithm
        done = train(env, algorithm, out)
        assert done.returncode == 0, done.stderr[-3000:]
        history = json.loads((out / "trainer_state.json").read_text())["log_history"]
        logged = [entry for entry in history if "loss" in entry]
        assert len(logged) == 2
        assert all("neg_push/frac_groups" in entry for entry in logged)
        if "erpo" in parts:
            assert all("erpo/temperature_max" in entry for entry in logged)
        state = json.loads((out / "checkpoint-2" / "zvp_state.json").read_text())
        assert "neg_push" in state and state["neg_push"]["groups"] >= 0
        assert ("erpo_history" in state) == ("erpo" in parts)
        card = (out / "README.md").read_text()
        assert "NegPush" in card and ("ERPO" in card) == ("erpo" in parts)
