"""ConceptNet assertions: a streamed reader and a compact, cached edge index.

BAMIR (step 2 of the concept pipeline, ``docs/method.md`` section 7) maps each
biography word and the business category to the concept set through ConceptNet's English
IsA / RelatedTo-style edges (Speer, Chin & Havasi, "ConceptNet 5.5", AAAI 2017).

**Input.** A file in the ConceptNet assertions layout, plain or gzip (detected by its
magic bytes, not its name): one assertion per line, five tab-separated columns::

    /a/[/r/IsA/,/c/en/puppy/n/,/c/en/dog/]  /r/IsA  /c/en/puppy/n  /c/en/dog  {"weight": 2.0, ...}

The full dump (about 34 M assertions, 10 GB unpacked) is streamed line by line; a line is
kept when its relation is one of ``relations`` and both ends are ``/c/<lang>/...`` with a
language in ``languages``. A term is the URI's fourth segment with ``_`` read as a space
and case-folded (``/c/en/ice_cream/n`` -> ``ice cream``); the weight is the JSON field
``weight`` (1.0 when absent), read with a regular expression rather than a JSON parse.

**Index.** Terms become integer ids; edges are four parallel arrays (``src``, ``dst``
int32, ``rel`` uint8 into ``relations``, ``weight`` float32), about 13 bytes an edge.
After the first read the index is saved as ``.npz`` next to the file (or in
``cache_dir``; when the file's folder is not writable, in ``~/.cache/bamir/conceptnet``),
keyed by a fingerprint of the file and the filter, and later reads load it instead.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from bamir.features.settings import CONCEPTNET_RELATIONS
from bamir.utils import atomic_write_bytes, stable_hash

#: The config key that names the file; quoted by :class:`ConceptNetNotFound`.
CONFIG_KEY = "features.concept.conceptnet_path"


_INDEX_VERSION = 1
_WEIGHT = re.compile(r'"weight"\s*:\s*([-+0-9.eE]+)')


class ConceptNetNotFound(FileNotFoundError):
    """No ConceptNet assertions file where the config points (the message names the key)."""


def normalise_relation(relation: str) -> str:
    """``IsA``, ``/r/IsA`` and ``/r/IsA/`` all become ``/r/IsA``."""
    relation = relation.strip().strip("/")
    if relation.startswith("r/"):
        relation = relation[2:]
    return f"/r/{relation}"


def normalise_term(term: str) -> str:
    """A ConceptNet term or concept name in the index's form: ``_`` as space, case-folded."""
    return " ".join(term.replace("_", " ").casefold().split())


def _split_uri(uri: str) -> tuple[str, str] | None:
    # /c/en/ice_cream/n/wn/food -> ("en", "ice_cream")
    if not uri.startswith("/c/"):
        return None
    parts = uri.split("/", 4)
    if len(parts) < 4 or not parts[2] or not parts[3]:
        return None
    return parts[2], parts[3]


def _open_text(path: Path) -> io.TextIOBase:
    with open(path, "rb") as handle:
        magic = handle.read(2)
    if magic == b"\x1f\x8b":
        return gzip.open(path, "rt", encoding="utf-8", errors="replace", newline="\n")
    return open(path, "rt", encoding="utf-8", errors="replace", newline="\n")


def check_path(path: str | os.PathLike | None, hint: str = "") -> Path:
    """``path`` as a Path when it is an existing file, else :class:`ConceptNetNotFound`."""
    if path is None or not Path(path).is_file():
        where = "no path given" if path is None else f"{path} does not exist"
        raise ConceptNetNotFound(
            f"ConceptNet assertions file not found ({where}). Set `{CONFIG_KEY}` to a file in the "
            "ConceptNet assertions layout (5 tab-separated columns, plain or .gz, e.g. "
            "conceptnet-assertions-5.7.0.csv.gz)" + (f" or {hint}" if hint else "") + "."
        )
    return Path(path)


