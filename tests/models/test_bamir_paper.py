"""model=bamir_paper is the public BAMIR code, point by point (docs/method.md sections 8-10).

Each test names one point of the public code and fails when bamir_paper stops doing it: the
published layer shapes and parameter count, dropout behind the first layer of the topic and image
encoders only, L1 over weight matrices only, the cross-entropy averaged over the batch (hinges
summed), N(0, 0.1) initialisation, distinct random negatives, and the final epoch reported when
there is no validation split.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import open_dict
from torch import nn

from bamir.samplers import TrainingData
from bamir.train import evaluate, train
from tests.helpers.compose import compose_config

# the release's input sizes: LDA topics, ResNet-101 objects (1000) + UperNet scenes (365), node2vec concepts
PUBLISHED_DIMS = {"topic": 19, "object": 1000, "scene": 365, "concept": 128}
PUBLISHED_SHAPES = {  # (in, out) of each Linear layer, in order
    ("content", "topic"): [(19, 128), (128, 512)],
    ("content", "image"): [(1365, 1024), (1024, 1024), (1024, 1024), (1024, 512)],
    ("concept", "concept"): [(128, 1024), (1024, 512)],
}
# topic:   19*128+128 + 128*512+512                                   =    68,608
# image:   1365*1024+1024 + 2*(1024*1024+1024) + 1024*512+512           = 4,022,784
# concept: 128*1024+1024 + 1024*512+512                                 =   656,896
PUBLISHED_PARAMETERS = 4_748_288


@pytest.fixture(scope="module")
def paper_cfg(tmp_path_factory):
    return compose_config("train", tmp_path_factory.mktemp("paper"), ["model=bamir_paper"], fast=False)


def _model(cfg, dims=PUBLISHED_DIMS, seed=0):
    torch.manual_seed(seed)
    return instantiate(cfg.model, input_dims=dims)


def _linears(encoder: nn.Module) -> list[nn.Linear]:
    return [m for m in encoder if isinstance(m, nn.Linear)]


def test_published_layer_shapes_and_parameter_count(paper_cfg):
    model = _model(paper_cfg)
    for (branch, name), shapes in PUBLISHED_SHAPES.items():
        encoder = model.encoders[branch][name]
        assert [(m.in_features, m.out_features) for m in _linears(encoder)] == shapes, (branch, name)
        assert all(m.negative_slope == 0.01 for m in encoder if isinstance(m, nn.LeakyReLU))
    assert sum(p.numel() for p in model.parameters()) == PUBLISHED_PARAMETERS
    assert model.fusion == {"content": "product", "concept": "product"}
    assert model.margins == {"content": 4.0, "concept": 2.0}


def test_dropout_after_the_first_layer_of_topic_and_image_only(paper_cfg):
    model = _model(paper_cfg)
    kinds = {name: [type(m).__name__ for m in model.encoders[branch][name]] for branch, name in PUBLISHED_SHAPES}
    assert kinds["topic"] == ["Linear", "LeakyReLU", "Dropout", "Linear"]
    assert kinds["image"] == ["Linear", "LeakyReLU", "Dropout", "Linear", "LeakyReLU", "Linear", "LeakyReLU",
                              "Linear"]
    assert kinds["concept"] == ["Linear", "LeakyReLU", "Linear"]
    rates = {m.p for m in model.modules() if isinstance(m, nn.Dropout)}
    assert rates == {0.5}
    # the earlier reading keeps dropout behind every hidden layer of every encoder
    variant = compose_config("train", Path(paper_cfg.paths.root_dir), ["model=bamir_paper_variant"], fast=False)
    old = _model(variant, dims={"topic": 19, "object": 10, "scene": 5, "concept": 8})
    assert [type(m).__name__ for m in old.encoders["concept"]["concept"]] == ["Linear", "LeakyReLU", "Dropout", "Linear"]
    assert sum(isinstance(m, nn.Dropout) for m in old.encoders["content"]["image"]) == 3


SMALL_DIMS = {"topic": 19, "object": 10, "scene": 5, "concept": 8}


def _attached(cfg, n=12, scale=0.01):
    model = _model(cfg, dims=SMALL_DIMS)
    g = torch.Generator().manual_seed(1)
    model.attach_features({k: scale * torch.randn(n, d, generator=g) for k, d in SMALL_DIMS.items()})
    return model.eval().requires_grad_(False)  # no dropout: the loss is a function of the rows


def test_l1_covers_weight_matrices_not_biases(paper_cfg):
    model = _attached(paper_cfg)
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    weights = sum(m.weight.double().abs().sum().item() for m in linears)  # by hand, in float64
    biases = sum(m.bias.double().abs().sum().item() for m in linears)
    l1 = model.loss(torch.tensor([[0, 1, 2]]))["l1"].item()
    tolerance = 1e-4  # float32 sums over 1.2M weights
    assert l1 == pytest.approx(0.001 * weights, rel=tolerance)
    assert 0.001 * biases > 10 * tolerance * l1, "including the biases would break the check above"


def test_cross_entropy_is_a_batch_mean_and_hinges_are_sums(paper_cfg):
    model = _attached(paper_cfg)
    rows = torch.tensor([[0, 3, 4], [1, 5, 6], [2, 7, 8], [0, 9, 10]])
    terms = {k: v.item() for k, v in model.loss(rows).items()}
    s = model.row_scores(rows)
    total = s["content"] + s["concept"]
    # the public code: -mean(log(softmax([s_pos, s_neg])[:, 0] + 1e-16))
    ce_rows = -torch.log(torch.softmax(total, dim=1)[:, 0] + 1e-16)
    assert ce_rows.min() > 0.1, "the rows' cross-entropies are not saturated: a sum and a mean differ"
    assert terms["cross_entropy"] == pytest.approx(ce_rows.mean().item(), rel=1e-5)
    hinge = torch.relu(4 - s["content"][:, 0] + s["content"][:, 1]).sum()
    assert terms["hinge_content"] == pytest.approx(hinge.item(), rel=1e-5)
    assert terms["hinge_concept"] == pytest.approx(torch.relu(2 - s["concept"][:, 0] + s["concept"][:, 1]).sum().item(),
                                                   rel=1e-5)
    # a batch of 32 copies of a row: the hinges grow 32 times, the cross-entropy not at all
    one, many = model.loss(rows[:1]), model.loss(rows[:1].repeat(32, 1))
    assert many["cross_entropy"].item() == pytest.approx(one["cross_entropy"].item(), rel=1e-5)
    assert many["hinge_content"].item() == pytest.approx(32 * one["hinge_content"].item(), rel=1e-5)
    assert terms["loss"] == pytest.approx(sum(terms[k] for k in terms if k != "loss"), rel=1e-6)


def test_weights_and_biases_start_from_normal_std_0_1(paper_cfg):
    model = _model(paper_cfg)
    first = _linears(model.encoders["content"]["image"])[0]  # 1365 x 1024 = 1.4M weights
    assert first.weight.std().item() == pytest.approx(0.1, abs=0.001)
    assert abs(first.weight.mean().item()) < 0.001
    assert first.bias.std().item() == pytest.approx(0.1, abs=0.01)  # 1,024 draws
    # PyTorch's default would be U(+-1/sqrt(1365)): std 0.016
    for layer in (m for m in model.modules() if isinstance(m, nn.Linear)):
        assert layer.weight.std().item() == pytest.approx(0.1, rel=0.1)


def test_random_negatives_are_distinct_within_each_positive(paper_cfg, tmp_path):
    # one brand of each of 2 categories; 3 positives each, 4 non-positives: 3 of 4 drawn, duplicates likely
    brands = torch.tensor([0, 0, 0, 1, 1, 1])
    positives = torch.tensor([2, 3, 4, 5, 6, 7])
    data = TrainingData(brands=brands, positives=positives, pool=torch.arange(2, 9), num_accounts=9,
                        category=torch.tensor([0, 1] + [-1] * 7), triplet_sets={})
    sampler = instantiate(paper_cfg.sampler)
    rows = sampler.sample(data, torch.Generator().manual_seed(0))
    assert rows.shape == (6 * 4 * 5, 3), "3 random + 1 same-category negatives per positive, each a triplet, x5"
    random_negatives = rows.view(-1, 4, 3)[:, :3, 2]  # per positive: the 3 random ones first, as published
    assert all(len(set(r.tolist())) == 3 for r in random_negatives)
    # the with-replacement sampler (sampler=bamir_mix) repeats some: the check above can fail
    mixed = compose_config("train", tmp_path, ["sampler=bamir_mix"], fast=False)
    again = instantiate(mixed.sampler).sample(data, torch.Generator().manual_seed(0)).view(-1, 4, 3)[:, :3, 2]
    assert any(len(set(r.tolist())) < 3 for r in again)


def test_without_validation_the_final_epoch_is_tested_and_named(tmp_path, shared_data, capsys):
    narrow = [f"model.branches.{path}.hidden=[16,16]" for path in
              ("content.encoders.topic", "content.encoders.image", "concept.encoders.concept")]
    cfg = compose_config("train", tmp_path, ["model=bamir_paper", "trainer.max_epochs=3", *narrow])
    with open_dict(cfg):
        cfg.paths.data_dir = str(shared_data)
    assert cfg.data.val_fraction == 0, "model=bamir_paper fits on every training brand"
    metrics = train(cfg)
    run = Path(cfg.paths.output_dir)
    assert metrics["final/epoch"] == 2 and "best/epoch" not in metrics
    assert not any(k.startswith("val/") for k in metrics)
    assert json.loads((run / "metrics.json").read_text())["final/epoch"] == 2
    assert "| test (epoch 2) |" in capsys.readouterr().out
    assert not list((run / "checkpoints").glob("best-*.ckpt")), "no validation metric picks a best checkpoint"
    last = run / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=True, map_location="cpu")["epoch"] == 2
    # the test row is the final epoch's weights: bamir-eval of last.ckpt gives the same numbers
    eval_cfg = compose_config("eval", tmp_path / "eval", [f"ckpt_path={last}"])
    with open_dict(eval_cfg):
        eval_cfg.paths.data_dir = str(shared_data)
    again = evaluate(eval_cfg)
    for key in ("test/auc_global", "test/mrr", "test/map"):
        assert again[key] == pytest.approx(metrics[key], abs=1e-6)
