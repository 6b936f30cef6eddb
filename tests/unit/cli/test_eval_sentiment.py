"""`vocflow eval` scores sentiment as the real enrichment's 3-class label."""

from __future__ import annotations

from pathlib import Path

import pytest

from vocflow.streams.cli import main

LABELLED = Path(__file__).resolve().parents[3] / "tests" / "data" / "voc_labelled.jsonl"


def test_eval_reports_the_enriched_label_as_three_classes(
    capsys: pytest.CaptureFixture[str],
) -> None:
    codes: list[int] = []
    main(["eval", str(LABELLED)], exit=codes.append)
    assert codes == [0]
    lines = capsys.readouterr().out.splitlines()
    assert "(sentiment: the enriched contact's 3-class label)" in lines
    i = lines.index(
        "sentiment all (462): accuracy 0.881; recall positive 1.000, neutral 0.911, negative 0.862"
    )
    assert lines[i + 1 : i + 5] == [
        "  gold / predicted   positive  neutral negative",
        "  positive                 11        0        0",
        "  neutral                   4      133        9",
        "  negative                  2       40      263",
    ]
