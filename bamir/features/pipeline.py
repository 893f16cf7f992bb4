"""Raw dataset -> feature store: run each configured stage only when its output is missing or stale.

``stages_cfg`` maps a stage name to a Hydra config with a ``_target_`` (the stage class,
e.g. ``bamir.features.topic.TopicStage``) and its arguments; an entry that is null,
not a mapping (e.g. the features group's ``name``), or has ``enabled: false`` is skipped.
Already-built stage objects are accepted too.

The raw dataset is validated first (:func:`require_valid_raw`), unless the store records that it
validated these very files: the manifest's ``dataset.validated`` keeps the fingerprint of the
tables (sizes and modification times, :func:`~bamir.data.validate.dataset_fingerprint`), so a
training run on a fresh store of the paper-sized preset checks it in seconds, not a minute.

For each stage the pipeline computes

* ``config`` = ``stage.config()`` (plain data; its hash is the manifest's ``config_hash``),
* ``inputs`` = hash of ``stage.inputs_hash(raw)`` and, for a stage that fits something
  (``stage.fitted``, default True), of the split's training accounts,

and skips the stage when :meth:`FeatureStore.is_fresh` holds for every modality it writes.
Otherwise the stage runs with a work folder ``<store>/work/<stage>/<hash of config and
inputs>/`` (fitted models, image shards: a rerun after a kill resumes there), its
modalities are written atomically with their time, counts, skipped inputs and note, the
work folder's files are recorded as an artifact of the manifest, and older work folders of
that stage are removed.

Per stage the manifest also gets ``counts["peak_rss_mib"]``: the peak resident memory of
the preparing process during that stage (Linux; DataLoader worker processes not included).

Stages marked ``distributed`` (the image stages) run first, as Lightning predict loops on
every device and node of the ``extraction`` entry of ``stages_cfg`` (one local device by
default; see :mod:`bamir.features.extraction`). A process launched to help
(:func:`~bamir.features.extraction.launch_rank` > 0) takes part only in those stages, never
writes the store, and returns once rank zero has written it.

The process that writes holds the store's lock (:func:`bamir.utils.exclusive`) throughout,
so processes preparing the same store at once (the jobs of a parallel sweep, the SLURM
tasks of a training run) take turns: the first computes, the others find the store fresh.
A fresh store is only read.

The store folder is bamir's (:mod:`bamir.ownership`): a non-empty folder that is not a feature
store bamir wrote is refused, unless ``foreign`` (the app's ``overwrite=true``); the store is
then built in ``.<name>.new`` beside it (every process of a distributed extraction writes its
shards there; a rerun after a kill resumes there) and swapped in at the end. Files of the
user's in a store bamir wrote are kept: a store is updated in place, never replaced whole.
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path
from typing import Any, Callable, Mapping

import torch

from bamir.data.schema import AFFINITY_FILE, DATASET_FILE, KNOWLEDGE_DIR, RawDataset, read_planted_affinity
from bamir.features.common import train_accounts
from bamir.features.extraction import extraction_trainer, launch_rank
from bamir.ownership import FEATURE_STORE, MARKER, check_target, claim
from bamir.store import FeatureStore
from bamir.utils import exclusive, file_hash, publish_dir, stable_hash

log = logging.getLogger("bamir.prepare")

WORK_DIR = "work"
EXTRACTION = "extraction"  # the entry of stages_cfg that says where distributed stages run
#: Validator codes preparing tolerates: the image stages skip such images and count them in ``skipped``.
TOLERATED = ("image_missing", "image_unreadable")
#: ConceptNet rows the validator checks before preparing (the concept stage reads them all).
VALIDATED_CONCEPTNET_ROWS = 100_000


def load_stages(stages_cfg: Mapping[str, Any]) -> dict[str, Any]:
    """Instantiate the configured stages, in config order (see the module docstring)."""
    from bamir.config import instantiate
    from omegaconf import DictConfig, OmegaConf

    stages: dict[str, Any] = {}
    for name, cfg in stages_cfg.items():
        if cfg is None or name == EXTRACTION:
            continue
        if hasattr(cfg, "run") and hasattr(cfg, "config"):
            stages[str(name)] = cfg
            continue
        if isinstance(cfg, DictConfig):
            cfg = OmegaConf.to_container(cfg, resolve=True)
        if not isinstance(cfg, Mapping) or "_target_" not in cfg:
            continue
        cfg = dict(cfg)
        if not cfg.pop("enabled", True):
            continue
        stages[str(name)] = instantiate(cfg, _convert_="all")
    return stages


def require_valid_raw(raw_root: Path, stages_cfg: Mapping[str, Any],
                      store_root: Path | None = None) -> dict[str, Any]:
    """Run the validator first (image paths checked, images not decoded); raise its
    :class:`~bamir.data.validate.ValidationError` (file, row, field) on errors.

    Missing or corrupt images are tolerated (the image stages skip and count them); errors
    in the ``knowledge/`` files alone stop only a stage that reads them (``knowledge_paths``;
    looked up only then, as importing a stage class can take seconds).

    Returns what the store records as ``dataset.validated``: the dataset's fingerprint
    (:func:`~bamir.data.validate.dataset_fingerprint`) and whether its knowledge files were
    free of errors. A dataset whose fingerprint the store at ``store_root`` already records
    is not validated again (its files are those validated then), unless its knowledge files
    had errors and a configured stage reads them.
    """
    from bamir.data.validate import ValidationError, dataset_fingerprint, validate_dataset

    fingerprint = stable_hash([dataset_fingerprint(raw_root), TOLERATED, VALIDATED_CONCEPTNET_ROWS])
    recorded = _recorded_validation(store_root) if store_root is not None else {}
    if recorded.get("fingerprint") == fingerprint and (recorded.get("knowledge") or not _reads_knowledge(stages_cfg)):
        log.info("prepare: %s is unchanged since it was validated", raw_root)
        return recorded
    report = validate_dataset(raw_root, check_images=False, tolerate=TOLERATED,
                              max_conceptnet_rows=VALIDATED_CONCEPTNET_ROWS)
    knowledge_only = all(i.file.startswith(f"{KNOWLEDGE_DIR}/") for i in report.errors)
    if not report.ok and not (knowledge_only and not _reads_knowledge(stages_cfg)):
        raise ValidationError(report)
    return {"fingerprint": fingerprint, "knowledge": report.ok}


def _recorded_validation(store_root: Path) -> dict[str, Any]:
    """The ``dataset.validated`` record of the store's manifest ({} when there is none)."""
    import json

    try:
        recorded = json.loads((store_root / "manifest.json").read_text())["dataset"].get("validated")
    except (OSError, ValueError, KeyError, AttributeError):
        return {}
    return recorded if isinstance(recorded, dict) else {}


