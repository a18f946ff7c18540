# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""The paper recipes (`recipes/*.yaml`) and accelerate configs (`recipes/accelerate/*.yaml`).

- Every recipe is parsed by the training script's real parser, and its numbers are checked against the RL-ZVP paper's
  Table 6 / Table 5 (global batch, G, clip, loss, schedule, steps, rollout budget) at the GPU count it states.
- A smoke variant of every recipe (no model or dataset, so the embedded task; tiny sizes from the command line) trains
  two steps in process, and one recipe trains on two processes through `accelerate launch` with
  `recipes/accelerate/multi_gpu.yaml` (gloo on CPU).
- Every accelerate config is validated offline the way `accelerate launch` reads it.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import transformers
import yaml

from zvp_trl.scripts import train as train_script


REPO = Path(__file__).resolve().parents[1]
ACCELERATE_CONFIGS = sorted((REPO / "recipes" / "accelerate").glob("*.yaml"))
HELPERS = REPO / "tests" / "scripts"  # recipe_two_processes.mixed_reward

# RL-ZVP paper, App. C Table 6 and Table 5; `gpus` is the GPU count each recipe states (the paper's hardware).
SETTINGS = {
    "qwen3_1.7b_math": {
        "model": "Qwen/Qwen3-1.7B-Base",
        "dataset": "math",
        "dataset_config": None,
        "gpus": 4,
        "G": 8,
        "max_completion_length": 4096,
        "learning_rate": 3e-6,
        "warmup_iterations": 4,
        "scheduler": "cosine",
        "epochs": 3,
        "iterations_per_epoch": 14,  # floor(7,500 / 512)
        "grad_steps": 672,
        "rollouts": 172_032,
        "accelerate": "deepspeed_zero2.yaml",
    },
    "qwen3_8b_dapo_math_17k": {
        "model": "Qwen/Qwen3-8B-Base",
        "dataset": "dapo_math_17k",
        "dataset_config": "all",  # the 17,398 distinct problems; the registry's default `en` has fewer
        "gpus": 8,
        "G": 16,
        "max_completion_length": 8192,
        "learning_rate": 1e-6,
        "warmup_iterations": 10,
        "scheduler": "constant_with_warmup",
        "epochs": 2,
        "iterations_per_epoch": 33,  # floor(17,398 / 512)
        "grad_steps": 1056,
        "rollouts": 540_672,
        "accelerate": "deepspeed_zero3.yaml",
    },
}
METHODS = {  # recipe prefix -> algorithm
    "grpo": "grpo",
    "rl_zvp": "rl_zvp",
    "grpo_ds_r": "grpo_ds",
    "grpo_ds_g": "grpo_ds",
    "greso_r": "greso",
    "greso_g": "greso",
    "erpo": "erpo_ds",  # ERPO as its paper trains it: on DAPO (dynamic sampling)
    "erpo_rl_zvp": "erpo_rl_zvp",
    "exgrpo": "exgrpo",
    "exgrpo_rl_zvp": "exgrpo_rl_zvp",
}
# The paper recipes: <method>_<setting>.yaml (the CPU recipes on SmolLM2 have their own tests/test_smollm2_recipe.py).
RECIPES = sorted(p for p in (REPO / "recipes").glob("*.yaml") if any(p.stem.endswith("_" + s) for s in SETTINGS))
PROMPTS_PER_ITERATION = 512
PROMPTS_PER_OPTIMIZER_STEP = 32
STEPS_PER_ITERATION = PROMPTS_PER_ITERATION // PROMPTS_PER_OPTIMIZER_STEP  # 16

