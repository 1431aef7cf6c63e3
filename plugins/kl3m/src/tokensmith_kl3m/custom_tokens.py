"""The custom token groups of the KL3M domain BPE (Bommarito et al., arXiv 2503.17247, section
"Custom Tokens"): whitespace, Markdown, HTML, JSON, XML, years 1776-2050, numbers 1-999,
enumerations and legal citation abbreviations, plus the power-of-two padding tokens (section
"Power-of-2 Padding": whitespace combinations added until the vocabulary is an exact power).

The paper derives its citation tokens from the Free Law Project's ``reporters-db``, fetched over
the network at training time. No network is reachable here and reporters-db is not an offline
package, so :data:`CITATIONS` is a curated list of the common US reporter, statute, regulation and
case-name abbreviations (the kinds of keys reporters-db holds), split at whitespace as the paper
splits them; the README says so.
"""

from __future__ import annotations

import itertools
import string
from collections.abc import Iterable, Iterator

#: whitespace characters the whitespace group and the padding combine
WHITESPACE = (" ", "\n", "\t", "\r")

_HTML_TAGS = (
    "html",
    "head",
    "body",
    "div",
    "span",
    "p",
    "a",
    "img",
    "table",
    "thead",
    "tbody",
    "tfoot",
    "tr",
    "td",
    "th",
    "ul",
    "ol",
    "li",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "br",
    "hr",
    "b",
    "i",
    "em",
    "strong",
    "sup",
    "sub",
    "pre",
    "code",
    "blockquote",
    "section",
    "article",
    "header",
    "footer",
    "nav",
    "form",
    "input",
    "button",
    "label",
    "select",
    "option",
    "textarea",
    "script",
    "style",
    "meta",
    "link",
    "title",
)
_HTML_ATTRIBUTES = ("href", "src", "alt", "title", "class", "id", "style", "name", "type", "value")
_ROMAN = ("i", "ii", "iii", "iv", "v", "vi", "vii", "viii", "ix", "x", "xi", "xii", "xiii", "xiv", "xv")

#: US citation abbreviations (reporters, statutes and regulations, courts, case names), curated
#: for this plugin in place of reporters-db (see the module docstring); split at whitespace
CITATIONS = """
U.S. S.Ct. S. Ct. L.Ed. L.Ed.2d L. Ed. 2d F. F.2d F.3d F.4th F.Supp. F.Supp.2d F.Supp.3d F. Supp.
F. App'x Fed.Appx. Fed. Appx. B.R. F.R.D. Fed.Cl. Fed. Cl. T.C. M.J. Vet.App. Ct.Cl. Cl.Ct.
A. A.2d A.3d P. P.2d P.3d N.E. N.E.2d N.E.3d N.W. N.W.2d S.E. S.E.2d S.W. S.W.2d S.W.3d So. So.2d So.3d
Cal.Rptr. Cal.Rptr.2d Cal.Rptr.3d N.Y.S. N.Y.S.2d N.Y.S.3d Cal. Cal.App. Cal.4th Cal.5th N.Y.2d N.Y.3d
A.D.2d A.D.3d Ill.2d Ill.App.3d Mass. Pa. Pa.Super. Tex. Fla. Ohio St. Ohio St.3d Wash.2d Mich. N.J.
U.S.C. U.S.C.A. C.F.R. Fed.Reg. Fed. Reg. Stat. Pub.L. Pub. L. Cong. Rec. H.R. S.Rep. H.R.Rep. Doc.
Exec. Order U.C.C. Restatement Am.Jur. Am.Jur.2d C.J.S. A.L.R. L.Rev. L.J. Rev. Ann. Code Gen. Laws
Fed.R.Civ.P. Fed.R.Crim.P. Fed.R.Evid. Fed.R.App.P. R. Civ. Crim. Evid. App. Proc.
Cir. D.C. Cir. Fed.Cir. Dist. Ct. Sup. Super. Bankr. Tax Ct. Ct.App. Ct.Int'l Trade
Id. id. Ibid. supra infra et seq. v. vs. cf. e.g. i.e. accord aff'd rev'd cert. denied
Inc. Corp. Co. Ltd. LLC L.L.C. LLP L.P. N.A. Ass'n Dep't Gov't Comm'n Int'l Nat'l Bros. Mfg. Ins.
Sec. Secs. Art. Arts. Cl. Para. Pt. Ch. Subch. No. Nos. Tit. Reg. Regs. Ord. Amend.
""".split()


