"""Ranking at scale: every brand against a large influencer pool, top-k and per-branch shares.

A BAMIR-style model scores a pair as a sum of per-branch inner products::

    s(b, i) = sum_branch < f_branch(b), f_branch(i) > = < q(b), k(i) >

with ``q(b) = concat_branch f_branch(b)`` and ``k(i) = concat_branch f_branch(i)``. So the
candidates' embeddings are computed **once per checkpoint** (:meth:`Ranker.index`, a
:class:`CandidateIndex` of ``keys [C, D]`` with each branch's column slice), and ranking a
set of brands is one matrix product plus ``torch.topk`` (:func:`chunked_topk`), run over
chunks of brands and candidates so that memory stays bounded by ``brand_chunk x
candidate_chunk`` scores whatever the pool size. Only for the final top-k are the branch
contributions ``< f_branch(b), f_branch(i) >`` computed (a gather and a dot per branch); a
branch's **share** of a score is its contribution over the sum of the absolute
contributions (signed; the absolute shares sum to 1).

Models whose score does not factorise that way (or whose factorisation fails the check of
:func:`branch_embedder`) are ranked through their ``branch_scores`` over the same chunks.

Exact top-k can also run through faiss (:class:`FaissSearch`: ``IndexFlatIP``, exact; or
``IndexIVFFlat``, approximate, ``nlist`` cells of which ``nprobe`` are searched), chosen by
``method`` (``exact`` | ``faiss`` | ``faiss_ivf`` | ``auto``); ``benchmarks/rank_scale.py``
measures where each wins.

Candidate pools and filters (:func:`candidate_rows`, :class:`CandidateFilter`), account
profiles for the ranked table (followers, engagement; :func:`account_profiles`), name lookup
with closest-name suggestions (:func:`resolve_names`) and the result table
(:class:`Ranking`, :func:`ranking_frame`) live here too; ``bamir-rank``
(:mod:`bamir.cli.rank`) puts them together.
"""

from __future__ import annotations

import difflib
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from torch import Tensor

log = logging.getLogger(__name__)

#: ``search.method`` values
METHODS = ("exact", "faiss", "faiss_ivf", "auto")


# =========================================================================== exact top-k
def chunked_topk(
    queries: Tensor,
    keys: Tensor,
    k: int,
    *,
    brand_chunk: int = 1024,
    candidate_chunk: int = 65536,
    exclude: tuple[Tensor, Tensor] | None = None,
    compute_dtype: torch.dtype | None = None,
) -> tuple[Tensor, Tensor]:
    """Top-``k`` inner products of every query against all keys, in bounded memory.

    Args:
        queries: ``[B, D]``.
        keys: ``[C, D]`` (on the device the product runs on; queries are moved there).
        k: how many per query (capped at ``C``).
        brand_chunk, candidate_chunk: the score block computed at once is
            ``[brand_chunk, candidate_chunk]``; a running top-k is merged across candidate blocks.
        exclude: pairs ``(query index [E], key index [E])`` that may not be returned
            (e.g. a brand's already-linked influencers); they score ``-inf``.
        compute_dtype: dtype of the product (e.g. ``torch.bfloat16`` on CUDA); scores are
            returned as float32.

    Returns:
        ``(values [B, k] float32, indices [B, k] int64)``, best first; ``-inf`` and index -1
        where a query has fewer than ``k`` admissible keys.
    """
    device = keys.device
    n_q, n_k = queries.shape[0], keys.shape[0]
    k = min(int(k), n_k)
    values = torch.full((n_q, k), -math.inf, dtype=torch.float32)
    indices = torch.full((n_q, k), -1, dtype=torch.long)
    if n_q == 0 or k == 0:
        return values, indices
    dtype = compute_dtype or keys.dtype
    if exclude is not None:
        ex_q, ex_k = (t.to(device=device, dtype=torch.long) for t in exclude)
    for b0 in range(0, n_q, brand_chunk):
        b1 = min(b0 + brand_chunk, n_q)
        q = queries[b0:b1].to(device=device, dtype=dtype)
        best_v = torch.full((b1 - b0, k), -math.inf, device=device, dtype=torch.float32)
        best_i = torch.full((b1 - b0, k), -1, device=device, dtype=torch.long)
        if exclude is not None:
            in_rows = (ex_q >= b0) & (ex_q < b1)
            rq, rk = ex_q[in_rows] - b0, ex_k[in_rows]
        for c0 in range(0, n_k, candidate_chunk):
            c1 = min(c0 + candidate_chunk, n_k)
            scores = (q @ keys[c0:c1].to(dtype).T).float()  # [b, c]
            if exclude is not None and len(rq):
                hit = (rk >= c0) & (rk < c1)
                if hit.any():
                    scores[rq[hit], rk[hit] - c0] = -math.inf
            kk = min(k, c1 - c0)
            v, i = scores.topk(kk, dim=1)
            merged_v = torch.cat([best_v, v], dim=1)
            merged_i = torch.cat([best_i, i + c0], dim=1)
            best_v, pos = merged_v.topk(k, dim=1)
            best_i = merged_i.gather(1, pos)
        best_i[~torch.isfinite(best_v)] = -1
        values[b0:b1] = best_v.cpu()
        indices[b0:b1] = best_i.cpu()
    return values, indices


