"""Gold morpheme boundaries from the treebank's inflectional groups, scored exactly."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from tokensmith_linguistic_integrity.boundaries import BoundaryScore, gold_words, token_boundaries


def test_inflectional_groups_give_the_gold_boundaries():
    # "Birleşmiş Milletler'e göre, katıldığı" as the treebank splits it
    text = "Birleşmiş Milletler'e göre, katıldığı"
    forms = ["Bir", "leş", "miş", "Milletler'e", "göre", ",", "katıl", "dığı"]
    lemmas = ["bir", None, None, "millet", "göre", ",", "katıl", None]
    alignment = gold_words(text, forms, lemmas)
    spans = {(w.span, tuple(sorted(w.boundaries))) for w in alignment.words}
    assert spans == {((0, 9), (3, 6)), ((22, 26), ()), ((28, 37), (33,))}
    assert alignment.skipped == 2  # Milletler'e and "," are not words of letters
    assert gold_words(text, forms[:-1], lemmas[:-1]) is None  # forms that do not spell the text


def test_scores_by_hand():
    text = "katıldığı ev"
    alignment = gold_words(text, ["katıl", "dığı", "ev"], ["katıl", None, "ev"])
    score = BoundaryScore()
    cuts = token_boundaries([(0, 3), (3, 5), (5, 9), (9, 12)])  # kat|ıl|dığı| ev
    for word in alignment.words:
        score.add(word, cuts)
    m = score.metrics()
    assert (score.true_positive, score.false_positive, score.false_negative) == (1, 1, 0)
    assert m["boundary_precision"] == 0.5 and m["boundary_recall"] == 1.0 and m["boundary_f1"] == 2 / 3


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.text("abcçğ", min_size=1, max_size=4), min_size=1, max_size=4),
                min_size=1, max_size=5))
def test_a_tokenizer_cutting_exactly_at_gold_scores_one_and_any_cut_counts(words):
    forms, lemmas, spans, text, at = [], [], [], "", 0
    for groups in words:
        for j, group in enumerate(groups):
            forms.append(group)
            lemmas.append(group if j == 0 else None)
            spans.append((at, at + len(group)))
            text += group
            at += len(group)
        text += " "
        at += 1
    alignment = gold_words(text, forms, lemmas)
    exact = BoundaryScore()
    for word in alignment.words:
        exact.add(word, token_boundaries(spans))
    assert exact.false_positive == exact.false_negative == 0
    assert exact.gold == sum(len(g) - 1 for g in words)
    chars = BoundaryScore()  # one token per character: every gold boundary, plus the rest
    for word in alignment.words:
        chars.add(word, token_boundaries((i, i + 1) for i in range(len(text))))
    assert chars.false_negative == 0
    assert chars.true_positive + chars.false_positive == sum(len("".join(g)) - 1 for g in words)
