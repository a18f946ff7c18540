# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""Per-row sampling temperatures inside one generation batch, and log-probs at each row's own temperature.

TRL's `GRPOTrainer` has one temperature for the whole run. These pieces let a subclass give each row its own:

- transformers `generate`: `PerRowTemperatureLogitsProcessor`, which runs before the sampling warpers, divides row i's
  scores by `T_i / T_base`; the config's `TemperatureLogitsWarper` then divides by `T_base`, so top-k/top-p/min-p see
  `logits / T_i`.
- vLLM colocate: one `SamplingParams` per request (`per_request_sampling_params`).
- vLLM server (`trl vllm-serve` takes one temperature per call): `generate_grouped_by_temperature` issues one call per
  distinct temperature, all at once from a thread each (the server batches concurrent requests), and restores the
  original order.
- multi-turn tool calls: TRL's tool loop generates again for the rows that called a tool, from their prompt followed
  by the completion so far and the tool results; `temperatures_for_continuations` finds each such row's prompt (the
  longest original prompt it starts with), so a hot prompt stays hot for every turn.
- log-probs and entropies: `RowScaledHiddenStates` multiplies the backbone's last hidden state of row i by
  `T_base / T_i` before TRL's fused LM head divides by `T_base`. For an LM head `z = s * h W^T` (no bias, no final
  logit soft-capping; `s` a constant logit scale) this gives exactly `z / T_i`, keeps TRL's memory-light fused
  kernel, and lets gradients flow. Models with a biased or soft-capped head are refused (see `check_row_scalable`).
"""

import contextlib
from concurrent.futures import ThreadPoolExecutor

import torch
from transformers import LogitsProcessor


class PerRowTemperatureLogitsProcessor(LogitsProcessor):
    """Divides the scores of row i by `factors[i]` (`= T_i / T_base`), before the config's own temperature warper."""

    def __init__(self, factors: torch.Tensor):
        if factors.dim() != 1 or not bool((factors > 0).all()):
            raise ValueError("factors must be a 1-D tensor of positive temperature ratios.")
        self.factors = factors

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if scores.size(0) != self.factors.numel():
            raise ValueError(
                f"Per-row temperatures were set for {self.factors.numel()} rows but generate() scores {scores.size(0)} "
                "rows (num_return_sequences > 1 or beam search are not supported with per-row temperatures)."
            )
        return scores / self.factors.to(device=scores.device, dtype=scores.dtype)[:, None]


def check_row_scalable(model) -> None:
    """Raises unless scaling the last hidden state is exactly a per-row temperature for `model`'s LM head."""
    head = model.get_output_embeddings()
    text_config = model.config.get_text_config()
    reasons = []
    if head is None:
        reasons.append("it has no output embeddings")
    elif getattr(head, "bias", None) is not None:
        reasons.append("its LM head has a bias")
    if getattr(text_config, "final_logit_softcapping", None) is not None:
        reasons.append("it soft-caps its final logits")
    if reasons:
        raise ValueError(
            f"Log-probs at per-row temperatures are computed by scaling the last hidden state, which is exact only for "
            f"an LM head without bias or logit soft-capping, but this model ({type(model).__name__}): "
            f"{'; '.join(reasons)}. Set erpo_logprob_temperature='base' to compute log-probs at the base temperature "
            "instead."
        )


def backbone_of(model):
    """The module whose output TRL's fused LM head projects: `model.base_model` (PEFT: of the wrapped base model)."""
    if hasattr(model, "get_base_model"):
        model = model.get_base_model()
    return model.base_model


