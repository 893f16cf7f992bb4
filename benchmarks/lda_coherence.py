"""Topic coherence of the topic stage's LDA settings against gensim's defaults.

Corpus: the Lee background corpus that gensim ships in its test data (300 news documents,
``gensim.test.utils.datapath('lee_background.cor')``). Both models see the same terms
(``bamir.features.text.preprocess``: tokenise, lemmatise, drop stop words) and the same
dictionary (``filter_extremes`` as configured); they differ only in the LDA settings:

* ``gensim defaults``: ``LdaModel(corpus, num_topics, id2word)`` - 1 pass, 50 iterations,
  symmetric alpha, symmetric eta;
* ``bamir``: :class:`bamir.features.settings.TopicSettings` (the defaults conf/features/topic/lda.yaml extends).

Reports c_v (sliding-window NPMI-based, higher is better, typically 0.3-0.7) and u_mass
(document co-occurrence, closer to 0 is better), the mean and spread over seeds.

    python benchmarks/lda_coherence.py [--topics 19] [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import statistics
import time

from gensim.models import CoherenceModel, LdaModel
from gensim.test.utils import datapath

from bamir.features.settings import TopicSettings
from bamir.features.topic import documents_to_terms, fit_lda


def coherence(model, texts, corpus, dictionary) -> dict[str, float]:
    out = {}
    for measure in ("c_v", "u_mass"):
        cm = CoherenceModel(model=model, texts=texts, corpus=corpus, dictionary=dictionary,
                            coherence=measure, topn=10, processes=1)
        out[measure] = cm.get_coherence()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--topics", type=int, default=19)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()

    with open(datapath("lee_background.cor"), encoding="utf8") as handle:
        documents = [line for line in handle if line.strip()]
    base = TopicSettings(num_topics=args.topics, workers=1)
    terms = documents_to_terms(documents, base)
    print(f"Lee background corpus: {len(documents)} documents, {sum(map(len, terms))} terms, {args.topics} topics")

    results: dict[str, list[dict[str, float]]] = {"gensim defaults": [], "bamir": []}
    seconds: dict[str, float] = {"gensim defaults": 0.0, "bamir": 0.0}
    for seed in args.seeds:
        settings = TopicSettings(num_topics=args.topics, workers=1, random_state=seed)
        t = time.perf_counter()
        dictionary, model = fit_lda(terms, settings)
        seconds["bamir"] += time.perf_counter() - t
        corpus = [dictionary.doc2bow(d) for d in terms]
        results["bamir"].append(coherence(model, terms, corpus, dictionary))

        t = time.perf_counter()
        default = LdaModel(corpus=corpus, id2word=dictionary, num_topics=args.topics, random_state=seed)
        seconds["gensim defaults"] += time.perf_counter() - t
        results["gensim defaults"].append(coherence(default, terms, corpus, dictionary))

    print(f"vocabulary after filter_extremes: {len(dictionary)}; seeds {args.seeds}")
    print(f"{'settings':<18}{'c_v mean':>10}{'c_v sd':>8}{'u_mass mean':>13}{'u_mass sd':>11}{'fit s':>8}")
    for name, rows in results.items():
        cv = [r["c_v"] for r in rows]
        um = [r["u_mass"] for r in rows]
        sd = (lambda xs: statistics.stdev(xs) if len(xs) > 1 else 0.0)
        print(f"{name:<18}{statistics.mean(cv):>10.3f}{sd(cv):>8.3f}{statistics.mean(um):>13.3f}{sd(um):>11.3f}"
              f"{seconds[name] / len(args.seeds):>8.1f}")
    print("bamir settings:", {k: v for k, v in vars(TopicSettings()).items() if k not in ("workers", "random_state")})


if __name__ == "__main__":
    main()
