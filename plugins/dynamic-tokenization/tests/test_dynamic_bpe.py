"""Dynamic BPE (arXiv 2411.18553, section 3.1): exact agreement with a brute-force batch BPE, and
the paper's invariants — lossless, length monotone in merges, zero merges is the model's own
tokenization, no merge crosses a boundary, deterministic (ties broken by bytes)."""

from __future__ import annotations

import itertools
import unicodedata
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tokensmith_dynamic_tokenization import BOUNDARIES, BatchMerger, DynamicBPE, MergeCurve

from tokensmith import ConfigError, IncompatibleComponentsError, InputError, tiny_tokenizer

TOK = tiny_tokenizer("byte_level")
ALPHABET = "aabbcde  ,.-!'\n\t1é中\u3000"
texts_st = st.lists(st.text(alphabet=ALPHABET, min_size=1, max_size=30), min_size=1, max_size=4)


def _byte_at(text: str) -> list[int]:
    return [len(text[:k].encode("utf-8")) for k in range(len(text) + 1)]


def forbidden_offsets(text: str, boundary: str) -> set[int]:
    """The boundary types written out directly from their definitions."""
    at = _byte_at(text)
    n = len(text.encode("utf-8"))
    if boundary == "pretokens":
        return {at[p.span[0]] for p in TOK.pretokenize(text)} - {0, n}
    out = set()
    if boundary in ("word", "word_hyphen"):
        out |= {at[k] for k, ch in enumerate(text) if k and ch.isspace()}
    if boundary == "word_hyphen":

        def punct(c):
            return unicodedata.category(c)[0] in "PS"

        out |= {
            at[k]
            for k, ch in enumerate(text)
            if k and ch != "-" and punct(ch) and not text[k - 1].isspace() and not punct(text[k - 1])
        }
    return out


def whitespace_ok(text: str, s: int, e: int) -> bool:
    """The paper's rule: whitespace only at the start of a merged token, unless all whitespace."""
    at = _byte_at(text)
    chars = [(at[k], at[k + 1], ch) for k, ch in enumerate(text) if at[k + 1] > s and at[k] < e]
    inner = any(ch.isspace() for q, _, ch in chars if s < q)
    return not inner or all(ch.isspace() for _, _, ch in chars)


def brute_force(texts, boundary, steps):
    """Batch BPE recounting every pair at every step: rows of (bytes, start, end)."""
    rows, forbid = [], []
    for text in texts:
        pos, row = 0, []
        for i in TOK.encode(text).ids:
            b = TOK.token_bytes(i)
            row.append((b, pos, pos + len(b)))
            pos += len(b)
        rows.append(row)
        forbid.append(forbidden_offsets(text, boundary))

    def valid(r, x, y):
        return x[2] not in forbid[r] and whitespace_ok(texts[r], x[1], y[2])

    lengths = [sum(map(len, rows))]
    for _ in range(steps):
        counts = Counter(
            (x[0], y[0]) for r, row in enumerate(rows) for x, y in zip(row, row[1:]) if valid(r, x, y)
        )
        if not counts:
            break
        best = min(counts, key=lambda p: (-counts[p], p))
        for r, row in enumerate(rows):
            out, k = [], 0
            while k < len(row):
                if k + 1 < len(row) and (row[k][0], row[k + 1][0]) == best and valid(r, row[k], row[k + 1]):
                    out.append((row[k][0] + row[k + 1][0], row[k][1], row[k + 1][2]))
                    k += 2
                else:
                    out.append(row[k])
                    k += 1
            rows[r] = out
        lengths.append(sum(map(len, rows)))
    return rows, lengths


@settings(max_examples=40, deadline=None)
@given(texts=texts_st, boundary=st.sampled_from(BOUNDARIES), steps=st.integers(0, 40))
def test_agrees_with_brute_force_batch_bpe(texts, boundary, steps):
    merger = BatchMerger(TOK, texts, boundary=boundary)
    merger.run(steps)
    batch = merger.batch()
    expected, lengths = brute_force(texts, boundary, steps)
    assert [[(t.bytes, *t.span) for t in row] for row in batch.rows] == expected
    assert merger.lengths == lengths


