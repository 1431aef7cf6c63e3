"""The digits captioning setup of the ``prior`` benchmark (PRIOR: Chen, Peng, Zhang, Ji, 2025,
arXiv 2505.08971, at toy scale): scikit-learn's 8×8 digits (the ``digits`` dataset of
tokensmith-datasets) with templated captions, a tiny vision prefix on a tiny Llama, and the
text-only reference model's view of the same sequences.

A sequence is the image then the caption, all as token ids, so that the core recipe runner
(which batches token-id fields only) carries the image:

    [pixel_0 ... pixel_63] <bos> w_1 ... w_n <eos>

``pixel_j`` is the id ``PIXEL0 + v`` of the j-th pixel's value v ∈ 0..16. The captioning model
(:class:`PrefixCaptioner`) turns the 64 values into ``prefix`` embeddings through an MLP (the
"vision prefix", LaVi/Fuyu-style: no visual encoder) and runs the LM on [prefix, caption]; the
reference (:class:`TextOnly`) drops the pixel positions before its LM sees anything, so it is
text-only by construction. Both return logits for every position of the sequence (zeros at the
pixel positions, whose labels are IGNORE_INDEX), so labels, PRIOR's weights and the loss all
index the same positions.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tokensmith import IGNORE_INDEX, InputError

COMPONENT = "prior benchmark"
DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
#: caption templates: the digit word is the only image-related token; the rest is boilerplate
TEMPLATES = (
    "a picture of the digit {d} .",
    "this image shows a handwritten {d} .",
    "here we see the number {d} , written by hand .",
    "a small grey image of a {d} on a black background .",
    "the digit in this picture is a {d} .",
)
SPECIALS = ("<pad>", "<bos>", "<eos>")
PIXELS = 64
LEVELS = 17  # pixel values 0..16


class Vocabulary:
    """Word-level ids: the specials, every template word, the ten digit words, then the 17
    pixel-value tokens (``PIXEL0 + v``). One word, one token, so "the digit-name token" is one
    position of each caption."""

    def __init__(self, templates: Sequence[str] = TEMPLATES) -> None:
        words: list[str] = list(SPECIALS)
        for template in templates:
            if template.count("{d}") != 1:
                raise InputError(f"template {template!r} must hold '{{d}}' exactly once", component=COMPONENT)
            for word in template.split():
                if word != "{d}" and word not in words:
                    words.append(word)
        words += [d for d in DIGITS if d not in words]
        self.words = words
        self.index = {w: i for i, w in enumerate(words)}
        self.pixel0 = len(words)
        self.size = self.pixel0 + LEVELS
        self.digit_ids = tuple(self.index[d] for d in DIGITS)
        self.pad, self.bos, self.eos = (self.index[s] for s in SPECIALS)

    def caption(self, template: str, label: int) -> tuple[list[int], int]:
        """The caption's ids (<bos> ... <eos>) and the position of the digit word in them."""
        words = template.split()
        slot = words.index("{d}")
        ids = (
            [self.bos] + [self.digit_ids[label] if w == "{d}" else self.index[w] for w in words] + [self.eos]
        )
        return ids, slot + 1

    def pixels(self, image: Sequence[Sequence[int]]) -> list[int]:
        flat = [int(v) for row in image for v in row]
        if len(flat) != PIXELS or not all(0 <= v < LEVELS for v in flat):
            raise InputError(
                f"an image must be 8x8 values in 0..16, got {len(flat)} values "
                f"(min {min(flat, default=None)}, max {max(flat, default=None)})",
                component=COMPONENT,
            )
        return [self.pixel0 + v for v in flat]

    def example(self, image: Sequence[Sequence[int]], label: int, template: str) -> dict[str, Any]:
        """One training sequence (the runner's ``input_ids``/``labels``/``response_mask``) and
        the position of its digit word in ``input_ids``."""
        caption, slot = self.caption(template, label)
        ids = self.pixels(image) + caption
        labels = [IGNORE_INDEX] * (PIXELS + 1) + caption[1:]  # nothing predicts a pixel or <bos>
        return {
            "input_ids": ids,
            "labels": labels,
            "response_mask": [0] * (PIXELS + 1) + [1] * (len(caption) - 1),
            "digit_at": PIXELS + slot,
        }


