"""Hierarchical symbolic forests and their digestion (DAHSF: Kevin You, "Digestion Algorithm in
Hierarchical Symbolic Forests: A Fast Text Normalization Algorithm and Semantic Parsing Framework
for Specific Scenarios and Lightweight Deployment", arXiv 2412.14054).

A forest is data: rule tables in TOML (docs/techniques/dahsf.md has the format). Layer 0 maps
surface phrases (synonyms, paraphrase variants) to canonical symbols; every higher layer maps
sequences of lower-layer symbols and *data words* (the spans no phrase matched: numbers,
names) to a higher symbol; the symbols of the last layer are the command templates.

*Digestion* scans the text and, layer by layer, greedily rewrites the longest match at each
position into its canonical symbol (one trie per layer), keeping what no rule matches as it
is. Its outputs are the parse (template + slot values) and a normalized text: every symbol
written in its canonical form (the first alternative of its rule), slot values unchanged.

The *multiplication rule*: a template whose items have m_1 .. m_k alternatives covers
Π m_i sentences while the tries store Σ m_i entries (``Forest.structure_size``).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from tokensmith import ConfigError, InputError, parse_toml, read_toml, require_text

#: scripts written without spaces between words (Han, kana, Hangul syllables): each character is
#: a token of its own, so phrases of several characters match inside a run (the paper's Chinese)
_UNSPACED = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"
#: how text is cut into tokens, for the input and for the forest's phrases alike: runs of word
#: characters, a character of an unspaced script, and every other non-space character on its own
TOKEN = re.compile(rf"[{_UNSPACED}]|(?:(?![{_UNSPACED}])\w)+|[^\w\s]")
SYMBOL_NAME = re.compile(r"[A-Z][A-Z0-9_]*")
LOWER_NAME = re.compile(r"[a-z][a-z0-9_]*")
#: strings shaped like the special tokens of the common tokenizer families (ChatML and GPT
#: ``<|...|>``, SentencePiece ``<s>``/``</s>``/``<unk>``/``<pad>``, BERT ``[CLS]``...): digestion
#: cannot tell a control token from text, so text holding one is refused
SPECIAL_TOKEN_SHAPE = re.compile(r"<\|[^\s|<>]*\|>|</?s>|<unk>|<pad>|\[(?:CLS|SEP|PAD|MASK|UNK)\]")
#: the data class every data word falls into when no declared pattern matches it
TEXT_CLASS = "text"
_FILLER = "\x00filler"


@attrs.frozen
class DataWord:
    """A span no layer-0 phrase matched (a number, a name): kept verbatim as slot material."""

    text: str
    cls: str
    span: tuple[int, int]

    @property
    def key(self) -> str:
        return "$" + self.cls


@attrs.frozen
class SymbolNode:
    """A canonical symbol with the nodes it was digested from (``alternative`` indexes its rule's
    alternatives; layer-0 nodes have no children)."""

    symbol: str
    layer: int
    alternative: int
    children: tuple[Any, ...]
    span: tuple[int, int]

    @property
    def key(self) -> str:
        return self.symbol


@attrs.frozen
class Parse:
    """The semantic parse: the template (a last-layer symbol) and its slot values, in the order
    of the template's canonical form. A data slot holds the text of its data word exactly as
    written; a category slot the canonical symbol chosen (``room = "KITCHEN"``)."""

    template: str
    slots: Mapping[str, str] = attrs.field(converter=dict)


@attrs.frozen
class Digestion:
    """What digestion made of ``text``: the top-level nodes, the normalized text, and the parse
    when the text digested to one template (else ``None``)."""

    text: str
    nodes: tuple[Any, ...]
    normalized: str
    parse: Parse | None


@attrs.frozen
class Item:
    """One element of a higher-layer alternative: a symbol or a data class (``key``), captured
    into ``slot`` when it is written ``slot=KEY``."""

    key: str
    slot: str | None = None

    @property
    def is_data(self) -> bool:
        return self.key.startswith("$")


@attrs.frozen
class Alternative:
    text: str  # as written in the forest
    items: tuple[Any, ...]  # layer 0: casefolded tokens; higher layers: Items


@attrs.frozen
class Rule:
    symbol: str
    layer: int
    alternatives: tuple[Alternative, ...]

    @property
    def canonical(self) -> Alternative:
        """The canonical form of a symbol is the first alternative of its rule."""
        return self.alternatives[0]


@attrs.frozen
class DataClass:
    name: str
    pattern: re.Pattern[str] | None  # None: the catch-all text class
    examples: tuple[str, ...]


class Trie:
    """Longest-match lookup of key sequences (one per layer). Nodes are shared by every sequence
    with the same prefix, so its size is bounded by the total length of the alternatives
    stored, whatever the number of sentences they combine into."""

    def __init__(self) -> None:
        self.children: list[dict[str, int]] = [{}]
        self.values: list[Any] = [None]

    def insert(self, keys: Sequence[str], value: Any) -> Any:
        """Store ``value`` at ``keys``; returns the value already there (``None`` if none)."""
        node = 0
        for key in keys:
            nxt = self.children[node].get(key)
            if nxt is None:
                nxt = len(self.children)
                self.children[node][key] = nxt
                self.children.append({})
                self.values.append(None)
            node = nxt
        previous = self.values[node]
        if previous is None:
            self.values[node] = value
        return previous

    def longest(self, keys: Sequence[str], start: int) -> tuple[int, Any] | None:
        """The longest stored sequence that ``keys[start:]`` begins with: (end, value)."""
        node, best = 0, None
        for pos in range(start, len(keys)):
            node = self.children[node].get(keys[pos], -1)
            if node < 0:
                break
            if self.values[node] is not None:
                best = (pos + 1, self.values[node])
        return best

    @property
    def nodes(self) -> int:
        return len(self.children)

    @property
    def edges(self) -> int:
        return sum(len(c) for c in self.children)


def tokens_of(text: str) -> list[re.Match[str]]:
    return list(TOKEN.finditer(text))


def _similar(name: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(known), n=1)
    return f" (did you mean {close[0]}?)" if close else ""


def find_special_tokens(text: str, special_tokens: Iterable[str] = ()) -> list[str]:
    """The special-token strings in ``text``: those given, and any shaped like one."""
    found = [s for s in special_tokens if s and s in text]
    found += [m.group() for m in SPECIAL_TOKEN_SHAPE.finditer(text) if m.group() not in found]
    return found


class Forest:
    """A compiled hierarchical symbolic forest: rules per layer, one trie per layer, data classes.

    Build one with :meth:`from_file` / :meth:`from_toml` / :meth:`from_dict`; every problem of
    the rule tables is reported at once as a :class:`~tokensmith.ConfigError`."""

    def __init__(
        self,
        name: str,
        layer_names: tuple[str, ...],
        rules: dict[str, Rule],
        fillers: tuple[Alternative, ...],
        data_classes: tuple[DataClass, ...],
        component: str,
        description: str = "",
    ) -> None:
        self.name = name
        self.description = description
        self.layer_names = layer_names
        self.rules = rules
        self.fillers = fillers
        self.data_classes = data_classes
        self.component = component
        self.templates = tuple(s for s, r in rules.items() if r.layer == len(layer_names) - 1)
        self.categories = frozenset(
            item.key
            for r in rules.values()
            if r.layer
            for a in r.alternatives
            for item in a.items
            if item.slot and not item.is_data
        )
        self.tries = [Trie() for _ in layer_names]
        self._slot_order: dict[str, tuple[str, ...]] = {}

    # -- loading -------------------------------------------------------------
    @classmethod
    def from_file(cls, path: str | Path, *, component: str | None = None) -> Forest:
        path = Path(path)
        where = component or f"dahsf forest {str(path)!r}"
        table = read_toml(path, "forest", example="docs/techniques/dahsf.md", component=where)
        return cls.from_dict(table, name=path.stem, component=where)

    @classmethod
    def from_toml(cls, text: str, *, name: str = "forest", component: str | None = None) -> Forest:
        where = component or f"dahsf forest {name!r}"
        table = parse_toml(text, "forest", example="docs/techniques/dahsf.md", component=where)
        return cls.from_dict(table, name=name, component=where)

    @classmethod
    def from_dict(
        cls, table: Mapping[str, Any], *, name: str = "forest", component: str | None = None
    ) -> Forest:
        where = component or f"dahsf forest {name!r}"
        problems: list[str] = []
        forest = _build(table, name, where, problems)
        if forest is not None and not problems:
            forest._compile(problems)
        if forest is not None and not problems:
            forest._check_canonical_forms(problems)
        if problems:
            listed = "\n  - ".join(problems)
            raise ConfigError(
                f"{len(problems)} problem{'s' * (len(problems) > 1)} in the forest:\n  - {listed}",
                component=where,
                hint="the forest format is in docs/techniques/dahsf.md",
            )
        assert forest is not None
        return forest

    def _compile(self, problems: list[str]) -> None:
        """Fill the tries; two alternatives with the same key sequence in one layer are ambiguous."""
        for alt in self.fillers:
            self.tries[0].insert(alt.items, (_FILLER, 0))
        for symbol, rule in self.rules.items():
            trie = self.tries[rule.layer]
            for index, alt in enumerate(rule.alternatives):
                keys = alt.items if rule.layer == 0 else tuple(i.key for i in alt.items)
                previous = trie.insert(keys, (symbol, index))
                if previous is not None:
                    other, other_index = previous
                    if other == _FILLER:
                        problems.append(f"{symbol}: {alt.text!r} is also an ignored phrase")
                    else:
                        other_text = self.rules[other].alternatives[other_index].text
                        problems.append(
                            f"{symbol}: {alt.text!r} is the same sequence as {other}'s "
                            f"{other_text!r} in layer {self.layer_names[rule.layer]!r}: "
                            "digestion could not choose between them"
                        )

    def _check_canonical_forms(self, problems: list[str]) -> None:
        """Every template's canonical form, with each value of each slot in turn (Σ forms, not
        Π), must digest back to that template and those values: what makes normalization
        idempotent on parsed commands."""
        for template in self.templates:
            for values in self._probe_values(template):
                text = self.render_parse(Parse(template, values))
                got = self.digest(text).parse
                if got != Parse(template, values):
                    problems.append(
                        f"{template}: its canonical form {text!r} digests to "
                        f"{_show(got)} instead of {_show(Parse(template, values))}"
                    )

    def _probe_values(self, template: str) -> Iterator[dict[str, str]]:
        choices = {slot: self.slot_values(template, slot) for slot in self.slot_names(template)}
        base = {slot: values[0] for slot, values in choices.items()}
        yield base
        for slot, values in choices.items():
            for value in values[1:]:
                yield {**base, slot: value}

    # -- the forest's vocabulary -------------------------------------------------
    def slot_names(self, symbol: str) -> tuple[str, ...]:
        """The slots a symbol's alternatives capture (nested ones included), in canonical order."""
        return self._slot_order.get(symbol, ())

    def slot_item(self, symbol: str, slot: str) -> Item:
        """The item that captures ``slot`` under ``symbol`` (its first alternative's)."""
        for item in self.rules[symbol].canonical.items:
            if item.slot == slot:
                return item
            if not item.slot and self.rules[item.key].layer and slot in self.slot_names(item.key):
                return self.slot_item(item.key, slot)
        raise InputError(
            f"{symbol} has no slot {slot!r}{_similar(slot, self.slot_names(symbol))}",
            component=self.component,
            hint=f"its slots: {', '.join(self.slot_names(symbol))}",
        )

    def slot_values(self, symbol: str, slot: str) -> tuple[str, ...]:
        """A category slot's values (its symbols), or a data slot's examples from the forest."""
        item = self.slot_item(symbol, slot)
        if item.is_data:
            return self.data_class(item.key[1:]).examples
        return tuple(a.items[0].key for a in self.rules[item.key].alternatives)

    def data_class(self, name: str) -> DataClass:
        for dc in self.data_classes:
            if dc.name == name:
                return dc
        raise InputError(f"unknown data class {name!r}", component=self.component)

    def classify(self, text: str) -> str:
        """The data class of a data word: the first declared pattern it matches in full."""
        for dc in self.data_classes:
            if dc.pattern is not None and dc.pattern.fullmatch(text):
                return dc.name
        return TEXT_CLASS

    def structure_size(self) -> dict[str, int]:
        """What the compiled forest stores: trie nodes and edges over all layers, and the
        alternatives (rule entries) they hold — the Σ m_i of the multiplication rule."""
        return {
            "trie_nodes": sum(t.nodes for t in self.tries),
            "trie_edges": sum(t.edges for t in self.tries),
            "alternatives": sum(len(r.alternatives) for r in self.rules.values()) + len(self.fillers),
            "symbols": len(self.rules),
            "layers": len(self.tries),
        }

    # -- digestion -----------------------------------------------------------
    def check_text(
        self, text: object, *, special_tokens: Iterable[str] = (), component: str | None = None
    ) -> str:
        """``text`` if digestion can read it: a ``str`` with a UTF-8 form and no special-token
        strings; an :class:`~tokensmith.InputError` naming ``component`` otherwise."""
        where = component or self.component
        text = require_text(text, where)
        found = find_special_tokens(text, special_tokens)
        if found:
            raise InputError(
                f"the text holds the special-token string {found[0]!r}",
                component=where,
                hint="digestion reads one command of plain text; digest the user's text before "
                "a chat template or other control tokens are added",
            )
        return text

    def digest(
        self, text: str, *, special_tokens: Iterable[str] = (), component: str | None = None
    ) -> Digestion:
        """Digest ``text`` layer by layer (longest match at each position) into canonical symbols.
        Empty text digests to nothing; text holding special-token strings is an InputError."""
        text = self.check_text(text, special_tokens=special_tokens, component=component)
        nodes = self._lexicon_layer(text)
        for layer in range(1, len(self.tries)):
            nodes = self._rewrite(nodes, layer)
        parse = None
        if len(nodes) == 1 and isinstance(nodes[0], SymbolNode) and nodes[0].symbol in self.templates:
            parse = self._parse_of(nodes[0])
        normalized = " ".join(self._render(node) for node in nodes)
        return Digestion(text, tuple(nodes), normalized, parse)

    def parse(self, text: str, *, special_tokens: Iterable[str] = (), component: str | None = None) -> Parse:
        """The template and slot values of ``text``. Empty text, text that does not digest to
        one template, or text with special-token strings is an InputError."""
        where = component or self.component
        text = self.check_text(text, special_tokens=special_tokens, component=where)
        if not tokens_of(text):
            raise InputError(
                "empty text: there is no command to parse",
                component=where,
                hint="pass one command, e.g. 'turn on the lights in the kitchen'",
            )
        digestion = self.digest(text, special_tokens=special_tokens, component=where)
        if digestion.parse is None:
            shown = " ".join(_describe(node) for node in digestion.nodes) or "nothing (only ignored phrases)"
            raise InputError(
                f"{text!r} does not digest to one command: it digests to {shown}",
                component=where,
                hint=f"the commands of forest {self.name!r}: {', '.join(self.templates)}",
            )
        return digestion.parse

    def normalize(self, text: str, **kwargs: Any) -> str:
        return self.digest(text, **kwargs).normalized

    def _lexicon_layer(self, text: str) -> list[Any]:
        """Layer 0: longest-match phrases to symbols; the tokens no phrase matched, with any
        ignored phrase between two of them, become data words (spans of the original text);
        ignored phrases elsewhere are dropped."""
        matches = tokens_of(text)
        keys = [m.group().casefold() for m in matches]
        trie = self.tries[0]
        pieces: list[tuple[str, Any, int, int]] = []  # (kind, symbol/index, first token, end token)
        pos = 0
        while pos < len(keys):
            found = trie.longest(keys, pos)
            if found is None:
                pieces.append(("data", None, pos, pos + 1))
                pos += 1
            else:
                end, (symbol, index) = found
                pieces.append(("filler" if symbol == _FILLER else "symbol", (symbol, index), pos, end))
                pos = end
        nodes: list[Any] = []
        run: list[tuple[str, Any, int, int]] = []

        def close_run() -> None:
            while run and run[-1][0] == "filler":
                run.pop()
            if run:
                start, end = matches[run[0][2]].start(), matches[run[-1][3] - 1].end()
                nodes.append(DataWord(text[start:end], self.classify(text[start:end]), (start, end)))
            run.clear()

        for piece in pieces:
            kind = piece[0]
            if kind == "symbol":
                close_run()
                (symbol, index), first, end = piece[1], piece[2], piece[3]
                nodes.append(
                    SymbolNode(symbol, 0, index, (), (matches[first].start(), matches[end - 1].end()))
                )
            elif kind == "data" or run:
                run.append(piece)
        close_run()
        return nodes

    def _rewrite(self, nodes: list[Any], layer: int) -> list[Any]:
        """One higher layer: the longest alternative at each position becomes its symbol."""
        keys = [node.key for node in nodes]
        trie, out, pos = self.tries[layer], [], 0
        while pos < len(nodes):
            found = trie.longest(keys, pos)
            if found is None:
                out.append(nodes[pos])
                pos += 1
                continue
            end, (symbol, index) = found
            children = tuple(nodes[pos:end])
            out.append(
                SymbolNode(symbol, layer, index, children, (children[0].span[0], children[-1].span[1]))
            )
            pos = end
        return out

    def _slot_nodes(self, node: SymbolNode) -> dict[str, Any]:
        """Slot name -> the node captured (a data word, or a category's symbol node), nested
        captures of uncaptured children included."""
        out: dict[str, Any] = {}
        alt = self.rules[node.symbol].alternatives[node.alternative]
        for item, child in zip(alt.items, node.children, strict=True):
            if item.slot:
                out[item.slot] = child
            elif child.layer:
                out.update(self._slot_nodes(child))
        return out

    def _parse_of(self, node: SymbolNode) -> Parse:
        captured = self._slot_nodes(node)
        return Parse(node.symbol, {slot: _value(captured[slot]) for slot in self.slot_names(node.symbol)})

    # -- canonical forms -------------------------------------------------------
    def _render(self, node: Any) -> str:
        if isinstance(node, DataWord):
            return node.text
        if node.symbol in self.categories:  # a category's value is which symbol it holds
            return self._render(node.children[0])
        return self._canonical(node.symbol, self._slot_nodes(node) if node.layer else {})

    def _canonical(self, symbol: str, captured: Mapping[str, Any]) -> str:
        rule = self.rules[symbol]
        if rule.layer == 0:
            return " ".join(rule.canonical.text.split())
        parts = [
            self._render(captured[item.slot]) if item.slot else self._canonical(item.key, captured)
            for item in rule.canonical.items
        ]
        return " ".join(p for p in parts if p)

    def render_parse(self, parse: Parse) -> str:
        """The canonical sentence of a parse: every symbol in its canonical form, the slot
        values in place (what :meth:`normalize` returns for every paraphrase of it)."""
        if parse.template not in self.templates:
            raise InputError(
                f"{parse.template!r} is not a command of forest {self.name!r}"
                f"{_similar(parse.template, self.templates)}",
                component=self.component,
            )
        names = self.slot_names(parse.template)
        if set(parse.slots) != set(names):
            raise InputError(
                f"{parse.template} takes the slots {', '.join(names) or '(none)'}, got "
                f"{', '.join(parse.slots) or '(none)'}",
                component=self.component,
            )
        captured = {
            slot: self._value_node(parse.template, slot, value) for slot, value in parse.slots.items()
        }
        return self._canonical(parse.template, captured)

    def _value_node(self, template: str, slot: str, value: str) -> Any:
        item = self.slot_item(template, slot)
        if item.is_data:
            return DataWord(value, item.key[1:], (0, 0))
        values = self.slot_values(template, slot)
        if value not in values:
            raise InputError(
                f"{value!r} is not a value of slot {slot!r} ({item.key}: {', '.join(values)})",
                component=self.component,
            )
        return SymbolNode(
            item.key,
            self.rules[item.key].layer,
            values.index(value),
            (SymbolNode(value, self.rules[value].layer, 0, (), (0, 0)),),
            (0, 0),
        )