# Tiny sizes for the smoke runs, given on the command line over the recipe (the YAML keeps its own values otherwise).
# generation_batch_size = 2 optimizer batches, so each generation is used for two optimizer steps, as the recipes'
# 512-prompt generation is used for 16.
SMOKE_ARGS = [
    "--num_generations", "4",
    "--generation_batch_size", "8",
    "--per_device_train_batch_size", "4",
    "--gradient_accumulation_steps", "1",
    "--max_completion_length", "12",
    "--max_steps", "2",
    "--use_vllm", "false",
    "--bf16", "false",
    "--gradient_checkpointing", "false",
    "--reward_funcs", "accuracy", "recipe_two_processes.mixed_reward",
    "--embedded_warmup_steps", "5",
    "--embedded_num_train_prompts", "32",
    "--embedded_num_eval_prompts", "0",
]  # fmt: skip


def as_the_recipe_says(args: list[str]) -> list[str]:
    """`args` without the fp32 overrides (`--bf16`, `--gradient_checkpointing` and their values): the recipe's own
    precision and gradient checkpointing apply."""
    dropped = {args.index(flag) + k for flag in ("--bf16", "--gradient_checkpointing") if flag in args for k in (0, 1)}
    return [arg for i, arg in enumerate(args) if i not in dropped]


def _split_name(path: Path) -> tuple[str, str]:
    stem = path.stem
    setting = next(s for s in SETTINGS if stem.endswith("_" + s))
    return stem[: -len(setting) - 1], setting


def _value(x):
    return getattr(x, "value", x)  # enums (lr_scheduler_type, save_strategy, ...) as their YAML string


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("ZVP_TRL_CACHE", str(tmp_path_factory.getbasetemp() / "zvp_cache"))


@pytest.fixture
def one_thread(monkeypatch):
    """The smoke runs on one intra-op thread: `main` raises a single CPU process to every core, which on shared cores
    (another job running) makes a tiny model's run 20x slower (threads spin waiting for each other)."""
    threads = torch.get_num_threads()
    monkeypatch.setattr(train_script, "_use_all_cores_on_single_cpu_process", lambda: None)
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _parse(recipe: Path, *extra: str):
    argv = ["--config", str(recipe), "--use_cpu", "true", *extra]  # use_cpu: bf16 needs it on a machine without GPU
    parser, algorithm, embedded = train_script.make_parser(argv)
    script_args, training_args, model_args = parser.parse_args_and_config(argv)
    return algorithm, embedded, script_args, training_args, model_args


def _smoke_yaml(recipe: Path, tmp_path: Path) -> Path:
    """The recipe without model and dataset, so the run uses the embedded task."""
    config = yaml.safe_load(recipe.read_text())
    for key in ("model_name_or_path", "dataset_name", "dataset_config"):
        config.pop(key, None)
    path = tmp_path / f"smoke_{recipe.name}"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.unit
def test_one_recipe_per_setting_and_method():
    assert RECIPES, "no recipes/*.yaml"
    expected = {f"{method}_{setting}.yaml" for method in METHODS for setting in SETTINGS}
    assert {path.name for path in RECIPES} == expected


@pytest.mark.unit
@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.stem)
def test_recipe_is_parsed_by_the_training_parser_with_every_key(recipe):
    config = yaml.safe_load(recipe.read_text())
    algorithm, embedded, *parsed = _parse(recipe)
    method, _ = _split_name(recipe)
    assert algorithm == config["algorithm"] == METHODS[method] and not embedded
    # Unknown keys would have raised; every key also lands in a field with the YAML's value and type.
    for key, value in config.items():
        holder = next(obj for obj in parsed if hasattr(obj, key))
        assert _value(getattr(holder, key)) == value, key


