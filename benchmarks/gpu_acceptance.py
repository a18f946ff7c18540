# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""GPU acceptance run: what the paper recipes do on a GPU (bf16 autocast over float32 weights, gradient checkpointing),
for every algorithm, in one command that prints one PASS / FAIL line per check and exits 1 if any failed.

    python benchmarks/gpu_acceptance.py                 # on one GPU: a few minutes
    python benchmarks/gpu_acceptance.py --device cpu    # the same checks at tiny sizes (the test suite runs this)

Nothing is downloaded: the model is Qwen3's architecture with random weights built here from a config
(`benchmarks/gpu_throughput.py`'s builder; on the GPU 8 layers of Qwen3-0.6B's shape, full vocabulary), the tokenizer a
word-level one of the same vocabulary. Without network access, carry the wheels: on a machine with access,
`pip wheel --no-deps -w wheels/ . trl==1.16.0 peft math-verify latex2sympy2_extended antlr4-python3-runtime==4.13.2`,
then on the GPU machine `pip install --no-index --find-links wheels/ zvp_trl` (torch, transformers, accelerate and
datasets must already be there).

Checks, in order:
- `environment`: the device, bf16 support there, the versions of torch, transformers, trl, peft and math-verify.
- `math-verify reward`: `accuracy_reward` scores a right and a wrong boxed answer 1 and 0.
- `train <algorithm>` for TRL's `GRPOTrainer` and every registered algorithm: 3 optimizer steps with `bf16=True` and
  gradient checkpointing, finite losses, the policy in float32 under bf16 autocast, checkpointing on.
- `cost <algorithm>`: median step time (after the first step) and peak memory against TRL's `GRPOTrainer` in the same
  run, per generated completion (GRPO-DS and GRESO generate again for dropped groups). Fails above 1.5x either.
- `bf16 <method>`: on one batch, the same trainer built in fp32 and in bf16 from the same weights (the check of
  tests/test_bf16_batch.py, on this device's kernels: cuBLAS and TRL's Triton LM head on a GPU): per-token log-probs
  (ERPO: at raised per-row temperatures), RL-ZVP's token advantages, ExGRPO's stored log-probs and shaped ratios f(w),
  and the zero-variance split of a reward batch that bf16 would round (GRPO-DS, GRESO), within `2 * 2 * 2**-8 *
  max|z / T|` (two bf16 roundings of the largest logit, doubled by the log-softmax).

Results also go to `--output` (JSON) when given.
"""

import argparse
import gc
import json
import math
import statistics
import sys
import tempfile
import time
import traceback
from pathlib import Path


BENCHMARKS = Path(__file__).resolve().parent
if str(BENCHMARKS.parent) not in sys.path:  # runs from a checkout without `pip install -e .`
    sys.path.insert(0, str(BENCHMARKS.parent))
if str(BENCHMARKS) not in sys.path:
    sys.path.insert(0, str(BENCHMARKS))

from gpu_throughput import QWEN3_0_6B, TINY, build_model, make_prompts, synthetic_reward  # noqa: E402


SIZES = {
    "cuda": {
        "shape": {**QWEN3_0_6B, "num_hidden_layers": 8},
        "prompt_length": 64,
        "completion_length": 64,
        "num_generations": 8,
        "prompts_per_step": 8,
    },
    "cpu": {"shape": TINY, "prompt_length": 8, "completion_length": 8, "num_generations": 4, "prompts_per_step": 2},
}
STEPS = 3
COST_LIMIT = 1.5
BF16_RELATIVE = 2.0**-8
RAISED_TEMPERATURES = [1.0, 1.2, 1.5, 1.5, 1.0, 1.3]  # ERPO's raised temperatures, capped at 1.5

RESULTS: list[dict] = []


def report(check: str, ok: bool, detail: str) -> bool:
    RESULTS.append({"check": check, "ok": bool(ok), "detail": detail})
    print(f"{'PASS' if ok else 'FAIL'}  {check}: {detail}", flush=True)
    return ok


def guarded(check: str, function, *args):
    """Runs `function`; an exception is that check's FAIL line (with the error), not the end of the run."""
    try:
        return function(*args)
    except Exception as error:  # noqa: BLE001 -- every failure is reported as its check's line
        traceback.print_exc(file=sys.stderr)
        report(check, False, f"{type(error).__name__}: {error}")
        return None