def _value(node: Any) -> str:
    return node.text if isinstance(node, DataWord) else node.children[0].symbol


def _describe(node: Any) -> str:
    return f"data {node.text!r}" if isinstance(node, DataWord) else node.symbol


def _show(parse: Parse | None) -> str:
    if parse is None:
        return "no command"
    return f"{parse.template}({', '.join(f'{k}={v!r}' for k, v in parse.slots.items())})"


# -- reading the rule tables ---------------------------------------------------------------------
_TOP_KEYS = ("name", "description", "ignore", "data", "layers")
_LAYER_KEYS = ("name", "rules")
_DATA_KEYS = ("pattern", "examples")


def _unknown_keys(table: Mapping[str, Any], allowed: Sequence[str], where: str, problems: list[str]) -> None:
    for key in table:
        if key not in allowed:
            problems.append(f"{where}: unknown key {key!r}{_similar(key, allowed)}")


def _phrase(text: Any, where: str, problems: list[str]) -> Alternative | None:
    if not isinstance(text, str):
        problems.append(f"{where}: an alternative must be a string, got {type(text).__name__} {text!r}")
        return None
    tokens = tuple(m.group().casefold() for m in tokens_of(text))
    if not tokens:
        problems.append(f"{where}: empty alternative {text!r} (it has no word or sign to match)")
        return None
    if find_special_tokens(text):
        problems.append(f"{where}: {text!r} holds a special-token string")
        return None
    return Alternative(text, tokens)