def auto_candidate_chunk(device: torch.device | str, brands: int, brand_chunk: int = 1024,
                         budget: int | None = None) -> int:
    """Candidates per score block so that a block holds about ``budget`` float32 scores.

    Default budget: 2^26 scores (256 MiB) on the CPU, where blocks that fit the caches matter
    more than their count; on CUDA an eighth of the free memory (one block, one matmul, when
    the whole ``[B, C]`` matrix fits: 1,000 x 1M floats is 4 GiB).
    """
    device = torch.device(device)
    if budget is None:
        if device.type == "cuda":
            free, _ = torch.cuda.mem_get_info(device)
            budget = free // 8 // 4
        else:
            budget = 1 << 26
    rows = max(1, min(int(brands), int(brand_chunk)))
    return int(max(4096, budget // rows))


# =========================================================================== faiss
def faiss_available() -> bool:
    try:
        _import_faiss()
    except ImportError:
        return False
    return True


def _import_faiss():
    logging.getLogger("faiss.loader").setLevel(logging.WARNING)  # its INFO lines list every SIMD build it tries
    import faiss

    return faiss


class FaissSearch:
    """A faiss index over the candidate keys: exact ``IndexFlatIP`` or approximate ``IndexIVFFlat``.

    Args:
        keys: ``[C, D]`` candidate keys (copied into the index as float32).
        kind: ``"flat"`` (exact inner product) or ``"ivf"`` (inverted lists: k-means into
            ``nlist`` cells, ``nprobe`` nearest cells searched per query; approximate).
        nlist: IVF cells (default ``sqrt(C)``, at least 1).
        nprobe: IVF cells searched per query.
        train_size: IVF k-means sample size (at most ``C``).
        niter: IVF k-means iterations.
        threads: faiss OpenMP threads (None: faiss's default).
        seed: sample and k-means seed.
    """

    def __init__(self, keys: Tensor, kind: str = "flat", nlist: int | None = None, nprobe: int = 32,
                 train_size: int = 65536, niter: int = 10, threads: int | None = None, seed: int = 0):
        try:
            faiss = _import_faiss()
        except ImportError as err:
            raise ImportError("search.method=faiss needs the faiss-cpu package (pip install faiss-cpu)") from err
        if kind not in ("flat", "ivf"):
            raise ValueError(f"faiss index kind must be 'flat' or 'ivf', got {kind!r}")
        if threads:
            faiss.omp_set_num_threads(int(threads))
        x = np.ascontiguousarray(keys.detach().float().cpu().numpy())
        n, d = x.shape
        self.kind, self.size, self.dim = kind, n, d
        start = time.perf_counter()
        if kind == "flat":
            self.index = faiss.IndexFlatIP(d)
        else:
            nlist = int(nlist or max(1, round(math.sqrt(n))))
            nlist = max(1, min(nlist, n))
            quantizer = faiss.IndexFlatIP(d)
            self.index = faiss.IndexIVFFlat(quantizer, d, nlist, faiss.METRIC_INNER_PRODUCT)
            rng = np.random.default_rng(seed)
            sample = x if n <= train_size else x[np.sort(rng.choice(n, size=train_size, replace=False))]
            self.index.cp.seed = seed
            self.index.cp.niter = int(niter)
            self.index.train(sample)
            self.index.nprobe = min(int(nprobe), nlist)
            self._quantizer = quantizer  # keep it alive alongside the index
        self.index.add(x)
        self.build_seconds = time.perf_counter() - start

    def save(self, path: str | Path) -> None:
        """Keep the built index (``faiss.write_index``, through a temp file and a rename)."""
        import os

        faiss = _import_faiss()
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        faiss.write_index(self.index, str(tmp))
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str | Path) -> "FaissSearch":
        faiss = _import_faiss()
        self = cls.__new__(cls)
        self.index = faiss.read_index(str(path))  # already the concrete class (and owning it)
        self.kind = "ivf" if hasattr(self.index, "nlist") else "flat"
        self.size, self.dim, self.build_seconds = int(self.index.ntotal), int(self.index.d), 0.0
        return self

    def search(self, queries: Tensor, k: int, exclude: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, Tensor]:
        """Like :func:`chunked_topk`: ``(values [B, k], indices [B, k])``, -1 / -inf where missing."""
        q = np.ascontiguousarray(queries.detach().float().cpu().numpy())
        k = min(int(k), self.size)
        extra = 0
        if exclude is not None and len(exclude[0]):
            extra = int(torch.bincount(exclude[0].long(), minlength=len(q)).max())
        kk = min(k + extra, self.size)
        v, i = self.index.search(q, kk)
        values, indices = torch.from_numpy(v).float(), torch.from_numpy(i).long()
        values[indices < 0] = -math.inf
        if extra:
            eq, ek = exclude[0].long(), exclude[1].long()
            # mark (query, key) pairs in the result that are excluded
            key_of = eq * (self.size + 1) + ek
            flat = torch.arange(len(q))[:, None] * (self.size + 1) + indices.clamp(min=0)
            banned = torch.isin(flat, key_of) & (indices >= 0)
            values[banned] = -math.inf
            values, pos = values.topk(k, dim=1)
            indices = indices.gather(1, pos)
        else:
            values, indices = values[:, :k], indices[:, :k]
        indices[~torch.isfinite(values)] = -1
        return values, indices


# =========================================================================== model side
def branch_embedder(model, check_rows: Tensor | None = None, atol: float = 1e-3) -> Callable[[Tensor], dict[str, Tensor]] | None:
    """The model's per-branch embedding function ``rows [n] -> {branch: [n, d]}``, or None.

    Used when the model defines ``branch_embeddings(rows)``, or has BAMIR's
    ``encode(branch, rows)`` with its branches in ``model.encoders``. When ``check_rows`` (a few
    account rows) is given, the factorisation is verified against ``model.branch_scores``
    on them; a mismatch returns None (the caller then uses ``branch_scores`` directly).
    """
    if callable(getattr(model, "branch_embeddings", None)):
        embed = model.branch_embeddings
    elif callable(getattr(model, "encode", None)) and isinstance(getattr(model, "encoders", None), torch.nn.ModuleDict):
        branches = list(model.encoders)
        def embed(rows: Tensor) -> dict[str, Tensor]:
            return {b: model.encode(b, rows) for b in branches}
    else:
        return None
    if check_rows is not None and len(check_rows) >= 2:
        with torch.inference_mode():
            rows = check_rows.to(_model_device(model))
            a, b = rows[: len(rows) // 2], rows[len(rows) // 2:]
            want = model.branch_scores(a, b)
            ea, eb = embed(a), embed(b)
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
        if not self._checked:
            self._embed = branch_embedder(self.model, sample_rows if self.verify else None)
            self._checked = True
        return self._embed

    @torch.inference_mode()
    def embed(self, rows: Tensor) -> tuple[Tensor, dict[str, slice]]:
        """``(keys [n, D], {branch: column slice})`` of account rows, in batches."""
        embed = self.embedder(rows[: min(len(rows), 16)])
        if embed is None:
            raise RuntimeError(f"{type(self.model).__name__} has no per-branch embeddings")
        parts, slices = [], {}
        for start in range(0, len(rows), self.encode_batch):
            batch = rows[start:start + self.encode_batch].to(self.device)
            out = embed(batch)
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
        keys, slices = self.embed(rows)
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
            queries, slices = self.embed(brands)
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


def choose_method(num_brands: int, num_candidates: int, device: str, ivf_from: int | None = 1_000_000) -> str:
    """``search.method=auto``, as measured by ``benchmarks/rank_scale.py``:

    * CUDA: the chunked matmul + topk (``exact``) always;
    * CPU (two shared cores): faiss' exact ``IndexFlatIP`` never beat it consistently
      (0.16-1.8x), so ``exact``, except for pools of at least ``ivf_from`` candidates with
      brands x candidates >= 1e8, where the IVF search (approximate; recall@100 1.000 against
      exact on clustered 512-d data, nlist sqrt(C), nprobe 32) was 3.7-7.5x faster at
      1,000 x 1M and 7-73x for 1-100 brands. Its k-means build (about 55 s at 1M on two
      cores) is kept beside the embedding cache, so it is paid once per checkpoint and pool.
    """
    if device != "cpu" or ivf_from is None or not faiss_available():
        return "exact"
    if num_candidates >= ivf_from and num_brands * num_candidates >= IVF_CROSSOVER:
        return "faiss_ivf"
    return "exact"


#: brands x candidates from which faiss IVF search beat exact chunked matmul+topk at every size measured (CPU)
IVF_CROSSOVER = 10**8


# =========================================================================== accounts
def account_profiles(store, raw_root: str | Path | None = None) -> pd.DataFrame:
    """One row per store account (store row order): account_id, username, kind, category,
    followers, engagement, business_category, posts.

    ``followers``, ``engagement`` (mean over posts of ``(likes + comments) / followers``),
    ``business_category`` and ``posts`` come from the raw dataset when it is available
    (``raw_root``, else the store manifest's ``dataset.raw_root``); otherwise they are NaN / "".
    """
    frame = store.accounts.copy()
    frame["followers"] = np.nan
    frame["engagement"] = np.nan
    frame["business_category"] = ""
    frame["posts"] = 0
    root = raw_root_of(store, raw_root)
    if root is None:
        return frame
    from bamir.data.schema import ACCOUNTS, POSTS, read_table

    try:
        raw_accounts = read_table(root, ACCOUNTS)
        posts = read_table(root, POSTS)
    except FileNotFoundError as err:
        log.warning("raw dataset %s unreadable (%s): no followers or engagement in the table", root, err)
        return frame
    return _merge_profiles(frame, raw_accounts, posts)


def _merge_profiles(frame: pd.DataFrame, raw_accounts: pd.DataFrame, posts: pd.DataFrame) -> pd.DataFrame:
    raw_accounts = raw_accounts.drop_duplicates("account_id").set_index("account_id")
    ids = frame["account_id"]
    followers = pd.to_numeric(raw_accounts["followers"], errors="coerce").reindex(ids).to_numpy(dtype=float)
    frame["followers"] = followers
    if "business_category" in raw_accounts:
        frame["business_category"] = raw_accounts["business_category"].reindex(ids).fillna("").astype(str).to_numpy()
    p = posts[["account_id", "likes", "comments"]].copy()
    p["interactions"] = pd.to_numeric(p["likes"], errors="coerce").fillna(0) + pd.to_numeric(p["comments"], errors="coerce").fillna(0)
    grouped = p.groupby("account_id")
    mean_inter = grouped["interactions"].mean().reindex(ids).to_numpy(dtype=float)
    frame["posts"] = grouped.size().reindex(ids).fillna(0).astype(int).to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        frame["engagement"] = np.where(followers > 0, mean_inter / np.maximum(followers, 1), np.nan)
    return frame


def raw_root_of(store, raw_root: str | Path | None = None) -> Path | None:
    """The raw dataset behind a store: ``raw_root`` when given (it must exist), else the
    manifest's ``dataset.raw_root`` when that folder still holds a raw dataset, else None."""
    from bamir.data.schema import DATASET_FILE

    if raw_root:
        if not (Path(raw_root) / DATASET_FILE).is_file():
            raise FileNotFoundError(f"raw_root={raw_root}: no raw dataset there ({DATASET_FILE} missing)")
        return Path(raw_root)
    recorded = store.manifest.get("dataset", {}).get("raw_root")
    if recorded and (Path(recorded) / DATASET_FILE).is_file():
        return Path(recorded)
    return None


class UnknownNameError(ValueError):
    """A brand, influencer or category name that is not in the data; the message lists the closest ones."""


def closest(name: str, choices: Iterable[str], n: int = 5) -> list[str]:
    """The ``n`` closest of ``choices`` to ``name`` (difflib, case-insensitive)."""
    choices = sorted({str(c) for c in choices if str(c)})
    folded = {c.casefold(): c for c in choices}
    hits = difflib.get_close_matches(name.casefold(), list(folded), n=n, cutoff=0.4)
    return [folded[h] for h in hits]


def resolve_names(names: Sequence[str], profiles: pd.DataFrame, kind: str) -> list[int]:
    """Store rows of accounts named by username or account id (case-insensitive), of ``kind``.

    Raises :class:`UnknownNameError` naming every unknown name with its closest matches.
    """
    subset = profiles[profiles["kind"] == kind]
    lookup: dict[str, int] = {}
    for row, account_id, username in zip(subset.index, subset["account_id"], subset["username"]):
        lookup.setdefault(str(account_id).casefold(), int(row))
        if isinstance(username, str) and username:
            lookup.setdefault(username.casefold(), int(row))
    rows, problems = [], []
    for name in names:
        key = str(name).strip().lstrip("@").casefold()
        if key in lookup:
            rows.append(lookup[key])
            continue
        other = profiles[(profiles["kind"] != kind) & ((profiles["account_id"].str.casefold() == key)
                                                      | (profiles["username"].str.casefold() == key))]
        hint = closest(str(name), list(subset["username"]) + list(subset["account_id"]))
        if len(other):
            problems.append(f"{name!r} is a {other['kind'].iloc[0]}, not a {kind}")
        elif hint:
            problems.append(f"unknown {kind} {name!r}; closest: {', '.join(hint)}")
        else:
            examples = ", ".join(sorted(subset["username"].astype(str))[:5])
            problems.append(f"unknown {kind} {name!r}; no close name (e.g. {examples})")
    if problems:
        raise UnknownNameError("; ".join(problems))
    return rows


# =========================================================================== candidates
@dataclass
class CandidateFilter:
    """Which influencers may be ranked.

    Args:
        category: brand categories; an influencer qualifies when its own ``category`` is one
            of them or it is linked (a known pair) to a brand of one of them.
        business_category: Instagram business categories (raw data; case-insensitive, exact).
        min_followers, max_followers: follower range, inclusive (raw data).
        exclude_linked: drop each brand's already-linked influencers (its known pairs).
        influencers: restrict to these influencers (usernames or ids).
    """

    category: list[str] | None = None
    business_category: list[str] | None = None
    min_followers: float | None = None
    max_followers: float | None = None
    exclude_linked: bool = False
    influencers: list[str] | None = None

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any] | None) -> "CandidateFilter":
        cfg = dict(cfg or {})
        def listed(value):
            if value is None or value == "":
                return None
            if isinstance(value, str):
                return [v.strip() for v in value.split(",") if v.strip()]
            return [str(v) for v in value]
        unknown = set(cfg) - {"category", "business_category", "min_followers", "max_followers", "exclude_linked",
                              "influencers"}
        if unknown:
            raise ValueError(f"unknown candidate filters {sorted(unknown)}")
        return cls(category=listed(cfg.get("category")), business_category=listed(cfg.get("business_category")),
                   min_followers=cfg.get("min_followers"), max_followers=cfg.get("max_followers"),
                   exclude_linked=bool(cfg.get("exclude_linked", False)), influencers=listed(cfg.get("influencers")))

    def describe(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v not in (None, False)}


