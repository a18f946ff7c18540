# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""How the multi-process test scripts end (imported from the script's own folder, which Python puts on sys.path)."""

import os
import sys


def exit_distributed() -> None:
    """Tears the gloo group down explicitly, then leaves without interpreter teardown.

    Leaving the group to interpreter exit has aborted a rank (SIGABRT) after training, and even after an explicit
    teardown a rank has now and then aborted at exit ("terminate called without an active exception", a C++ thread
    destroyed at exit) after every result was written. Call it once the script's results are on disk.
    """
    import torch.distributed

    if torch.distributed.is_initialized():
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
