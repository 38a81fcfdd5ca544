"""The demo report opened in headless Chromium (Selenium), network blocked (issue 21).

Checks: every <img> decoded (naturalWidth > 0), no SEVERE console entry, every section id present,
no request other than file:/data:; saves a screenshot to test-artifacts/report.png and tmp.
Chromium/chromedriver missing: a skip with the reason, or a failure under FLOWCORE_REQUIRE_BROWSER=1
(``.ci/run`` sets it after installing them).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from flowcore.report import SECTIONS
from flowcore.report.demo import write_demo_report

CHROMIUM = os.environ.get("FLOWCORE_CHROMIUM", "/usr/bin/chromium")
DRIVER = os.environ.get("FLOWCORE_CHROMEDRIVER", "/usr/bin/chromedriver")
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"


def _browser_or_skip():
    missing = [p for p in (CHROMIUM, DRIVER) if not (Path(p).is_file() and os.access(p, os.X_OK))]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("the selenium package")
    if missing:
        why = f"headless browser test needs {', '.join(missing)} (Debian: apt-get install chromium chromium-driver)"
        if os.environ.get("FLOWCORE_REQUIRE_BROWSER") == "1":
            pytest.fail(why + "; FLOWCORE_REQUIRE_BROWSER=1")
        pytest.skip(why)


@pytest.fixture(scope="module")
def report_html(tmp_path_factory) -> Path:
    _browser_or_skip()  # before the report is built: a skip costs nothing
    return write_demo_report(tmp_path_factory.mktemp("report") / "out", n_noise=100, n_starts=200, grid=24)


def test_report_in_headless_chromium(report_html, tmp_path):
    _browser_or_skip()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--window-size=1100,1400",
                 f"--user-data-dir={tmp_path / 'profile'}"):
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(options=opts, service=Service(DRIVER))
    try:
        driver.execute_cdp_cmd("Network.enable", {})
        driver.execute_cdp_cmd("Network.setBlockedURLs", {"urls": ["*://*/*", "http://*", "https://*"]})
        driver.get(report_html.resolve().as_uri())
        assert driver.execute_script("return document.readyState") == "complete"
        imgs = driver.execute_script("return Array.from(document.images).map(i => [i.alt, i.complete, i.naturalWidth])")
        assert len(imgs) >= 6, imgs  # steps, field, decoded, probe, 2 histograms, ROC
        assert all(done and w > 0 for _, done, w in imgs), imgs
        ids = driver.execute_script("return Array.from(document.querySelectorAll('section')).map(s => s.id)")
        assert list(ids) == list(SECTIONS)
        data = json.loads(driver.execute_script("return document.getElementById('flowcore-data').textContent"))
        assert [s["id"] for s in data["sections"]] == list(SECTIONS)
        severe = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        assert not severe, severe
        urls = []
        for entry in driver.get_log("performance"):
            msg = json.loads(entry["message"])["message"]
            if msg["method"] == "Network.requestWillBeSent":
                urls.append(msg["params"]["request"]["url"])
        # the page's own requests are file:/data:; chrome:/about: are the browser's internal new-tab page
        assert any(u.startswith("file:") for u in urls), urls[:5]
        assert all(u.startswith(("file:", "data:", "chrome:", "about:")) for u in urls), [u[:80] for u in urls]
        shot = tmp_path / "report.png"
        driver.set_window_size(1100, int(driver.execute_script("return document.body.scrollHeight")) + 50)
        assert driver.save_screenshot(str(shot))
        ARTIFACTS.mkdir(exist_ok=True)
        shutil.copyfile(shot, ARTIFACTS / "report.png")
        assert shot.stat().st_size > 10_000
    finally:
        driver.quit()
