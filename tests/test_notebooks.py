"""The notebooks run top to bottom on the tiny preset (nbclient, a real Jupyter kernel).

The quickstart synthesizes, prepares, trains, ranks and renders the report in a temporary work
folder (``BAMIR_NOTEBOOK_WORK``); the analysis notebook then reads what it made. Several
minutes on a CPU, hence ``slow``.
"""

from __future__ import annotations


import pytest
from tests.helpers.paths import REPO

nbformat = pytest.importorskip("nbformat", reason="the notebook tests need nbformat, nbclient and ipykernel (.[test])")
nbclient = pytest.importorskip("nbclient", reason="the notebook tests need nbclient (.[test])")
pytest.importorskip("ipykernel", reason="the notebook tests need ipykernel (.[test])")

NOTEBOOKS = REPO / "notebooks"


def _run(name: str) -> nbformat.NotebookNode:
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=900, kernel_name="python3",
                                     resources={"metadata": {"path": str(NOTEBOOKS)}})
    client.execute()
    return nb


def _text(nb) -> str:
    parts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            parts.append(out.get("text", "") or "".join(str(v) for v in out.get("data", {}).values()))
    return "\n".join(parts)


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("notebooks")


@pytest.fixture
def notebook_env(work, monkeypatch):
    """Both notebooks work in the shared folder, with W&B off."""
    monkeypatch.setenv("BAMIR_NOTEBOOK_WORK", str(work))
    monkeypatch.setenv("WANDB_MODE", "disabled")
    return work


@pytest.mark.slow
def test_quickstart_runs_the_whole_chain(notebook_env):
    work = notebook_env
    nb = _run("quickstart.ipynb")
    text = _text(nb)
    assert "0 errors" in text  # the synthetic dataset validated
    assert "| test (epoch " in text  # the training run's metric table, naming the best checkpoint's epoch
    assert "new brand" in text  # cold start ranked the unseen brand
    reports = list((work / "outputs" / "rank" / "runs").glob("*/report.html"))
    assert len(reports) == 2 and all(r.stat().st_size > 10_000 for r in reports)
    assert any(out.get("output_type") == "display_data" for cell in nb.cells for out in cell.get("outputs", []))


@pytest.mark.slow
def test_analysis_reads_the_quickstart_outputs(notebook_env):
    nb = _run("analysis.ipynb")
    text = _text(nb)
    assert "test brands x" in text and "shared topic" in text
    images = [out for cell in nb.cells for out in cell.get("outputs", []) if "image/png" in out.get("data", {})]
    assert len(images) >= 4  # category bars, branch shares, one brand's contributions, the embedding map
