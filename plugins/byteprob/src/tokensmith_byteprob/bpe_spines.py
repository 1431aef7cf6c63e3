"""When does BPE keep two adjacent tokens apart? A vectorised pair test from merge ranks.

Used by the valid-encoding mask of Phan et al. (arXiv 2410.09303, Sec. 3): for a
pre-token whose canonical tokens end in ``u``, appending the bytes of ``v`` keeps
``[..., u, v]`` canonical iff no merge across the boundary fires (the bigram
view of canonical BPE, Vieira et al. 2025, arXiv 2506.07956).

In a trained merge table every token has one producing merge and a merge ranks
after the merges that made its operands, so BPE applies merges in rank order.
The symbols at the right edge of ``u`` over time are its *right spine* (``u``,
its right child, ...); symbol ``a`` lives until the rank of the merge that
consumes it. Likewise the *left spine* of ``v``. A cross merge ``(a, b)`` of rank
``r`` fires iff ``r`` is below the consuming rank of ``a`` and at most that of ``b``
(ties go to the leftmost pair).
"""

from __future__ import annotations

import math
from typing import Any

from tokensmith import Tokenizer

INF = math.inf


class MergeSpines:
    """Spines of every token of a byte-level BPE and an index: symbol -> tokens whose left
    spine holds it, sorted by the rank at which it is consumed there."""

    def __init__(self, tokenizer: Tokenizer, vocab_size: int) -> None:
        import numpy as np

        settings = tokenizer.describe()["model"]
        vocab = tokenizer.vocab(added_tokens=False)  # what merges can produce
        producer: dict[int, tuple[int, int, int]] = {}
        self.irregular = set()
        self.partners: dict[int, tuple[Any, Any]] = {}
        pairs: dict[int, list[tuple[int, int]]] = {}
        for rank, (a, b) in enumerate(tokenizer.merges()):
            ia, ib, ic = vocab.get(a), vocab.get(b), vocab.get(a + b)
            if ia is None or ib is None or ic is None:
                continue
            if ic in producer:
                self.irregular.add(ic)
            producer[ic] = (ia, ib, rank)
            pairs.setdefault(ia, []).append((rank, ib))
        for ic, (ia, ib, rank) in producer.items():
            if any(x in producer and producer[x][2] >= rank for x in (ia, ib)):
                self.irregular.add(ic)
        self.enabled = not settings.get("ignore_merges") and not settings.get("dropout")
        self.producer = producer
        for ia, lst in pairs.items():
            lst.sort()
            self.partners[ia] = (np.array([r for r, _ in lst]), np.array([b for _, b in lst]))
        holders: dict[int, list[tuple[float, int]]] = {}
        for v in range(min(vocab_size, len(vocab) + 1)):
            for symbol, consumed in self.spine(v, left=True):
                holders.setdefault(symbol, []).append((consumed, v))
        self.irregular_left = np.zeros(vocab_size, dtype=bool)
        for v in range(vocab_size):
            self.irregular_left[v] = any(x in self.irregular for x, _ in self.spine(v, left=True))
        self.holders: dict[int, tuple[Any, Any]] = {}
        for symbol, lst in holders.items():
            lst.sort(key=lambda x: -x[0])
            self.holders[symbol] = (np.array([-c for c, _ in lst]), np.array([v for _, v in lst]))

    def spine(self, token: int, *, left: bool) -> list[tuple[int, float]]:
        """(symbol, rank at which it is consumed) from the token down to its edge byte."""
        out = [(token, INF)]
        while token in self.producer:
            ia, ib, rank = self.producer[token]
            token = ia if left else ib
            out.append((token, rank))
        return out

    def regular_right(self, u: int) -> bool:
        return self.enabled and not any(x in self.irregular for x, _ in self.spine(u, left=False))

    def crossing(self, u: int) -> Any:
        """Token ids ``v`` for which a merge across the boundary of ``[u, v]`` fires."""
        import numpy as np

        found = []
        for a, alive_a in self.spine(u, left=False):
            if a not in self.partners:
                continue
            ranks, partners = self.partners[a]
            stop = len(ranks) if alive_a == INF else int(np.searchsorted(ranks, alive_a))
            for r, b in zip(ranks[:stop].tolist(), partners[:stop].tolist()):
                if b in self.holders:
                    neg_alive, ids = self.holders[b]
                    # b consumed at rank r is consumed by this very merge, at a position to the
                    # right: BPE merges the leftmost occurrence first, so the cross merge wins
                    found.append(ids[: int(np.searchsorted(neg_alive, -r, side="right"))])
        return np.unique(np.concatenate(found)) if found else np.zeros(0, dtype=np.int64)
