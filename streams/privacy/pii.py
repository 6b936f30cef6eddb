"""Mask personal data in contact texts before they leave the enrichment stage.

DOMAIN.md (Privacy): department topics, ClickHouse and logs must never hold phone
numbers, national ID numbers, bank card numbers or e-mail addresses in clear.
:func:`mask_pii` runs on every event, so it is one pass of precompiled regexes
plus cheap checksum arithmetic; no segmentation, no allocation per character.

Mask tokens (fixed, so downstream keyword extraction and dashboards can count
them and so they never depend on the masked value):

=============  ============  ===============================================
kind (count)   token         what is masked
=============  ============  ===============================================
``phone``      ``[PHONE]``   mainland mobile ``1[3-9]`` + 9 digits, optional
                             ``+86`` / ``86`` / ``0086`` prefix
``id_number``  ``[ID]``      18-char resident ID, GB 11643 checksum valid
``bank_card``  ``[CARD]``    16-19 digits, Luhn valid, plausible card prefix
``email``      ``[EMAIL]``   ``local@domain.tld`` (ASCII)
``address``    ``[ADDRESS]`` door-level part of an address (road + house
                             number, building/unit/room); city and district
                             stay (`pii_context`)
``name``       ``[NAME]``    a personal name the text introduces or addresses
                             with an honorific (`pii_context`)
=============  ============  ===============================================

How false positives are kept out (order numbers, amounts, dates, landlines):

* A number is a *run*: digits joined by at most one separator (space, ``-``,
  ``.``) between digits. A run never starts or ends next to an ASCII letter or
  digit, so ``DD2023112313812345678`` or ``SN13812345678`` stay as they are,
  while Chinese text around a number (``电话13812345678谢谢``) does not block it
  and is never swallowed by a mask.
* A run is split at its separators into groups; a window of consecutive groups
  is masked only if its group lengths have the shape people write that kind in
  (``138 1234 5678``, ``6222 0212 3456 7890 123``, ``110105 19491231 002X``) and
  its checksum holds. IDs also need a plausible birth date; cards need a
  plausible issuer prefix (3, 4, 5, 6, 8, 9 or Mastercard 2221-2720), which keeps
  timestamp-prefixed order numbers (``2025...``) out even when Luhn passes by
  chance (1 in 10).
* Full-width digits, letters and separators (``１３８－１２３４－５６７８``, ``＠``,
  ideographic space) are mapped one-to-one to ASCII before matching, so spans
  found in the normalized text index the original text unchanged.
"""

from __future__ import annotations

import re
from typing import Final

from vocflow.streams.privacy.pii_context import find_addresses, find_names

__all__ = [
    "MASK_TOKENS",
    "PII_KINDS",
    "is_valid_id_number",
    "luhn_valid",
    "mask_pii",
]

PII_KINDS: Final = ("phone", "id_number", "bank_card", "email", "address", "name")
MASK_TOKENS: Final[dict[str, str]] = {
    "phone": "[PHONE]",
    "id_number": "[ID]",
    "bank_card": "[CARD]",
    "email": "[EMAIL]",
    "address": "[ADDRESS]",
    "name": "[NAME]",
}


def _build_fullwidth_table() -> dict[int, int]:
    """One-to-one map of full-width ASCII forms and odd separators to ASCII.

    Kept one-to-one on purpose: the normalized string has the same length as the
    input, so match offsets can be applied to the original text.
    """
    table = {cp: cp - 0xFEE0 for cp in range(0xFF01, 0xFF5F)}  # ！..～ -> !..~
    table[0x3000] = ord(" ")  # ideographic space
    table[0x00A0] = ord(" ")  # no-break space
    for dash in (0x2010, 0x2011, 0x2012, 0x2013, 0x2014, 0x2212, 0xFE63):
        table[dash] = ord("-")
    table[0x30FB] = ord(".")  # katakana middle dot, sometimes typed as a separator
    return table