def _reads_knowledge(stages_cfg: Mapping[str, Any]) -> bool:
    """Whether a configured stage (its class, not yet built) reads the ``knowledge/`` files."""
    from hydra.utils import get_class

    for cfg in stages_cfg.values():
        if isinstance(cfg, Mapping):
            cfg = get_class(cfg["_target_"]) if "_target_" in cfg else None
        if hasattr(cfg, "knowledge_paths"):
            return True
    return False


def stage_inputs_hash(stage: Any, raw: RawDataset, train_hash: str) -> str:
    """The inputs hash the store records for ``stage``: its raw inputs and, if it fits, the split."""
    return stable_hash([stage.inputs_hash(raw), train_hash if getattr(stage, "fitted", True) else None])


def prepare(
    raw_root: str | Path,
    store_root: str | Path,
    stages_cfg: Mapping[str, Any],
    split: str = "discover",
    *,
    progress: bool = True,
    report: dict[str, Any] | None = None,
    multiprocess: bool = True,
    foreign: bool = False,
) -> FeatureStore:
    """Create or update the feature store at ``store_root`` from the raw dataset at ``raw_root``.

    Returns the store. When ``report`` is a dict it is filled with, per stage,
    ``{"status": "fresh" | "computed" | "helped", "seconds": float, "modalities": [...]}``.
    ``multiprocess=False`` refuses an extraction config of several processes (for callers
    whose process must not be launched again, such as the training app) and makes every
    process a writer of its own, whatever its launcher rank. ``foreign`` lets it replace a
    folder that is not a feature store bamir wrote (see the module docstring).
    """
    raw_root, store_root = Path(raw_root), Path(store_root)
    if multiprocess and launch_rank() != 0:
        replacing = check_target(store_root, FEATURE_STORE, foreign=foreign, replaces=False)
        return _prepare(raw_root, store_root, stages_cfg, split, progress, report, multiprocess, helper=True,
                        replacing=replacing)
    with exclusive(store_root, "prepare"):
        replacing = check_target(store_root, FEATURE_STORE, foreign=foreign, replaces=False)
        return _prepare(raw_root, store_root, stages_cfg, split, progress, report, multiprocess, helper=False,
                        replacing=replacing)


