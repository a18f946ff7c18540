# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""Acc@k / Pass@k of a model on the math benchmarks, the papers' Table 1 way, resumable.

Writes, under `output_dir`: `<benchmark>.jsonl` (one line per sample: question, completion, extracted answer,
correct), `summary.json` and `results.md` (Acc@k and Pass@k per benchmark and their average). Samples already in the
JSONL files are not generated again, so an interrupted evaluation continues where it stopped.
"""

import dataclasses
import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from ..data.embedded.task import prompt_as_question
from ..data.math_datasets import (
    BOXED_PROMPT_TEMPLATE,
    PROMPT_OPTIONS,
    format_prompt,
    parse_fewshot_examples,
    saved_prompt_options,
)
from ..data.rewards import batch_math_verify_accuracy, extract_boxed_answer
from .accuracy import acc_pass_at_k, render_for_generation, sample_completions
from .math_benchmarks import BENCHMARKS, PAPER_BENCHMARKS, load_benchmark


@dataclass
class EvaluationArguments:
    """Arguments of `recipes/evaluate.py` (and of `evaluate_model`)."""

    model_name_or_path: str = field(default=None, metadata={"help": "Model path or Hub id to evaluate."})
    benchmarks: list[str] = field(
        default_factory=lambda: list(PAPER_BENCHMARKS),
        metadata={
            "help": "Benchmarks: minerva, amc23, math500, aime24, aime25, olympiadbench, gsm8k, embedded "
            "(the embedded task's held-out prompts)."
        },
    )
    data_dir: str | None = field(
        default=None,
        metadata={
            "help": "Folder of local JSON-lines copies (file names as in the registry); "
            "default: download from the Hub."
        },
    )
    benchmark_files: list[str] = field(
        default_factory=list,
        metadata={
            "help": "Per-benchmark local JSON-lines files as name=path (e.g. math500=my/math500.jsonl); "
            "they override --data_dir and the Hub for those benchmarks."
        },
    )
    limit: int | None = field(
        default=None, metadata={"help": "Evaluate only the first N questions of each benchmark."}
    )
    k: int = field(default=8, metadata={"help": "Samples per question (Acc@k, Pass@k)."})
    temperature: float = field(default=1.0, metadata={"help": "Sampling temperature (paper: 1.0)."})
    top_p: float = field(default=0.7, metadata={"help": "Nucleus sampling (paper: 0.7)."})
    max_tokens: int = field(default=4096, metadata={"help": "Maximum new tokens per completion."})
    prompt_template: str | None = field(
        default=None,
        metadata={
            "help": "Prompt template with a {question} placeholder. Default: the training run's (below), else the "
            "papers' template ending in 'put your final answer within \\boxed{}.'"
        },
    )
    conversational: bool | None = field(
        default=None,
        metadata={
            "help": "Render prompts with the chat template. Default: the training run's (below), else when the "
            "tokenizer has a chat template."
        },
    )
    prompt_from_training: bool = field(
        default=True,
        metadata={
            "help": "Ask a model trained by recipes/train.py the way it was trained: every prompt option not given "
            "here (prompt_template, conversational, system_prompt, fewshot_examples) is the run's, from the "
            "prompt.json recipes/train.py writes into its output_dir and checkpoints (found in the model folder, or "
            "above a checkpoint-<step> folder). The embedded benchmark is then asked as questions too if training "
            "was. An option given as empty counts as not given: turn the run's options off with false here."
        },
    )
    system_prompt: str | None = field(
        default=None, metadata={"help": "System message of chat prompts (only when prompts are rendered as chats)."}
    )
    fewshot_examples: str | None = field(
        default=None,
        metadata={
            "help": "Worked examples shown before every question, a JSON list of [question, answer] pairs (as in "
            "recipes/train.py, so a model is evaluated with the prompt it was trained with)."
        },
    )
    backend: str = field(default="auto", metadata={"help": "vllm, transformers, or auto (vllm when installed)."})
    batch_size: int = field(default=64, metadata={"help": "Sequences per generate call (transformers backend)."})
    vllm_enforce_eager: bool = field(
        default=False,
        metadata={
            "help": "vLLM backend: run the model eagerly, without compiling it (torch.compile, CUDA graphs) first, as "
            "`trl vllm-serve --enforce_eager` does. The engine starts in seconds instead of minutes (on a CPU, "
            "compiling a 135M model takes minutes); generation is slower per token, so keep the default for long "
            "evaluations."
        },
    )
    vllm_max_model_len: int | None = field(
        default=None,
        metadata={
            "help": "vLLM backend: longest prompt + completion in tokens the engine holds (default: the model's "
            "context length). A smaller value needs less KV-cache memory."
        },
    )
    output_dir: str = field(default="eval_results", metadata={"help": "Where the JSONL, summary and table go."})
    seed: int = field(default=0, metadata={"help": "Sampling seed."})

    def __post_init__(self):
        self.fewshot_examples = parse_fewshot_examples(self.fewshot_examples)
        if self.k < 1:
            raise ValueError(f"k must be >= 1, got {self.k}.")
        malformed = [item for item in self.benchmark_files if "=" not in item]
        if malformed:
            raise ValueError(f"benchmark_files entries must be name=path, got {malformed}.")
        if self.backend not in ("auto", "vllm", "transformers"):
            raise ValueError(f"backend must be auto, vllm or transformers, got {self.backend!r}.")
        if self.vllm_max_model_len is not None and self.vllm_max_model_len <= self.max_tokens:
            raise ValueError(
                f"vllm_max_model_len ({self.vllm_max_model_len}) must exceed max_tokens ({self.max_tokens}), "
                "since it holds the prompt and the completion: raise it, or leave it unset for the model's context "
                "length."
            )


def vllm_engine_kwargs(args: EvaluationArguments) -> dict:
    """The keyword arguments of the `vllm.LLM` the vLLM backend evaluates with."""
    kwargs = {"model": args.model_name_or_path, "seed": args.seed}
    if args.vllm_enforce_eager:
        kwargs["enforce_eager"] = True
    if args.vllm_max_model_len is not None:
        kwargs["max_model_len"] = args.vllm_max_model_len
    return kwargs


def _read_done(path: Path) -> dict[int, list[dict]]:
    done = defaultdict(list)
    if path.is_file():
        for line in path.read_text().splitlines():
            if line.strip():
                record = json.loads(line)
                done[record["index"]].append(record)
    return done


def uses_vllm(args: EvaluationArguments, model=None) -> bool:
    """Whether `args` evaluate with vLLM: `backend="vllm"`, or `"auto"` while vLLM is installed and no loaded model is
    passed in."""
    if args.backend == "auto":
        import importlib.util

        return importlib.util.find_spec("vllm") is not None and model is None
    return args.backend == "vllm"


class _Generator:
    """Samples `n` completions per rendered prompt with vLLM or transformers."""

    def __init__(self, args: EvaluationArguments, model=None, tokenizer=None):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.args = args
        backend = "vllm" if uses_vllm(args, model) else "transformers"
        self.backend = backend
        self.tokenizer = tokenizer or AutoTokenizer.from_pretrained(args.model_name_or_path)
        if backend == "vllm":
            from vllm import LLM

            self.llm = LLM(**vllm_engine_kwargs(args))
        else:
            self.model = model or AutoModelForCausalLM.from_pretrained(args.model_name_or_path)
        conversational = args.conversational
        # The embedded prompts ("Q: 3+4=?\nA:") are asked as questions in the template when a prompt option asks for
        # it, as recipes/train.py does; otherwise as they are.
        self.embedded_as_questions = bool(conversational or args.prompt_template is not None or args.fewshot_examples)
        self.conversational = bool(self.tokenizer.chat_template) if conversational is None else conversational
        self.template = args.prompt_template or BOXED_PROMPT_TEMPLATE

    def render(self, question: str, raw_prompt: bool = False) -> str:
        if raw_prompt and not self.embedded_as_questions:
            return question
        if raw_prompt:
            question = prompt_as_question(question)
        prompt = format_prompt(
            question,
            template=self.template,
            conversational=self.conversational,
            system_prompt=self.args.system_prompt if self.conversational else None,
            examples=self.args.fewshot_examples,
        )
        return render_for_generation(self.tokenizer, prompt)

    def generate(self, prompts: list[str], n: int) -> list[list[str]]:
        if self.backend == "vllm":
            from vllm import SamplingParams

            params = SamplingParams(
                n=n,
                temperature=self.args.temperature,
                top_p=self.args.top_p,
                max_tokens=self.args.max_tokens,
                seed=self.args.seed,
            )
            # Token ids, tokenized as the transformers backend does (special tokens only for plain-text prompts), so
            # both backends see the same prompt tokens.
            requests = [
                {"prompt_token_ids": self.tokenizer(prompt, add_special_tokens=not self.conversational)["input_ids"]}
                for prompt in prompts
            ]
            outputs = self.llm.generate(requests, params)
            return [[choice.text for choice in output.outputs] for output in outputs]
        return sample_completions(
            self.model,
            self.tokenizer,
            prompts,
            n,
            temperature=self.args.temperature,
            top_p=self.args.top_p,
            max_new_tokens=self.args.max_tokens,
            batch_size=self.args.batch_size,
            seed=self.args.seed,
            add_special_tokens=not self.conversational,
            progress=True,
        )


def with_training_prompt(args: EvaluationArguments) -> tuple[EvaluationArguments, str | None]:
    """`args` with every prompt option left unset taken from the training run's `prompt.json`
    (`args.prompt_from_training`), and that file's path (`None`: no such file, or not asked for)."""
    saved = (
        saved_prompt_options(args.model_name_or_path)
        if args.prompt_from_training and args.model_name_or_path
        else None
    )
    if saved is None:
        return args, None
    options, path = saved
    unset = {name: options[name] for name in PROMPT_OPTIONS if getattr(args, name) is None}
    return dataclasses.replace(args, **unset), str(path)