def config_for(name: str, settings: dict, work_dir: Path, bf16: bool, **overrides):
    from zvp_trl.core.composition import with_trl_reference

    config_class, trainer_class = with_trl_reference()[name].load()
    completions = settings["prompts_per_step"] * settings["num_generations"]
    values = dict(
        output_dir=str(work_dir / f"{name}_{'bf16' if bf16 else 'fp32'}"),
        use_cpu=settings["device"] == "cpu",
        bf16=bf16,
        gradient_checkpointing=True,
        model_init_kwargs={"dtype": "float32"},  # float32 master weights, as the recipes' `dtype: float32`
        learning_rate=1e-5,
        per_device_train_batch_size=completions,
        num_generations=settings["num_generations"],
        max_completion_length=settings["completion_length"],
        generation_kwargs={"min_new_tokens": settings["completion_length"]},  # random weights: full-length rows
        max_steps=STEPS,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        seed=0,
        epsilon_high=0.28,
        disable_tqdm=True,
        shuffle_dataset=False,
    )
    values.update(overrides)
    return config_class(**values), trainer_class


def build_trainer(name: str, settings: dict, work_dir: Path, bf16: bool, callbacks=(), **overrides):
    from transformers.trainer_callback import PrinterCallback

    args, trainer_class = config_for(name, settings, work_dir, bf16, **overrides)
    dataset = make_prompts(256, settings["prompt_length"], settings["shape"]["vocab_size"])
    trainer = trainer_class(
        model=str(settings["model_dir"]),
        reward_funcs=synthetic_reward,
        args=args,
        train_dataset=dataset,
        callbacks=list(callbacks),
    )
    trainer.remove_callback(PrinterCallback)
    return trainer


# ---------------------------------------------------------------------------------------------------------------------
# Environment and reward


def check_environment(device: str) -> None:
    from importlib.metadata import version

    import math_verify  # noqa: F401
    import peft
    import torch
    import transformers
    import trl

    versions = (
        f"torch {torch.__version__}, transformers {transformers.__version__}, trl {trl.__version__}, "
        f"peft {peft.__version__}, math-verify {version('math-verify')}"
    )
    if device == "cuda":
        ok = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
        where = torch.cuda.get_device_name() if torch.cuda.is_available() else "no CUDA device"
        report("environment", ok, f"{where}, bf16 {'supported' if ok else 'NOT supported'}; {versions}")
    else:
        report("environment", True, f"CPU (dry run at tiny sizes); {versions}")


def check_reward() -> None:
    from zvp_trl.data.rewards import accuracy_reward

    scores = accuracy_reward([r"so \boxed{42}", r"so \boxed{41}"], solution=["42", "42"])
    report("math-verify reward", scores == [1.0, 0.0], f"scores {scores} (expected [1.0, 0.0])")


# ---------------------------------------------------------------------------------------------------------------------
# Training runs


def train_one(name: str, settings: dict, work_dir: Path) -> dict | None:
    import torch
    from transformers import TrainerCallback

    cuda = settings["device"] == "cuda"

    class Timer(TrainerCallback):
        def __init__(self):
            self.times, self.completions, self.trainer = [], [], None

        def _generated(self):
            counter = getattr(self.trainer, "rollouts", None)
            return counter.total if counter is not None else None

        def on_step_begin(self, args, state, control, **kwargs):
            if cuda:
                torch.cuda.synchronize()
            self.start, self.start_generated = time.perf_counter(), self._generated()

        def on_step_end(self, args, state, control, **kwargs):
            if cuda:
                torch.cuda.synchronize()
            self.times.append(time.perf_counter() - self.start)
            generated = self._generated()
            self.completions.append(None if generated is None else generated - self.start_generated)

    timer = Timer()
    trainer = build_trainer(name, settings, work_dir, bf16=True, callbacks=[timer])
    timer.trainer = trainer
    policy = trainer.accelerator.unwrap_model(trainer.model)
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    trainer.train()
    peak = torch.cuda.max_memory_allocated() if cuda else None
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    problems = []
    if trainer.state.global_step != STEPS:
        problems.append(f"{trainer.state.global_step} steps, not {STEPS}")
    if len(losses) != STEPS or not all(math.isfinite(loss) for loss in losses):
        problems.append(f"losses {losses}")
    if not trainer.args.bf16 or not trainer.accelerator.native_amp:
        problems.append("bf16 autocast is off")
    if {p.dtype for p in policy.parameters()} != {torch.float32}:
        problems.append(f"weights in {sorted(str(d) for d in {p.dtype for p in policy.parameters()})}")
    if not policy.is_gradient_checkpointing:
        problems.append("gradient checkpointing is off")
    completions_per_step = settings["prompts_per_step"] * settings["num_generations"]
    generated = [c if c is not None else completions_per_step for c in timer.completions]
    result = {
        "step_s": statistics.median(timer.times[1:]),
        "per_completion_s": statistics.median(t / c for t, c in zip(timer.times[1:], generated[1:])),
        "peak_memory_bytes": peak,
        "losses": losses,
    }
    detail = f"{STEPS} steps, losses {[round(x, 4) for x in losses]}, step {result['step_s']:.2f} s"
    report(f"train {name}", not problems, "; ".join(problems) if problems else detail)
    del trainer, policy
    gc.collect()
    if cuda:
        torch.cuda.empty_cache()
    return result if not problems else None


