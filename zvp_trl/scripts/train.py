# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""One training entry point for every algorithm of the package (`recipes/train.py` calls `main`).

Configured the TRL way: a `TrlParser` over the script arguments below, the chosen algorithm's config dataclass and
`ModelConfig`, from the command line and/or `--config file.yaml`. The algorithm is picked with `--algorithm NAME`
(or `algorithm:` in the YAML) before the parser is built, so `--help` lists that algorithm's own fields.

With no model given (no `--model_name_or_path` on the command line or in the YAML, or the name `embedded`), the run
uses the embedded task: the tiny warm-started Qwen3 model the package builds and caches itself, the offline arithmetic
dataset, and CPU-sized defaults (see `EMBEDDED_TRAINING_DEFAULTS`); any flag you pass overrides those defaults. Model
names go through `zvp_trl.models.resolve.resolve_model_name`, as in `recipes/evaluate.py` and the benchmarks.
"""

import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from transformers import TrainerCallback
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from ..core.composition import ALGORITHMS, DEFAULT_ALGORITHM, get_algorithm
from ..data.embedded.model import built_weights_checksum
from ..data.embedded.task import DIFFICULTY, MAX_OPERAND, MAX_OPS, SPLIT_SIZES
from ..data.math_datasets import PROMPT_OPTIONS, save_prompt_options
from ..evaluation.machine import machine_info
from .usage import SETUP, usage_errors


@dataclass
class TrainScriptArguments:
    """Arguments of `recipes/train.py` that are not training hyper-parameters."""

    algorithm: str = field(
        default=DEFAULT_ALGORITHM,
        metadata={
            "help": f"Training algorithm, one of: {', '.join(ALGORITHMS)}; or methods joined by '+' in any order "
            "(e.g. erpo+exgrpo+rl_zvp, see docs/training.md)."
        },
    )
    dataset_name: str | None = field(
        default=None,
        metadata={
            "help": "Training data: a registered name of `zvp_trl.data.math_datasets.DATASETS` (e.g. `math`, `dapo_math_17k`), a "
            "Hub dataset id, a local json/jsonl/parquet file, or `embedded` (the embedded arithmetic prompts, with "
            "their held-out before/after evaluation, for any model). Default: the embedded arithmetic task."
        },
    )
    dataset_config: str | None = field(default=None, metadata={"help": "Hub dataset configuration name."})
    dataset_train_split: str = field(default="train", metadata={"help": "Split of `dataset_name` to train on."})
    dataset_column_mapping: str | None = field(
        default=None,
        metadata={
            "help": 'JSON mapping of the dataset\'s columns, e.g. \'{"question": "problem", "answer": "answer"}\'. '
            "Only needed when the columns are not inferred."
        },
    )
    dataset_max_samples: int | None = field(default=None, metadata={"help": "Use at most this many training prompts."})
    prompt_template: str | None = field(
        default=None,
        metadata={
            "help": "Prompt template with a `{question}` placeholder. Default: the papers' template ending in "
            "'put your final answer within \\boxed{}.'"
        },
    )
    conversational: bool = field(
        default=False, metadata={"help": "Build chat-message prompts (for instruct models with a chat template)."}
    )
    system_prompt: str | None = field(
        default=None, metadata={"help": "System message of the chat prompts (needs `conversational`)."}
    )
    fewshot_examples: str | None = field(
        default=None,
        metadata={
            "help": "Worked examples shown before every question, as a JSON list of [question, answer] pairs, e.g. "
            '\'[["What is 25+17?", "25+17 = 42. The answer is \\\\boxed{42}."]]\'. Each question goes through '
            "`prompt_template`; with `conversational` every pair becomes a user and an assistant turn. Held-out and "
            "training prompts get the same examples."
        },
    )
    reward_funcs: list[str] = field(
        default_factory=lambda: ["accuracy"],
        metadata={
            "help": "Reward functions: `accuracy` (math-verify on the last \\boxed{}), `format` (one well-formed "
            "\\boxed{} answer), `overlong` (DAPO's soft overlong punishment), or a dotted import path."
        },
    )
    overlong_buffer_length: int = field(
        default=256, metadata={"help": "Soft punishment zone (tokens) of the `overlong` reward (DAPO: 4096)."}
    )
    embedded_num_train_prompts: int = field(
        default=SPLIT_SIZES["train"], metadata={"help": "Embedded task: number of distinct training prompts."}
    )
    embedded_num_eval_prompts: int = field(
        default=SPLIT_SIZES["heldout"],
        metadata={"help": "Embedded task: held-out prompts scored before and after training."},
    )
    embedded_difficulty: float = field(
        default=DIFFICULTY,
        metadata={"help": "Embedded task: 0 favours one-operation problems, 1 the longest chains, 0.5 is uniform."},
    )
    embedded_max_ops: int = field(default=MAX_OPS, metadata={"help": "Embedded task: longest chain of operations."})
    embedded_min_ops: int = field(
        default=1,
        metadata={
            "help": "Embedded task: shortest chain of operations (e.g. 10 with --embedded_max_ops 10: only chains "
            "longer than the base model's warm start, which it never solves)."
        },
    )
    embedded_max_operand: int = field(
        default=MAX_OPERAND,
        metadata={
            "help": "Embedded task: largest operand (the base model is warm-started on operands up to 20; larger "
            "ones make prompts it does not solve)."
        },
    )
    embedded_warmup_steps: int = field(
        default=800, metadata={"help": "Embedded task: supervised warm-start steps of the base model (cached)."}
    )
    benchmark_eval: list[str] = field(
        default_factory=list,
        metadata={
            "help": "Benchmarks to evaluate during training (e.g. math500 amc23, or embedded); logs "
            "eval/<benchmark>/acc@k and pass@k and keeps the paper's best/final selection."
        },
    )
    benchmark_eval_steps: int = field(default=50, metadata={"help": "Evaluate the benchmarks every N steps."})
    benchmark_eval_limit: int | None = field(
        default=None, metadata={"help": "Evaluate only the first N questions of each benchmark."}
    )
    benchmark_eval_data_dir: str | None = field(
        default=None, metadata={"help": "Folder of local benchmark copies (default: the Hub)."}
    )
    benchmark_eval_k: int = field(default=8, metadata={"help": "Samples per question for the benchmark evaluation."})
    benchmark_eval_top_p: float = field(default=0.7, metadata={"help": "top_p of the benchmark evaluation."})
    dynamics_plot: bool = field(
        default=True,
        metadata={
            "help": "Keep <output_dir>/training_dynamics.png up to date during training (zero-variance fractions, "
            "reward, entropy, length and the method's own metrics); false to turn it off."
        },
    )
    summary_num_samples: int = field(
        default=8, metadata={"help": "Samples per held-out prompt for the before/after accuracy (Acc@k, Pass@k)."}
    )
    allow_distributed_downgrade: bool = field(
        default=False,
        metadata={
            "help": "Accept a launch whose sharding (FSDP/DeepSpeed) or process count the Accelerator did not take "
            "up (e.g. an FSDP config that runs as DDP); by default such a launch is refused. For smoke tests only."
        },
    )

    def __post_init__(self):
        from ..data.math_datasets import parse_fewshot_examples

        get_algorithm(self.algorithm)  # clear error for an unknown name
        if self.system_prompt is not None and not self.conversational:
            raise ValueError(
                "system_prompt needs conversational=true (chat prompts); for a base model, put the text in "
                "prompt_template instead."
            )
        self.fewshot_examples = parse_fewshot_examples(self.fewshot_examples)  # JSON (command line) or a list
        if self.embedded_num_eval_prompts < 0:
            raise ValueError("embedded_num_eval_prompts must be >= 0 (0 skips the before/after evaluation).")
        if self.embedded_max_operand < 1:
            raise ValueError(f"embedded_max_operand must be >= 1, got {self.embedded_max_operand}.")
        if not 1 <= self.embedded_min_ops <= self.embedded_max_ops:
            raise ValueError(
                f"embedded_min_ops must be between 1 and embedded_max_ops ({self.embedded_max_ops}), got "
                f"{self.embedded_min_ops}: raise --embedded_max_ops with it."
            )


# CPU-sized defaults of the embedded run; every one can be overridden on the command line or in a YAML file.
EMBEDDED_TRAINING_DEFAULTS = {
    "learning_rate": 5e-5,
    "lr_scheduler_type": "constant",
    "num_generations": 8,
    "per_device_train_batch_size": 256,
    "max_completion_length": 96,
    "max_steps": 80,
    "temperature": 1.0,
    "epsilon_high": 0.28,
    "beta": 0.0,
    "bf16": False,
    "gradient_checkpointing": False,
    "disable_dropout": True,
    "logging_steps": 10,
    "save_strategy": "steps",
    "save_steps": 40,
    "save_total_limit": 2,
    "report_to": "none",
    "seed": 42,
}


def _flag_value(argv: list[str], name: str) -> str | None:
    for i, arg in enumerate(argv):
        if arg == f"--{name}" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith(f"--{name}="):
            return arg.split("=", 1)[1]
    return None


def _yaml_config(argv: list[str]) -> dict:
    path = _flag_value(argv, "config")
    if path is None:
        return {}
    with open(path) as f:
        config = yaml.safe_load(f) or {}
    if not isinstance(config, dict):
        raise ValueError(f"Config file {path} must contain a YAML mapping.")
    return config


def uses_embedded_model(argv: list[str]) -> bool:
    """True when no model is named on the command line or in the YAML config, or the model named is `embedded`: the
    embedded task runs."""
    from ..models.resolve import EMBEDDED_MODEL_NAME

    name = _flag_value(argv, "model_name_or_path")
    if name is None:
        name = _yaml_config(argv).get("model_name_or_path")
    return name in (None, EMBEDDED_MODEL_NAME)


def make_parser(argv: list[str], extra: tuple[type, ...] = ()):
    """Builds the `TrlParser` for the algorithm named in `argv` (or its YAML), with the embedded defaults if no model
    is given; `extra` dataclasses (another script's own arguments) are parsed after the script arguments. Returns
    `(parser, algorithm_name, uses_embedded_model)`."""
    import torch
    from trl import ModelConfig, TrlParser

    config = _yaml_config(argv)
    algorithm_name = _flag_value(argv, "algorithm") or config.get("algorithm") or DEFAULT_ALGORITHM
    config_class, _ = get_algorithm(algorithm_name).load()
    parser = TrlParser((TrainScriptArguments, *extra, config_class, ModelConfig))
    embedded = uses_embedded_model(argv)
    if embedded:
        defaults = dict(EMBEDDED_TRAINING_DEFAULTS, output_dir=f"outputs/embedded-{algorithm_name}")
        if not torch.cuda.is_available():
            defaults["use_cpu"] = True
        parser.set_defaults_with_config(**defaults)
    return parser, algorithm_name, embedded


def _reward_funcs(names: list[str], script_args, training_args):
    import importlib

    from ..data.rewards import accuracy_reward, boxed_format_reward, get_soft_overlong_punishment

    funcs = []
    for name in names:
        if name == "accuracy":
            funcs.append(accuracy_reward)
        elif name == "format":
            funcs.append(boxed_format_reward)
        elif name == "overlong":
            funcs.append(
                get_soft_overlong_punishment(training_args.max_completion_length, script_args.overlong_buffer_length)
            )
        elif "." in name:
            module, _, attr = name.rpartition(".")
            sys.path.insert(0, os.getcwd())
            funcs.append(getattr(importlib.import_module(module), attr))
        else:
            raise ValueError(
                f"Unknown reward function {name!r} in --reward_funcs: use accuracy, format, overlong or a dotted "
                "import path such as my_package.my_module.my_reward."
            )
    return funcs


EMBEDDED_DATASET_NAME = "embedded"


class PromptFileCallback(TrainerCallback):
    """Writes the run's prompt options (`prompt.json`, `zvp_trl.data.math_datasets.save_prompt_options`) into every
    checkpoint, so that `recipes/evaluate.py` asks a checkpoint the way it was trained even after a later run reuses
    the `output_dir` (whose own `prompt.json` is then the later run's)."""

    def __init__(self, options: dict):
        self.options = options

    def on_save(self, args, state, control, **kwargs):
        folder = Path(args.output_dir) / f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}"
        if args.should_save and folder.is_dir():
            save_prompt_options(folder, self.options)


def _embedded_as_questions(dataset, script_args):
    """The embedded prompts (`"Q: 3+4=?\\nA:"`) as questions (`"What is 3+4?"`) in the prompt template, as chat
    messages with `--conversational` (for pretrained chat models)."""
    from ..data.embedded.task import prompt_as_question
    from ..data.math_datasets import BOXED_PROMPT_TEMPLATE, format_prompt

    template = script_args.prompt_template or BOXED_PROMPT_TEMPLATE

    def render(row):
        question = prompt_as_question(row["prompt"])
        return {
            "prompt": format_prompt(
                question, template, script_args.conversational, script_args.system_prompt, script_args.fewshot_examples
            )
        }

    return dataset.map(render)


def _datasets(script_args, embedded: bool):
    """Training dataset, plus held-out (prompts, solutions) for the before/after summary (embedded prompts only)."""
    if script_args.dataset_name in (None, EMBEDDED_DATASET_NAME):
        if script_args.dataset_name is None and not embedded:
            raise ValueError(
                "--dataset_name is required when --model_name_or_path is given (`embedded` for the embedded "
                "arithmetic prompts)."
            )
        from ..data.embedded import make_split

        train = make_split(
            "train",
            script_args.embedded_num_train_prompts,
            script_args.embedded_difficulty,
            script_args.embedded_max_ops,
            script_args.embedded_min_ops,
            script_args.embedded_max_operand,
        )
        heldout = None  # embedded_num_eval_prompts=0 skips the before/after evaluation (make_split reads 0 as default)
        if script_args.embedded_num_eval_prompts > 0:
            heldout = make_split(
                "heldout",
                script_args.embedded_num_eval_prompts,
                script_args.embedded_difficulty,
                script_args.embedded_max_ops,
                script_args.embedded_min_ops,
                script_args.embedded_max_operand,
            )
        if script_args.dataset_name == EMBEDDED_DATASET_NAME and heldout is not None:
            # The two seeded streams repeat short chains: keep each held-out prompt once, and only if never trained on.
            seen = set(train["prompt"])
            keep = []
            for i, prompt in enumerate(heldout["prompt"]):
                if prompt not in seen:
                    keep.append(i)
                    seen.add(prompt)
            heldout = heldout.select(keep)
        if script_args.conversational or script_args.prompt_template is not None or script_args.fewshot_examples:
            train = _embedded_as_questions(train, script_args)
            heldout = None if heldout is None else _embedded_as_questions(heldout, script_args)
        return train, heldout
    from ..data.math_datasets import BOXED_PROMPT_TEMPLATE, load_math_dataset

    train = load_math_dataset(
        script_args.dataset_name,
        split=script_args.dataset_train_split,
        config=script_args.dataset_config,
        column_mapping=json.loads(script_args.dataset_column_mapping) if script_args.dataset_column_mapping else None,
        template=script_args.prompt_template or BOXED_PROMPT_TEMPLATE,
        conversational=script_args.conversational,
        system_prompt=script_args.system_prompt,
        examples=script_args.fewshot_examples,
        max_samples=script_args.dataset_max_samples,
        seed=0,
    )
    return train, None


def _heldout_accuracy(trainer, heldout, script_args) -> dict | None:
    if heldout is None or len(heldout) == 0 or not trainer.accelerator.is_main_process:
        return None
    from ..data.rewards import accuracy_reward
    from ..evaluation.accuracy import evaluate_accuracy, render_for_generation

    model = trainer.accelerator.unwrap_model(trainer.model)
    chat = not isinstance(heldout["prompt"][0], str)
    chat_template_kwargs = trainer.args.chat_template_kwargs or {}
    prompts = [render_for_generation(trainer.processing_class, p, **chat_template_kwargs) for p in heldout["prompt"]]
    return evaluate_accuracy(
        model,
        trainer.processing_class,
        prompts,
        heldout["solution"],
        accuracy_reward,
        k=script_args.summary_num_samples,
        temperature=trainer.args.temperature,
        max_new_tokens=trainer.args.max_completion_length,
        seed=trainer.args.seed,
        add_special_tokens=not chat,
    )


def _zero_variance_history(log_history: list[dict]) -> dict:
    values = [entry["frac_reward_zero_std"] for entry in log_history if "frac_reward_zero_std" in entry]
    if not values:
        return {}
    return {"first_logged": values[0], "last_logged": values[-1], "mean": sum(values) / len(values)}


class DistributedDowngradeError(RuntimeError):
    """The launch asked for a distributed mode (sharding, several processes) that the Accelerator did not take up."""


@dataclass
class DistributedRequest:
    """What the launch asked for: from `accelerate launch`'s environment (its config file) and the training arguments."""

    fsdp: bool
    fsdp_version: int
    deepspeed: bool
    launched_processes: int

    @classmethod
    def from_launch(cls, training_args) -> "DistributedRequest":
        def env_true(name: str) -> bool:
            return os.environ.get(name, "false").lower() in ("1", "true", "yes")

        fsdp_from_args = bool(training_args.fsdp)
        if fsdp_from_args:
            version = int((training_args.fsdp_config or {}).get("version", 2))
        else:
            version = int(os.environ.get("FSDP_VERSION", "1"))  # accelerate's default when its config names none
        return cls(
            fsdp=fsdp_from_args or env_true("ACCELERATE_USE_FSDP"),
            fsdp_version=version,
            deepspeed=bool(training_args.deepspeed) or env_true("ACCELERATE_USE_DEEPSPEED"),
            launched_processes=int(os.environ.get("WORLD_SIZE", "1")),
        )


def _enable_cpu_fsdp_if_needed(request: DistributedRequest, state) -> bool:
    """FSDP2 asked for on a machine without GPUs: let accelerate take its FSDP path on the CPU processes
    (`zvp_trl.launch.cpu_fsdp`); accelerate alone would run them as DDP. Never on a machine with a GPU; `ZVP_TRL_CPU_FSDP=0`
    turns it off (the launch is then refused as a downgrade, unless --allow_distributed_downgrade)."""
    from ..launch.cpu_fsdp import accelerator_device_visible, enable_cpu_fsdp

    if not request.fsdp or request.fsdp_version != 2 or accelerator_device_visible() is not None:
        return False
    if os.environ.get("ZVP_TRL_CPU_FSDP", "1") == "0":
        return False
    enable_cpu_fsdp()
    if state.is_main_process:
        print("[zvp_trl] FSDP2 on CPU processes (gloo): accelerate's FSDP path enabled by zvp_trl.launch.cpu_fsdp")
    return True


def _enable_cpu_deepspeed_if_needed(request: DistributedRequest, state) -> bool:
    """DeepSpeed asked for on a machine without GPUs: let accelerate take its DeepSpeed path on the CPU processes
    (`zvp_trl.launch.cpu_deepspeed`); accelerate alone would run them as DDP. Never on a machine with a GPU;
    `ZVP_TRL_CPU_DEEPSPEED=0` turns it off (the launch is then refused as a downgrade, unless
    --allow_distributed_downgrade)."""
    from ..launch.cpu_deepspeed import enable_cpu_deepspeed, skip_unused_op_build
    from ..launch.cpu_fsdp import accelerator_device_visible

    if not request.deepspeed or accelerator_device_visible() is not None:
        return False
    skip_unused_op_build()  # whatever runs: no process compiles an op training never calls
    if os.environ.get("ZVP_TRL_CPU_DEEPSPEED", "1") == "0":
        return False
    enable_cpu_deepspeed()
    if state.is_main_process:
        print(
            "[zvp_trl] DeepSpeed on CPU processes (gloo): accelerate's DeepSpeed path enabled by zvp_trl.launch.cpu_deepspeed"
        )
    return True


def check_distributed_mode(accelerator, request: DistributedRequest, allow_downgrade: bool = False) -> list[str]:
    """Compares what the launch asked for with what the Accelerator runs. Raises `DistributedDowngradeError` naming
    each mismatch, its cause and the fix, unless `allow_downgrade` (then warns); returns the mismatches."""
    from accelerate.utils import DistributedType

    mode = f"{accelerator.distributed_type.value} with {accelerator.num_processes} process(es)"
    cpu = accelerator.device.type == "cpu"
    problems = []
    if request.fsdp and accelerator.distributed_type != DistributedType.FSDP:
        if cpu:
            cause = (
                "accelerate selects FSDP only on GPUs (and other accelerators); zvp_trl.launch.cpu_fsdp enables FSDP2 on CPU "
                "processes only on a machine without GPUs and unless ZVP_TRL_CPU_FSDP=0"
            )
            fix = "on a machine without GPUs, unset ZVP_TRL_CPU_FSDP and use fsdp_version 2; with GPUs, use them"
        else:
            cause = "the Accelerator was built without the FSDP plugin"
            fix = "check the accelerate config (distributed_type: FSDP) and the --fsdp / --fsdp_config arguments"
        problems.append(
            f"the launch asks for FSDP{request.fsdp_version} but the Accelerator runs {mode}: {cause}. Fix: {fix}."
        )
    if request.deepspeed and accelerator.distributed_type != DistributedType.DEEPSPEED:
        if cpu:
            cause = (
                "accelerate ignores DeepSpeed on CPU processes (use_cpu / --cpu); zvp_trl.launch.cpu_deepspeed enables "
                "it there only on a machine without GPUs and unless ZVP_TRL_CPU_DEEPSPEED=0"
            )
            fix = (
                "on a machine without GPUs, unset ZVP_TRL_CPU_DEEPSPEED and pass --use_cpu true (DeepSpeed on CPU "
                "runs in fp32: mixed_precision: no); with GPUs, use them"
            )
        else:
            cause = "the Accelerator was built without the DeepSpeed plugin"
            fix = "check the accelerate config (distributed_type: DEEPSPEED) and the --deepspeed argument"
        problems.append(f"the launch asks for DeepSpeed but the Accelerator runs {mode}: {cause}. Fix: {fix}.")
    if request.launched_processes > 1 and accelerator.num_processes != request.launched_processes:
        problems.append(
            f"the launcher started {request.launched_processes} processes but the Accelerator of each sees "
            f"{accelerator.num_processes} (it runs {mode}, process_index {accelerator.process_index}): the "
            "processes do not train together, each would train alone on its own data. Cause: accelerate set up no "
            "process group for this device/mode combination (on a machine without GPUs: the run does not use the "
            "CPU explicitly). Fix: on a machine without GPUs pass --use_cpu true (and use_cpu: true in the "
            "accelerate config, DeepSpeed included)."
        )
    if problems:
        message = "Distributed launch not taken up as asked:\n- " + "\n- ".join(problems)
        if not allow_downgrade:
            raise DistributedDowngradeError(
                message + "\nPass --allow_distributed_downgrade true to train anyway (smoke tests only)."
            )
        import warnings

        warnings.warn(message + "\nTraining anyway (--allow_distributed_downgrade).", stacklevel=2)
    return problems


def _save_final_model(trainer, output_dir: str) -> None:
    """`save_model` writes nothing under FSDP with SHARDED_STATE_DICT (transformers saves the model only as a full
    state dict): the final model is gathered into one full state dict instead; checkpoints keep their shards."""
    plugin = getattr(trainer.accelerator.state, "fsdp_plugin", None)
    if trainer.is_fsdp_enabled and plugin is not None and "SHARDED_STATE_DICT" in str(plugin.state_dict_type):
        plugin.set_state_dict_type("FULL_STATE_DICT")
        if trainer.accelerator.is_main_process:
            print("[zvp_trl] FSDP SHARDED_STATE_DICT: the final model is saved as a full state dict")
    trainer.save_model(output_dir)


def prepare_model(script_args, training_args, model_args, state) -> None:
    """Resolves the model name (building the embedded model once, on the main process first) and the model's init
    arguments, as training and the probe load it."""
    from ..data.embedded import EmbeddedModelSpec
    from ..models.resolve import resolve_model_name

    # No model, or `embedded`: the embedded task's model (heads of 32 with use_vllm, which vLLM's CPU attention takes);
    # `smollm2-offline`: the offline SmolLM2. The first use builds or converts it once, the other processes then load it.
    with state.main_process_first():
        model_args.model_name_or_path = resolve_model_name(
            model_args.model_name_or_path,
            embedded_spec=EmbeddedModelSpec(warmup_steps=script_args.embedded_warmup_steps),
            use_vllm=training_args.use_vllm,
        )

    if training_args.use_vllm and training_args.vllm_mode == "colocate":
        from ..launch.vllm_cpu import enable_vllm_cpu_weight_sync, vllm_platform_is_cpu

        if vllm_platform_is_cpu():  # vLLM's CPU build: keep live weights so TRL's weight sync reaches generation
            enable_vllm_cpu_weight_sync()
            if state.is_main_process:
                print("[zvp_trl] vLLM runs on the CPU: its linear layers keep live weights (zvp_trl.launch.vllm_cpu)")
    training_args.model_init_kwargs = {
        **(training_args.model_init_kwargs or {}),
        "revision": model_args.model_revision,
        "trust_remote_code": training_args.trust_remote_code,
        "attn_implementation": model_args.attn_implementation,
        "dtype": model_args.dtype,
    }


def run(script_args, training_args, model_args, embedded: bool) -> dict:
    """Trains with the parsed arguments; returns the summary written to `<output_dir>/summary.json`."""
    from accelerate import PartialState
    from trl import get_peft_config

    _, trainer_class = get_algorithm(script_args.algorithm).load()
    state = PartialState()
    distributed_request = DistributedRequest.from_launch(training_args)
    _enable_cpu_fsdp_if_needed(distributed_request, state)  # before the trainer builds its Accelerator
    _enable_cpu_deepspeed_if_needed(distributed_request, state)
    prepare_model(script_args, training_args, model_args, state)
    train_dataset, heldout = _datasets(script_args, embedded)
    prompt_options = {name: getattr(script_args, name) for name in PROMPT_OPTIONS}
    callbacks = [PromptFileCallback(prompt_options)]
    if script_args.dynamics_plot:
        from ..core.callbacks import DynamicsPlotCallback

        callbacks.append(DynamicsPlotCallback())
    if script_args.benchmark_eval:
        from ..core.callbacks import BenchmarkEvalCallback

        callbacks.append(
            BenchmarkEvalCallback(
                script_args.benchmark_eval,
                eval_steps=script_args.benchmark_eval_steps,
                k=script_args.benchmark_eval_k,
                limit=script_args.benchmark_eval_limit,
                data_dir=script_args.benchmark_eval_data_dir,
                temperature=training_args.temperature,
                top_p=script_args.benchmark_eval_top_p,
                max_tokens=training_args.max_completion_length,
                # the benchmark questions are asked the way the training prompts are (None: the papers' template)
                prompt_template=script_args.prompt_template,
                conversational=script_args.conversational,
                system_prompt=script_args.system_prompt,
                fewshot_examples=script_args.fewshot_examples,
            )
        )
    trainer = trainer_class(
        model=model_args.model_name_or_path,
        reward_funcs=_reward_funcs(script_args.reward_funcs, script_args, training_args),
        args=training_args,
        train_dataset=train_dataset,
        peft_config=get_peft_config(model_args),
        callbacks=callbacks,
    )
    check_distributed_mode(trainer.accelerator, distributed_request, script_args.allow_distributed_downgrade)
    SETUP.done()  # from here on a failure is not a usage error: it keeps its traceback
    if training_args.should_save:  # recipes/evaluate.py asks the trained model the same way (prompt.json)
        save_prompt_options(training_args.output_dir, prompt_options)

    before = _heldout_accuracy(trainer, heldout, script_args)
    start = time.perf_counter()
    resume = training_args.resume_from_checkpoint
    if isinstance(resume, str) and resume.lower() in ("true", "last"):
        resume = True  # the last complete checkpoint of output_dir (incomplete ones, from a crash, are skipped)
    trainer.train(resume_from_checkpoint=resume)
    train_seconds = time.perf_counter() - start
    after = _heldout_accuracy(trainer, heldout, script_args)

    _save_final_model(trainer, training_args.output_dir)
    output_dir = Path(training_args.output_dir)
    summary = {
        "algorithm": script_args.algorithm,
        "model": model_args.model_name_or_path,
        # Which build of the embedded base model the run started from (None for any other model).
        "base_model_sha256": built_weights_checksum(model_args.model_name_or_path),
        "dataset": script_args.dataset_name or "embedded-arithmetic",
        "global_steps": trainer.state.global_step,
        "train_seconds": round(train_seconds, 1),
        "heldout_before": before,
        "heldout_after": after,
        "train_zero_variance_fraction": _zero_variance_history(trainer.state.log_history),
        "machine": machine_info(),  # a run reproduces bit for bit on the same kind of CPU with the same torch
        "distributed": {
            "type": trainer.accelerator.distributed_type.value,
            "num_processes": trainer.accelerator.num_processes,
            "fsdp_version": trainer.accelerator.state.fsdp_plugin.fsdp_version if trainer.is_fsdp_enabled else None,
        },
    }
    if hasattr(trainer, "rollouts"):
        summary["rollouts"] = {"total": trainer.rollouts.total, "kept": trainer.rollouts.kept}
    if trainer.accelerator.is_main_process:
        trainer.state.save_to_json(str(output_dir / "trainer_state.json"))
        (output_dir / "summary.json").write_text(json.dumps(summary, indent=2))
        _print_summary(summary, output_dir)
    if training_args.push_to_hub:
        trainer.push_to_hub(dataset_name=script_args.dataset_name)
    trainer.accelerator.wait_for_everyone()
    # Finish trackers and tear the process group down here rather than at interpreter exit, where a multi-process CPU
    # (gloo) run has been seen to abort a rank after its results were written.
    _EXIT.update(skip_finalization=trainer.accelerator.num_processes > 1 and trainer.accelerator.device.type == "cpu")
    trainer.accelerator.end_training()
    return summary


_EXIT = {"skip_finalization": False}


def exit_after_run() -> None:
    """Ends the process after a finished run. A multi-process CPU run (gloo; DeepSpeed ZeRO-3 in particular) has been
    seen to abort one rank with "terminate called without an active exception" while the interpreter finalizes,
    after every result was written and the process group was torn down: such a run exits here with status 0 without
    finalizing (outputs flushed first). Any other run returns normally."""
    if _EXIT["skip_finalization"]:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


def _print_summary(summary: dict, output_dir: Path) -> None:
    print(
        f"\n[zvp_trl] {summary['algorithm']} finished {summary['global_steps']} steps "
        f"in {summary['train_seconds']:.0f}s."
    )
    before, after = summary["heldout_before"], summary["heldout_after"]
    if before and after:
        accuracy_key = next(k for k in before if k.startswith("acc@"))
        pass_key = next(k for k in before if k.startswith("pass@"))
        print(
            f"[zvp_trl] held-out {accuracy_key}: {before[accuracy_key]:.3f} -> {after[accuracy_key]:.3f}   "
            f"{pass_key}: {before[pass_key]:.3f} -> {after[pass_key]:.3f}"
        )
        print(
            f"[zvp_trl] held-out prompts all-correct / all-wrong / mixed: "
            f"{before['frac_all_correct']:.2f}/{before['frac_all_wrong']:.2f}/{before['frac_mixed']:.2f} -> "
            f"{after['frac_all_correct']:.2f}/{after['frac_all_wrong']:.2f}/{after['frac_mixed']:.2f}"
        )
    zero_variance = summary["train_zero_variance_fraction"]
    if zero_variance:
        print(
            f"[zvp_trl] zero-variance groups during training: {zero_variance['first_logged']:.2f} (first log) -> "
            f"{zero_variance['last_logged']:.2f} (last log), mean {zero_variance['mean']:.2f}"
        )
    print(f"[zvp_trl] model:   {output_dir.resolve()}")
    print(f"[zvp_trl] metrics: {(output_dir / 'trainer_state.json').resolve()}")
    print(f"[zvp_trl] summary: {(output_dir / 'summary.json').resolve()}")
    if (output_dir / "training_dynamics.png").is_file():
        print(f"[zvp_trl] plot:    {(output_dir / 'training_dynamics.png').resolve()}")


def _use_all_cores_on_single_cpu_process() -> None:
    """`accelerate launch` without a config sets OMP_NUM_THREADS=1, which halves a 2-core CPU run. A single CPU
    process gets every core it is allowed to use; multi-process and GPU runs are left as launched."""
    import torch

    if torch.cuda.is_available() or int(os.environ.get("WORLD_SIZE", "1")) > 1:
        return
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    if torch.get_num_threads() < cores:
        torch.set_num_threads(cores)


def field_help(f) -> str:
    """One dataclass field as `--help` lists it first: its flag and default, then its help on one line."""
    import dataclasses

    default = f.default if f.default is not dataclasses.MISSING else "required"
    text = " ".join(f.metadata.get("help", "").split())
    return f"  --{f.name} (default: {default})\n      {text}"


def method_fields_help(algorithm: str) -> str:
    """The fields `algorithm`'s config adds to TRL's `GRPOConfig` (the method's own first, then those every zvp_trl
    config has), one line each with its default and help: what `--help` shows before argparse's full list."""
    import dataclasses

    from trl import GRPOConfig

    from ..core.config import ZVPBaseConfig

    config_class, _ = get_algorithm(algorithm).load()
    trl_fields = {f.name for f in dataclasses.fields(GRPOConfig)}
    base_fields = {f.name for f in dataclasses.fields(ZVPBaseConfig)} - trl_fields
    own = [f for f in dataclasses.fields(config_class) if f.name not in trl_fields and f.name not in base_fields]
    common = [f for f in dataclasses.fields(config_class) if f.name in base_fields]

    parts = [f"recipes/train.py --algorithm {algorithm}: the method's own fields"]
    parts += [field_help(f) for f in own] or ["  (none: plain GRPO)"]
    parts += ["every zvp_trl config's fields:"] + [field_help(f) for f in common]
    parts += ["", "All fields, with TRL's GRPOConfig and the model's, follow.", ""]
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> dict:
    """Trains as `recipes/train.py` does; errors are raised (`cli` turns usage errors into one line and exit 2)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if "-h" in argv or "--help" in argv:
        config = _yaml_config(argv)
        print(method_fields_help(_flag_value(argv, "algorithm") or config.get("algorithm") or DEFAULT_ALGORITHM))
    _use_all_cores_on_single_cpu_process()
    if uses_embedded_model(argv):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing to download; also skips telemetry calls
    parser, _, embedded = make_parser(argv)
    script_args, training_args, model_args = parser.parse_args_and_config(argv)
    return run(script_args, training_args, model_args, embedded)


def cli() -> None:
    """`recipes/train.py`: `main` with usage errors reported as one line and exit status 2."""
    with usage_errors("recipes/train.py"):
        main()
    exit_after_run()