@pytest.mark.unit
@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.stem)
def test_recipe_maps_the_paper_hyperparameters(recipe, monkeypatch):
    method, setting = _split_name(recipe)
    paper = SETTINGS[setting]
    # Resolve the derived batch fields for the GPU count the recipe states, as GRPOConfig does at launch.
    monkeypatch.setattr(transformers.TrainingArguments, "world_size", property(lambda self: paper["gpus"]))
    algorithm, _, script_args, args, model_args = _parse(recipe)
    G = paper["G"]

    assert model_args.model_name_or_path == paper["model"] and script_args.dataset_name == paper["dataset"]
    assert script_args.dataset_config == paper["dataset_config"]
    assert script_args.reward_funcs == ["accuracy"]
    # Batch: 512 prompts x G per generation, 32 prompts x G per optimizer step -> 16 optimizer steps per generation.
    assert args.world_size == paper["gpus"]
    assert args.num_generations == G
    assert args.generation_batch_size == PROMPTS_PER_ITERATION * G
    global_step_batch = args.per_device_train_batch_size * paper["gpus"] * args.gradient_accumulation_steps
    assert global_step_batch == PROMPTS_PER_OPTIMIZER_STEP * G
    assert args.steps_per_generation == STEPS_PER_ITERATION * args.gradient_accumulation_steps
    assert args.num_iterations == 1
    # Steps and rollouts: epochs x iterations per epoch x 16 optimizer steps; Table 5's rollouts = iterations x 512 x G.
    assert (
        args.max_steps == paper["grad_steps"] == paper["epochs"] * paper["iterations_per_epoch"] * STEPS_PER_ITERATION
    )
    assert paper["rollouts"] == paper["grad_steps"] // STEPS_PER_ITERATION * PROMPTS_PER_ITERATION * G
    assert args.max_rollouts == (paper["rollouts"] if method.endswith("_r") else None)
    # Objective: clip-higher, token-level loss, no KL; ExGRPO runs its official setting: symmetric clip 0.2/0.2,
    # removed for fresh tokens in the mixed phase (loss_remove_clip), Dr.GRPO's constant normaliser.
    exgrpo = method.startswith("exgrpo")
    assert (args.epsilon, args.epsilon_high, args.beta) == ((0.2, 0.2, 0.0) if exgrpo else (0.2, 0.28, 0.0))
    if exgrpo:
        assert args.exgrpo_unclip_fresh is True
    assert args.loss_type == ("dr_grpo" if exgrpo else "dapo")
    assert args.scale_rewards == ("none" if exgrpo else "group")
    assert args.entropy_coef == (0.001 if exgrpo else 0.0)
    # Rollouts and optimizer.
    assert args.max_completion_length == paper["max_completion_length"]
    assert (args.temperature, args.top_p, args.top_k) == (1.0, 1.0, 0)
    assert args.learning_rate == paper["learning_rate"]
    assert _value(args.lr_scheduler_type) == paper["scheduler"]
    assert args.warmup_steps == paper["warmup_iterations"] * STEPS_PER_ITERATION  # verl steps its LR per iteration
    assert args.bf16 and args.gradient_checkpointing
    assert args.use_vllm and args.vllm_mode == "colocate"
    # Validation settings of Table 6 for --benchmark_eval (off by default).
    assert script_args.benchmark_eval == []
    assert (script_args.benchmark_eval_k, script_args.benchmark_eval_top_p) == (8, 0.7)
    assert script_args.benchmark_eval_steps == STEPS_PER_ITERATION
    # Method-specific values.
    if "rl_zvp" in method:
        assert args.zvp_alpha == 0.1 and args.zvp_use_positive and args.zvp_use_negative and args.zvp_entropy_scaling
    if method.startswith(("grpo_ds", "greso")) or algorithm == "erpo_ds":
        assert args.ds_oversample_factor == 1.0 and args.ds_max_generation_rounds == 0 and not args.ds_carry_over
        assert args.ds_fill_scope == "global"  # one batch for all processes, as verl
        assert (args.per_device_train_batch_size * args.steps_per_generation) % G == 0  # whole groups per process
    if method.startswith("greso"):
        assert (args.greso_p_easy, args.greso_p_hard, args.greso_delta_p) == (0.5, 0.5, 0.01)
        assert args.greso_easy_target == pytest.approx(1 / 12) and args.greso_hard_target == pytest.approx(1 / 6)
        # The official adaptive rounds: beta 1.25, at least a quarter of the batch, a short last round.
        assert args.greso_adaptive_rounds and args.greso_train_short_batch
        assert (args.greso_round_beta, args.greso_min_round_fraction) == (1.25, 0.25)
    if method.startswith("erpo"):
        # RA on with dynamic sampling (ERPO's two parts on DAPO); off with RL-ZVP, which shapes all-correct groups.
        ra = 0.1 if algorithm == "erpo_ds" else 0.0
        assert (args.erpo_temperature_step, args.erpo_max_temperature, args.erpo_ra_advantage) == (0.1, 1.5, ra)
    if exgrpo:
        assert (args.exgrpo_replay_ratio, args.exgrpo_shaping_beta, args.exgrpo_start_threshold) == (0.5, 0.1, 0.35)
        # The official code's bucket scale (N(k; G/2, 1)) and collection only in the mixed phase.
        assert (args.exgrpo_bucket_weighting, args.exgrpo_collect_during_warmup) == ("count", False)
        assert (args.per_device_train_batch_size * args.steps_per_generation) % G == 0
    # The header's launch line names this file and an existing accelerate config.
    header = recipe.read_text()
    assert f"recipes/{recipe.name}" in header and f"recipes/accelerate/{paper['accelerate']}" in header
    assert f"--num_processes {paper['gpus']}" in header


