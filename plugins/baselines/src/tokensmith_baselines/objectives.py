"""The standard objectives a technique is compared against.

- ``cross-entropy``: next-token cross-entropy (the core's :class:`tokensmith.TokenCrossEntropy`);
- ``response-only`` / ``uniform``: every response token, selected / weighted 1;
- ``random-fraction``: a seeded random share ρ of the response tokens — the random-selection
  baseline of the token-selection papers (Rho-1, Lin et al. 2024: a random k% against the
  selected k%);
- ``exact-match``: 1 when the completion's final answer equals ``info["answer"]``, else 0;
- ``group-normalized``: GRPO's advantage (Shao et al. 2024, DeepSeekMath: outcome supervision),
  ``(r - mean(group)) / (std(group) + eps)``, with TRL's ``scale_rewards`` options.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

import attrs

from tokensmith import (
    Advantage,
    InputError,
    Reward,
    TokenCrossEntropy,
    TokenMask,
    TokenWeights,
    non_negative_int,
    positive,
    probability,
    response_tokens,
)

__all__ = ["ExactMatch", "GroupNormalized", "RandomFraction", "ResponseOnly", "TokenCrossEntropy",
           "Uniform"]


class ResponseOnly(TokenMask):
    """True on the response tokens: ``batch["response_mask"]`` where the batch has one, else
    every predicted label (a batch whose prompt labels are IGNORE_INDEX already)."""

    name = "response-only"

    def __call__(self, batch: Mapping[str, Any], outputs: Any) -> Any:
        return response_tokens(batch)


class Uniform(TokenWeights):
    """Weight 1 on every response token (0 elsewhere): a weighted loss equal to the plain one."""

    name = "uniform"

    def __call__(self, batch: Mapping[str, Any], outputs: Any) -> Any:
        import torch

        return response_tokens(batch).to(torch.float32)


def _batch_seed(seed: int, *tensors: Any) -> int:
    """A 63-bit seed from ``seed`` and the tensors' contents: the same batch draws the same
    selection in any process, another batch another one."""
    digest = hashlib.blake2b(str(seed).encode(), digest_size=8)
    for tensor in tensors:
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return int.from_bytes(digest.digest(), "little") >> 1


@attrs.define
class RandomFraction(TokenMask):
    """A uniformly random ``round(ρ·N)`` (at least one) of the batch's ``N`` response tokens,
    drawn without replacement from a generator seeded by ``seed`` and the batch's labels (and
    response mask): deterministic for a batch, fresh for every other batch."""

    name = "random-fraction"
    fraction: float = attrs.field(default=0.5, validator=probability,
                                  metadata={"doc": "ρ, the share of response tokens kept, in (0, 1]"})
    seed: int = attrs.field(default=0, validator=non_negative_int,
                            metadata={"doc": "seed of the selection (with the batch's contents)"})

    def __call__(self, batch: Mapping[str, Any], outputs: Any) -> Any:
        import torch

        eligible = response_tokens(batch)
        index = eligible.reshape(-1).nonzero().squeeze(1)
        selected = torch.zeros(eligible.numel(), dtype=torch.bool, device=eligible.device)
        if len(index):
            keep = max(1, int(self.fraction * len(index) + 0.5))
            generator = torch.Generator().manual_seed(_batch_seed(self.seed, batch["labels"], eligible))
            chosen = torch.randperm(len(index), generator=generator)[:keep].to(index.device)
            selected[index[chosen]] = True
        return selected.reshape(eligible.shape)


# a number: optional sign, digits (optionally grouped by thousands with commas), optional decimals
_NUMBER = re.compile(r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?")


def last_number(text: str) -> Decimal | None:
    """The last number in ``text`` as an exact decimal (``"1,000.50"`` → ``1000.5``), or None."""
    found = _NUMBER.findall(text)
    return Decimal(found[-1].replace(",", "")) if found else None


def last_boxed(text: str) -> str | None:
    r"""The content of the last ``\boxed{...}`` in ``text`` (nested braces balanced), or None."""
    start = text.rfind("\\boxed{")
    if start < 0:
        return None
    depth, i = 0, start + len("\\boxed")
    for j in range(i, len(text)):
        depth += {"{": 1, "}": -1}.get(text[j], 0)
        if depth == 0:
            return text[i + 1:j].strip()
    return None


def _as_number(text: str) -> Decimal | str:
    try:
        return Decimal(text.replace(",", "").strip())
    except InvalidOperation:
        return text.strip()


@attrs.define
class ExactMatch(Reward):
    r"""1.0 when a completion's final answer equals its ``answer`` (a per-completion column,
    ``info["answer"]``), else 0.0. ``extract`` says what the final answer is, for the
    completion and the answer alike:

    - ``"last-number"`` (math): the last number in the text, compared as an exact decimal
      (``"so 1,000.50"`` matches ``"1000.5"``; ``"#### 72"`` matches ``72``); no number → 0;
    - ``"boxed"``: the content of the last ``\boxed{...}`` (an answer without one is taken
      whole), compared as a decimal when both are numbers, else as stripped text;
    - ``"text"``: the whole text, stripped of surrounding whitespace.
    """

    name = "exact-match"
    extract: Literal["last-number", "boxed", "text"] = attrs.field(
        default="last-number", metadata={"doc": "what the final answer is: last-number, boxed or text"})

    def _final(self, text: str, *, answer: bool) -> Decimal | str | None:
        if self.extract == "last-number":
            return last_number(text)
        if self.extract == "boxed":
            boxed = last_boxed(text)
            if boxed is None:
                return _as_number(text) if answer else None
            return _as_number(boxed)
        return text.strip()

    def __call__(self, prompts: Sequence[str], completions: Sequence[str], **info: Any) -> list[float]:
        prompts, completions = self.check_inputs(prompts, completions, info, require=("answer",))
        answers = info["answer"]
        if isinstance(answers, (str, bytes)) or not isinstance(answers, Sequence):
            raise InputError(f"'answer' must be a list (one per completion), not {type(answers).__name__}",
                             component=self.component, hint="repeat the answer for every completion")
        rewards = []
        for completion, answer in zip(completions, answers):
            expected = self._final(str(answer), answer=True)
            got = self._final(completion, answer=False)
            rewards.append(1.0 if got is not None and expected is not None and got == expected else 0.0)
        return rewards


@attrs.define
class GroupNormalized(Advantage):
    """GRPO's group-relative advantage: each reward minus its group's mean, divided by a
    standard deviation plus ``eps`` — TRL's ``scale_rewards``:

    - ``"group"``: the group's (unbiased) standard deviation;
    - ``"batch"``: the whole batch's (Dr. GRPO / DAPO style, less sensitive to easy groups);
    - ``"none"``: not divided (mean-centred only).

    A group of one, or of equal rewards, has advantage 0 (the ``eps`` guard; no NaN).
    """

    name = "group-normalized"
    scale: Literal["group", "batch", "none"] = attrs.field(
        default="group", metadata={"doc": "divide by the group's std, the batch's, or none"})
    eps: float = attrs.field(default=1e-4, validator=positive,
                             metadata={"doc": "added to the standard deviation (TRL: 1e-4)"})

    def __call__(self, rewards: Any, groups: Any) -> Any:
        import torch

        r, g = self.check_inputs(rewards, groups)
        _, inverse, counts = torch.unique(g, return_inverse=True, return_counts=True)
        mean = torch.zeros(len(counts), dtype=r.dtype).index_add_(0, inverse, r) / counts
        centred = r - mean[inverse]
        if self.scale == "none":
            return centred.to(torch.float32)
        if self.scale == "group":
            squares = torch.zeros(len(counts), dtype=r.dtype).index_add_(0, inverse, centred**2)
            std = (squares / (counts - 1).clamp(min=1)).sqrt()[inverse]
        else:
            std = r.std() if len(r) > 1 else torch.zeros((), dtype=r.dtype)
        return (centred / (std + self.eps)).to(torch.float32)