def staging_root(store_root: Path) -> Path:
    """Where a store that replaces a foreign folder is built before the swap."""
    return store_root.parent / f".{store_root.name}.new"


def _prepare(raw_root: Path, final_root: Path, stages_cfg: Mapping[str, Any], split: str, progress: bool,
             report: dict[str, Any] | None, multiprocess: bool, helper: bool, replacing: bool) -> FeatureStore:
    start = time.perf_counter()
    store_root = staging_root(final_root) if replacing else final_root
    validated = {} if helper else require_valid_raw(raw_root, stages_cfg, store_root)
    raw = RawDataset.load(raw_root)
    if helper:  # never writes: reads the manifest rank zero decides from
        store = FeatureStore(store_root) if (store_root / "manifest.json").is_file() else None
        accounts = raw.accounts["account_id"].astype(str).tolist()
    else:
        dataset = {**{k: v for k, v in raw.info.items() if not isinstance(v, (dict, list))},
                   "raw_root": str(raw_root), "split": split, "validated": validated}
        if not (store_root / MARKER).is_file():
            claim(store_root, FEATURE_STORE, __name__)
        store = FeatureStore.create(store_root, raw.accounts, raw.pairs, raw.splits, dataset=dataset)
        accounts = store.account_ids
        _keep_planted_affinity(raw_root, store)
    train = train_accounts(raw, split)
    train_hash = stable_hash(sorted(train))
    stages = load_stages(stages_cfg)
    stages = dict(sorted(stages.items(), key=lambda item: not getattr(item[1], "distributed", False)))
    extraction = _extraction_cfg(stages_cfg)
    trainer = None
    log.info("prepare: %d accounts (%d training accounts of split %r), %d stages, store %s%s",
             len(accounts), len(train), split, len(stages), store_root, " (helper process)" if helper else "")
    report = report if report is not None else {}
    for position, (name, stage) in enumerate(stages.items(), 1):
        distributed = getattr(stage, "distributed", False)
        if helper and not distributed:
            continue
        config = stage.config()
        inputs = stage_inputs_hash(stage, raw, train_hash)
        modalities = tuple(stage.modalities)
        tag = f"[{position}/{len(stages)}] {name}"
        if store is not None and all(store.is_fresh(m, config, inputs) for m in modalities):
            log.info("%s: up to date (%s)", tag, ", ".join(modalities))
            report[name] = {"status": "fresh", "seconds": 0.0, "modalities": list(modalities)}
            continue
        if hasattr(stage, "progress"):
            stage.progress = progress
        key = stable_hash([config, inputs])[:16]
        stage_dir = store_root / WORK_DIR / name
        workdir = stage_dir / key
        if not helper:  # a helper writes nothing before rank zero has claimed the folder (its shards come after)
            workdir.mkdir(parents=True, exist_ok=True)
        log.info("%s: computing %s", tag, ", ".join(modalities))
        _reset_peak_rss()
        t0 = time.perf_counter()
        if distributed:
            if trainer is None:
                trainer = extraction_trainer(extraction, progress=progress)
                if trainer.world_size > 1 and not multiprocess:
                    raise RuntimeError(
                        f"{name}: features.extraction asks for {trainer.world_size} processes, but this app prepares "
                        f"features in its own process; run `bamir-prepare raw_root={raw_root} store_root={final_root} "
                        f"features/extraction=...` first (the store is then fresh here)")
                log.info("extraction: %d process(es), %s", trainer.world_size, type(trainer.accelerator).__name__)
            outputs = stage.run(raw, accounts, train, workdir, trainer=trainer)
        else:
            outputs = stage.run(raw, accounts, train, workdir)
        seconds = time.perf_counter() - t0
        peak = _peak_rss_mib()
        if outputs is None:  # a helper rank of a distributed stage: rank zero writes
            report[name] = {"status": "helped", "seconds": seconds, "modalities": list(modalities)}
            continue
        missing = [m for m in modalities if m not in outputs]
        if missing:
            raise RuntimeError(f"stage {name!r} did not return modalities {missing}")
        for modality in modalities:
            out = outputs[modality]
            counts = dict(out.counts)
            if peak is not None:
                counts["peak_rss_mib"] = peak
            store.write_modality(modality, out.features, out.present, config=config, inputs_hash=inputs,
                                 seconds=round(seconds, 3), counts=counts, skipped=out.skipped, note=out.note)
            if out.skipped:
                log.info("%s: %s skipped %s", tag, modality, out.skipped)
            if out.note:
                log.info("%s: %s", tag, out.note)
        store.record_artifact(name, {
            "workdir": str(workdir.relative_to(store_root)),
            "modalities": list(modalities),
            "config_hash": stable_hash(config),
            "inputs_hash": inputs,
            "files": {str(p.relative_to(workdir)): file_hash(p) for p in sorted(workdir.rglob("*")) if p.is_file()},
        })
        for old in stage_dir.iterdir():
            if old.is_dir() and old.name != key:
                shutil.rmtree(old, ignore_errors=True)
        log.info("%s: done in %.1fs%s", tag, seconds, f", peak RSS {peak} MiB" if peak is not None else "")
        report[name] = {"status": "computed", "seconds": seconds, "modalities": list(modalities)}
    if replacing and not helper:
        publish_dir(store_root, final_root)
        store = FeatureStore(final_root)
    if trainer is not None:  # helpers wait here until rank zero has written (and swapped in) every stage
        trainer.strategy.barrier("prepare-finished")
    if helper:
        log.info("prepare: helper process done in %.1fs", time.perf_counter() - start)
        return FeatureStore(final_root)
    log.info("prepare: finished in %.1fs; store %s", time.perf_counter() - start, store)
    return store


