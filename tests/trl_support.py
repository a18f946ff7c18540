# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""What the installed TRL can run on this machine (imported as `trl_support`)."""

import torch
import trl
from packaging.version import Version


# TRL 1.15 computes the loss's log-probs with Triton kernels only (trl/kernels/chunked_logprob.py: `import triton`, then
# `_forward_kernel[...]`), so its GRPOTrainer trains on a GPU and nowhere else: on a CPU its own fused LM head raises
# `AttributeError: 'NoneType' object has no attribute 'apply'` at the first log-prob forward. TRL 1.16 added a PyTorch
# path. Where the loss cannot run, the tests run everything before it and check that TRL stops exactly there.
LOSS_RUNS_HERE = Version(trl.__version__) >= Version("1.16") or torch.cuda.is_available()
TRL_STOPS_AT = "'NoneType' object has no attribute 'apply'"
WHY_NOT = (
    f"trl {trl.__version__}'s loss forward needs Triton on a GPU; tests/test_trl_versions.py checks everything up to it "
    "and that TRL stops there"
)
