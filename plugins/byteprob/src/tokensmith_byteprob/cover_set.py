"""Next-byte distributions of a token LM by the Byte-Token Representation lemma.

Phan et al., "Exact Byte-Level Probabilities from Tokenized Language Models"
(ICLR 2025, arXiv 2410.09303), Sec. 3:

* ``cover(x)``: token sequences ``t`` whose bytes before the last token are a
  proper prefix of ``x`` and whose bytes start with ``x``;
* Byte-Token Representation lemma: ``P(x is a prefix) = sum_{t in cover(x)} P(t)``;
* next byte: ``P(b | x) = P(cover(x b)) / P(cover(x))``, computed incrementally:
  (a) covers whose last token already runs past ``x`` vote for their next byte,
  (b) each sequence ending exactly at ``x`` adds ``P(t) * sum_{v starts with b} p(v | t)``.

Meanings (``meaning``):

* ``"canonical-local"`` (alias ``"canonical"``, the default): the paper's valid
  encodings ``enc(dec(t)) == t``, enforced by masking invalid next tokens and
  renormalizing at every step (what the paper's code does at inference);
* ``"canonical-global"``: the raw model conditioned on canonical covers, no
  local renormalization (Vieira et al. 2024, "Language models over canonical
  byte-pair encodings"): ``P(b | x) = G(x b) / (sum_b' G(x b') + G_end(x))`` with
  ``G(y)`` the raw mass of the canonical covers of ``y``;
* ``"marginal"``: the sum over every tokenization, no mask.

Certified deferral (issue 13, item 1). Part (b) needs a forward for each
sequence ending exactly at ``x``; mid-word on a trained model that sequence
holds a tiny share of the prefix mass. A sequence ``T`` whose forward has not
run is *pending*: everything it could still contribute to any later cover set
is at most ``P(T)`` (its descendants' masses sum to at most its own). With
``L`` the pending mass and ``M`` the mass included, every returned probability
is within ``L / (M + L)`` of the exact one (the certified ``bound``), and
pending sequences are expanded, largest first, until that is at most
``tolerance`` (0: every forward runs, the exact computation). In the canonical
meanings no cover runs across the start of the last whitespace run (the GPT-2
regex), so pending sequences that are not on the canonical path to it have
probability 0 and are dropped there, exactly.

Certified-exact prefetching (issue 13, item 1: fewer forward *calls*). In the canonical
meanings one sequence ends at each byte, ``P + t`` with ``t`` a byte-prefix of the token
``P`` is most likely to continue with (``P`` = " capital of", covers " Paris": ``P`` + " P",
" Pa", " Par", " Paris" at the bytes of the word), so ~1 forward per byte is needed while a
token step reads several bytes. When a forward of a child of ``P`` must run, the ``prefetch``
most likely straddling covers of ``P`` are taken and every child of ``P`` whose token is a
byte-prefix of one of theirs (still live: positive mass so far) is put in the same
``extend_batch`` on ``P``'s state; their states are kept on ``P`` and used, without a new
call, when the bytes reach them. The states are the same ones a later forward would compute
(prefetch 0 gives today's calls), so the result is exact; only which rows share a batched
forward changes (float32 noise). A kept state whose token no longer matches the bytes is
dropped.

Bounds: ``max_covers`` token sequences in a cover set, ``max_exact_covers``
expanded sequences ending on the byte boundary, and ``max_memory`` bytes of
tensors that the cover set holds (next-token rows, KV segments, cover tensors)
plus the transient batch of the next forward. Past any of them a
:class:`CoverSetTooLargeError` (a :class:`~tokensmith.ResourceLimitError`) is
raised before the forward runs.

Text ends when the model emits an id without text (EOS, any special token,
padding rows of the output layer): that mass is the :data:`BYTE_EOS` entry.
"""

from __future__ import annotations

import inspect
import math
from collections import ChainMap
from collections.abc import Sequence
from typing import Any, Literal, get_args

import attrs

from tokensmith import (
    BYTE_EOS,
    ByteLanguageModel,
    ByteState,
    InputError,
    LanguageModel,
    LMState,
    ResourceLimitError,
    TokensmithError,
)

from .byte_view import TokenBytes, ValidEncodings, check_byte_tokenizer, check_vocab, utf8_prefix_ok

Meaning = Literal["canonical-local", "canonical-global", "marginal", "canonical"]
MEANINGS: tuple[str, ...] = get_args(Meaning)
#: "canonical" is today's meaning under its old name
ALIASES = {"canonical": "canonical-local"}
InvalidUtf8 = Literal["unjudged", "invalid"]
INVALID_UTF8: tuple[str, ...] = get_args(InvalidUtf8)
Specials = Literal["error", "parse"]
SPECIALS: tuple[str, ...] = get_args(Specials)
#: default tolerance of the certified bound: below the float32 noise floor (~1e-6 per
#: probability, measured on SmolLM2), so a float32 model's distributions do not change visibly
TOLERANCE = 1e-7
#: default bound on the token sequences of one cover set
MAX_COVERS = 200_000
#: default bound on the expanded covers ending on the byte boundary (each: a forward and a row)
MAX_EXACT_COVERS = 1024
#: default bound on the tensor bytes a cover set holds, plus the next forward's batch
MAX_MEMORY = 1 << 30
#: default number of top covers whose byte-prefix chains are prefetched with a needed forward
PREFETCH = 1
#: prefetching is skipped when the most likely straddling cover of the parent holds less than this
#: share of the mass of the next covers (the included ones and the sequences being forwarded): the
#: text then rarely follows it (SmolLM2 greedy walks: every call below 0.1 got no hit, most above 0.3
#: got all). A wider forward is not free: on the 2-core CPU a SmolLM2 forward of 2-4 rows costs
#: ~1.05-1.3 of 1 row with the core's few-row kernel (``HFCausalLM.few_row_linears``; ~1.5-1.7 without);
#: 0.03 gave the same calls per byte
PREFETCH_SHARE = 0.1
#: prefetched states whose next-token rows are computed in their batch rather than deferred until
#: reached: the shortest tokens of the chain (reached first). Each costs a vocabulary-sized row held
#: a byte or so early; each saves a one-row pass of the output layer later
EAGER_PREFETCH = 1
#: a batched forward is split so that its logits plus shared-past copies stay under this many floats
BATCH_LOGITS = 1 << 24


