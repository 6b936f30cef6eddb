"""`vocflow simulate` options that shape the run, checked before any Kafka work."""

from __future__ import annotations

import pytest

from vocflow.streams.cli import main

pytestmark = pytest.mark.clock


def test_a_bad_date_is_a_usage_error_naming_the_option(capsys: pytest.CaptureFixture) -> None:
    codes: list[int] = []
    main(["simulate", "--date", "2026-13-01"], exit=codes.append)
    assert codes == [2]
    assert capsys.readouterr().err.strip() == (
        "vocflow: error: --date 2026-13-01: month must be in 1..12 (expected YYYY-MM-DD)"
    )