def _whitespace() -> list[str]:
    # runs of 2-8 of each whitespace character, and the two mixed runs of running text
    return [ch * n for ch in WHITESPACE for n in range(2, 9)] + ["\r\n", "\t "]


def _markdown() -> list[str]:
    tokens = ["#" * n for n in range(2, 7)] + ["**", "__", "~~", "```", "![", "](", "- [ ]", "- [x]"]
    tokens += ["http://", "https://", "www.", "ftp://", "mailto:", "://"]
    # horizontal rules, underlines and leaders: runs of 2-8
    return tokens + [ch * n for ch in ".-=_*~" for n in range(2, 9)]


def _html(cased: bool) -> list[str]:
    tags = list(_HTML_TAGS)
    names = tags + ([t.upper() for t in tags] if cased else [])
    tokens = [f"<{t}" for t in names] + [f"</{t}>" for t in names] + ["/>", "<!DOCTYPE", "&nbsp;", "&amp;"]
    attributes = list(_HTML_ATTRIBUTES)
    attributes += [a.upper() for a in attributes] if cased else []
    return tokens + [f" {a}=" for a in attributes] + [f'{a}="' for a in attributes]


def _json() -> list[str]:
    return [
        '{"',
        '"}',
        '["',
        '"]',
        '":',
        '",',
        '","',
        '":"',
        '": "',
        '", "',
        "null",
        "true",
        "false",
        "{}",
        "[]",
    ]


def _xml() -> list[str]:
    return ["<?xml", "?>", "<!--", "-->", "<![CDATA[", "]]>", "<xml", "</xml>", "xmlns", "xmlns:"]


def _years() -> list[str]:
    return [str(year) for year in range(1776, 2051)]


def _numbers() -> list[str]:
    return [str(n) for n in range(1, 1000)]


def _enumerations(cased: bool) -> list[str]:
    letters = string.ascii_lowercase + (string.ascii_uppercase if cased else "")
    romans = list(_ROMAN) + ([r.upper() for r in _ROMAN] if cased else [])
    tokens = [f"({c})" for c in letters] + [f"({n})" for n in range(1, 100)] + [f"({r})" for r in romans]
    # the same in running lists: "a.", "iv.", "12." (numbers 1-99)
    tokens += [f"{r}." for r in romans] + [f"{n}." for n in range(1, 100)]
    return tokens


GROUPS = ("whitespace", "markdown", "html", "json", "xml", "years", "numbers", "enumerations", "citations")


def custom_tokens(groups: Iterable[str] = GROUPS, *, cased: bool = True) -> list[str]:
    """The custom tokens of ``groups``, sorted and unique, single characters left out (they are
    byte tokens already), lower-cased for an uncased tokenizer (as the paper's uncased variant)."""
    builders = {
        "whitespace": _whitespace,
        "markdown": _markdown,
        "html": lambda: _html(cased),
        "json": _json,
        "xml": _xml,
        "years": _years,
        "numbers": _numbers,
        "enumerations": lambda: _enumerations(cased),
        "citations": lambda: list(CITATIONS),
    }
    tokens: set[str] = set()
    for group in groups:
        tokens.update(builders[group]())
    if not cased:
        tokens = {t.lower() for t in tokens}
    return sorted(t for t in tokens if len(t) > 1)


def whitespace_combinations(max_length: int | None = None) -> Iterator[str]:
    """Padding candidates in the paper's order of preference: for n = 2, 3, ..., the runs of n
    spaces and of n newlines first, then every other combination of n whitespace characters;
    up to ``max_length`` characters (without a bound, the generator never ends)."""
    lengths = itertools.count(2) if max_length is None else range(2, max_length + 1)
    for n in lengths:
        runs = [" " * n, "\n" * n]
        yield from runs
        for combo in itertools.product(WHITESPACE, repeat=n):
            token = "".join(combo)
            if token not in runs:
                yield token
