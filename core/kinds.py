"""The component kinds: the table of every kind a plugin can register (one place), and the
small interfaces of the kinds beyond the four main ones, one job each."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from .constraint import Constraint
from .dataset import Dataset
from .decoding import Decoder
from .embedding import EmbeddingProvider
from .errors import ConfigError, IncompatibleComponentsError, InputError
from .normalization import NormalizationProvider
from .objectives import Objective
from .recipe import Recipe
from .report import Report
from .tokenizer import Tokenizer


class TokenizerStage(ABC):
    """A text normalizer run before tokenization (NFKC, symbolic rewriting...)."""

    name: str = "stage"

    @abstractmethod
    def normalize(self, text: str) -> str: ...


class TokenizerTrainer(ABC):
    """Learns a :class:`Tokenizer` from texts (docs/tokenizers.md).

    What ``train`` returns has a verified byte view and is saveable: ``save(dir)`` writes a
    ``tokenizer.json`` that ``HFTokenizer.from_file`` (the ``hf-file`` tokenizer) loads back
    to the same ids, bytes and ``fingerprint()``; its ``vocab_size`` is at most the one asked
    for. ``deterministic`` says whether the same texts always give the same fingerprint
    (Hugging Face's Unigram and WordPiece trainers do not: their results follow hash-map
    order, huggingface/tokenizers#1794).
    """

    name: str = "trainer"
    deterministic: bool = True

    @abstractmethod
    def train(self, texts: Iterable[str], *, progress: bool = True) -> Tokenizer:
        """Learn a tokenizer from ``texts``, any iterable of ``str`` (read once, streamed:
        a generator over a large corpus is never held in memory). ``progress`` shows a
        progress bar on a terminal (never when stderr is not one)."""

    #: the parameters that name a special token's role (checked by :meth:`check_special_roles`)
    special_roles: tuple[str, ...] = ("bos_token", "eos_token", "pad_token", "unk_token")

    @classmethod
    def check_special_roles(cls, values: Mapping[str, Any]) -> None:
        """Every role in :attr:`special_roles` that ``values`` sets (not ``None``) names one of
        ``values["special_tokens"]``; otherwise a ConfigError saying which role and what to do."""
        specials = tuple(values.get("special_tokens", ()))
        for role in cls.special_roles:
            token = values.get(role)
            if token is not None and token not in specials:
                raise ConfigError(f"{role} {token!r} is not one of special_tokens {list(specials)}",
                                  hint=f"add {token!r} to special_tokens or set {role} to another of them")


class Evaluation(ABC):
    """Scores a target and returns a :class:`~tokensmith.Report` (``tokensmith eval``).

    The target is a built :class:`~tokensmith.Pipeline` or, for an evaluation of tokenizers
    only (fertility, parity across languages, Rényi efficiency...), a
    :class:`~tokensmith.Tokenizer`. ``targets`` says which it accepts: ``("pipeline",)``
    (the default: it needs the model or the LM) or ``("pipeline", "tokenizer")`` (it reads
    only a tokenizer, the pipeline's when given a pipeline: :meth:`tokenizer_of`).
    An evaluation that compares several tokenizers in one report adds ``"tokenizers"``: its
    target may then be a mapping of labels to tokenizers, in order (``tokensmith eval NAME
    --tokenizer A --tokenizer B`` passes one, labelled as given on the command line), and
    :meth:`tokenizers_of` reads any target as such a mapping. Given several tokenizers, an
    evaluation without ``"tokenizers"`` runs once per tokenizer.
    ``quick=True`` asks for a smaller run (a smoke test, CI)."""

    name: str = "evaluation"
    targets: tuple[str, ...] = ("pipeline",)

    @abstractmethod
    def run(self, target: Any, *, quick: bool = False) -> Report: ...

    def lm_of(self, target: Any) -> Any:
        """The causal language model of a pipeline target (``target.lm``); anything without one
        (a tokenizer alone, an encoder pipeline) is an IncompatibleComponentsError naming this
        evaluation."""
        lm = getattr(target, "lm", None)
        if lm is None:
            raise IncompatibleComponentsError(
                "needs a pipeline with a causal language model", component=f"evaluation '{self.name}'",
                hint=f"tokensmith eval {self.name} --model smollm2")
        return lm

    @staticmethod
    def tokenizer_of(target: Any) -> Tokenizer:
        """The tokenizer to evaluate: ``target`` itself, or a pipeline's ``tokenizer``."""
        tokenizer = target if isinstance(target, Tokenizer) else getattr(target, "tokenizer", None)
        if tokenizer is None:
            raise InputError(f"{type(target).__name__} is neither a Tokenizer nor a pipeline with one",
                             component="evaluation",
                             hint="pass a tokensmith.Tokenizer or a built tokensmith.Pipeline")
        return tokenizer

    @classmethod
    def tokenizers_of(cls, target: Any) -> dict[str, Tokenizer]:
        """The tokenizers to compare, label -> tokenizer in order: ``target`` itself when it is
        a mapping (checked), else ``{name: tokenizer}`` of :meth:`tokenizer_of` (a pipeline's is
        labelled with its model source)."""
        if isinstance(target, Mapping):
            if not target:
                raise InputError("no tokenizer to evaluate (an empty mapping)", component="evaluation",
                                 hint="give at least one tokenizer")
            for label, tokenizer in target.items():
                if not isinstance(label, str) or not isinstance(tokenizer, Tokenizer):
                    raise InputError(f"{label!r}: {type(tokenizer).__name__} in a mapping of tokenizers; "
                                     "labels are str and values tokensmith.Tokenizer objects",
                                     component="evaluation", hint="pass {label: tokenizer, ...}")
            return dict(target)
        tokenizer = cls.tokenizer_of(target)
        spec = getattr(target, "spec", None)
        source = getattr(getattr(spec, "model", None), "source", None)
        return {str(source) if isinstance(source, str) and source else tokenizer.name: tokenizer}


class Benchmark(ABC):
    """A technique measured against its baseline in the same run (``tokensmith bench``):
    ratios, never absolute times alone, in the returned :class:`~tokensmith.Report`
    (metrics, tables, series for the plot). A benchmark loads what it measures itself;
    ``quick=True`` runs smaller sizes (a smoke run)."""

    name: str = "benchmark"

    @abstractmethod
    def run(self, *, quick: bool = False) -> Report: ...

    def registry(self) -> Any:
        """The registry that built this benchmark (a ``ctx`` parameter's ``ctx.registry``), else
        the installed plugins' (``tokensmith.default_registry()``)."""
        ctx = getattr(self, "ctx", None)
        if ctx is not None and getattr(ctx, "registry", None) is not None:
            return ctx.registry
        from tokensmith import default_registry

        return default_registry()

    def cpu_pipeline(self, model: Any, *, threads: int, seed: int = 0) -> Any:
        """The pipeline a CPU measurement runs on: ``model`` (a model source; SmolLM2 without
        its progress bar) on the CPU in float32 with ``threads`` threads, built by :meth:`registry`."""
        from .pipeline import PipelineSpec

        source = {"source": model, "progress": False} if model == "smollm2" else model
        return self.registry().build_pipeline(PipelineSpec(
            model=source, runtime={"device": "cpu", "dtype": "fp32", "threads": threads, "seed": seed}))


class Attribution(ABC):
    """Assigns importance to input tokens for a model's prediction."""

    name: str = "attribution"

    @abstractmethod
    def attribute(self, lm: Any, text: str, target: str) -> Any: ...


class Architecture(ABC):
    """Builds a model a technique defines (returns an ``nn.Module``)."""

    name: str = "architecture"

    @abstractmethod
    def build(self, runtime: Any) -> Any: ...


class Demo(ABC):
    """A section of ``tokensmith demo``: shows what a plugin does against the baseline."""

    name: str = "demo"

    @abstractmethod
    def run(self, pipeline: Any, out: Any) -> Report:
        """Print to ``out`` (a text stream; plain text unless it is a terminal) and return
        the numbers shown as a :class:`~tokensmith.Report`."""


@attrs.frozen
class Kind:
    """One component kind: its name, the interface a built component implements, the
    registration hook that returns its records, and the pipeline slot it fills (if any).

    A built object passes the interface check if it is an instance of ``interface``
    or (duck typing) has every attribute in ``members``.
    """

    name: str
    interface: type
    hook: str
    members: tuple[str, ...]
    slot: str | None = None
    summary: str = ""

    def conforms(self, obj: Any) -> bool:
        if isinstance(obj, self.interface):
            return True
        return all(callable(getattr(obj, m, None)) or hasattr(obj, m) for m in self.members) \
            and not isinstance(obj, (type, str, bytes, int, float, bool, type(None)))


#: Every kind, in the order pipelines use them. Adding a kind: a row here, its hookspec in
#: tokensmith.spec.hookspecs, its interface in tokensmith.__all__ and a section in
#: docs/hooks.md (tests/test_meta.py checks that they agree).
KIND_TABLE: tuple[Kind, ...] = (
    Kind("tokenizer", Tokenizer, "tokensmith_register_tokenizers",
         ("encode", "decode", "token_bytes", "vocab_size"), "tokenizer", "text <-> ids with a byte view"),
    Kind("tokenizer_stage", TokenizerStage, "tokensmith_register_tokenizer_stages", ("normalize",),
         "stages", "a text normalizer run before tokenization"),
    Kind("tokenizer_trainer", TokenizerTrainer, "tokensmith_register_tokenizer_trainers", ("train",),
         None, "learns a tokenizer from texts"),
    Kind("embedding", EmbeddingProvider, "tokensmith_register_embeddings", ("apply",), "embedding",
         "builds and installs an embedding module"),
    Kind("normalization", NormalizationProvider, "tokensmith_register_normalizations", ("replace",),
         "normalization", "norm modules and norm surgery"),
    Kind("decoder", Decoder, "tokensmith_register_decoders", ("generate",), "decoder",
         "turns next-token distributions into text"),
    Kind("constraint", Constraint, "tokensmith_register_constraints", ("allows", "accepts", "reset_counters"),
         "constraint", "a predicate on byte prefixes"),
    Kind("objective", Objective, "tokensmith_register_objectives", ("role", "__call__"), "objective",
         "a loss, token weights or mask, reward or advantage"),
    Kind("recipe", Recipe, "tokensmith_register_recipes", ("prepare", "callbacks"), None,
         "a training procedure run by the core recipe runner"),
    Kind("dataset", Dataset, "tokensmith_register_datasets", ("examples",), None,
         "an offline corpus or task set with seeded splits"),
    Kind("evaluation", Evaluation, "tokensmith_register_evaluations", ("run",), "evaluation",
         "scores a pipeline or a tokenizer; returns a Report"),
    Kind("benchmark", Benchmark, "tokensmith_register_benchmarks", ("run",), None,
         "a technique measured against its baseline in the same run"),
    Kind("attribution", Attribution, "tokensmith_register_attributions", ("attribute",), None,
         "importance of input tokens for a prediction"),
    Kind("architecture", Architecture, "tokensmith_register_architectures", ("build",), None,
         "a model a technique defines"),
    Kind("demo", Demo, "tokensmith_register_demos", ("run",), None, "a section of `tokensmith demo`"),
)

KINDS: tuple[str, ...] = tuple(k.name for k in KIND_TABLE)
KIND_BY_NAME: dict[str, Kind] = {k.name: k for k in KIND_TABLE}

#: The capabilities a component may require of its pipeline (``Component.requires``); any
#: other name is refused when the plugin registers.
REQUIREMENTS: dict[str, str] = {
    "byte_view": "a tokenizer with a byte view (Tokenizer.has_byte_view)",
    "causal_lm": "a causal language model (the pipeline's lm)",
}
