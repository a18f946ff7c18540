# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""Where a result was measured: the CPU's vendor, model and instruction set (a run reproduces bit for bit only on the
same kind of CPU with the same torch: benchmarks/README.md, "What reproduces bit for bit"), the GPU if any, the core
count and the library versions. Recorded in every benchmark's JSON and in a training run's `summary.json`."""

import os
import platform


VENDORS = {"GenuineIntel": "Intel", "AuthenticAMD": "AMD"}


def parse_cpuinfo(text: str) -> dict:
    """Vendor, model name and flags of the first processor in a `/proc/cpuinfo` text."""
    fields = {}
    for line in text.split("\n\n", 1)[0].splitlines():
        if ":" in line:
            key, value = line.split(":", 1)
            fields[key.strip()] = value.strip()
    vendor = fields.get("vendor_id", "")
    return {
        "vendor": VENDORS.get(vendor, vendor or None),
        "model": fields.get("model name"),
        "flags": set(fields.get("flags", "").split()),
    }


def instruction_set(flags: set[str]) -> str:
    """The widest x86 vector instruction set among `flags` (what decides torch's CPU kernels)."""
    for flag, name in (("avx512f", "AVX-512"), ("avx2", "AVX2"), ("avx", "AVX")):
        if flag in flags:
            return name
    return platform.machine() or "unknown"


def machine_info() -> dict:
    """This machine as a results file records it."""
    import torch

    cpu = {"vendor": None, "model": platform.processor() or None, "flags": set()}
    if os.path.isfile("/proc/cpuinfo"):
        with open("/proc/cpuinfo") as f:
            cpu = parse_cpuinfo(f.read())
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    info = {
        "cpu_vendor": cpu["vendor"],
        "cpu_model": cpu["model"],
        "instruction_set": instruction_set(cpu["flags"]),
        "cores": cores,
        "arch": platform.machine(),
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "torch": torch.__version__,
    }
    for package in ("transformers", "trl", "accelerate"):
        try:
            from importlib.metadata import version

            info[package] = version(package)
        except Exception:  # noqa: BLE001 -- a package not installed is recorded as such
            info[package] = None
    info["kind"] = machine_kind(info)
    return info


def machine_kind(info: dict) -> str:
    """One line: "AMD EPYC ..., AVX-512, 2 cores" (and the GPU when there is one)."""
    cpu = ", ".join(str(x) for x in (info.get("cpu_model") or info.get("cpu_vendor"), info["instruction_set"]) if x)
    kind = f"{cpu}, {info['cores']} cores"
    return f"{info['gpu']} ({kind})" if info.get("gpu") else kind
