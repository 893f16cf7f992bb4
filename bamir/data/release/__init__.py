"""Import the published BAMIR release (``train_test_split/`` folder) into a feature store.

The release holds precomputed features of the "discover" split of the Gan et al. (2019)
data: per side (train, and optionally test) the brands' and influencers' global indices in
row order, node-id maps, LDA topic vectors, node2vec concept vectors and the brands' image
vectors (object 1000 + scene 365), the training triplets and the test label matrix. See
``docs/release.md`` for the layout, file by file.

:func:`read_release` loads and checks every file (nothing is written);
:func:`import_release` turns the result into a :class:`~bamir.store.FeatureStore`:

- accounts: the brands, then the influencers, of either side, each in global-index order;
  ``account_id`` = username, with a ``brand:``/``influencer:`` prefix only where a brand and
  an influencer share a name in the release's name lists (4 names in the real release);
- modalities ``topic``, ``concept``, ``object``, ``scene``; a test candidate that is also a
  training influencer takes its row from the *test* files, so the published test protocol
  is reproduced exactly (the manifest counts how many such rows there were and how many
  differ from their training rows);
- pairs: the distinct (brand, positive) of the triplet file, then the test label matrix;
- split ``discover``; triplet set ``release`` (the release's own triplets, as store rows);
- categories: the release has only the category *names*, so brand categories are inferred
  from the same-category negative of every triplet group (:func:`infer_categories`).

Files are read with ``torch.load(weights_only=True)``, ``numpy.load(allow_pickle=False)``
and :func:`~bamir.data.safe_pickle.loads_plain_pickle`; no file of the release can run code.
"""

from bamir.data.release.categories import CategoryInference, infer_categories
from bamir.data.release.importer import import_release
from bamir.data.release.layout import (BRAND_LIST, CATEGORY_LIST, IMAGE_DIM, INF_LIST, OBJECT_DIM, SCENE_DIM,
                                       TEST_LABEL_FILE, TRIPLET_FILE, ReleaseError, side_files)
from bamir.data.release.reader import Release, ReleaseSide, read_release

__all__ = ["BRAND_LIST", "CATEGORY_LIST", "IMAGE_DIM", "INF_LIST", "OBJECT_DIM", "SCENE_DIM", "TEST_LABEL_FILE",
           "TRIPLET_FILE", "CategoryInference", "Release", "ReleaseError", "ReleaseSide", "import_release",
           "infer_categories", "read_release", "side_files"]
