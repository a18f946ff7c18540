# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""DeepSpeed ZeRO on CPU processes (gloo, `DS_ACCELERATOR=cpu`), for tests and CPU smoke runs. Never used on a GPU.

DeepSpeed itself trains on CPU processes, and accelerate (1.15) takes its DeepSpeed path on them in one case only: the
process group was made over gloo by the training arguments' `use_cpu` (transformers' `TrainingArguments`), and the
`Accelerator` is built without `cpu=True` (as transformers' `Trainer` builds it). Where the state is a CPU one
(`ACCELERATE_USE_CPU=true` in the environment, `Accelerator(cpu=True)`), accelerate runs the processes as `MULTI_CPU`
(DDP) and drops the DeepSpeed plugin (`AcceleratorState.__init__` selects DeepSpeed only `if not cpu`); without
`use_cpu`, DeepSpeed builds a world of two but accelerate sees one process and `prepare` fails on DeepSpeed's batch-size
check. `enable_cpu_deepspeed()`:

- selects DeepSpeed's CPU accelerator (`DS_ACCELERATOR=cpu`) before DeepSpeed first picks one;
- where the state came out `MULTI_CPU` over gloo with a DeepSpeed plugin, takes the promotion accelerate takes on GPUs
  (distributed type DEEPSPEED, the plugin's mixed precision set and the plugin selected); from there accelerate's and
  transformers' own DeepSpeed code runs unchanged: `deepspeed.initialize` over the gloo group, ZeRO-2 or ZeRO-3
  partitioning, `save_checkpoint` / `load_checkpoint` with one shard per process, the ZeRO-3 gathers of TRL's
  generation and of the final save;
- on either path, runs fp32 or bf16 (DeepSpeed's bf16 mode: bf16 weights and gradients, fp32 optimizer state; tested
  for every algorithm under ZeRO-2 and ZeRO-3, with a kill-and-resume from a bf16 checkpoint) and refuses fp16, which
  has not been run on CPU processes (DeepSpeed's fp16 mode needs a loss scaler; CPUs run bf16).

Call it before the `Accelerator` is built (before the trainer; the `TrainingArguments` may come first if
`DS_ACCELERATOR=cpu` is already set, since they import DeepSpeed), with a DeepSpeed request from the training arguments
(`deepspeed=<dict or JSON file>`) or from `accelerate launch` with a DeepSpeed config; the training arguments must say
`use_cpu=True` (`--use_cpu true`): accelerate's DeepSpeed launcher does not pass the config's `use_cpu` on to the
processes. It refuses to act on a machine with a CUDA or XPU device (there accelerate's own path is the right one).

No DeepSpeed op is compiled. DeepSpeed's CPU communication backend JIT-builds one C++ op when it starts
(`deepspeed_shm_comm`, about 40 s on 2 cores): a shared-memory all-reduce that only `inference_all_reduce` (DeepSpeed's
tensor-parallel inference kernels) calls, and which falls back to the gloo all-reduce when the op is absent. Training
never calls it, so `enable_cpu_deepspeed()` marks the op unavailable (`deepspeed.ops.__compatible_ops__`) unless
`ZVP_TRL_DEEPSPEED_SHM_COMM=1`. The optimizer is transformers' torch AdamW (the DeepSpeed config names no optimizer),
so DeepSpeed's `fused_adam` / `cpu_adam` ops are not built either.
"""

import functools
import os
import sys

from .cpu_fsdp import refuse_where_an_accelerator_is_visible


_enabled = False
_promoted = False


def cpu_deepspeed_enabled() -> bool:
    """Whether `enable_cpu_deepspeed()` has been called in this process."""
    return _enabled


def cpu_deepspeed_promoted() -> bool:
    """Whether this process's `AcceleratorState` came out `MULTI_CPU` and was promoted to DeepSpeed here (rather than
    by accelerate itself)."""
    return _promoted


def _use_cpu_accelerator() -> None:
    """DeepSpeed's accelerator is chosen once, when `deepspeed` first asks for it: make it the CPU one."""
    requested = os.environ.get("DS_ACCELERATOR")
    if requested not in (None, "cpu"):
        raise RuntimeError(
            f"DeepSpeed on CPU processes (zvp_trl.launch.cpu_deepspeed) needs DS_ACCELERATOR=cpu, but it is "
            f"{requested!r}: unset it or set it to cpu."
        )
    os.environ["DS_ACCELERATOR"] = "cpu"
    if "deepspeed.accelerator.real_accelerator" in sys.modules:
        from deepspeed.accelerator import get_accelerator

        name = get_accelerator().device_name()
        if name != "cpu":
            raise RuntimeError(
                f"DeepSpeed already chose the {name!r} accelerator in this process: call "
                "zvp_trl.launch.cpu_deepspeed.enable_cpu_deepspeed() (or set DS_ACCELERATOR=cpu) before DeepSpeed is "
                "first used."
            )


SHM_COMM_OP = "deepspeed_shm_comm"


def skip_unused_op_build() -> None:
    """DeepSpeed builds `deepspeed_shm_comm` only where `deepspeed.ops.__compatible_ops__` says it can (see the module
    docstring): say it cannot, unless `ZVP_TRL_DEEPSPEED_SHM_COMM=1`. Also applied by `recipes/train.py` to a
    DeepSpeed launch on CPU that `ZVP_TRL_CPU_DEEPSPEED=0` keeps from `enable_cpu_deepspeed()`."""
    if os.environ.get("ZVP_TRL_DEEPSPEED_SHM_COMM", "0") == "1":
        return
    import deepspeed.ops

    deepspeed.ops.__compatible_ops__[SHM_COMM_OP] = False


PRECISIONS = ("no", "bf16")  # mixed precisions run on CPU processes


def _check_precision(plugin) -> None:
    config = plugin.deepspeed_config
    if str((config.get("fp16") or {}).get("enabled", False)).lower() == "true":
        raise ValueError(
            "DeepSpeed on CPU processes (zvp_trl.launch.cpu_deepspeed) runs fp32 or bf16, but the DeepSpeed config "
            "enables fp16: set fp16.enabled to false or 'auto' and train in bf16 (--bf16 true, --mixed_precision "
            "bf16) or fp32."
        )


def enable_cpu_deepspeed() -> None:
    """Lets a DeepSpeed plugin take effect on CPU processes (see the module docstring). Idempotent.

    Raises `RuntimeError` when a GPU is visible: this is a CPU-only workaround."""
    global _enabled
    if _enabled:
        return
    refuse_where_an_accelerator_is_visible("zvp_trl.launch.cpu_deepspeed.enable_cpu_deepspeed", "DeepSpeed")
    _use_cpu_accelerator()
    skip_unused_op_build()
    from accelerate.state import AcceleratorState, PartialState
    from accelerate.utils import DistributedType

    original_init = AcceleratorState.__init__

    @functools.wraps(original_init)
    def __init__(self, *args, deepspeed_plugin=None, **kwargs):
        global _promoted
        already_initialized = AcceleratorState._shared_state != {} and (
            AcceleratorState._shared_state != PartialState._shared_state
        )
        original_init(self, *args, deepspeed_plugin=deepspeed_plugin, **kwargs)
        if already_initialized or deepspeed_plugin is None or self.device.type != "cpu":
            return  # never touch anything but CPU processes
        plugins = deepspeed_plugin if isinstance(deepspeed_plugin, dict) else {"default": deepspeed_plugin}
        if self.distributed_type == DistributedType.DEEPSPEED:
            # accelerate promoted the CPU processes itself (an Accelerator built without cpu=True, as transformers'
            # Trainer builds it, over the gloo group the training arguments' use_cpu made): fp32 or bf16.
            for plugin in plugins.values():
                _check_precision(plugin)
            return
        if self.distributed_type != DistributedType.MULTI_CPU or self.backend != "gloo":
            return
        if self._mixed_precision not in PRECISIONS:
            raise ValueError(
                f"DeepSpeed on CPU processes (zvp_trl.launch.cpu_deepspeed) runs fp32 or bf16, but mixed precision is "
                f"{self._mixed_precision!r}: launch with --mixed_precision bf16 (and --bf16 true) or no."
            )
        for plugin in plugins.values():
            plugin.set_mixed_precision(self._mixed_precision)  # as accelerate does when it promotes GPU processes
            _check_precision(plugin)
        # What accelerate does when DeepSpeed is asked for on accelerator processes (accelerate/state.py,
        # AcceleratorState.__init__): the first plugin is the active one.
        next(iter(plugins.values())).select(_from_accelerator_state=True)
        self.deepspeed_plugins = deepspeed_plugin
        self.distributed_type = DistributedType.DEEPSPEED
        PartialState._shared_state["distributed_type"] = DistributedType.DEEPSPEED
        _promoted = True

    AcceleratorState.__init__ = __init__
    _enabled = True
