"""The ``supertokens`` benchmark (``tokensmith bench supertokens``): the compression of a
supertoken BPE against an ordinary byte-level BPE of the same vocabulary size, trained on the
same texts, measured on held-out text of the same corpus.

TokenAdapt: Sharthak, Pahalwan, Kamath & Shirawalmath, arXiv 2505.09738 (supertoken learning).

Bytes per token and tokens per character on the held-out split (streamed), the share of
held-out tokens that span a word boundary, the vocabulary's multi-word entries and the most
used supertokens; every held-out text is decoded back and compared (a lossy round trip is an
error, not a statistic).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import attrs

from tokensmith import (
    Benchmark,
    BuildContext,
    ConfigError,
    InputError,
    Provenance,
    Report,
    Series,
    Table,
    non_negative_int,
    positive_int,
    progress,
)

from .supertokens import SupertokenBPE, spans_words

COMPONENT = "benchmark 'supertokens'"
FULL = {"train_bytes": 3_000_000, "sample": None}
QUICK = {"train_bytes": 300_000, "sample": 40}


def example_source(dataset: Any) -> str:
    return dataset if isinstance(dataset, str) else str(dataset.get("type"))


def _dataset(instance: Any, attribute: Any, value: Any) -> None:
    ok = (isinstance(value, str) and value) or (isinstance(value, dict)
                                                 and isinstance(value.get("type"), str))
    if not ok:
        raise ConfigError(f"dataset must be a dataset name or a table with a 'type', got {value!r:.80}",
                          component=COMPONENT, hint="dataset = 'licenses'")


@attrs.define
class SupertokenBenchmark(Benchmark):
    """Supertoken BPE vs byte-level BPE of the same vocabulary on the same training texts:
    held-out bytes per token, tokens per character, multi-word tokens."""

    name = "supertokens"

    vocab_size: int = attrs.field(default=8000, validator=positive_int, metadata={
        "doc": "both tokenizers' vocabulary size (every id counted)"})
    dataset: str | dict[str, Any] = attrs.field(default="licenses", validator=_dataset, metadata={
        "doc": "a registered dataset with train and eval splits (tokensmith-datasets): its name, or a "
               "table with its type and options, e.g. {type = 'text-files', paths = ['corpus/'], "
               "unit = 'line'}"})
    field: str = attrs.field(default="text", validator=attrs.validators.instance_of(str), metadata={
        "doc": "the dataset's text field"})
    train_bytes: int | None = attrs.field(default=None, validator=attrs.validators.optional(positive_int),
                                          metadata={"doc": "UTF-8 bytes of the train split both tokenizers "
                                                           "learn from, whole texts from the first (None: "
                                                           "3,000,000; quick 300,000)"})
    sample: int | None = attrs.field(default=None, validator=attrs.validators.optional(positive_int),
                                     metadata={"doc": "held-out texts read from the eval split (None: all; "
                                                      "quick 40)"})
    top: int = attrs.field(default=20, validator=positive_int, metadata={
        "doc": "most used supertokens listed in the report"})
    seed: int = attrs.field(default=0, validator=non_negative_int, metadata={
        "doc": "seed of the supertoken chunking"})
    ctx: BuildContext | None = attrs.field(default=None, repr=False, eq=False)

    def _texts(self, corpus: Any, split: str, *, max_bytes: int | None = None,
               max_texts: int | None = None) -> Iterator[str]:
        """The split's non-blank texts, streamed, until ``max_bytes`` bytes or ``max_texts``
        texts (the text crossing ``max_bytes`` is the last one)."""
        total = count = 0
        for example in corpus.examples(split):
            text = example.get(self.field)
            if not isinstance(text, str):
                raise InputError(f"dataset {example_source(self.dataset)!r} has no text field {self.field!r} "
                                 f"(an example has {sorted(example)})", component=COMPONENT,
                                 hint="set field to one of the dataset's text fields")
            if not text.strip():
                continue
            yield text
            total += len(text.encode("utf-8"))
            count += 1
            if (max_bytes is not None and total >= max_bytes) or \
                    (max_texts is not None and count >= max_texts):
                return

    def run(self, *, quick: bool = False) -> Report:
        sizes = QUICK if quick else FULL
        train_bytes = self.train_bytes or sizes["train_bytes"]
        sample = self.sample or sizes["sample"]
        registry = self.registry()
        spec = {"type": self.dataset} if isinstance(self.dataset, str) else dict(self.dataset)
        corpus = registry.build("dataset", spec)
        source = spec["type"]
        trainers = {
            "supertoken-bpe": SupertokenBPE(vocab_size=self.vocab_size, seed=self.seed),
            "byte-level-bpe": registry.build("tokenizer_trainer",
                                             {"type": "byte-level-bpe", "vocab_size": self.vocab_size}),
        }
        tokenizers, train_seconds = {}, {}
        for label, trainer in trainers.items():
            start = time.perf_counter()
            # the same texts for both: the split re-read (streamed), never held in memory
            tokenizers[label] = trainer.train(self._texts(corpus, "train", max_bytes=train_bytes),
                                              progress=False)
            train_seconds[label] = time.perf_counter() - start
        stats = {label: {"tokens": 0, "multi": 0, "used": Counter()} for label in tokenizers}
        n_bytes = n_chars = n_texts = 0
        for text in progress(self._texts(corpus, "eval", max_texts=sample), total=sample,
                             desc="held-out", unit="text"):
            n_bytes += len(text.encode("utf-8"))
            n_chars += len(text)
            n_texts += 1
            for label, tokenizer in tokenizers.items():
                ids = tokenizer.encode(text).ids
                if tokenizer.decode(ids) != text:
                    raise InputError(f"{label} does not decode held-out text {n_texts} back to itself",
                                     component=COMPONENT)
                s = stats[label]
                s["tokens"] += len(ids)
                for i in ids:
                    if spans_words(tokenizer.token_bytes(i) or b""):
                        s["multi"] += 1
                        s["used"][i] += 1
        if not n_texts:
            raise InputError(f"the eval split of dataset {source!r} has no text", component=COMPONENT,
                             hint="a dataset with held-out examples (its eval_fraction)")
        rows, metrics = [], {"held_out_texts": n_texts, "held_out_bytes": n_bytes, "held_out_chars": n_chars,
                             "train_bytes": train_bytes, "vocab_size": self.vocab_size}
        for label, tokenizer in tokenizers.items():
            s = stats[label]
            vocab_multi = sum(spans_words(tokenizer.token_bytes(i) or b"")
                              for i in range(tokenizer.vocab_size))
            key = label.replace("-", "_")
            metrics.update({f"{key}_bytes_per_token": n_bytes / s["tokens"],
                            f"{key}_tokens_per_char": s["tokens"] / n_chars,
                            f"{key}_tokens": s["tokens"], f"{key}_multiword_vocab": vocab_multi,
                            f"{key}_multiword_token_share": s["multi"] / s["tokens"],
                            f"{key}_vocab_size": tokenizer.vocab_size})
            rows.append((label, tokenizer.vocab_size, n_bytes / s["tokens"], s["tokens"] / n_chars,
                         s["tokens"],
                         vocab_multi, s["multi"] / s["tokens"]))
        st, bpe = metrics["supertoken_bpe_tokens"], metrics["byte_level_bpe_tokens"]
        metrics["bytes_per_token_gain"] = (metrics["supertoken_bpe_bytes_per_token"]
                                           / metrics["byte_level_bpe_bytes_per_token"] - 1)
        metrics["token_count_ratio"] = st / bpe
        metrics["train_time_ratio"] = train_seconds["supertoken-bpe"] / train_seconds["byte-level-bpe"]
        super_tok = tokenizers["supertoken-bpe"]
        top = tuple((super_tok.token_bytes(i).decode("utf-8", "backslashreplace"), n)
                    for i, n in stats["supertoken-bpe"]["used"].most_common(self.top))
        labels = [r[0] for r in rows]
        return Report(
            name="supertokens-quick" if quick else "supertokens", metrics=metrics,
            tables=(Table("compression on held-out text",
                          ("tokenizer", "vocab", "bytes/token", "tokens/char", "tokens", "multi-word vocab",
                           "multi-word share of tokens"), tuple(rows)),
                    Table("most used supertokens (held-out)", ("token", "uses"), top)),
            series=(Series("bytes per token", labels, [r[2] for r in rows], plot="bar", group="compression",
                           y_label="held-out bytes per token"),),
            notes=(f"both tokenizers trained on the same {train_bytes:,}+ bytes of the train split of "
                   f"{source!r} (whole texts from the first); held-out: {n_texts} texts, {n_bytes:,} bytes "
                   "of the "
                   "eval split, every one decoded back exactly",
                   "supertoken-bpe: the paper's chunk-length distribution (4-23 characters) during training, "
                   "no pre-tokenization at inference; byte-level-bpe: the GPT-2 word regex "
                   "(tokensmith-baselines)",
                   "multi-word: a token with text, whitespace, then text again (b'of the'); b' the' is not",
                   "training time ratio (supertoken / byte-level, same run): "
                   f"{metrics['train_time_ratio']:.2f}"),
            provenance=Provenance.collect(registry=registry, seed=self.seed))
