# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""FSDP on CPU processes (gloo), for tests and CPU smoke runs of sharded training. Never used on a GPU.

accelerate (1.15) turns an FSDP plugin into `DistributedType.FSDP` only on accelerator devices (GPU, XPU, NPU, ...):
on CPU processes the state comes out `DistributedType.MULTI_CPU` and the FSDP plugin is silently dropped, so a
"sharded" CPU run is plain DDP. `enable_cpu_fsdp()` makes accelerate take exactly the promotion it takes on GPUs
(`AcceleratorState.__init__`: distributed type FSDP, the plugin kept) when the state came out `MULTI_CPU` with an FSDP
plugin; from there accelerate's own FSDP code runs unchanged (`fully_shard` over a CPU device mesh for FSDP2, sharded
or full state dicts in checkpoints). PyTorch's gloo backend has every collective FSDP2 uses.

Call it before the `Accelerator` is built (before the trainer; `TrainingArguments` may come first), with an FSDP
request in the training arguments (`fsdp="full_shard"`, `fsdp_config={"version": 2, ...}`) or from
`accelerate launch` with an FSDP config. It refuses to act on a machine with a GPU (there accelerate's own path is
the right one) and refuses mixed precision (only fp32 FSDP has been run on CPU).
"""

import functools


_enabled = False


def accelerator_device_visible() -> str | None:
    """The accelerator device type this machine has (`"CUDA"`, `"XPU"`), None on a CPU-only machine."""
    import torch

    if torch.cuda.is_available():
        return "CUDA"
    if hasattr(torch, "xpu") and torch.xpu.is_available():
        return "XPU"
    return None


def refuse_where_an_accelerator_is_visible(function: str, mode: str) -> None:
    """Raises `RuntimeError` when a GPU (or XPU) is visible: `function` is a CPU-only workaround for `mode`."""
    device = accelerator_device_visible()
    if device is not None:
        raise RuntimeError(
            f"{function}() is a CPU-only workaround, but a {device} device is visible: on GPUs accelerate selects "
            f"{mode} itself; do not call it there."
        )


def enable_cpu_fsdp() -> None:
    """Lets an FSDP plugin take effect on CPU processes (see the module docstring). Idempotent.

    Raises `RuntimeError` when a GPU is visible: this is a CPU-only workaround."""
    global _enabled
    if _enabled:
        return
    refuse_where_an_accelerator_is_visible("zvp_trl.launch.cpu_fsdp.enable_cpu_fsdp", "FSDP")
    from accelerate.state import AcceleratorState, PartialState
    from accelerate.utils import DistributedType

    original_init = AcceleratorState.__init__

    @functools.wraps(original_init)
    def __init__(self, *args, fsdp_plugin=None, **kwargs):
        already_initialized = AcceleratorState._shared_state != {} and (
            AcceleratorState._shared_state != PartialState._shared_state
        )
        original_init(self, *args, fsdp_plugin=fsdp_plugin, **kwargs)
        if already_initialized or fsdp_plugin is None or self.distributed_type != DistributedType.MULTI_CPU:
            return
        if self.device.type != "cpu":  # not reachable for MULTI_CPU; never touch anything but CPU processes
            return
        if self._mixed_precision != "no":
            raise ValueError(
                f"FSDP on CPU processes (zvp_trl.launch.cpu_fsdp) runs in fp32 only, but mixed precision is "
                f"{self._mixed_precision!r}: launch with --mixed_precision no (and --bf16 false)."
            )
        # What accelerate does for the accelerator MULTI_* types (accelerate/state.py, AcceleratorState.__init__).
        self.distributed_type = DistributedType.FSDP
        self.fsdp_plugin = fsdp_plugin
        PartialState._shared_state["distributed_type"] = DistributedType.FSDP

    AcceleratorState.__init__ = __init__
    _enabled = True
