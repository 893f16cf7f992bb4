"""Every feature stage's settings: one dataclass per stage, the one source of its defaults.

A stage builds its settings from keyword arguments (``TopicStage(num_topics=7)`` is
``TopicSettings(num_topics=7)``). Hydra composes ``conf/features/<stage>/*.yaml`` on top of the
same dataclass, registered as a structured config by :func:`register` (every app does it at
start-up), so those YAML files only override; an unknown key or a value of the wrong type fails
when the config is composed, naming the key (``features.topic.num_topic=5``: "Could not
override"). ``enabled: false`` or ``features.<stage>=null`` leaves a stage out.

Only what changes a stage's numbers enters its ``config()`` and so the store's staleness hash:
loader sizes, worker counts, devices and caches do not. This module imports neither torch nor
the stages, so registering it keeps ``--help`` fast.
"""

from dataclasses import asdict, dataclass, field, fields, make_dataclass
from typing import Any, ClassVar, Dict, List, Optional

#: the config group the schemas are stored under: ``conf/features/topic/lda.yaml`` extends
#: ``/schema/features/topic``
SCHEMA_GROUP = "schema/features"

#: ConceptNet relations that map a word to a concept (IsA / RelatedTo style), sorted
CONCEPTNET_RELATIONS = ["/r/DerivedFrom", "/r/FormOf", "/r/HasContext", "/r/IsA", "/r/PartOf", "/r/RelatedTo",
                        "/r/Synonym", "/r/UsedFor"]
#: mentions that link two accounts' concepts in the concept graph
MENTION_KINDS = ["brand-brand", "brand-influencer", "influencer-influencer"]
#: the three sources of an account's concepts (docs/method.md section 7)
CONCEPT_SOURCES = ["biography", "business_category", "hashtags"]
#: per-post class distributions pooled per account: docs/method.md section 6
POOLINGS = ("published", "mean", "max")


def _check(value: Any, allowed: Any, name: str) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {list(allowed)}, got {value!r}")


@dataclass
class Settings:
    """A stage's settings; a whole number given for a float setting becomes a float, as Hydra
    makes it, so the stage's ``config()`` (and the store's hash) is the same either way."""

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.type in (float, Optional[float]) and isinstance(value, int) and not isinstance(value, bool):
                setattr(self, f.name, float(value))


@dataclass
class TopicSettings(Settings):
    """gensim LDA over each account's captions joined (:mod:`bamir.features.topic`). Chosen on
    gensim's Lee background corpus (``benchmarks/lda_coherence.py``): c_v 0.467 against 0.348 for
    gensim's defaults. ``alpha``/``eta`` take gensim's values ("symmetric", "asymmetric", "auto",
    a float; "auto" forces the single-process LdaModel); ``no_below``/``no_above``/``keep_n``
    prune the dictionary on the training documents (``filter_extremes``); ``min_len`` is the
    shortest term kept after lemmatisation; ``workers``: LdaMulticore workers when >= 2, "auto" =
    usable cores - 1."""

    num_topics: int = 19  # published: 19 (MORNING used 22)
    passes: int = 20
    iterations: int = 400
    chunksize: int = 2000
    alpha: Any = "asymmetric"
    eta: Any = "auto"
    no_below: int = 2
    no_above: float = 0.5
    keep_n: int = 100_000
    min_len: int = 3
    lemmatise: bool = True
    workers: Any = "auto"
    random_state: int = 0


@dataclass
class HashtagSettings(Settings):
    """TF-IDF over the spam-filtered hashtags, truncated SVD to ``dim`` (:mod:`bamir.features.hashtag`).
    A tag is kept when at least ``min_df`` training accounts and at most the share ``max_df`` of
    them use it. ``spam`` configures :class:`bamir.features.hashtags.HashtagFilter`: generic and
    farming tags reach 0.6-0.9 of the accounts at the paper preset, interest tags about 0.35."""

    dim: int = 64
    min_df: int = 2
    max_df: float = 1.0
    max_features: int = 50_000
    sublinear_tf: bool = True
    normalize: bool = True
    seed: int = 0
    spam: Dict[str, Any] = field(default_factory=lambda: {"max_account_share": 0.5, "min_accounts": 20})


