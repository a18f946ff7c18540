# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""A probe's output as training reads it for a warm start (`init_from_probe`): the file names, the loaded result, and
the check that the probe measured this run's model, data and group size.

The probe (`zvp_trl.probing`) writes these files; each method's part turns them into its per-prompt state
(`MethodPart.warm_start`): ERPO's temperature history, GRESO's traces, ExGRPO's buffer."""

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path


PROBE_FILE = "probe.jsonl"
TRAJECTORIES_FILE = "trajectories.jsonl"
SETTINGS_FILE = "probe_settings.json"


def data_fingerprint(prompt_ids: list[str]) -> str:
    """sha256 of the prompt ids in order: which prompts were probed, whatever the data set's name."""
    return hashlib.sha256("\n".join(prompt_ids).encode()).hexdigest()[:16]


def read_jsonl(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@dataclass
class ProbeResult:
    """A finished probe: its settings, one row per prompt (`probe.jsonl`) and the correct trajectories of its partially
    solved prompts (`trajectories.jsonl`: index, prompt token ids, completion token ids, their log-probs)."""

    directory: Path
    settings: dict
    rows: list[dict]
    trajectories: list[dict] = field(default_factory=list)

    @classmethod
    def load(cls, directory) -> "ProbeResult":
        directory = Path(directory)
        settings_path = directory / SETTINGS_FILE
        if not settings_path.is_file() or not (directory / PROBE_FILE).is_file():
            raise FileNotFoundError(
                f"init_from_probe={str(directory)!r} holds no probe ({SETTINGS_FILE} and {PROBE_FILE} are written by "
                "recipes/probe.py --output_dir DIR): run the probe first, or give the folder it wrote."
            )
        settings = json.loads(settings_path.read_text())
        rows = read_jsonl(directory / PROBE_FILE)
        if len(rows) != settings["num_prompts"]:
            raise ValueError(
                f"The probe in {directory} is unfinished ({len(rows)} of {settings['num_prompts']} prompts): run "
                "recipes/probe.py again with the same arguments to complete it before init_from_probe uses it."
            )
        return cls(directory, settings, rows, read_jsonl(directory / TRAJECTORIES_FILE))

    def check_matches(self, model_name: str, num_generations: int, prompt_ids: list[str]) -> None:
        """Refuses a probe of another model, group size or data set, naming the difference."""
        differences = []
        if str(self.settings.get("model")) != str(model_name):
            differences.append(f"model: {self.settings.get('model')!r} in the probe, {model_name!r} here")
        if self.settings.get("num_generations") != num_generations:
            differences.append(
                f"num_generations: {self.settings.get('num_generations')} in the probe, {num_generations} here"
            )
        probed = {row["prompt_id"] for row in self.rows}
        n = self.settings["num_prompts"]
        same_first = len(prompt_ids) >= n and data_fingerprint(prompt_ids[:n]) == self.settings.get("data_sha256")
        unprobed = sum(pid not in probed for pid in prompt_ids)
        if not same_first and unprobed:
            differences.append(
                f"data: {unprobed} of this run's {len(prompt_ids)} prompts are not in the probe of "
                f"{self.settings.get('dataset')!r}"
            )
        if differences:
            raise ValueError(
                f"init_from_probe={str(self.directory)!r} was probed with other settings ({'; '.join(differences)}). "
                "Probe this run's model and data with its num_generations (recipes/probe.py with the same arguments), "
                "or leave init_from_probe unset."
            )