def check_cost(name: str, run: dict, baseline: dict) -> None:
    """On the GPU: fails above COST_LIMIT x TRL's time per completion or peak memory. The CPU dry run's tiny steps
    (hundredths of a second) are no measurement: there it checks that both were measured, and says so."""
    time_ratio = run["per_completion_s"] / baseline["per_completion_s"]
    detail = f"step {run['step_s']:.3f} s vs TRL {baseline['step_s']:.3f} s; per completion x{time_ratio:.2f}"
    if run["peak_memory_bytes"] is not None:
        memory_ratio = run["peak_memory_bytes"] / baseline["peak_memory_bytes"]
        detail += f"; peak memory {run['peak_memory_bytes'] / 2**30:.2f} GiB, x{memory_ratio:.2f}"
        ok = time_ratio <= COST_LIMIT and memory_ratio <= COST_LIMIT
    else:
        detail += "; dry run: measured, not judged (peak memory: GPU only)"
        ok = time_ratio > 0
    report(f"cost {name}", ok, detail)


# ---------------------------------------------------------------------------------------------------------------------
# bf16 against fp32 on one batch


def one_batch(settings: dict):
    import torch

    generator = torch.Generator().manual_seed(0)
    rows, length = len(RAISED_TEMPERATURES), settings["prompt_length"] + settings["completion_length"]
    input_ids = torch.randint(0, settings["shape"]["vocab_size"] - 3, (rows, length), generator=generator)
    attention_mask = torch.ones_like(input_ids)
    attention_mask[0, :3] = 0  # left padding on one row
    return input_ids, attention_mask


def logps_of(trainer, input_ids, attention_mask, completion, temperatures=None, entropy=False):
    import torch

    device = trainer.accelerator.device
    trainer.zvp_step.logprob_temperatures = temperatures
    try:
        with torch.no_grad():
            logps, entropies, _ = trainer._get_per_token_logps_and_entropies(
                trainer.model, input_ids.to(device), attention_mask.to(device), completion, compute_entropy=entropy
            )
    finally:
        trainer.zvp_step.logprob_temperatures = None
    return logps.float().cpu(), None if entropies is None else entropies.float().cpu()


def tolerance(trainer, input_ids, attention_mask, completion, temperatures) -> float:
    import torch

    device = trainer.accelerator.device
    with torch.no_grad():
        logits = trainer.model(input_ids=input_ids.to(device), attention_mask=attention_mask.to(device)).logits
    scaled = logits[:, -completion - 1 : -1].float().cpu() / temperatures[:, None, None]
    return 2 * 2 * BF16_RELATIVE * scaled.abs().max().item()


def pair(name: str, settings: dict, work_dir: Path, compute, **overrides):
    """`compute(trainer)` on the trainer built in fp32, then in bf16 (built in that order: the second Accelerator's
    precision is process-wide, the first trainer's autocast stays off)."""
    results = []
    for bf16 in (False, True):
        trainer = build_trainer(name, settings, work_dir, bf16=bf16, **overrides)
        results.append(compute(trainer))
        del trainer
        gc.collect()
    return results