_FULLWIDTH: Final = _build_fullwidth_table()
_HAS_WIDE: Final = re.compile("[\uff01-\uff5e\u3000\u00a0\u2010-\u2014\u2212\ufe63\u30fb]")

# ASCII-only classes: `\d` would also match Arabic-Indic and other digits.
_EMAIL_RE: Final = re.compile(
    r"(?<![A-Za-z0-9._%+\-])"
    r"[A-Za-z0-9](?:[A-Za-z0-9._%+\-]{0,62}[A-Za-z0-9_%+\-])?"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}"
    r"(?![A-Za-z0-9\-])"
)
# The same address as speech-to-text writes it: the dots dropped or spoken ("sina com",
# "163点com", "qq dot com"), spaces around the "@" (or 艾特). Without the dots only a
# known top-level domain at the end makes it an address, so ordinary words after an
# "@" (a WeChat mention) are left alone.
_SPOKEN_EMAIL_RE: Final = re.compile(
    r"(?<![A-Za-z0-9._%+\-])"
    r"[A-Za-z0-9][A-Za-z0-9._%+\-]{0,63} ?(?:@|艾特) ?"
    r"(?:[A-Za-z0-9][A-Za-z0-9\-]{0,62} ?(?:\.|点|dot|DOT| ) ?)+"
    r"(?:com|cn|net|org|edu|gov|io|hk|tw|info|biz|me)"
    r"(?![A-Za-z0-9\-])"
)
# A run of digits with single separators; optional +/00 before, optional X at the end.
_RUN_RE: Final = re.compile(r"(?<![0-9A-Za-z_+])\+?[0-9](?:[ .\-]?[0-9])*[Xx]?(?![0-9A-Za-z_])")
_GROUP_RE: Final = re.compile(r"[0-9]+[Xx]?")

_PHONE_RE: Final = re.compile(r"1[3-9][0-9]{9}")
_PHONE_SHAPES: Final = frozenset({(11,), (3, 4, 4), (3, 8), (7, 4)})
_ID_SHAPES: Final = frozenset({(18,), (6, 8, 4), (6, 4, 4, 4), (6, 12)})
_ID_WEIGHTS: Final = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK: Final = "10X98765432"
_CARD_FIRST: Final = frozenset("345689")


