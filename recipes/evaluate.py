# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""Acc@k / Pass@k of a model on the math benchmarks (the RL-ZVP paper's Table 1 protocol by default).

    python recipes/evaluate.py --model_name_or_path Qwen/Qwen3-1.7B-Base                      # the six benchmarks
    python recipes/evaluate.py --model_name_or_path smollm2-offline --benchmarks gsm8k math500 \\
        --data_dir path/to/math_eval --limit 20 --k 4 --max_tokens 256 --backend transformers  # local JSON-lines copies
    python recipes/evaluate.py --model_name_or_path outputs/embedded-rl_zvp --benchmarks embedded --top_p 1.0 \\
        --max_tokens 96                     # a trained embedded model; `embedded` names the untrained base model

Model names are resolved as in recipes/train.py (`zvp_trl.models.resolve.resolve_model_name`).

Writes <output_dir>/<benchmark>.jsonl, summary.json and results.md; rerunning resumes.
"""

from zvp_trl.scripts.evaluate import main


if __name__ == "__main__":
    main()