def iter_assertions(
    path: str | os.PathLike,
    relations: Iterable[str] = tuple(CONCEPTNET_RELATIONS),
    languages: Iterable[str] = ("en",),
    stats: dict[str, int] | None = None,
) -> Iterator[tuple[str, str, str, float]]:
    """Stream ``(relation, start term, end term, weight)`` of the kept assertions.

    ``stats`` (optional) receives ``lines``, ``kept`` and ``malformed`` counts.
    """
    path = check_path(path)
    rels = {normalise_relation(r) for r in relations}
    langs = set(languages)
    lines = kept = malformed = 0
    with _open_text(path) as handle:
        for line in handle:
            lines += 1
            cols = line.rstrip("\n").split("\t", 4)
            if len(cols) < 4:
                if line.strip():
                    malformed += 1
                continue
            relation = cols[1].rstrip("/")
            if relation not in rels:
                continue
            start, end = _split_uri(cols[2]), _split_uri(cols[3])
            if start is None or end is None:
                malformed += 1
                continue
            if start[0] not in langs or end[0] not in langs:
                continue
            weight = 1.0
            if len(cols) == 5:
                found = _WEIGHT.search(cols[4])
                if found:
                    try:
                        weight = float(found.group(1))
                    except ValueError:
                        malformed += 1
            kept += 1
            yield relation, normalise_term(start[1]), normalise_term(end[1]), weight
    if stats is not None:
        stats.update(lines=lines, kept=kept, malformed=malformed)


