"""Fitting the 3-class sentiment model: the fixed dev split, exact 3-class
figures, threshold calibration, and a deterministic fit on a tiny corpus."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vocflow.streams.stages.sentiment_classes import Thresholds, classify_tokens, load_weights
from vocflow.streams.stages.textanalysis import tokenize
from vocflow.streams.tools.sentiment_fit import (
    calibrate,
    dev_report,
    fit,
    is_dev,
    load_rows,
    main,
    score_file,
    three_class,
)


def test_dev_split_is_a_fixed_hash_of_the_id() -> None:
    assert is_dev("tra-0006") is True
    assert [i for i in (f"t-{k:02d}" for k in range(30)) if is_dev(i)] == [
        "t-01",
        "t-12",
        "t-23",
        "t-25",
    ]


def test_three_class_exact() -> None:
    gold = ["negative", "neutral", "neutral", "positive", "negative"]
    pred = ["negative", "negative", "neutral", "positive", "neutral"]
    r = three_class(gold, pred)
    assert r["n"] == 5
    assert r["accuracy"] == 0.6
    assert (r["recall_neutral"], r["precision_neutral"]) == (0.5, 0.5)
    assert (r["recall_negative"], r["precision_negative"]) == (0.5, 0.5)
    assert (r["recall_positive"], r["precision_positive"]) == (1.0, 1.0)
    assert r["confusion"]["neutral->negative"] == 1
    assert r["confusion"]["negative->neutral"] == 1
    assert sum(r["confusion"].values()) == 5


def test_calibrate_keeps_neutral_recall_and_prefers_plateaus() -> None:
    # negatives at -0.9/-0.6, neutrals spread over -0.3..0.2, positives 0.5/0.9
    scores = [-0.9, -0.6, -0.3, -0.1, 0.0, 0.2, 0.5, 0.9]
    gold = ["negative"] * 2 + ["neutral"] * 4 + ["positive"] * 2
    th, acc = calibrate(scores, gold)
    assert acc == pytest.approx(1.0)  # the best point's whole neighbourhood is perfect
    assert th == Thresholds(pos=0.3, neg=-0.4)  # nearest the centre of the perfect plateau
    with pytest.raises(ValueError, match="neutral recall floor"):
        calibrate([-0.99, 0.99], ["neutral", "neutral"])


CORPUS = [
    ("太差了，我要投诉", "negative"),
    ("网速慢得要死，烦死了", "negative"),
    ("乱扣费，必须退钱", "negative"),
    ("客服态度恶劣，气死我了", "negative"),
    ("断网三天没人管，太过分了", "negative"),
    ("信号垃圾，根本打不了电话", "negative"),
    ("又被多扣了二十块，无语", "negative"),
    ("师傅放我鸽子，非常不满意", "negative"),
    ("请问怎么办理副卡", "neutral"),
    ("流量包多少钱一个月？", "neutral"),
    ("宽带能不能续费一年", "neutral"),
    ("发票怎么开", "neutral"),
    ("请问营业厅几点关门", "neutral"),
    ("我想查一下话费余额", "neutral"),
    ("携号转网需要什么条件？", "neutral"),
    ("怎么修改WiFi密码", "neutral"),
    ("谢谢，问题解决了", "positive"),
    ("师傅很专业，点赞", "positive"),
    ("非常满意，谢谢你们", "positive"),
    ("网速快多了，很不错", "positive"),
    ("客服很耐心，感谢", "positive"),
    ("退款到账了，谢谢", "positive"),
    ("服务很好，给你们好评", "positive"),
    ("修好了，辛苦了", "positive"),
]


def write_corpus(path: Path) -> Path:
    lines = [
        json.dumps({"id": f"t-{k:02d}", "text": t, "sentiment": s}, ensure_ascii=False)
        for k, (t, s) in enumerate(CORPUS)
    ]
    path.write_text("\n".join(lines) + "\n", "utf-8")
    return path


def test_fit_is_deterministic_and_writes_a_loadable_file(tmp_path: Path) -> None:
    corpus = write_corpus(tmp_path / "c.jsonl")
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    ra = fit([corpus], a, l2_grid=(1.0,))
    rb = fit([corpus], b, l2_grid=(1.0,))
    assert a.read_bytes() == b.read_bytes()
    assert ra == rb
    assert (ra["train_n"], ra["dev_n"]) == (21, 3)  # dev: t-01, t-12, t-23
    assert ra["dev"]["n"] == 3
    weights = load_weights(a)
    assert (weights.thresholds.pos, weights.thresholds.neg) == (
        ra["thresholds"]["pos"],
        ra["thresholds"]["neg"],
    )
    assert weights.of("d:review") is not None and weights.of("__bias__") is not None
    # the fitted file drives prediction when passed in
    got = classify_tokens([tokenize("太差了，我要投诉")], model=weights)[0]
    assert got.label == "negative"


def test_load_rows_names_the_bad_line(tmp_path: Path) -> None:
    p = tmp_path / "bad.jsonl"
    p.write_text(
        '{"id": "x", "text": "a", "sentiment": "neutral"}\n{"text": "b", "sentiment": "angry"}\n',
        "utf-8",
    )
    with pytest.raises(ValueError, match=r"bad.jsonl:2: sentiment must be one of"):
        load_rows([p])
    p.write_text("{oops\n", "utf-8")
    with pytest.raises(ValueError, match=r"bad.jsonl:1: not valid JSON"):
        load_rows([p])


# ---------------------------------------------------- the shipped model's figures

ROOT = Path(__file__).resolve().parents[3]


def test_shipped_model_dev_figures() -> None:
    """The dev split's figures in docs/voc.md (dev chose L2 and thresholds, so
    they are optimistic; a refit must update them)."""
    r = dev_report()
    assert r["n"] == 396
    assert (r["accuracy"], r["recall_neutral"]) == (0.8636, 0.8545)


def test_shipped_model_independent_figures() -> None:
    """The honest figure in docs/voc.md: 500 texts written last, by other people,
    in styles the training texts do not use, scored once after every choice was
    made. Never tune on it; a refit re-reports it, whatever it is."""
    r = score_file(ROOT / "tests" / "data" / "voc_independent.jsonl")
    assert r["n"] == 500
    assert (r["accuracy"], r["recall_neutral"]) == (0.876, 0.8937)
    assert (r["recall_negative"], r["recall_positive"]) == (0.8528, 0.8854)


def test_main_names_a_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--score", str(tmp_path / "none.jsonl")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("sentiment_fit: error: ") and "none.jsonl" in err
