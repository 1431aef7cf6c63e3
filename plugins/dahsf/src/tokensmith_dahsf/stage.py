"""The ``dahsf`` tokenizer stage: text normalization by digestion in a hierarchical symbolic
forest (DAHSF, Kevin You, arXiv 2412.14054), with the semantic parse alongside.

``normalize`` gives the canonical sentence of what the text says (every paraphrase of a command
becomes the same text; slot values pass through unchanged); ``parse`` gives the template and
slot values; ``digest`` gives both and the digested symbols.
"""

from __future__ import annotations

import functools
from importlib import resources
from pathlib import Path

import attrs

from tokensmith import BuildContext, InputError, TokenizerStage

from .forest import Digestion, Forest, Parse

_COMPONENT = "tokenizer_stage 'dahsf'"


def shipped_forests() -> tuple[str, ...]:
    """The names of the forests this plugin ships (``forests/<name>.toml``)."""
    folder = resources.files("tokensmith_dahsf") / "forests"
    return tuple(sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".toml")))


def _is_file_ref(ref: str) -> bool:
    return ref.endswith(".toml") or "/" in ref or "\\" in ref


def check_forest_ref(instance: object, attribute: object, value: object) -> None:
    """A shipped forest's name, or the path of an existing forest TOML file."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"a forest is a shipped forest's name or a .toml path, got {value!r}")
    if _is_file_ref(value):
        if not Path(value).is_file():
            raise ValueError(f"forest file {value!r} does not exist")
    elif value not in shipped_forests():
        raise ValueError(
            f"unknown forest {value!r}: the shipped forests are {', '.join(shipped_forests())} "
            "(or give the path of a .toml file)"
        )


def forest_source(ref: str) -> str:
    """The TOML text of a forest reference: a shipped forest's file, or the file named."""
    if _is_file_ref(ref):
        return Path(ref).read_text(encoding="utf-8")
    return (resources.files("tokensmith_dahsf") / "forests" / f"{ref}.toml").read_text(encoding="utf-8")


@functools.lru_cache(maxsize=8)
def _shipped(name: str) -> Forest:
    return Forest.from_toml(forest_source(name), name=name, component=f"dahsf forest {name!r}")


def load_forest(ref: str, *, component: str | None = None) -> Forest:
    """A compiled forest: a shipped one by name (compiled once per process), or a TOML file."""
    try:
        check_forest_ref(None, None, ref)
    except ValueError as exc:
        raise InputError(
            str(exc),
            component=component or "dahsf forest",
            hint="give a shipped forest's name (e.g. 'home') or the path of a .toml file",
        ) from None
    if _is_file_ref(ref):
        return Forest.from_file(ref, component=component)
    return _shipped(ref)


@attrs.define
class DAHSFStage(TokenizerStage):
    """Digestion in a hierarchical symbolic forest as a text normalizer: each paraphrase of a
    command becomes its canonical sentence; the parse (template + slots) is one call away."""

    name = "dahsf"
    forest: str = attrs.field(
        default="home",
        validator=check_forest_ref,
        metadata={"doc": "a shipped forest's name ('home') or the path of a forest TOML file"},
    )
    require_command: bool = attrs.field(
        default=False,
        metadata={
            "doc": "refuse (InputError) text that does not digest to one command, instead of normalizing "
            "what it can"
        },
    )
    ctx: BuildContext | None = attrs.field(default=None, repr=False, eq=False)
    compiled: Forest = attrs.field(init=False, repr=False, eq=False)

    def __attrs_post_init__(self) -> None:
        self.compiled = load_forest(self.forest, component=_COMPONENT)

    @property
    def special_tokens(self) -> tuple[str, ...]:
        """The special-token strings of the pipeline's tokenizer (none outside a pipeline)."""
        tokenizer = getattr(self.ctx, "tokenizer", None)
        return tuple(tokenizer.special_tokens.values()) if tokenizer is not None else ()

    def digest(self, text: str) -> Digestion:
        return self.compiled.digest(text, special_tokens=self.special_tokens, component=_COMPONENT)

    def parse(self, text: str) -> Parse:
        """The template and slot values of one command (InputError for empty text, text with
        special-token strings, or text that is not a command of the forest)."""
        return self.compiled.parse(text, special_tokens=self.special_tokens, component=_COMPONENT)

    def normalize(self, text: str) -> str:
        """The canonical sentence of ``text`` (empty text stays empty: there is nothing to
        normalize). Idempotent: a canonical sentence normalizes to itself."""
        if self.require_command:
            self.parse(text)
        return self.digest(text).normalized
