"""Keyed pseudonyms for identifiers that are personal data (phone numbers, ID
numbers, bank cards, e-mail addresses).

Why keyed: a plain hash of a mainland mobile number is reversed by hashing all
~10^10 candidates in minutes, so an unkeyed pseudonym is the number in clear
for anyone who reads a department topic or ClickHouse. HMAC-SHA256 with a
secret key keeps pseudonyms stable (joins, repeat detection and dedup still
work) without being reversible by enumeration.

One key for every process of a deployment (`vocflow ingest` makes the channel
adapters' customer ids, the worker pseudonymizes ids it receives in clear): set
`VOCFLOW_PSEUDONYM_KEY`, or let the first process create
`<data_dir>/pseudonym.key` (enough when all processes share the data dir).
Phone numbers get the prefix ``tel-`` whatever channel saw them (a call and an
SMS from the same number are the same customer), e-mail addresses ``mail-``,
other personal ids ``p-``.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
import secrets
from pathlib import Path
from typing import TYPE_CHECKING

from vocflow.streams.privacy.pii import mask_pii

if TYPE_CHECKING:
    from vocflow.streams.core.settings import Settings

log = logging.getLogger(__name__)

# Until `configure` runs (unit tests, library use). Never used by a vocflow
# command that handles records: they all configure from the settings when they
# load them (`command_settings` in streams/cli/common.py).
DEVELOPMENT_KEY = b"vocflow-development-key-not-secret"
KEY_FILE = "pseudonym.key"
DIGEST_HEX = 20
_key = DEVELOPMENT_KEY

# Cheap pre-check: every kind of personal id has 7+ digits in a row or an "@".
_MAYBE_PII = re.compile(r"\d{7}|[\d\s()+-]{11}|@")
_PHONE_CHARS = re.compile(r"[\s()-]")

# safe_id's answers by id: a contact's, customer's and agent's ids recur on every
# event of theirs, and masking an id that only looks numeric (``bench-00000001``)
# was two thirds of the normalize stage's CPU. Bounded; emptied when the key changes
# or when full. An id seen once (an event id) is not remembered (`remember=False`):
# it filled the memory with answers never asked again (~10 MB at 65,536 entries).
_SAFE_IDS: dict[str, str] = {}
_SAFE_IDS_MAX = 16_384
_safe_ids_key = _key


def configure(settings: Settings) -> None:
    """Use the deployment's key (env/config, else the data dir's key file)."""
    global _key
    if settings.pseudonym_key is not None:
        _key = settings.pseudonym_key.get_secret_value().encode("utf-8")
        return
    path = settings.data_dir / KEY_FILE
    _key = _read_or_create(path)


def _read_or_create(path: Path) -> bytes:
    try:
        return bytes.fromhex(path.read_text(encoding="ascii").strip())
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process created it first
        return bytes.fromhex(path.read_text(encoding="ascii").strip())
    key = secrets.token_bytes(32)
    with os.fdopen(fd, "w", encoding="ascii") as out:
        out.write(key.hex() + "\n")
    log.warning(
        "created pseudonym key %s: every vocflow process of this deployment must use the same "
        "key (set VOCFLOW_PSEUDONYM_KEY on multi-host setups)",
        path,
    )
    return key


def pseudonym(prefix: str, value: str) -> str:
    """``<prefix>-`` + HMAC-SHA256(key, value), first 20 hex digits (80 bits)."""
    digest = hmac.new(_key, value.encode("utf-8"), hashlib.sha256).hexdigest()
    return f"{prefix}-{digest[:DIGEST_HEX]}"


def msisdn(compact: str) -> str:
    """A phone number's canonical form: digits, mainland mobiles without their
    0086/86/+86 country prefix (so ``+86 138-0013-8000`` and ``13800138000`` get
    the same pseudonym), others with their leading ``+`` if written."""
    plus = compact.startswith("+")
    digits = compact.removeprefix("+")
    for prefix in ("0086", "86"):
        rest = digits[len(prefix) :]
        if digits.startswith(prefix) and len(rest) == 11 and rest.startswith("1"):
            return rest
    return ("+" if plus else "") + digits


def safe_id(value: str, remember: bool = True) -> str:
    """The id itself when it holds no personal data, else its pseudonym: a
    whole phone number -> ``tel-``, a whole e-mail address -> ``mail-``
    (lower-cased), anything else containing personal data -> ``p-``.
    `remember`: keep the answer for the next time (not for ids used once)."""
    if not _MAYBE_PII.search(value):
        return value
    if not remember:
        return _safe_id(value)
    global _safe_ids_key
    if _safe_ids_key is not _key:
        _SAFE_IDS.clear()
        _safe_ids_key = _key
    known = _SAFE_IDS.get(value)
    if known is None:
        if len(_SAFE_IDS) >= _SAFE_IDS_MAX:
            _SAFE_IDS.clear()
        known = _SAFE_IDS[value] = _safe_id(value)
    return known


def _safe_id(value: str) -> str:
    _, counts = mask_pii(value)
    if not any(counts.values()):
        return value
    compact = _PHONE_CHARS.sub("", value)
    if counts["phone"] and compact.removeprefix("+").isdigit() and compact.isascii():
        return pseudonym("tel", msisdn(compact))
    if counts["email"] and " " not in value.strip() and value.count("@") == 1:
        return pseudonym("mail", value.strip().lower())
    return pseudonym("p", value)
