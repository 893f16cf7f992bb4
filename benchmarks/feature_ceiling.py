"""How much of the planted affinity a synthetic store's features can express at all.

For each test brand ``b`` a ridge regression maps an influencer's features ``x_i`` (the
z-scored concatenation of ``--modalities``) to the brand's *planted* affinity ``A[b, i]``::

    w_b = argmin_w  sum_{i not a test candidate} (x_i . w - A[b, i])^2 + alpha |w|^2

fitted on the influencers outside the test candidate list and scored on the candidates,
then evaluated like any ranker (``bamir.metrics``, the test split of the data module). It
cheats twice (it knows the test brands' true affinity, and fits one read-out per brand), so
a ranker that sees only the features and the training pairs should not be expected to beat
it: ``oracle - ceiling`` is what the features lose of the affinity, ``ceiling - model`` what
learning from the pairs loses. It is a linear read-out, so a bound only for rankers that
are linear in these features; it says how far the oracle is out of reach.

    python benchmarks/feature_ceiling.py data/stores/synthetic-paper-0/small
    python benchmarks/feature_ceiling.py STORE --modalities topic concept --alphas 1 10 100
"""

from __future__ import annotations

import argparse

import torch

from bamir.datamodule import RankingDataModule
from bamir.metrics import ranking_metrics
from bamir.models.oracle import load_affinity

METRICS = ("auc_global", "cauc", "recall@10", "recall@50", "mrr", "map", "medr")


def ceiling_scores(x: torch.Tensor, affinity: torch.Tensor, fit_rows: torch.Tensor, alpha: float) -> torch.Tensor:
    """Ridge read-outs of all brands at once: ``x [n, d]`` features of the affinity's influencers,
    ``affinity [B, n]``; fitted on columns ``fit_rows``; returns scores ``[B, n]``."""
    xf = x[fit_rows]
    gram = xf.T @ xf + alpha * torch.eye(x.shape[1], dtype=x.dtype)
    weights = torch.linalg.solve(gram, xf.T @ affinity[:, fit_rows].T)  # [d, B]
    return (x @ weights).T


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("store", help="a synthetic feature store (it keeps the planted affinity)")
    parser.add_argument("--modalities", nargs="*", default=None, help="default: every modality of the store")
    parser.add_argument("--alphas", nargs="*", type=float, default=[1.0, 10.0, 100.0, 1000.0])
    args = parser.parse_args()

    data = RankingDataModule(args.store, sampler=None, modalities=args.modalities, standardize=True)
    data.setup("test")
    test = data.test_split
    affinity, brand_rows, influencer_rows = load_affinity(data.store)
    brand_index = {int(r): k for k, r in enumerate(brand_rows)}
    col_of = {int(r): k for k, r in enumerate(influencer_rows)}
    x = torch.cat([data.features[m][influencer_rows] for m in sorted(data.features)], dim=1).double()
    candidates = torch.tensor([col_of[int(r)] for r in test.candidates])
    fit = torch.ones(len(influencer_rows), dtype=torch.bool)
    fit[candidates] = False
    target = affinity[[brand_index[int(b)] for b in test.brands]].double()

    def table_row(name: str, scores: torch.Tensor) -> str:
        m = ranking_metrics(scores.float(), test.labels, test.hard_negatives)
        return f"| {name} | " + " | ".join(f"{float(m[k]):.3f}" for k in METRICS) + " |"

    print(f"store {args.store}: {len(test.brands)} test brands x {len(test.candidates)} candidates; "
          f"features {', '.join(f'{m} {data.features[m].shape[1]}' for m in sorted(data.features))} "
          f"(d = {x.shape[1]}), read-outs fitted on {int(fit.sum())} influencers")
    print("| ranking | " + " | ".join(METRICS) + " |")
    print("|---" * (len(METRICS) + 1) + "|")
    print(table_row("oracle (planted affinity)", target[:, candidates]))
    for alpha in args.alphas:
        scores = ceiling_scores(x, target, fit.nonzero().flatten(), alpha)
        print(table_row(f"feature ceiling, ridge alpha {alpha:g}", scores[:, candidates]))


if __name__ == "__main__":
    main()