def _extraction_cfg(stages_cfg: Mapping[str, Any]) -> dict[str, Any] | None:
    """The Trainer arguments of ``stages_cfg["extraction"]`` as plain data (None: one local device)."""
    from omegaconf import DictConfig, OmegaConf

    cfg = stages_cfg.get(EXTRACTION)
    if isinstance(cfg, DictConfig):
        cfg = OmegaConf.to_container(cfg, resolve=True)
    return dict(cfg) if cfg else None


def ensure_features(
    raw_root: str | Path,
    store_root: str | Path,
    stages_cfg: Mapping[str, Any],
    split: str = "discover",
    generate: Mapping[str, Any] | Callable[[], Any] | None = None,
    progress: bool = False,
) -> FeatureStore:
    """For the training app: make sure the store has every configured modality, fresh.

    When ``generate`` is given (a Hydra config with a ``_target_``, or a callable, such as
    ``ensure_synthetic``), it runs first and (re)generates the raw dataset if it is missing or
    stale. Fresh stages are only checked
    (hashes), never recomputed. From a Hydra config, instantiate this function with
    ``_recursive_: false`` so that the stages and the generator are built here, lazily
    (recursive instantiation also works: stage objects are accepted, and a generator
    that already ran is not run again).
    """
    if generate is not None:  # generators are "ensure" functions: they regenerate only when stale
        if callable(generate):
            generate()
        else:
            from bamir.config import instantiate

            instantiate(generate)
    if not (Path(raw_root) / DATASET_FILE).is_file():
        raise FileNotFoundError(f"{raw_root}: no raw dataset ({DATASET_FILE} missing)"
                                + (" after running its generator" if generate is not None else ""))
    return prepare(raw_root, store_root, stages_cfg, split, progress=progress, multiprocess=False)


def _keep_planted_affinity(raw_root: Path, store: FeatureStore) -> None:
    """Synthetic data: copy the planted affinity into the store (for the oracle ranking)."""
    affinity = read_planted_affinity(raw_root)
    if affinity is None:
        return
    kind = store.accounts["kind"].to_numpy()
    store.write_tensors("planted_affinity", {
        "affinity": torch.from_numpy(affinity),
        "brand_rows": torch.from_numpy((kind == "brand").nonzero()[0]),
        "influencer_rows": torch.from_numpy((kind == "influencer").nonzero()[0]),
    }, note=f"copied from {raw_root / AFFINITY_FILE}")


def _reset_peak_rss() -> None:
    try:  # Linux: writing 5 to clear_refs resets the peak RSS (VmHWM) to the current RSS
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
    except OSError:
        pass


def _peak_rss_mib() -> int | None:
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) // 1024
    except OSError:
        return None
    return None
