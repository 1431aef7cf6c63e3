"""Where appended bytes can change a GPT-2 byte-level BPE encoding (a fast ``enc(dec(t)) == t`` mask).

Phan et al. (arXiv 2410.09303, Sec. 3.3) bound cover enumeration by pre-token
boundaries; the same regex facts decide, for a canonical encoding ``E`` of a
text ``y`` and a token ``v``, whether ``E + [v]`` is canonical, without
re-encoding ``y + bytes(v)`` for all ~50k tokens.

The GPT-2 pattern is ``'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+|
?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+``. With ``L`` the last pre-token of ``y``
and ``s`` the bytes of ``v`` (as text), one of three things happens:

* *clean*: a new pre-token starts at ``s``; valid iff ``enc(s) == [v]``;
* *attach*: ``L + s`` becomes one pre-token; valid iff ``BPE(L + s) == E_L + [v]``;
* otherwise ``v`` straddles a pre-token boundary (invalid), or the case is
  rare and irregular (contractions after ``'``, whitespace runs, characters
  whose whitespace class differs between Python and the regex engine), and
  those few tokens are re-encoded.
"""

from __future__ import annotations

import unicodedata
from typing import Any

LET, NUM, PUN, SPC, WSP, AMB, MIX = range(7)
#: Unicode White_Space, what the regex's \s matches
WHITE_SPACE = frozenset("\t\n\x0b\x0c\r \x85\xa0\u1680\u2028\u2029\u202f\u205f\u3000"
                        + "".join(chr(c) for c in range(0x2000, 0x200B)))
CONTRACTIONS = ("'s", "'t", "'re", "'ve", "'m", "'ll", "'d")


def char_class(ch: str) -> int:
    if ch in WHITE_SPACE:
        return SPC if ch == " " else WSP
    if ch.isspace():  # Python and the regex engine disagree on it (\x1c..\x1f)
        return AMB
    cat = unicodedata.category(ch)[0]
    return LET if cat == "L" else NUM if cat == "N" else PUN


def uniform_class(text: str) -> int:
    classes = {char_class(c) for c in text}
    return classes.pop() if len(classes) == 1 else MIX


class TokenClasses:
    """Per-token tensors for one tokenizer: first-character class, whole-token class,
    ``enc(s) == [v]``, "space then non-space" and "could complete a contraction"."""

    def __init__(self, view: Any, encode_ids: Any) -> None:
        import torch

        n = view.vocab_size
        first = torch.full((n,), AMB, dtype=torch.long)
        whole = torch.full((n,), MIX, dtype=torch.long)
        space_word = torch.zeros(n, dtype=torch.bool)
        contraction_tail = torch.zeros(n, dtype=torch.bool)
        ids, texts = [], []
        for v, text in enumerate(view.texts):
            if not text:
                continue
            first[v] = char_class(text[0])
            whole[v] = uniform_class(text)
            space_word[v] = text[0] == " " and len(text) > 1 and text[1] not in WHITE_SPACE \
                and not text[1].isspace()
            contraction_tail[v] = any(("'" + text).startswith(c) for c in CONTRACTIONS)
            ids.append(v)
            texts.append(text)
        alone = torch.zeros(n, dtype=torch.bool)
        for v, got in zip(ids, encode_ids(texts)):
            alone[v] = got == [v]
        self.first, self.whole, self.alone = first, whole, alone
        self.space_word, self.contraction_tail = space_word, contraction_tail
        self.is_text = torch.tensor([t is not None for t in view.texts], dtype=torch.bool)


def last_pretoken_kind(last: str) -> int:
    """The regex branch that matched the pre-token ``last``: LET/NUM/PUN, SPC for whitespace runs,
    MIX for a contraction, AMB when the regex engine and Python could disagree."""
    if any(char_class(c) == AMB for c in last):
        return AMB
    if all(c in WHITE_SPACE for c in last):
        return SPC
    if last in CONTRACTIONS:
        return MIX
    core = last[1:] if last[0] == " " else last
    kind = uniform_class(core) if core else AMB
    return kind if kind in (LET, NUM, PUN) else AMB


def split_candidates(classes: TokenClasses, last: str, split_ok: bool,
                     after_quote: bool) -> tuple[Any, Any, Any, Any, str | None]:
    """Boolean vectors (clean, attach, invalid, messy) over ids for a state whose last pre-token
    is ``last``, and the text that attaching tokens join (``last``, or the final space of a
    whitespace run). Ids without text are in none of them.

    ``split_ok``: for a whitespace run of 2+ characters, whether its tokens are those of
    ``last[:-1]`` followed by those of ``last[-1]`` (a following word takes the last character
    away from the run, so otherwise no word token can follow). ``after_quote``: the pre-token
    before ``last`` is ``'``, so "'" + "l" + "l..." can still become the contraction "'ll"."""
    import torch

    text, first, whole = classes.is_text, classes.first, classes.whole
    none = torch.zeros_like(text)
    kind = last_pretoken_kind(last)
    messy = text & (first == AMB)
    if kind == AMB:
        return none, none, none, text, None
    if kind == MIX:  # a contraction ends at its last letter whatever follows
        return text & ~messy, none, none, messy, None
    if kind in (LET, NUM, PUN):
        joins = text & (first == kind)
        attach = joins & (whole == kind)
        invalid = joins & ~attach
        if last == "'":  # "'" + "re" is the contraction "'re": irregular, re-encode
            messy = messy | (text & classes.contraction_tail)
        if after_quote and last in ("l", "r", "v"):  # "'" "l" + "l" -> "'ll"
            messy = messy | joins
        clean = text & ~joins & ~messy
        return clean, attach, invalid & ~messy, messy, last
    # a whitespace run: tokens that start with whitespace extend it
    starts_ws = text & ((first == SPC) | (first == WSP))
    messy = messy | (starts_ws & ~classes.space_word)
    clean_ws = starts_ws & classes.space_word
    word = text & ((first == LET) | (first == NUM) | (first == PUN))
    if last == " ":  # " " + word: one " ?X+" pre-token
        attach = word & (whole == first)
        return clean_ws, attach, word & ~attach, messy, " "
    if len(last) == 1:  # "\n" + word: a new pre-token
        return clean_ws | word, none, none, messy, None
    # a longer run before a word gives up its last character: a final " " joins the word
    # (handled by the caller as an attach to " "), anything else stands alone
    if last[-1] == " ":
        attach = word & (whole == first) if split_ok else none
        return clean_ws, attach, word & ~attach, messy, " "
    return clean_ws | (word if split_ok else none), none, none if split_ok else word, messy, None