@pytest.mark.unit
@pytest.mark.parametrize("family", ["grpo_ds", "greso"])
@pytest.mark.parametrize("setting", list(SETTINGS))
def test_rollout_and_gradient_step_variants_differ_only_by_the_budget(family, setting):
    def load(variant):
        config = yaml.safe_load((REPO / "recipes" / f"{family}_{variant}_{setting}.yaml").read_text())
        return {k: v for k, v in config.items() if k not in ("output_dir", "run_name")}

    same_rollouts, same_steps = load("r"), load("g")
    assert same_rollouts.pop("max_rollouts") == SETTINGS[setting]["rollouts"]
    assert same_rollouts == same_steps


@pytest.mark.trainer
@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.stem)
def test_recipe_smoke_run_on_the_embedded_task(recipe, tmp_path, monkeypatch, one_thread):
    monkeypatch.syspath_prepend(str(HELPERS))
    config = _smoke_yaml(recipe, tmp_path)
    out = tmp_path / "out"
    # As the recipe says but model, data and size: its bf16 and gradient checkpointing (bf16 autocast on the CPU).
    written = yaml.safe_load(recipe.read_text())
    assert written["bf16"] is True and written["gradient_checkpointing"] is True
    summary = train_script.main(["--config", str(config), *as_the_recipe_says(SMOKE_ARGS), "--output_dir", str(out)])
    args = torch.load(out / "training_args.bin", weights_only=False)
    assert args.bf16 is True and args.gradient_checkpointing is True
    assert summary["algorithm"] == METHODS[_split_name(recipe)[0]] and summary["global_steps"] == 2
    assert summary["dataset"] == "embedded-arithmetic"
    assert summary["heldout_before"] is None  # embedded_num_eval_prompts=0 skips the before/after evaluation
    assert json.loads((out / "summary.json").read_text())["global_steps"] == 2
    history = json.loads((out / "trainer_state.json").read_text())["log_history"]
    assert len([entry for entry in history if "loss" in entry]) == 2