def fingerprint(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """SHA-256 of a file's size and bytes; files over 8 MiB hash their size, first and last MiB."""
    path = Path(path)
    size = path.stat().st_size
    digest = hashlib.sha256(str(size).encode())
    with open(path, "rb") as handle:
        if size <= 8 * chunk:
            while block := handle.read(chunk):
                digest.update(block)
        else:
            digest.update(handle.read(chunk))
            handle.seek(size - chunk)
            digest.update(handle.read(chunk))
    return digest.hexdigest()


@dataclass
class ConceptNetIndex:
    """Filtered ConceptNet edges over integer term ids (see the module docstring)."""

    terms: list[str]
    src: np.ndarray
    dst: np.ndarray
    rel: np.ndarray
    weight: np.ndarray
    relations: tuple[str, ...]
    languages: tuple[str, ...] = ("en",)
    source: str = ""
    stats: dict[str, int] = field(default_factory=dict)
    _term_id: dict[str, int] | None = field(default=None, repr=False)

    # ------------------------------------------------------------------ build / load
    @classmethod
    def from_assertions(
        cls,
        rows: Iterable[tuple[str, str, str, float]],
        relations: Iterable[str] = tuple(CONCEPTNET_RELATIONS),
        languages: Iterable[str] = ("en",),
    ) -> "ConceptNetIndex":
        """Index already parsed ``(relation, start, end, weight)`` rows (self-loops dropped)."""
        relations = tuple(dict.fromkeys(normalise_relation(r) for r in relations))
        if len(relations) > 255:
            raise ValueError("at most 255 relations")
        rel_id = {r: i for i, r in enumerate(relations)}
        term_id: dict[str, int] = {}
        src: list[int] = []
        dst: list[int] = []
        rel: list[int] = []
        weight: list[float] = []
        for relation, start, end, w in rows:
            r = rel_id.get(normalise_relation(relation))
            if r is None or start == end:
                continue
            src.append(term_id.setdefault(start, len(term_id)))
            dst.append(term_id.setdefault(end, len(term_id)))
            rel.append(r)
            weight.append(w)
        return cls(
            terms=list(term_id),
            src=np.asarray(src, dtype=np.int32),
            dst=np.asarray(dst, dtype=np.int32),
            rel=np.asarray(rel, dtype=np.uint8),
            weight=np.asarray(weight, dtype=np.float32),
            relations=relations,
            languages=tuple(languages),
            _term_id=term_id,
        )

    @classmethod
    def load(
        cls,
        path: str | os.PathLike | None,
        relations: Iterable[str] = tuple(CONCEPTNET_RELATIONS),
        languages: Iterable[str] = ("en",),
        cache_dir: str | os.PathLike | None = None,
        use_cache: bool = True,
    ) -> "ConceptNetIndex":
        """Read ``path`` (plain or gzip), filtered, through the index cache.

        Raises :class:`ConceptNetNotFound` (naming ``features.concept.conceptnet_path``)
        when ``path`` is missing.
        """
        path = check_path(path)
        relations = tuple(dict.fromkeys(normalise_relation(r) for r in relations))
        languages = tuple(dict.fromkeys(languages))
        key = stable_hash(
            {"v": _INDEX_VERSION, "file": fingerprint(path), "rel": sorted(relations), "lang": sorted(languages)}
        )[:16]
        if use_cache:
            for candidate in _cache_candidates(path, key, cache_dir):
                if candidate.is_file():
                    try:
                        return cls._read_npz(candidate, source=str(path))
                    except Exception:  # a corrupt cache is rebuilt
                        pass
        stats: dict[str, int] = {}
        index = cls.from_assertions(iter_assertions(path, relations, languages, stats), relations, languages)
        index.source = str(path)
        index.stats = stats
        if use_cache:
            for candidate in _cache_candidates(path, key, cache_dir):
                try:
                    index._write_npz(candidate)
                    break
                except OSError:
                    continue
        return index

    def _write_npz(self, target: Path) -> None:
        buffer = io.BytesIO()
        meta = {
            "version": _INDEX_VERSION,
            "relations": list(self.relations),
            "languages": list(self.languages),
            "stats": self.stats,
        }
        np.savez(
            buffer,
            terms=np.frombuffer("\n".join(t.replace("\n", " ") for t in self.terms).encode(), dtype=np.uint8),
            src=self.src,
            dst=self.dst,
            rel=self.rel,
            weight=self.weight,
            meta=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8),
        )
        atomic_write_bytes(target, buffer.getvalue())

    @classmethod
    def _read_npz(cls, path: Path, source: str) -> "ConceptNetIndex":
        with np.load(path) as data:
            meta = json.loads(data["meta"].tobytes().decode())
            text = data["terms"].tobytes().decode()
            index = cls(
                terms=text.split("\n") if text else [],
                src=data["src"],
                dst=data["dst"],
                rel=data["rel"],
                weight=data["weight"],
                relations=tuple(meta["relations"]),
                languages=tuple(meta["languages"]),
                source=source,
                stats=dict(meta.get("stats", {}), cached=1),
            )
        if meta.get("version") != _INDEX_VERSION:
            raise ValueError("stale index version")
        return index

    # ------------------------------------------------------------------ queries
    @property
    def num_edges(self) -> int:
        return int(self.src.shape[0])

    @property
    def term_id(self) -> dict[str, int]:
        if self._term_id is None:
            self._term_id = {t: i for i, t in enumerate(self.terms)}
        return self._term_id

    def __contains__(self, term: str) -> bool:
        return normalise_term(term) in self.term_id

    def edges(self) -> Iterator[tuple[str, str, str, float]]:
        """All edges as ``(relation, start, end, weight)``."""
        for s, d, r, w in zip(self.src.tolist(), self.dst.tolist(), self.rel.tolist(), self.weight.tolist()):
            yield self.relations[r], self.terms[s], self.terms[d], w

    def neighbours(self, term: str) -> dict[str, float]:
        """Terms joined to ``term`` by an edge in either direction, with the largest weight."""
        i = self.term_id.get(normalise_term(term))
        if i is None:
            return {}
        out: dict[str, float] = {}
        for mask, other in ((self.src == i, self.dst), (self.dst == i, self.src)):
            for j, w in zip(other[mask].tolist(), self.weight[mask].tolist()):
                name = self.terms[j]
                out[name] = max(out.get(name, float("-inf")), w)
        return out

    def links_to(self, concepts: Iterable[str]) -> dict[str, dict[str, float]]:
        """For every term with an edge to a concept (either direction): ``{term: {concept: weight}}``.

        The weight is the largest ConceptNet weight among the joining edges; concepts absent
        from the index get no entry.
        """
        ids = self.term_id
        concept_of = {}
        for concept in concepts:
            i = ids.get(normalise_term(concept))
            if i is not None:
                concept_of[i] = normalise_term(concept)
        if not concept_of or self.num_edges == 0:
            return {}
        is_concept = np.zeros(len(self.terms), dtype=bool)
        is_concept[list(concept_of)] = True
        out: dict[str, dict[str, float]] = {}
        for here, there in ((self.src, self.dst), (self.dst, self.src)):
            mask = is_concept[there]
            for t, c, w in zip(here[mask].tolist(), there[mask].tolist(), self.weight[mask].tolist()):
                term, concept = self.terms[t], concept_of[c]
                slot = out.setdefault(term, {})
                slot[concept] = max(slot.get(concept, float("-inf")), w)
        return out


def _cache_candidates(path: Path, key: str, cache_dir: str | os.PathLike | None) -> list[Path]:
    name = f"{path.name}.index-{key}.npz"
    if cache_dir is not None:
        return [Path(cache_dir) / name]
    home = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "bamir" / "conceptnet"
    return [path.parent / f".{name}", home / name]
