"""Ranking every brand against a candidate pool with a trained ranker: top-k and per-branch shares.

A ranker whose branch scores factorise (:meth:`~bamir.models.base.RankingModule.branch_embeddings`)
scores a pair as a sum of per-branch inner products::

    s(b, i) = sum_branch < e_branch(b, brand), e_branch(i, candidate) > = < q(b), k(i) >

with ``q(b)`` and ``k(i)`` the concatenated branch embeddings. So the candidates' embeddings are
computed **once per checkpoint** (:meth:`Ranker.index`, a :class:`CandidateIndex` of ``keys [C, D]``
with each branch's column slice), and ranking is a top-k search (:mod:`bamir.ranking.search`).
Only for the final top-k are the branch contributions computed (a gather and a dot per
branch); a branch's **share** of a score is its contribution over the sum of the absolute
contributions (signed; the absolute shares sum to 1). Rankers whose scores do not factorise
(or whose factorisation fails the check of :func:`branch_embedder`) are ranked through their
``branch_scores`` over blocks of brands and candidates.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import torch
from torch import Tensor

from bamir.ranking.search import METHODS, FaissSearch, auto_candidate_chunk, choose_method, chunked_topk

log = logging.getLogger(__name__)


def branch_embedder(model, check_rows: Tensor | None = None, atol: float = 1e-3) -> Callable[[Tensor, str], dict[str, Tensor]] | None:
    """The ranker's per-branch embedding function ``(rows [n], side) -> {branch: [n, d]}``, or None.

    None when :meth:`~bamir.models.base.RankingModule.branch_embeddings` says the scores do not
    factorise. When ``check_rows`` (a few account rows) is given, the factorisation is verified
    against ``model.branch_scores`` on them (first half as brands, second as candidates); a
    mismatch returns None (the caller then uses ``branch_scores`` directly).
    """
    embed = model.branch_embeddings
    given = check_rows is not None and len(check_rows) > 0
    rows = (check_rows if given else torch.zeros(1, dtype=torch.long)).to(_model_device(model))
    with torch.inference_mode():
        if embed(rows[:1], "candidate") is None:
            return None
        if len(rows) < 2:
            return embed
        a, b = rows[: len(rows) // 2], rows[len(rows) // 2:]
        ea, eb = embed(a, "brand"), embed(b, "candidate")
        if ea is None or eb is None:
            return None
        want = model.branch_scores(a, b)
        if set(want) != set(ea):
            log.warning("branch embeddings %s do not match branch scores %s: ranking through branch_scores",
                        sorted(ea), sorted(want))
            return None
        for name, scores in want.items():
            got = ea[name].float() @ eb[name].float().T
            if not torch.allclose(got, scores.float(), atol=atol, rtol=1e-3):
                log.warning("branch %r does not factorise as an inner product: ranking through branch_scores", name)
                return None
    return embed


def _model_device(model) -> torch.device:
    for t in list(model.buffers()) + list(model.parameters()):
        return t.device
    return torch.device("cpu")


@dataclass
class CandidateIndex:
    """Candidate embeddings precomputed once per checkpoint.

    ``keys [C, D]`` is the concatenation of the branch embeddings; branch ``b`` is
    ``keys[:, slices[b]]``. ``rows [C]`` are the candidates' account rows in the store.
    ``keys`` is None for a model ranked through ``branch_scores`` (nothing to precompute).
    """

    rows: Tensor
    keys: Tensor | None
    slices: dict[str, slice]
    seconds: float = 0.0
    #: where derived search structures (faiss indexes) may be kept, and the key naming this pool
    cache_dir: Path | None = None
    key: str | None = None

    def __len__(self) -> int:
        return len(self.rows)

    def subset(self, positions: Tensor) -> "CandidateIndex":
        """The candidates at ``positions`` (a filter), keeping their embeddings."""
        from bamir.utils import stable_hash

        positions = positions.to(self.rows.device)
        if len(positions) == len(self.rows) and bool((positions.cpu() == torch.arange(len(self.rows))).all()):
            return self
        keys = None if self.keys is None else self.keys[positions.to(self.keys.device)]
        key = None if self.key is None else stable_hash([self.key, stable_hash(positions.tolist())])
        return CandidateIndex(self.rows[positions], keys, dict(self.slices), self.seconds, self.cache_dir, key)

    def low_precision(self, dtype: torch.dtype) -> Tensor:
        """The keys in ``dtype`` (e.g. bf16 for the product), converted once and kept."""
        cached = getattr(self, "_low", None)
        if cached is None or cached.dtype != dtype:
            cached = self.keys.to(dtype)
            self._low = cached
        return cached

    def position_of(self, num_accounts: int) -> Tensor:
        """``[num_accounts]``: each account row's position in this index, -1 when absent."""
        pos = torch.full((num_accounts,), -1, dtype=torch.long)
        pos[self.rows.cpu()] = torch.arange(len(self.rows))
        return pos

    def save(self, path: str | Path, key: str) -> None:
        """Keep the index on disk (safetensors), tagged with ``key`` (checkpoint + store hash)."""
        from safetensors.torch import save as st_save

        from bamir.utils import atomic_write_bytes

        if self.keys is None:
            return
        meta = {"key": key, "branches": ",".join(self.slices)}
        meta["bounds"] = ",".join(f"{s.start}:{s.stop}" for s in self.slices.values())
        atomic_write_bytes(Path(path), st_save({"rows": self.rows.cpu().contiguous(),
                                                "keys": self.keys.cpu().contiguous()}, metadata=meta))

    @classmethod
    def load(cls, path: str | Path, key: str) -> "CandidateIndex | None":
        """The index saved at ``path`` if it carries ``key``; otherwise None."""
        from safetensors import safe_open

        path = Path(path)
        if not path.is_file():
            return None
        try:
            with safe_open(str(path), framework="pt") as handle:
                meta = handle.metadata() or {}
                if meta.get("key") != key:
                    return None
                rows, keys = handle.get_tensor("rows"), handle.get_tensor("keys")
        except Exception as err:  # a truncated or foreign file: recompute
            log.warning("embedding cache %s unreadable (%s): recomputing", path, err)
            return None
        slices = {}
        for name, bound in zip(meta["branches"].split(","), meta["bounds"].split(",")):
            a, b = bound.split(":")
            slices[name] = slice(int(a), int(b))
        return cls(rows, keys, slices, cache_dir=path.parent, key=key)