def _string_list(value: Any, where: str, problems: list[str]) -> list[Any]:
    if not isinstance(value, list) or not value:
        problems.append(f"{where}: expected a non-empty list of strings, got {value!r}")
        return []
    return value


def _build(table: Mapping[str, Any], name: str, where: str, problems: list[str]) -> Forest | None:
    if not isinstance(table, Mapping):
        problems.append("the forest must be a TOML table")
        return None
    _unknown_keys(table, _TOP_KEYS, "forest", problems)
    name = table.get("name", name)
    if not isinstance(name, str) or not name:
        problems.append(f"forest: name must be a non-empty string, got {name!r}")
        name = "forest"
    description = table.get("description", "")
    if not isinstance(description, str):
        problems.append("forest: description must be a string")
        description = ""

    data_classes: list[DataClass] = []
    data = table.get("data", {})
    if not isinstance(data, Mapping):
        problems.append("forest: [data] must be a table of data classes")
        data = {}
    for cls_name, spec in data.items():
        at = f"data class {cls_name!r}"
        if not LOWER_NAME.fullmatch(cls_name):
            problems.append(f"{at}: a data class name is lower case letters, digits and _")
        if not isinstance(spec, Mapping):
            problems.append(f"{at}: expected a table with pattern and examples")
            continue
        _unknown_keys(spec, _DATA_KEYS, at, problems)
        pattern = None
        if cls_name != TEXT_CLASS:
            raw = spec.get("pattern")
            if not isinstance(raw, str) or not raw:
                problems.append(f"{at}: needs a pattern (a regular expression a data word matches in full)")
            else:
                try:
                    pattern = re.compile(raw)
                except re.error as exc:
                    problems.append(f"{at}: invalid pattern {raw!r}: {exc}")
        elif "pattern" in spec:
            problems.append(
                f"{at}: the text class takes every data word no pattern matches; it has no pattern"
            )
        examples = spec.get("examples", [])
        if not isinstance(examples, list) or not all(isinstance(e, str) and e.strip() for e in examples):
            problems.append(f"{at}: examples must be a list of non-empty strings")
            examples = []
        data_classes.append(DataClass(cls_name, pattern, tuple(examples)))
    if not any(dc.name == TEXT_CLASS for dc in data_classes):
        data_classes.append(DataClass(TEXT_CLASS, None, ()))
    else:  # the catch-all is tried last
        data_classes.sort(key=lambda dc: dc.name == TEXT_CLASS)
    class_names = {dc.name for dc in data_classes}

    fillers: list[Alternative] = []
    for i, text in enumerate(
        _string_list(table["ignore"], "forest: ignore", problems) if "ignore" in table else []
    ):
        alt = _phrase(text, f"ignore[{i}]", problems)
        if alt is not None:
            fillers.append(alt)

    layers = table.get("layers")
    if not isinstance(layers, list) or not layers or not all(isinstance(t, Mapping) for t in layers):
        problems.append(
            "forest: needs [[layers]]: a list of layer tables, the lexicon (surface phrases) first "
            "and the commands last"
        )
        return None
    layer_names: list[str] = []
    rules: dict[str, Rule] = {}
    raw_rules: list[tuple[int, str, list[Any]]] = []
    for index, layer in enumerate(layers):
        lname = layer.get("name", f"layer {index}")
        if not isinstance(lname, str):
            lname = f"layer {index}"
        layer_names.append(lname)
        at = f"layer {lname!r}"
        _unknown_keys(layer, _LAYER_KEYS, at, problems)
        table_rules = layer.get("rules")
        if not isinstance(table_rules, Mapping) or not table_rules:
            problems.append(f"{at}: needs a non-empty [layers.rules] table (SYMBOL = [alternatives])")
            continue
        for symbol, alternatives in table_rules.items():
            if not SYMBOL_NAME.fullmatch(symbol):
                problems.append(f"{at}: symbol {symbol!r} must be upper case letters, digits and _")
            if any(symbol == seen for _, seen, _ in raw_rules):
                problems.append(f"{symbol}: defined in two layers (or twice)")
                continue
            raw_rules.append((index, symbol, _string_list(alternatives, f"{symbol}", problems)))
    layer_of = {symbol: index for index, symbol, _ in raw_rules}
    for index, symbol, alternatives in raw_rules:
        alts: list[Alternative] = []
        for n, text in enumerate(alternatives):
            at = f"{symbol}[{n}]"
            if index == 0:
                alt = _phrase(text, at, problems)
            else:
                alt = _sequence(text, at, index, layer_of, layer_names, class_names, problems)
            if alt is not None:
                alts.append(alt)
        if alts and len(alts) == len(alternatives):
            rules[symbol] = Rule(symbol, index, tuple(alts))
    if len(layer_names) < 2:
        problems.append("forest: needs at least two layers: the lexicon (surface phrases) and the commands")
    if problems:
        return None
    forest = Forest(name, tuple(layer_names), rules, tuple(fillers), tuple(data_classes), where, description)
    _check_slots(forest, problems)
    return forest


