"""leaderboard.html opens in headless Chromium: the tables are there and sorting works.

Needs a Chromium binary (Debian/Ubuntu: ``apt-get install -y chromium``); skipped without one.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from lam_mteb import plugins
from lam_mteb.leaderboard import run
from tests.test_leaderboard_fixtures import leaderboard_args, write_result

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def _chromium() -> str:
    explicit = os.environ.get("CHROMIUM")
    if explicit and Path(explicit).exists():
        return explicit
    for name in ("/usr/bin/chromium", *CANDIDATES):
        found = shutil.which(name)
        if found:
            return found
    pytest.skip(
        "no Chromium found (install the Debian package 'chromium' or set CHROMIUM=/path/to/chrome)"
    )


def _browser(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    profile = tmp_path / "profile"
    profile.mkdir(exist_ok=True)
    cmd = [
        _chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
        *args,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


@pytest.fixture
def page(tmp_path, monkeypatch) -> Path:
    monkeypatch.setattr(
        "lam_mteb.leaderboard.results.registry_recreated_tasks", lambda names, datasets: {}
    )
    root = tmp_path / "runs"
    for model, sts, sci in (("org/low", 0.2, 0.3), ("org/high", 0.9, 0.8), ("org/mid", 0.5, 0.6)):
        write_result(root, model, "r", "STSBenchmark", sts)
        write_result(root, model, "r", "SciFact", sci)
    out = tmp_path / "out"
    assert run(leaderboard_args([root], out, no_references=True), plugins.get_registry()) == 0
    return out / "leaderboard.html"


def _rows(dom: str, table_id: str) -> list[list[str]]:
    start = dom.index(f'id="{table_id}"')
    table = dom[start : dom.index("</table>", start)]
    body = table.split("<tbody>", 1)[1]
    return [
        [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", tr, re.S)]
        for tr in re.findall(r"<tr[^>]*>(.*?)</tr>", body, re.S)
    ]


def test_chromium_renders_the_table(tmp_path, page):
    result = _browser(tmp_path, "--dump-dom", page.as_uri())
    assert result.returncode == 0, result.stderr[-2000:]
    dom = result.stdout
    assert "lam-mteb leaderboard" in dom
    rows = _rows(dom, "lb-short-text")
    assert [r[1] for r in rows] == ["org/high", "org/mid", "org/low"]  # ranked order as generated
    assert rows[0][0] == "1" and rows[0][5] == "0.8500"


def test_chromium_runs_the_sort_script(tmp_path, page):
    # column 3 = STSB; the page's script sorts on load for a #sort=<table>,<column>,<dir> link
    result = _browser(tmp_path, "--dump-dom", page.as_uri() + "#sort=lb-short-text,3,asc")
    assert result.returncode == 0, result.stderr[-2000:]
    rows = _rows(result.stdout, "lb-short-text")
    assert [r[1] for r in rows] == ["org/low", "org/mid", "org/high"]
    assert 'class="n asc"' in result.stdout


def test_chromium_screenshot(tmp_path, page):
    shot = tmp_path / "page.png"
    result = _browser(tmp_path, "--window-size=1280,900", f"--screenshot={shot}", page.as_uri())
    assert result.returncode == 0, result.stderr[-2000:]
    assert shot.read_bytes().startswith(b"\x89PNG") and shot.stat().st_size > 10_000
