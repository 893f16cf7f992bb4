"""Importers that write the raw dataset layout (:mod:`bamir.data.schema`) from other sources.

- :mod:`.instaloader`: an Instagram download made with ``instaloader`` (one folder per profile).
- :mod:`.pairs`: brand-influencer pair lists (CSV, TSV, or Gan et al.'s spreadsheet) and the
  discover split built from them.
"""

from bamir.data.importers.instaloader import import_instaloader
from bamir.data.importers.pairs import discover_split, import_pairs, read_pairs

__all__ = ["discover_split", "import_instaloader", "import_pairs", "read_pairs"]