def candidate_rows(profiles: pd.DataFrame, pairs: tuple[Tensor, Tensor], flt: CandidateFilter,
                   pool: Tensor | None = None) -> Tensor:
    """Account rows of the influencers that pass ``flt`` (within ``pool`` when given; default: all influencers).

    ``pairs``: the known ``(brand rows, influencer rows)``. Raises :class:`UnknownNameError`
    for unknown category or influencer names, ValueError when a filter needs data the store lacks.
    """
    keep = (profiles["kind"] == "influencer").to_numpy().copy()
    if pool is not None:
        in_pool = np.zeros(len(profiles), dtype=bool)
        in_pool[pool.numpy()] = True
        keep &= in_pool
    if flt.category:
        brand_cat = profiles["category"].to_numpy()
        known = sorted({c for c in profiles["category"] if c})
        bad = [c for c in flt.category if c not in known]
        if bad:
            raise UnknownNameError("; ".join(f"unknown category {c!r}; closest: {', '.join(closest(c, known)) or '-'}"
                                             f" (categories: {', '.join(known)})" for c in bad))
        wanted = set(flt.category)
        ok = np.isin(brand_cat, list(wanted))
        b, i = pairs
        linked = np.isin(brand_cat[b.numpy()], list(wanted))
        ok[i.numpy()[linked]] = True
        keep &= ok
    if flt.business_category:
        cats = profiles["business_category"].astype(str).str.casefold()
        known = sorted({c for c in profiles.loc[profiles["kind"] == "influencer", "business_category"] if c})
        if not known:
            raise ValueError("filters.business_category needs the raw dataset (set raw_root=PATH)")
        wanted = {c.casefold() for c in flt.business_category}
        bad = [c for c in flt.business_category if c.casefold() not in {k.casefold() for k in known}]
        if bad:
            raise UnknownNameError("; ".join(f"unknown business category {c!r}; closest: {', '.join(closest(c, known)) or '-'}"
                                             for c in bad))
        keep &= cats.isin(wanted).to_numpy()
    if flt.min_followers is not None or flt.max_followers is not None:
        followers = profiles["followers"].to_numpy(dtype=float)
        if np.isnan(followers[keep]).all() and keep.any():
            raise ValueError("a follower filter needs follower counts: the store has none and no raw dataset was "
                             "found (set raw_root=PATH)")
        if flt.min_followers is not None:
            keep &= followers >= float(flt.min_followers)
        if flt.max_followers is not None:
            keep &= followers <= float(flt.max_followers)
    if flt.influencers:
        named = np.zeros(len(profiles), dtype=bool)
        named[resolve_names(flt.influencers, profiles, "influencer")] = True
        keep &= named
    return torch.from_numpy(np.flatnonzero(keep)).long()


