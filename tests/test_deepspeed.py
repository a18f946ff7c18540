# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""DeepSpeed for real: every registered trainer under accelerate's DeepSpeed integration, ZeRO-2 and ZeRO-3, on two CPU
processes over gloo (`zvp_trl.launch.cpu_deepspeed`; accelerate alone runs a DeepSpeed launch on CPU as DDP);
checkpoint + SIGKILL + resume under ZeRO-3 and the refusal of a checkpoint that lacks a process's shard; LoRA under
ZeRO-3; and every paper recipe launched through `recipes/train.py` as its header says, with a CPU copy of the
accelerate file it names (recipes/accelerate/deepspeed_zero2.yaml or deepspeed_zero3.yaml, bf16).

The trainer runs are the two-process runs of tests/test_two_processes.py (same script, reward design and checks) with
`--deepspeed STAGE`; their first optimizer step is compared with the DDP run of the same seed."""

import json
import os
import re
import shutil
from pathlib import Path

import pytest
import torch
import transformers
import yaml
from safetensors.torch import load_file
from test_fsdp2 import EXGRPO, check_only_the_adapters_trained, first_step, lora_run, torchrun
from test_recipes import (
    METHODS,
    RECIPES,
    REPO,
    SMOKE_ARGS,
    _probes,
    _run_launch,
    _smoke_yaml,
    _split_name,
    as_the_recipe_says,
)
from test_resume import log_after, same_floats, state
from test_two_processes import WORLD, check_run

from zvp_trl.core.checkpoints import check_deepspeed_checkpoint, deepspeed_shard_ranks
from zvp_trl.core.composition import ALGORITHMS
from zvp_trl.launch import cpu_deepspeed, cpu_fsdp


@pytest.mark.distributed
@pytest.mark.parametrize("zero_stage", [2, 3])
@pytest.mark.parametrize("algorithm", list(ALGORITHMS))
def test_every_trainer_under_deepspeed_on_two_cpu_processes(every_trainer_run, tmp_path, algorithm, zero_stage):
    ranks = every_trainer_run(algorithm, zero_stage=zero_stage)
    # What the processes ran, from inside: accelerate's DeepSpeed integration over gloo, two processes, the stage asked.
    assert [r["rank"] for r in ranks] == [0, 1] and all(r["world_size"] == WORLD for r in ranks)
    assert all(r["distributed_type"] == "DEEPSPEED" and r["is_deepspeed"] and r["backend"] == "gloo" for r in ranks)
    params = [r["parameters"] for r in ranks]
    assert all(p["model_class"] == "DeepSpeedEngine" and p["zero_stage"] == zero_stage for p in params)
    assert all(p["num_params"] > 0 and p["global_numel"] > 0 for p in params)
    if zero_stage == 3:
        # Every parameter partitioned; each process holds a part, the parts make the whole (3288 elements: no padding
        # at this size, each tensor's numel is even).
        assert all(p["num_partitioned"] == p["num_params"] for p in params)
        assert all(0 < p["local_numel"] < p["global_numel"] for p in params)
        assert params[0]["local_numel"] + params[1]["local_numel"] == params[0]["global_numel"]
    else:
        # ZeRO-2 partitions gradients and optimizer state only: every process holds the whole model.
        assert all(p["num_partitioned"] == 0 and p["local_numel"] == p["global_numel"] for p in params)
    # ExGRPO takes its collective-forwards path under ZeRO-3 only (the run finished: no hang).
    collective = True if algorithm in EXGRPO and zero_stage == 3 else False if algorithm in EXGRPO else None
    assert all(r["exgrpo_collective_forwards"] is collective for r in ranks)
    # The same whole-group decisions and identical per-prompt state on both processes as under DDP.
    check_run(ranks, tmp_path)

    ddp = every_trainer_run(algorithm)
    assert all(r["distributed_type"] == "MULTI_CPU" and not r["is_deepspeed"] for r in ddp)
    # First optimizer step: same prompts, rewards, advantages and per-prompt state as the DDP run of the same seed.
    for deepspeed_rank, ddp_rank in zip(ranks, ddp):
        assert first_step(deepspeed_rank)["rounds"] and first_step(deepspeed_rank)["batches"]
        assert first_step(deepspeed_rank) == first_step(ddp_rank)


@pytest.mark.distributed
@pytest.mark.parametrize("zero_stage", [2, 3])
@pytest.mark.parametrize("algorithm", list(ALGORITHMS))
def test_every_trainer_under_deepspeed_in_bf16_on_two_cpu_processes(
    every_trainer_run, tmp_path, algorithm, zero_stage
):
    """The recipes' precision: DeepSpeed's bf16 mode (bf16 weights and gradients, fp32 optimizer state) at both
    stages, for every trainer; the same whole-group decisions and per-prompt state on both processes."""
    ranks = every_trainer_run(algorithm, zero_stage=zero_stage, bf16=True)
    assert all(r["distributed_type"] == "DEEPSPEED" and r["backend"] == "gloo" for r in ranks)
    params = [r["parameters"] for r in ranks]
    assert all(p["zero_stage"] == zero_stage and p["bf16"] and p["param_dtype"] == "torch.bfloat16" for p in params)
    check_run(ranks, tmp_path)


@pytest.mark.slow
@pytest.mark.trainer
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_zero3_killed_mid_step_resumes_to_the_uninterrupted_run(tiny_model_path, tmp_path, precision):
    """ExGRPO (the most stateful trainer, collective forwards) under ZeRO-3, in fp32 and in DeepSpeed's bf16 mode:
    SIGKILLed while scoring step 3, resumed from checkpoint-2 (DeepSpeed's global_step2/ with one shard per process,
    zvp_state.json), it ends with the uninterrupted run's per-prompt state, logs and weights. Then a copy of
    checkpoint-2 without process 1's shard is refused on both processes with the missing file named, before DeepSpeed
    loads anything."""
    run, reference = tmp_path / "run", tmp_path / "reference"
    common = ["--algorithm", "exgrpo", "--model", tiny_model_path, "--max_steps", "4", "--deepspeed", "3"]
    common += ["--bf16"] if precision == "bf16" else []
    optim = "bf16_" if precision == "bf16" else ""  # DeepSpeed's bf16 optimizer names its shards so
    killed = torchrun("resume_run.py", *common, "--output_dir", str(run), "--kill_at", "3", "--kill_in", "generation")
    assert killed.returncode != 0 and "Signal 9 (SIGKILL)" in killed.stderr, killed.stderr[-3000:]
    assert sorted(p.name for p in run.glob("checkpoint-*")) == ["checkpoint-1", "checkpoint-2"]
    resumed = torchrun("resume_run.py", *common, "--output_dir", str(run), "--resume", "--reference", str(reference))
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]

    for folder in (run, reference):  # DeepSpeed's layout: one ZeRO-3 shard of weights and of optimizer per process
        checkpoint = folder / "checkpoint-4"
        assert (checkpoint / "latest").read_text().strip() == "global_step4"
        assert sorted(p.name for p in (checkpoint / "global_step4").iterdir()) == sorted(
            f"{optim if kind == 'optim' else ''}zero_pp_rank_{r}_mp_rank_00_{kind}_states.pt"
            for r in range(WORLD)
            for kind in ("model", "optim")
        )
        assert (checkpoint / "model.safetensors").is_file()  # gathered (stage3_gather_16bit_weights_on_model_save)
    assert state(run / "checkpoint-2") == state(reference / "checkpoint-2")
    final = state(run / "checkpoint-4")
    assert final == state(reference / "checkpoint-4") and final != state(reference / "checkpoint-2")
    assert final["exgrpo_phase"]["draws"] > 0  # replays happened after the resume point
    resumed_logs = log_after(run / "checkpoint-4", 2)
    assert len(resumed_logs) == 2 and same_floats(resumed_logs, log_after(reference / "checkpoint-4", 2))
    weights, expected = (load_file(f / "checkpoint-4" / "model.safetensors") for f in (run, reference))
    start = load_file(reference / "checkpoint-2" / "model.safetensors")
    model_shapes = {k: tuple(v.shape) for k, v in load_file(Path(tiny_model_path) / "model.safetensors").items()}
    assert {k: tuple(v.shape) for k, v in weights.items()} == model_shapes  # whole tensors, not ZeRO-3 placeholders
    assert all(torch.equal(weights[k], expected[k]) for k in expected)
    assert not all(torch.equal(weights[k], start[k]) for k in expected)  # the weights moved after the resume point

    # A checkpoint that lost process 1's shard: refused on every process, naming what is missing (no hang).
    broken = tmp_path / "broken"
    shutil.copytree(reference, broken)
    for name in [p.name for p in broken.glob("checkpoint-*")]:
        if name != "checkpoint-2":
            shutil.rmtree(broken / name)
    (broken / "checkpoint-2" / "global_step2" / f"{optim}zero_pp_rank_1_mp_rank_00_optim_states.pt").unlink()
    refused = torchrun("resume_run.py", *common, "--output_dir", str(broken), "--resume", timeout=120)
    assert refused.returncode != 0
    error = refused.stdout + refused.stderr
    assert (
        "holds ZeRO optim shards of data-parallel processes [0], but this run has 2 data-parallel processes" in error
    )
    assert f"no optim shard of data-parallel process(es) 1 ({optim}zero_pp_rank_1_mp_rank_00_optim_states.pt)" in error
    # Both processes refused it themselves: each one's traceback ends in the error.
    assert error.count(f"ValueError: {broken / 'checkpoint-2' / 'global_step2'} holds ZeRO optim shards") == WORLD


def _shard_files(folder: Path, names: list[str], tag: str = "global_step7", latest: bool = True) -> Path:
    (folder / tag).mkdir(parents=True)
    if latest:
        (folder / "latest").write_text(tag)
    for name in names:
        (folder / tag / name).write_bytes(b"")
    return folder


def _zero3(dp: int, mp: int = 1) -> list[str]:
    kinds = ("model", "optim")
    return [f"zero_pp_rank_{r}_mp_rank_{m:02d}_{k}_states.pt" for r in range(dp) for m in range(mp) for k in kinds]


@pytest.mark.unit
def test_check_deepspeed_checkpoint_reads_the_shards_of_every_process(tmp_path):
    checkpoint = _shard_files(tmp_path / "zero3", _zero3(2))
    found = deepspeed_shard_ranks(str(checkpoint))
    assert found.folder == str(checkpoint / "global_step7") and found.whole_models == set()
    assert found.shards == {"optim": {(0, 0), (1, 0)}, "model": {(0, 0), (1, 0)}}
    check_deepspeed_checkpoint(str(checkpoint), 2)  # complete: accepted
    # ZeRO-2: one unpartitioned model file, optimizer shards per process (bf16 runs prefix them with bf16_).
    zero2 = ["mp_rank_00_model_states.pt", "bf16_zero_pp_rank_0_mp_rank_00_optim_states.pt"]
    checkpoint = _shard_files(tmp_path / "zero2", [*zero2, "bf16_zero_pp_rank_1_mp_rank_00_optim_states.pt"])
    check_deepspeed_checkpoint(str(checkpoint), 2)
    expected = (
        "optim shards of data-parallel processes [0, 1], but this run has 4 data-parallel processes (4 in all): no "
        "optim shard of data-parallel process(es) 2, 3 (bf16_zero_pp_rank_2_mp_rank_00_optim_states.pt, "
        "bf16_zero_pp_rank_3_mp_rank_00_optim_states.pt)"
    )
    with pytest.raises(ValueError, match=re.escape(expected)):
        check_deepspeed_checkpoint(str(checkpoint), 4)
    zero3 = _zero3(2)
    checkpoint = _shard_files(tmp_path / "missing_model", [n for n in zero3 if n != zero3[0]])
    expected = "no model shard of data-parallel process(es) 0 (zero_pp_rank_0_mp_rank_00_model_states.pt)"
    with pytest.raises(ValueError, match=r"model shards of data-parallel processes \[1\].*" + re.escape(expected)):
        check_deepspeed_checkpoint(str(checkpoint), 2)
    with pytest.raises(ValueError, match=r"beyond the 1 running"):
        check_deepspeed_checkpoint(str(_shard_files(tmp_path / "more", zero3)), 1)
    # ZeRO-3 whose model shards are all gone: no model state at all.
    only_optim = [n for n in zero3 if "optim" in n]
    with pytest.raises(ValueError, match="ZeRO optimizer shards but no model state"):
        check_deepspeed_checkpoint(str(_shard_files(tmp_path / "only_optim", only_optim)), 2)
    # ZeRO-0: the whole state in one file per model-parallel rank, nothing per process.
    check_deepspeed_checkpoint(str(_shard_files(tmp_path / "zero0", ["mp_rank_00_model_states.pt"])), 2)
    with pytest.raises(ValueError, match="neither ZeRO shards nor a model state file"):
        check_deepspeed_checkpoint(str(_shard_files(tmp_path / "empty", [])), 2)
    # AutoTP: 2-way model parallelism on 4 processes = 2 data-parallel ranks x 2 model-parallel ranks.
    check_deepspeed_checkpoint(str(_shard_files(tmp_path / "tp", _zero3(2, mp=2))), 4)
    tp = [n for n in _zero3(2, mp=2) if n != "zero_pp_rank_1_mp_rank_01_optim_states.pt"]
    with pytest.raises(ValueError, match=r"\(zero_pp_rank_1_mp_rank_01_optim_states.pt\)"):
        check_deepspeed_checkpoint(str(_shard_files(tmp_path / "tp_missing", tp)), 4)
    with pytest.raises(ValueError, match="2-way model parallelism, which does not divide the 3 processes"):
        check_deepspeed_checkpoint(str(tmp_path / "tp"), 3)
    # A universal checkpoint is resharded by DeepSpeed onto any process count: not checked per process.
    check_deepspeed_checkpoint(str(tmp_path / "more"), 1, universal=True)
    # Without a `latest` file, the highest step by number (global_step10 after global_step9).
    several = tmp_path / "several"
    _shard_files(several, _zero3(1), tag="global_step9", latest=False)
    _shard_files(several, _zero3(2), tag="global_step10", latest=False)
    assert deepspeed_shard_ranks(str(several)).folder == str(several / "global_step10")
    # `latest` naming a folder that is not there; no DeepSpeed folder; no checkpoint.
    (tmp_path / "dangling").mkdir()
    (tmp_path / "dangling" / "latest").write_text("global_step3")
    (tmp_path / "plain").mkdir()
    for folder in ("dangling", "plain"):
        with pytest.raises(ValueError, match=r"has no DeepSpeed global_step\* folder"):
            check_deepspeed_checkpoint(str(tmp_path / folder), 2)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        check_deepspeed_checkpoint(str(tmp_path / "nowhere"), 2)


@pytest.mark.trainer
def test_lora_under_zero3_trains_only_the_adapters(tiny_model_path, tmp_path):
    ranks = lora_run(tiny_model_path, tmp_path, "zero3")
    assert all(r["distributed_type"] == "DEEPSPEED" and r["model_class"] == "DeepSpeedEngine" for r in ranks)
    assert all(r["zero_stage"] == 3 for r in ranks)
    check_only_the_adapters_trained(ranks)
    # Each process holds its part of every parameter; together at least the whole (ZeRO-3 pads a partition to equal
    # sizes).
    for name, param in ranks[0]["params"].items():
        parts = [r["params"][name]["local_numel"] for r in ranks]
        assert all(0 < n < param["numel"] for n in parts) or param["numel"] == 1, name
        assert sum(parts) >= param["numel"], name


def _cpu_deepspeed_config(tmp_path: Path, stage: int, mixed_precision: str | None = None) -> Path:
    """recipes/accelerate/deepspeed_zero{stage}.yaml for two CPU processes: only use_cpu and num_processes changed
    (and mixed_precision, when given; the files say bf16)."""
    config = yaml.safe_load((REPO / "recipes" / "accelerate" / f"deepspeed_zero{stage}.yaml").read_text())
    config.update(use_cpu=True, num_processes=2, **({"mixed_precision": mixed_precision} if mixed_precision else {}))
    path = tmp_path / f"deepspeed_zero{stage}_cpu.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


RL_ZVP_RECIPE = REPO / "recipes" / "rl_zvp_qwen3_1.7b_math.yaml"


def header_stage(recipe: Path) -> int:
    """The ZeRO stage of the accelerate file that the recipe's header launches it with."""
    (name,) = re.findall(r"--config_file recipes/accelerate/(deepspeed_zero(\d)\.yaml)", recipe.read_text())
    return int(name[1])


