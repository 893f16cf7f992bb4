"""Top-k search over precomputed embeddings: exact chunked matmul + ``torch.topk``, or faiss.

Ranking a set of brands against candidate keys ``[C, D]`` is one matrix product plus
``torch.topk`` (:func:`chunked_topk`), run over blocks of brands and candidates so that memory
stays bounded by ``brand_chunk x candidate_chunk`` scores whatever the pool size. The same
top-k can run through faiss (:class:`FaissSearch`: ``IndexFlatIP``, exact; or ``IndexIVFFlat``,
approximate, ``nlist`` cells of which ``nprobe`` are searched), chosen by ``method``
(``exact`` | ``faiss`` | ``faiss_ivf`` | ``auto``, :func:`choose_method`);
``benchmarks/rank_scale.py`` measures where each wins.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

log = logging.getLogger(__name__)

#: ``search.method`` values
METHODS = ("exact", "faiss", "faiss_ivf", "auto")


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