def check_bf16_logprobs(settings: dict, work_dir: Path) -> None:
    import torch

    input_ids, attention_mask = one_batch(settings)
    completion = settings["completion_length"]
    temperatures = torch.tensor(RAISED_TEMPERATURES)

    def compute(trainer):
        logps, entropies = logps_of(trainer, input_ids, attention_mask, completion, temperatures, entropy=True)
        return logps, entropies, tolerance(trainer, input_ids, attention_mask, completion, temperatures)

    (l32, h32, tol), (l16, h16, _) = pair("erpo", settings, work_dir, compute, erpo_max_temperature=1.5)
    error, entropy_error = (l16 - l32).abs().max().item(), (h16 - h32).abs().max().item()
    ok = l16.dtype == torch.float32 and 0 < error <= tol and entropy_error <= tol
    report(
        "bf16 erpo",
        ok,
        f"log-probs at temperatures {RAISED_TEMPERATURES}: max |bf16 - fp32| {error:.2e}, entropies {entropy_error:.2e}"
        f" (tolerance {tol:.2e})",
    )


def check_bf16_rl_zvp(settings: dict, work_dir: Path) -> None:
    import torch

    from zvp_trl.methods.rl_zvp.algorithm import rl_zvp_token_advantages

    input_ids, attention_mask = one_batch(settings)
    completion = settings["completion_length"]

    def compute(trainer):
        temperatures = torch.full((len(RAISED_TEMPERATURES),), trainer.args.temperature)
        _, entropies = logps_of(trainer, input_ids, attention_mask, completion, entropy=True)
        return (
            entropies,
            trainer.args.zvp_alpha,
            tolerance(trainer, input_ids, attention_mask, completion, temperatures),
        )

    (h32, alpha, tol), (h16, _, _) = pair("rl_zvp", settings, work_dir, compute)
    advantages = torch.tensor([0.0, 0.0, 0.0, 0.0, 0.7071068, -0.7071068])
    signs = torch.tensor([1.0, 1.0, -1.0, -1.0, 0.0, 0.0])  # all-correct, all-wrong, mixed groups of 2
    mask = attention_mask[:, -completion:].float()
    a32 = rl_zvp_token_advantages(advantages, signs, h32, mask, alpha=alpha)
    a16 = rl_zvp_token_advantages(advantages, signs, h16, mask, alpha=alpha)
    error = (a16 - a32).abs().max().item()
    ok = torch.equal(a16[4:], a32[4:]) and error <= alpha * 2 * tol
    report("bf16 rl_zvp", ok, f"token advantages: max |bf16 - fp32| {error:.2e} (tolerance {alpha * 2 * tol:.2e})")


def check_bf16_exgrpo(settings: dict, work_dir: Path) -> None:
    import torch

    from zvp_trl.methods.exgrpo.algorithm import exgrpo_per_token_loss, policy_shaping

    input_ids, attention_mask = one_batch(settings)
    completion = settings["completion_length"]
    output = {
        "prompt_ids": input_ids[:, :-completion],
        "prompt_mask": attention_mask[:, :-completion],
        "completion_ids": input_ids[:, -completion:],
        "completion_mask": attention_mask[:, -completion:],
    }

    def compute(trainer):
        device = trainer.accelerator.device
        on_device = {k: v.to(device) for k, v in output.items()}
        stored = trainer.part("exgrpo").generating_logps(on_device, None).float().cpu()
        generator = torch.Generator().manual_seed(1)
        with torch.no_grad():  # the same small update of both policies, as an optimizer step would make
            for parameter in trainer.model.parameters():
                noise = torch.randn(parameter.shape, generator=generator) * 0.02
                parameter.add_(noise.to(parameter.device, parameter.dtype))
        new, _ = logps_of(trainer, input_ids, attention_mask, completion)
        temperatures = torch.full((len(RAISED_TEMPERATURES),), trainer.args.temperature)
        tol = tolerance(trainer, input_ids, attention_mask, completion, temperatures)
        return stored, new, trainer.args.exgrpo_shaping_beta, tol

    (s32, n32, beta, tol), (s16, n16, _, _) = pair("exgrpo", settings, work_dir, compute)
    mask = output["completion_mask"].float()
    replay = torch.tensor([True, True, True, False, False, False])
    advantages = torch.tensor([1.0, -1.0, 0.5, -0.5, 1.0, -1.0])
    kwargs = dict(loss_type="dr_grpo", epsilon_low=0.2, epsilon_high=0.28, shaping_beta=beta)
    _, _, w32 = exgrpo_per_token_loss(n32, n32, s32, advantages, replay, mask, **kwargs)
    _, _, w16 = exgrpo_per_token_loss(n16, n16, s16, advantages, replay, mask, **kwargs)
    rows = replay[:, None].expand_as(mask) & mask.bool()
    stored_error = (s16 - s32).abs().max().item()
    shaped_error = (policy_shaping(w16, beta) - policy_shaping(w32, beta))[rows].abs().max().item()
    # |df| <= f'(w) w (exp(2 tol) - 1) <= (1/4) (exp(2 tol) - 1): f'(w) w = beta w / (w + beta)**2 peaks at w = beta.
    bound = 0.25 * math.expm1(2 * tol)
    ok = s16.dtype == torch.float32 and stored_error <= tol and shaped_error <= bound
    report(
        "bf16 exgrpo",
        ok,
        f"stored log-probs: max |bf16 - fp32| {stored_error:.2e} (tolerance {tol:.2e}); f(w): {shaped_error:.2e} "
        f"(tolerance {bound:.2e})",
    )


