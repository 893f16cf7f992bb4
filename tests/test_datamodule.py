"""Data module: splits, validation carve, evaluation labels, index batches."""

import torch

from bamir.datamodule import RankingDataModule
from bamir.samplers import MixedSampler, UniformSampler


def _dm(store, **kwargs):
    dm = RankingDataModule(str(store.root), sampler=kwargs.pop("sampler", MixedSampler()), **kwargs)
    dm.setup()
    return dm


def test_validation_is_brand_disjoint_and_stratified(planted_store):
    dm = _dm(planted_store, val_fraction=0.34, val_seed=1)
    val = set(dm.val_split.brands.tolist())
    fit = set(dm.train_data.brands.tolist())
    test = set(dm.test_split.brands.tolist())
    assert val and not val & fit and not val & test and not fit & test
    # stratified: one validation brand in every category of the training brands
    assert len(set(dm.category[dm.val_split.brands].tolist())) == len(val)
    again = _dm(planted_store, val_fraction=0.34, val_seed=1)
    assert torch.equal(again.val_split.brands, dm.val_split.brands)
    other = _dm(planted_store, val_fraction=0.34, val_seed=2)
    assert not torch.equal(other.val_split.brands, dm.val_split.brands)


def test_eval_labels_and_hard_negatives(planted_store):
    dm = _dm(planted_store)
    split = dm.test_split
    pairs = planted_store.pairs
    known = set(zip(pairs["brand"], pairs["influencer"]))
    ids = dm.account_ids
    for r, b in enumerate(split.brands.tolist()):
        for c, i in enumerate(split.candidates.tolist()):
            assert bool(split.labels[r, c]) == ((ids[b], ids[i]) in known)
    # candidates are the influencers of the test brands (discover protocol)
    assert set(split.labels.nonzero()[:, 1].tolist()) == set(range(len(split.candidates)))
    # a hard negative: positive of another test brand of the same category, not of this brand
    cat = dm.category[split.brands]
    for r in range(len(split.brands)):
        same = (cat == cat[r]) & (torch.arange(len(cat)) != r)
        expected = split.labels[same].any(0) & ~split.labels[r]
        assert torch.equal(split.hard_negatives[r], expected)


def test_train_batches_are_index_tensors_without_collate(planted_store):
    dm = _dm(planted_store, batch_size=16, sampler=UniformSampler(negatives=3))
    loader = dm.train_dataloader()
    batches = list(loader)
    assert all(b.dtype == torch.long and b.shape[1] == 5 and len(b) <= 16 for b in batches)
    rows = torch.cat(batches)
    assert len(rows) == len(dm.train_data.brands)
    # every training row is one of the fitting brands' positives
    assert torch.isin(rows[:, 0], dm.train_data.brands).all()


def test_epoch_order_is_deterministic_and_changes_per_epoch(planted_store):
    def epoch_rows(epoch):
        dm = _dm(planted_store, batch_size=16, seed=3)
        loader = dm.train_dataloader()
        loader.sampler.set_epoch(epoch)
        return torch.cat(list(loader))

    assert torch.equal(epoch_rows(1), epoch_rows(1))
    assert not torch.equal(epoch_rows(0), epoch_rows(1))


def test_distributed_ranks_share_an_epoch(planted_store):
    dm = _dm(planted_store, batch_size=8)
    from bamir.datamodule import EpochBatchSampler

    shards = [list(EpochBatchSampler(dm._rows, dm.sampler, dm.train_data, 8, seed=1, rank=r, world_size=2))
              for r in (0, 1)]
    assert len(shards[0]) == len(shards[1])
    flat = [set(torch.cat(s).tolist()) for s in shards]
    assert not flat[0] & flat[1]
