# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""Methods as parts: one method's logic, run by the trainer (the adapter to TRL, `ZVPBaseTrainer`) at the step
events it declares, with the step's data handed to it (`zvp_trl.core.step`).

A part never overrides a TRL hook and never reads what another hook left on the trainer: the adapter calls it with
the data of the event. Events, in the order the adapter runs them for a training generation batch, then for each
loss:

| event | when | what a part does there |
|---|---|---|
| `assemble_batch(inputs, generate_round)` | a training batch is needed | run rounds until the batch is full (dynamic sampling, GRESO); `groups_with_signal(signs)` asks the other parts which zero-variance groups still carry a signal (ERPO's RA) |
| `choose_rows(step)` | a generation round starts | replace rows of `step.rows` (ExGRPO: retired questions, replays), give completions that replace generated ones (`step.completion_overrides`, `step.replayed_rows`) |
| `before_generation(step)` | the rows are chosen, before TRL generates `step.rows` | set the rows' sampling settings (`step.sampling_temperatures`), or ask for them at the first generation call (`step.temperatures_from_prompts`) |
| `before_sampling(step)` | the round's first generation call, with `step.temperatures_from_prompts` (environment-owned data: `step.environment_prompt_ids` now known) | set `step.sampling_temperatures` |
| `after_scoring(step, output)` | after TRL scored the batch (`step.gathered_rewards` is set) | add per-row values to the batch (`output`), update its state, log |
| `loss_logprob_temperatures(inputs)` | a loss starts | the rows' temperatures for the loss's log-probs (when the trainer computes log-probs at per-row temperatures) |
| `compute_loss(loss, model, inputs)` | a loss starts | the whole loss instead of TRL's (ExGRPO's mixed phase), or None |
| `shapes_token_advantages` / `token_advantages(loss, inputs, entropies)` | in the loss, after the policy forward | replace the batch's per-sequence advantages by per-token ones, from the forward's entropies; set `loss.sequence_advantages` for TRL's sequence-level rules |
| `log(mode, metrics)` | when the trainer logs | add the part's metrics for the window |
| `checkpointed_state()` | at construction | name -> object with `state_dict` / `load_state_dict`, saved in every checkpoint |