def check_meaning(instance: Any, attribute: Any, value: Any) -> None:
    """attrs-style validator: ``value`` is one of :data:`MEANINGS`."""
    if value not in MEANINGS:
        raise ValueError(f"{attribute.name} must be one of {', '.join(map(repr, MEANINGS))}, got {value!r}")


def check_tolerance(instance: Any, attribute: Any, value: Any) -> None:
    """attrs-style validator: a float in [0, 1)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ValueError(f"{attribute.name} must be a number in [0, 1), got {value!r}")


def check_choice(choices: tuple[str, ...]) -> Any:
    def check(instance: Any, attribute: Any, value: Any) -> None:
        if value not in choices:
            shown = ", ".join(map(repr, choices))
            raise ValueError(f"{attribute.name} must be one of {shown}, got {value!r}")
    return check


class CoverSetTooLargeError(ResourceLimitError):
    """A cover set outgrew ``max_covers``, ``max_exact_covers`` or ``max_memory`` (in the
    marginal meaning it grows exponentially with the length of the text)."""


class ZeroProbabilityError(TokensmithError, ValueError):
    """A byte with probability 0 (no cover reaches it) was read."""


class SpecialTokenTextError(InputError):
    """A byte prompt spells a special token (``<|im_start|>``...): it is neither silently
    read as bytes nor as the control token; pass it as ``context`` or use ``specials="parse"``."""


@attrs.define(eq=False)
class Node:
    """A token sequence whose bytes end exactly at ``end``.

    ``ids`` exclude the context; ``logq`` is relative to the head (the fixed
    tokens before the last pre-token of the prompt, whose probability cancels in
    every conditional). A node is *pending* until its forward has run; then
    ``state`` is its LM state (a shared KV segment on HF models), and while it
    ends at the current byte ``row`` (the LM's next-token log-probabilities, -inf
    where the validity mask of the canonical meanings excludes a token; ``mask``
    stays None: it is applied to the row), ``logz`` (the masked normalizer) and
    ``buckets`` (mass of the next token's first byte, :data:`BYTE_EOS`: no text)
    describe its next token. ``parent``: the expanded node it extends.
    """

    ids: tuple[int, ...]
    end: int
    logq: float
    parent: Node | None = None
    state: LMState | None = None
    row: Any = None
    mask: Any = None
    logz: float = 0.0
    buckets: Any = None
    handle: Node | None = None
    #: next-token id -> LM state of ``ids + (id,)``, computed ahead in a batch (prefetching)
    prefetched: dict[int, LMState] | None = None


@attrs.define(eq=False)
class Straddle:
    """Covers ``node.ids + (v,)`` for each ``v`` in ``ids``, with ``offset`` bytes of ``v`` read.

    Kept as the sub-row of ``node``'s next-token row that is still consistent with the bytes
    (issue 13, item 2): ``ids`` (uint16 for vocabularies of at most 65,536 ids, else int32; index
    with ``ids.int()``) and ``vals``, the row's own entries there (the model's
    dtype, -inf where invalid), with ``base`` = ``node.logq`` and ``logz`` = ``node.logz``.
    :attr:`logq` is recomputed from them when read, by the same float64 operations as
    ``base + (row[ids].double() - logz)`` at the branch, so it has the same bits, at 6 bytes a
    cover (float32 models, uint16 ids) instead of 16 for int64 ids and float64 log-masses."""

    node: Node
    ids: Any
    vals: Any
    base: float
    logz: float
    offset: int

    @property
    def logq(self) -> Any:
        """log q of each cover relative to the head (float64)."""
        return self.base + (self.vals.double() - self.logz)


@attrs.define(eq=False)
class CoverSet:
    """``cover(data)``: expanded sequences ending exactly at ``len(data)``, straddling ones,
    and pending ones (ending at or before ``len(data)``, forward not run).

    ``bound``: the certified bound on |error| of every probability of this state's
    distribution; ``log_mass``: log of the included mass of the next symbols (relative to
    the head); ``log_cover`` / ``log_cover_hi``: log of the mass of ``cover(data)`` known
    to be there / at most there (they differ by old pending sequences)."""

    data: bytes
    exact: list[Node]
    straddles: list[Straddle]
    pending: list[Node] = attrs.field(factory=list)
    cut: int = 0
    head: Node | None = None
    context: tuple[int, ...] = ()
    bound: float = 0.0
    log_mass: float = 0.0
    log_cover: float = 0.0
    log_cover_hi: float = 0.0

    def __len__(self) -> int:
        return len(self.exact) + len(self.pending) + sum(len(s.ids) for s in self.straddles)

    def sequences(self) -> list[tuple[int, ...]]:
        """Every included or pending cover as a token tuple (for tests and inspection)."""
        out = [n.ids for n in self.exact] + [n.ids for n in self.pending if n.end == len(self.data)]
        for s in self.straddles:
            out += [s.node.ids + (int(v),) for v in s.ids]
        return out


def _logsumexp(values: list[float]) -> float:
    if not values:
        return -math.inf
    top = max(values)
    if top == -math.inf:
        return top
    return top + math.log(sum(math.exp(v - top) for v in values))


class ByteProbLM(ByteLanguageModel):
    """A :class:`ByteLanguageModel` derived exactly (within a certified ``tolerance``) from a
    token :class:`LanguageModel`.

    ``start(prompt)`` may end anywhere, mid-token or mid-character; ``logprobs``
    has 257 entries (bytes, then :data:`BYTE_EOS`), float64, and ``bound(state)``
    is the certified bound on the error of each of them. ``context`` (token ids,
    or text whose special-token strings are control tokens, e.g.
    :func:`tokensmith.chatml_prompt`'s) is what the byte prompt follows; default
    the LM's ``start_ids``. ``counters`` holds ``states``, ``max_covers_seen``,
    ``expanded`` and ``deferred`` and reads the wrapped LM's ``forward_calls`` /
    ``forward_tokens`` through. ``runtime`` is the wrapped LM's.
    """

    def __init__(self, lm: LanguageModel, *, meaning: Meaning = "canonical-local",
                 tolerance: float = TOLERANCE,
                 max_covers: int = MAX_COVERS, max_exact_covers: int = MAX_EXACT_COVERS,
                 max_memory: int = MAX_MEMORY, invalid_utf8: InvalidUtf8 = "unjudged",
                 specials: Specials = "error", context: Sequence[int] | str | None = None,
                 prefetch: int = PREFETCH, name: str | None = None) -> None:
        import torch

        component = f"byte LM '{name or 'byteprob'}'"
        if meaning not in MEANINGS:
            raise InputError(f"meaning must be one of {MEANINGS}, got {meaning!r}", component=component)
        meaning = ALIASES.get(meaning, meaning)
        self.name = name or f"byteprob({lm.name}, {meaning})"
        component = f"byte LM '{self.name}'"
        if isinstance(prefetch, bool) or not isinstance(prefetch, int) or prefetch < 0:
            raise InputError(f"prefetch must be an int >= 0, got {prefetch!r}", component=component)
        for key, value in (("max_covers", max_covers), ("max_exact_covers", max_exact_covers),
                           ("max_memory", max_memory)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InputError(f"{key} must be an int >= 1, got {value!r}", component=component)
        if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)) or not 0 <= tolerance < 1:
            raise InputError(f"tolerance must be a number in [0, 1), got {tolerance!r}", component=component)
        for key, value, choices in (("invalid_utf8", invalid_utf8, INVALID_UTF8),
                                    ("specials", specials, SPECIALS)):
            if value not in choices:
                raise InputError(f"{key} must be one of {choices}, got {value!r}", component=component)
        if invalid_utf8 == "invalid" and meaning == "marginal":
            raise InputError("invalid_utf8='invalid' is a validity rule of the canonical meanings; the "
                             "marginal meaning sums over every tokenization", component=component,
                             hint="use meaning='canonical-local' or 'canonical-global'")
        check_byte_tokenizer(lm.tokenizer, component)
        check_vocab(lm, component)
        self.lm = lm
        self.meaning = meaning
        self.tolerance = float(tolerance)
        self.max_covers = max_covers
        self.max_exact_covers = max_exact_covers
        self.max_memory = max_memory
        self.invalid_utf8 = invalid_utf8
        self.specials = specials
        self.prefetch = prefetch
        # prefetched rows skip the LM's output layer until reached (LanguageModel.extend_batch's
        # defer): an LM whose extend_batch predates it computes them at once, which is also exact
        self._defer = "defer" in inspect.signature(lm.extend_batch).parameters
        self.view = TokenBytes(lm.tokenizer, lm.vocab_size)
        # straddling covers' token ids: 2 bytes each where the vocabulary allows (SmolLM2: 49,152 ids)
        self._id_dtype = torch.uint16 if lm.vocab_size <= 1 << 16 else torch.int32
        self.valid = ValidEncodings(lm.tokenizer, self.view) if meaning != "marginal" else None
        self.counters: ChainMap[str, int] = ChainMap(
            {"states": 0, "max_covers_seen": 0, "expanded": 0, "deferred": 0, "prefetched": 0,
             "prefetch_hits": 0}, lm.counters)
        self.context = self._context_ids(context)
        self._specials = sorted(((text.encode("utf-8"), i) for i, text in lm.tokenizer.special_tokens.items()
                                 if text), key=lambda p: -len(p[0]))
        self._kv_per_token: float | None = None
        self._head_logp: dict[tuple, float] = {}

    @property
    def runtime(self) -> Any:
        return getattr(self.lm, "runtime", None)

    @property
    def component(self) -> str:
        return f"byte LM '{self.name}'"

    # -- contexts and special-token text (issue 13, item 4) ---------------------------
    def _context_ids(self, context: Sequence[int] | str | None) -> tuple[int, ...]:
        if context is None:
            return tuple(self.lm.start_ids)
        if isinstance(context, bytes):
            raise InputError("context must be token ids or text, got bytes", component=self.component,
                             hint="decode it: context=data.decode('utf-8')")
        if isinstance(context, str):  # trusted text: its special-token strings are control tokens
            parsed = self.lm.tokenizer.encode(str(context), allow_special=True).ids
            ids = tuple(self.lm.start_ids) + tuple(parsed)
        else:
            ids = tuple(self.lm.check_ids(context))
        if not ids:
            raise InputError("the context is empty: the first token needs something to condition on",
                             component=self.component, hint="leave context=None for the LM's start ids")
        return ids

    def split_specials(self, prompt: bytes) -> tuple[tuple[int, ...], bytes]:
        """(ids of the part of ``prompt`` up to its last special-token string, the rest) when
        ``specials="parse"``; a :class:`SpecialTokenTextError` for any such string otherwise."""
        found = [(prompt.find(text), text, i) for text, i in self._specials if text in prompt]
        if not found:
            return (), prompt
        pos, text, _ = min(found)
        if self.specials == "error":
            raise SpecialTokenTextError(
                f"the byte prompt spells the special token {text.decode()!r} at byte {pos}",
                component=self.component,
                hint="pass what comes before the byte prompt as context= (token ids, or text whose specials "
                     "are parsed, e.g. tokensmith.chatml_prompt(...)), or build with specials='parse'")
        last = max(prompt.rfind(t) + len(t) for t, _ in self._specials if t in prompt)
        head = prompt[:last]
        try:
            text_head = head.decode("utf-8")
        except UnicodeDecodeError:
            raise InputError("the prompt's part up to its last special token is not UTF-8 text",
                             component=self.component) from None
        return tuple(self.lm.tokenizer.encode(text_head, allow_special=True).ids), prompt[last:]

    # -- ByteLanguageModel -------------------------------------------------
    def start(self, prompt: bytes, *, context: Sequence[int] | str | None = None) -> ByteState:
        if not isinstance(prompt, (bytes, bytearray)):
            raise InputError(f"prompt must be bytes, got {type(prompt).__name__}", component=self.component,
                             hint="encode text first: text.encode('utf-8')")
        prompt = bytes(prompt)
        parsed, rest = self.split_specials(prompt)
        ctx = (self.context if context is None else self._context_ids(context)) + parsed
        data = self.lm.tokenizer.prefix_bytes + rest
        missing = set(data) & self.lm.tokenizer.unrepresentable_bytes
        if missing:
            raise ZeroProbabilityError(
                f"the prompt has probability 0: bytes {bytes(sorted(missing)).hex(' ')} have no token",
                component=self.component,
                hint="tokenizer.unrepresentable_bytes lists the bytes no token spells")
        cut = self.valid.cut(data) if self.valid is not None else 0
        head_ids = self.valid.encode(data[:cut]) if cut else ()
        if not ctx and not head_ids:
            raise InputError("the model has no BOS/EOS id to condition on and the prompt has no complete "
                             "pre-token", component=self.component, hint="pass a context")
        if head_ids is None:
            raise InputError("the prompt's text before its last word is not encodable text",
                             component=self.component)
        head = Node(tuple(head_ids), cut, 0.0)
        head.state = self.lm.start(list(ctx) + list(head_ids))
        self._finish(head, data[:cut])
        self.counters["expanded"] += 1
        # the cover sets keep a light copy of the head (ids and cache, for log_prefix and KV sizes): its
        # row and mask go with the first byte
        light = Node(head.ids, head.end, 0.0, state=head.state)
        covers = CoverSet(data[:cut], [head], [], [], cut=cut, head=light, context=ctx)
        for b in data[cut:]:  # walk the last pre-token deferring every forward, then expand what is needed
            covers = self._step(covers, b)
        return self._state(prompt, covers, self._settle(covers))

    def advance(self, state: ByteState, byte: int) -> ByteState:
        if isinstance(byte, bool) or not isinstance(byte, int) or not 0 <= byte < 256:
            raise InputError(f"byte must be an int in 0..255, got {byte!r}", component=self.component)
        covers = self._step(state.data, byte)
        return self._state(state.prefix + bytes([byte]), covers, self._settle(covers))

    def score_continuation(self, state: ByteState, continuation: bytes) -> tuple[float, ByteState]:
        """(log P(continuation | state), the state after it), by the chain rule from ``state``
        (incremental: nothing before ``state`` is recomputed); ``-inf`` and ``state`` where a
        byte has probability 0."""
        total = 0.0
        for b in continuation:
            lp = float(state.logprobs[b])
            if lp == -math.inf:
                return -math.inf, state
            total += lp
            state = self.advance(state, b)
        return total, state

    def score_bytes(self, prompt: bytes, continuation: bytes) -> float:
        """log P(continuation | prompt); ``-inf`` when a byte of it has probability 0."""
        return self.score_continuation(self.start(prompt), continuation)[0]

    def bound(self, state: ByteState) -> float:
        """The certified bound: every probability of ``state.logprobs`` is within it of the
        tolerance-0 (exact) one."""
        return state.data.bound

    def log_prefix(self, state: ByteState) -> float:
        """log P(the text starts with ``state``'s bytes | context) under this meaning: the lemma's
        cover sum times the head's probability (canonical-global: the raw mass of the canonical
        covers). With pending sequences it is a lower bound; :meth:`log_prefix_bounds` gives both."""
        return self.log_prefix_bounds(state)[0]

    def log_prefix_bounds(self, state: ByteState) -> tuple[float, float]:
        covers: CoverSet = state.data
        head = self._head_logprob(covers.context, covers.head.ids)
        return head + covers.log_cover, head + covers.log_cover_hi

    # -- the lemma -----------------------------------------------------------
    def _state(self, prefix: bytes, covers: CoverSet, masses: tuple[Any, float] | None = None) -> ByteState:
        """The state of ``covers``; ``masses``: :meth:`_mass` of them as they are now, if known."""
        import torch

        self.counters["states"] += 1
        self.counters["max_covers_seen"] = max(self.counters["max_covers_seen"], len(covers))
        mass, shift = masses if masses is not None else self._mass(covers)
        total = float(mass.sum())
        if total <= 0:
            raise ZeroProbabilityError(
                f"byte 0x{covers.data[-1]:02x} has probability 0 after {covers.data[-21:-1]!r}: no token "
                "sequence covers it", component=self.component,
                hint="check state.logprobs[byte] > -inf before advancing")
        return ByteState(prefix, torch.log(mass / total), covers)

    def _mass(self, covers: CoverSet) -> tuple[Any, float]:
        """Next-symbol masses of the included covers (relative, times exp(-shift)); also sets the
        cover set's log masses and certified bound."""
        import torch

        logqs = [s.logq for s in covers.straddles]  # recomputed from the sub-rows once per call
        logs = [n.logq for n in covers.exact] + [float(q.max()) for q in logqs]
        shift = max(logs, default=0.0)
        shift = 0.0 if shift == -math.inf else shift
        mass = torch.zeros(BYTE_EOS + 1, dtype=torch.float64)
        for node in covers.exact:
            mass += math.exp(node.logq - shift) * node.buckets
        weights = [torch.exp(q - shift) for q in logqs]
        for s, w in zip(covers.straddles, weights):
            mass.scatter_add_(0, self.view.matrix[s.ids.int(), s.offset].long(), w)
        total = float(mass.sum())
        covers.log_mass = shift + math.log(total) if total > 0 else -math.inf
        end = len(covers.data)
        pend = [n.logq for n in covers.pending]
        log_left = _logsumexp(pend)
        if log_left == -math.inf:
            covers.bound = 0.0
        elif covers.log_mass == -math.inf:
            covers.bound = 1.0
        else:  # L / (M + L): every probability is within it (see the module docstring)
            covers.bound = 1.0 / (1.0 + math.exp(min(700.0, covers.log_mass - log_left)))
        known = [n.logq for n in covers.exact] + [n.logq for n in covers.pending if n.end == end] + [
            shift + math.log(float(w.sum())) for s, w in zip(covers.straddles, weights) if len(s.ids)]
        covers.log_cover = _logsumexp(known)
        covers.log_cover_hi = _logsumexp(known + [n.logq for n in covers.pending if n.end < end])
        return mass, shift

    def _step(self, covers: CoverSet, b: int) -> CoverSet:
        """cover(x) -> cover(x b): keep straddlers whose next byte is b, branch from expanded nodes,
        carry pending ones (:meth:`_settle` then expands those the bound needs)."""
        view = self.view
        data = covers.data + bytes([b])
        pending = list(covers.pending)
        straddles: list[Straddle] = []
        for s in covers.straddles:
            keep = view.matrix[s.ids.int(), s.offset] == b
            if s.node.prefetched:  # a kept state whose token runs on with another byte is never reached now
                for v in [v for v in s.node.prefetched
                          if int(view.lengths[v]) > s.offset and int(view.matrix[v, s.offset]) != b]:
                    del s.node.prefetched[v]
            if not bool(keep.any()):
                continue
            ids, vals = s.ids[keep], s.vals[keep]
            done = view.lengths[ids.int()] == s.offset + 1
            if bool(done.any()):
                logq = s.base + (vals[done].double() - s.logz)  # Straddle.logq of these entries
                pending += [Node(s.node.ids + (v,), len(data), q, s.node)
                            for v, q in zip(ids[done].tolist(), logq.tolist())]
            if not bool(done.all()):
                straddles.append(Straddle(s.node, ids[~done], vals[~done], s.base, s.logz, s.offset + 1))
        for node in covers.exact:
            new_straddles, children = self._branch(node, bytes([b]))
            straddles += new_straddles
            pending += children
        out = CoverSet(data, [], straddles, pending, cut=covers.cut, head=covers.head, context=covers.context)
        self._drop_off_path(out)
        count = len(out)
        if count == 0:
            raise ZeroProbabilityError(
                f"byte 0x{b:02x} has probability 0 after {covers.data[-20:]!r}: no token sequence covers it",
                component=self.component, hint="check state.logprobs[byte] > -inf before advancing")
        if count > self.max_covers:
            raise self._too_large(len(data), f"{count:,} covers exceed max_covers={self.max_covers:,}")
        return out

    def _branch(self, node: Node, rest: bytes) -> tuple[list[Straddle], list[Node]]:
        """The covers of ``node``'s next token over the bytes ``rest`` that follow it: tokens that
        run past ``rest`` (straddles) and tokens that end within it (new pending nodes)."""
        import torch

        view = self.view
        ids = view.by_first[rest[0]]
        vals = node.row[ids]
        if node.mask is not None:
            vals = vals.masked_fill(~node.mask[ids], -math.inf)
        logq = node.logq + (vals.double() - node.logz)
        live = logq > -math.inf
        ids, vals, logq = ids[live], vals[live], logq[live]
        if not len(ids):
            return [], []
        lengths = view.lengths[ids]
        if len(rest) == 1:  # one byte (every step): all these tokens start with it, so no byte matrix
            ends, runs = lengths == 1, lengths > 1
        else:
            width = min(len(rest), view.matrix.shape[1])
            want = torch.tensor(list(rest[:width]), dtype=torch.int16)
            eq = view.matrix[ids, :width] == want
            matched = torch.cumprod(eq.to(torch.int8), dim=1).sum(dim=1)
            ends = (lengths <= len(rest)) & (matched >= lengths)
            runs = (lengths > len(rest)) & (matched >= len(rest))
        # what the new covers keep of ``node``: its ids and LM state, not its next-token row (the
        # state being advanced stays valid: a search may advance it again with another byte)
        handle = node.handle
        if handle is None:
            state = LMState(node.state.ids, None, node.state.cache, node.state.ticket)
            handle = node.handle = Node(node.ids, node.end, node.logq, state=state)
        straddles = []
        if bool(runs.any()):
            straddles.append(Straddle(handle, ids[runs].to(self._id_dtype), vals[runs], node.logq, node.logz,
                                      len(rest)))
        children = [Node(node.ids + (v,), node.end + n, q, handle)
                    for v, n, q in zip(ids[ends].tolist(), lengths[ends].tolist(), logq[ends].tolist())]
        return straddles, children

    def _drop_off_path(self, covers: CoverSet) -> None:
        """Canonical meanings: once the cut (start of the last whitespace run) moves, every cover
        with positive mass starts with enc(text before the cut); pending sequences off that path
        have probability 0 (their bytes cannot be tokenized so) and are dropped."""
        if self.valid is None or not self.valid.whitespace_cut:
            return
        cut = self.valid.cut(covers.data)
        if cut <= covers.cut:
            return
        canon = self.valid.encode(covers.data[:cut])
        covers.cut = cut
        if canon is None:
            return
        k = len(canon)

        def on_path(ids: tuple[int, ...]) -> bool:
            return ids[:k] == canon if len(ids) >= k else canon[:len(ids)] == ids

        covers.pending = [n for n in covers.pending if on_path(n.ids)]
        covers.straddles = [s for s in covers.straddles if on_path(s.node.ids)]

    def _settle(self, covers: CoverSet) -> tuple[Any, float]:
        """Expand pending nodes, largest first and in batches, until the certified bound is at
        most ``tolerance`` (all of them for tolerance 0). Those ending at the current byte whose
        state was prefetched cost no forward and are expanded first, whatever their share, up to
        ``max_exact_covers`` (the largest first). Returns :meth:`_mass` of the settled covers."""
        import torch

        end = len(covers.data)
        free = [n for n in covers.pending if n.end == end and n.parent is not None and n.parent.prefetched
                and n.ids[-1] in n.parent.prefetched]
        if free:
            # free, but still covers ending on the byte boundary: never past max_exact_covers on their
            # account (the largest go first; the rest stay pending under the certified bound)
            room = max(0, self.max_exact_covers - len(covers.exact))
            free = sorted(free, key=lambda n: -n.logq)[:room]
        if free:
            ids = {id(n) for n in free}
            covers.pending = [n for n in covers.pending if id(n) not in ids]
            self._expand(covers, free)
        floor = 1  # doubles per round: few rounds when much must be expanded, the fewest forwards otherwise
        masses = None  # _mass of the covers as they are, while nothing was expanded since
        while covers.pending:
            masses = self._mass(covers)
            if covers.bound <= self.tolerance and covers.log_mass > -math.inf:
                break
            masses = None
            covers.pending.sort(key=lambda n: -n.logq)
            take = len(covers.pending)
            if self.tolerance > 0 and covers.log_mass > -math.inf:
                # the fewest largest ones whose expansion (counted optimistically as included) meets it:
                # after taking k, included <= M + sum(first k), left = sum(the rest)
                logqs = torch.tensor([n.logq for n in covers.pending], dtype=torch.float64)
                left = torch.logcumsumexp(logqs.flip(0), 0).flip(0)
                left = torch.cat([left, torch.tensor([-math.inf], dtype=torch.float64)])
                inc = torch.logcumsumexp(torch.cat([torch.tensor([covers.log_mass], dtype=torch.float64),
                                                    logqs]), 0)
                ok = torch.nonzero(torch.sigmoid(left - inc) <= self.tolerance).flatten()
                take = min(len(covers.pending), max(floor, int(ok[0]))) if len(ok) else take
            floor *= 2
            batch, covers.pending = covers.pending[:take], covers.pending[take:]
            self._expand(covers, batch)
            if len(covers) > self.max_covers:
                raise self._too_large(end, f"{len(covers):,} covers exceed max_covers={self.max_covers:,}")
        self.counters["deferred"] += len(covers.pending)
        return masses if masses is not None else self._mass(covers)

    def _expand(self, covers: CoverSet, nodes: list[Node]) -> None:
        """Run the forwards of ``nodes`` (one ``extend_batch`` per parent state, in chunks, with the
        prefetched rows of that parent), then put each where it belongs: an exact cover at the end,
        or its descendants over the rest. A node whose state was prefetched takes it: no forward."""
        end = len(covers.data)
        at_end = sum(1 for n in nodes if n.end == end) + len(covers.exact)
        if at_end > self.max_exact_covers:
            raise self._too_large(end, f"{at_end:,} covers ending on the byte boundary exceed "
                                       f"max_exact_covers={self.max_exact_covers:,}")
        groups: dict[int, list[Node]] = {}
        for node in nodes:
            groups.setdefault(id(node.parent), []).append(node)
        plan: list[tuple[Node, list[Node], list[int]]] = []
        for group in groups.values():
            parent = group[0].parent
            kept = parent.prefetched or {}
            run = []
            for node in group:
                state = kept.pop(node.ids[-1], None)
                if state is None:
                    run.append(node)
                    continue
                node.state, node.handle = self._with_logprobs(state), None
                self.counters["expanded"] += 1
                self.counters["prefetch_hits"] += 1
                self._finish(node, covers.data[: node.end])
                self._place(covers, node)
            if run:
                plan.append((parent, run, self._prefetch_ids(covers, parent, run)))
        if not plan:
            return
        needed = [n for _, run, _ in plan for n in run]
        extra = sum(len(ahead) for _, _, ahead in plan)
        self._check_memory(covers, needed)
        if extra and not self._fits(covers, needed, extra):  # prefetching is optional: skip it, stay exact
            plan = [(parent, run, []) for parent, run, _ in plan]
        vocab = self.lm.vocab_size
        for parent, run, ahead in plan:
            past = len(parent.state.ids)
            per_row = vocab + (past + 1) * self._kv_per_token / 4
            chunk = max(1, BATCH_LOGITS // max(1, int(per_row)))
            rows: list[Node | int] = [*run, *ahead]
            # the shortest prefetched tokens are reached first (the next byte or so): their rows are
            # computed in this batch, where a few more output rows cost little (few-row kernel), and
            # the others' are deferred (their vocabulary-sized rows are not held until reached)
            eager = set(sorted(ahead, key=lambda v: int(self.view.lengths[v]))[:EAGER_PREFETCH])
            for i in range(0, len(rows), chunk):
                part = rows[i: i + chunk]
                conts = [r.ids[len(parent.ids):] if isinstance(r, Node) else [r] for r in part]
                if self._defer:
                    states = self.lm.extend_batch(parent.state, conts,
                                                  defer=[not isinstance(r, Node) and r not in eager
                                                         for r in part])
                else:
                    states = self.lm.extend_batch(parent.state, conts)
                for row, state in zip(part, states):
                    if not isinstance(row, Node):  # a prefetched child: kept on its parent until reached
                        if parent.prefetched is None:
                            parent.prefetched = {}
                        parent.prefetched[row] = state
                        self.counters["prefetched"] += 1
                        continue
                    row.state, row.handle = state, None
                    self.counters["expanded"] += 1
                    self._finish(row, covers.data[: row.end])
                    self._place(covers, row)

    def _with_logprobs(self, state: LMState) -> LMState:
        return self.lm.with_logprobs(state) if state.logprobs is None else state

    def _prefetch_ids(self, covers: CoverSet, parent: Node, run: list[Node]) -> list[int]:
        """Tokens ``v`` to read after ``parent`` now, ahead of need: byte-prefixes (whole tokens,
        live so far) of the ``prefetch`` most likely tokens straddling the bytes after ``parent``,
        not already kept or being run."""
        import torch

        if not self.prefetch:
            return []
        own = [s for s in covers.straddles if s.node is parent and len(s.ids)]
        if not own:
            return []
        ids = torch.cat([s.ids for s in own]).long()
        logq = torch.cat([s.logq for s in own])
        best = torch.topk(logq, min(self.prefetch, len(ids)))
        if PREFETCH_SHARE > 0:
            # the sequences being forwarded are pending, so not in log_mass yet: count them in
            mass = _logsumexp([covers.log_mass] + [n.logq for n in run])
            if mass > -math.inf and float(best.values[0]) < mass + math.log(PREFETCH_SHARE):
                return []  # an unlikely branch: its chain would widen this forward for little chance of a hit
        top = ids[best.indices]
        width = int(self.view.lengths[top].max())
        short = self.view.lengths[ids] <= width  # a prefix is no longer than its token
        ids, logq = ids[short], logq[short]
        rows = self.view.matrix[ids, :width]  # [n, width], -1 past a token's end
        tops = self.view.matrix[top, :width]  # [k, width]
        # v is a byte-prefix of t when every byte of v equals t's byte there (v's padding matches anything)
        prefix = ((rows[:, None, :] == tops[None, :, :]) | (rows[:, None, :] < 0)).all(dim=2).any(dim=1)
        live = prefix
        if self.tolerance > 0 and covers.log_mass > -math.inf:
            # a child whose share of the included mass is below the tolerance would be deferred anyway
            live = live & (logq >= covers.log_mass + math.log(self.tolerance))
        skip = set(parent.prefetched or ()) | {n.ids[-1] for n in run}
        return [v for v in ids[live].tolist() if v not in skip]

    def _place(self, covers: CoverSet, node: Node) -> None:
        if node.end == len(covers.data):
            covers.exact.append(node)
            return
        straddles, children = self._branch(node, covers.data[node.end:])
        covers.straddles += straddles
        covers.pending += children

    def _finish(self, node: Node, data: bytes) -> None:
        """Store q(. | node): the LM row, the validity mask (canonical meanings) and its normalizer
        (canonical-local renormalizes; canonical-global keeps the raw masses), and the first-byte
        masses of the next token."""
        import torch

        row = node.state.logprobs.detach().to("cpu")
        mask = None
        if self.valid is not None:
            mask = self._valid_mask(node.ids, data)
            if bool(mask.all()):
                mask = None
        logq = row.double() if mask is None else row.double().masked_fill(~mask, -math.inf)
        node.logz = float(torch.logsumexp(logq, 0)) if self.meaning == "canonical-local" else 0.0
        if node.logz == -math.inf:  # a dead end: no valid next token, so its mass goes nowhere
            node.logz = 0.0
        # one row per node (issue 13, item 2): the mask is applied to the row itself (-inf where invalid,
        # which is what a separate mask did at the branch), and the LM state keeps only its cache
        node.row, node.mask = (row if mask is None else row.masked_fill(~mask, -math.inf)), None
        node.state = LMState(node.state.ids, None, node.state.cache, node.state.ticket)
        node.buckets = torch.zeros(BYTE_EOS + 1, dtype=torch.float64).scatter_add_(
            0, self.view.first, torch.exp(logq - node.logz))

    def _valid_mask(self, ids: tuple[int, ...], data: bytes) -> Any:
        """Validity of ``ids + (v,)`` for every ``v``: canonical, and with ``invalid_utf8="invalid"``
        also still a prefix of valid UTF-8."""
        mask = self.valid.next_mask(ids, data)
        if self.invalid_utf8 == "invalid":
            mask = mask & utf8_prefix_ok(self.view, data)
        return mask

    # -- bounds --------------------------------------------------------------
    def _too_large(self, at: int, what: str) -> CoverSetTooLargeError:
        return CoverSetTooLargeError(
            f"after {at} bytes, {what}", component=self.component,
            hint="the marginal meaning grows exponentially with the text: use a canonical meaning, a shorter "
                 "text, a larger tolerance, or raise the bound")

    def _memory(self, covers: CoverSet, nodes: list[Node], extra: int = 0) -> int:
        """Bytes the cover set holds (rows, masks, KV of its nodes' own tokens, cover tensors, the
        states prefetched on its nodes) plus the batch of ``nodes`` and ``extra`` prefetched rows."""
        from tokensmith import tensor_bytes

        if self._kv_per_token is None:  # bytes of KV cache per token, measured on the head once
            head = covers.head
            self._kv_per_token = tensor_bytes(head.state.cache) / max(1, len(head.state.ids))
        row = self.lm.vocab_size * 4
        kv = self._kv_per_token
        held = row * len(covers.exact)
        held += sum(s.ids.numel() * (s.ids.element_size() + s.vals.element_size()) for s in covers.straddles)
        parents = {id(s.node): s.node for s in covers.straddles}
        parents.update({id(n.parent): n.parent for n in covers.pending if n.parent is not None})
        held += len(parents) * 2 * kv  # their nodes' own KV segments
        # a prefetched state holds its own token's KV and, unless deferred, its next-token row
        held += sum(int(kv + (row if st.logprobs is not None else 0))
                    for p in parents.values() if p.prefetched for st in p.prefetched.values())
        past = max((len(n.parent.state.ids) for n in nodes if n.parent is not None), default=0)
        batch = (len(nodes) + extra) * (2 * row + (past + 1) * kv + self.lm.vocab_size)
        return int(held + batch)

    def _fits(self, covers: CoverSet, nodes: list[Node], extra: int) -> bool:
        return self._memory(covers, nodes, extra) <= self.max_memory

    def _check_memory(self, covers: CoverSet, nodes: list[Node]) -> None:
        """Refuse a forward that would take the cover set past ``max_memory``: what its nodes hold
        (rows, masks, KV of their own tokens, prefetched states), its straddle tensors, and the batch
        to run."""
        total = self._memory(covers, nodes)
        if total > self.max_memory:
            raise self._too_large(len(covers.data), f"{total:,} bytes of cover set and batch would "
                                  f"exceed max_memory={self.max_memory:,}")

    # -- log P(head | context), for log_prefix (issue 13, item 6) -------------------------
    def _head_logprob(self, ctx: tuple[int, ...], ids: tuple[int, ...]) -> float:
        """log q(head ids | context) under this meaning (one batched forward, then the validity
        mask of each prefix), cached per (context, head)."""
        import torch

        key = (ctx, ids)
        if key not in self._head_logp:
            total = 0.0
            if ids:
                rows = self.lm.logprobs_batch([list(ctx) + list(ids)])[0]
                for i, tok in enumerate(ids):
                    row = rows[len(ctx) - 1 + i].detach().double().cpu()
                    if self.valid is not None:
                        data = b"".join(self.view.bytes[t] or b"" for t in ids[:i])
                        row = row.masked_fill(~self._valid_mask(ids[:i], data), -math.inf)
                    lp = float(row[tok])
                    if self.meaning == "canonical-local":
                        lp -= float(torch.logsumexp(row, 0))
                    total += lp
            self._head_logp[key] = total
        return self._head_logp[key]
