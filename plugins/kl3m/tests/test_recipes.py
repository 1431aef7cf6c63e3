"""The one-liner the README documents: train the legal BPE on the licences, save, load back
verified (a different file is refused); and the term list against the real licence texts."""

from __future__ import annotations

import pytest
from tokensmith_kl3m import load_tokenizer, train_legal_bpe
from tokensmith_kl3m.evaluation import read_terms
from tokensmith_kl3m.recipes import legal_texts

from tokensmith import CorruptArtifactError, DataUnavailableError, Registry


def _licences_or_skip(limit: int) -> list[str]:
    try:
        return list(legal_texts("train", limit=limit))
    except DataUnavailableError as exc:
        pytest.skip(f"the licenses dataset is not installed: {exc.message} ({exc.hint})")


def test_train_save_and_load_the_legal_bpe(tmp_path):
    _licences_or_skip(1)
    tokenizer = train_legal_bpe(4096, out=tmp_path / "legal", limit=40, progress=False)
    assert (tmp_path / "legal" / "tokenizer.json").is_file() and tokenizer.vocab_size == 4096
    again = load_tokenizer(tmp_path / "legal", fingerprint=tokenizer.fingerprint())
    text = "The Licensor grants a sublicense under 17 U.S.C. 106(iv) in 1999."
    ids = again.encode(text).ids
    assert ids == tokenizer.encode(text).ids and again.decode(ids) == text
    with pytest.raises(CorruptArtifactError, match="fingerprint"):
        load_tokenizer(tmp_path / "legal", fingerprint="0" * 64)


def test_every_packaged_term_occurs_in_the_licence_texts():
    texts = _licences_or_skip(None)
    terms = list(read_terms(None, component="test", registry=Registry.from_environment()))
    lowered = [t.lower() for t in texts]
    missing = [term for term in terms if not any(term in text for text in lowered)]
    assert not missing