@pytest.mark.distributed
def test_recipe_trains_on_two_processes_with_accelerate_launch(tmp_path):
    """`accelerate launch --config_file recipes/accelerate/multi_gpu.yaml` with 2 processes (gloo on CPU): the
    recipe's per-device batch and generation batch are resolved for 2 processes (2 optimizer steps per generation)."""
    recipe = REPO / "recipes" / "rl_zvp_qwen3_1.7b_math.yaml"
    config = _smoke_yaml(recipe, tmp_path)
    out = tmp_path / "out"
    command = [sys.executable, "-m", "accelerate.commands.launch"]
    command += ["--config_file", str(REPO / "recipes" / "accelerate" / "multi_gpu.yaml"), "--num_processes", "2"]
    command += ["--mixed_precision", "no", str(REPO / "recipes" / "train.py"), "--config", str(config), *SMOKE_ARGS]
    command += ["--generation_batch_size", "16", "--max_steps", "4", "--logging_steps", "1", "--output_dir", str(out)]
    result = _run_launch(command, tmp_path / "probes")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    # From inside both processes: two processes that see each other, over gloo, in DDP on CPU.
    probes = _probes(tmp_path / "probes")
    assert [p["process_index"] for p in probes] == [0, 1]
    assert all(p["num_processes"] == p["world_size_env"] == 2 for p in probes)
    assert all(p["distributed_type"] == "MULTI_CPU" and p["backend"] == "gloo" for p in probes)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["algorithm"] == "rl_zvp" and summary["global_steps"] == 4
    assert summary["distributed"] == {"type": "MULTI_CPU", "num_processes": 2, "fsdp_version": None}
    history = json.loads((out / "trainer_state.json").read_text())["log_history"]
    # 16 completions per generation over 2 processes x 4 per device -> a new generation every 2 optimizer steps
    # (on one process it would be every 4).
    assert [entry["rollouts/total"] for entry in history if "loss" in entry] == [16, 16, 32, 32]


def _run_launch(command: list[str], probe_dir: Path, **env_overrides: str) -> subprocess.CompletedProcess:
    probe_dir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HELPERS), os.environ.get("PYTHONPATH", "")]))
    env.update(ZVP_TEST_PROBE_DIR=str(probe_dir), **env_overrides)
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def _probes(probe_dir: Path) -> list[dict]:
    """What each launched process's Accelerator ran (written by recipe_two_processes.mixed_reward), by index."""
    return [json.loads(path.read_text()) for path in sorted(probe_dir.glob("process*.json"))]


def _cpu_fsdp2_config(tmp_path: Path) -> Path:
    """recipes/accelerate/fsdp2.yaml for two CPU processes: use_cpu, no mixed precision, sharded state dicts."""
    config = yaml.safe_load((REPO / "recipes" / "accelerate" / "fsdp2.yaml").read_text())
    config.update(use_cpu=True, mixed_precision="no", num_processes=2)
    config["fsdp_config"]["fsdp_state_dict_type"] = "SHARDED_STATE_DICT"
    path = tmp_path / "fsdp2_cpu.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _fsdp2_recipe_launch(tmp_path: Path, out: Path, *extra: str) -> list[str]:
    config = _smoke_yaml(REPO / "recipes" / "rl_zvp_qwen3_1.7b_math.yaml", tmp_path)
    command = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(_cpu_fsdp2_config(tmp_path))]
    command += [str(REPO / "recipes" / "train.py"), "--config", str(config), *SMOKE_ARGS, "--save_steps", "1"]
    return command + ["--dynamics_plot", "false", "--output_dir", str(out), *extra]


@pytest.mark.distributed
def test_recipe_trains_under_fsdp2_on_two_cpu_processes(tmp_path):
    """`accelerate launch` with recipes/accelerate/fsdp2.yaml made for CPU: really FSDP2 in both processes (accelerate
    alone would run DDP), sharded checkpoints from both processes, and a full final model (which transformers'
    `save_model` would not write under SHARDED_STATE_DICT)."""
    out = tmp_path / "out"
    result = _run_launch(_fsdp2_recipe_launch(tmp_path, out), tmp_path / "probes")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    probes = _probes(tmp_path / "probes")
    assert [p["process_index"] for p in probes] == [0, 1]
    assert all(p["distributed_type"] == "FSDP" and p["fsdp_version"] == 2 for p in probes)
    assert all(p["num_processes"] == 2 and p["backend"] == "gloo" for p in probes)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["global_steps"] == 2
    assert summary["distributed"] == {"type": "FSDP", "num_processes": 2, "fsdp_version": 2}
    for part in ("pytorch_model_fsdp_0", "optimizer_0"):  # one shard file per process
        assert sorted(p.name for p in (out / "checkpoint-2" / part).glob("*.distcp")) == [
            "__0_0.distcp",
            "__1_0.distcp",
        ]
    assert not (out / "checkpoint-2" / "model.safetensors").exists()
    final = transformers.AutoModelForCausalLM.from_pretrained(out)  # the full model, gathered from the shards
    assert final.num_parameters() > 0


