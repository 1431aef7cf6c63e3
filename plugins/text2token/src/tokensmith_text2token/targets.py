"""Token targets, pooling and the KL of Text2Token (An et al., 2025, "Text2Token: Unsupervised
Text Representation Learning with Token Target Prediction", arXiv 2510.10224).

The model maps a text x to an embedding e(x) (pooled last hidden states) and projects it into
the vocabulary with the LM head, q(·|x) = softmax(W_U e(x)) ("token target prediction"). It is
trained with KL(π(x) ‖ q(·|x)) against a target distribution π(x) built without labels:

- **data-driven** π_data: the meaningful tokens of the text itself. Special tokens, tokens
  without a letter or digit (punctuation, whitespace, format bytes) and stopwords are removed,
  then the frequency filter: tokens whose document frequency over the training corpus exceeds
  ``max_df`` are dropped, and the survivors are weighted by TF-IDF, tf(t, x)·idf(t), and
  normalised (the brief's "TF-IDF-filtered bag of the text's own tokens"; the paper's exact
  filtering formula is not available to us, this is the reconstruction we document).
- **model-derived** π_model: semantically derived tokens beyond the text, the top-k of the
  frozen stage-1 model's own q(·|x), renormalised over those k tokens.

Pooling and the LM head commute: W_U is linear without a bias, so W_U·mean_t(h_t) =
mean_t(W_U h_t) and q(·|x) is the softmax of the *mean of the logits* over the text's positions
(for last-token pooling, the logits of the last position). The loss therefore needs nothing but
``outputs.logits`` and the attention mask, and is exact: :func:`pool_logits` is W_U e(x).

Everything here is a pure function of tensors (torch is imported inside the functions).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from tokensmith import IncompatibleComponentsError, InputError

COMPONENT = "objective 'text2token'"
POOLINGS = ("mean", "last")

#: English function words removed from the data-driven targets (compared with the token's text,
#: stripped and lower-cased). Written for this plugin: articles, pronouns, auxiliaries,
#: prepositions, conjunctions and the commonest adverbs; content words are never in it.
STOPWORDS = frozenset("""
a an the and or but nor so yet if then than else when while where whereas because since as
until unless though although whether either neither both each every all any some no not none
only own same such too very just also even ever again further once here there now
of in on at by for with about against between into through during before after above below
to from up down out off over under within without upon across along around among beyond
toward towards via per onto
i me my myself we us our ours ourselves you your yours yourself yourselves he him his himself
she her hers herself it its itself they them their theirs themselves one ones
what which who whom whose this that these those
am is are was were be been being have has had having do does did doing done
will would shall should can could may might must ought
s t d ll m re ve y don didn doesn isn aren wasn weren hasn haven hadn won wouldn shouldn couldn
mustn needn shan ain o
more most less least many much few several other another
how why whatever whichever whoever whenever wherever
said says say
""".split())


def token_texts(tokenizer: Any) -> list[str | None]:
    """The text of every token id (``None`` for special/control tokens and for ids without a
    byte view); bytes that are not valid UTF-8 on their own (a split character) are dropped."""
    special = set(tokenizer.special_ids)
    out: list[str | None] = []
    for token_id in range(tokenizer.vocab_size):
        raw = None if token_id in special else tokenizer.token_bytes(token_id)
        out.append(None if raw is None else raw.decode("utf-8", errors="ignore"))
    return out


def content_vocabulary(tokenizer: Any, *, stopwords: bool = True) -> list[bool]:
    """Per token id, whether it may be a data-driven target: not special, at least one letter or
    digit (no punctuation, whitespace or format token), and, with ``stopwords``, not in
    :data:`STOPWORDS`."""
    keep = []
    for text in token_texts(tokenizer):
        if text is None or not any(ch.isalnum() for ch in text):
            keep.append(False)
            continue
        keep.append(not (stopwords and text.strip().lower() in STOPWORDS))
    return keep


def document_frequency(sequences: Iterable[Sequence[int]], vocab_size: int) -> tuple[Any, int]:
    """(df, N): for every token id the number of the N sequences that contain it. Streams the
    sequences (memory: one vector of the vocabulary's size)."""
    import torch

    df = torch.zeros(vocab_size, dtype=torch.float64)
    n = 0
    for ids in sequences:
        ids = list(ids)
        if ids:
            unique = torch.tensor(sorted(set(ids)), dtype=torch.long)
            if int(unique.max()) >= vocab_size or int(unique.min()) < 0:
                raise InputError(f"token id {int(unique.max())} is outside the vocabulary of {vocab_size}",
                                 component=COMPONENT, hint="tokenize with the model's tokenizer")
            df[unique] += 1
        n += 1
    if n == 0:
        raise InputError("no sequence to count document frequencies on", component=COMPONENT,
                         hint="fit the targets on a non-empty training corpus")
    return df, n


def idf(df: Any, n: int) -> Any:
    """Smoothed inverse document frequency, idf(t) = ln((1 + N) / (1 + df(t))) + 1 (always > 0, so a
    token that survives the filters keeps positive mass)."""
    import torch

    return torch.log((1.0 + n) / (1.0 + df)) + 1.0


def term_counts(input_ids: Any, mask: Any, vocab_size: int) -> Any:
    """tf(t, x): how often each token id occurs at the masked-in positions of each row, (B, V)."""
    import torch

    counts = torch.zeros(input_ids.shape[0], vocab_size, dtype=torch.float64, device=input_ids.device)
    return counts.scatter_add_(1, input_ids.long(), mask.to(torch.float64))


def data_driven_targets(input_ids: Any, mask: Any, keep: Any, weights: Any) -> Any:
    """π_data, (B, V) float32: tf(t, x)·w(t) over the tokens allowed by ``keep`` (content tokens
    under the frequency filter), normalised per row. ``weights`` is idf (or ones). A row whose
    text keeps no token is an :class:`InputError` naming it: nothing to predict, never a silent
    uniform or zero target."""
    import torch

    if mask.sum(dim=1).eq(0).any():
        rows = mask.sum(dim=1).eq(0).nonzero().flatten().tolist()
        raise InputError(f"batch rows {rows} are empty texts (no token)", component=COMPONENT,
                         hint="remove empty texts from the corpus")
    per_token = keep.to(torch.float64) * weights.to(torch.float64)
    scores = term_counts(input_ids, mask, keep.shape[0]) * per_token
    total = scores.sum(dim=1, keepdim=True)
    if total.eq(0).any():
        rows = total.flatten().eq(0).nonzero().flatten().tolist()
        raise InputError(f"batch rows {rows} have no target token left after filtering (only special, "
                         "punctuation, stopword or too frequent tokens)", component=COMPONENT,
                         hint="remove such texts, or relax the filter (max_df closer to 1, stopwords=false)")
    return (scores / total).float()


def pool_logits(logits: Any, mask: Any, pooling: str = "mean") -> Any:
    """W_U e(x), (B, V): the mean of the logits over the masked-in positions (mean pooling) or the
    logits of the last masked-in position (last-token pooling; right or left padding alike)."""
    import torch

    if pooling not in POOLINGS:
        raise InputError(f"pooling {pooling!r} is not one of {POOLINGS}", component=COMPONENT)
    mask = mask.to(logits.dtype)
    counts = mask.sum(dim=1)
    if counts.eq(0).any():
        rows = counts.eq(0).nonzero().flatten().tolist()
        raise InputError(f"batch rows {rows} have no token to pool", component=COMPONENT,
                         hint="remove empty texts from the corpus")
    if pooling == "mean":
        return (logits * mask.unsqueeze(-1)).sum(dim=1) / counts.unsqueeze(-1)
    positions = torch.arange(mask.shape[1], device=mask.device).expand_as(mask)
    last = torch.where(mask > 0, positions, torch.full_like(positions, -1)).argmax(dim=1)
    return logits[torch.arange(logits.shape[0], device=logits.device), last]


def pool_hidden(hidden: Any, mask: Any, pooling: str = "mean") -> Any:
    """e(x), (B, H): the same pooling applied to hidden states (see :func:`pool_logits`)."""
    return pool_logits(hidden, mask, pooling)


def model_derived_targets(pooled_logits: Any, top_k: int) -> Any:
    """π_model, (B, V): the top-k tokens of softmax(W_U e(x)) renormalised over those k (computed
    without gradient: the targets come from a frozen model)."""
    import torch

    with torch.no_grad():
        probs = torch.softmax(pooled_logits.detach().float(), dim=-1)
        k = min(int(top_k), probs.shape[-1])
        values, index = probs.topk(k, dim=-1)
        target = torch.zeros_like(probs).scatter_(1, index, values)
        return target / target.sum(dim=1, keepdim=True)


def kl_divergence(target: Any, pooled_logits: Any) -> Any:
    """KL(π ‖ q) per row with q = softmax(pooled_logits): Σ_t π_t (ln π_t − ln q_t), 0·ln 0 = 0."""
    import torch

    log_q = torch.log_softmax(pooled_logits.float(), dim=-1)
    target = target.to(log_q.dtype)
    return (torch.special.xlogy(target, target) - target * log_q).sum(dim=-1)


def check_distribution(target: Any, *, atol: float = 1e-5) -> None:
    """Raise :class:`IncompatibleComponentsError` unless every row of ``target`` is a distribution."""
    import torch

    if not bool(torch.isfinite(target).all()) or bool((target < 0).any()):
        raise IncompatibleComponentsError("a token target has negative or non-finite mass",
                                          component=COMPONENT)
    sums = target.sum(dim=-1).double()
    if not bool(torch.allclose(sums, torch.ones_like(sums), atol=atol)):
        worst = float((sums - 1).abs().max())
        raise IncompatibleComponentsError(f"a token target sums to 1 ± {worst:.2g}, not 1",
                                          component=COMPONENT)


def top_tokens(pooled_logits: Any, k: int) -> list[list[int]]:
    """The ids of the k largest entries of every row."""
    return pooled_logits.topk(min(k, pooled_logits.shape[-1]), dim=-1).indices.tolist()


def alignment(top: Sequence[Sequence[int]], content: Sequence[set[int]]) -> float:
    """Token alignment: the mean share of a text's top-k vocabulary tokens that are content tokens
    of the text itself (the brief's invariant 3, measured before and after training)."""
    if not top:
        raise InputError("no text to measure the token alignment on", component=COMPONENT)
    return sum(len(set(t) & c) / len(t) for t, c in zip(top, content, strict=True)) / len(top)
