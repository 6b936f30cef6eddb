"""WordTable answers as the dict it replaces: same floats, last line wins, overrides
win. HashedIndex finds the rows a dict of word -> row would."""

from __future__ import annotations

import pytest

from vocflow.streams.stages.sentiment import (
    CONTACT_LEXICON_PATH,
    GENERAL_LEXICON_PATH,
    MODEL_WEIGHTS_PATH,
    _get_model,
    _score_lines,
    model_features,
    model_logit,
)
from vocflow.streams.stages.textanalysis import BASE_IDF_PATH, _read_idf, _resources
from vocflow.streams.stages.wordtable import CACHE_MAX, HashedIndex, WordTable


def test_lookups_equal_the_dict_built_line_by_line() -> None:
    pairs = [("宽带", "7.5"), ("断网", "-1e-3"), ("宽带", "8.25"), ("a b", "0"), ("", "2")]
    table = WordTable(pairs, overrides={"投诉": 1.5, "断网": 3.0})
    want = {w: float(v) for w, v in pairs} | {"投诉": 1.5, "断网": 3.0}
    for word, value in want.items():
        assert table.get(word) == value and table[word] == value and word in table
    for missing in ["宽", "带", "宽带x", "x", "\n宽带", "宽带\t8.25"]:
        assert table.get(missing) is None and missing not in table
        assert table.get(missing, 0.5) == 0.5
        with pytest.raises(KeyError):
            table[missing]
    assert sorted(table) == sorted(want) and len(table) == len(want) and table


def test_the_cache_stays_bounded_and_answers_stay_right() -> None:
    table = WordTable((f"w{i}", str(i)) for i in range(CACHE_MAX + 10))
    for i in range(CACHE_MAX + 10):
        assert table.get(f"w{i}") == float(i)
    assert len(table._cache) <= CACHE_MAX


def test_a_bad_number_fails_when_the_table_is_built() -> None:
    with pytest.raises(ValueError):
        WordTable([("宽带", "high")])


def test_the_shipped_tables_hold_what_the_files_say() -> None:
    idf = _read_idf(BASE_IDF_PATH)
    idf_table = _resources().idf
    for word in list(idf)[::997]:
        assert idf_table.get(word) == idf[word]
    lexicon: dict[str, float] = {}
    for path in (GENERAL_LEXICON_PATH, CONTACT_LEXICON_PATH):
        lexicon.update((w, float(v)) for w, v in _score_lines(path))
    table = _get_model().lexicon
    for word in list(lexicon)[::97]:
        assert table.get(word) == lexicon[word]


def test_hashed_index_finds_the_rows_of_known_words_and_the_last_of_a_repeated_one() -> None:
    words = ["宽带", "断网", "b:00|后", "", "宽带", "x"]
    index = HashedIndex(iter(words))  # read once, as the loader streams a file
    assert len(index) == 5
    asked = ["x", "宽", "宽带", "", "宽带x", "断网", "b:00|后 "]
    assert index.rows(asked).tolist() == [5, 4, 3, 1]  # in the order asked
    assert index.positions(asked).tolist() == [5, -1, 4, 3, -1, 1, -1]
    assert HashedIndex([]).positions(["宽带", "x"]).tolist() == [-1, -1]
    assert index.rows(set()).tolist() == [] and index.rows({"y"}).tolist() == []
    assert HashedIndex([]).rows(["宽带"]).tolist() == []
    assert index.rows(["宽带"]).dtype.name == "int32"


def test_the_shipped_sentiment_weights_are_the_files_and_the_logit_their_sum() -> None:
    special = {"__bias__", "__rule__"}
    weights = {w: float(v) for w, v in _score_lines(MODEL_WEIGHTS_PATH, sep="\t")}
    model = _get_model()
    assert model.bias == weights["__bias__"] and model.rule_weight == weights["__rule__"]
    assert len(model.features) == len(weights) - len(special) == 110_893
    for word in [w for w in weights if w not in special][::89]:
        assert model.weights[model.features.rows([word])].tolist() == [weights[word]]
    tokens = ["宽带", "又", "断网", "了", "，", "客服", "态度", "很", "差"]
    feats = model_features(tokens)
    known = [weights[f] for f in feats if f in weights]
    z, hits = model_logit(tokens, feats)
    assert hits == len(known) > 0 and z == pytest.approx(sum(known), abs=1e-12)