@dataclass
class InteractionSettings(Settings):
    """Engagement, its spread, posting rhythm, log followers and mention-graph degrees
    (:mod:`bamir.features.interaction`), standardised with the training accounts' mean and sd,
    then clipped to +-``clip`` (null: not clipped)."""

    standardise: bool = True
    clip: Optional[float] = 5.0


@dataclass
class ImageSettings(Settings):
    """What the two image stages share (:mod:`bamir.features.image`). ``weights``: a local
    checkpoint; null = random-initialised (nothing is downloaded; the manifest note says so).
    ``pooling`` per account: published (zero <= ``threshold``, sum, softmax) | mean | max.
    ``num_workers``: DataLoader processes, "auto" = usable cores - 1 (at most 8); ``decode``: auto =
    on the GPU when on CUDA, else in the workers; ``amp``: bf16 autocast on CUDA; ``channels_last``
    pays on CPU and GPU; ``compile``: torch.compile (worth it for large GPU runs); ``shard_size``:
    accounts per resumable shard; ``seed``: the initialisation when ``weights`` is null."""

    #: the settings that change the numbers (the staleness hash), besides pooling and threshold
    RESULT: ClassVar[tuple[str, ...]] = ("weights", "image_size", "seed")

    weights: Optional[str] = None
    image_size: int = 224
    pooling: str = "published"
    threshold: float = 0.1
    batch_size: int = 64
    num_workers: Any = "auto"
    decode: str = "auto"
    amp: Any = "auto"
    channels_last: Any = True
    compile: bool = False
    shard_size: int = 256
    seed: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        _check(self.pooling, POOLINGS, "pooling")
        _check(self.decode, ("auto", "worker", "device"), "decode")

    def result(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.RESULT}


@dataclass
class ObjectSettings(ImageSettings):
    """A timm classifier's per-post class probabilities (``model``, e.g. resnet101 with its ImageNet
    weights file as ``weights``); ``num_classes`` null = the model's own."""

    RESULT: ClassVar[tuple[str, ...]] = ("model", "num_classes", *ImageSettings.RESULT)

    model: str = "resnet101"
    num_classes: Optional[int] = None


@dataclass
class SceneSettings(ImageSettings):
    """UperNet scene parsing (transformers): per image the class areas at the decode head's own
    resolution, ``area`` soft (mean per-pixel softmax) or hard (share of arg-max pixels).
    ``backbone``: resnet50 | resnet101 | resnet18 | convnext-tiny | convnext-small, with
    ``backbone_overrides`` (depths, hidden_sizes, ...); 365 Places classes as published;
    ``weights``: a folder written by ``save_pretrained``."""

    RESULT: ClassVar[tuple[str, ...]] = ("backbone", "backbone_overrides", "num_labels", "decoder_hidden_size",
                                         "area", *ImageSettings.RESULT)

    backbone: str = "resnet50"
    backbone_overrides: Dict[str, Any] = field(default_factory=dict)
    num_labels: int = 365
    decoder_hidden_size: int = 512
    area: str = "soft"
    image_size: int = 256
    batch_size: int = 32

    def __post_init__(self) -> None:
        super().__post_init__()
        _check(self.area, ("soft", "hard"), "area")


