"""The concept modality stage: BAMIR's account position in a concept graph.

Implements the :class:`bamir.features.base.Stage` protocol for the modality ``concept``,
following the published concept pipeline (``docs/method.md`` section 7; BAMIR,
"Brand-Aware Micro-Influencer Ranking", 2023, public code
github.com/iristronggg/Brand-Aware-Micro-Influencer-Ranking; node2vec: Grover & Leskovec,
KDD 2016):

1. the concept set ``C`` (``knowledge/concepts.csv``);
2. biography and business-category words to concepts through ConceptNet
   (:mod:`.conceptnet`, :class:`.linking.ConceptLexicon`);
3. hashtags from captions, like/follow spam removed (:mod:`bamir.features.hashtags`; the
   frequency rule is fitted on training accounts);
4. related hashtags per concept, from ``knowledge/related_hashtags.csv`` or learned from
   the training posts' hashtag co-occurrence; account-concept weights ``W`` from the three
   sources (:func:`.linking.account_concept_weights`);
5. the concept co-occurrence graph through hashtags and mentions of **training accounts
   only**, edge weight ``sqrt(cooccurrence / 2)`` (:mod:`.graph`);
6. node2vec on that graph (:mod:`.node2vec`) gives concept embeddings ``E`` [C, dim]; the
   account's concept vector is the weighted mean

       f(a) = sum_c W(a, c) e_c / sum_c W(a, c)

   (``e_c`` L2-normalised first when ``normalise_embeddings``). An account with no
   concept gets the zero vector (or, with ``missing="mean"``, the mean concept vector),
   ``present = False`` and is counted under ``no_concept``.

Everything fitted (spam list, related hashtags, lexicon, graph, embeddings) is saved under
``workdir/concept`` so new accounts can be encoded later without refitting
(:meth:`FittedConcepts.load`, :meth:`FittedConcepts.encode`).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import pandas as pd
import torch
from safetensors.torch import load_file, save_file

from bamir.data.schema import CONCEPTNET_FILES, CONCEPTS_FILE, KNOWLEDGE_DIR, RELATED_HASHTAGS_FILE, RawDataset
from bamir.features.base import StageOutput
from bamir.features.common import frame_hash, resolve_device
from bamir.features.concept.conceptnet import ConceptNetIndex, check_path, fingerprint
from bamir.features.concept.graph import (
    ConceptGraph,
    build_graph,
    hashtag_cooccurrence,
    mention_cooccurrence,
)
from bamir.features.concept.linking import (
    ConceptLexicon,
    LinkResult,
    account_concept_weights,
    learn_related_hashtags,
    load_concepts,
    load_related_hashtags,
    related_matrix,
)
from bamir.features.concept.node2vec import CSRGraph, train_node2vec
from bamir.features.hashtags import HashtagFilter, count_hashtags, parse_captions
from bamir.features.settings import ConceptSettings
from bamir.utils import atomic_write_json, stable_hash

log = logging.getLogger(__name__)

CONFIG_PREFIX = "features.concept"


def _plain(value: Any) -> Any:
    """OmegaConf containers (Hydra) and tuples to plain lists/dicts."""
    try:
        from omegaconf import DictConfig, ListConfig, OmegaConf

        if isinstance(value, (DictConfig, ListConfig)):
            return OmegaConf.to_container(value, resolve=True)
    except ImportError:  # pragma: no cover
        pass
    if isinstance(value, tuple):
        return list(value)
    return value


def _frame_hash(frame: pd.DataFrame, columns: Sequence[str]) -> str:
    return frame_hash(frame, [c for c in columns if c in frame.columns])


@dataclass
class FittedConcepts:
    """Everything the concept stage fits on the training split; encodes any account."""

    concepts: list[str]
    lexicon: ConceptLexicon
    related: dict[str, dict[str, float]]
    spam: HashtagFilter
    graph: ConceptGraph
    embedding: torch.Tensor | None = None  # float32 [C, dim]
    source_weights: dict[str, float] = field(default_factory=dict)
    normalise_sources: bool = True
    normalise_embeddings: bool = True
    missing: str = "zero"
    related_source: str = "table"
    timings: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    def weights(self, accounts: pd.DataFrame, parsed: pd.DataFrame) -> LinkResult:
        """``W`` [len(accounts), C] from the accounts' profiles and their posts' parsed captions."""
        ids = accounts["account_id"].astype(str).tolist()
        mine = parsed[parsed["account_id"].isin(set(ids))]
        counts, _ = self.spam.filter_counts(count_hashtags(mine, ids))
        return account_concept_weights(
            accounts, counts, self.lexicon, self.related, self.source_weights, self.normalise_sources
        )

    def concept_vectors(self) -> torch.Tensor:
        if self.embedding is None:
            raise RuntimeError("concept embeddings not trained (fit with embed=True)")
        emb = self.embedding.float()
        if self.normalise_embeddings:
            emb = torch.nn.functional.normalize(emb, dim=1)
        return emb

    def encode(self, accounts: pd.DataFrame, parsed: pd.DataFrame) -> tuple[torch.Tensor, torch.Tensor, LinkResult]:
        """Concept vectors [N, dim] and ``present`` [N] for the rows of ``accounts``."""
        link = self.weights(accounts, parsed)
        emb = self.concept_vectors()
        w = link.weights.double()
        total = w.sum(1, keepdim=True)
        present = total.squeeze(1) > 0
        features = (w @ emb.double()) / total.clamp(min=1e-12)
        if self.missing == "mean":
            features[~present] = emb.double().mean(0)
        else:
            features[~present] = 0.0
        return features.float(), present, link

    # ------------------------------------------------------------------ persistence
    def save(self, folder: str | Path) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        tensors = {"edge_index": self.graph.edge_index.contiguous(), "edge_weight": self.graph.edge_weight.contiguous()}
        if self.embedding is not None:
            tensors["embedding"] = self.embedding.contiguous()
        save_file(tensors, str(folder / "concept_graph.safetensors"))
        atomic_write_json(
            folder / "fitted.json",
            {
                "concepts": self.concepts,
                "lexicon": self.lexicon.entries,
                "related": self.related,
                "related_source": self.related_source,
                "spam": self.spam.state(),
                "source_weights": self.source_weights,
                "normalise_sources": self.normalise_sources,
                "normalise_embeddings": self.normalise_embeddings,
                "missing": self.missing,
                "graph_counts": self.graph.counts,
                "timings": self.timings,
                "counts": self.counts,
            },
        )

    @classmethod
    def load(cls, folder: str | Path) -> "FittedConcepts":
        folder = Path(folder)
        state = json.loads((folder / "fitted.json").read_text())
        tensors = load_file(str(folder / "concept_graph.safetensors"))
        concepts = list(state["concepts"])
        graph = ConceptGraph(concepts, tensors["edge_index"], tensors["edge_weight"], dict(state["graph_counts"]))
        return cls(
            concepts=concepts,
            lexicon=ConceptLexicon(concepts, {k: dict(v) for k, v in state["lexicon"].items()}),
            related={k: dict(v) for k, v in state["related"].items()},
            spam=HashtagFilter.from_state(state["spam"]),
            graph=graph,
            embedding=tensors.get("embedding"),
            source_weights=dict(state["source_weights"]),
            normalise_sources=bool(state["normalise_sources"]),
            normalise_embeddings=bool(state["normalise_embeddings"]),
            missing=str(state["missing"]),
            related_source=str(state.get("related_source", "table")),
            timings=dict(state.get("timings", {})),
            counts=dict(state.get("counts", {})),
        )


class ConceptStage:
    """Feature stage for the ``concept`` modality (see the module docstring); keyword arguments
    are :class:`~bamir.features.settings.ConceptSettings` (Hydra passes them from ``conf/features/concept``)."""

    modalities: tuple[str, ...] = ("concept",)

    def __init__(self, **settings: Any):
        self.settings = ConceptSettings(**{k: _plain(v) for k, v in settings.items()})
        self.last_fit: FittedConcepts | None = None

    # ------------------------------------------------------------------ Stage protocol
    def config(self) -> dict[str, Any]:
        return self.settings.result()

    def knowledge_paths(self, raw: RawDataset) -> dict[str, Path | None]:
        """Resolved knowledge files: configured paths, else the raw dataset's ``knowledge/``."""
        s, folder = self.settings, Path(raw.root) / KNOWLEDGE_DIR
        conceptnet = Path(s.conceptnet_path) if s.conceptnet_path else None
        if conceptnet is None:
            conceptnet = next((folder / n for n in CONCEPTNET_FILES if (folder / n).is_file()), folder / CONCEPTNET_FILES[0])
        concepts = Path(s.concepts_path) if s.concepts_path else folder / CONCEPTS_FILE
        related = Path(s.related_hashtags_path) if s.related_hashtags_path else folder / RELATED_HASHTAGS_FILE
        return {"conceptnet": conceptnet if s.use_conceptnet else None, "concepts": concepts, "related": related}

    def inputs_hash(self, raw: RawDataset) -> str:
        paths = self.knowledge_paths(raw)
        files = {}
        for name, path in paths.items():
            if name == "related" and self.settings.related_source == "learn":
                continue
            files[name] = fingerprint(path) if path is not None and path.is_file() else None
        return stable_hash(
            {
                "accounts": _frame_hash(raw.accounts, ["account_id", "username", "kind", "biography", "business_category"]),
                "posts": _frame_hash(raw.posts, ["account_id", "caption"]),
                "knowledge": files,
            }
        )

    @classmethod
    def encode_new(cls, store, raw: RawDataset, accounts: list[str], workdir: Path, config: dict[str, Any],
                   device: str = "cpu") -> StageOutput:
        """The saved lexicon, related hashtags, spam list and node2vec concept embeddings on the new
        accounts' biographies, categories and hashtags (:meth:`FittedConcepts.encode`)."""
        fitted = FittedConcepts.load(Path(workdir) / "concept")
        columns = [c for c in ("username", "kind", "biography", "business_category") if c in raw.accounts.columns]
        frame = raw.accounts.drop_duplicates("account_id").set_index(
            raw.accounts["account_id"].astype(str).rename("account_id"))
        frame = frame[columns].reindex(accounts).astype(object).fillna("").rename_axis("account_id").reset_index()
        features, present, _ = fitted.encode(frame, parse_captions(raw.posts))
        return StageOutput(features, present)

    def run(
        self, raw: RawDataset, accounts: list[str], train_accounts: set[str], workdir: Path
    ) -> dict[str, StageOutput]:
        parsed = parse_captions(raw.posts)
        fitted = self.fit(raw, train_accounts, parsed=parsed)
        t0 = time.perf_counter()
        columns = [c for c in ("username", "kind", "biography", "business_category") if c in raw.accounts.columns]
        table = raw.accounts.drop_duplicates("account_id").set_index("account_id")[columns]
        frame = table.reindex([str(a) for a in accounts])
        unknown = int((~frame.index.isin(table.index)).sum())
        frame = frame.astype(object).fillna("").rename_axis("account_id").reset_index()
        features, present, link = fitted.encode(frame, parsed)
        fitted.timings["encode"] = time.perf_counter() - t0
        if workdir is not None:
            fitted.save(Path(workdir) / "concept")
        linked = link.linked()
        no_concept = int((~present).sum())
        counts = {
            "accounts": len(accounts),
            "with_concept": int(present.sum()),
            "no_concept": no_concept,
            "linked_biography": linked["biography"],
            "linked_business_category": linked["business_category"],
            "linked_hashtags": linked["hashtags"],
            **fitted.counts,
        }
        skipped = {"no_concept": no_concept}
        if unknown:
            skipped["not_in_accounts_table"] = unknown
        timing = ", ".join(f"{k} {v:.2f}s" for k, v in fitted.timings.items())
        note = (
            f"{len(fitted.concepts)} concepts, graph {fitted.graph.num_edges} edges "
            f"({fitted.graph.counts.get('isolated_concepts', 0)} isolated), related hashtags: "
            f"{fitted.related_source}; no-concept accounts get the {fitted.missing} vector; timings: {timing}"
        )
        return {"concept": StageOutput(features=features, present=present, counts=counts, skipped=skipped, note=note)}

    # ------------------------------------------------------------------ fitting
    def fit(
        self,
        raw: RawDataset,
        train_accounts: Iterable[str],
        parsed: pd.DataFrame | None = None,
        embed: bool = True,
    ) -> FittedConcepts:
        """Fit spam filter, related hashtags, graph and (``embed``) node2vec on ``train_accounts``."""
        s = self.settings
        timings: dict[str, float] = {}
        train = {str(a) for a in train_accounts}
        paths = self.knowledge_paths(raw)

        t0 = time.perf_counter()
        if not paths["concepts"].is_file():
            raise FileNotFoundError(
                f"concept set not found: {paths['concepts']}. Set `{CONFIG_PREFIX}.concepts_path` to a CSV "
                f"with a 'concept' column or put one at <dataset>/{KNOWLEDGE_DIR}/{CONCEPTS_FILE}."
            )
        concepts = load_concepts(paths["concepts"])
        conceptnet = None
        if s.use_conceptnet:
            check_path(paths["conceptnet"], hint=f"put one at <dataset>/{KNOWLEDGE_DIR}/{CONCEPTNET_FILES[0]}[.gz]")
            conceptnet = ConceptNetIndex.load(
                paths["conceptnet"], s.relations, s.languages, cache_dir=s.cache_dir
            )
        lexicon = ConceptLexicon.build(concepts, conceptnet, s.edge_factor)
        timings["knowledge"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        if parsed is None:
            parsed = parse_captions(raw.posts)
        train_posts = parsed[parsed["account_id"].isin(train)]
        train_counts = count_hashtags(train_posts, sorted(train))
        spam = HashtagFilter(
            max_account_share=s.spam_max_share, min_accounts=s.spam_min_accounts, extra=frozenset(s.extra_spam)
        ).fit(train_counts)
        train_counts, dropped = spam.filter_counts(train_counts)
        post_tags = [spam.filter_tags(tags) for tags in train_posts["hashtags"]]
        timings["hashtags"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        use_table = s.related_source == "table" or (s.related_source == "auto" and paths["related"].is_file())
        if use_table:
            if not paths["related"].is_file():
                raise FileNotFoundError(
                    f"related hashtags table not found: {paths['related']}. Set "
                    f"`{CONFIG_PREFIX}.related_hashtags_path`, or `{CONFIG_PREFIX}.related_source=learn`."
                )
            related = load_related_hashtags(paths["related"], concepts)
        table = raw.accounts.drop_duplicates("account_id")
        train_frame = table[table["account_id"].astype(str).isin(train)].reset_index(drop=True)
        if not use_table:
            profile = account_concept_weights(train_frame, {}, lexicon, {}, {"hashtags": 0.0}, s.normalise_sources)
            related = learn_related_hashtags(
                post_tags, lexicon,
                account_tags=[list(train_counts.get(a, ())) for a in train_frame["account_id"].astype(str)],
                account_concepts=(profile.sources["biography"] + profile.sources["business_category"]).numpy(),
                top_k=s.related_top_k, min_count=s.related_min_count, min_npmi=s.related_min_npmi,
            )
        link = account_concept_weights(
            train_frame, train_counts, lexicon, related, s.source_weights, s.normalise_sources
        )
        timings["linking"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        vocab, rel = related_matrix(related, concepts)
        if s.hashtag_unit == "post":
            units: Iterable[Iterable[str]] = post_tags
        else:
            units = [list(c) for c in train_counts.values()]
        h = hashtag_cooccurrence(units, vocab, rel)
        usernames = {str(u).casefold(): str(a) for a, u in zip(table["account_id"], table["username"]) if str(a) in train}
        mentions = [
            (a, usernames[m])
            for a, names in zip(train_posts["account_id"], train_posts["mentions"])
            for m in names
            if m in usernames
        ]
        kinds = dict(zip(train_frame["account_id"].astype(str), train_frame["kind"].astype(str)))
        row_of = {a: i for i, a in enumerate(train_frame["account_id"].astype(str))}
        m = mention_cooccurrence(mentions, link.weights, row_of, kinds, s.mention_kinds, s.mention_top_k)
        graph = build_graph(concepts, h, m, s.hashtag_threshold, s.mention_threshold)
        timings["graph"] = time.perf_counter() - t0

        counts = {
            "concepts": len(concepts),
            "conceptnet_edges": 0 if conceptnet is None else conceptnet.num_edges,
            "lexicon_terms": len(lexicon.entries),
            "train_accounts": len(train_frame),
            "spam_tags": len(dropped),
            "frequent_tags": len(spam.frequent),
            "related_hashtags": sum(len(v) for v in related.values()),
            "concepts_with_related_hashtags": sum(1 for v in related.values() if v),
            "train_mentions": len(mentions),
            "graph_edges": graph.num_edges,
            "graph_hashtag_pairs": graph.counts["hashtag_pairs"],
            "graph_mention_pairs": graph.counts["mention_pairs"],
            "isolated_concepts": graph.counts["isolated_concepts"],
        }
        fitted = FittedConcepts(
            concepts=concepts, lexicon=lexicon, related=related, spam=spam, graph=graph,
            source_weights=dict(s.source_weights), normalise_sources=s.normalise_sources,
            normalise_embeddings=s.normalise_embeddings, missing=s.missing,
            related_source="table" if use_table else "learned", timings=timings, counts=counts,
        )
        if embed:
            t0 = time.perf_counter()
            csr = CSRGraph.from_edge_index(graph.edge_index, graph.edge_weight, num_nodes=len(concepts))
            result = train_node2vec(
                csr, dim=s.dim, walks_per_node=s.walks_per_node, walk_length=s.walk_length,
                window=s.window, p=s.p, q=s.q, epochs=s.epochs, negatives=s.negatives,
                objective=s.objective, steps=s.steps, lr=s.lr, batch_size=s.batch_size,
                seed=s.seed, device=resolve_device(s.device),
            )
            fitted.embedding = result.embedding
            timings["node2vec_walks"] = result.walk_seconds
            timings["node2vec_train"] = result.train_seconds
            timings["node2vec"] = time.perf_counter() - t0
        self.last_fit = fitted
        log.info("concept stage fitted: %s", counts)
        return fitted