class RowScaledHiddenStates:
    """Forward hooks on backbones that multiply row i's last hidden state by `scales[i]`, while `active(scales)` is on.

    Rows are consumed in order across successive forwards (TRL runs the forward in chunks of rows), so one `active`
    call covers a whole `_get_per_token_logps_and_entropies` call whatever its chunking. Outside `active` the hooks do
    nothing (generation and plain forwards are untouched).
    """

    def __init__(self):
        self._scales = None
        self._cursor = 0
        self._handles = []

    def attach(self, module: torch.nn.Module) -> None:
        self._handles.append(module.register_forward_hook(self._hook))

    def detach(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    @contextlib.contextmanager
    def active(self, scales: torch.Tensor):
        if self._scales is not None:
            raise RuntimeError("RowScaledHiddenStates.active is not re-entrant.")
        self._scales, self._cursor = scales, 0
        try:
            yield
            if self._cursor != scales.numel():
                raise RuntimeError(
                    f"Per-row temperatures were set for {scales.numel()} rows but the forward passes covered "
                    f"{self._cursor}: the rows and their temperatures are out of step."
                )
        finally:
            self._scales, self._cursor = None, 0

    def _hook(self, module, args, output):
        if self._scales is None:
            return None
        hidden = output.last_hidden_state
        rows = hidden.size(0)
        scales = self._scales[self._cursor : self._cursor + rows]
        if scales.numel() != rows:
            raise RuntimeError(
                f"Per-row temperatures cover {self._scales.numel()} rows, but forward passes asked for at least "
                f"{self._cursor + rows}."
            )
        self._cursor += rows
        output.last_hidden_state = hidden * scales.to(device=hidden.device, dtype=hidden.dtype)[:, None, None]
        return output


def temperatures_for_continuations(
    rows: list[list[int]], prompts: list[list[int]], temperatures: list[float]
) -> list[float]:
    """The sampling temperature of each continuation row: that of the prompt in `prompts` (token ids, one per original
    row, with `temperatures` aligned to them) that the row starts with; the longest such prompt when several match.

    Raises if a row starts with no prompt, or if the prompt it starts with was given different temperatures (two
    prompts with identical tokens but different prompt ids).
    """
    if len(prompts) != len(temperatures):
        raise ValueError(f"{len(prompts)} prompts for {len(temperatures)} temperatures.")
    by_prompt = {}
    for prompt, temperature in zip(prompts, temperatures, strict=True):
        key = tuple(prompt)
        if by_prompt.setdefault(key, temperature) != temperature:
            raise RuntimeError(
                "Two rows with identical prompt tokens were given different ERPO temperatures (their prompt ids "
                "differ), so a tool-call continuation cannot tell which temperature it should keep. Give identical "
                "prompts the same prompt id (prompt_id_column) or make their texts differ."
            )
    lengths = sorted({len(key) for key in by_prompt}, reverse=True)
    result = []
    for row in rows:
        row = list(row)
        temperature = next((by_prompt[k] for n in lengths if (k := tuple(row[:n])) in by_prompt), None)
        if temperature is None:
            raise RuntimeError(
                "A tool-call continuation does not start with any prompt of its generation batch, so its ERPO "
                "temperature is unknown."
            )
        result.append(temperature)
    return result


def per_request_sampling_params(sampling_params, temperatures: list[float]) -> list:
    """vLLM colocate: one copy of `sampling_params` per request (one row = one request, `n=1`), each at its row's
    temperature. `sampling_params` only needs `clone()` and a `temperature` attribute."""
    requests = []
    for temperature in temperatures:
        params = sampling_params.clone()
        params.temperature = float(temperature)
        requests.append(params)
    return requests


def generate_grouped_by_temperature(generate, prompts: list, temperatures: list[float], n: int, **kwargs) -> dict:
    """vLLM server: `generate(prompts=..., n=n, temperature=t, **kwargs)` once per distinct temperature, the requests
    sent concurrently (so the server batches them as one), outputs put back in the order of `prompts`.

    `prompts` are the unique prompts (one per group) and `temperatures` their temperatures. `generate` returns
    TRL's `VLLMClient.generate` dict: `prompt_ids` (one per prompt), `completion_ids` and `logprobs` (n per prompt,
    prompt-major), and optionally `logprob_token_ids` (like `logprobs`). Other keys are taken from the first
    temperature's output. A per-prompt `features` list (multimodal inputs) is split with its prompts. `generate` is
    called from one thread per temperature: TRL's client shares one `requests` session across threads itself (its
    multimodal path sends its requests from a thread pool). A failed request raises its error here, after the other
    requests have returned.
    """
    if len(prompts) != len(temperatures):
        raise ValueError(f"{len(prompts)} prompts but {len(temperatures)} temperatures.")
    order: dict[float, list[int]] = {}
    for index, temperature in enumerate(temperatures):
        order.setdefault(float(temperature), []).append(index)
    kwargs.pop("temperature", None)
    features = kwargs.pop("features", None)
    if features is not None and len(features) != len(prompts):
        raise ValueError(f"{len(prompts)} prompts but {len(features)} features.")

    def request(temperature: float, indices: list[int]) -> dict:
        per_prompt = {} if features is None else {"features": [features[i] for i in indices]}
        return generate(prompts=[prompts[i] for i in indices], n=n, temperature=temperature, **per_prompt, **kwargs)

    if len(order) == 1:
        outputs = [request(*next(iter(order.items())))]
    else:
        with ThreadPoolExecutor(max_workers=len(order), thread_name_prefix="zvp-temperature") as pool:
            futures = [pool.submit(request, temperature, indices) for temperature, indices in order.items()]
            outputs = [future.result() for future in futures]  # re-raises a failed request's error
    per_prompt = {"prompt_ids": [None] * len(prompts)}
    per_completion: dict[str, list] = {}
    for indices, output in zip(order.values(), outputs):
        for j, index in enumerate(indices):
            per_prompt["prompt_ids"][index] = output["prompt_ids"][j]
        for key in ("completion_ids", "logprobs", "logprob_token_ids"):
            if output.get(key) is None:
                per_completion.setdefault(key, None)
                continue
            slots = per_completion.setdefault(key, [None] * (len(prompts) * n))
            for j, index in enumerate(indices):
                slots[index * n : (index + 1) * n] = output[key][j * n : (j + 1) * n]
    result = dict(outputs[0])
    result.update(per_prompt)
    result.update(per_completion)
    return result


def per_row_sampling_agreement(
    logps: torch.Tensor, sampling_logps: torch.Tensor, completion_mask: torch.Tensor
) -> torch.Tensor:
    """Per row, how well log-probs `logps` (the trainer's) match `sampling_logps` (the sampler's, e.g. vLLM's).

    Returns a `(rows, 2)` tensor: column 0 the mean over the row's completion tokens of `exp(logps - sampling_logps)`
    (the token-level importance ratio), column 1 the mean of `|logps - sampling_logps|`. Tokens whose sampling
    log-prob is NaN (not returned by the sampler) are left out; a row without tokens gets NaN.
    """
    diff = logps.float() - sampling_logps.float()
    mask = completion_mask.bool() & ~torch.isnan(diff)
    diff = torch.where(mask, diff, torch.zeros_like(diff))
    count = mask.sum(dim=1).float()
    ratio = (torch.exp(diff) * mask).sum(dim=1) / count
    absdiff = (diff.abs() * mask).sum(dim=1) / count
    return torch.stack([ratio, absdiff], dim=1)
