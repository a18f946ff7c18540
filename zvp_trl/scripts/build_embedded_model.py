# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""Builds an embedded base model from nothing (random weights, then the supervised warm start) and compares its
weights with the copy the package ships, where it ships one.

    python -m zvp_trl.scripts.build_embedded_model [--output DIR] [--vllm] [--ship]

The build is bit for bit the same on machines with the same torch version and CPU instruction set
(`zvp_trl.data.embedded.model`); elsewhere the weights can differ in their last bits, and the script says so.
`--ship` writes the build over the shipped copy (for a maintainer changing the build).
"""

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

import torch

from ..data.embedded.model import (
    SHIPPED_DIR,
    VLLM_EMBEDDED_SPEC,
    EmbeddedModelSpec,
    build_embedded_model,
    shipped_model_path,
)


def compare_with_shipped(spec: EmbeddedModelSpec, info: dict) -> str:
    """A sentence on how `info` (a build's build_info) compares with the shipped copy of `spec`."""
    shipped = shipped_model_path(spec)
    if shipped is None:
        return "the package ships no copy of this model"
    reference = json.loads((shipped / "build_info.json").read_text())
    if info["weights_sha256"] == reference["weights_sha256"]:
        return f"identical to the shipped copy (weights sha256 {info['weights_sha256'][:16]})"
    same_platform = (reference["torch_version"], reference["cpu_capability"]) == (
        torch.__version__,
        torch.backends.cpu.get_cpu_capability(),
    )
    where = (
        "on the same torch and CPU instruction set: the build has changed"
        if same_platform
        else f"(shipped: torch {reference['torch_version']} on {reference['cpu_capability']}; here: torch "
        f"{torch.__version__} on {torch.backends.cpu.get_cpu_capability()}, where the last bits may differ)"
    )
    return f"differs from the shipped copy {where}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", help="where to write the model (default: a temporary directory)")
    parser.add_argument("--vllm", action="store_true", help="the vLLM variant (attention heads of 32)")
    parser.add_argument("--ship", action="store_true", help="write the build over the shipped copy")
    args = parser.parse_args(argv)
    spec = VLLM_EMBEDDED_SPEC if args.vllm else EmbeddedModelSpec()
    with tempfile.TemporaryDirectory() as tmp:
        output = Path(args.output) if args.output else Path(tmp) / "model"
        info = build_embedded_model(spec, output, log_every=100)
        print(f"built in {info['build_seconds']:.0f} s into {output}: {compare_with_shipped(spec, info)}")
        if args.ship:
            target = SHIPPED_DIR / spec.cache_key()
            shutil.rmtree(target, ignore_errors=True)
            target.mkdir(parents=True)
            for file in sorted(output.iterdir()):
                shutil.copy2(file, target / file.name)
            print(f"shipped copy written to {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
