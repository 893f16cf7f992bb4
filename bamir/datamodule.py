"""The Lightning data module: feature store -> tensors, splits, index batches.

Features never pass through the data loaders: they are handed to the model once
(:attr:`RankingDataModule.features`) and kept there as buffers, on the accelerator when the
model moves. Loaders serve only account-row indices:

- training: ``[batch, 2 + n]`` rows ``(brand, positive, negatives...)`` from a
  :mod:`bamir.samplers` sampler, shuffled per epoch with a generator seeded by
  ``(seed, epoch)`` so an interrupted run resumes to the same batches;
- evaluation: dicts ``brands [b]``, ``candidates [C]``, ``labels [b, C]`` and
  ``hard_negatives [b, C]`` (candidates that are positives of another evaluated brand of the
  same category), scored as one matrix by the model.

Splits follow the "discover" protocol: brand-disjoint train and test brands, each test brand
ranked against all test candidates. A validation split is carved from the training brands
(``val_fraction``, ``val_seed``; stratified by category when categories are known), and
validated the same way: its brands against the influencers of all its brands.

Cross-validation (``cv_fold``, ``cv_folds``, ``cv_seed``; docs/method.md section 2): the store
split's training brands are dealt into ``cv_folds`` brand-disjoint folds, stratified by category
(:func:`brand_folds`). With ``cv_fold=k`` fold ``k`` replaces the store's test split (its brands
ranked against the influencers of its brands, as the validation split is), and the other folds'
brands are the training brands: the validation carve, the training positives, the negative pool
and the standardisation statistics all come from them alone.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler

from bamir.samplers import NegativeSampler, TrainingData
from bamir.store import FeatureStore, StoreError
from bamir.utils import stable_hash

log = logging.getLogger(__name__)

#: ``data.missing``: what an account lacking a modality gets (see :class:`RankingDataModule`).
MISSING_POLICIES = ("neutral", "drop")


@dataclass
class EvalSplit:
    """Brands ranked against one candidate list, with their labels."""

    brands: Tensor  # [B] account rows
    candidates: Tensor  # [C] account rows
    labels: Tensor  # [B, C] bool
    hard_negatives: Tensor | None  # [B, C] bool, None when categories are unknown

    def __len__(self) -> int:
        return len(self.brands)

    def shard(self, rank: int, world_size: int) -> "EvalSplit":
        """Every ``world_size``-th brand from ``rank``: one process's share under DDP."""
        rows = slice(rank, None, world_size)
        hard = None if self.hard_negatives is None else self.hard_negatives[rows]
        return EvalSplit(self.brands[rows], self.candidates, self.labels[rows], hard)


class _EvalBatches(Dataset):
    def __init__(self, split: EvalSplit, batch_size: int):
        self.split, self.batch_size = split, batch_size

    def __len__(self) -> int:
        return -(-len(self.split) // self.batch_size)

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        rows = slice(i * self.batch_size, (i + 1) * self.batch_size)
        batch = {
            "brands": self.split.brands[rows],
            "candidates": self.split.candidates,
            "labels": self.split.labels[rows],
        }
        if self.split.hard_negatives is not None:
            batch["hard_negatives"] = self.split.hard_negatives[rows]
        return batch


class _Rows(Dataset):
    """Index rows of the current epoch; ``dataset[idx]`` is a whole batch (no collate)."""

    def __init__(self):
        self.rows = torch.empty(0, 3, dtype=torch.long)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, idx: Tensor) -> Tensor:
        return self.rows[idx]


