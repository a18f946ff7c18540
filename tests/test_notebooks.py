# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
from pathlib import Path

import nbformat
from nbclient import NotebookClient


NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def test_quickstart_notebook_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("ZVP_TRL_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("ZVP_NOTEBOOK_WARMUP_STEPS", "5")
    monkeypatch.setenv("ZVP_NOTEBOOK_MAX_STEPS", "1")
    monkeypatch.setenv("ZVP_NOTEBOOK_EVAL_PROMPTS", "2")
    notebook = nbformat.read(NOTEBOOKS / "quickstart.ipynb", as_version=4)
    NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    outputs = "".join(
        out.get("text", "") for cell in notebook.cells if cell.cell_type == "code" for out in cell.get("outputs", [])
    )
    assert "acc@8" in outputs and "pass@8" in outputs