def _sequence(
    text: Any,
    at: str,
    layer: int,
    layer_of: Mapping[str, int],
    layer_names: Sequence[str],
    class_names: set[str],
    problems: list[str],
) -> Alternative | None:
    if not isinstance(text, str):
        problems.append(f"{at}: an alternative must be a string, got {type(text).__name__} {text!r}")
        return None
    words = text.split()
    if not words:
        problems.append(f"{at}: empty alternative {text!r}")
        return None
    items, ok = [], True
    for word in words:
        slot, _, key = word.rpartition("=")
        slot = slot or None
        if slot is not None and not LOWER_NAME.fullmatch(slot):
            problems.append(f"{at}: slot name {slot!r} in {word!r} must be lower case letters, digits and _")
            ok = False
        if key.startswith("$"):
            if key[1:] not in class_names:
                problems.append(f"{at}: unknown data class {key!r}{_similar(key[1:], class_names)}")
                ok = False
            elif slot is None:
                problems.append(f"{at}: the data word {key} must be captured into a slot (name={key})")
                ok = False
        elif key not in layer_of:
            problems.append(f"{at}: unknown symbol {key!r}{_similar(key, layer_of)}")
            ok = False
        elif layer_of[key] >= layer:
            problems.append(
                f"{at}: {key} is in layer {layer_names[layer_of[key]]!r}; a rule may only use "
                f"symbols of lower layers (a reference to its own or a higher layer would "
                "make a cycle between layers)"
            )
            ok = False
        items.append(Item(key, slot))
    return Alternative(text, tuple(items)) if ok else None


