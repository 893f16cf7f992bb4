"""Quick reference rankings on a dataset's discover split: oracle, random, popularity, and
unlearned cosine similarities of simple content vectors.

This is the generator's own calibration check (no feature pipeline needed): a ranking by the
planted affinity (the oracle) gives the ceiling; cosines of bag-of-words vectors show what an
unlearned content model gets. The project's metrics module is the reference for reported
numbers; these are computed per test brand over its candidate list and averaged.

Run ``python -m bamir.data.synthetic.calibration PATH`` for a table.
"""

from __future__ import annotations

import re
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from bamir.data.schema import RawDataset, read_planted_affinity
from bamir.data.synthetic.vocabulary import TOPICS

_WORD = re.compile(r"(?<![#@\w])[a-z][a-z']+")
_TAG = re.compile(r"#(\w+)")


def ranking_metrics(scores: np.ndarray, labels: np.ndarray, hard: np.ndarray | None = None) -> dict[str, float]:
    """Metrics of a [brands, candidates] score matrix against 0/1 labels (ties broken by index).

    ``hard`` marks, per brand, the negatives that count for cAUC (same-category brands' positives).
    """
    out: dict[str, list[float]] = {k: [] for k in ("AUC", "cAUC", "R@10", "R@50", "MRR", "MAP", "MedR")}
    for b in range(scores.shape[0]):
        y = labels[b].astype(bool)
        if not y.any() or y.all():
            continue
        order = np.argsort(-scores[b], kind="stable")
        ranked = y[order]
        ranks = np.flatnonzero(ranked) + 1
        s = scores[b]
        rank_of = np.empty(len(s))
        rank_of[np.argsort(s, kind="stable")] = np.arange(1, len(s) + 1)
        n_pos, n_neg = y.sum(), (~y).sum()
        out["AUC"].append((rank_of[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))
        if hard is not None and hard[b].any():
            neg = s[hard[b] & ~y]
            pos = s[y]
            out["cAUC"].append(float((pos[:, None] > neg[None, :]).mean() + 0.5 * (pos[:, None] == neg[None, :]).mean()))
        out["R@10"].append(ranked[:10].sum() / n_pos)
        out["R@50"].append(ranked[:50].sum() / n_pos)
        out["MRR"].append(1.0 / ranks[0])
        out["MAP"].append(float(np.mean(np.arange(1, len(ranks) + 1) / ranks)))
        out["MedR"].append(ranks[0])
    result = {k: float(np.mean(v)) if v else float("nan") for k, v in out.items() if k != "MedR"}
    result["MedR"] = float(np.median(out["MedR"]))
    return result


def _bow(docs: list[str], pattern: re.Pattern, vocab: dict[str, int] | None = None) -> sp.csr_matrix:
    counts = [Counter(pattern.findall(doc.lower())) for doc in docs]
    if vocab is None:
        vocab = {w: k for k, w in enumerate(sorted({w for c in counts for w in c}))}
    rows, cols, vals = [], [], []
    for r, c in enumerate(counts):
        for w, n in c.items():
            if w in vocab:
                rows.append(r)
                cols.append(vocab[w])
                vals.append(n)
    return sp.csr_matrix((vals, (rows, cols)), shape=(len(docs), len(vocab)), dtype=np.float64)


def _tfidf(m: sp.csr_matrix) -> sp.csr_matrix:
    df = np.asarray((m > 0).sum(axis=0)).ravel()
    idf = np.log((1 + m.shape[0]) / (1 + df)) + 1
    m = m.multiply(idf[None, :]).tocsr()
    norms = np.sqrt(np.asarray(m.multiply(m).sum(axis=1)).ravel()) + 1e-12
    return sp.diags(1 / norms) @ m


def _cos(m: np.ndarray | sp.csr_matrix, rows_a: np.ndarray, rows_b: np.ndarray) -> np.ndarray:
    if sp.issparse(m):
        out = (m[rows_a] @ m[rows_b].T).toarray()
    else:
        u = m / (np.linalg.norm(m, axis=1, keepdims=True) + 1e-12)
        out = u[rows_a] @ u[rows_b].T
    return out


def reference_rankings(root: str | Path, split: str = "discover", seed: int = 0) -> dict[str, dict[str, float]]:
    """{ranker: metrics} on the split's test brands x test candidates."""
    ds = RawDataset.load(root)
    acc = ds.accounts.reset_index(drop=True)
    row = {a: k for k, a in enumerate(acc["account_id"])}
    brands = acc.index[acc["kind"] == "brand"].to_numpy()
    infl = acc.index[acc["kind"] == "influencer"].to_numpy()
    col_of = {r: k for k, r in enumerate(infl)}
    sp_ = ds.splits[split]
    tb = np.array([row[a] for a in sp_["test_brands"]])
    tc = np.array([row[a] for a in sp_["test_candidates"]])
    labels = np.zeros((len(tb), len(tc)), bool)
    pos_of: dict[str, set[str]] = {}
    for b, i in zip(ds.pairs["brand"], ds.pairs["influencer"]):
        pos_of.setdefault(b, set()).add(i)
    cand_ids = [acc.at[r, "account_id"] for r in tc]
    for k, r in enumerate(tb):
        labels[k] = [c in pos_of.get(acc.at[r, "account_id"], set()) for c in cand_ids]
    category = acc["category"].to_numpy()
    hard = np.zeros_like(labels)
    for k, r in enumerate(tb):
        same = [q for q, r2 in enumerate(tb) if r2 != r and category[r2] == category[r]]
        if same:
            hard[k] = labels[same].any(axis=0)

    posts = ds.posts.groupby("account_id", sort=False)["caption"].apply(lambda c: "\n".join(c))
    docs = [posts.get(a, "") for a in acc["account_id"]]
    words = _tfidf(_bow(docs, _WORD))
    tags = _tfidf(_bow(docs, _TAG))
    topic_vocab: dict[str, int] = {}
    for t, topic in enumerate(TOPICS):
        for w in topic.words:
            topic_vocab.setdefault(w, t)
    word_counts = _bow(docs, _WORD, {w: k for k, w in enumerate(topic_vocab)})
    to_topic = sp.csr_matrix((np.ones(len(topic_vocab)), (np.arange(len(topic_vocab)), list(topic_vocab.values()))),
                             shape=(len(topic_vocab), len(TOPICS)))
    topic_vec = (word_counts @ to_topic).toarray()
    topic_vec = topic_vec / (topic_vec.sum(axis=1, keepdims=True) + 1e-12)

    followers = acc["followers"].to_numpy(dtype=float)
    rng = np.random.default_rng(seed)
    scores = {
        "random": rng.random(labels.shape),
        "popularity (followers)": np.broadcast_to(followers[tc][None, :], labels.shape),
        "cosine: caption words tf-idf": _cos(words, tb, tc),
        "cosine: hashtags tf-idf": _cos(tags, tb, tc),
        "cosine: bag-of-words topic vectors": _cos(topic_vec, tb, tc),
    }
    affinity = read_planted_affinity(root)
    if affinity is not None:
        brand_row = {r: k for k, r in enumerate(brands)}
        cells = np.ix_([brand_row[r] for r in tb], [col_of[r] for r in tc])
        scores["oracle (planted affinity)"] = affinity[cells]
        observable = observable_oracle(root)
        if observable is not None:
            scores["oracle, brands' hidden reach unknown"] = observable[cells]
    return {name: ranking_metrics(np.asarray(s), labels, hard) for name, s in scores.items()}


def observable_oracle(root: str | Path) -> np.ndarray | None:
    """:func:`~bamir.data.synthetic.world.expected_reach_affinity` of a dataset this generator wrote
    (its world drawn again: :func:`~bamir.data.synthetic.generator.drawn_world`), in the affinity
    file's order; None for other datasets."""
    from bamir.data.synthetic.generator import drawn_world
    from bamir.data.synthetic.world import expected_reach_affinity

    drawn = drawn_world(root)
    return None if drawn is None else expected_reach_affinity(drawn[0], drawn[1]["affinity"])


def format_table(results: dict[str, dict[str, float]]) -> str:
    keys = ("AUC", "cAUC", "R@10", "R@50", "MRR", "MAP", "MedR")
    lines = [f"{'ranking':36s} " + " ".join(f"{k:>6s}" for k in keys)]
    for name, m in results.items():
        lines.append(f"{name:36s} " + " ".join(f"{m[k]:6.3f}" if k != "MedR" else f"{m[k]:6.0f}" for k in keys))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args:
        print("usage: python -m bamir.data.synthetic.calibration PATH [SPLIT]")
        return 2
    print(format_table(reference_rankings(args[0], *(args[1:2] or ["discover"]))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