@pytest.mark.distributed
def test_recipe_refuses_a_silent_fsdp_downgrade_unless_allowed(tmp_path):
    """The FSDP2 launch with the CPU FSDP path turned off (as accelerate alone runs it: DDP) is refused with the cause
    and the fix; --allow_distributed_downgrade trains it as the DDP it is."""
    out = tmp_path / "out"
    result = _run_launch(_fsdp2_recipe_launch(tmp_path, out), tmp_path / "probes", ZVP_TRL_CPU_FSDP="0")
    assert result.returncode != 0
    error = result.stdout + result.stderr
    assert "DistributedDowngradeError" in error
    assert "the launch asks for FSDP2 but the Accelerator runs MULTI_CPU with 2 process(es)" in error
    assert "accelerate selects FSDP only on GPUs" in error and "--allow_distributed_downgrade true" in error
    assert not (out / "summary.json").exists() and not _probes(tmp_path / "probes")  # refused before training

    command = _fsdp2_recipe_launch(tmp_path, out, "--allow_distributed_downgrade", "true")
    result = _run_launch(command, tmp_path / "probes", ZVP_TRL_CPU_FSDP="0")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Training anyway (--allow_distributed_downgrade)" in result.stderr
    assert json.loads((out / "summary.json").read_text())["distributed"]["type"] == "MULTI_CPU"
    assert {p["distributed_type"] for p in _probes(tmp_path / "probes")} == {"MULTI_CPU"}


@pytest.mark.distributed
def test_recipe_refuses_processes_that_do_not_see_each_other(tmp_path):
    """Two processes launched, but without --use_cpu on a machine without GPUs each Accelerator sees one process
    (DistributedType.NO): refused before training."""
    if torch.cuda.is_available():
        pytest.skip("needs a machine without GPUs")
    config = _smoke_yaml(REPO / "recipes" / "rl_zvp_qwen3_1.7b_math.yaml", tmp_path)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    command += [str(REPO / "recipes" / "train.py"), "--config", str(config), *SMOKE_ARGS, "--use_cpu", "false"]
    command += ["--output_dir", str(tmp_path / "out")]
    result = _run_launch(command, tmp_path / "probes")
    assert result.returncode != 0
    error = result.stdout + result.stderr
    assert "the launcher started 2 processes but the Accelerator of each sees 1 (it runs NO" in error
    assert "pass --use_cpu true" in error
    assert not _probes(tmp_path / "probes")


class _FakeAccelerator:
    def __init__(self, distributed_type: str, num_processes: int, device: str = "cpu"):
        from accelerate.utils import DistributedType

        self.distributed_type = DistributedType(distributed_type)
        self.num_processes, self.process_index, self.device = num_processes, 0, torch.device(device)


