"""The GPT-2 pre-token case analysis + merge-spine pair test equal plain re-encoding."""

from __future__ import annotations

import pytest
import torch
from tokensmith_byteprob.byte_view import TokenBytes, ValidEncodings

TEXTS = ("def fibonacci(n):\n    if n < 2:\n        return n\n",
         "x = foo(a, b)  \n\n    return x's 'll  it's we'll \t\tdone!!  12345 3.14 ...",
         "Hello  world\n \n  \"quoted\" don't ,,,;; (1+2)=3 été café  \u3000x \x1cy")


def _states(valid, texts):
    for text in texts:
        data = text.encode()
        for end in range(1, len(data) + 1):
            try:
                data[:end].decode()
            except UnicodeDecodeError:
                continue
            yield data[:end]


@pytest.fixture(scope="module")
def smollm2_tables(smollm2):
    """SmolLM2's byte tables and rule, built once for every case (they depend on the tokenizer alone)."""
    _, tok = smollm2
    view = TokenBytes(tok, tok.vocab_size)
    return view, ValidEncodings(tok, view)


def _compare(tokenizer, states, tables=None):
    view, valid = tables or (None, None)
    if view is None:
        view = TokenBytes(tokenizer, tokenizer.vocab_size)
        valid = ValidEncodings(tokenizer, view)
    checked = 0
    for y in states:
        ids = valid.encode(y)
        cut = valid.cut(y)
        offsets = [0]
        for i in ids:
            offsets.append(offsets[-1] + len(view.bytes[i]))
        assert cut in offsets, y  # the cut is a token boundary of the canonical encoding
        tail, tail_ids = y[cut:], ids[offsets.index(cut):]
        fast = valid._gpt2_mask(tail, tail.decode(), tail_ids)
        slow = valid._tail_mask(tail, tail_ids, True, view.text_ids.tolist())
        diff = torch.nonzero(fast != slow).flatten().tolist()
        assert not diff, (y, [view.bytes[v] for v in diff[:5]])
        checked += 1
    return checked


def test_fast_mask_equals_reencoding_tiny(tiny_byte_level_lm):
    tok = tiny_byte_level_lm.tokenizer
    assert _compare(tok, _states(None, TEXTS)) > 150


@pytest.mark.parametrize("text", [b"x = a...", b"we'l", b"it'", b"done!!  ", b"return x\n\n", b"  \"\"",
                                  b"The capital of Fra", b"caf\xc3\xa9 12"])
def test_fast_mask_equals_reencoding_smollm2(smollm2, smollm2_tables, text):
    _, tok = smollm2
    assert _compare(tok, [text], smollm2_tables) == 1
