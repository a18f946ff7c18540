# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""One model-name resolution (`zvp_trl.models.resolve.resolve_model_name`) for every entry point: recipes/train.py,
recipes/evaluate.py and the benchmark scripts mean the same model by the same name."""

import ast
import importlib.util
import json
from pathlib import Path

import pytest

from zvp_trl.data import embedded
from zvp_trl.data.embedded import EmbeddedModelSpec, get_embedded_model_path
from zvp_trl.evaluation.benchmark_eval import EvaluationArguments, uses_vllm
from zvp_trl.models import smollm2 as offline_models
from zvp_trl.models.resolve import EMBEDDED_MODEL_NAME, resolve_model_name
from zvp_trl.scripts.train import main as train_main
from zvp_trl.scripts.train import uses_embedded_model


REPO = Path(__file__).resolve().parents[1]
TINY_SPEC = EmbeddedModelSpec(hidden_size=16, intermediate_size=32, num_hidden_layers=1, warmup_steps=3, batch_size=4)


def _evaluate_main():
    spec = importlib.util.spec_from_file_location("evaluate_recipe", REPO / "recipes" / "evaluate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


@pytest.fixture
def built(monkeypatch, tiny_model_path):
    """Every embedded model and the offline SmolLM2 resolve to the tiny session model; records what was asked for."""
    asked = []

    def embedded_path(spec=None, log_every=100):
        asked.append(("embedded", spec))
        return Path(tiny_model_path)

    def smollm2_path(cache_dir=None, dtype=None):
        asked.append(("smollm2", None))
        return Path(tiny_model_path)

    monkeypatch.setattr(embedded, "get_embedded_model_path", embedded_path)
    monkeypatch.setattr(offline_models, "get_smollm2_135m_instruct", smollm2_path)
    return asked


@pytest.mark.trainer
def test_the_embedded_model_is_built_once_and_found_by_name(tmp_path, monkeypatch):
    monkeypatch.setenv("ZVP_TRL_CACHE", str(tmp_path / "cache"))
    path = resolve_model_name(EMBEDDED_MODEL_NAME, embedded_spec=TINY_SPEC)
    assert path == str(get_embedded_model_path(TINY_SPEC)) and Path(path, "build_info.json").is_file()
    assert resolve_model_name(None, embedded_spec=TINY_SPEC) == path  # no model given = the embedded model
    # For vLLM the same spec gets heads of 32 (vLLM's CPU attention refuses 24): another cache entry.
    vllm_path = resolve_model_name("embedded", embedded_spec=TINY_SPEC, use_vllm=True)
    assert vllm_path != path and json.loads(Path(vllm_path, "config.json").read_text())["head_dim"] == 32
    assert json.loads(Path(path, "config.json").read_text())["head_dim"] != 32


@pytest.mark.trainer
def test_names_resolve_and_everything_else_passes_through(built, tmp_path, monkeypatch, tiny_model_path):
    assert resolve_model_name("smollm2-offline") == tiny_model_path
    assert resolve_model_name("embedded") == tiny_model_path
    assert built == [("smollm2", None), ("embedded", EmbeddedModelSpec())]
    assert resolve_model_name("Qwen/Qwen3-0.6B") == "Qwen/Qwen3-0.6B"
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    assert resolve_model_name(offline_models.SMOLLM2_HUB_ID) == offline_models.SMOLLM2_HUB_ID
    # A local folder wins over a name, as it does for from_pretrained.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "embedded").mkdir()
    assert resolve_model_name("embedded") == "embedded"
    assert len(built) == 2
    # One resolution: the earlier alias zvp_trl.models.smollm2.resolve_model_name is gone with the import cycle it made.
    assert not hasattr(offline_models, "resolve_model_name")


@pytest.mark.trainer
def test_train_and_evaluate_resolve_the_same_names(built, tmp_path, tiny_model_path):
    run = [
        "--max_steps", "1", "--per_device_train_batch_size", "4", "--num_generations", "4",
        "--max_completion_length", "8", "--embedded_num_train_prompts", "8", "--embedded_num_eval_prompts", "2",
        "--summary_num_samples", "2", "--save_strategy", "no", "--dynamics_plot", "false", "--report_to", "none",
    ]  # fmt: skip
    # `--model_name_or_path embedded` is the embedded task, as with no model given (its defaults and prompts).
    assert uses_embedded_model(["--model_name_or_path", "embedded"]) and uses_embedded_model([])
    assert not uses_embedded_model(["--model_name_or_path", "smollm2-offline"])
    config = tmp_path / "run.yaml"
    config.write_text("model_name_or_path: embedded\n")
    assert uses_embedded_model(["--config", str(config)])
    summary = train_main([*run, "--model_name_or_path", "embedded", "--embedded_warmup_steps", "7",
                          "--output_dir", str(tmp_path / "train_embedded")])  # fmt: skip
    assert summary["model"] == tiny_model_path and summary["heldout_after"]["num_prompts"] == 2
    summary = train_main([*run, "--model_name_or_path", "smollm2-offline", "--dataset_name", "embedded",
                          "--use_cpu", "true", "--bf16", "false", "--output_dir", str(tmp_path / "train_smollm2")])  # fmt: skip
    assert summary["model"] == tiny_model_path
    evaluate = _evaluate_main()
    for name in ("embedded", "smollm2-offline"):
        summary = evaluate(["--model_name_or_path", name, "--benchmarks", "embedded", "--limit", "2", "--k", "1",
                            "--max_tokens", "4", "--backend", "transformers",
                            "--output_dir", str(tmp_path / f"eval_{name}")])  # fmt: skip
        assert summary["model"] == tiny_model_path and summary["results"]["embedded"]["num_questions"] == 2
    assert built == [
        ("embedded", EmbeddedModelSpec(warmup_steps=7)),
        ("smollm2", None),
        ("embedded", EmbeddedModelSpec()),
        ("smollm2", None),
    ]


@pytest.mark.unit
def test_the_evaluation_backend_decides_the_embedded_heads(monkeypatch):
    assert uses_vllm(EvaluationArguments(model_name_or_path="x", backend="vllm"))
    assert not uses_vllm(EvaluationArguments(model_name_or_path="x", backend="transformers"))
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: object() if name == "vllm" else None)
    assert uses_vllm(EvaluationArguments(model_name_or_path="x"))
    assert not uses_vllm(EvaluationArguments(model_name_or_path="x"), model=object())  # a loaded model: transformers
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    assert not uses_vllm(EvaluationArguments(model_name_or_path="x"))


@pytest.mark.unit
@pytest.mark.parametrize(
    "path",
    [
        "zvp_trl/scripts/evaluate.py",
        "zvp_trl/scripts/train.py",
        *sorted(p.name for p in (REPO / "benchmarks").glob("*.py")),
    ],
)
def test_no_entry_point_resolves_names_its_own_way(path):
    """Entry points name models through zvp_trl.models.resolve only: no direct use of the builders a name stands for."""
    file = REPO / path if "/" in path else REPO / "benchmarks" / path
    tree = ast.parse(file.read_text())
    used = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
    used |= {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)}
    assert not used & {"get_embedded_model_path", "get_smollm2_135m_instruct"}, path
