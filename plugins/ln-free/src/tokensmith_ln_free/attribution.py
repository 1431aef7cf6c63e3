"""Direct logit attribution (DLA), exact once the final norm is frozen.

Baroni et al. (2025), arXiv 2507.02559, and Heimersheim (2024): with LayerNorm removed, the
logits are a linear function of the residual stream, so the residual's components (the
embedding and each block's output) contribute additively and exactly.

The final residual is ``r = e + Σ_l Δ_l``. DLA credits component ``c`` with
``W_U · N_lin(c)``, where ``N_lin`` is the final norm with its divisor held fixed. With a
frozen norm that *is* the norm, so each contribution equals the logit change from removing
``c`` from the final norm's input (its direct effect). With a live norm the divisor ``σ_t``
depends on every component; the usual approximation uses the cached ``σ_t`` of ``r``, which
makes the contributions sum to the logits but no longer equal any component's direct effect.
"""

from __future__ import annotations

from typing import Any

import attrs

from tokensmith import SurgeryError

from .schedule import norm_role


@attrs.frozen
class DLAResult:
    """Contributions ``(components, vocab)`` at one position, the model's logits there, and two
    errors: ``sum_error`` = max |Σ contributions − logits|; ``ablation_error`` = max over components
    of |direct effect − contribution|."""

    components: tuple[str, ...]
    contributions: Any = attrs.field(repr=False)
    logits: Any = attrs.field(repr=False)
    norm_mode: str
    sum_error: float
    ablation_error: float


def final_norm(model: Any) -> tuple[str, Any]:
    from .fake_norm import FakeNorm, FixedLinearMap

    for path, module in model.named_modules():
        if isinstance(module, FakeNorm | FixedLinearMap) and norm_role(path) == "final":
            return path, module
    raise SurgeryError(f"{type(model).__name__}'s final norm is not an ln-free fake norm",
                       component="ln-free attribution",
                       hint="install fake norms on it first: LNFreeNormalization(layers=[...]).replace(...)")


def decoder_blocks(model: Any, blocks_path: str | None = None) -> Any:
    """The model's decoder blocks, in order: the ``nn.ModuleList`` at ``blocks_path`` (e.g.
    ``"model.layers"`` for Llama, ``"transformer.h"`` for GPT-2), or by default the one
    ``nn.ModuleList`` of the model with ``config.num_hidden_layers`` entries (an error when there
    is none or more than one, so a list of other modules is never taken for the blocks)."""
    from torch import nn

    where = dict(component="ln-free attribution")
    if blocks_path is not None:
        try:
            blocks = model.get_submodule(blocks_path)
        except AttributeError:
            blocks = None
        if not isinstance(blocks, nn.ModuleList):
            raise SurgeryError(f"{blocks_path!r} is not an nn.ModuleList of {type(model).__name__}", **where,
                               hint="pass the path of the list of decoder blocks, e.g. 'model.layers'")
        return blocks
    layers = getattr(getattr(model, "config", None), "num_hidden_layers", None)
    found = [path for path, m in model.named_modules() if isinstance(m, nn.ModuleList) and len(m) == layers]
    if len(found) != 1:
        raise SurgeryError(f"cannot tell which list holds {type(model).__name__}'s decoder blocks: "
                           f"nn.ModuleLists with config.num_hidden_layers = {layers} entries: {found}",
                           **where, hint="pass blocks_path=..., e.g. 'model.layers' or 'transformer.h'")
    return model.get_submodule(found[0])


def direct_logit_attribution(model: Any, input_ids: Any, *, position: int = -1,
                             blocks_path: str | None = None) -> DLAResult:
    """DLA of the first sequence of ``input_ids`` at ``position``; see the module docstring.
    ``blocks_path``: see :func:`decoder_blocks`."""
    import torch

    from .fake_norm import FakeNorm, token_std

    _, norm = final_norm(model)
    blocks = decoder_blocks(model, blocks_path)
    head = model.get_output_embeddings()
    inputs: list[Any] = []
    outputs: list[Any] = []
    resid: list[Any] = []

    def take_input(module: Any, args: tuple, kwargs: dict) -> None:
        inputs.append(args[0] if args else kwargs["hidden_states"])

    def take_output(module: Any, args: tuple, output: Any) -> None:
        outputs.append(output[0] if isinstance(output, tuple) else output)

    handles = [blocks[0].register_forward_pre_hook(take_input, with_kwargs=True),
               norm.register_forward_pre_hook(lambda m, a: resid.append(a[0]))]
    handles += [b.register_forward_hook(take_output) for b in blocks]
    try:
        with torch.no_grad():
            logits = model(input_ids=input_ids).logits[0, position].float()
    finally:
        for handle in handles:
            handle.remove()
    residual = resid[0]
    before = [inputs[0]] + outputs[:-1]
    components = [inputs[0]] + [out - inp for inp, out in zip(before, outputs, strict=True)]
    names = ["embedding"] + [f"block {i}" for i in range(len(blocks))]
    bias = norm.bias.detach() if norm.bias is not None else None
    is_fake = isinstance(norm, FakeNorm)
    mode = norm.mode if is_fake else "exported"

    with torch.no_grad():
        if is_fake:
            norm.positions.bind(input_ids)
            std = (token_std(residual, norm.kind, norm.eps).unsqueeze(-1) if norm.mode == "live"
                   else norm.frozen_std(residual))

            def apply(x: Any) -> Any:
                return norm.scaled(x, std)
        else:
            apply = norm

        def linear(x: Any) -> Any:
            y = apply(x)
            return y if bias is None else y - bias

        weight = head.weight.float()

        def unembed(x: Any) -> Any:
            return x[0, position].float() @ weight.T

        contributions = [unembed(linear(c)) for c in components]
        full = unembed(norm(residual))
        effects = [full - unembed(norm(residual - c)) for c in components]
        if is_fake:
            norm.positions.clear()
        if bias is not None or head.bias is not None:
            names.append("norm and head bias")
            constant = unembed(bias.expand_as(residual)) if bias is not None else torch.zeros_like(logits)
            contributions.append(constant + (head.bias.float() if head.bias is not None else 0))
    stacked = torch.stack(contributions)
    sum_error = float((stacked.sum(0) - logits).abs().max())
    ablation_error = max(float((e - c).abs().max())
                         for e, c in zip(effects, contributions[:len(effects)], strict=True))
    return DLAResult(tuple(names), stacked, logits, mode, sum_error, ablation_error)
