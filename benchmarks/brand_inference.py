"""How much of an unseen brand its features tell (synthetic data): the planted affinity with each
evaluated brand's latents read from its own features.

The generator draws every brand from four latents (``bamir/data/synthetic/world.py``): its topic
mixture ``theta``, its visual style, the audience regions it targets and its reach preference. In each
cross-validation fold (the datamodule's ``data.cv_fold=k``, as ``bamir-benchmark split=cv``) one ridge
regression per latent (scikit-learn's ``RidgeCV``, its penalty chosen by leave-one-out on the fitting
brands only) maps a brand's features (every modality of the store, standardised as every ranker
sees them) to that latent, fitted on the fold's fitting brands. The evaluated brands' affinity is then
computed by the generator's own formula with their latents replaced by these predictions
(:func:`~bamir.data.synthetic.world.brand_affinity`), scored on the fold's brands x candidates.

Two columns: with the influencers' true latents (the oracle's side), and with the influencers read
from their features by the feature ceiling's per-brand ridge read-out (``model=feature_ceiling``,
applied to the predicted rows instead of the true ones): the second is what a ranker could reach that
knew the generator's formula and inferred the brand linearly, to set against the feature ceiling.
One row per latent known in turn shows which part of a brand its features hide; the last row gives
the reach preference the most any ranker can know of it (:func:`~bamir.data.synthetic.world.expected_reach`:
most of it is drawn apart from everything a brand posts). Means over the folds.

``--readout kernel`` reads the latents non-linearly instead: kernel ridge regression with an RBF
kernel (scikit-learn's ``KernelRidge``, on the latent centred over the fitting brands), its penalty
and width chosen by 5-fold cross-validation on the fitting brands only (``GridSearchCV``).

    python benchmarks/brand_inference.py dataset=synthetic_paper
    python benchmarks/brand_inference.py dataset=synthetic_paper --readout kernel
"""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path

import numpy as np
import torch
from hydra import compose, initialize_config_module
from sklearn.compose import TransformedTargetRegressor
from sklearn.kernel_ridge import KernelRidge
from sklearn.linear_model import RidgeCV
from sklearn.metrics import r2_score
from sklearn.model_selection import GridSearchCV
from sklearn.preprocessing import StandardScaler

from bamir.config import CONFIG_MODULE, instantiate
from bamir.data.synthetic.generator import drawn_world
from bamir.data.synthetic.world import BRAND_LATENTS, brand_affinity, expected_reach
from bamir.metrics import ranking_metrics
from bamir.train import build_model, build_store

ALPHAS = np.logspace(-2, 5, 30)
#: RBF widths, times 1 / (number of features: the standardised features' mean squared distance is about 2x that)
GAMMAS = (0.003, 0.01, 0.03, 0.1, 0.3, 1.0)
COLUMNS = ("auc_global", "mrr")
#: the influencer side: their true latents (the oracle's), or read from their features (the feature ceiling's)
SIDES = ("true", "read")


def readout(kind: str, n_features: int):
    """The regression from a brand's features to one latent: ``ridge`` (linear) or ``kernel`` (RBF)."""
    if kind == "ridge":
        return RidgeCV(alphas=ALPHAS)
    grid = {"alpha": np.logspace(-5, 1, 7), "gamma": [g / n_features for g in GAMMAS]}
    # kernel ridge has no intercept: it regresses the latent's deviation from its mean over the fitting brands
    return TransformedTargetRegressor(GridSearchCV(KernelRidge(kernel="rbf"), grid, cv=5),
                                      transformer=StandardScaler(with_std=False))


def latent_targets(world, rows: np.ndarray) -> dict[str, np.ndarray]:
    """What the affinity reads of each latent of brands ``rows``: theta's direction, style, the
    targeted regions' shares, reach (``[n, k]`` each)."""
    b = world.brands
    theta = b.theta[rows] / np.linalg.norm(b.theta[rows], axis=1, keepdims=True)
    targets = b.targets[rows] / b.targets[rows].sum(1, keepdims=True)
    return {"theta": theta, "style": b.style[rows], "targets": targets, "reach": b.reach[rows, None]}