class EpochBatchSampler(Sampler):
    """Yields one index tensor per batch; resamples negatives and reshuffles in ``set_epoch``.

    ``rank``/``world_size`` give each process its share of every epoch's batches. ``epoch_of``,
    when given, reports the trainer's epoch at iteration time (Lightning's own ``set_epoch`` call
    counts epochs since the process started, so it restarts at 0 after a resume).
    """

    def __init__(self, rows: _Rows, sampler: NegativeSampler, data: TrainingData, batch_size: int, seed: int,
                 drop_last: bool = False, rank: int = 0, world_size: int = 1, epoch_of=None):
        self.rows, self.sampler, self.data = rows, sampler, data
        self.batch_size, self.seed, self.drop_last = batch_size, seed, drop_last
        self.rank, self.world_size = rank, world_size
        self.epoch_of = epoch_of
        self._sampled_epoch: int | None = None
        self.set_epoch(0)

    def _generator(self, epoch: int, stream: int) -> torch.Generator:
        return torch.Generator().manual_seed(self.seed * 1_000_003 + epoch * 101 + stream)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        draw_epoch = epoch if self.sampler.resample_every_epoch else 0
        if self._sampled_epoch != draw_epoch:
            self.rows.rows = self.sampler.sample(self.data, self._generator(draw_epoch, 1))
            self._sampled_epoch = draw_epoch

    def _batches(self) -> list[Tensor]:
        order = torch.randperm(len(self.rows), generator=self._generator(self.epoch, 2))
        batches = list(order.split(self.batch_size))
        if self.drop_last and batches and len(batches[-1]) < self.batch_size:
            batches.pop()
        per_rank = len(batches) // self.world_size  # equal shares: DDP ranks must step together
        return batches[self.rank * per_rank:(self.rank + 1) * per_rank]

    def __iter__(self):
        # a generator: the epoch is read at the first batch, when a resumed trainer has settled it
        if self.epoch_of is not None:
            self.set_epoch(self.epoch_of())
        yield from self._batches()

    def __len__(self) -> int:
        full, rest = divmod(len(self.rows), self.batch_size)
        count = full + int(rest > 0 and not self.drop_last)
        return count // self.world_size