@settings(max_examples=40, deadline=None)
@given(texts=texts_st, boundary=st.sampled_from(BOUNDARIES), steps=st.integers(0, 60))
def test_invariants(texts, boundary, steps):
    merger = BatchMerger(TOK, texts, boundary=boundary)
    base = merger.batch()
    merger.run(steps)
    batch = merger.batch()
    for text, row, base_row in zip(texts, batch.rows, base.rows):
        data = text.encode("utf-8")
        # (i) lossless: the tokens' bytes concatenate to the text, their pieces to the base ids
        assert b"".join(t.bytes for t in row) == data
        assert [i for t in row for i in t.pieces] == list(TOK.encode(text).ids)
        assert [t.span for t in row] == [
            (s, s + len(t.bytes)) for t, s in zip(row, [0] + [x.span[1] for x in row[:-1]])
        ]
        # (iii) zero merges: the model's own tokens, with their ids
        assert [t.id for t in base_row] == list(TOK.encode(text).ids)
        # (iv) no merge crosses a boundary: no junction between a token's pieces is a cut (a token
        # of the model's own may straddle a word boundary, "  "; pre-tokens it never crosses)
        cuts = forbidden_offsets(text, boundary)
        for t in row:
            s, e = t.span
            junctions = list(itertools.accumulate(len(TOK.token_bytes(i)) for i in t.pieces[:-1]))
            assert not cuts & {s + j for j in junctions}, (t, cuts)
            if boundary == "pretokens":
                assert not any(s < c < e for c in cuts)
            if t.merged:
                assert whitespace_ok(text, s, e)
            # a token with the bytes of a vocabulary token is that token
            assert (t.id is None) == (t.bytes not in {b for b in TOK.byte_table if b is not None})
    # (ii) length non-increasing in merges, strictly while pairs are left
    assert all(a > b for a, b in zip(merger.lengths, merger.lengths[1:]))
    assert len(set(batch.new_tokens)) == len(batch.new_tokens)
    assert set(batch.new_tokens) == {t.bytes for row in batch.rows for t in row if t.id is None}
    assert all(b"".join(TOK.token_bytes(i) for i in batch.pieces_of[t]) == t for t in batch.new_tokens)


@settings(max_examples=25, deadline=None)
@given(texts=texts_st, steps=st.integers(0, 30), seed=st.randoms())
def test_deterministic_and_independent_of_batch_order(texts, steps, seed):
    # (v): ties are broken by bytes, so the same texts in any order make the same merges
    order = list(range(len(texts)))
    seed.shuffle(order)
    one = BatchMerger(TOK, texts)
    two = BatchMerger(TOK, [texts[i] for i in order])
    one.run(steps)
    two.run(steps)
    assert one.merges == two.merges
    rows_one, rows_two = one.batch().rows, two.batch().rows
    assert [rows_two[order.index(i)] for i in range(len(texts))] == list(rows_one)


def test_boundary_types_on_a_sentence():
    text = "Hello, state-of-the-art world!  Hello, world!"
    tokens = {}
    for boundary in BOUNDARIES:
        merger = BatchMerger(TOK, [text], boundary=boundary)
        merger.run(None)  # every pair the boundary allows
        tokens[boundary] = [t.bytes.decode() for t in merger.batch().rows[0]]
    assert tokens["pretokens"] == [p.text for p in TOK.pretokenize(text)]
    assert tokens["word"] == ["Hello,", " state-of-the-art", " world!", " ", " Hello,", " world!"]
    assert tokens["word_hyphen"] == [
        "Hello",
        ",",
        " state-of-the-art",
        " world",
        "!",
        " ",
        " Hello",
        ",",
        " world",
        "!",
    ]
    assert tokens["sentence"] == ["Hello,", " state-of-the-art", " world!", "  ", "Hello,", " world!"]