@pytest.mark.unit
@pytest.mark.parametrize(
    "request_kwargs, accelerator, expected",
    [
        ({"deepspeed": True}, ("MULTI_CPU", 2), "asks for DeepSpeed but the Accelerator runs MULTI_CPU with 2 "
         "process(es): accelerate ignores DeepSpeed on CPU processes"),
        ({"deepspeed": True}, ("DEEPSPEED", 1), "the launcher started 2 processes but the Accelerator of each sees 1"),
        ({"fsdp": True}, ("MULTI_GPU", 2, "cuda"), "asks for FSDP2 but the Accelerator runs MULTI_GPU with 2 process(es): "
         "the Accelerator was built without the FSDP plugin"),
    ],
)  # fmt: skip
def test_check_distributed_mode_names_the_downgrade(request_kwargs, accelerator, expected):
    request = train_script.DistributedRequest(
        **{"fsdp": False, "fsdp_version": 2, "deepspeed": False, "launched_processes": 2, **request_kwargs}
    )
    with pytest.raises(train_script.DistributedDowngradeError, match=re.escape(expected)):
        train_script.check_distributed_mode(_FakeAccelerator(*accelerator), request)
    with pytest.warns(UserWarning, match=re.escape(expected)):
        problems = train_script.check_distributed_mode(_FakeAccelerator(*accelerator), request, allow_downgrade=True)
    assert len(problems) == 1


@pytest.mark.unit
def test_check_distributed_mode_accepts_what_was_asked():
    request = train_script.DistributedRequest(fsdp=True, fsdp_version=2, deepspeed=False, launched_processes=2)
    assert train_script.check_distributed_mode(_FakeAccelerator("FSDP", 2), request) == []
    single = train_script.DistributedRequest(fsdp=False, fsdp_version=1, deepspeed=False, launched_processes=1)
    assert train_script.check_distributed_mode(_FakeAccelerator("NO", 1), single) == []


# ---------------------------------------------------------------------------------------------------------------------
# Accelerate configs
# ---------------------------------------------------------------------------------------------------------------------

REQUIRED_ACCELERATE_KEYS = {
    "compute_environment",
    "distributed_type",
    "mixed_precision",
    "num_machines",
    "num_processes",
    "machine_rank",
}
EXPECTED_TYPES = {
    "single_gpu.yaml": "NO",
    "multi_gpu.yaml": "MULTI_GPU",
    "deepspeed_zero2.yaml": "DEEPSPEED",
    "deepspeed_zero3.yaml": "DEEPSPEED",
    "fsdp2.yaml": "FSDP",
}


def _validated_launch_args(path: Path, *flags: str):
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser

    args = launch_command_parser().parse_args(["--config_file", str(path), *flags, "recipes/train.py"])
    return _validate_launch_command(args)


@pytest.mark.unit
def test_accelerate_config_set():
    assert {path.name for path in ACCELERATE_CONFIGS} == set(EXPECTED_TYPES)


@pytest.mark.unit
@pytest.mark.parametrize("path", ACCELERATE_CONFIGS, ids=lambda p: p.stem)
def test_accelerate_config_is_valid_for_accelerate_launch(path):
    from accelerate.commands.config.config_args import ClusterConfig
    from accelerate.commands.launch import launch_command_parser

    raw = yaml.safe_load(path.read_text())
    assert REQUIRED_ACCELERATE_KEYS <= set(raw)
    assert raw["distributed_type"] == EXPECTED_TYPES[path.name] and raw["mixed_precision"] == "bf16"
    ClusterConfig.from_yaml_file(str(path))  # raises on unknown top-level keys and bad enum values
    # Nested deepspeed_config / fsdp_config keys become `accelerate launch` arguments: each must be one.
    launch_flags = {action.dest for action in launch_command_parser()._actions}
    for section in ("deepspeed_config", "fsdp_config"):
        assert set(raw.get(section) or {}) <= launch_flags, section
    args, defaults, _ = _validated_launch_args(path)
    assert args.num_processes == raw["num_processes"] and args.mixed_precision == "bf16"
    assert args.use_deepspeed == (raw["distributed_type"] == "DEEPSPEED")
    assert args.use_fsdp == (raw["distributed_type"] == "FSDP")
    if raw["distributed_type"] == "DEEPSPEED":
        # DeepSpeed must take gradient accumulation and clipping from the recipe (TrainingArguments), not from here.
        assert not {"gradient_accumulation_steps", "gradient_clipping"} & set(raw["deepspeed_config"])