def _deepspeed_recipe_launch(
    tmp_path: Path,
    out: Path,
    stage: int,
    *extra: str,
    mixed_precision: str | None = None,
    recipe: Path = RL_ZVP_RECIPE,
) -> list[str]:
    """The recipe launched as written but model, data and size: its bf16 and gradient checkpointing, the accelerate
    file's bf16 (the smoke arguments' fp32 overrides dropped)."""
    config = _smoke_yaml(recipe, tmp_path)
    accelerate_config = _cpu_deepspeed_config(tmp_path, stage, mixed_precision)
    smoke = as_the_recipe_says(SMOKE_ARGS)
    command = ["accelerate.commands.launch", "--config_file", str(accelerate_config)]
    command += [str(REPO / "recipes" / "train.py"), "--config", str(config), *smoke, "--save_steps", "1"]
    return [os.sys.executable, "-m", *command, "--dynamics_plot", "false", "--output_dir", str(out), *extra]


# accelerate promotes the CPU processes to DeepSpeed itself when only the training arguments say use_cpu (the launch of
# the recipes' configs); with ACCELERATE_USE_CPU=true it would run them as DDP, and zvp_trl.launch.cpu_deepspeed does.
# Every paper recipe at the stage its header names; the RL-ZVP recipe once more on a CPU state.
LAUNCHES = {recipe.stem: (recipe, {}) for recipe in RECIPES}
LAUNCHES["rl_zvp_qwen3_1.7b_math-zero3_cpu_state"] = (RL_ZVP_RECIPE, {"ACCELERATE_USE_CPU": "true"})


