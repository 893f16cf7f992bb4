"""Walks per second: the vectorised node2vec walker against the plain-Python reference walker.

Both walkers sample the same biased second-order walks (Grover & Leskovec, KDD 2016; see
:mod:`bamir.features.concept.node2vec`) on the same graphs in the same run: Zachary's
karate club (weighted), a 412-node weighted stochastic block model shaped like BAMIR's
concept graph, and a 10k-node weighted Barabasi-Albert graph. Each timing is the median of
``--repeats`` runs; the speedup compares walks per second.

    python benchmarks/node2vec_walks.py [--repeats 5] [--walk-length 80] [--device cpu|cuda]
                                        [--threads N] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import networkx as nx
import numpy as np
import torch

from bamir.features.concept.node2vec import CSRGraph, random_walks, reference_random_walks


def graphs(seed: int = 0) -> dict[str, nx.Graph]:
    rng = np.random.default_rng(seed)
    sizes = [35] * 11 + [27]  # 412 nodes in 12 blocks
    probs = np.full((12, 12), 0.02)
    np.fill_diagonal(probs, 0.3)
    sbm = nx.stochastic_block_model(sizes, probs.tolist(), seed=seed)
    ba = nx.barabasi_albert_graph(10_000, 5, seed=seed)
    for g in (sbm, ba):
        for u, v in g.edges():
            g.edges[u, v]["weight"] = float(np.sqrt(rng.integers(8, 200) / 2))  # like sqrt(cooc / 2)
    return {"karate": nx.karate_club_graph(), "concept-like SBM": sbm, "Barabasi-Albert": ba}


def median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--walk-length", type=int, default=80)
    parser.add_argument("--walks-per-node", type=int, default=10, help="vectorised walker: walks per node")
    parser.add_argument("--reference-walks", type=int, default=1000, help="reference walker: walks per run")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--json", default=None, help="also write the rows to this file")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    rows = []
    for name, g in graphs().items():
        csr_cpu = CSRGraph.from_networkx(g)
        csr = csr_cpu.to(device)
        adjacency = csr_cpu.adjacency()
        n = csr.num_nodes
        for p, q in ((1.0, 1.0), (0.5, 2.0), (4.0, 0.25)):
            start = torch.arange(n, device=device).repeat(args.walks_per_node)
            gen = torch.Generator(device=device).manual_seed(0)

            def vectorised():
                random_walks(csr, start, args.walk_length, p, q, generator=gen)
                if device.type == "cuda":
                    torch.cuda.synchronize()

            vectorised()  # warm-up
            t_vec = median_time(vectorised, args.repeats)
            ref_start = (list(range(n)) * (args.reference_walks // n + 1))[: args.reference_walks]
            t_ref = median_time(
                lambda: reference_random_walks(csr_cpu, ref_start, args.walk_length, p, q, seed=0, adjacency=adjacency),
                args.repeats,
            )
            vec_rate, ref_rate = start.numel() / t_vec, len(ref_start) / t_ref
            common = {"graph": name, "nodes": n, "edges": int(csr.col.numel()) // 2, "p": p, "q": q,
                      "length": args.walk_length}
            rows.append({**common, "walker": f"vectorised ({device.type})", "walks": start.numel(),
                         "median_s": t_vec, "walks_per_s": vec_rate, "speedup": vec_rate / ref_rate})
            rows.append({**common, "walker": "python reference", "walks": len(ref_start),
                         "median_s": t_ref, "walks_per_s": ref_rate, "speedup": 1.0})
    header = f"{'graph':<18} {'nodes':>6} {'edges':>7} {'p':>4} {'q':>5} {'walker':<20} {'walks':>7} " \
             f"{'median s':>9} {'walks/s':>11} {'speedup':>8}"
    print(f"node2vec walks of {args.walk_length} nodes, median of {args.repeats} runs, torch threads "
          f"{torch.get_num_threads()}")
    print(header)
    print("-" * len(header))
    for r in rows:
        print(f"{r['graph']:<18} {r['nodes']:>6} {r['edges']:>7} {r['p']:>4g} {r['q']:>5g} {r['walker']:<20} "
              f"{r['walks']:>7} {r['median_s']:>9.4f} {r['walks_per_s']:>11,.0f} {r['speedup']:>7.1f}x")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(rows, handle, indent=2)
    return rows


if __name__ == "__main__":
    main()
