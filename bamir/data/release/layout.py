"""The release folder's layout: file names per side, feature sizes, how its triplet file is built."""

from __future__ import annotations

#: Global name lists (position = global index).
BRAND_LIST = "sorted_360_brand_list.pkl"
INF_LIST = "sorted_3748_inf_list.pkl"
CATEGORY_LIST = "category_list.pickle"

OBJECT_DIM = 1000
SCENE_DIM = 365
IMAGE_DIM = OBJECT_DIM + SCENE_DIM

TRIPLET_FILE = "train_label_triplet_hard13_five_samebrand.npy"
TEST_LABEL_FILE = "test_label_list.npy"

#: How the triplet file is built: per positive, NEGATIVES_PER_POSITIVE negatives, the one at
#: HARD_POSITION being a same-category negative.
NEGATIVES_PER_POSITIVE = 4
HARD_POSITION = 3

DEFAULT_SPLIT = "discover"
TRIPLET_SET = "release"


def side_files(side: str) -> dict[str, str]:
    """The required files of one side (``train`` or ``test``), by role."""
    files = {
        "brand_index": f"discover_{side}_brand_index.pickle",
        "inf_index": f"discover_{side}_inf_index.pickle",
        "brand_node_id": f"{side}_brand_node_id.pkl",
        "node_brand_id": f"{side}_node_brand_id.pkl",
        "inf_node_id": f"{side}_inf_node_id.pkl",
        "node_inf_id": f"{side}_node_inf_id.pkl",
        "brand_lda": f"{side}_brand_text_feature_lda.pt",
        "inf_lda": f"{side}_inf_text_feature_lda.pt",
        "brand_concept": f"{side}_brand_hashtag_weighted_nod2vec_0615_r1_sqrt.pt",
        "inf_concept": f"{side}_inf_hashtag_weighted_nod2vec_0615_r1_sqrt.pt",
        "brand_image": f"{side}_brand_mor_image_feature.pt",
    }
    if side == "train":
        files["triplets"] = TRIPLET_FILE
    else:
        files["labels"] = TEST_LABEL_FILE
    return files


def inf_image_file(side: str) -> str:
    """The (optional) influencer image file of one side; the public release has it, some
    copies of the folder do not (docs/release.md section 3)."""
    return f"{side}_inf_mor_image_feature.pt"


COMMON_FILES = (BRAND_LIST, INF_LIST, CATEGORY_LIST)


class ReleaseError(ValueError):
    """The release folder is incomplete or inconsistent. The message names the file."""