def evaluate_model(args: EvaluationArguments, model=None, tokenizer=None) -> dict:
    """Runs (or resumes) the evaluation; returns the summary. `model`/`tokenizer` may be given in memory
    (transformers backend), e.g. from a training callback. A model trained by `recipes/train.py` is asked with the
    training run's prompt options, where `args` leaves them unset (`with_training_prompt`)."""
    args, prompt_source = with_training_prompt(args)
    if prompt_source is not None:
        given = {name: getattr(args, name) for name in PROMPT_OPTIONS if getattr(args, name) is not None}
        print(f"[zvp_trl] prompt options of the training run ({prompt_source}): {given}")
    output_dir = Path(args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    generator = _Generator(args, model, tokenizer)
    results = {}
    files = dict(item.split("=", 1) for item in args.benchmark_files)
    for name in args.benchmarks:
        rows = load_benchmark(name, data_dir=args.data_dir, path=files.get(name), limit=args.limit)
        path = output_dir / f"{name}.jsonl"
        done = _read_done(path)
        prompts = {row["index"]: generator.render(row["question"], BENCHMARKS[name].raw_prompt) for row in rows}
        # Samples of a resumed evaluation that another prompt produced (other options, or written before the
        # records held their prompt) are generated again: one evaluation, one prompt.
        stale = [
            row["index"] for row in rows if any(r.get("prompt") != prompts[row["index"]] for r in done[row["index"]])
        ]
        if stale:
            print(f"[zvp_trl] {name}: {len(stale)} question(s) in {path} were asked with another prompt: asked again")
        todo = [row for row in rows if len(done[row["index"]]) < args.k or row["index"] in stale]
        if todo:
            # Questions with a partial set of samples are re-sampled whole, so every question's samples come from one
            # generate call.
            for row in todo:
                done.pop(row["index"], None)
            completions = generator.generate([prompts[row["index"]] for row in todo], args.k)
            golds = [row["answer"] for row in todo for _ in range(args.k)]
            flat = [c for group in completions for c in group]
            scores = batch_math_verify_accuracy(golds, flat)
            records = []
            for i, row in enumerate(todo):
                for j in range(args.k):
                    completion = completions[i][j]
                    records.append(
                        {
                            "index": row["index"],
                            "sample": j,
                            "question": row["question"],
                            "prompt": prompts[row["index"]],
                            "gold": row["answer"],
                            "completion": completion,
                            "extracted": extract_boxed_answer(completion),
                            "correct": bool(scores[i * args.k + j] or 0.0),
                        }
                    )
            for record in records:
                done[record["index"]].append(record)
            # Rewrite the file whole (complete questions only), via a temporary file.
            tmp = path.with_suffix(".jsonl.tmp")
            with open(tmp, "w") as f:
                for index in sorted(done):
                    for record in done[index]:
                        f.write(json.dumps(record) + "\n")
            tmp.replace(path)
        correct = [[r["correct"] for r in done[row["index"]][: args.k]] for row in rows]
        results[name] = acc_pass_at_k(correct, args.k)
    summary = {
        "model": args.model_name_or_path,
        "backend": generator.backend,
        "k": args.k,
        "temperature": args.temperature,
        "top_p": args.top_p,
        "max_tokens": args.max_tokens,
        "limit": args.limit,
        "prompt": {
            "prompt_template": generator.template,
            "conversational": generator.conversational,
            "system_prompt": args.system_prompt if generator.conversational else None,
            "fewshot_examples": args.fewshot_examples,
            "embedded_as_questions": generator.embedded_as_questions,
            "from": prompt_source,
        },
        "results": results,
        "average": {
            key: sum(r[key] for r in results.values()) / len(results) for key in (f"acc@{args.k}", f"pass@{args.k}")
        },
    }
    (output_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    (output_dir / "results.md").write_text(markdown_table(summary))
    return summary


def markdown_table(summary: dict) -> str:
    """Acc@k / Pass@k per benchmark (in %) and the average, like the RL-ZVP paper's Table 1."""
    k = summary["k"]
    names = list(summary["results"])
    header = "| model | " + " | ".join(names) + " | average |\n|---|" + "---|" * (len(names) + 1) + "\n"
    cells = [
        f"{100 * summary['results'][n][f'acc@{k}']:.2f} / {100 * summary['results'][n][f'pass@{k}']:.2f}"
        for n in names
    ]
    average = f"{100 * summary['average'][f'acc@{k}']:.2f} / {100 * summary['average'][f'pass@{k}']:.2f}"
    row = f"| {summary['model']} | " + " | ".join(cells) + f" | {average} |\n"
    note = (
        f"\nCells: Acc@{k} / Pass@{k} (%), {k} samples per question at temperature {summary['temperature']}, "
        f"top_p {summary['top_p']}, max {summary['max_tokens']} new tokens"
        + (f", first {summary['limit']} questions of each benchmark" if summary["limit"] else "")
        + ".\n"
    )
    return header + row + note