def fold_scores(cfg, fold: int, world, weights: dict, kind: str = "ridge") -> tuple[dict[str, dict[str, float]], dict[str, float]]:
    """``({row: metrics}, {latent: R^2 on the evaluated brands})`` of one fold; ``weights``: the affinity's;
    ``kind``: the latents' read-out (:func:`readout`).
    The store is built (or checked fresh, about 10 s on the paper preset) once, by :func:`main`."""
    cfg.data.cv_fold = fold
    dm = instantiate(cfg.data)
    dm.setup()
    ceiling = build_model(cfg, dm)
    ceiling.attach_data(dm)
    split = dm.test_split
    fitting = torch.unique(dm.train_data.brands)
    fit, evaluated = (ceiling.brand_index[rows].numpy() for rows in (fitting, split.brands))  # the world's brand indices
    if not np.allclose(ceiling.affinity[torch.as_tensor(evaluated)].numpy(), world.affinity[evaluated], atol=1e-5):
        raise SystemExit(f"{cfg.dataset.store}: its planted affinity is not the world of {cfg.dataset.raw}")

    def features(rows: torch.Tensor) -> np.ndarray:
        return torch.cat([dm.features[m][rows] for m in sorted(dm.features)], dim=1).double().numpy()

    truth, x_fit, x_eval = latent_targets(world, evaluated), features(fitting), features(split.brands)
    predicted, r2 = {}, {}
    for name, y in latent_targets(world, fit).items():
        predicted[name] = readout(kind, x_fit.shape[1]).fit(x_fit, y).predict(x_eval).reshape(len(evaluated), -1)
        r2[name] = float(r2_score(truth[name], predicted[name], multioutput="variance_weighted"))

    def rows_of(known: tuple[str, ...]) -> np.ndarray:
        latents = {k: (truth if k in known else predicted)[k] for k in BRAND_LATENTS}
        latents["reach"] = expected_reach(world)[evaluated] if "expected reach" in known else latents["reach"][:, 0]
        return brand_affinity(world, weights, evaluated, **latents)

    variants = {"true latents (oracle; feature ceiling)": BRAND_LATENTS, "latents read from its features": ()}
    variants.update({f"... {name} known": (name,) for name in BRAND_LATENTS})
    variants["... reach at its expectation given the followers"] = ("expected reach",)
    true_rows = ceiling.affinity[torch.as_tensor(evaluated)].clone()
    columns = ceiling.influencer_index[split.candidates].numpy()
    out = {}
    for label, known in variants.items():
        affinity = rows_of(known)
        ceiling.affinity[torch.as_tensor(evaluated)] = torch.as_tensor(affinity, dtype=true_rows.dtype)
        read = ceiling.branch_scores(split.brands, split.candidates)["feature_ceiling"]
        for side, scores in zip(SIDES, (torch.as_tensor(affinity[:, columns]), read)):
            metrics = ranking_metrics(scores.float(), split.labels, split.hard_negatives)
            out[f"{label} | {side}"] = {k: float(metrics[k]) for k in COLUMNS}
    ceiling.affinity[torch.as_tensor(evaluated)] = true_rows
    return out, r2


def table(results: dict[str, dict[str, float]], r2: dict[str, float], folds: int) -> str:
    head = " | ".join(f"{column}, influencers {side}" for side in SIDES for column in COLUMNS)
    lines = [f"| brand side | {head} | R^2 of the latent |", "|---" * (2 + len(SIDES) * len(COLUMNS)) + "|"]
    for label in dict.fromkeys(key.split(" | ")[0] for key in results):
        cells = [f"{results[f'{label} | {side}'][c]:.3f}" for side in SIDES for c in COLUMNS]
        latent = label.removeprefix("... ").removesuffix(" known")
        lines.append(f"| {label} | {' | '.join(cells)} | {f'{r2[latent]:.2f}' if latent in r2 else ''} |")
    return "\n".join(lines) + (f"\n\nMeans over {folds} folds. Influencers true: their true latents (the oracle's side); "
                               "read: read from their features by the feature ceiling's ridge read-out. R^2: of each "
                               "latent's prediction on the evaluated brands.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("overrides", nargs="*", help="Hydra overrides of the train config (dataset=...)")
    parser.add_argument("--json", type=Path, help="write the table's numbers here too")
    parser.add_argument("--readout", choices=("ridge", "kernel"), default="ridge",
                        help="how a brand's latents are read from its features (default: linear ridge)")
    args = parser.parse_intermixed_args()  # Hydra overrides before and after the options
    with initialize_config_module(version_base="1.3", config_module=CONFIG_MODULE):
        cfg = compose("train", overrides=[*args.overrides, "model=feature_ceiling", "logger=none"])
    build_store(cfg)
    drawn = drawn_world(cfg.dataset.raw)
    if drawn is None:
        raise SystemExit(f"{cfg.dataset.raw}: not a dataset of this project's generator (no world to compare with)")
    world, world_cfg = drawn
    per_fold = []
    for fold in range(int(cfg.data.cv_folds)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            per_fold.append(fold_scores(cfg, fold, world, world_cfg["affinity"], args.readout))
        print(f"fold {fold}: done", flush=True)
    results = {key: {c: float(np.mean([f[0][key][c] for f in per_fold])) for c in COLUMNS} for key in per_fold[0][0]}
    r2 = {name: float(np.mean([f[1][name] for f in per_fold])) for name in BRAND_LATENTS}
    print(table(results, r2, len(per_fold)))
    if args.json:
        args.json.write_text(json.dumps({"metrics": results, "r2": r2, "folds": len(per_fold), "readout": args.readout}, indent=1))


if __name__ == "__main__":
    main()
