"""A toy BPE tokenizer and a float64 Markov token LM, small enough for brute-force checks.

Phan et al. (arXiv 2410.09303) check their byte probabilities against exact
enumeration on a Markov chain (Sec. 5 of the workshop version, 2406.16829);
this is the same idea: with 13 ids and a known next-token table, every
cover set can be enumerated by brute force (:mod:`tokensmith_byteprob.brute_force`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tokensmith import Encoding, LanguageModel, LMState, Tokenizer, UnrepresentableTextError, require_text

#: single bytes, then merges in rank order; "bb" is in the vocabulary but no merge makes it,
#: so it never appears in a canonical encoding (the meanings differ on it)
TOY_BYTES = (b"a", b"b", b" ", b"\xc3", b"\xa9")
TOY_MERGES = ((b"a", b"b"), (b" ", b"a"), (b"ab", b"a"), (b"\xc3", b"\xa9"), (b"b", b" "))
TOY_EXTRA = (b"bb",)
TOY_SPECIALS = ("<s>", "</s>")


class ToyTokenizer(Tokenizer):
    """Byte-level BPE over a tiny vocabulary, no pre-tokenizer; ``<s>``/``</s>`` are special."""

    name = "toy-bpe"

    def __init__(self, prefix_bytes: bytes = b"") -> None:
        self.pieces: list[bytes] = list(TOY_BYTES) + [a + b for a, b in TOY_MERGES] + list(TOY_EXTRA)
        self._index = {p: i for i, p in enumerate(self.pieces)}
        self._ranks = {pair: r for r, pair in enumerate(TOY_MERGES)}
        self.bos_id = len(self.pieces)
        self.eos_id = len(self.pieces) + 1
        self.prefix_bytes = prefix_bytes

    @property
    def vocab_size(self) -> int:
        return len(self.pieces) + len(TOY_SPECIALS)

    @property
    def special_tokens(self) -> dict[int, str]:
        return {self.bos_id: TOY_SPECIALS[0], self.eos_id: TOY_SPECIALS[1]}

    def token_bytes(self, token_id: int) -> bytes | None:
        return self.pieces[token_id] if token_id < len(self.pieces) else None

    def encode(self, text: str, *, add_special_tokens: bool = False) -> Encoding:
        require_text(text, f"tokenizer '{self.name}'")
        data = self.prefix_bytes + text.encode("utf-8")
        missing = bytes(sorted({b for b in data if bytes([b]) not in self._index}))
        if missing:
            raise UnrepresentableTextError(f"bytes {missing.hex(' ')} have no token", missing=missing,
                                           component=f"tokenizer '{self.name}'")
        symbols = [bytes([b]) for b in data]
        while True:
            pairs = [(self._ranks.get((symbols[i], symbols[i + 1])), i) for i in range(len(symbols) - 1)]
            ranked = [(r, i) for r, i in pairs if r is not None]
            if not ranked:
                break
            _, i = min(ranked)
            symbols[i: i + 2] = [symbols[i] + symbols[i + 1]]
        ids = tuple(self._index[s] for s in symbols)
        return Encoding(ids, [(0, 0)] * len(ids))

    def decode(self, ids: Sequence[int]) -> str:
        return self.decode_bytes(ids).decode("utf-8", errors="replace")


class MarkovLM(LanguageModel):
    """A float64 LM whose next-token distribution depends on the last token only."""

    name = "toy-markov"

    def __init__(self, tokenizer: Tokenizer, seed: int = 0, spread: float = 1.5) -> None:
        import torch

        super().__init__()
        self._tokenizer = tokenizer
        gen = torch.Generator().manual_seed(seed)
        n = tokenizer.vocab_size
        logits = spread * torch.randn((n, n), generator=gen, dtype=torch.float64)
        self.table = torch.log_softmax(logits, dim=1)

    @property
    def tokenizer(self) -> Tokenizer:
        return self._tokenizer

    @property
    def context_length(self) -> int:
        return 10_000

    @property
    def vocab_size(self) -> int:
        return self._tokenizer.vocab_size

    def _count(self, n: int) -> None:
        self.counters["forward_calls"] += 1
        self.counters["forward_tokens"] += n

    def start(self, ids: Sequence[int]) -> LMState:
        ids = self.check_ids(ids)
        self._count(len(ids))
        return LMState(tuple(ids), self.table[ids[-1]])

    def extend(self, state: LMState, ids: Sequence[int]) -> LMState:
        ids = self.check_ids(ids, already=len(state.ids))
        if not ids:
            return state
        self._count(len(ids))
        return LMState(state.ids + tuple(ids), self.table[ids[-1]])

    def fork(self, state: LMState) -> LMState:
        return LMState(state.ids, state.logprobs)

    def logprobs_batch(self, sequences: Sequence[Sequence[int]]) -> list[Any]:
        seqs = [self.check_ids(s) for s in sequences]
        self._count(sum(len(s) for s in seqs))
        return [self.table[list(s)] for s in seqs]
