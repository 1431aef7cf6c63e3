"""Training a tokenizer with Hugging Face ``tokenizers``: streaming texts into its trainer
with a progress bar, and wrapping the result as an :class:`HFTokenizer` with a verified byte
view. The pipelines themselves (model, normalizer, pre-tokenizer, trainer settings) are the
trainer components' business (tokensmith-baselines: ``byte-level-bpe``, ``bpe``,
``unigram``, ``wordpiece``); this is what they share.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Set
from typing import Any

from tokensmith.core.errors import ConfigError, InputError, TokensmithError
from tokensmith.core.tokenizer import require_flag, require_text

from .hf_tokenizer import HFTokenizer

#: how many training texts (cut to SAMPLE_CHARS characters) the byte view is checked on
SAMPLES = 4
SAMPLE_CHARS = 2000


def _stream(texts: Iterable[str], component: str, samples: list[str], count: list[int]) -> Iterator[str]:
    for text in texts:
        require_text(text, component)
        if len(samples) < SAMPLES and text:
            samples.append(text[:SAMPLE_CHARS])
        count[0] += 1
        yield text


def train_tokenizer(backend: Any, trainer: Any, texts: Iterable[str], *, progress: bool = True,
                    name: str = "trained", component: str = "tokenizer trainer",
                    max_vocab_size: int | None = None,
                    finish: Callable[[Any], Any] | None = None, **token_names: str | None) -> HFTokenizer:
    """Train the ``tokenizers.Tokenizer`` ``backend`` (in place) with the ``tokenizers``
    trainer ``trainer`` on ``texts``, then return it as an :class:`HFTokenizer` named ``name``.

    ``texts`` is any iterable of ``str``, read once: a generator streams (the length of a
    sized collection feeds the progress bar). ``progress`` is the trainer's own progress bar,
    shown only when stderr is a terminal. ``finish(backend) -> backend`` edits the trained
    tokenizer before it is wrapped (added tokens, byte-fallback tokens). The byte view is
    checked against ``decode`` on every token and on the first few texts; with
    ``max_vocab_size`` a larger vocabulary is a :class:`ConfigError`. ``token_names``
    (``bos_token``, ``eos_token``, ``pad_token``, ``unk_token``) name the special tokens.

    A text that is not ``str`` (or a lone ``str`` in place of the corpus) is an
    :class:`InputError`, an empty corpus (or one of empty texts only) too; what ``tokenizers``
    refuses (a vocabulary too small for the corpus's characters) a :class:`ConfigError`.
    """
    show = require_flag(progress, "progress", component) and sys.stderr.isatty()
    if isinstance(texts, (str, bytes, bytearray)) or not isinstance(texts, Iterable) \
            or isinstance(texts, (Set, Mapping)):
        raise InputError(f"expected an iterable of texts, got {type(texts).__name__}", component=component,
                         hint="pass a list or generator of str (a single text: [text])")
    trainer.show_progress = show
    samples: list[str] = []
    count = [0]
    length = len(texts) if hasattr(texts, "__len__") else None
    try:
        backend.train_from_iterator(_stream(texts, component, samples, count), trainer=trainer, length=length)
    except TokensmithError:
        raise
    except Exception as err:
        if type(err) is not Exception:  # the texts' own iterator failed: its error as it is
            raise
        raise ConfigError(f"tokenizers refused to train: {err}", component=component,
                          hint="a vocabulary must hold every character the corpus needs: raise "
                               "vocab_size (or limit the alphabet)") from err
    if not count[0]:
        raise InputError("no texts to train on", component=component, hint="pass a non-empty corpus")
    if not samples:  # every text was "": the trainer saw no character
        raise InputError(f"all {count[0]} texts are empty: nothing to train on", component=component,
                         hint="pass a corpus with text in it")
    if finish is not None:
        backend = finish(backend)
    tokenizer = HFTokenizer(backend, name=name, samples=samples, **token_names)
    if max_vocab_size is not None and tokenizer.vocab_size > max_vocab_size:
        raise ConfigError(f"the trained vocabulary has {tokenizer.vocab_size} tokens, more than "
                          f"vocab_size = {max_vocab_size}", component=component,
                          hint="raise vocab_size, or limit the alphabet (fewer distinct characters)")
    return tokenizer
