"""What every ranker shares: features as buffers, matrix scoring, evaluation, optimisation."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Callable

import lightning as L
import torch
from torch import Tensor

from bamir.metric_names import NDCG_K, RECALL_K
from bamir.metrics import RankingMetrics


class RankingModule(L.LightningModule):
    """Base class of all rankers (learned or not).

    The contract every app relies on (training, evaluation, ranking, cold start, the benchmark):

    - :meth:`branch_scores` ``(brands [B], candidates [C]) -> {branch: [B, C]}``, the score of every
      brand against every candidate split by branch (the total is their sum; the split is what
      the ranking app shows as each branch's contribution). Every ranker implements it.
    - :meth:`branch_embeddings` ``(rows [n], side) -> {branch: [n, d]}`` when the branch scores
      factorise as inner products of a brand-side and a candidate-side embedding; the ranking app
      then precomputes the candidates once and searches by matrix products (else it scores block by
      block through :meth:`branch_scores`).
    - :attr:`modalities`: the attached modalities it reads (what cold start encodes for a new account).
    - :meth:`attach_data`: what an unlearned ranker takes from the training data (popularity's degrees).
    - Learned rankers implement :meth:`loss` (``{"loss": total, term: value...}`` of a batch of
      training rows); the training step, its logging and the L1 penalty (:meth:`l1_penalty`) are shared.

    The feature matrices are attached once with :meth:`attach_features` as non-persistent
    buffers: they move with the module to the accelerator and stay out of checkpoints.

    Args:
        optimizer: a partial of a ``torch.optim`` class (``_partial_: true`` in config); None for unlearned models.
        scheduler: a partial of a ``torch.optim.lr_scheduler`` class, stepped once per epoch.
        seed: base seed; the global RNG is reseeded from ``(seed, epoch)`` at each epoch start so that
            dropout is the same whether a run was interrupted and resumed or not.
    """

    #: The modalities the ranker's config names, served by the store or not; the training app refuses
    #: to run when one is neither served nor left out by the data config (a part of the model would vanish).
    requested_modalities: tuple[str, ...] = ()

    def __init__(self, optimizer: Callable | None = None, scheduler: Callable | None = None, seed: int = 24):
        super().__init__()
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.seed = seed
        self.feature_names: list[str] = []
        self.use_cutoffs()

    def use_cutoffs(self, recall_k: Sequence[int] = RECALL_K, ndcg_k: Sequence[int] = NDCG_K) -> None:
        """Evaluate ``recall@k`` and ``ndcg@k`` at these cut-offs (``conf/metrics``)."""
        self.val_metrics = RankingMetrics(ks=recall_k, ndcg_ks=ndcg_k)
        self.test_metrics = RankingMetrics(ks=recall_k, ndcg_ks=ndcg_k)

    # ------------------------------------------------------------------ features
    def attach_features(self, features: dict[str, Tensor]) -> None:
        """Keep the store's matrices ``{modality: [N, dim]}`` as buffers (not saved in checkpoints)."""
        device = next((b.device for b in self.buffers()), None) or next(
            (p.device for p in self.parameters()), torch.device("cpu")
        )
        for name, matrix in features.items():
            self.register_buffer(f"features_{name}", matrix.to(device), persistent=False)
        self.feature_names = sorted(set(self.feature_names) | set(features))

    def feature_matrices(self) -> dict[str, Tensor]:
        """The attached ``{modality: [N, dim]}``."""
        return {name: getattr(self, f"features_{name}") for name in self.feature_names}

    def features(self, name: str, rows: Tensor) -> Tensor:
        """Rows of one modality: ``rows [*] -> [*, dim]``."""
        try:
            matrix = getattr(self, f"features_{name}")
        except AttributeError:
            raise RuntimeError(f"modality {name!r} was not attached; attached: {self.feature_names}") from None
        return matrix[rows]

    @property
    def modalities(self) -> list[str]:
        """The attached modalities this ranker reads (default: every attached one)."""
        return sorted(self.feature_names)

    def attach_data(self, datamodule) -> None:
        """Take what the ranker reads from a set-up :class:`~bamir.datamodule.RankingDataModule` besides the
        feature matrices (its store, its training pairs); nothing by default. Called under a Trainer
        (:meth:`setup`) and when a checkpoint is loaded (:func:`bamir.checkpoints.load_checkpoint`)."""

    def setup(self, stage: str | None = None) -> None:
        datamodule = getattr(self._trainer, "datamodule", None) if self._trainer is not None else None
        if datamodule is not None:
            self.attach_data(datamodule)

    # ------------------------------------------------------------------ scoring
    def branch_scores(self, brands: Tensor, candidates: Tensor) -> dict[str, Tensor]:
        """``{branch: [B, C]}`` scores of brands ``[B]`` against candidates ``[C]`` (account rows)."""
        raise NotImplementedError

    def branch_embeddings(self, rows: Tensor, side: str) -> dict[str, Tensor] | None:
        """``{branch: [n, d]}`` embeddings of account ``rows [n]`` on ``side`` (``"brand"`` or ``"candidate"``)
        such that ``branch_scores(b, c)[k] = E_k(b, "brand") @ E_k(c, "candidate").T``; None when the
        scores do not factorise so (the default)."""
        return None

    @torch.no_grad()
    def score_matrix(self, brands: Tensor, candidates: Tensor) -> Tensor:
        """``[B, C]`` total score: the sum of the branch scores."""
        return torch.stack(list(self.branch_scores(brands, candidates).values())).sum(0)

    # ------------------------------------------------------------------ evaluation
    def _eval_step(self, batch: dict[str, Tensor], metrics: RankingMetrics) -> None:
        scores = self.score_matrix(batch["brands"], batch["candidates"])
        metrics.update(scores.float(), batch["labels"], batch.get("hard_negatives"))

    def _eval_epoch_end(self, metrics: RankingMetrics, prefix: str) -> dict[str, Tensor]:
        values = {f"{prefix}/{k}": v.float() for k, v in metrics.compute().items()}
        self.log_dict(values, sync_dist=False)
        metrics.reset()
        return values

    def validation_step(self, batch, batch_idx):
        self._eval_step(batch, self.val_metrics)

    def on_validation_epoch_end(self):
        self._eval_epoch_end(self.val_metrics, "val")

    def test_step(self, batch, batch_idx):
        self._eval_step(batch, self.test_metrics)

    def on_test_epoch_end(self):
        self._eval_epoch_end(self.test_metrics, "test")

    # ------------------------------------------------------------------ training
    def loss(self, rows: Tensor) -> dict[str, Tensor]:
        """``{"loss": total, <term>: value...}`` of training rows ``(brand, positive, negatives...) [B, 1 + n]``."""
        raise NotImplementedError(f"{type(self).__name__} has nothing to train")

    def training_step(self, batch: Tensor, batch_idx: int) -> Tensor:
        """:meth:`loss` of a batch; ``train/loss`` per epoch, each term every ``log_every_n_steps`` steps
        (logging costs per call)."""
        terms = self.loss(batch)
        self.log("train/loss", terms["loss"], on_step=False, on_epoch=True, batch_size=len(batch))
        if batch_idx % self.trainer.log_every_n_steps == 0:
            self.log_dict({f"train/{k}": v.detach() for k, v in terms.items() if k != "loss"}, on_step=True,
                          on_epoch=False, batch_size=len(batch))
        return terms["loss"]

    def l1_penalty(self, on: str = "all") -> Tensor:
        """``sum |theta|`` over ``"all"`` parameters or the Linear layers' ``"weights"`` (matrices) only."""
        params = list(self.parameters()) if on == "all" else \
            [m.weight for m in self.modules() if isinstance(m, torch.nn.Linear)]
        return torch.stack(torch._foreach_norm(params, 1)).sum()

    def on_train_epoch_start(self) -> None:
        torch.manual_seed(self.seed * 7919 + self.current_epoch)

    def configure_optimizers(self) -> Any:
        if self.optimizer_factory is None:
            return None
        optimizer = self.optimizer_factory(params=self.parameters())
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.scheduler_factory(optimizer=optimizer)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["bamir_model"] = f"{type(self).__module__}.{type(self).__qualname__}"
