"""Ranking brands against influencer pools with a trained ranker.

- :mod:`~bamir.ranking.search`: top-k over embeddings (exact chunked matmul, faiss);
- :mod:`~bamir.ranking.ranker`: candidate embeddings once per checkpoint, top-k and per-branch shares;
- :mod:`~bamir.ranking.accounts`: account profiles and brand or influencer names;
- :mod:`~bamir.ranking.candidates`: the candidate pool and its filters;
- :mod:`~bamir.ranking.tables`: the ranked table;
- :mod:`~bamir.ranking.app`: ``bamir-rank``, putting them together.
"""

from bamir.ranking.accounts import UnknownNameError, account_profiles, raw_root_of, resolve_names
from bamir.ranking.candidates import CandidateFilter, candidate_rows, linked_exclusions
from bamir.ranking.ranker import CandidateIndex, Ranker, Ranking, branch_embedder
from bamir.ranking.search import FaissSearch, auto_candidate_chunk, choose_method, chunked_topk, faiss_available
from bamir.ranking.tables import format_table, ranking_frame

__all__ = ["CandidateFilter", "CandidateIndex", "FaissSearch", "Ranker", "Ranking", "UnknownNameError",
           "account_profiles", "auto_candidate_chunk", "branch_embedder", "candidate_rows", "choose_method",
           "chunked_topk", "faiss_available", "format_table", "linked_exclusions", "ranking_frame", "raw_root_of",
           "resolve_names"]
