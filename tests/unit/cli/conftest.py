"""Every test here may run `main([...])`: it gets settings of its own (no VOCFLOW_*
variable of the caller, a data dir in tmp_path) and leaves the process-wide
pseudonym key as it found it, so no test writes a key file into the checkout."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from vocflow.streams.privacy import pseudonyms


@pytest.fixture()
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture(autouse=True)
def isolated_settings(data_dir: Path) -> Iterator[None]:
    # A context of its own: a test may call monkeypatch.undo() on its own fixture.
    with pytest.MonkeyPatch.context() as mp:
        for name in [n for n in os.environ if n.startswith("VOCFLOW_")]:
            mp.delenv(name)
        mp.setenv("VOCFLOW_DATA_DIR", str(data_dir))
        mp.setattr(pseudonyms, "_key", pseudonyms._key)
        yield