def check_bf16_split(name: str, settings: dict, work_dir: Path) -> None:
    """The zero-variance split of one reward batch in a bf16 trainer's own detection: rewards 1.0 and 1.001 (one value
    in bf16) stay a group with a spread."""
    import torch

    from zvp_trl.core.zero_variance import zero_variance_signs

    rewards = torch.tensor([1.0, 1.001, 0.0, 0.0, 1.0, 1.0])

    def compute(trainer):
        threshold = getattr(trainer.args, "correct_threshold", 0.5)
        return zero_variance_signs(rewards.to(trainer.accelerator.device), 2, threshold, 1e-6).cpu().tolist()

    s32, s16 = pair(name, settings, work_dir, compute)
    ok = s16 == s32 == [0.0, 0.0, -1.0, -1.0, 1.0, 1.0]
    report(f"bf16 {name}", ok, f"zero-variance signs {s16} (fp32 {s32}; expected [0, 0, -1, -1, 1, 1])")


# ---------------------------------------------------------------------------------------------------------------------
# Driver


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda", help="cpu: the dry run at tiny sizes")
    parser.add_argument("--trainers", nargs="+", default=None, help="a subset of the algorithms to train")
    parser.add_argument("--work_dir", default=None, help="where the model and runs go (default: a temporary folder)")
    parser.add_argument("--output", default=None, help="also write the results to this JSON file")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    import torch

    from zvp_trl.core.composition import with_trl_reference

    if args.device == "cuda" and not torch.cuda.is_available():
        print("gpu_acceptance.py: no CUDA device; run with --device cpu for the dry run", file=sys.stderr)
        return 2
    if args.device == "cpu":
        torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    names = [name for name in with_trl_reference() if name != "trl_grpo"]
    unknown = sorted(set(args.trainers or []) - set(names))
    if unknown:
        print(f"gpu_acceptance.py: --trainers: unknown {unknown}; choose from {names}", file=sys.stderr)
        return 2
    names = args.trainers or names
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        work_dir = Path(args.work_dir or scratch)
        settings = {**SIZES[args.device], "device": args.device, "model_dir": work_dir / "model"}
        build_model(settings["model_dir"], settings["shape"], "float32")
        guarded("environment", check_environment, args.device)
        guarded("math-verify reward", check_reward)
        runs = {name: guarded(f"train {name}", train_one, name, settings, work_dir) for name in ["trl_grpo", *names]}
        baseline = runs.pop("trl_grpo")
        for name, run in runs.items():
            if run is not None and baseline is not None:
                guarded(f"cost {name}", check_cost, name, run, baseline)
            else:
                report(f"cost {name}", False, "no measurement (its run or TRL's failed)")
        guarded("bf16 erpo", check_bf16_logprobs, settings, work_dir)
        guarded("bf16 rl_zvp", check_bf16_rl_zvp, settings, work_dir)
        guarded("bf16 exgrpo", check_bf16_exgrpo, settings, work_dir)
        for name in ("grpo_ds", "greso"):
            guarded(f"bf16 {name}", check_bf16_split, name, settings, work_dir)
    failed = [r["check"] for r in RESULTS if not r["ok"]]
    elapsed = time.perf_counter() - started
    print(f"{len(RESULTS) - len(failed)} passed, {len(failed)} failed in {elapsed:.0f} s", flush=True)
    if args.output:
        Path(args.output).write_text(
            json.dumps({"device": args.device, "seconds": elapsed, "checks": RESULTS}, indent=1)
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
