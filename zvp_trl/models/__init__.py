# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""Models by name:

- `resolve`: the one model-name resolution of every entry point (`embedded`, `smollm2-offline`, Hub ids, paths);
- `smollm2`: the offline stand-in for `HuggingFaceTB/SmolLM2-135M-Instruct`;
- `cache`: the on-disk cache of what the package builds once.
"""