def _check_slots(forest: Forest, problems: list[str]) -> None:
    """Slots: the same set under every alternative of a symbol (so every paraphrase fills the
    same template), no name twice, categories captured and made of single symbols."""
    rules = forest.rules
    for category in sorted(forest.categories):
        rule = rules[category]
        if rule.layer == 0:
            problems.append(
                f"{category}: a layer-0 symbol cannot be captured into a slot (it has one meaning); "
                "capture a category whose alternatives are symbols"
            )
            continue
        for alt in rule.alternatives:
            if len(alt.items) != 1 or alt.items[0].slot or alt.items[0].is_data:
                problems.append(
                    f"{category}: it is captured into a slot, so each alternative must be one "
                    f"symbol (a value of the slot), not {alt.text!r}"
                )
    for symbol, rule in rules.items():
        for alt in rule.alternatives if rule.layer else ():
            for item in alt.items:
                if not item.slot and item.key in forest.categories:
                    problems.append(
                        f"{symbol}: {alt.text!r} uses the category {item.key} without a slot, "
                        "which would lose its value; write name=" + item.key
                    )
    if problems:
        return
    memo: dict[str, tuple[str, ...]] = {}

    def slots(symbol: str, alt: Alternative) -> tuple[str, ...]:
        out: list[str] = []
        for item in alt.items:
            if item.slot:
                out.append(item.slot)
            elif rules[item.key].layer:
                out += of(item.key)
        return tuple(out)

    def of(symbol: str) -> tuple[str, ...]:
        if symbol not in memo:
            memo[symbol] = slots(symbol, rules[symbol].canonical)
        return memo[symbol]

    for symbol, rule in rules.items():
        if not rule.layer:
            continue
        first = of(symbol)
        for alt in rule.alternatives:
            names = slots(symbol, alt)
            twice = sorted({n for n in names if names.count(n) > 1})
            if twice:
                problems.append(f"{symbol}: {alt.text!r} fills the slot {twice[0]!r} twice")
            elif set(names) != set(first):
                problems.append(
                    f"{symbol}: {alt.text!r} fills the slots {{{', '.join(names)}}} but "
                    f"{rule.canonical.text!r} fills {{{', '.join(first)}}}; every alternative of a "
                    "symbol must fill the same slots"
                )
    forest._slot_order = {symbol: of(symbol) for symbol, rule in rules.items() if rule.layer}
    for category in sorted(forest.categories):
        for alt in rules[category].alternatives:
            if forest.slot_names(alt.items[0].key):
                problems.append(
                    f"{category}: its value {alt.items[0].key} fills slots of its own "
                    f"({', '.join(forest.slot_names(alt.items[0].key))}); a category's values are "
                    "plain symbols"
                )
    for template in forest.templates:
        for slot in of(template):
            item = forest.slot_item(template, slot)
            if item.is_data and not forest.data_class(item.key[1:]).examples:
                problems.append(
                    f"{template}: slot {slot!r} is a {item.key} data word; give [data.{item.key[1:]}] "
                    "examples (they check the canonical forms and generate paraphrases)"
                )
    for dc in forest.data_classes:
        for example in dc.examples:
            if forest.classify(example) != dc.name:
                problems.append(
                    f"data class {dc.name!r}: example {example!r} is classified as "
                    f"{forest.classify(example)!r} (patterns are tried in order, text last)"
                )
