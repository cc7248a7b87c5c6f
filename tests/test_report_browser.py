"""End to end: run the tiny workflow, build the Snakemake report, open it in headless Chromium.

The report is a React app with its data inline; the assertions are on the DOM Chromium
renders (scripts stripped), plus the embedded result index for the plots' file names.
Screenshots and DOM dumps are kept under test-artifacts/report/ (git-ignored).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from conftest import skip_or_fail

pytestmark = [pytest.mark.browser, pytest.mark.workflow]

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts" / "report"
RUN = "results/test"
# Plots and tables the test config must put into the report (knowledge domain, 2 rounds, held-out on).
EXPECTED_FILES = (
    "reward_distribution.svg", "positive_fraction.svg", "examples.html", "rewards.csv",
    "heldout_accuracy.svg", "heldout_summary.html", "cost_per_rule.svg", "cost_per_rule.html",
    "seconds_per_self_edit.html",
)
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--virtual-time-budget=5000", "--window-size=1280,1043")

# Appended to a copy of the report: open the knowledge category, its "All rounds"
# subcategory and the reward-distribution plot, as a reader's clicks would.
DRIVE = """
<script>
window.addEventListener("load", function () {
  setTimeout(function () {
    var path = Object.keys(results).find(function (p) { return p.endsWith("%(target)s"); });
    app.showCategory("%(category)s");
    app.setView({navbarMode: "subcategory", category: "%(category)s", subcategory: "%(subcategory)s"});
    setTimeout(function () {
      app.setView({navbarMode: "resultinfo", content: "img", contentPath: results[path].data_uri,
                   resultPath: path});
    }, 200);
  }, 200);
});
</script>
"""


def _chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        if shutil.which(name):
            return shutil.which(name)
    installer = ROOT / "tools" / "install_chromium.sh"
    if hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(["bash", str(installer)], check=False, capture_output=True, timeout=900)
        for name in ("chromium", "chromium-browser"):
            if shutil.which(name):
                return shutil.which(name)
        skip_or_fail("chromium could not be installed with apt-get (tools/install_chromium.sh)")
    skip_or_fail("headless chromium not found and not root: run tools/install_chromium.sh as root")


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def _snakemake(args: list[str], cwd: Path, timeout: int) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "snakemake", *args], cwd=cwd, env=_env(), capture_output=True,
                          text=True, timeout=timeout)
    assert proc.returncode == 0, f"snakemake {' '.join(args)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}"
    return proc


@pytest.fixture(scope="module")
def chromium() -> str:
    return _chromium()


@pytest.fixture(scope="module")
def built_report(knowledge_run, chromium) -> Path:
    """The report of the session's finished test-config run."""
    work = knowledge_run
    report = work / RUN / "report.html"
    started = time.time()
    _snakemake(["--configfile", "config/test.yaml", "--report", str(report.relative_to(work))], work, timeout=600)
    print(f"report {time.time() - started:.0f} s")
    assert report.stat().st_size > 100_000
    return report


def _browse(chromium: str, page: Path, screenshot: Path) -> str:
    """Screenshot ``page`` and return its DOM after the virtual-time budget."""
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    dom = ""
    for mode in (f"--screenshot={screenshot}", "--dump-dom"):
        with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
            proc = subprocess.run([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", mode, page.as_uri()],
                                  capture_output=True, text=True, timeout=180)
        assert proc.returncode == 0, proc.stderr[-3000:]
        if mode == "--dump-dom":
            dom = proc.stdout
    assert screenshot.stat().st_size > 10_000, "screenshot is (nearly) empty"
    (screenshot.with_suffix(".dom.html")).write_text(dom, encoding="utf-8")
    return dom


def _rendered(dom: str) -> str:
    """What the page shows: the DOM without the inline scripts that carry the report's data."""
    return re.sub(r"<script\b[^>]*>.*?</script>", "", dom, flags=re.S)


def test_report_landing_page(built_report: Path, chromium: str) -> None:
    dom = _browse(chromium, built_report, ARTIFACTS / "landing.png")
    shown = _rendered(dom)
    # the menu lists the result categories; the workflow description renders the config
    for text in ("Knowledge incorporation", "Cost", "Workflow", "Statistics"):
        assert text in shown, text
    for text in ("SEAL run", "Self-Adapting Language Models", "LoRA rank 4", "2 rounds", "k = 2",
                 "How to read the results"):
        assert text in shown, text
    # every plot and table is in the report's embedded result index
    for name in EXPECTED_FILES:
        assert name in dom, name


def test_report_results_view(built_report: Path, chromium: str) -> None:
    driven = built_report.with_name("report_driven.html")
    html = built_report.read_text(encoding="utf-8")
    cut = html.rfind("</body>")
    script = DRIVE % {"target": "/report/knowledge/reward_distribution.svg",
                      "category": "Knowledge incorporation", "subcategory": "All rounds"}
    driven.write_text(html[:cut] + script + html[cut:], encoding="utf-8")
    shown = _rendered(_browse(chromium, driven, ARTIFACTS / "results.png"))
    # the open plot: its labels and caption in the side panel, the SVG itself (its data URI names the file)
    assert "reward distribution" in shown
    assert "Reward of every self-edit, per round" in shown
    assert re.search(r'<img[^>]+src="data:image/svg\+xml;[^"]*filename=reward_distribution\.svg', shown)