A part reads and calls only its `PartContext` (`self.context`; the config is `self.args`), never the trainer, so it
can be driven with a hand-made context and tensors. A trainer class lists its parts in `_parts` (derived from the
methods' registrations, `zvp_trl.core.registry`, in their `precedence` order); the adapter runs them in that order at
every event. docs/adding_a_method.md documents this protocol for methods of other packages.
"""

import dataclasses
from collections import defaultdict
from collections.abc import Callable
from typing import Any, ClassVar

import torch

from .step import GenerationStep, LossStep
from .zero_variance import zero_variance_signs


class OneProcess:
    """The collectives of a single process (what `PartContext` uses when no trainer gives others): gathering and
    reducing return their input."""

    num_processes = 1
    process_index = 0
    is_main_process = True

    def gather(self, tensor: torch.Tensor) -> torch.Tensor:
        return tensor

    def gather_for_metrics(self, tensor: torch.Tensor) -> torch.Tensor:
        return tensor

    def gather_object(self, objects: list) -> list:
        return list(objects)

    def reduce(self, tensor: torch.Tensor, reduction: str = "sum") -> torch.Tensor:
        return tensor


@dataclasses.dataclass
class RunState:
    """What changes while a run goes on, as a part reads it (the trainer gives a live view with these attributes)."""

    training: bool = True  # the policy is in training mode (False: evaluation)
    global_step: int = 0  # optimizer steps done
    epoch: float = 0.0  # transformers' `state.epoch`
    accumulation_steps: int = 1  # the current accumulation window (TRL's `current_gradient_accumulation_steps`)
    sync_gradients: bool = True  # this micro-batch ends an accumulation window


@dataclasses.dataclass(frozen=True)
class LossSettings:
    """TRL's loss settings as `GRPOTrainer` resolved them from the config and the model (a part that computes a loss
    of its own applies them as TRL does)."""

    loss_type: str = "dapo"
    importance_sampling_level: str = "token"
    epsilon_low: float = 0.2
    epsilon_high: float = 0.2
    delta: float | None = None
    beta: float = 0.0
    use_bias_correction_kl: bool = False
    off_policy_mask_threshold: float | None = None
    top_entropy_quantile: float = 1.0
    vllm_importance_sampling_correction: bool = False  # and vLLM generates
    max_completion_length: int = 256
    steps_per_generation: int = 1
    entropy_coef: float = 0.0
    entropy_bonus: bool = False
    aux_loss: bool = False
    router_aux_loss_coef: float = 0.0


def _missing(what: str) -> Callable:
    def call(*args, **kwargs):
        raise RuntimeError(f"This part context has no {what}: the trainer gives it; a hand-made context must pass it.")

    return call


class PartContext:
    """What a part may read and call, and nothing more: a part never reads the trainer.

    The trainer (`ZVPBaseTrainer`) builds one for its parts; a test builds one by hand (every argument has a
    single-process default, and what needs a model raises until it is given).

    Args:
        args: the run's config (the method's config class, or a composed one).
        num_generations / num_generations_eval: group sizes of training and evaluation rounds.
        reward_weights: `(reward functions,)` TRL's reward weights (`GenerationStep.scalar_rewards` takes them).
        collectives: `num_processes`, `process_index`, `is_main_process`, `gather`, `gather_for_metrics`,
            `gather_object`, `reduce` (accelerate's semantics); default: one process.
        device: where the batch's tensors live.
        metrics: `{"train": {...}, "eval": {...}}` of lists, TRL's metric sink (averaged per logging window).
        run: the live `RunState` (training mode, step, epoch, accumulation window).
        tokenizer: the processing class's tokenizer (its `pad_token_id`).
        train_dataset: the training dataset (map-style or iterable), or None.
        dataset_row: index -> the training row as the dataloader hands it (unused columns dropped as TRL drops them).
        prompts_from_environment: environment-owned data (an `environment_factory` and no `train_dataset`).
        environments: one instance per environment of the run (empty without an `environment_factory`).
        sharded_forwards: every forward gathers sharded parameters collectively (DeepSpeed ZeRO-3, FSDP).
        is_vision_language: the model takes images (parts that re-batch rows may refuse it).
        loss: TRL's resolved `LossSettings`.
        policy: () -> the model being trained (for no-grad forwards of a part's own rows).
        logprobs: TRL's `_get_per_token_logps_and_entropies(model, input_ids, attention_mask, logits_to_keep, ...)`,
            at the rows' log-prob temperatures.
        token_advantages: `(loss, inputs, entropies)` -> the loss's advantages after the parts that shape them per
            token (`shapes_token_advantages`).
        groups_with_signal: `(groups,)` signs -> the same, 0 where some part gives a zero-variance group a signal.
        off_policy_mask / high_entropy_mask: TRL's `get_off_policy_mask` (on the loss's sequence advantages) and
            `get_high_entropy_mask`.
        enable_row_temperature_logprobs: () -> log-probs at each row's sampling temperature from now on.
    """

    def __init__(
        self,
        args,
        *,
        num_generations: int | None = None,
        num_generations_eval: int | None = None,
        reward_weights=(1.0,),
        collectives=None,
        device=None,
        metrics: dict | None = None,
        run=None,
        tokenizer=None,
        train_dataset=None,
        dataset_row: Callable[[int], dict] | None = None,
        prompts_from_environment: bool = False,
        environments: tuple = (),
        sharded_forwards: bool = False,
        is_vision_language: bool = False,
        loss: LossSettings | None = None,
        policy: Callable[[], Any] | None = None,
        logprobs: Callable | None = None,
        token_advantages: Callable | None = None,
        groups_with_signal: Callable[[torch.Tensor], torch.Tensor] | None = None,
        off_policy_mask: Callable | None = None,
        high_entropy_mask: Callable | None = None,
        enable_row_temperature_logprobs: Callable[[], None] | None = None,
    ):
        self.args = args
        self.num_generations = num_generations or args.num_generations
        self.num_generations_eval = num_generations_eval or getattr(args, "num_generations_eval", None) or (
            self.num_generations
        )
        self.reward_weights = torch.as_tensor(reward_weights, dtype=torch.float32)
        self.collectives = collectives if collectives is not None else OneProcess()
        self.device = torch.device("cpu") if device is None else device
        self.metrics = metrics if metrics is not None else {"train": defaultdict(list), "eval": defaultdict(list)}
        self.run = run if run is not None else RunState()
        self.tokenizer = tokenizer
        self.train_dataset = train_dataset
        self.dataset_row = dataset_row or (lambda index: dict(self.train_dataset[int(index)]))
        self.prompts_from_environment = prompts_from_environment
        self.environments = tuple(environments)
        self.sharded_forwards = sharded_forwards
        self.is_vision_language = is_vision_language
        self.loss = loss if loss is not None else LossSettings()
        self.policy = policy or _missing("policy model")
        self.logprobs = logprobs or _missing("log-prob forward")
        self.token_advantages = token_advantages or (lambda loss, inputs, entropies: inputs["advantages"])
        self.groups_with_signal = groups_with_signal or (lambda signs: signs)
        self.off_policy_mask = off_policy_mask or _missing("off-policy mask")
        self.high_entropy_mask = high_entropy_mask or _missing("high-entropy mask")
        self.enable_row_temperature_logprobs = enable_row_temperature_logprobs or _missing(
            "log-probs at per-row temperatures"
        )

    # ---- processes

    num_processes = property(lambda self: self.collectives.num_processes)
    process_index = property(lambda self: self.collectives.process_index)
    is_main_process = property(lambda self: self.collectives.is_main_process)

    # ---- the run

    @property
    def training(self) -> bool:
        return self.run.training

    @property
    def mode(self) -> str:
        """`"train"` or `"eval"`: the key of `metrics` for what happens now."""
        return "train" if self.run.training else "eval"

    @property
    def group_size(self) -> int:
        """The group size of the current rounds (training or evaluation)."""
        return self.num_generations if self.run.training else self.num_generations_eval

    @property
    def pad_token_id(self) -> int:
        return getattr(self.tokenizer, "pad_token_id", None) or 0

    # ---- zero-variance helpers, as every method decides them

    def row_signs(self, rewards: torch.Tensor, num_generations: int) -> torch.Tensor:
        """Per row: +1 in an all-correct zero-variance group, -1 in an all-wrong one, 0 otherwise (groups of
        `num_generations` consecutive rows, by `args.correct_threshold` and `args.zero_variance_atol`; see
        [`~zvp_trl.core.zero_variance.zero_variance_signs`])."""
        return zero_variance_signs(rewards, num_generations, self.args.correct_threshold, self.args.zero_variance_atol)

    def local_rows(self, gathered: torch.Tensor, local_count: int) -> torch.Tensor:
        """This process's `local_count` rows of a tensor gathered over processes in process order."""
        start = self.process_index * local_count
        return gathered[start : start + local_count]


class MethodPart:
    """Base class of a method's part (see the module docstring). `context` (a `PartContext`) is everything the part
    may read and call: the run's config (`self.args`), the processes and collectives, the metrics sink, the
    log-prob forward. A part never reads the trainer."""

    name: ClassVar[str] = ""
    # Whether the part rewrites the loss's advantages from the policy forward (the adapter then arms that forward).
    shapes_token_advantages: ClassVar[bool] = False
    # Whether the part assembles each training batch from generation rounds (`assemble_batch`); at most one does.
    assembles_batches: ClassVar[bool] = False

    def __init__(self, context: PartContext):
        self.context = context

    @classmethod
    def refuse_construction(cls, kwargs: dict) -> None:
        """Raises for trainer arguments the part cannot work with (`kwargs`: the trainer's keyword arguments), before
        TRL builds anything (models, vLLM, environments)."""

    @property
    def args(self):
        return self.context.args

    def checkpointed_state(self) -> dict[str, object]:
        return {}

    def warm_start(self, probe) -> None:
        """The run starts from a probe (`init_from_probe`; `probe` a `zvp_trl.core.warm_start.ProbeResult` already
        checked against this run): a part with per-prompt state seeds it from the probe's rows. Called once, at
        construction; a resumed checkpoint's state replaces it."""

    def assemble_batch(self, inputs: list[dict], generate_round) -> dict:
        """The training batch from this process's `inputs`, built by calling `generate_round(rows)` (which runs one
        round: the other events, TRL's generation and scoring; it returns the round's output and `GenerationStep`)
        as often as needed (parts with `assembles_batches` only)."""
        raise NotImplementedError

    def groups_with_signal(self, group_signs: torch.Tensor) -> torch.Tensor:
        """`(groups,)` zero-variance signs of a round's groups (+1 all-correct, -1 all-wrong, 0 mixed), with 0 for the
        zero-variance groups this part gives a learning signal (a batch assembler keeps those)."""
        return group_signs

    def choose_rows(self, step: GenerationStep) -> None:
        """A generation round of `step.rows` (this process's) starts: a part may replace rows."""

    def before_generation(self, step: GenerationStep) -> None:
        """The round's rows are chosen (`step.rows`): a part may set their sampling settings."""

    def before_sampling(self, step: GenerationStep) -> None:
        """The round's first generation call, for a part that set `step.temperatures_from_prompts`."""

    def loss_logprob_temperatures(self, inputs: dict) -> torch.Tensor | None:
        """`(B,)` temperatures of the loss's log-probs, or None for the base temperature."""
        return None

    def compute_loss(self, loss: LossStep, model, inputs: dict) -> torch.Tensor | None:
        """The loss of `inputs`, when the part computes it instead of TRL (at most one part does for a batch)."""
        return None

    def after_scoring(self, step: GenerationStep, output: dict) -> None:
        """The batch was generated and scored: `step.gathered_rewards` holds every process's rewards."""

    def token_advantages(self, loss: LossStep, inputs: dict, entropies: torch.Tensor) -> torch.Tensor:
        """`(B, T)` advantages of the loss's rows from the policy forward's entropies (parts with
        `shapes_token_advantages` only)."""
        raise NotImplementedError

    def log(self, mode: str, metrics: dict) -> None:
        """Adds the part's metrics to `metrics` (the trainer's `_metrics[mode]`) before the trainer logs them."""


def parts_of(trainer_class: type) -> tuple[type[MethodPart], ...]:
    """The part classes of a trainer class: its own and its bases' (`_parts`), each once, bases first."""
    found: list[type[MethodPart]] = []
    for klass in reversed(trainer_class.__mro__):
        for part in vars(klass).get("_parts", ()):
            # A part that specialises an earlier one takes its place (GRESO's part is dynamic sampling's, refined).
            found = [other for other in found if not issubclass(part, other)]
            if part not in found:
                found.append(part)
    return tuple(found)
