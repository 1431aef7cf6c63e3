"""Norm surgery for LN-free models: install fake norms, calibrate σ̄, freeze, export.

Heimersheim (2024), "You can remove GPT2's LayerNorm by fine-tuning";
Baroni et al. (2025), "Transformers Don't Need LayerNorm at Inference Time", arXiv 2507.02559.

``LNFreeNormalization.replace`` swaps every selected LayerNorm / RMSNorm for a
:class:`~tokensmith_ln_free.fake_norm.FakeNorm` (in place, or on exactly one deep copy).
Mode ``"live"`` stops there: the model computes bit-identically what it computed before,
ready for the removal schedule while fine-tuning (the ``ln-free`` recipe,
:mod:`tokensmith_ln_free.finetune`).
Mode ``"fake"`` also measures σ̄ on calibration texts and freezes every selected norm;
mode ``"removed"`` further turns the special-position treatment off and exports each norm
as a :class:`~tokensmith_ln_free.fake_norm.FixedLinearMap`.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Literal

import attrs

from tokensmith import (
    BuildContext,
    Change,
    ConfigError,
    ContextLengthError,
    ModelReport,
    NormalizationProvider,
    NormLayer,
    SurgeryError,
    replace_module,
    unit_interval,
)

COMPONENT = "normalization 'ln-free'"
POSITIONS_ATTR = "ln_free_positions"
MODES = ("live", "fake", "removed")

#: Short, plain English sentences: enough to measure σ̄ of each norm when no texts are given.
DEFAULT_CALIBRATION_TEXTS = (
    "The museum opens at nine in the morning and closes at five in the evening.",
    "She poured the coffee, opened the window, and read the letter twice.",
    "A prime number has exactly two divisors: one and itself.",
    "The river flooded the lower fields after three days of heavy rain.",
    "def add(a, b):\n    return a + b",
    "Our team will present the quarterly results to the board next Tuesday.",
    "Photosynthesis turns light, water and carbon dioxide into sugar and oxygen.",
    "He missed the last train home, so he walked along the quiet streets.",
)


def _tuple(value: Any) -> Any:
    """A Python list becomes a tuple; anything else is left for the validator to refuse."""
    return tuple(value) if isinstance(value, list) else value


def _texts(instance: Any, attribute: Any, value: Any) -> None:
    if not isinstance(value, tuple) or not value or not all(isinstance(v, str) and v for v in value):
        raise ValueError(f"{attribute.name} must be a non-empty list of non-empty strings, got {value!r}")


def _token_ids(instance: Any, attribute: Any, value: Any) -> None:
    if value is None:
        return
    if not isinstance(value, tuple) or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0
                                               for v in value):
        raise ValueError(f"{attribute.name} must be a list of token ids (ints >= 0), got {value!r}")


def _open_unit(instance: Any, attribute: Any, value: Any) -> None:
    unit_interval(instance, attribute, value)
    if value in (0, 1):
        raise ValueError(f"{attribute.name} must lie in (0, 1), got {value!r}")


def fake_norms(model: Any) -> dict[str, Any]:
    """Every :class:`FakeNorm` of ``model`` by path."""
    from .fake_norm import FakeNorm

    return {path: m for path, m in model.named_modules() if isinstance(m, FakeNorm)}


def special_positions(model: Any) -> Any:
    positions = model.__dict__.get(POSITIONS_ATTR)
    if positions is None:
        raise SurgeryError(f"{type(model).__name__} has no ln-free fake norms", component=COMPONENT,
                           hint="run LNFreeNormalization(...).replace(model) first")
    return positions


@contextmanager
def observing(model: Any) -> Iterator[None]:
    """Live fake norms update their σ̄ EMA on every forward pass inside this block."""
    norms = [n for n in fake_norms(model).values() if n.mode == "live"]
    for norm in norms:
        norm.observing = True
    try:
        yield
    finally:
        for norm in norms:
            norm.observing = False


def forward_kwargs(batch: Any, device: Any, *, labels: bool = False) -> dict[str, Any]:
    """Model keyword arguments for a batch: token ids ``(batch, seq)``, or a mapping of keyword
    arguments (``inputs_embeds``, ``labels``...). ``labels=True`` adds ``labels = input_ids``
    when the batch has none."""
    kwargs = dict(batch) if isinstance(batch, Mapping) else {"input_ids": batch}
    kwargs = {k: v.to(device) for k, v in kwargs.items()}
    if labels and "labels" not in kwargs:
        if "input_ids" not in kwargs:
            raise ConfigError(f"a batch with keys {sorted(kwargs)} has no labels", component=COMPONENT,
                              hint="add 'labels' to batches given as keyword arguments")
        kwargs["labels"] = kwargs["input_ids"]
    return kwargs


def calibrate(model: Any, batches: Iterable[Any]) -> int:
    """Run batches (see :func:`forward_kwargs`) through ``model`` observing σ̄; returns the count of
    tokens measured (padding, 0 in a batch's ``attention_mask``, is not)."""
    import torch

    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    tokens = 0
    try:
        with observing(model), torch.no_grad():
            for batch in batches:
                kwargs = forward_kwargs(batch, device)
                model(**kwargs)
                first = next(iter(kwargs.values()))
                mask = kwargs.get("attention_mask")
                tokens += int(mask.sum()) if mask is not None else first.shape[0] * first.shape[1]
    finally:
        model.train(was_training)
    return tokens


def freeze(model: Any, paths: Iterable[str] | None = None) -> list[str]:
    """Switch fake norms (all, or those at ``paths``) to fake mode; returns the paths frozen."""
    norms = fake_norms(model)
    chosen = list(norms) if paths is None else list(paths)
    missing = [p for p in chosen if p not in norms]
    if missing:
        raise SurgeryError(f"no fake norm at {missing}; fake norms: {list(norms)}", component=COMPONENT)
    for path in chosen:
        norms[path].freeze()
    return chosen


def export(model: Any) -> list[Change]:
    """Replace every (frozen) fake norm by the :class:`FixedLinearMap` it has become, in place."""
    from .fake_norm import FixedLinearMap

    norms = fake_norms(model)
    maps = {path: FixedLinearMap.from_fake_norm(norm) for path, norm in norms.items()}
    changes = []
    for path, new in maps.items():
        replace_module(model, path, new)
        changes.append(Change(path, "FakeNorm", "FixedLinearMap", "exported"))
    special_positions(model).detach()
    del model.__dict__[POSITIONS_ATTR]
    return changes


def _floating_tensors(value: Any) -> Iterator[Any]:
    """The floating-point tensors inside a module's inputs or output (tensors, tuples, dicts,
    ``ModelOutput``s; a KV cache object is not looked into)."""
    import torch

    if isinstance(value, torch.Tensor):
        if value.is_floating_point() or value.is_complex():
            yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _floating_tensors(item)
    elif isinstance(value, tuple | list):
        for item in value:
            yield from _floating_tensors(item)


def _finite(value: Any) -> bool:
    import torch

    return all(bool(torch.isfinite(t).all()) for t in _floating_tensors(value))


@attrs.frozen
class NonFinite:
    """Where a forward pass first became non-finite: batch ``batch`` (0-based), the first module
    to return a NaN or inf (``path``; ``""`` for the model itself) and whether its inputs were
    still finite (if not, the value was made between modules, in its parent's forward)."""

    batch: int
    path: str
    module: str
    inputs_finite: bool

    def describe(self) -> str:
        if not self.path:
            return f"the model itself ({self.module})"
        parent = self.path.rpartition(".")[0]
        return f"{self.path} ({self.module})" + (
            ", whose inputs are finite" if self.inputs_finite else
            f", whose inputs were already non-finite (made in the forward of {parent or 'the model'})")


def first_non_finite(model: Any, batches: Iterable[Any]) -> NonFinite | None:
    """Run ``batches`` (see :func:`forward_kwargs`) through ``model`` in eval mode, watching every
    module's output with forward hooks; for the first batch whose model output is not finite, the
    first module (in order of completion) whose output was not. ``None`` if all are finite."""
    import torch

    seen: list[NonFinite] = []
    current = [0]

    def watch(path: str) -> Any:
        def hook(module: Any, args: tuple, kwargs: dict, output: Any) -> None:
            if not seen and not _finite(output):
                seen.append(NonFinite(current[0], path, type(module).__name__, _finite((args, kwargs))))
        return hook

    handles = [m.register_forward_hook(watch(p), with_kwargs=True) for p, m in model.named_modules()]
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    try:
        with torch.no_grad():
            for index, batch in enumerate(batches):
                current[0] = index
                seen.clear()
                if not _finite(model(**forward_kwargs(batch, device))):
                    return seen[0]
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return None


def _restore(model: Any, originals: Mapping[str, Any]) -> None:
    """Put the original norms back and remove the special-position hooks (an in-place surgery undone)."""
    for path, module in originals.items():
        replace_module(model, path, module)
    positions = model.__dict__.pop(POSITIONS_ATTR, None)
    if positions is not None:
        positions.detach()


def model_bytes(model: Any) -> int:
    tensors = list(model.parameters()) + list(model.buffers())
    return sum(t.numel() * t.element_size() for t in tensors)


@attrs.define
class LNFreeNormalization(NormalizationProvider):
    """Replaces LayerNorm / RMSNorm layers by fake norms (``make``) and runs the surgery (``replace``).

    Its fields are the parameters of the ``ln-free`` component (one ``[normalization]`` table).
    ``tokenizer`` encodes the calibration texts and gives the default special ids (BOS/EOS):
    the pipeline's tokenizer when built in a pipeline (through ``ctx``); in Python, assign it
    (``provider.tokenizer = tok``) or pass ``ctx=BuildContext(runtime, tokenizer=tok)``.
    """

    name = "ln-free"

    layers: tuple[str, ...] = attrs.field(default=("*",), converter=_tuple, validator=_texts, metadata={
        "doc": 'glob patterns over norm paths ("model.norm", "model.layers.2?.*")'})
    mode: Literal["live", "fake", "removed"] = attrs.field(
        default="live", validator=attrs.validators.in_(MODES), metadata={
            "doc": '"live" (fake norms installed, nothing frozen), "fake" (σ̄ calibrated and frozen) or '
                   '"removed" (frozen, special treatment off, exported as fixed linear maps)'})
    calibration_texts: tuple[str, ...] = attrs.field(
        default=DEFAULT_CALIBRATION_TEXTS, converter=_tuple, validator=_texts, metadata={
            "doc": "texts that σ̄ is measured on in modes fake and removed"})
    momentum: float = attrs.field(default=0.9, validator=_open_unit, metadata={
        "doc": "EMA momentum of σ̄, in (0, 1)"})
    special_ids: tuple[int, ...] | None = attrs.field(default=None, converter=_tuple, validator=_token_ids,
                                                      metadata={"doc": "token ids that share σ̄_special with "
                                                                       "position 0 (default: BOS/EOS ids)"})
    special_first: bool = attrs.field(default=True, validator=attrs.validators.instance_of(bool), metadata={
        "doc": "keep position 0's own σ̄_special in fake mode"})
    special_eot: bool = attrs.field(default=True, validator=attrs.validators.instance_of(bool), metadata={
        "doc": "keep σ̄_special for the special ids in fake mode"})
    ctx: BuildContext | None = attrs.field(default=None, repr=False, eq=False)
    tokenizer: Any = attrs.field(default=None, init=False, repr=False, eq=False)
    _positions: Any = attrs.field(default=None, init=False, repr=False, eq=False)

    def __attrs_post_init__(self) -> None:
        if self.ctx is not None:
            self.tokenizer = self.ctx.tokenizer

    def _special_ids(self) -> tuple[int, ...]:
        if self.special_ids is not None:
            return self.special_ids
        ids = (getattr(self.tokenizer, "bos_id", None), getattr(self.tokenizer, "eos_id", None))
        return tuple(sorted({i for i in ids if i is not None}))

    def _new_positions(self) -> Any:
        from .fake_norm import SpecialPositions

        positions = SpecialPositions(self._special_ids())
        positions.treat_first = self.special_first
        positions.treat_special_ids = self.special_eot and bool(positions.special_ids)
        return positions

    def make(self, layer: NormLayer) -> Any:
        """A live :class:`FakeNorm` around ``layer.module``, after checking that it normalizes the
        last dimension and that its formula is the one fake mode implements (γ ⊙ x / σ_t, plus
        centring and β for LayerNorm; γ = 1 + weight for a Gemma-style norm)."""
        import torch

        from .fake_norm import FakeNorm, token_std

        layer.require_last_dim(COMPONENT, hint="fake norms normalize over the hidden dimension; "
                                               "leave this layer out with `layers = [...]`")
        if self._positions is None:
            self._positions = self._new_positions()
        fake = FakeNorm(layer.module, layer.kind, layer.eps, self._positions, self.momentum,
                        layer.weight_offset)
        weight = fake.weight
        dtype = weight.dtype if weight is not None else torch.float32
        device = weight.device if weight is not None else torch.device("cpu")
        x = torch.randn(2, 3, layer.dim, generator=torch.Generator().manual_seed(0)).to(device, dtype)
        with torch.no_grad():
            expected = layer.module(x).float()
            got = fake.scaled(x, token_std(x, layer.kind, layer.eps).unsqueeze(-1)).float()
        tol = 1e-4 if dtype in (torch.float32, torch.float64) else 3e-2
        if expected.shape != got.shape or not torch.allclose(expected, got, rtol=tol, atol=tol):
            raise SurgeryError(
                f"{layer.path} ({type(layer.module).__name__}) does not compute "
                f"{'γ ⊙ (x - mean) / σ + β' if layer.kind == 'layernorm' else 'γ ⊙ x / rms(x)'}, "
                "so its fake version would not match it", component=COMPONENT,
                hint="this plugin supports nn.LayerNorm, nn.RMSNorm and *RMSNorm/*LayerNorm classes "
                     "with that formula; leave this layer out with `layers = [...]`")
        return fake

    def select(self, layers: list[NormLayer]) -> list[NormLayer]:
        paths = [layer.path for layer in layers]
        unmatched = [p for p in self.layers if not fnmatch.filter(paths, p)]
        if unmatched:
            raise SurgeryError(f"layer pattern(s) {unmatched} match no norm layer; found: {paths}",
                               component=COMPONENT,
                               hint="use glob patterns over these paths in `layers`")
        return [layer for layer in layers
                if any(fnmatch.fnmatchcase(layer.path, p) for p in self.layers)]

    def calibration_batches(self, model: Any) -> list[Any]:
        import torch

        if self.tokenizer is None:
            raise ConfigError(f"mode {self.mode!r} encodes calibration texts, but this provider "
                              "has no tokenizer", component=COMPONENT,
                              hint="build it in a pipeline, or set provider.tokenizer = ... before replace()")
        device = next(model.parameters()).device
        config = model.config
        context = getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None)
        batches = []
        for text in self.calibration_texts:
            ids = list(self.tokenizer.encode(text).ids)
            if context is not None and len(ids) > context:
                raise ContextLengthError(f"calibration text of {len(ids)} tokens exceeds the model's "
                                         f"context of {context}", component=COMPONENT,
                                         hint="use shorter calibration texts")
            batches.append(torch.tensor([ids], device=device))
        return batches

    def replace(self, model: Any, *, inplace: bool = True) -> tuple[Any, ModelReport]:
        """The surgery; in modes fake and removed the surgered model is then run on the calibration
        texts, and a non-finite output is a :class:`SurgeryError` naming the first module that
        produced one (an in-place model gets its original norms back first)."""
        existing = fake_norms(model)
        if existing:
            raise SurgeryError(f"{type(model).__name__} already has {len(existing)} ln-free fake norm(s) "
                               f"({', '.join(list(existing)[:3])}...)", component=COMPONENT,
                               hint="use fake_norms(model) or start from the original model")
        mode = self.mode
        batches = self.calibration_batches(model) if mode != "live" else []
        self._positions = self._new_positions()
        try:
            model, report = super().replace(model, inplace=inplace)
        finally:
            positions, self._positions = self._positions, None
        setattr(model, POSITIONS_ATTR, positions)
        positions.attach(model)
        notes = list(report.notes)
        notes.append(f"worked on one deep copy: {model_bytes(model) / 2**20:.1f} MiB more memory; "
                     "the original model is unchanged" if not inplace else "changed the model in place")
        if mode != "live":
            originals = {path: norm.original for path, norm in fake_norms(model).items()}
            try:
                notes += self._freeze(model, batches, [c.path for c in report.changes], positions, inplace)
            except BaseException:
                if inplace:
                    _restore(model, originals)
                raise
        changes = [attrs.evolve(c, after=type(model.get_submodule(c.path)).__name__,
                                detail=f"{c.detail}, mode={mode}") for c in report.changes]
        return model, ModelReport(report.component, tuple(changes), tuple(notes))

    def _freeze(self, model: Any, batches: list[Any], paths: list[str], positions: Any,
                inplace: bool) -> list[str]:
        """Modes fake and removed on the surgered model: calibrate, freeze, export, check; the notes."""
        tokens = calibrate(model, batches)
        frozen = freeze(model, paths)
        notes = [f"σ̄ calibrated on {len(batches)} text(s) ({tokens} tokens); {len(frozen)} norm(s) frozen"]
        if self.mode == "removed":
            positions.treat_first = positions.treat_special_ids = False
            export(model)
            notes.append("special-position treatment off; frozen norms exported as fixed linear maps")
        found = first_non_finite(model, batches)
        if found is not None:
            raise SurgeryError(
                f"with {len(frozen)} norm(s) frozen ({self.mode} mode) the model's output on calibration "
                f"text {found.batch + 1} of {len(batches)} is not finite (NaN or inf); the first module "
                f"with a non-finite output is {found.describe()}", component=COMPONENT,
                hint="freeze fewer norms (`layers = [...]`), or remove them one at a time while "
                     "fine-tuning (the ln-free recipe: [recipe] type = \"ln-free\", or "
                     "tokensmith_ln_free.finetune.finetune)"
                     + ("; the model was given its original norms back" if inplace else ""))
        return notes