def luhn_valid(digits: str) -> bool:
    """Luhn (mod 10) check of a digit string, as used by bank card numbers."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def is_valid_id_number(value: str) -> bool:
    """GB 11643-1999 check of an 18-char resident ID (ISO 7064 MOD 11-2).

    Also requires a plausible birth date (19xx/20xx or 18xx, month 01-12, day
    01-31) and a non-zero region code, which removes most 18-digit order numbers
    whose last digit happens to fit.
    """
    if len(value) != 18 or not value[:17].isascii() or not value[:17].isdigit():
        return False
    if value[0] == "0":
        return False
    year, month, day = value[6:8], int(value[10:12]), int(value[12:14])
    if year not in ("18", "19", "20") or not 1 <= month <= 12 or not 1 <= day <= 31:
        return False
    total = sum((ord(c) - 48) * w for c, w in zip(value[:17], _ID_WEIGHTS, strict=True))
    return _ID_CHECK[total % 11] == value[17].upper()


def _card_prefix_ok(digits: str) -> bool:
    if digits[0] in _CARD_FIRST:
        return True
    return digits[0] == "2" and 2221 <= int(digits[:4]) <= 2720


def _classify(groups: list[str], plus: bool) -> str | None:
    """Return the PII kind of a window of digit groups, or None.

    `groups` are the digit groups of the window in order; `plus` says a ``+``
    stood right before the first group (only meaningful for +86 phones).
    """
    shape = tuple(len(g) for g in groups)
    digits = "".join(groups)
    n = len(digits)
    has_x = digits[-1] in "Xx"

    if has_x:
        return "id_number" if shape in _ID_SHAPES and is_valid_id_number(digits) else None

    # Mobile number, possibly behind a country code written as its own group or glued on.
    if n == 11 and shape in _PHONE_SHAPES and _PHONE_RE.fullmatch(digits):
        return None if plus else "phone"
    for cc in ("86", "0086"):
        if digits.startswith(cc) and n == 11 + len(cc) and _PHONE_RE.fullmatch(digits[len(cc) :]):
            rest = shape[1:] if shape[0] == len(cc) else (shape[0] - len(cc), *shape[1:])
            if rest in _PHONE_SHAPES:
                return "phone"
    if plus:
        return None

    if n == 18 and shape in _ID_SHAPES and is_valid_id_number(digits):
        return "id_number"

    if 16 <= n <= 19:
        grouped_by_four = len(groups) > 1 and all(len(g) == 4 for g in groups[:-1])
        if (len(groups) == 1 or grouped_by_four or shape in ((6, 13), (6, 12), (6, 10))) and (
            _card_prefix_ok(digits) and luhn_valid(digits)
        ):
            return "bank_card"
    return None


def _find_in_run(run: str, start: int, spans: list[tuple[int, int, str]]) -> None:
    """Find PII windows inside one number run; append (start, end, kind) to spans.

    Greedy from the left, longest window first, so ``138 1234 5678`` is one phone
    rather than nothing, and two numbers separated by a space are still found.
    """
    plus = run.startswith("+")
    groups = [(m.start(), m.end(), m.group()) for m in _GROUP_RE.finditer(run)]
    i, n = 0, len(groups)
    while i < n:
        for j in range(n, i, -1):
            if j - i == 2 and run[groups[i][1] : groups[i + 1][0]] == ".":
                continue  # a decimal amount such as 1381234.5678, never PII
            kind = _classify([g[2] for g in groups[i:j]], plus and i == 0)
            if kind is not None:
                s = 0 if (plus and i == 0) else groups[i][0]
                spans.append((start + s, start + groups[j - 1][1], kind))
                i = j
                break
        else:
            i += 1


def mask_pii(text: str) -> tuple[str, dict[str, int]]:
    """Mask phone, ID, bank card, e-mail, address and name in `text`.

    Returns the masked text and a count per kind; the dict always has every key
    of :data:`PII_KINDS` (zeros included) so every event has the same shape.
    Where an address or name overlaps a number, the span that starts first wins.
    Text around a masked value, including separators outside it, is unchanged.
    """
    counts = dict.fromkeys(PII_KINDS, 0)
    if not text:
        return text, counts
    norm = text.translate(_FULLWIDTH) if _HAS_WIDE.search(text) else text

    spans: list[tuple[int, int, str]] = []
    if "@" in norm or "艾特" in norm:
        spans.extend((m.start(), m.end(), "email") for m in _EMAIL_RE.finditer(norm))
        spans.extend((m.start(), m.end(), "email") for m in _SPOKEN_EMAIL_RE.finditer(norm))
    email_spans = list(spans)
    for m in _RUN_RE.finditer(norm):
        run = m.group()
        if len(run) < 11:  # shortest PII number is an 11-digit phone
            continue
        if email_spans and any(s < m.end() and m.start() < e for s, e, _ in email_spans):
            continue
        _find_in_run(run, m.start(), spans)
    spans.extend((s, e, "address") for s, e in find_addresses(norm))
    spans.extend((s, e, "name") for s, e in find_names(norm))
    if not spans:
        return text, counts

    spans.sort(key=lambda span: (span[0], -span[1]))
    out: list[str] = []
    pos = 0
    for s, e, kind in spans:
        if s < pos:  # overlaps the span before (a number in an address): one mask
            pos = max(pos, e)
            continue
        out.append(text[pos:s])
        out.append(MASK_TOKENS[kind])
        counts[kind] += 1
        pos = e
    out.append(text[pos:])
    return "".join(out), counts