@pytest.mark.unit
@pytest.mark.parametrize("name", ["multi_gpu.yaml", "fsdp2.yaml", "deepspeed_zero2.yaml", "deepspeed_zero3.yaml"])
def test_accelerate_config_takes_the_multi_node_flags(name, monkeypatch):
    from accelerate.utils.launch import prepare_deepspeed_cmd_env, prepare_multi_gpu_env

    monkeypatch.setattr("accelerate.utils.launch.is_port_in_use", lambda port: False)
    flags = ["--num_machines", "2", "--machine_rank", "1", "--num_processes", "16"]
    flags += ["--main_process_ip", "10.0.0.1", "--main_process_port", "29500"]
    args, defaults, from_config = _validated_launch_args(REPO / "recipes" / "accelerate" / name, *flags)
    assert (args.num_machines, args.machine_rank, args.num_processes) == (2, 1, 16)
    if args.use_deepspeed:
        args.deepspeed_fields_from_accelerate_config = ",".join(defaults.deepspeed_config)  # as `launch_command`
        _, env = prepare_deepspeed_cmd_env(args)
        stage = str(defaults.deepspeed_config["zero_stage"])
        assert env["ACCELERATE_USE_DEEPSPEED"] == "true" and env["ACCELERATE_DEEPSPEED_ZERO_STAGE"] == stage
    else:
        env = prepare_multi_gpu_env(args)
    # torchrun arguments of this node (deepspeed_multinode_launcher: standard runs torchrun on every node).
    assert (args.nnodes, args.node_rank, args.nproc_per_node) == ("2", 1, "8")
    assert env["ACCELERATE_MIXED_PRECISION"] == "bf16"


@pytest.mark.unit
def test_fsdp2_config_builds_an_fsdp2_plugin(monkeypatch):
    from accelerate.utils import FullyShardedDataParallelPlugin
    from accelerate.utils.launch import prepare_multi_gpu_env

    args, _, _ = _validated_launch_args(REPO / "recipes" / "accelerate" / "fsdp2.yaml")
    for key, value in prepare_multi_gpu_env(args).items():
        monkeypatch.setenv(key, value)
    plugin = FullyShardedDataParallelPlugin()  # reads the FSDP_* variables; FSDP1-only options would raise or warn
    assert plugin.fsdp_version == 2 and plugin.reshard_after_forward is True
    assert plugin.sync_module_states is None and plugin.use_orig_params is None
    assert _value(plugin.state_dict_type) == "FULL_STATE_DICT" or "FULL_STATE_DICT" in str(plugin.state_dict_type)


@pytest.mark.unit
def test_readme_names_existing_files():
    readme = (REPO / "recipes" / "README.md").read_text()
    named = set(re.findall(r"recipes/(?:accelerate/)?[\w.]+\.(?:yaml|py)", readme))
    assert named, "the README names no recipe"
    missing = sorted(name for name in named if not (REPO / name).is_file())
    assert not missing, missing
    for recipe in RECIPES:
        assert recipe.name in readme, recipe.name


@pytest.mark.unit
def test_readme_table_of_differences_from_the_official_code():
    readme = (REPO / "recipes" / "README.md").read_text()
    section = readme.split("## Where we differ from the official code, and why", 1)[1].split("\n## ", 1)[0]
    rows = [line.split("|")[1:-1] for line in section.splitlines() if re.match(r"\| \d+ \|", line)]
    assert [int(row[0]) for row in rows] == list(range(1, 10))  # every item of the review, in order
    status = {int(row[0]): row[-1].strip() for row in rows}
    assert all(s.startswith(("fixed", "not yet")) for s in status.values()), status
    assert {n for n, s in status.items() if s == "not yet"} == set()
