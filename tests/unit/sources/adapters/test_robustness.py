"""Broken input of any shape is an AdapterError, never a crash.

Every fixture is mutated deterministically (truncated, bytes flipped, bytes
inserted, lines dropped) and fed to its adapter: the result must be either a
list of schema-valid events or an AdapterError. Any other exception is a bug
the webhook would turn into a 500.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest

from tests.unit.sources.adapters.conftest import FIXTURES, validated
from vocflow.streams.sources.adapters import ADAPTERS, AdapterError

MUTANTS_PER_FIXTURE = 60
_NASTY = [
    b"\x00",
    b"\xff",
    b"\xc3",
    b"<",
    b"&",
    b"{",
    b"]",
    b'"',
    b"=",
    b"\n",
    b"\r\n--",
    b"%",
    b"?=",
    b"=?",
    b"\x1b",
    b"9" * 30,
    b"-0000",
    b"<!DOCTYPE",
    "\u3000".encode(),
]


def _mutants(data: bytes, rng: random.Random) -> Iterator[bytes]:
    for _ in range(MUTANTS_PER_FIXTURE):
        kind = rng.randrange(4)
        pos = rng.randrange(len(data) + 1)
        if kind == 0:
            yield data[:pos]
        elif kind == 1 and data:
            i = min(pos, len(data) - 1)
            yield data[:i] + bytes([rng.randrange(256)]) + data[i + 1 :]
        elif kind == 2:
            yield data[:pos] + rng.choice(_NASTY) + data[pos:]
        else:
            lines = data.split(b"\n")
            if len(lines) > 1:
                del lines[rng.randrange(len(lines))]
            yield b"\n".join(lines)


def _cases() -> list[tuple[str, str]]:
    return sorted(
        (path.parent.name, str(path.relative_to(FIXTURES)))
        for path in FIXTURES.glob("*/*")
        if path.is_file()
    )


@pytest.mark.parametrize(("fmt", "fixture"), _cases())
def test_mutated_fixtures_never_crash(fmt: str, fixture: str) -> None:
    adapter = ADAPTERS[fmt]
    data = (FIXTURES / fixture).read_bytes()
    rng = random.Random(fixture)
    for mutant in _mutants(data, rng):
        try:
            validated(adapter(mutant))
        except AdapterError as err:
            assert err.message
        # anything else propagates and fails the test with the mutant's traceback


@pytest.mark.parametrize("fmt", sorted(ADAPTERS))
@pytest.mark.parametrize(
    "data",
    [
        b"null",
        b"42",
        b"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]",
        b"[" * 2000,
        b'{"a": ' * 600 + b"1" + b"}" * 600,
        b"<xml/>",
        b"From: x\n\n",
        b"\xef\xbb\xbf{}",
        "中文".encode("utf-16"),
        bytes(range(256)),
    ],
)
def test_arbitrary_garbage_is_an_adapter_error_or_nothing(fmt: str, data: bytes) -> None:
    try:
        validated(ADAPTERS[fmt](data))
    except AdapterError as err:
        assert err.reason
