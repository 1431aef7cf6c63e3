"""Chat prompts: one user turn in the ChatML form that instruct models such as
SmolLM2-Instruct were tuned on, as their own chat template renders it.

The result is a :class:`~tokensmith.TrustedText`, so its markers become control tokens,
while the user's text stays data: a marker inside it is refused, never passed on as a
control token (it could close the turn or open a system one).
"""

from __future__ import annotations

from .errors import IncompatibleComponentsError, InputError
from .tokenizer import Tokenizer, TrustedText, require_text

#: the ChatML turn markers, which must be special tokens of the tokenizer
CHATML_MARKERS = ("<|im_start|>", "<|im_end|>")


def has_chatml(tokenizer: Tokenizer) -> bool:
    """Whether both ChatML markers are special tokens of ``tokenizer``."""
    specials = set(tokenizer.special_tokens.values())
    return all(marker in specials for marker in CHATML_MARKERS)


def chatml_prompt(tokenizer: Tokenizer, user: str, *, system: str | None = None,
                  component: str = "chat prompt") -> TrustedText:
    """``user`` as one ChatML user turn followed by the opened assistant turn (what
    ``apply_chat_template(..., add_generation_prompt=True)`` gives), after a system turn
    when ``system`` is given. A tokenizer without the ChatML markers as special tokens is
    an :class:`IncompatibleComponentsError`; a marker inside ``user`` or ``system`` an
    :class:`InputError` naming ``component``."""
    require_text(user, component)
    if system is not None:
        require_text(system, component)
    if not has_chatml(tokenizer):
        raise IncompatibleComponentsError(
            f"tokenizer '{tokenizer.name}' has no ChatML markers ({', '.join(CHATML_MARKERS)}) as special "
            "tokens", component=component,
            hint="use a ChatML instruct model (e.g. smollm2), or send the text without a chat template")
    for what, text in (("user", user), ("system", system or "")):
        found = [marker for marker in CHATML_MARKERS if marker in text]
        if found:
            raise InputError(f"the {what} text holds the ChatML marker {found[0]!r}", component=component,
                             hint="chat markers cannot be part of a message; remove them from the text")
    head = f"<|im_start|>system\n{system}<|im_end|>\n" if system is not None else ""
    return TrustedText(f"{head}<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n")