@pytest.mark.unit
def test_every_paper_recipe_names_a_deepspeed_stage():
    stages = {recipe.stem: header_stage(recipe) for recipe in RECIPES}
    assert len(stages) == 20 and set(stages.values()) == {2, 3}
    assert all(stage == (2 if "1.7b" in name else 3) for name, stage in stages.items())


@pytest.mark.distributed
@pytest.mark.parametrize("launch", list(LAUNCHES))
def test_recipe_trains_under_the_deepspeed_config_its_header_names(tmp_path, launch):
    """`accelerate launch --config_file <CPU copy of the accelerate file the recipe's header names> recipes/train.py
    --config <the recipe>` for every paper recipe, as written but model, data and size (the recipe's bf16 and gradient
    checkpointing, the accelerate file's bf16 and ZeRO stage): really DeepSpeed at that stage in both processes, one
    ZeRO shard per process in the checkpoints, and a final model that transformers loads whole (under ZeRO-3:
    gathered, the config's zero3_save_16bit_model)."""
    recipe, env = LAUNCHES[launch]
    stage = header_stage(recipe)
    out = tmp_path / "out"
    result = _run_launch(_deepspeed_recipe_launch(tmp_path, out, stage, recipe=recipe), tmp_path / "probes", **env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "[zvp_trl] DeepSpeed on CPU processes (gloo)" in result.stdout
    assert "deepspeed_shm_comm" not in result.stdout + result.stderr  # no op built
    probes = _probes(tmp_path / "probes")
    assert [p["process_index"] for p in probes] == [0, 1]
    assert all(p["distributed_type"] == "DEEPSPEED" and p["zero_stage"] == stage for p in probes)
    assert all(p["num_processes"] == 2 and p["backend"] == "gloo" for p in probes)
    assert all(p["deepspeed_promoted_by_zvp_trl"] is bool(env) for p in probes)
    # In bf16, as the accelerate file and the recipe say: DeepSpeed's bf16 mode, with gradient checkpointing.
    assert all(p["mixed_precision"] == "bf16" and p["deepspeed_bf16"] is True for p in probes)
    args = torch.load(out / "training_args.bin", weights_only=False)
    assert args.bf16 is True and args.gradient_checkpointing is True
    summary = json.loads((out / "summary.json").read_text())
    assert summary["algorithm"] == METHODS[_split_name(recipe)[0]]
    assert summary["global_steps"] == 2 and summary["dataset"] == "embedded-arithmetic"
    assert summary["distributed"] == {"type": "DEEPSPEED", "num_processes": 2, "fsdp_version": None}
    history = json.loads((out / "trainer_state.json").read_text())["log_history"]
    assert len([entry for entry in history if "loss" in entry]) == 2
    shards = sorted(p.name for p in (out / "checkpoint-2" / "global_step2").iterdir())
    optim = [f"bf16_zero_pp_rank_{r}_mp_rank_00_optim_states.pt" for r in range(2)]  # the bf16 optimizer's shards
    model = (
        [f"zero_pp_rank_{r}_mp_rank_00_model_states.pt" for r in range(2)]
        if stage == 3
        else ["mp_rank_00_model_states.pt"]
    )
    assert shards == sorted(optim + model)
    final = transformers.AutoModelForCausalLM.from_pretrained(out)
    saved = load_file(out / "model.safetensors")
    shapes = {
        k: tuple(v.shape) for k, v in transformers.AutoModelForCausalLM.from_config(final.config).state_dict().items()
    }
    assert saved and {k: tuple(v.shape) for k, v in saved.items()}.items() <= shapes.items()  # whole tensors
    # The final model is the last checkpoint's model, whole.
    last = load_file(out / "checkpoint-2" / "model.safetensors")
    assert saved.keys() == last.keys() and all(torch.equal(saved[k], last[k]) for k in saved)


@pytest.mark.distributed
def test_recipe_refuses_a_silent_deepspeed_downgrade(tmp_path):
    """The ZeRO-3 launch on a CPU state with the CPU DeepSpeed path turned off (as accelerate alone runs it: DDP) is
    refused before training, with the cause and the fix."""
    out = tmp_path / "out"
    env = {"ACCELERATE_USE_CPU": "true", "ZVP_TRL_CPU_DEEPSPEED": "0"}
    result = _run_launch(_deepspeed_recipe_launch(tmp_path, out, 3), tmp_path / "probes", **env)
    assert result.returncode != 0
    error = result.stdout + result.stderr
    assert "DistributedDowngradeError" in error
    assert "the launch asks for DeepSpeed but the Accelerator runs MULTI_CPU with 2 process(es)" in error
    assert "ZVP_TRL_CPU_DEEPSPEED=0" in error and "--allow_distributed_downgrade true" in error
    assert "deepspeed_shm_comm" not in error  # no op compiled on the way to the refusal
    assert not (out / "summary.json").exists() and not _probes(tmp_path / "probes")


@pytest.mark.distributed
@pytest.mark.parametrize("cpu_state", [False, True], ids=["promoted_by_accelerate", "promoted_by_zvp_trl"])
def test_recipe_refuses_fp16_deepspeed_on_cpu(tmp_path, cpu_state):
    """fp16 asked for (the accelerate file's mixed_precision, --fp16 true), which has not been run on CPU processes:
    refused before training, naming the setting, on both paths to DeepSpeed (accelerate's own promotion: DeepSpeed's
    config enables fp16; zvp_trl's, on a CPU state: the Accelerator's mixed precision)."""
    out = tmp_path / "out"
    command = _deepspeed_recipe_launch(tmp_path, out, 2, "--bf16", "false", "--fp16", "true", mixed_precision="fp16")
    result = _run_launch(command, tmp_path / "probes", **({"ACCELERATE_USE_CPU": "true"} if cpu_state else {}))
    assert result.returncode != 0
    error = result.stdout + result.stderr
    if cpu_state:
        assert "runs fp32 or bf16, but mixed precision is 'fp16'" in error, error[-3000:]
    else:
        assert "runs fp32 or bf16, but the DeepSpeed config enables fp16" in error, error[-3000:]
    assert not (out / "summary.json").exists() and not _probes(tmp_path / "probes")


@pytest.mark.unit
def test_enable_cpu_deepspeed_refuses_where_it_must_not_act(monkeypatch):
    monkeypatch.setattr(cpu_fsdp, "accelerator_device_visible", lambda: "CUDA")
    with pytest.raises(RuntimeError, match="CPU-only workaround, but a CUDA device is visible"):
        cpu_deepspeed.enable_cpu_deepspeed()
    monkeypatch.setattr(cpu_fsdp, "accelerator_device_visible", lambda: None)
    monkeypatch.setenv("DS_ACCELERATOR", "cuda")
    with pytest.raises(RuntimeError, match="needs DS_ACCELERATOR=cpu, but it is 'cuda'"):
        cpu_deepspeed.enable_cpu_deepspeed()
    assert not cpu_deepspeed.cpu_deepspeed_enabled()


class _Plugin:
    def __init__(self, config):
        self.deepspeed_config = config


@pytest.mark.unit
def test_cpu_deepspeed_refuses_an_fp16_config_and_runs_bf16():
    with pytest.raises(ValueError, match="runs fp32 or bf16, but the DeepSpeed config enables fp16"):
        cpu_deepspeed._check_precision(_Plugin({"fp16": {"enabled": True}}))
    for config in ({"fp16": {"enabled": "auto"}}, {"bf16": {"enabled": True}}, {"bf16": {"enabled": "auto"}}, {}):
        cpu_deepspeed._check_precision(_Plugin({**config, "zero_optimization": {"stage": 3}}))  # accepted