def _pad_logits(logits: Any, before: int) -> Any:
    """``logits`` behind ``before`` positions of zeros, as a transformers output (``.logits``)."""
    import torch
    from transformers.modeling_outputs import CausalLMOutput

    zeros = torch.zeros(logits.shape[0], before, logits.shape[2], dtype=logits.dtype, device=logits.device)
    return CausalLMOutput(logits=torch.cat([zeros, logits], dim=1))


def tiny_lm(vocab_size: int, *, hidden: int, layers: int, seed: int, context: int = 64) -> Any:
    """A tiny Llama (random weights from ``seed``) over the caption vocabulary."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=hidden,
        intermediate_size=4 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=context,
        tie_word_embeddings=False,
        bos_token_id=None,
        eos_token_id=None,
        pad_token_id=None,
    )
    torch.manual_seed(seed)
    return LlamaForCausalLM(config)


def make_captioner(lm: Any, *, prefix: int, pixel0: int, seed: int) -> Any:
    """:class:`PrefixCaptioner` around ``lm`` (the class is built on first use: torch is imported
    lazily)."""
    import torch

    class PrefixCaptioner(torch.nn.Module):
        """The captioning "VLM": an MLP maps the 64 pixel values (scaled to [0, 1]) to ``prefix``
        embeddings that come before the caption's token embeddings in the LM."""

        def __init__(self) -> None:
            super().__init__()
            hidden = lm.config.hidden_size
            torch.manual_seed(seed)
            self.vision = torch.nn.Sequential(
                torch.nn.Linear(PIXELS, 4 * hidden),
                torch.nn.GELU(),
                torch.nn.Linear(4 * hidden, prefix * hidden),
            )
            self.lm, self.prefix, self.pixel0 = lm, prefix, pixel0

        def get_input_embeddings(self) -> Any:
            return self.lm.get_input_embeddings()

        def forward(self, input_ids: Any, attention_mask: Any = None, use_cache: Any = None) -> Any:
            if input_ids.shape[1] <= PIXELS:
                raise InputError(
                    f"a sequence of {input_ids.shape[1]} tokens holds no caption after its {PIXELS} pixels",
                    component=COMPONENT,
                )
            values = (input_ids[:, :PIXELS] - self.pixel0).float() / (LEVELS - 1)
            prefix = self.vision(values).view(input_ids.shape[0], self.prefix, -1)
            text = self.lm.get_input_embeddings()(input_ids[:, PIXELS:])
            mask = None
            if attention_mask is not None:
                ones = torch.ones(
                    input_ids.shape[0], self.prefix, dtype=attention_mask.dtype, device=attention_mask.device
                )
                mask = torch.cat([ones, attention_mask[:, PIXELS:]], dim=1)
            logits = self.lm(
                inputs_embeds=torch.cat([prefix, text], dim=1), attention_mask=mask, use_cache=False
            ).logits
            # LM position prefix + j reads caption token j, which is position PIXELS + j of the sequence
            return _pad_logits(logits[:, self.prefix :], PIXELS)

    return PrefixCaptioner()


def make_text_only(lm: Any) -> Any:
    """:class:`TextOnly` around the reference ``lm``: the sequence's pixel positions are dropped
    before the LM reads it (PRIOR's reference never sees the image)."""
    import torch

    class TextOnly(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lm = lm

        def forward(self, input_ids: Any, attention_mask: Any = None, use_cache: Any = None) -> Any:
            mask = attention_mask[:, PIXELS:] if attention_mask is not None else None
            logits = self.lm(input_ids=input_ids[:, PIXELS:], attention_mask=mask, use_cache=False).logits
            return _pad_logits(logits, PIXELS)

    return TextOnly()
