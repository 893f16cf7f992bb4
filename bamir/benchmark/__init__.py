"""Benchmark: several rankers x several seeds on one dataset, one table with confidence intervals.

Modules: :mod:`~bamir.benchmark.scores` (recording and pooling each run's per-brand statistics),
:mod:`~bamir.benchmark.statistics` (bootstrap, paired tests, summary), :mod:`~bamir.benchmark.tables`,
:mod:`~bamir.benchmark.plots`, :mod:`~bamir.benchmark.runner` (the runs, outputs, W&B),
:mod:`~bamir.benchmark.jobs` (job folders, reused when run again), :mod:`~bamir.benchmark.search` (a row's
hyper-parameters searched inside each fold, on its inner carve).

Every run is an ordinary :func:`bamir.train.train` call on a composed ``conf/train.yaml``
(``model=<name> seed=<s>`` plus the run's overrides), with one extra callback,
:class:`ScoreRecorder`, that keeps the evaluated split's ``[B, C]`` score matrix of the model
its metrics were computed with (the best checkpoint of a learned model). The split is the test
split (``split: test``), the validation split carved from the training brands (``split: val``: the
brands each learned model's best epoch is chosen on, so optimistic for learned models), or
brand-disjoint cross-validation over the training brands (``split: cv``, for data without a test
part, such as the real release: every (model, seed, fold) is a run with ``data.cv_fold=k``, whose
best epoch is chosen on an inner validation carve of that fold's own training brands and whose
fold brands are then tested; ``cv.folds``, ``cv.seed``). From those matrices:

- **point estimate**: a metric's value on the whole split (as :mod:`bamir.metrics` computes
  it), averaged over the seeds;
- **95% confidence interval**: percentile bootstrap over the evaluated brands. One bootstrap sample draws
  ``B`` test brands with replacement; the metric is recomputed on the drawn brands for each seed
  and averaged over the seeds. Per-brand means (AUC per brand, cAUC, R@k, MRR, MAP, NDCG) are
  weighted means of per-brand values; MedR is the median of the drawn brands' first-positive
  ranks; the global ROC-AUC is recomputed from the ``[B, B]`` table of cross-brand wins
  ``W[b, b'] = sum_{p pos of b} #{n neg of b': s_n < s_p} + 0.5 #{... =}`` as
  ``w^T W w / ((w . P) (w . N))`` with ``w`` the brands' draw counts;
- **paired bootstrap test** against the reference model (BAMIR by default): on the same drawn
  brands, ``d* = stat_model - stat_ref``; with ``d`` the observed difference, the two-sided
  p-value is ``(1 + #{|d* - d| >= |d|}) / (R + 1)`` (the shift method, Sakai 2006). A model
  against itself gets ``p = 1``.
- **seed ensemble** (``seed_ensembles: [row, ...]``): one more row, ``<row> ensemble``, scored by
  the mean of the row's seeds' score matrices (:func:`~bamir.benchmark.scores.seed_ensemble`);
- **cross-validation** (``split: cv``): a (model, seed) row pools its folds (:class:`PooledRun`):
  every training brand is reported once, by the model of the fold that held it out, and the
  per-brand quantities of all folds are concatenated. Per-brand metrics (AUC per brand, cAUC, R@k,
  MRR, MAP, NDCG, MedR, the pairs AUC) are then exactly as on one split, each brand ranked against
  its own fold's candidates. The global ROC-AUC compares scores across brands, which is defined
  within a fold (one model, one candidate list) but not across folds (other models, other scales):
  the cross-wins table is block-diagonal by fold and the pooled value is
  ``sum_f w_f^T W_f w_f / sum_f (w_f . P)(w_f . N)``, the pair-weighted mean of the folds' global
  AUCs (bootstrapped the same way, ``w`` the brands' draw counts). The folds are the same for every
  seed and model (``cv.seed``), so the paired tests compare models on the same brands.

Outputs, in the benchmark's output folder: ``benchmark.md``, ``benchmark.csv`` (long: one row per
model and metric), ``runs.csv`` (each run's test metrics and time), the plots
``recall_at_k.png``, ``category_auc.png``, ``score_distributions.png``, and each run's folder
under ``jobs/<name>/seed<s>/`` (with its ``scores.pt``); with ``split: cv`` also ``folds.csv`` (each
fold's point metrics per model and seed; their means over seeds close ``benchmark.md``) and the runs
under ``jobs/<name>/seed<s>/fold<k>/``. With a W&B logger configured, the
table goes to W&B as a ``wandb.Table`` and the plots as images.
"""

from bamir.benchmark.runner import RunSpec, run_benchmark, run_specs
from bamir.benchmark.scores import (PooledRun, RunScores, ScoreRecorder, brand_statistics, pool_statistics,
                                   seed_ensemble)
from bamir.benchmark.statistics import METRICS, bootstrap_indices, metric_samples, paired_p_value, summarise
from bamir.benchmark.tables import markdown_table

__all__ = ["METRICS", "PooledRun", "RunScores", "RunSpec", "ScoreRecorder", "bootstrap_indices", "brand_statistics",
           "markdown_table", "metric_samples", "paired_p_value", "pool_statistics", "run_benchmark", "run_specs",
           "seed_ensemble", "summarise"]