class RankingDataModule(L.LightningDataModule):
    """Loads a feature store and serves the training, validation and test splits.

    Args:
        store: feature store folder.
        sampler: the negative sampler (a ``conf/sampler`` config).
        split: name of the split in the store (``discover``).
        val_fraction: share of training brands held out for validation (0 disables).
        val_seed: seed of the validation carve.
        batch_size: training rows per batch.
        eval_batch_size: brands per evaluation batch.
        seed: seed of sampling and shuffling.
        modalities: restrict to these modalities (default: all in the store).
        standardize: z-score every feature column with the mean and standard deviation over the
            training accounts (fitting brands and negative pool), so no modality's offset or scale
            dominates the inner products. The published model (``model=bamir_paper``) does not.
            None: take it from a checkpoint (:meth:`load_state_dict`), as ``bamir-eval`` and ``bamir-rank`` do.
        same_batches: serve the first epoch's batches (negatives and order) in every epoch; with
            ``trainer.limit_train_batches=N``, the same N batches again and again (``debug=overfit``).
        cv_folds: number of cross-validation folds over the split's training brands (at least 2).
        cv_fold: None serves the store's split as it is (but :meth:`load_state_dict` adopts a
            checkpoint's fold); ``k`` (0-based) makes fold ``k`` of :func:`brand_folds` the test split
            and trains on the other folds' brands.
        cv_seed: seed of the fold assignment (independent of ``seed`` and ``val_seed``).
        missing: what an account the model encodes gets for a modality it lacks (the store's
            ``present`` is False: a brand with no posts, captions with no words). ``neutral``: the
            modality's neutral vector, its mean over the training accounts that have it (zero once
            standardised), and the accounts are counted (:attr:`missing_counts`); ``drop``: the
            modality is left out for the whole model, as if ``modalities`` did not list it.

    Checkpoints keep what turns the store into the model's inputs (:meth:`state_dict`), and a
    module given a checkpoint's state before :meth:`setup` serves the store exactly as in training.
    """

    def __init__(
        self,
        store: str,
        sampler: NegativeSampler,
        split: str = "discover",
        val_fraction: float = 0.2,
        val_seed: int = 0,
        batch_size: int = 32,
        eval_batch_size: int = 256,
        seed: int = 24,
        modalities: list[str] | None = None,
        standardize: bool | None = False,
        same_batches: bool = False,
        missing: str = "neutral",
        cv_folds: int = 5,
        cv_fold: int | None = None,
        cv_seed: int = 0,
    ):
        super().__init__()
        if not 0 <= val_fraction < 1:
            raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
        _check_cv(cv_fold, cv_folds)
        self.cv_folds, self.cv_fold, self.cv_seed = int(cv_folds), None if cv_fold is None else int(cv_fold), int(cv_seed)
        self._saved_cv_brands: list[str] | None = None
        self.store_dir = Path(store)
        self.sampler = sampler
        self.split_name = split
        self.val_fraction, self.val_seed = val_fraction, val_seed
        self.batch_size, self.eval_batch_size, self.seed = batch_size, eval_batch_size, seed
        self.wanted_modalities = list(modalities) if modalities is not None else None
        self.standardize = standardize
        self.same_batches = same_batches
        if missing not in MISSING_POLICIES:
            raise ValueError(f"data.missing={missing!r}: use one of {', '.join(MISSING_POLICIES)}")
        self.missing = missing
        self._saved_stats: dict[str, tuple[Tensor, Tensor]] | None = None
        self._ready = False

    # ------------------------------------------------------------------ setup
    def setup(self, stage: str | None = None) -> None:
        if not self._ready:
            self._load()
        if self.trainer is not None:  # called by a Trainer: its processes exist now
            _same_on_every_rank(self.fingerprint(), f"the data of {self.store_dir} ({self.describe_split()})")

    def describe_split(self) -> str:
        """``split 'discover'``, or ``split 'discover', fold 2 of 5 (cv_seed 0)``."""
        if self.cv_fold is None:
            return f"split {self.split_name!r}"
        return f"split {self.split_name!r}, fold {self.cv_fold} of {self.cv_folds} (cv_seed {self.cv_seed})"

    def fingerprint(self) -> str:
        """Hash of what this module serves: the store's tables, the loaded modalities' files and their transform."""
        manifest = self.store.manifest
        stats = {name: stable_hash([mean.tolist(), std.tolist()]) for name, (mean, std) in self.feature_stats.items()}
        parts = [self.split_name, manifest["accounts"], manifest["tables"],
                 {name: manifest["modalities"][name]["sha256"] for name in sorted(self.features)},
                 bool(self.standardize), stats]
        if self.cv_fold is not None:
            parts.append(self._cv_state())
        return stable_hash(parts)

    def _cv_state(self) -> dict[str, Any] | None:
        """The served fold (:meth:`state_dict`'s ``cv``): None without cross-validation."""
        if self.cv_fold is None:
            return None
        state: dict[str, Any] = {"fold": self.cv_fold, "folds": self.cv_folds, "seed": self.cv_seed}
        if self._ready:
            state["brands"] = sorted(self.account_ids[r] for r in self.cv_brands.tolist())
        return state

    # ------------------------------------------------------------------ the data contract
    def state_dict(self) -> dict[str, Any]:
        """What turns the store into the model's inputs; Lightning keeps it in every checkpoint.

        ``modalities`` (those served), ``standardize``, ``missing``, ``feature_stats`` ``{modality: {"mean": [dim],
        "std": [dim]}}``, fitted on the training accounts (empty without standardisation), and ``cv``: None
        (the store's split as it is) or the fold that was held out, ``{"fold", "folds", "seed", "brands"}``
        (``brands``: the fold's brand account ids, sorted).
        """
        return {"modalities": list(self.features), "standardize": bool(self.standardize), "missing": self.missing,
                "feature_stats": {name: {"mean": mean, "std": std} for name, (mean, std) in self.feature_stats.items()},
                "cv": self._cv_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """A checkpoint's data settings (:meth:`state_dict`; None where it does not record one).

        Before :meth:`setup` they become this module's: a configured value that contradicts one is
        refused. After it (Lightning testing or resuming a checkpoint), this module must already serve them.
        """
        if self._ready:
            self._refuse_differences(state)
        else:
            self._adopt(state)

    def _adopt(self, state: dict[str, Any]) -> None:
        configured = {"standardize": self.standardize, "modalities": self.wanted_modalities}
        _refuse_contradictions(configured, state, "this run sets",
                               "leave them unset (null: the checkpoint's values) or pass the checkpoint's")
        if state["standardize"] is None:
            if self.standardize is None:
                raise ValueError("the checkpoint does not record data.standardize (written before checkpoints kept "
                                 "their data settings): pass data.standardize=true or false, as it was trained")
            log.warning("the checkpoint does not record its data settings: serving data.standardize=%s as given, "
                        "statistics fitted on this run's training accounts", self.standardize)
        if state["standardize"] is not None:
            self.standardize = state["standardize"]
        if state["modalities"] is not None:
            self.wanted_modalities = list(state["modalities"])
        if state.get("missing") is not None:
            self.missing = state["missing"]
        if state["feature_stats"] is not None:
            self._saved_stats = {name: (s["mean"], s["std"]) for name, s in state["feature_stats"].items()}
        self._adopt_cv(state.get("cv"))

    def _adopt_cv(self, saved: dict[str, Any] | None) -> None:
        """Serve the checkpoint's fold: ``cv_fold=None`` takes it (with its ``cv_folds`` and ``cv_seed``); a
        configured fold must be the checkpoint's. A checkpoint without ``cv`` was trained on the whole split."""
        if self.cv_fold is None:
            if saved is not None:
                self.cv_fold, self.cv_folds, self.cv_seed = int(saved["fold"]), int(saved["folds"]), int(saved["seed"])
                self._saved_cv_brands = list(saved.get("brands") or []) or None
                log.info("serving the checkpoint's cross-validation fold: %s", self.describe_split())
            return
        _refuse_cv_contradiction(self._cv_state(), saved, "this run sets",
                                 "leave data.cv_fold unset (null: the checkpoint's fold) or pass the checkpoint's")
        self._saved_cv_brands = list(saved.get("brands") or []) or None
    def _refuse_differences(self, state: dict[str, Any]) -> None:
        _refuse_contradictions(self.state_dict(), state, "this run serves", "run with the checkpoint's data settings")
        _refuse_cv_contradiction(self._cv_state(), state.get("cv"), "this run serves",
                                 "run with the checkpoint's data.cv_fold, cv_folds and cv_seed")
        saved = state["feature_stats"] or {}
        differing = [name for name, (mean, std) in self.feature_stats.items() if name in saved
                     and not (torch.equal(mean, saved[name]["mean"]) and torch.equal(std, saved[name]["std"]))]
        if differing:
            raise ValueError(f"the checkpoint standardised modalities {differing} with other statistics than this run "
                             "(fitted on other training accounts: data.split, val_fraction or val_seed differ)")

    def _load(self) -> None:
        store = FeatureStore(self.store_dir)
        self.store = store
        accounts = store.accounts
        self.account_ids = accounts["account_id"].tolist()
        self.row_of = {a: i for i, a in enumerate(self.account_ids)}
        n = len(self.account_ids)
        categories = sorted({c for c in accounts["category"] if c})
        self.categories = categories
        cat_index = {c: k for k, c in enumerate(categories)}
        self.category = torch.tensor([cat_index.get(c, -1) for c in accounts["category"]], dtype=torch.long)
        self.is_brand = torch.tensor((accounts["kind"] == "brand").to_numpy())

        splits = store.splits
        if self.split_name not in splits:
            raise StoreError(f"{store.root / 'splits.json'}: no split {self.split_name!r}; it has {sorted(splits)}")
        split = splits[self.split_name]
        pairs = store.pairs
        pair_b = torch.tensor([self.row_of[b] for b in pairs["brand"]], dtype=torch.long)
        pair_i = torch.tensor([self.row_of[i] for i in pairs["influencer"]], dtype=torch.long)
        self.pair_rows = (pair_b, pair_i)

        train_brands = torch.tensor([self.row_of[b] for b in split["train_brands"]], dtype=torch.long)
        test_brands = torch.tensor([self.row_of[b] for b in split["test_brands"]], dtype=torch.long)
        test_candidates = torch.tensor([self.row_of[i] for i in split["test_candidates"]], dtype=torch.long)
        if self.cv_fold is not None:  # fold k replaces the test split; the other folds are the training brands
            if len(train_brands) < self.cv_folds:
                raise StoreError(f"{store.root}: split {self.split_name!r} has {len(train_brands)} training brands, "
                                 f"fewer than data.cv_folds={self.cv_folds}")
            self.cv_brands = brand_folds(train_brands, self.category, self.cv_folds, self.cv_seed)[self.cv_fold]
            self._check_saved_cv_brands()
            train_brands = train_brands[~torch.isin(train_brands, self.cv_brands)]
            test_brands, test_candidates = self.cv_brands, None  # the influencers of the fold's brands
        val_brands, fit_brands = self._carve_validation(train_brands)
        in_fit = torch.isin(pair_b, fit_brands)
        if not in_fit.any():
            raise StoreError(f"{store.root}: split {self.split_name!r} has no training positives")
        pool = torch.unique(pair_i[in_fit])
        self.train_data = TrainingData(
            brands=pair_b[in_fit], positives=pair_i[in_fit], pool=pool, category=self.category,
            num_accounts=n, triplet_sets={name: store.load_triplets(name) for name in store.triplet_sets},
        )
        self.val_split = self._eval_split(val_brands, None) if len(val_brands) else None
        self.test_split = self._eval_split(test_brands, test_candidates) if len(test_brands) else None

        self._training_rows = torch.unique(torch.cat([self.train_data.brands, self.train_data.pool]))
        self.features, self.present = self._load_features(store)
        self.feature_stats = self._standardization()
        self._fill_missing()
        for name in self.feature_stats:
            self.features[name] = self.transform_rows(name, self.features[name])
        self._rows = _Rows()
        self._ready = True
        log.info(
            "data (%s): %d accounts, %d training positives from %d brands, pool %d, val %d brands, test %d brands; "
            "modalities %s", self.describe_split(), n, len(self.train_data.brands), len(fit_brands), len(pool),
            len(val_brands), len(test_brands), {k: v.shape[1] for k, v in self.features.items()},
        )

    def _check_saved_cv_brands(self) -> None:
        """A checkpoint's fold must hold the same brands here (same store split and fold assignment)."""
        if self._saved_cv_brands is None:
            return
        here = sorted(self.account_ids[r] for r in self.cv_brands.tolist())
        if here != sorted(self._saved_cv_brands):
            missing = sorted(set(self._saved_cv_brands) - set(here))
            extra = sorted(set(here) - set(self._saved_cv_brands))
            raise ValueError(f"the checkpoint's {self.describe_split()} held out other brands than this store's fold "
                             f"(checkpoint only: {missing[:5]}, here only: {extra[:5]}): another store split or fold "
                             "assignment; evaluate it on the store it was trained on")

    def _standardization(self) -> dict[str, tuple[Tensor, Tensor]]:
        """``{modality: (mean, std)}`` of the z-score: a checkpoint's, else fitted on the training accounts."""
        if self.standardize is None:
            raise ValueError("data.standardize is null, which takes it from a checkpoint, and there is none: "
                             "set data.standardize=true or false")
        if not self.standardize:
            return {}
        if self._saved_stats is not None:
            missing = sorted(set(self.features) - set(self._saved_stats))
            if missing:
                raise ValueError(f"the checkpoint has no standardisation statistics for modalities {missing}")
            return {name: self._saved_stats[name] for name in self.features}
        stats = {}
        for name, x in self.features.items():
            rows = self._fit_rows(name)
            mean, std = x[rows].mean(0), x[rows].std(0)
            stats[name] = (mean, torch.where(std > 1e-8, std, torch.ones_like(std)))
        return stats

    def _fit_rows(self, name: str) -> Tensor:
        """The training accounts (fitting brands and negative pool) that have modality ``name``."""
        return self._training_rows[self.present[name][self._training_rows]]

    def _fill_missing(self) -> None:
        """Give every account lacking a served modality its neutral vector (:attr:`neutral`, store space):
        the mean over the training accounts that have it (the standardisation's mean when there is one,
        so the row becomes zero)."""
        self.neutral = {name: self.feature_stats[name][0] if name in self.feature_stats
                        else self.features[name][self._fit_rows(name)].mean(0) for name in self.features}
        for name, present in self.present.items():
            if not present.all():
                x = self.features[name].clone()
                x[~present] = self.neutral[name]
                self.features[name] = x

    def _carve_validation(self, train_brands: Tensor) -> tuple[Tensor, Tensor]:
        if self.val_fraction == 0:
            return train_brands[:0], train_brands
        # stratified by category (unknown = one stratum): shuffle each category, give its
        # j-th brand the key (j + u) / size, and hold out the k brands with the smallest keys
        rng = np.random.default_rng(self.val_seed)
        brands = train_brands.numpy()
        cats = self.category[train_brands].numpy()
        keys = np.empty(len(brands))
        for c in np.unique(cats):
            members = np.flatnonzero(cats == c)
            order = rng.permutation(len(members))
            keys[members[order]] = (np.arange(len(members)) + rng.random(len(members))) / len(members)
        k = max(1, int(round(self.val_fraction * len(brands))))
        chosen = brands[np.argsort(keys, kind="stable")[:k]]
        val = torch.tensor(sorted(chosen.tolist()), dtype=torch.long)
        fit = train_brands[~torch.isin(train_brands, val)]
        return val, fit

    def _eval_split(self, brands: Tensor, candidates: Tensor | None) -> EvalSplit:
        pair_b, pair_i = self.pair_rows
        if candidates is None:  # validation: the influencers of all its brands
            candidates = torch.unique(pair_i[torch.isin(pair_b, brands)])
        n = len(self.account_ids)
        keys = torch.unique(pair_b * n + pair_i)
        labels = torch.isin(brands[:, None] * n + candidates[None, :], keys)
        hard = None
        cat = self.category[brands]
        if (cat >= 0).all():
            # candidate c is a hard negative of brand b when it is a positive of another
            # evaluated brand of b's category and not a positive of b
            cat_of_pos = torch.zeros(len(self.categories), len(candidates), dtype=torch.bool)
            rows, cols = labels.nonzero(as_tuple=True)
            cat_of_pos[cat[rows], cols] = True
            hard = cat_of_pos[cat] & ~labels
        missing = labels.sum(1) == 0
        if missing.any():
            log.warning("%d evaluation brands have no positive among the candidates", int(missing.sum()))
        return EvalSplit(brands, candidates, labels, hard)

    def _load_features(self, store: FeatureStore) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """The served modalities' matrices and ``present`` masks, by the ``missing`` policy.

        Sets :attr:`missing_counts` ``{modality: accounts the model encodes that lack it}`` (kept
        modalities) and :attr:`dropped` (modalities left out by ``missing=drop``).
        """
        names = self.wanted_modalities or store.modalities
        unknown = sorted(set(names) - set(store.modalities))
        if unknown:
            raise StoreError(f"{store.root}: data.modalities asks for {unknown}, which the store does not hold "
                             f"(it holds {store.modalities})")
        needed = torch.zeros(len(self.account_ids), dtype=torch.bool)
        needed[self.train_data.brands] = True
        needed[self.train_data.pool] = True
        for split in (self.val_split, self.test_split):
            if split is not None:
                needed[split.brands] = True
                needed[split.candidates] = True
        features, present = {}, {}
        self.missing_counts: dict[str, int] = {}
        self.dropped: list[str] = []
        for name in names:
            modality = store.load_modality(name)
            lacking = int((needed & ~modality.present).sum())
            if lacking and self.missing == "drop":
                log.info("modality %r: %d accounts the model encodes lack it; left out (data.missing=drop)", name, lacking)
                self.dropped.append(name)
                continue
            if lacking and not modality.present[self._training_rows].any():
                raise StoreError(f"{store.root}: modality {name!r} is present for none of the training accounts, so "
                                 "it has no neutral vector; leave it out with data.modalities or data.missing=drop")
            if lacking:
                self.missing_counts[name] = lacking
                log.warning("modality %r: %d of %d accounts the model encodes lack it; they get its neutral vector "
                            "(data.missing=neutral)", name, lacking, int(needed.sum()))
            features[name], present[name] = modality.features, modality.present
        return features, present

    def leaves_out(self, modality: str) -> bool:
        """Whether the data config leaves ``modality`` out: ``modalities`` does not list it, or ``missing=drop``
        dropped it (as opposed to a store that lacks it unasked)."""
        return modality in self.dropped or (self.wanted_modalities is not None and modality not in self.wanted_modalities)

    def transform_rows(self, name: str, x: Tensor) -> Tensor:
        """Raw store rows of modality ``name`` -> the model's input space (e.g. for new accounts)."""
        if name not in self.feature_stats:
            return x
        mean, std = self.feature_stats[name]
        return (x - mean) / std

    @property
    def dims(self) -> dict[str, int]:
        return {name: int(x.shape[1]) for name, x in self.features.items()}

    # ------------------------------------------------------------------ loaders
    def _rank_and_world(self) -> tuple[int, int]:
        return (self.trainer.global_rank, self.trainer.world_size) if self.trainer else (0, 1)

    def train_dataloader(self) -> DataLoader:
        rank, world = self._rank_and_world()
        epoch_of = (lambda: 0) if self.same_batches else (lambda: self.trainer.current_epoch) if self.trainer else None
        batches = EpochBatchSampler(self._rows, self.sampler, self.train_data, self.batch_size, self.seed,
                                    rank=rank, world_size=world, epoch_of=epoch_of)
        # its own generator: creating the iterator must not draw from the global RNG (resume = same run)
        return DataLoader(self._rows, sampler=batches, batch_size=None, generator=torch.Generator())

    def _eval_loader(self, split: EvalSplit | None) -> DataLoader:
        if split is None:
            return []  # Lightning skips an empty loader
        rank, world = self._rank_and_world()
        if world > 1:  # each process scores its share of brands; the metric gathers them once
            split = split.shard(rank, world)
        return DataLoader(_EvalBatches(split, self.eval_batch_size), batch_size=None)

    def val_dataloader(self):
        return self._eval_loader(self.val_split)

    def test_dataloader(self):
        return self._eval_loader(self.test_split)


def checkpoint_data(checkpoint: dict[str, Any]) -> dict[str, Any]:
    """The data settings a loaded checkpoint was written with (:meth:`RankingDataModule.state_dict`).

    A checkpoint from before they were kept gives the modalities its store fingerprint names
    (those served in training) and None for the rest (unknown).
    """
    state = checkpoint.get(RankingDataModule.__qualname__)
    if state is not None:
        return state
    fingerprint = (checkpoint.get("hyper_parameters") or {}).get("store_fingerprint") or {}
    modalities = list(fingerprint["modalities"]) if fingerprint.get("modalities") else None
    return {"modalities": modalities, "standardize": None, "missing": None, "feature_stats": None, "cv": None}


def _refuse_contradictions(current: dict[str, Any], saved: dict[str, Any], how: str, advice: str) -> None:
    """ValueError naming both values where ``current`` and a checkpoint's ``saved`` settings both say and differ."""
    problems = []
    for key, same in (("standardize", lambda a, b: bool(a) == bool(b)), ("modalities", lambda a, b: set(a) == set(b))):
        mine, theirs = current[key], saved[key]
        if None not in (mine, theirs) and not same(mine, theirs):
            problems.append(f"data.{key}={_yaml(theirs)}, {how} data.{key}={_yaml(mine)}")
    if problems:
        raise ValueError(f"the checkpoint was trained with {'; with '.join(problems)}: {advice}")


def brand_folds(brands: Tensor, category: Tensor, folds: int, seed: int) -> list[Tensor]:
    """Deal ``brands`` (account rows) into ``folds`` brand-disjoint folds, stratified by category.

    Each category (unknown, ``-1``, is one stratum) is shuffled, the categories are taken in a
    shuffled order, and the brands of that sequence are dealt to folds 0, 1, ..., folds - 1, 0, ...
    in turn: every fold gets ``floor`` or ``ceil`` of ``n_c / folds`` brands of each category ``c``,
    and the folds' sizes differ by at most one. Deterministic for ``seed`` (a numpy generator) and
    independent of the order ``brands`` are given in. Returns ``folds`` sorted tensors of rows.
    """
    _check_cv(0, folds)
    rows = np.unique(brands.numpy())
    if len(rows) < folds:
        raise ValueError(f"{len(rows)} brands cannot fill {folds} folds")
    rng = np.random.default_rng(seed)
    cats = category[torch.from_numpy(rows)].numpy()
    strata = np.unique(cats)
    sequence = [rows[cats == c][rng.permutation(int((cats == c).sum()))] for c in strata[rng.permutation(len(strata))]]
    dealt = np.concatenate(sequence)
    fold_of = np.arange(len(dealt)) % folds
    return [torch.tensor(np.sort(dealt[fold_of == k]), dtype=torch.long) for k in range(folds)]


def _check_cv(fold: int | None, folds: int) -> None:
    if isinstance(folds, bool) or int(folds) != folds or folds < 2:
        raise ValueError(f"data.cv_folds must be an integer of at least 2, got {folds!r}")
    if fold is not None and (isinstance(fold, bool) or int(fold) != fold or not 0 <= fold < folds):
        raise ValueError(f"data.cv_fold must be null or an integer in [0, {folds - 1}] (data.cv_folds={folds}), "
                         f"got {fold!r}")


def _refuse_cv_contradiction(current: dict[str, Any] | None, saved: dict[str, Any] | None, how: str,
                             advice: str) -> None:
    """ValueError naming both folds where the served fold (or none) and a checkpoint's differ.

    A checkpoint that records no fold was trained on the split's training brands as a whole,
    which include every fold's brands: serving it a fold would report brands it trained on."""
    def describe(state):
        if state is None:
            return "data.cv_fold=null (no cross-validation: every training brand trained on)"
        return f"data.cv_fold={state['fold']} data.cv_folds={state['folds']} data.cv_seed={state['seed']}"

    key = lambda state: None if state is None else (int(state["fold"]), int(state["folds"]), int(state["seed"]))
    if key(current) != key(saved):
        raise ValueError(f"the checkpoint was trained with {describe(saved)}, {how} {describe(current)}: {advice}")
    if current is not None and saved is not None and current.get("brands") and saved.get("brands") \
            and sorted(current["brands"]) != sorted(saved["brands"]):
        raise ValueError(f"the checkpoint's fold {saved['fold']} held out other brands than this run's: {advice}")


def _yaml(value: Any) -> str:
    """A setting as written on the command line: ``true``, ``[topic,concept]``."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return "[" + ",".join(sorted(value)) + "]"
    return str(value)


def _same_on_every_rank(value: str, what: str) -> None:
    """Under ``torch.distributed``, raise on every rank unless all ranks hold the same ``value``.

    The processes of a multi-node run each read the store from their own node's view of the
    shared folder; a stale copy on one node would otherwise train silently on other features.
    """
    dist = torch.distributed
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return
    values: list[str | None] = [None] * dist.get_world_size()
    dist.all_gather_object(values, value)
    differing = [rank for rank, v in enumerate(values) if v != values[0]]
    if differing:
        raise RuntimeError(f"{what} differs between ranks: ranks {differing} do not hold what rank 0 holds; "
                           "every node must see the same feature store (a shared folder)")
