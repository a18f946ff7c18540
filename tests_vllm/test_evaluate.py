# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""recipes/evaluate.py with the vLLM backend on the CPU, on the offline SmolLM2-135M-Instruct: same files and scores
format as the transformers backend, answers scored the same way."""

import json
import subprocess
import sys
from pathlib import Path

from conftest import vllm_env
from zvp_trl.data.rewards import extract_boxed_answer


EVALUATE = Path(__file__).resolve().parents[1] / "recipes" / "evaluate.py"
QUESTIONS = [("What is 7+12?", "19"), ("What is 15-6?", "9"), ("What is 3*4?", "12")]
EXAMPLES = json.dumps([["What is 25+17?", "25+17 = 42. The answer is \\boxed{42}."]])


def _evaluate(backend: str, data: Path, output_dir: Path) -> dict:
    process = subprocess.run(
        [
            sys.executable, str(EVALUATE), "--model_name_or_path", "smollm2-offline", "--benchmarks", "gsm8k",
            "--benchmark_files", f"gsm8k={data}", "--k", "4", "--max_tokens", "48", "--top_p", "1.0",
            "--fewshot_examples", EXAMPLES, "--backend", backend, "--output_dir", str(output_dir),
            # Eager: compiling the model first takes minutes on a CPU (test_colocate.py runs vLLM compiled).
            *(["--vllm_enforce_eager", "--vllm_max_model_len", "1024"] if backend == "vllm" else []),
        ],
        env=vllm_env(),
        capture_output=True,
        text=True,
        timeout=900,
    )  # fmt: skip
    assert process.returncode == 0, process.stderr[-5000:]
    return json.loads((output_dir / "summary.json").read_text())


def test_vllm_backend_writes_what_the_transformers_backend_writes(tmp_path):
    data = tmp_path / "gsm8k.jsonl"
    data.write_text("".join(json.dumps({"question": q, "answer": f"... #### {a}"}) + "\n" for q, a in QUESTIONS))
    summaries = {backend: _evaluate(backend, data, tmp_path / backend) for backend in ("vllm", "transformers")}
    assert summaries["vllm"]["backend"] == "vllm" and summaries["transformers"]["backend"] == "transformers"
    assert summaries["vllm"].keys() == summaries["transformers"].keys()
    assert summaries["vllm"]["results"].keys() == summaries["transformers"]["results"].keys() == {"gsm8k"}
    assert summaries["vllm"]["results"]["gsm8k"].keys() == summaries["transformers"]["results"]["gsm8k"].keys()
    records = {
        backend: [json.loads(line) for line in (tmp_path / backend / "gsm8k.jsonl").read_text().splitlines()]
        for backend in summaries
    }
    assert [(r["index"], r["sample"]) for r in records["vllm"]] == [
        (r["index"], r["sample"]) for r in records["transformers"]
    ]
    assert len(records["vllm"]) == len(QUESTIONS) * 4
    assert {key for r in records["vllm"] for key in r} == {key for r in records["transformers"] for key in r}
    for record in records["vllm"]:
        assert record["completion"].strip(), "vLLM returned an empty completion"
        assert record["extracted"] == extract_boxed_answer(record["completion"])
        assert record["correct"] == (record["extracted"] is not None and record["extracted"] == record["gold"])
    # Acc@4 is the share of correct samples, as computed from the per-sample file.
    accuracy = sum(r["correct"] for r in records["vllm"]) / len(records["vllm"])
    assert summaries["vllm"]["results"]["gsm8k"]["acc@4"] == accuracy
    print("Acc@4 / Pass@4:", {b: summaries[b]["results"]["gsm8k"] for b in summaries})
