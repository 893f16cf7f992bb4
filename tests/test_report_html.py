"""The HTML report (bamir.report_html): self-contained, and checked in a real headless Chromium:
the page loads, every image renders (naturalWidth > 0), no console error, a non-blank screenshot.

Chromium comes from Debian's packages (``apt-get install -y chromium``; ``.ci/run`` installs it).
Without it the browser tests are skipped, except under CI (``CI`` set), where they fail.
"""

from __future__ import annotations

import html as html_lib
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from omegaconf import open_dict

from bamir.report_html import render_report
from tests.helpers.rank import rank_overrides, tiny_store, trained_run
from tests.helpers.compose import compose_config

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")

#: injected first into <head> of a copy of the report: records errors and, after load, image states
PROBE = """<script>
window.__errors = [];
window.addEventListener('error', function (e) {
  __errors.push(String(e.message || (e.target && (e.target.currentSrc || e.target.src)) || 'error').slice(0, 200));
}, true);
var __consoleError = console.error;
console.error = function () { __errors.push(Array.prototype.join.call(arguments, ' ')); __consoleError.apply(console, arguments); };
window.addEventListener('load', function () {
  var images = Array.prototype.slice.call(document.images);
  var broken = images.filter(function (i) { return !(i.complete && i.naturalWidth > 0); }).map(function (i) { return i.alt; });
  document.body.setAttribute('data-check', JSON.stringify({images: images.length, broken: broken, errors: __errors}));
});
</script>"""


def _browser() -> str:
    found = next((shutil.which(b) for b in BROWSERS if shutil.which(b)), None)
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("Chromium is not installed: .ci/run must `apt-get install -y chromium`")
        pytest.skip("Chromium is not installed (apt-get install -y chromium)")
    return found


def _chromium(browser: str, *args: str, timeout: int = 90) -> subprocess.CompletedProcess:
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-dev-shm-usage", "--no-first-run", "--disable-extensions", "--mute-audio"]
    return subprocess.run([browser, *flags, *args], capture_output=True, text=True, timeout=timeout)


def _probe(browser: str, page: Path, tmp_path: Path) -> tuple[dict, list[str]]:
    """(the probe's record, console lines Chromium logged) for ``page``."""
    probed = tmp_path / f"probe-{page.name}"
    text = page.read_text()
    probed.write_text(text.replace("<head>", "<head>" + PROBE, 1))
    proc = _chromium(browser, "--virtual-time-budget=10000", "--enable-logging=stderr", "--v=0", "--dump-dom",
                     probed.as_uri())
    assert proc.returncode == 0, proc.stderr[-2000:]
    found = re.search(r'data-check="([^"]*)"', proc.stdout)
    assert found, f"the page did not finish loading:\n{proc.stdout[:500]}\n{proc.stderr[-1500:]}"
    console = [line for line in proc.stderr.splitlines() if ":CONSOLE" in line]
    return json.loads(html_lib.unescape(found.group(1))), console


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    from bamir.ranking.app import rank

    base = tmp_path_factory.getbasetemp() / "rank_tiny"
    base.mkdir(exist_ok=True)
    run = trained_run(base)
    out = tmp_path_factory.mktemp("report")
    cfg = compose_config("rank", out, [*rank_overrides(tiny_store(base)), f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}",
                                       "brand=all", "top_k=5", "search.device=cpu", "report.thumbnails=3"], fast=False)
    with open_dict(cfg):
        cfg.paths.data_dir = str(base / "data")
    result = rank(cfg)
    path = out / "run" / "report.html"
    path.with_suffix(".json").write_text(json.dumps(result))
    return path


def test_report_is_self_contained_and_complete(report):
    text = report.read_text()
    ranking = json.loads(report.with_suffix(".json").read_text())
    assert not re.search(r"""(src|href)\s*=\s*["'](https?:|//)""", text), "nothing may be fetched from elsewhere"
    assert "<link" not in text and "<script" not in text
    sources = re.findall(r'<img[^>]*src="([^"]*)"', text)
    assert sources and all(s.startswith("data:image/") for s in sources)
    for brand in ranking["brands"]:
        assert f">{brand['name']}" in text
        for item in brand["top"]:
            assert item["name"] in text
    # per influencer up to 3 thumbnails, per brand up to 6 sample posts, plus the learning-curve plot
    n_rows = sum(len(b["top"]) for b in ranking["brands"])
    assert len(sources) > n_rows
    assert "learning curves" in text and "auc_global" in text  # the training run's metrics and plots
    assert text.count('class="bar"') == n_rows


@pytest.mark.slow
def test_report_renders_in_headless_chromium(report, tmp_path):
    browser = _browser()
    check, console = _probe(browser, report, tmp_path)
    assert check["images"] > 20
    assert check["broken"] == [], f"images that did not render: {check['broken'][:5]}"
    assert check["errors"] == [], check["errors"]
    assert not [line for line in console if "Uncaught" in line or "rror" in line], console
    shot = tmp_path / "report.png"
    proc = _chromium(browser, "--hide-scrollbars", "--window-size=1280,1600", f"--screenshot={shot}", report.as_uri())
    assert proc.returncode == 0 and shot.is_file(), proc.stderr[-1500:]
    from PIL import Image

    with Image.open(shot) as img:
        assert img.size == (1280, 1600)
        colours = img.convert("RGB").getcolors(maxcolors=1 << 20)
        assert colours is None or len(colours) > 200, "the screenshot is blank"


def test_the_browser_probe_catches_broken_images_and_errors(report, tmp_path):
    """The negative control: the same probe reports a broken image and a script error."""
    browser = _browser()
    bad = tmp_path / "bad.html"
    bad.write_text(report.read_text().replace(
        "</body>", '<img alt="broken" src="data:image/jpeg;base64,AAAA"><script>console.error("boom");</script></body>'))
    check, _ = _probe(browser, bad, tmp_path)
    assert check["broken"] == ["broken"]
    assert "boom" in check["errors"]


def test_report_without_raw_data_or_run(tmp_path):
    ranking = {"checkpoint": "x.ckpt", "store": "s", "created": "now", "top_k": 2, "candidates": "all",
               "pool_size": 3, "filters": {"exclude_linked": True}, "branches": ["content", "concept"],
               "search": {"method": "exact", "device": "cpu"}, "raw_root": None, "train_run": str(tmp_path / "none"),
               "brands": [{"id": "b0", "name": "acme<script>", "category": "airline", "followers": None,
                           "engagement": None, "cold_start": False, "posts_root": None,
                           "top": [{"rank": 1, "id": "i0", "name": "anna", "score": 1.5, "followers": None,
                                    "engagement": None, "contributions": {"content": 2.0, "concept": -0.5},
                                    "shares": {"content": 0.8, "concept": -0.2}, "linked": True}]}]}
    path = render_report(ranking, tmp_path / "r.html")
    text = path.read_text()
    assert "acme&lt;script&gt;" in text and "<script>" not in text  # names are escaped
    assert "No post images available" in text and "No metrics.json" in text
    assert 'class="neg"' in text and "width: 80.0%" in text and "width: 20.0%" in text
    assert "linked" in text and "exclude_linked=True" in text
