"""ssToken as tokensmith components (Qin et al., ICLR 2026, arXiv 2510.18250).

- ``sstoken`` (objective, a :class:`tokensmith.TokenMask`): keeps the top ``ceil(ρ·R)`` response
  tokens of each sample by ssToken's combined score (see :mod:`tokensmith_sstoken.select`).
  Its history model θ_his is, by default (``history_mode = "base"``), the frozen base model before
  SFT, as in the released code: a recipe builds the mask after loading the model, and the mask
  keeps a frozen copy of it; in Python, :meth:`SSToken.with_history` attaches one. The paper
  precomputes ℓ_his offline; a batch that carries ``history_losses`` (indexed like the labels)
  is used as it is, otherwise the frozen copy computes them in the same step (the same
  numbers, one extra no-grad forward). With ``history_mode = "ema"`` the copy follows the trained
  model as the paper's optional EMA, θ_his ← α·θ_his + (1 − α)·θ after every optimizer step
  (section 3.1 of the paper), done by the ``sstoken`` recipe's callback.
- ``sstoken`` (recipe): the run setup the mask needs — eager attention with
  ``output_attentions`` (the semantic score reads the last layer's attention map), the
  optimizer step (the attention-only warm-up) and the EMA update of an ``ema`` history, whose
  weights go into every checkpoint (``sstoken/history.safetensors``) so that a resumed run goes
  on from the same θ_his.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from tokensmith import (
    ArtifactError,
    IncompatibleComponentsError,
    Recipe,
    TokenMask,
    non_negative_int,
    probability,
    unit_interval,
)

from .select import COMPONENT, keep_top, per_token_loss, sstoken_scores

#: a batch key with the history model's per-token losses, precomputed offline (indexed like labels)
HISTORY_LOSSES_KEY = "history_losses"
#: the file an ``ema`` history's weights are saved to, in every checkpoint folder
# in a subfolder: the checkpoint's own *.safetensors files are the model's weights
HISTORY_FILE = "sstoken/history.safetensors"
HISTORIES = ("base", "ema")


def _frozen_copy(model: Any) -> Any:
    import copy

    history = copy.deepcopy(model)
    history.eval()
    history.requires_grad_(False)
    return history


@attrs.define(eq=False)
class SSToken(TokenMask):
    """ssToken's token selection as a loss mask: per sample, the top ``ceil(ratio·R)`` of its R
    response tokens by ``gamma·minmax(REL) + (1-gamma)·a`` (REL: retrospective excess loss
    against the frozen history model; a: last-layer attention mass to the prompt). Before step
    ``warmup_steps`` only the attention score is used (the released code's warm-up). θ_his is
    the frozen base (``history_mode = "base"``) or its EMA along the training (``"ema"``)."""

    name = "sstoken"
    ratio: float = attrs.field(default=0.6, validator=probability,
                               metadata={"doc": "ρ, the share of each sample's response tokens "
                                         "kept, in (0, 1] (paper: 0.6)"})
    gamma: float = attrs.field(default=0.5, validator=unit_interval,
                               metadata={"doc": "γ, the weight of the normalised REL against the attention "
                                         "score, in [0, 1] (paper: 0.5)"})
    warmup_steps: int = attrs.field(default=0, validator=non_negative_int,
                                    metadata={"doc": "optimizer steps that use the attention score alone "
                                              "(γ = 0); counted by the `sstoken` recipe"})
    history_mode: str = attrs.field(default="base", validator=attrs.validators.in_(HISTORIES), metadata={
        "doc": "θ_his: 'base' (the frozen model before SFT, as the released code) or 'ema' "
               "(θ_his ← α·θ_his + (1-α)·θ after every optimizer step; needs the `sstoken` recipe)"})
    ema_decay: float = attrs.field(default=0.99, validator=unit_interval, metadata={
        "doc": "α of the EMA history, in [0, 1] (1: θ_his stays the base; 0: the model of the last "
               "step); used with history_mode = 'ema'"})
    ctx: Any = attrs.field(default=None, repr=False, metadata={"doc": "the build context (its model is the "
                                                               "history model's source)"})
    step: int = attrs.field(default=0, init=False)
    _history: Any = attrs.field(default=None, init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        model = getattr(self.ctx, "model", None)
        if model is not None:
            self._history = _frozen_copy(model)

    def with_history(self, model: Any) -> SSToken:
        """Use a frozen copy of ``model`` (the base before SFT) as θ_his; returns self."""
        self._history = _frozen_copy(model)
        return self

    @property
    def history(self) -> Any:
        return self._history

    def history_losses(self, batch: Mapping[str, Any]) -> Any:
        """ℓ_his per label position: the batch's precomputed ``history_losses`` or the frozen
        history model's losses on this batch."""
        import torch

        given = batch.get(HISTORY_LOSSES_KEY) if hasattr(batch, "get") else None
        if given is not None:
            if self.history_mode == "ema":
                raise IncompatibleComponentsError(
                    f"the batch carries precomputed '{HISTORY_LOSSES_KEY}' (the base model's), but the "
                    "mask's history is 'ema', which changes every step", component=COMPONENT,
                    hint=f"use history_mode = \"base\" with precomputed losses, or drop "
                         f"'{HISTORY_LOSSES_KEY}'")
            return given
        if self._history is None:
            raise IncompatibleComponentsError(
                "no history model: ssToken's REL needs the frozen base model's per-token losses",
                component=COMPONENT,
                hint="build the mask in a recipe (it copies the loaded model), call .with_history(model) "
                     f"before training, or give the batch '{HISTORY_LOSSES_KEY}'")
        labels = batch["labels"]
        device = labels.device
        if next(self._history.parameters()).device != device:
            self._history.to(device)
        kwargs = {"input_ids": batch["input_ids"].to(device)}
        if batch.get("attention_mask") is not None:
            kwargs["attention_mask"] = batch["attention_mask"].to(device)
        with torch.no_grad():
            out = self._history(**kwargs, output_attentions=False, use_cache=False)
        logits = out.logits if hasattr(out, "logits") else out[0]
        return per_token_loss(logits, labels)

    def update_history(self, model: Any) -> None:
        """The EMA step θ_his ← α·θ_his + (1 − α)·θ (paper, section 3.1), on every parameter;
        ``model`` is the trained model (the history's source)."""
        import torch

        if self._history is None:
            raise IncompatibleComponentsError("no history model to update", component=COMPONENT,
                                              hint="build the mask in a recipe, or call .with_history(model)")
        current = dict(model.named_parameters())
        pairs = [(p, current[name]) for name, p in self._history.named_parameters() if name in current]
        if len(pairs) != len(current):
            raise IncompatibleComponentsError(
                "the trained model's parameters are not the history model's (was the model changed after "
                "the mask copied it?)", component=COMPONENT,
                hint="build the mask after any surgery on the model, or use history_mode = \"base\"")
        with torch.no_grad():
            # lerp: h + (1 - α)(θ - h) = α·h + (1 - α)·θ
            torch._foreach_lerp_([h for h, _ in pairs], [t.detach().to(h.device, h.dtype) for h, t in pairs],
                                 1.0 - self.ema_decay)

    def history_state(self) -> dict[str, Any]:
        """The history model's weights (for a checkpoint): name → tensor."""
        return {name: p.detach().contiguous() for name, p in self._history.named_parameters()}

    def load_history_state(self, tensors: Mapping[str, Any]) -> None:
        """Set the history model's weights from :meth:`history_state`'s mapping (a checkpoint's)."""
        import torch

        params = dict(self._history.named_parameters())
        if set(tensors) != set(params):
            raise ArtifactError("the saved history weights do not fit the history model (first differences: "
                                f"{sorted(set(tensors) ^ set(params))[:3]})", component=COMPONENT,
                                hint="resume with the model the checkpoint was trained from")
        with torch.no_grad():
            for name, p in params.items():
                p.copy_(tensors[name].to(p.device, p.dtype))

    def attention(self, outputs: Any) -> Any:
        """The last layer's attention averaged over heads, (batch, length, length)."""
        attentions = getattr(outputs, "attentions", None)
        if not attentions:
            raise IncompatibleComponentsError(
                "the model's outputs hold no attention maps; ssToken's semantic score reads the last "
                "layer's attention", component=COMPONENT,
                hint="add [recipe] type = \"sstoken\" (eager attention, output_attentions), or run the model "
                     "with attn_implementation='eager' and config.output_attentions = True")
        return attentions[-1].detach().float().mean(dim=1)

    def __call__(self, batch: Mapping[str, Any], outputs: Any) -> Any:
        logits = outputs.logits if hasattr(outputs, "logits") else outputs
        gamma = 0.0 if self.step < self.warmup_steps else self.gamma
        scores, eligible = sstoken_scores(logits, batch["labels"], self.attention(outputs),
                                          self.history_losses(batch),
                                          response_mask=batch.get("response_mask"), gamma=gamma)
        return keep_top(scores, eligible, self.ratio)


def _sstoken_masks(objective: Any) -> list[SSToken]:
    masks = getattr(objective, "masks", ())
    return [m for m in masks if isinstance(m, SSToken)]


@attrs.define
class SSTokenRecipe(Recipe):
    """The run setup ssToken needs: the model's attention switched to eager with
    ``output_attentions`` (so ``outputs.attentions`` reach the mask), and callbacks that tell
    every `sstoken` mask the optimizer step (its warm-up), restored exactly on resume, and move
    an ``ema`` history after every optimizer step, saving it with every checkpoint."""

    name = "sstoken"

    def prepare(self, model: Any, ctx: Any) -> Any:
        if not hasattr(model, "config"):
            raise IncompatibleComponentsError(
                f"{type(model).__name__} has no config: the sstoken recipe needs a transformers model "
                "that can return attention maps", component="sstoken recipe")
        if hasattr(model, "set_attn_implementation"):
            model.set_attn_implementation("eager")
        else:
            model.config._attn_implementation = "eager"
        model.config.output_attentions = True
        return model

    def callbacks(self, ctx: Any) -> list[Any]:
        from transformers import TrainerCallback

        def masks() -> list[SSToken]:
            return _sstoken_masks(getattr(ctx.trainer, "objective", None))

        def ema_masks() -> list[SSToken]:
            return [m for m in masks() if m.history_mode == "ema"]

        class StepCounter(TrainerCallback):
            def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
                for mask in masks():
                    mask.step = state.global_step

        class EMAHistory(TrainerCallback):
            """θ_his ← α·θ_his + (1 − α)·θ once per optimizer step (on_step_end runs after it), on
            every rank (DDP keeps θ identical on all ranks, so θ_his stays identical too)."""

            def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
                if state.global_step == 0 or not ema_masks():
                    return
                # a resumed run: θ_his is the one saved with the checkpoint, not a copy of the base
                path = Path(args.output_dir) / f"checkpoint-{state.global_step}" / HISTORY_FILE
                if not path.is_file():
                    raise ArtifactError(
                        f"resuming at step {state.global_step}, but {str(path)!r} (that checkpoint's EMA "
                        "history model) does not exist", component=COMPONENT,
                        hint="resume from a checkpoint of an sstoken run with history_mode = \"ema\", in the "
                             "same output directory")

                from tokensmith import load_artifact

                tensors, _ = load_artifact(path, plugin="tokensmith-sstoken")
                for i, mask in enumerate(ema_masks()):
                    prefix = f"{i}."
                    mask.load_history_state({k[len(prefix):]: v for k, v in tensors.items()
                                             if k.startswith(prefix)})

            def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
                # the prepared, unwrapped model (DDP's wrapper shares its parameters, under other names)
                model = ctx.model if ctx.model is not None else kwargs.get("model")
                for mask in ema_masks():
                    mask.update_history(model)

            def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
                ema = ema_masks()
                if not ema or not args.should_save:
                    return
                from tokensmith import save_artifact

                folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
                tensors = {f"{i}.{k}": v for i, m in enumerate(ema) for k, v in m.history_state().items()}
                (folder / HISTORY_FILE).parent.mkdir(parents=True, exist_ok=True)
                save_artifact(folder / HISTORY_FILE, tensors, plugin="tokensmith-sstoken", version=_version(),
                              config={"step": state.global_step, "ema_decay": [m.ema_decay for m in ema]})

        return [StepCounter(), EMAHistory()]


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("tokensmith-sstoken")
    except PackageNotFoundError:
        return "0+unknown"