@dataclass
class Ranking:
    """Top-k of each brand: account rows, scores and per-branch contributions (all ``[B, k]``)."""

    brands: Tensor  # [B] account rows
    candidates: Tensor  # [B, k] account rows, -1 where fewer than k were admissible
    scores: Tensor  # [B, k]
    contributions: dict[str, Tensor]  # {branch: [B, k]}
    pool_size: int = 0
    method: str = "exact"
    seconds: float = 0.0

    @property
    def shares(self) -> dict[str, Tensor]:
        """Each branch's signed share of the score: ``c_b / sum_b |c_b|``."""
        if not self.contributions:
            return {}
        total = torch.stack([c.abs() for c in self.contributions.values()]).sum(0).clamp(min=1e-12)
        return {b: c / total for b, c in self.contributions.items()}


class Ranker:
    """Ranks brands against a candidate pool with a trained :class:`~bamir.models.base.RankingModule`.

    Args:
        model: the ranker, features attached (``load_checkpoint``); put in eval mode here.
        device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"``...
        method: ``exact`` (matmul + topk), ``faiss`` (IndexFlatIP, exact), ``faiss_ivf``
            (approximate) or ``auto`` (:func:`choose_method`).
        brand_chunk, candidate_chunk: score block size of the exact path (``candidate_chunk``
            None: :func:`auto_candidate_chunk`).
        encode_batch: accounts encoded per forward pass when precomputing.
        compute_dtype: ``"float32"`` or ``"bfloat16"``: dtype of the exact path's product (bf16
            halves its cost on a GPU and on CPUs with AVX512-BF16; scores then carry bf16 rounding).
        faiss: options of :class:`FaissSearch` (``nlist``, ``nprobe``, ``train_size``, ``niter``, ``threads``).
        auto_ivf_from: ``method=auto`` picks ``faiss_ivf`` on a CPU for pools of at least this many
            candidates when brands x candidates >= 1e8 (None: never).
        verify: check the model's factorisation on a few rows first (see :func:`branch_embedder`).
    """

    def __init__(self, model, device: str = "auto", method: str = "exact", brand_chunk: int = 1024,
                 candidate_chunk: int | None = None, encode_batch: int = 65536, compute_dtype: str = "float32",
                 faiss: Mapping[str, Any] | None = None, auto_ivf_from: int | None = 1_000_000, verify: bool = True):
        if method not in METHODS:
            raise ValueError(f"search method {method!r}: use one of {METHODS}")
        if device in (None, "auto"):
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.method = method
        self.brand_chunk, self.encode_batch = int(brand_chunk), int(encode_batch)
        self.candidate_chunk = None if candidate_chunk in (None, "auto") else int(candidate_chunk)
        self.compute_dtype = getattr(torch, compute_dtype) if isinstance(compute_dtype, str) else compute_dtype
        self.auto_ivf_from = auto_ivf_from
        self.faiss_options = dict(faiss or {})
        self.verify = verify
        self._embed: Callable | None = None
        self._checked = False
        self._faiss_cache: dict[tuple, FaissSearch] = {}

    # ------------------------------------------------------------------ embeddings
    def embedder(self, sample_rows: Tensor | None = None) -> Callable | None:
        """:func:`branch_embedder` of the model, checked once on ``sample_rows`` (candidates)."""
        if not self._checked:
            self._embed = branch_embedder(self.model, sample_rows if self.verify else None)
            self._checked = True
        return self._embed

    @torch.inference_mode()
    def embed(self, rows: Tensor, side: str) -> tuple[Tensor, dict[str, slice]]:
        """``(embeddings [n, D], {branch: column slice})`` of account rows on ``side``, in batches."""
        embed = self.embedder(rows[: min(len(rows), 16)])
        if embed is None:
            raise RuntimeError(f"{type(self.model).__name__} has no per-branch embeddings")
        parts, slices = [], {}
        for start in range(0, len(rows), self.encode_batch):
            batch = rows[start:start + self.encode_batch].to(self.device)
            out = embed(batch, side)
            if not slices:
                col = 0
                for name, e in out.items():
                    slices[name] = slice(col, col + e.shape[-1])
                    col += e.shape[-1]
            parts.append(torch.cat([out[b].float() for b in slices], dim=-1))
        if not parts:
            dim = 0
            return torch.empty(0, dim, device=self.device), slices
        return torch.cat(parts), slices

    def index(self, rows: Tensor) -> CandidateIndex:
        """Precompute the candidates' embeddings (once per checkpoint and pool)."""
        rows = torch.as_tensor(rows, dtype=torch.long)
        start = time.perf_counter()
        if self.embedder(rows[: min(len(rows), 16)]) is None:
            return CandidateIndex(rows, None, {}, 0.0)
        keys, slices = self.embed(rows, "candidate")
        seconds = time.perf_counter() - start
        log.info("precomputed %d candidate embeddings (%d-d, branches %s) in %.2fs",
                 len(rows), keys.shape[1], list(slices), seconds)
        return CandidateIndex(rows, keys, slices, seconds)

    # ------------------------------------------------------------------ ranking
    @torch.inference_mode()
    def rank(self, brands: Tensor, index: CandidateIndex, k: int,
             exclude: tuple[Tensor, Tensor] | None = None) -> Ranking:
        """Top-``k`` of ``index`` for each brand row.

        ``exclude``: pairs ``(brand position in brands, candidate position in index)`` never returned.
        """
        brands = torch.as_tensor(brands, dtype=torch.long)
        start = time.perf_counter()
        if index.keys is None:
            ranking = self._rank_generic(brands, index, k, exclude)
        else:
            self.embedder(index.rows[: min(len(index), 16)])  # checked on candidates, before any brand
            queries, slices = self.embed(brands, "brand")
            method = self.method
            if method == "auto":
                method = choose_method(len(brands), len(index), self.device.type, self.auto_ivf_from)
                if method == "faiss_ivf":
                    log.info("search.method=auto: approximate faiss IVF search for %d brands x %d candidates "
                             "(set search.method=exact for exact top-k)", len(brands), len(index))
            if method == "exact":
                chunk = self.candidate_block(index.keys.device, len(brands))
                keys = index.keys
                if self.compute_dtype is not None and keys.dtype != self.compute_dtype:
                    keys = index.low_precision(self.compute_dtype)
                values, pos = chunked_topk(queries, keys, k, brand_chunk=self.brand_chunk,
                                           candidate_chunk=chunk, exclude=exclude, compute_dtype=self.compute_dtype)
            else:
                search = self._faiss(index, "flat" if method == "faiss" else "ivf")
                values, pos = search.search(queries, k, exclude)
            ok = pos >= 0
            safe = pos.clamp(min=0)
            cand_rows = torch.where(ok, index.rows.cpu()[safe], torch.full_like(safe, -1))
            picked = index.keys[safe.to(index.keys.device)]  # [B, k, D]
            contributions = {}
            for name, cols in index.slices.items():
                c = (picked[..., cols].float() * queries[:, None, cols].float()).sum(-1).cpu()
                contributions[name] = torch.where(ok, c, torch.zeros_like(c))
            values = torch.where(ok, values, torch.full_like(values, float("nan")))
            ranking = Ranking(brands, cand_rows, values, contributions, method=method)
        ranking.pool_size = len(index)
        ranking.seconds = time.perf_counter() - start
        return ranking

    def candidate_block(self, device: torch.device, brands: int) -> int:
        """Candidates per score block: ``candidate_chunk``, or :func:`auto_candidate_chunk` when it is None."""
        return self.candidate_chunk or auto_candidate_chunk(device, brands, self.brand_chunk)

    def _faiss(self, index: CandidateIndex, kind: str) -> FaissSearch:
        """The faiss index of a pool: built once, and kept beside the embedding cache when it has one."""
        from bamir.utils import stable_hash

        opts = {k: v for k, v in self.faiss_options.items() if k in ("nlist", "nprobe", "train_size", "niter", "threads", "seed")}
        key = (id(index), kind)
        if key in self._faiss_cache:
            return self._faiss_cache[key]
        path = None
        if index.cache_dir is not None and index.key is not None and kind == "ivf":
            build = {k: v for k, v in opts.items() if k not in ("nprobe", "threads")}
            path = Path(index.cache_dir) / f"{stable_hash([index.key, kind, build])[:24]}.faiss"
        search = None
        if path is not None and path.is_file():
            try:
                search = FaissSearch.load(path)
                if search.size != len(index):
                    search = None
                else:
                    search.index.nprobe = min(int(opts.get("nprobe", 32)), search.index.nlist)
                    log.info("faiss %s index of %d candidates loaded from %s", kind, len(index), path)
            except Exception as err:  # unreadable: rebuild
                log.warning("faiss index %s unreadable (%s): rebuilding", path, err)
                search = None
        if search is None:
            search = FaissSearch(index.keys, kind=kind, **opts)
            log.info("faiss %s index over %d candidates built in %.2fs", kind, len(index), search.build_seconds)
            if path is not None:
                search.save(path)
        self._faiss_cache[key] = search
        return search

    def _rank_generic(self, brands: Tensor, index: CandidateIndex, k: int,
                      exclude: tuple[Tensor, Tensor] | None) -> Ranking:
        """Through ``model.branch_scores``, chunk by chunk (models without per-branch embeddings)."""
        n_b, n_c = len(brands), len(index)
        k = min(int(k), n_c)
        rows = index.rows.to(self.device)
        values = torch.full((n_b, k), -math.inf)
        pos = torch.full((n_b, k), -1, dtype=torch.long)
        chunk = self.candidate_block(self.device, n_b)
        for b0 in range(0, n_b, self.brand_chunk):
            b1 = min(b0 + self.brand_chunk, n_b)
            bv = torch.full((b1 - b0, k), -math.inf)
            bi = torch.full((b1 - b0, k), -1, dtype=torch.long)
            for c0 in range(0, n_c, chunk):
                c1 = min(c0 + chunk, n_c)
                s = self.model.score_matrix(brands[b0:b1].to(self.device), rows[c0:c1]).float().cpu()
                if exclude is not None:
                    eq, ek = exclude
                    hit = (eq >= b0) & (eq < b1) & (ek >= c0) & (ek < c1)
                    s[eq[hit] - b0, ek[hit] - c0] = -math.inf
                v, i = s.topk(min(k, c1 - c0), dim=1)
                mv, mi = torch.cat([bv, v], 1), torch.cat([bi, i + c0], 1)
                bv, p = mv.topk(k, dim=1)
                bi = mi.gather(1, p)
            values[b0:b1], pos[b0:b1] = bv, bi
        ok = torch.isfinite(values)
        pos[~ok] = -1
        cand_rows = torch.where(ok, index.rows.cpu()[pos.clamp(min=0)], torch.full_like(pos, -1))
        contributions: dict[str, list[Tensor]] = {}
        for j in range(n_b):
            got = self.model.branch_scores(brands[j:j + 1].to(self.device), cand_rows[j].clamp(min=0).to(self.device))
            for name, c in got.items():
                contributions.setdefault(name, []).append(torch.where(ok[j], c[0].float().cpu(), torch.zeros(k)))
        contrib = {name: torch.stack(v) for name, v in contributions.items()}
        values = torch.where(ok, values, torch.full_like(values, float("nan")))
        return Ranking(brands, cand_rows, values, contrib, method="branch_scores")


