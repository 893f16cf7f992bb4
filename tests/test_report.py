"""The metric table: which weights each row describes, columns in display order, undefined cAUC said once."""

from bamir.metric_names import display_order, metric_names, mode
from bamir.report import CAUC_UNDEFINED, metric_rows, metric_table


def test_rows_name_the_checkpoint_epoch_and_columns_follow_the_cutoffs():
    metrics = {"test/ndcg@5": 0.2, "val/recall@100": 0.9, "val/recall@5": 0.3, "val/auc_global": 0.8,
               "test/auc_global": 0.7, "val/medr": 3.0, "best/epoch": 4.0, "time/fit_seconds": 2.0,
               "val/auc_global_best": 0.8}
    columns, rows = metric_rows(metrics)
    assert columns == ["auc_global", "recall@5", "recall@100", "medr", "ndcg@5"]
    assert [split for split, _ in rows] == ["val (epoch 4)", "test (epoch 4)"]
    assert rows[0][1] == ["0.800", "0.300", "0.900", "3", ""]


def test_an_undefined_cauc_is_left_out_with_one_line_saying_why():
    table = metric_table({"val/auc_global": 0.8, "val/cauc": None, "test/auc_global": 0.7, "test/cauc": None})
    assert "cauc" not in table.splitlines()[0]
    assert table.splitlines()[-1] == CAUC_UNDEFINED
    shown = metric_table({"val/auc_global": 0.8, "val/cauc": 0.6, "test/auc_global": 0.7, "test/cauc": None})
    assert "| cauc |" in shown and CAUC_UNDEFINED not in shown


def test_metric_names_and_directions():
    assert metric_names((50, 10), (10,)) == ("auc_global", "auc_brand", "auc_pairs", "cauc", "recall@10",
                                             "recall@50", "mrr", "map", "medr", "ndcg@10")
    assert display_order(["n_queries", "mrr", "train/loss", "recall@x", "auc_global"]) == ["auc_global", "mrr",
                                                                                           "n_queries"]
    assert mode("val/medr") == "min" and mode("val/auc_global") == "max" and mode("mrr") == "max"
