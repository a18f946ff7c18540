# Copyright 2026 The zvp_trl Authors. Licensed under the Apache License, Version 2.0.
from math import comb

import pytest

from zvp_trl.evaluation.accuracy import pass_at_k


pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    "n, c, k, expected",
    [
        (8, 0, 8, 0.0),
        (8, 1, 8, 1.0),
        (8, 8, 1, 1.0),
        (8, 2, 1, 0.25),  # pass@1 = c / n
        (4, 1, 2, 0.5),  # 1 - C(3,2)/C(4,2) = 1 - 3/6
        (10, 3, 5, 1 - 21 / 252),  # 1 - C(7,5)/C(10,5)
    ],
)
def test_pass_at_k_hand_values(n, c, k, expected):
    assert pass_at_k(n, c, k) == pytest.approx(expected, abs=1e-12)


def test_pass_at_k_large_n_is_exact():
    n, c, k = 1000, 7, 50
    expected = 1 - comb(n - c, k) / comb(n, k)
    assert pass_at_k(n, c, k) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("n, c, k", [(8, 9, 1), (8, -1, 1), (8, 1, 0), (8, 1, 9)])
def test_pass_at_k_rejects_bad_counts(n, c, k):
    with pytest.raises(ValueError):
        pass_at_k(n, c, k)


def test_render_for_generation_passes_text_and_renders_chat_with_the_generation_prompt():
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    from zvp_trl.evaluation.accuracy import render_for_generation

    tokenizer = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel({"<unk>": 0}, unk_token="<unk>")))
    tokenizer.chat_template = (
        "{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}\n{% endfor %}"
        "{% if add_generation_prompt %}<assistant>{% if brief %}(brief){% endif %}{% endif %}"
    )
    assert render_for_generation(tokenizer, "Q: 1+1=?\nA:") == "Q: 1+1=?\nA:"
    messages = [{"role": "system", "content": "S"}, {"role": "user", "content": "What is 1+1?"}]
    assert render_for_generation(tokenizer, messages) == "<system>S\n<user>What is 1+1?\n<assistant>"
    assert render_for_generation(tokenizer, messages, brief=True).endswith("<assistant>(brief)")
