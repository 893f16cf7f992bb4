"""Ranking at scale: exact chunked matmul + top-k against faiss, on this CPU and on CUDA.

The workload of ``bamir-rank brand=all`` on a large pool: ``B`` brand queries against ``C``
precomputed candidate embeddings (``D`` = 512, BAMIR's width), top-100 each. Embeddings
are clustered (a mixture of Gaussians), like trained embeddings and unlike uniform noise,
so the approximate index is measured on data with structure.

Methods:

* ``torch``: :func:`bamir.ranking.chunked_topk` (one matmul + ``torch.topk`` per block of
  brands x candidates, running top-k merged; float32 on CPU; float32 and bf16 on CUDA);
* ``faiss``: ``IndexFlatIP`` (exact, blocked BLAS + heaps);
* ``faiss_ivf``: ``IndexIVFFlat`` (``nlist`` k-means cells, ``nprobe`` searched; approximate:
  its recall@k against the exact top-k is reported). Its build (k-means + add) is a
  once-per-checkpoint cost, reported apart from the search.

For each (B, C) it reports the median search time, the peak extra memory (CPU: resident set
high-water mark above the level before the call; CUDA: peak allocated), the IVF recall, and
the cross-over: the smallest B x C where each faiss method beats the exact torch path.

    python benchmarks/rank_scale.py                     # 1,000 x 1,000,000 and a grid below it
    python benchmarks/rank_scale.py --quick             # small sizes (seconds)
    python benchmarks/rank_scale.py --devices cuda      # the GPU only
    python benchmarks/rank_scale.py --out rank_scale.json
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import statistics
import sys
import time

import numpy as np
import torch

from bamir.ranking import FaissSearch, auto_candidate_chunk, chunked_topk, faiss_available


def clustered(n: int, dim: int, centres: torch.Tensor, seed: int, noise: float = 0.1, chunk: int = 1 << 16) -> torch.Tensor:
    """``n`` float32 points: a random centre plus noise (generated in chunks: 1M x 512 is 2 GiB)."""
    g = torch.Generator().manual_seed(seed)
    out = torch.empty(n, dim)
    for s in range(0, n, chunk):
        e = min(s + chunk, n)
        pick = torch.randint(len(centres), (e - s,), generator=g)
        out[s:e] = centres[pick] + noise * torch.randn(e - s, dim, generator=g)
    return out


# ---------------------------------------------------------------- memory probes
def _clear_peak() -> None:
    try:
        with open("/proc/self/clear_refs", "w") as h:
            h.write("5")
    except OSError:
        pass


def _rss(field: str) -> int | None:
    try:
        with open("/proc/self/status") as h:
            for line in h:
                if line.startswith(field):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


class Peak:
    """Peak extra memory of a block: CUDA peak allocated, or the CPU RSS high-water mark above its start."""

    def __init__(self, device: str):
        self.device = device

    def __enter__(self):
        if self.device == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.base = torch.cuda.memory_allocated()
        else:
            gc.collect()
            _clear_peak()
            self.base = _rss("VmRSS:") or 0
        return self

    def __exit__(self, *exc):
        if self.device == "cuda":
            torch.cuda.synchronize()
            self.bytes = torch.cuda.max_memory_allocated() - self.base
        else:
            self.bytes = max(0, (_rss("VmHWM:") or 0) - self.base)
        return False


def timed(fn, device: str, repeats: int, warmup: bool = True) -> tuple[float, int, object]:
    """(median seconds, peak extra bytes, last result) of ``fn()`` (after one warm-up call)."""
    if warmup:
        fn()
    times, peak, out = [], 0, None
    for _ in range(repeats):
        with Peak(device) as p:
            if device == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            out = fn()
            if device == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
        peak = max(peak, p.bytes)
    return statistics.median(times), peak, out


def recall(found: torch.Tensor, exact: torch.Tensor) -> float:
    """Mean share of the exact top-k found (per query, order ignored)."""
    hits = [len(set(a.tolist()) & set(b.tolist())) / max(1, len(b)) for a, b in zip(found, exact)]
    return float(np.mean(hits))


def main(argv=None) -> dict:
    if "MALLOC_MMAP_THRESHOLD_" not in os.environ and argv is None:
        # large blocks straight from mmap and back to the OS when freed, so that the resident-set
        # high-water mark measures each call's own peak rather than memory glibc kept from before
        env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": str(1 << 20), "MALLOC_TRIM_THRESHOLD_": str(1 << 20)}
        os.execve(sys.executable, [sys.executable, *sys.argv], env)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--brands", type=int, nargs="+", default=[1, 10, 100, 1000])
    parser.add_argument("--candidates", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--k", type=int, default=100)
    parser.add_argument("--devices", nargs="+", default=["cpu", "cuda"], help="cuda is skipped when unavailable")
    parser.add_argument("--methods", nargs="+", default=["torch", "faiss", "faiss_ivf"])
    parser.add_argument("--brand-chunk", type=int, default=1024)
    parser.add_argument("--candidate-chunk", type=int, default=None, help="default: bamir.ranking.auto_candidate_chunk")
    parser.add_argument("--nlist", type=int, default=None, help="IVF cells (default sqrt(C))")
    parser.add_argument("--nprobe", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dtypes", nargs="+", default=["fp32", "bf16"], help="products of the torch path")
    parser.add_argument("--threads", type=int, default=None, help="torch and faiss threads (default: all usable cores)")
    parser.add_argument("--quick", action="store_true", help="small sizes: brands 1 10 100, candidates 10k 50k")
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    args = parser.parse_args(argv)
    if args.quick:
        args.brands, args.candidates = [1, 10, 100], [10_000, 50_000]
    threads = args.threads or len(os.sched_getaffinity(0))
    torch.set_num_threads(threads)
    methods = [m for m in args.methods if m == "torch" or faiss_available()]
    if len(methods) < len(args.methods):
        print("faiss is not installed (pip install faiss-cpu): faiss methods skipped")
    devices = [d for d in args.devices if d == "cpu" or torch.cuda.is_available()]
    cpu_name = _cpu_name()
    info = {"cpu": cpu_name, "threads": threads, "dim": args.dim, "k": args.k, "torch": torch.__version__,
            "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None}
    print(f"# rank_scale: D={args.dim}, top-{args.k}; CPU {cpu_name} ({threads} threads); "
          f"CUDA {info['cuda'] or 'not available'}")

    c_max, b_max = max(args.candidates), max(args.brands)
    # 256 clusters; centre norm ~4, within-cluster spread ~0.1 per dimension (norm ~2.3 at 512-d)
    centres = torch.randn(256, args.dim, generator=torch.Generator().manual_seed(1)) / math.sqrt(args.dim) * 4
    t0 = time.perf_counter()
    keys_all = clustered(c_max, args.dim, centres, seed=2)
    queries_all = clustered(b_max, args.dim, centres, seed=3)
    print(f"generated {c_max:,} x {args.dim} keys in {time.perf_counter() - t0:.1f}s")

    rows = []
    for device in devices:
        for C in sorted(args.candidates):
            keys = keys_all[:C]
            if device == "cuda":
                keys_dev = keys.to("cuda")
            ivf = None
            if "faiss_ivf" in methods and device == "cpu":
                with Peak("cpu") as p:
                    ivf = FaissSearch(keys, kind="ivf", nlist=args.nlist, nprobe=args.nprobe, threads=threads)
                rows.append({"device": device, "method": "faiss_ivf build", "brands": 0, "candidates": C,
                             "seconds": ivf.build_seconds, "peak_mib": p.bytes / 2**20,
                             "note": f"nlist {ivf.index.nlist}, nprobe {ivf.index.nprobe}, "
                                     f"k-means on {min(C, 65536):,} (10 iterations)"})
            flat = None
            if "faiss" in methods and device == "cpu":
                with Peak("cpu") as p:
                    flat = FaissSearch(keys, kind="flat", threads=threads)
                rows.append({"device": device, "method": "faiss build", "brands": 0, "candidates": C,
                             "seconds": flat.build_seconds, "peak_mib": p.bytes / 2**20, "note": "copy of the keys"})
            for B in sorted(args.brands):
                q = queries_all[:B]
                repeats = args.repeats if B * C <= 10**8 else 1
                exact_idx = None
                variants = []
                if "torch" in methods:
                    chunk = args.candidate_chunk or auto_candidate_chunk(device, B, args.brand_chunk)
                    qd, kd = (q.to("cuda"), keys_dev) if device == "cuda" else (q, keys)
                    variants.append(("torch", lambda: chunked_topk(qd, kd, args.k, brand_chunk=args.brand_chunk,
                                                                   candidate_chunk=chunk)))
                    if "bf16" in args.dtypes:
                        kd16 = kd.to(torch.bfloat16)  # kept in bf16 once, as the ranker does
                        variants.append(("torch bf16", lambda: chunked_topk(qd, kd16, args.k, brand_chunk=args.brand_chunk,
                                                                            candidate_chunk=chunk,
                                                                            compute_dtype=torch.bfloat16)))
                if "torch" not in methods or "bf16" not in args.dtypes:
                    kd16 = None
                if flat is not None:
                    variants.append(("faiss", lambda: flat.search(q, args.k)))
                if ivf is not None:
                    variants.append(("faiss_ivf", lambda: ivf.search(q, args.k)))
                for name, fn in variants:
                    seconds, peak, (values, idx) = timed(fn, device, repeats, warmup=B * C <= 10**8)
                    row = {"device": device, "method": name, "brands": B, "candidates": C, "seconds": seconds,
                           "peak_mib": peak / 2**20, "note": ""}
                    if exact_idx is None and name in ("torch", "faiss"):
                        exact_idx = idx.cpu()
                    if exact_idx is not None and name != "torch":
                        row["recall"] = recall(idx.cpu(), exact_idx)
                    rows.append(row)
                    print(_line(row), flush=True)
            if device == "cuda":
                del keys_dev
                torch.cuda.empty_cache()
            ivf = flat = None  # free the indexes before the next pool size
            gc.collect()

    crossover = _crossover(rows)
    report = {"info": info, "rows": rows, "crossover": crossover}
    print()
    print(markdown(report))
    if args.out:
        with open(args.out, "w") as h:
            json.dump(report, h, indent=2)
    return report


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as h:
            for line in h:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def _line(row: dict) -> str:
    rec = f", recall@k {row['recall']:.3f}" if "recall" in row else ""
    return (f"{row['device']:>4} {row['method']:<16} B={row['brands']:>5,} C={row['candidates']:>9,}  "
            f"{_ms(row['seconds']):>10}  peak +{row['peak_mib']:.0f} MiB{rec}")


def _ms(s: float) -> str:
    return f"{s * 1e3:.1f} ms" if s < 10 else f"{s:.1f} s"


def _crossover(rows: list[dict]) -> dict:
    """Per device and faiss method: speed-up over the exact torch path per (B, C), and the
    cross-over: the smallest B x C from which it is faster at every larger B x C measured."""
    out = {}
    base = {(r["device"], r["brands"], r["candidates"]): r["seconds"] for r in rows
            if r["method"] == "torch" and r["brands"]}
    for method in ("torch bf16", "faiss", "faiss_ivf"):
        for device in sorted({r["device"] for r in rows}):
            cells = sorted((r["brands"] * r["candidates"], r["brands"], r["candidates"],
                            base[(device, r["brands"], r["candidates"])] / r["seconds"], r.get("recall"))
                           for r in rows if r["method"] == method and r["device"] == device and r["brands"]
                           and (device, r["brands"], r["candidates"]) in base)
            if not cells:
                continue
            crossover = None
            for pairs, _, _, speedup, _ in reversed(cells):
                if speedup <= 1:
                    break
                crossover = pairs
            out[f"{device} {method}"] = {
                "speedup": {f"{b}x{c}": round(s, 2) for _, b, c, s, _ in cells},
                "recall": {f"{b}x{c}": rec for _, b, c, _, rec in cells if rec is not None},
                "faster_from_pairs": crossover,
            }
    return out


def markdown(report: dict) -> str:
    """The results as a Markdown table (times are medians; peak = extra memory during the call)."""
    lines = ["| device | method | brands | candidates | time | peak extra memory | recall@k | note |",
             "|---|---|---:|---:|---:|---:|---:|---|"]
    for r in report["rows"]:
        rec = f"{r['recall']:.3f}" if "recall" in r else ""
        lines.append(f"| {r['device']} | {r['method']} | {r['brands']:,} | {r['candidates']:,} | {_ms(r['seconds'])} "
                     f"| {r['peak_mib']:.0f} MiB | {rec} | {r.get('note', '')} |")
    for key, c in report["crossover"].items():
        wins = c["faster_from_pairs"]
        lines.append("")
        lines.append(f"- {key} vs exact torch, speed-up per B x C: {c['speedup']}; "
                     + (f"faster at every size from B x C = {wins:,} on" if wins
                        else "slower at the largest size measured (no cross-over in this grid)"))
    return "\n".join(lines)


if __name__ == "__main__":
    main()
