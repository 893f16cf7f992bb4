"""The contract every feature-preparation stage follows.

A stage turns a raw dataset into one or more modality matrices of the feature store. The
pipeline (``bamir.features.pipeline``) calls it only when the store's record of its
modalities is missing or stale (config or inputs hash changed), and writes what it returns.
Anything a stage fits (LDA, TF-IDF, concept embeddings) is fitted on the training split's
accounts only and saved under ``workdir`` so that new accounts can be encoded later
without refitting.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch

from bamir.data.schema import RawDataset


@dataclass
class StageOutput:
    """One modality computed by a stage.

    ``features`` is float [N, dim] in the order of ``accounts`` passed to the stage;
    ``present`` is bool [N] (False where the account has no input for this modality);
    ``counts`` and ``skipped`` ({reason: count}) go into the store's manifest.
    """

    features: torch.Tensor
    present: torch.Tensor | None = None
    counts: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)
    note: str | None = None


class Stage(Protocol):
    """A feature-preparation stage (one modality, or several computed together)."""

    #: the modality names this stage writes
    modalities: tuple[str, ...]

    def config(self) -> dict[str, Any]:
        """The stage's settings as plain data; its hash decides staleness."""

    def inputs_hash(self, raw: RawDataset) -> str:
        """Hash of exactly the raw inputs this stage reads (tables, images, knowledge files)."""

    def run(
        self, raw: RawDataset, accounts: list[str], train_accounts: set[str], workdir: Path
    ) -> dict[str, StageOutput]:
        """Compute every modality of ``self.modalities`` for ``accounts`` (in that order)."""

    @classmethod
    def encode_new(cls, store: Any, raw: RawDataset, accounts: list[str], workdir: Path, config: dict[str, Any],
                   device: str = "cpu") -> StageOutput:
        """Encode accounts the store has never seen (cold start) with what :meth:`run` fitted and saved in
        ``workdir``, never refitting; ``config`` is the store's record of the stage's settings and
        ``store`` the feature store (for stages that resolve new accounts against its accounts).
        Raises :class:`RefitNeeded` when the saved files cannot do it."""


class RefitNeeded(ValueError):
    """A stage's saved files cannot encode new accounts (missing, or written by other code): rerun bamir-prepare."""