def test_a_boundary_blind_bpe_crosses_pretokens_and_this_one_does_not():
    # the naive baseline: batch BPE with no boundary (junctions never forbidden) merges across
    # pre-tokens ("the" + "," ...); dynamic BPE over the same batch never does
    texts = ["the, the, the, the, the."] * 3
    merger = BatchMerger(TOK, texts, boundary="sentence")
    merger.run(None)
    cuts = forbidden_offsets(texts[0], "pretokens")
    assert any(any(t.span[0] < c < t.span[1] for c in cuts) for t in merger.batch().rows[0])
    merger = BatchMerger(TOK, texts, boundary="pretokens")
    merger.run(None)
    assert not any(any(t.span[0] < c < t.span[1] for c in cuts) for t in merger.batch().rows[0])


def test_most_frequent_pair_first_and_ties_by_bytes():
    merger = BatchMerger(TOK, ["xq xq xq zy zy", "zy qx qx"], boundary="pretokens")
    counts = {(merger._sym_bytes[a], merger._sym_bytes[b]): c for (a, b), c in merger.counts.items()}
    top = max(counts.values())
    merger.step()
    assert merger.merges[0] == min(p for p, c in counts.items() if c == top)


def test_target_reduction_stops_at_the_first_merge_reaching_it():
    texts = ["the cat sat on the mat with the hat", "a cat and a hat and a mat"]
    full = BatchMerger(TOK, texts)
    full.run(None)
    curve = full.lengths
    for target in (0.05, 0.2, 0.4):
        batch = DynamicBPE(target_reduction=target).tokenize_batch(TOK, texts)
        m = len(batch.merges)
        assert batch.reduction >= target
        assert all(length > (1 - target) * curve[0] for length in curve[:m])
        assert batch.total_length == curve[m]
    assert len(DynamicBPE(merges=3, target_reduction=0.9).tokenize_batch(TOK, texts).merges) == 3
    assert len(DynamicBPE(merges=10**6).tokenize_batch(TOK, texts).merges) == len(curve) - 1  # early exit
    mean = MergeCurve.average([curve], [2])
    assert mean.base == curve[0] / 2
    assert mean.merges_for(0.2) == len(DynamicBPE(target_reduction=0.2).tokenize_batch(TOK, texts).merges)
    assert mean.merges_for(0.99) is None


def test_bad_input_is_a_clear_error():
    with pytest.raises(InputError, match="no tokens"):
        BatchMerger(TOK, ["fine", ""])
    with pytest.raises(InputError, match="list of texts"):
        BatchMerger(TOK, "a text, not a batch")
    with pytest.raises(InputError, match="str"):
        BatchMerger(TOK, ["ok", 3])
    with pytest.raises(InputError, match="no text"):
        BatchMerger(TOK, [])
    with pytest.raises(ConfigError, match="boundary"):
        BatchMerger(TOK, ["a"], boundary="morphemes")
    with pytest.raises(InputError, match="special token"):
        BatchMerger(TOK, ["a b"], ids=[[TOK.bos_id] + list(TOK.encode("a b").ids)])
    with pytest.raises(InputError, match="outside the vocabulary"):
        BatchMerger(TOK, ["a"], ids=[[10 ** 6]])
    with pytest.raises(InputError, match="id lists"):
        BatchMerger(TOK, ["a", "b"], ids=[[1]])
    with pytest.raises(ConfigError, match="merges, target_reduction"):
        DynamicBPE()
    with pytest.raises(ValueError):
        DynamicBPE(merges=-1)
    with pytest.raises(ValueError):
        DynamicBPE(target_reduction=1.0)
    # a tokenizer whose tokens do not spell the text (a normalizer prepends "▁") is refused
    with pytest.raises(IncompatibleComponentsError, match="lossless") as err:
        BatchMerger(tiny_tokenizer("byte_fallback"), ["hello world"], component="dynamic-bpe")
    assert "dynamic-bpe" in str(err.value)
