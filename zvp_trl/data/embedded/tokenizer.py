# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
"""A character-level tokenizer for the embedded arithmetic task, built offline with `tokenizers`.

Every character of the task's alphabet is one token; ``\\boxed{`` is a single token so the answer marker costs one
sampling decision. Decoding concatenates tokens, so ``decode(encode(text)) == text`` for any text over the alphabet.
"""

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast


PAD_TOKEN = "<|pad|>"
EOS_TOKEN = "<|endoftext|>"
UNK_TOKEN = "<|unk|>"
BOXED_TOKEN = "\\boxed{"
ALPHABET = list("0123456789+-=?:QA ") + ["\n", "}", "{", "\\"] + list("abcdefghijklmnopqrstuvwxyz.,()*/")


def build_tokenizer() -> PreTrainedTokenizerFast:
    """Builds the tokenizer (deterministic: the vocabulary order is fixed)."""
    vocab = {token: i for i, token in enumerate([PAD_TOKEN, EOS_TOKEN, UNK_TOKEN, BOXED_TOKEN] + ALPHABET)}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK_TOKEN))
    # One piece per character, except the boxed marker, which is kept whole.
    backend.pre_tokenizer = pre_tokenizers.Split(Regex(r"\\boxed\{|[\s\S]"), behavior="isolated")
    backend.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        eos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        unk_token=UNK_TOKEN,
        clean_up_tokenization_spaces=False,
        model_max_length=256,
    )