def linked_exclusions(brands: Tensor, index: CandidateIndex, pairs: tuple[Tensor, Tensor],
                      num_accounts: int) -> tuple[Tensor, Tensor]:
    """``(brand position, candidate position)`` of each brand's known pairs that are in ``index``."""
    b, i = pairs
    brand_pos = torch.full((num_accounts,), -1, dtype=torch.long)
    brand_pos[brands] = torch.arange(len(brands))
    cand_pos = index.position_of(num_accounts)
    bp, cp = brand_pos[b], cand_pos[i]
    ok = (bp >= 0) & (cp >= 0)
    return bp[ok], cp[ok]


# =========================================================================== tables
def ranking_frame(ranking: Ranking, profiles: pd.DataFrame, pairs: tuple[Tensor, Tensor] | None = None) -> pd.DataFrame:
    """One row per (brand, rank): brand, rank, influencer, score, followers, engagement,
    ``contrib_<branch>`` and ``share_<branch>``, and ``linked`` (a known pair)."""
    known = set()
    if pairs is not None:
        known = set(zip(pairs[0].tolist(), pairs[1].tolist()))
    shares = ranking.shares
    records = []
    ids, names = profiles["account_id"].to_numpy(), profiles["username"].to_numpy()
    followers, engagement = profiles["followers"].to_numpy(dtype=float), profiles["engagement"].to_numpy(dtype=float)
    for j, brand in enumerate(ranking.brands.tolist()):
        for r, cand in enumerate(ranking.candidates[j].tolist()):
            if cand < 0:
                continue
            rec = {"brand_id": ids[brand], "brand": names[brand], "rank": r + 1, "influencer_id": ids[cand],
                   "influencer": names[cand], "score": float(ranking.scores[j, r]),
                   "followers": followers[cand], "engagement": engagement[cand]}
            for b in ranking.contributions:
                rec[f"contrib_{b}"] = float(ranking.contributions[b][j, r])
            for b in shares:
                rec[f"share_{b}"] = float(shares[b][j, r])
            rec["linked"] = (brand, cand) in known
            records.append(rec)
    columns = ["brand_id", "brand", "rank", "influencer_id", "influencer", "score", "followers", "engagement",
               *[f"contrib_{b}" for b in ranking.contributions], *[f"share_{b}" for b in shares], "linked"]
    return pd.DataFrame.from_records(records, columns=columns)


def format_table(frame: pd.DataFrame) -> str:
    """The printed table of one brand: rank, influencer, score, followers, engagement, branch shares."""
    branches = [c[len("share_"):] for c in frame.columns if c.startswith("share_")]
    header = ["rank", "influencer", "score", "followers", "engagement", *[f"{b} share" for b in branches]]
    rows = []
    for rec in frame.itertuples(index=False):
        rec = rec._asdict()
        followers = rec["followers"]
        engagement = rec["engagement"]
        name = rec["influencer"] + (" *" if rec.get("linked") else "")
        rows.append([str(rec["rank"]), name, f"{rec['score']:.3f}",
                     "-" if not np.isfinite(followers) else f"{int(followers):,}",
                     "-" if not np.isfinite(engagement) else f"{100 * engagement:.2f}%",
                     *[f"{100 * rec[f'share_{b}']:+.0f}%" for b in branches]])
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    right = {0, 2, 3, 4} | set(range(5, len(header)))
    def line(cells):
        return "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths)))
    return "\n".join([line(header), line(["-" * w for w in widths]), *(line(r) for r in rows)])
