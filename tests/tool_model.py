# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""A tiny model whose chat template and tokenizer support TRL's tool calling (imported as `tool_model`).

The tokenizer is character-level over printable ASCII plus Qwen's special tokens (`<|im_start|>`, `<tool_call>`, ...),
with Qwen3's chat template from TRL, so TRL renders tool schemas, parses `<tool_call>` completions with its Qwen3
response template and appends tool results as Qwen does. The model is a random tiny `Qwen3ForCausalLM`; tests script
its completions (a tool call, then an answer) through `scripted_generate`.
"""

import re
import string

import torch
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast, Qwen3Config, Qwen3ForCausalLM
from trl.chat_template_utils import qwen3_chat_template


SPECIAL = [
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<tool_call>", "</tool_call>", "<think>", "</think>",
    "<tool_response>", "</tool_response>",
]  # fmt: skip
TOOL_CALL = '<tool_call>\n{"name": "multiply", "arguments": {"a": 3, "b": 4}}\n</tool_call><|im_end|>'
ANSWER = "The answer is \\boxed{12}.<|im_end|>"


def multiply(a: int, b: int) -> int:
    """
    Multiplies two integers.

    Args:
        a: The first integer.
        b: The second integer.

    Returns:
        The product of the two integers.
    """
    return a * b


class MultiplyEnvironment:
    """A TRL environment: `reset` per rollout, its public methods are the tools."""

    def reset(self, **kwargs):
        self.calls = 0
        return None

    def multiply(self, a: int, b: int) -> int:
        """
        Multiplies two integers.

        Args:
            a: The first integer.
            b: The second integer.

        Returns:
            The product of the two integers.
        """
        self.calls += 1
        return a * b


class TaskEnvironment(MultiplyEnvironment):
    """An environment that owns the data: `reset` returns the task (always the same one here)."""

    def reset(self, **kwargs):
        super().reset(**kwargs)
        return "What is 3 times 4?"


def build_tool_tokenizer() -> PreTrainedTokenizerFast:
    characters = [c for c in string.printable if c not in "\x0b\x0c"]
    vocab = {token: i for i, token in enumerate(SPECIAL + characters + ["<|unk|>"])}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<|unk|>"))
    pattern = "|".join(re.escape(token) for token in SPECIAL) + r"|[\s\S]"
    backend.pre_tokenizer = pre_tokenizers.Split(Regex(pattern), behavior="isolated")
    backend.decoder = decoders.Fuse()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token="<|unk|>",
        clean_up_tokenization_spaces=False,
    )
    tokenizer.add_special_tokens({"additional_special_tokens": ["<|im_start|>"]})
    tokenizer.chat_template = qwen3_chat_template
    return tokenizer


def build_tool_model(path) -> str:
    tokenizer = build_tool_tokenizer()
    config = Qwen3Config(
        vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
        num_key_value_heads=1, head_dim=8, max_position_embeddings=2048, pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id, tie_word_embeddings=True,
    )  # fmt: skip
    torch.manual_seed(0)
    Qwen3ForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


def scripted_generate(tokenizer, calls: list, tool_rows: int):
    """A `generate` that answers the first call's first `tool_rows` rows with a tool call and the others (and every
    later call, the tool loop's continuations) with an answer. Each call's row count and its logits processors are
    appended to `calls`."""

    def generate(input_ids, logits_processor=None, **kwargs):
        first = not calls
        calls.append({"rows": input_ids.size(0), "logits_processor": list(logits_processor or [])})
        texts = [TOOL_CALL if first and i < tool_rows else ANSWER for i in range(input_ids.size(0))]
        ids = [tokenizer(text, add_special_tokens=False).input_ids for text in texts]
        width = max(map(len, ids))
        completion = torch.tensor([row + [tokenizer.pad_token_id] * (width - len(row)) for row in ids])
        return torch.cat([input_ids, completion.to(input_ids.device)], dim=1)

    return generate