@dataclass
class ConceptSettings(Settings):
    """BAMIR's concept pipeline (:mod:`bamir.features.concept.stage`, docs/method.md section 7).

    node2vec (:func:`bamir.features.concept.node2vec.train_node2vec`): ``dim`` ... ``batch_size``;
    published 128-d and 50 walks per node; walk length 80 and window 10 are node2vec's defaults.
    ``source_weights``: beta of each source (1 each);
    ``normalise_sources``: each source's scores sum to 1 per account; ``edge_factor``: a
    ConceptNet neighbour's lexicon weight relative to an exact match; ``hashtag_threshold``: the
    least hashtag co-occurrence of a kept concept pair (published 8), counted per ``post`` or
    ``account``; ``mention_*``: the mention part of the graph; ``spam_*``/``extra_spam``: the
    hashtag spam filter; ``related_source``: auto (the table when the file exists, else learned),
    table or learn, with ``related_*`` for learning; ``*_path``: knowledge files, null = the raw
    dataset's ``knowledge/`` folder; ``relations``, ``languages``: the ConceptNet filter
    (``use_conceptnet: false`` maps exact names only); ``normalise_embeddings``: L2-normalise
    concept embeddings before averaging; ``missing``: zero or mean vector for an account without
    a concept. ``cache_dir`` (the ConceptNet index cache; null: next to the file) and ``device``
    (where node2vec runs) do not change the result."""

    #: settings that do not change the numbers: left out of the staleness hash
    PLACE: ClassVar[tuple[str, ...]] = ("cache_dir", "device")

    dim: int = 128
    walks_per_node: int = 50
    walk_length: int = 80
    window: int = 10
    p: float = 1.0
    q: float = 1.0
    epochs: int = 1
    negatives: int = 5
    objective: str = "auto"
    steps: int = 300
    lr: Optional[float] = None
    batch_size: int = 4096
    source_weights: Dict[str, float] = field(default_factory=lambda: {s: 1.0 for s in CONCEPT_SOURCES})
    normalise_sources: bool = True
    edge_factor: float = 0.5
    hashtag_threshold: float = 8.0
    hashtag_unit: str = "post"
    mention_kinds: List[str] = field(default_factory=lambda: list(MENTION_KINDS))
    mention_top_k: int = 3
    mention_threshold: float = 1.0
    spam_max_share: float = 0.4
    spam_min_accounts: int = 20
    extra_spam: List[str] = field(default_factory=list)
    related_source: str = "auto"
    related_top_k: int = 10
    related_min_count: int = 3
    related_min_npmi: float = 0.3
    conceptnet_path: Optional[str] = None
    concepts_path: Optional[str] = None
    related_hashtags_path: Optional[str] = None
    relations: List[str] = field(default_factory=lambda: list(CONCEPTNET_RELATIONS))
    languages: List[str] = field(default_factory=lambda: ["en"])
    use_conceptnet: bool = True
    normalise_embeddings: bool = True
    missing: str = "zero"
    seed: int = 0
    cache_dir: Optional[str] = None
    device: str = "cpu"

    def __post_init__(self) -> None:
        super().__post_init__()
        unknown = sorted(set(self.source_weights) - set(CONCEPT_SOURCES))
        if unknown:
            raise ValueError(f"source_weights: unknown sources {unknown}, use {CONCEPT_SOURCES}")
        self.source_weights = {s: float(self.source_weights.get(s, 1.0)) for s in CONCEPT_SOURCES}
        _check(self.hashtag_unit, ("post", "account"), "hashtag_unit")
        _check(self.related_source, ("auto", "table", "learn"), "related_source")
        _check(self.missing, ("zero", "mean"), "missing")
        for name in ("mention_kinds", "extra_spam", "relations", "languages"):  # order does not matter
            setattr(self, name, sorted(str(v) for v in getattr(self, name)))

    def result(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k not in self.PLACE}


#: stage name -> (settings, stage class)
STAGES: dict[str, tuple[type, str]] = {
    "topic": (TopicSettings, "bamir.features.topic.TopicStage"),
    "hashtag": (HashtagSettings, "bamir.features.hashtag.HashtagStage"),
    "interaction": (InteractionSettings, "bamir.features.interaction.InteractionStage"),
    "object": (ObjectSettings, "bamir.features.image.ObjectStage"),
    "scene": (SceneSettings, "bamir.features.image.SceneStage"),
    "concept": (ConceptSettings, "bamir.features.concept.stage.ConceptStage"),
}


def register() -> None:
    """Store each stage's schema (its settings, the stage class as ``_target_``, ``enabled``) in
    Hydra's ConfigStore as ``schema/features/<stage>``; idempotent."""
    from hydra.core.config_store import ConfigStore

    store = ConfigStore.instance()
    for name, (settings, target) in STAGES.items():
        node = make_dataclass(f"{settings.__name__}Config", [("_target_", str, field(default=target)),
                                                             ("enabled", bool, field(default=True))], bases=(settings,))
        store.store(group=SCHEMA_GROUP, name=name, node=node)
