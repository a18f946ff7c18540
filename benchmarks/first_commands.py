# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""The first two commands a user runs, as the README gives them, timed wall clock from an empty cache:

    accelerate launch recipes/train.py      # the default run (RL-ZVP on the embedded task)
    accelerate launch recipes/probe.py      # the default probe (the embedded task's training prompts)

Each runs in its own process with a fresh `ZVP_TRL_CACHE` (so the shipped base model is copied in, as on a new
machine) and its own output folder. Writes benchmarks/first_commands.json: each command's wall-clock seconds, its
`summary.json` (held-out Acc@8 before and after, zero-variance fractions; the probe's split) and the machine.

    python benchmarks/first_commands.py [--only train probe]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

COMMANDS = {"train": "recipes/train.py", "probe": "recipes/probe.py"}


def run(name: str, work: Path) -> dict:
    env = {**os.environ, "ZVP_TRL_CACHE": str(work / "cache")}
    output_dir = work / name
    command = ["accelerate", "launch", COMMANDS[name], "--output_dir", str(output_dir)]
    start = time.perf_counter()
    subprocess.run(command, cwd=ROOT, env=env, check=True)
    seconds = time.perf_counter() - start
    summary = json.loads((output_dir / "summary.json").read_text())
    return {"command": "accelerate launch " + COMMANDS[name], "wall_seconds": round(seconds, 1), "summary": summary}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", choices=sorted(COMMANDS), default=sorted(COMMANDS, reverse=True))
    parser.add_argument("--output", default=str(Path(__file__).with_suffix(".json")))
    args = parser.parse_args()

    from zvp_trl.evaluation.machine import machine_info

    result = {
        "date": date.today().isoformat(),
        "machine": machine_info(),
    }
    for name in args.only:
        with tempfile.TemporaryDirectory(prefix=f"zvp_{name}_") as work:
            result[name] = run(name, Path(work))
        print(f"{result[name]['command']}: {result[name]['wall_seconds']:.0f} s wall clock from an empty cache")
    Path(args.output).write_text(json.dumps(result, indent=2) + "\n")
    print(f"written to {args.output}")


if __name__ == "__main__":
    main()
