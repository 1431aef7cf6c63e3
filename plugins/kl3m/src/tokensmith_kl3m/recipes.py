"""The legal-domain BPE as a one-liner (Bommarito et al., arXiv 2503.17247): train the KL3M recipe
on the train split of the ``licenses`` dataset, save it, load it back verified; and the cache the
``kl3m`` evaluation keeps its trained tokenizers in.

    from tokensmith_kl3m import train_legal_bpe, load_tokenizer
    tokenizer = train_legal_bpe(vocab_size=32768, out="legal-bpe")   # legal-bpe/tokenizer.json
    again = load_tokenizer("legal-bpe")                              # fingerprint-checked
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable, Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import attrs

from tokensmith import CorruptArtifactError, DataUnavailableError, HFTokenizer, InputError, TokensmithError

from .trainers import KL3MBPE

COMPONENT = "tokensmith-kl3m"


def _registry(registry: Any = None) -> Any:
    if registry is not None:
        return registry
    from tokensmith import default_registry

    return default_registry()


def corpus_texts(
    config: dict[str, Any],
    split: str,
    field: str,
    *,
    registry: Any = None,
    limit: int | None = None,
    component: str = COMPONENT,
) -> Iterator[str]:
    """The ``field`` of a registered dataset's ``split``, streamed; at most ``limit`` examples.
    A field that is absent or not text is an :class:`InputError` naming the example."""
    dataset = _registry(registry).build("dataset", dict(config, **({"limit": limit} if limit else {})))
    for index, example in enumerate(dataset.examples(split)):
        text = example.get(field)
        if not isinstance(text, str):
            raise InputError(
                f"example {index} of dataset {config['type']!r} has no text field {field!r} "
                f"(its fields: {', '.join(sorted(example))})",
                component=component,
                hint="name a text field of the dataset",
            )
        yield text


def legal_texts(split: str = "train", *, limit: int | None = None, registry: Any = None) -> Iterator[str]:
    """The licence texts of ``licenses`` (tokensmith-datasets; default split seed and fraction)."""
    return corpus_texts({"type": "licenses"}, split, "text", registry=registry, limit=limit)


def train_legal_bpe(
    vocab_size: int = 32768,
    *,
    out: str | os.PathLike | None = None,
    cased: bool = True,
    limit: int | None = None,
    progress: bool = True,
    registry: Any = None,
    **recipe: Any,
) -> HFTokenizer:
    """The KL3M domain BPE (``kl3m-bpe``) trained on the train split of ``licenses``; saved to
    ``out`` (a directory: ``out/tokenizer.json``) when given. ``recipe`` holds any other
    parameter of :class:`~tokensmith_kl3m.trainers.KL3MBPE` (``custom_groups``, ...)."""
    trainer = KL3MBPE(vocab_size=vocab_size, cased=cased, **recipe)
    tokenizer = trainer.train(legal_texts("train", limit=limit, registry=registry), progress=progress)
    if out is not None:
        tokenizer.save(Path(out))
    return tokenizer


def load_tokenizer(path: str | os.PathLike, *, fingerprint: str | None = None) -> HFTokenizer:
    """A saved tokenizer (``tokenizer.json`` or its directory) with its byte view verified on load;
    with ``fingerprint``, a different file is a :class:`CorruptArtifactError`."""
    tokenizer = HFTokenizer.from_file(Path(path))
    if fingerprint is not None and tokenizer.fingerprint() != fingerprint:
        raise CorruptArtifactError(
            f"{path}: tokenizer fingerprint {tokenizer.fingerprint()[:16]}... is not the "
            f"recorded {fingerprint[:16]}...",
            component=COMPONENT,
            hint="delete the directory to train it again",
        )
    return tokenizer


def cache_root(explicit: Path | None = None) -> Path:
    """Where trained tokenizers are kept: ``explicit``, else ``$TOKENSMITH_CACHE/kl3m``, else
    ``~/.cache/tokensmith/kl3m``."""
    if explicit is not None:
        return Path(explicit).expanduser()
    raw = os.environ.get("TOKENSMITH_CACHE")
    return (Path(raw).expanduser() if raw else Path.home() / ".cache" / "tokensmith") / "kl3m"


def _versions() -> dict[str, str]:
    out = {}
    for dist in ("tokensmith-kl3m", "tokensmith-datasets", "licensedcode-data", "tokenizers"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "absent"
    return out


def cache_key(trainer: Any, corpus: dict[str, Any]) -> str:
    """The trainer's class and parameters, the corpus's description and the versions of what
    produce it: a change in any trains again."""
    described = {
        "trainer": type(trainer).__name__,
        "params": attrs.asdict(trainer, recurse=False),
        "corpus": corpus,
        "versions": _versions(),
    }
    blob = json.dumps(described, sort_keys=True, default=list).encode()
    return f"{trainer.name}-{hashlib.sha256(blob).hexdigest()[:16]}"


def cached(
    trainer: Any,
    texts: Callable[[], Iterable[str]],
    corpus: dict[str, Any],
    *,
    root: Path | None = None,
    retrain: bool = False,
    progress: bool = True,
) -> tuple[HFTokenizer, bool]:
    """``(tokenizer, from_cache)``: the tokenizer ``trainer`` trained on ``texts()`` (called only
    when it is not cached), kept under :func:`cache_root` with its fingerprint and loaded back
    verified. A damaged cache entry is trained again, never trusted."""
    from tokensmith import atomic_write_text

    folder = cache_root(root) / cache_key(trainer, corpus)
    record = folder / "fingerprint.txt"
    if not retrain and record.is_file() and (folder / "tokenizer.json").is_file():
        try:
            return load_tokenizer(folder, fingerprint=record.read_text(encoding="utf-8").strip()), True
        except (TokensmithError, OSError, ValueError):
            pass  # a damaged or foreign entry: trained again below, and overwritten
    tokenizer = trainer.train(texts(), progress=progress)
    try:
        tokenizer.save(folder)
        atomic_write_text(record, tokenizer.fingerprint() + "\n")
    except OSError as exc:
        raise DataUnavailableError(
            f"cannot write the tokenizer cache {str(folder)!r}: {exc}",
            component=COMPONENT,
            hint="pass cache = a writable directory, or set $TOKENSMITH_CACHE",
        ) from None
    return tokenizer, False
