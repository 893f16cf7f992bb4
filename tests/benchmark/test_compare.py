"""Rows of finished benchmarks compared again from their saved scores: the benchmark's own numbers,
another reference, rows of two folders side by side, unfinished jobs named."""

import pandas as pd
import pytest
from omegaconf import open_dict

from bamir.benchmark import run_benchmark
from bamir.benchmark.compare import compare
from bamir.benchmark.jobs import SCORES
from tests.helpers.compose import compose_config


COLUMNS = "columns=[auc_global,auc_brand,auc_pairs,cauc,recall@10,recall@50,mrr,map,medr,ndcg@10]"  # the benchmark's


def _benchmark(root, shared_data, models):
    cfg = compose_config("benchmark", root, [
        "dataset=planted_tiny", "suite=none", f"models=[{','.join(models)}]", "seeds=[0,1]", "split=cv", "cv.folds=2",
        f"reference={models[0]}", 'overrides=["trainer=cpu"]', "bootstrap.samples=300", "logger=none",
        "plots.enabled=false"], fast=False)
    with open_dict(cfg):
        cfg.paths.data_dir = str(shared_data)
    return run_benchmark(cfg)


def _compare(root, *overrides):
    return compare(compose_config("compare", root, ["bootstrap.samples=300", COLUMNS, *overrides],
                                  fast=False))


@pytest.fixture(scope="module")
def benchmarks(tmp_path_factory, shared_data, planted_store):
    root = tmp_path_factory.mktemp("compare")
    return (_benchmark(root / "a", shared_data, ["cosine", "random"]),
            _benchmark(root / "b", shared_data, ["cosine", "popularity"]))


def test_a_benchmark_compared_again_gives_its_own_table_and_another_reference(benchmarks, tmp_path):
    first, _ = benchmarks
    same = _compare(tmp_path / "same", f"benchmarks=[{first['output_dir']}]", "reference=cosine")
    pd.testing.assert_frame_equal(same["table"], first["table"])
    assert (same["output_dir"] / "compare.md").read_text() == same["markdown"]

    swapped = _compare(tmp_path / "swapped", f"benchmarks=[{first['output_dir']}]", "reference=random")["table"]
    for metric in ("auc_global", "mrr"):
        ours = swapped.query("model == 'cosine' and metric == @metric").iloc[0]
        theirs = first["table"].query("model == 'random' and metric == @metric").iloc[0]
        assert ours["delta"] == pytest.approx(-theirs["delta"])
        assert ours["p_value"] == pytest.approx(theirs["p_value"])


def test_rows_of_two_benchmarks_side_by_side(benchmarks, tmp_path):
    first, second = benchmarks
    both = _compare(tmp_path, f"benchmarks=[{first['output_dir']},{second['output_dir']}]", "reference=cosine",
                    "rows=[popularity,random]")["table"]
    assert list(dict.fromkeys(both["model"])) == ["cosine", "popularity", "random"]
    fused = _compare(tmp_path / "fused", f"benchmarks=[{first['output_dir']}]", "reference=cosine", "rows=[random]",
                     "fusions={cosine_random: [cosine, random]}")
    assert list(dict.fromkeys(fused["table"]["model"])) == ["cosine", "random", "cosine_random"]
    assert (fused["output_dir"] / "compare.csv").is_file()
    for run, model in ((first, "random"), (second, "popularity")):
        ours = both.query("model == @model").set_index("metric")
        theirs = run["table"].query("model == @model").set_index("metric")
        assert ours["mean"].to_dict() == pytest.approx(theirs["mean"].to_dict())
        assert ours["delta"].to_dict() == pytest.approx(theirs["delta"].to_dict())


def test_unknown_rows_and_unfinished_jobs_are_named(benchmarks, tmp_path):
    first, _ = benchmarks
    with pytest.raises(ValueError, match=r"rows \['bamir'\] are in none of the folders; they hold \['cosine', 'random'\]"):
        _compare(tmp_path / "unknown", f"benchmarks=[{first['output_dir']}]", "reference=bamir")
    scores = first["output_dir"] / "jobs" / "random" / "seed1" / "fold1" / SCORES
    scores.rename(scores.with_suffix(".kept"))
    try:
        with pytest.raises(FileNotFoundError, match=f"{scores}: missing, that job has not finished"):
            _compare(tmp_path / "unfinished", f"benchmarks=[{first['output_dir']}]", "reference=cosine")
        # the finished seed alone
        seed0 = _compare(tmp_path / "seed0", f"benchmarks=[{first['output_dir']}]", "reference=cosine", "seeds=[0]")
        assert set(seed0["table"]["seeds"]) == {1}
    finally:
        scores.with_suffix(".kept").rename(scores)


def test_the_console_app_names_a_folder_that_is_not_a_benchmark(tmp_path):
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "bamir.cli.compare", f"benchmarks=[{tmp_path}]", "reference=cosine",
                           f"hydra.run.dir={tmp_path / 'run'}"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert f"{tmp_path}: not a benchmark folder (no jobs/)" in done.stderr + done.stdout


def test_a_validation_benchmark_is_compared_as_one(tmp_path, shared_data, planted_store, benchmarks):
    cfg = compose_config("benchmark", tmp_path / "val", [
        "dataset=planted_tiny", "suite=none", "models=[cosine,random]", "seeds=[0]", "split=val", "reference=cosine",
        'overrides=["trainer=cpu"]', "bootstrap.samples=100", "logger=none", "plots.enabled=false"], fast=False)
    with open_dict(cfg):
        cfg.paths.data_dir = str(shared_data)
    folder = run_benchmark(cfg)["output_dir"]
    again = _compare(tmp_path / "again", f"benchmarks=[{folder}]", "reference=cosine")
    assert "validation brands" in again["markdown"]
    with pytest.raises(ValueError, match=r"report different splits \(\['cv', 'val'\]\)"):
        _compare(tmp_path / "mixed", f"benchmarks=[{folder},{benchmarks[0]['output_dir']}]", "reference=cosine")
