"""Open a local HTML file in headless Chromium with the network blocked: for the report's test and bench.

Needs the Debian packages `chromium` and `chromium-driver` (scripts/setup.sh installs them when it can) and the
`selenium` Python package (the `test` extra). `find_chromium()` says why not when they are missing.

The network is blocked twice: every host name resolves to nothing (`--host-resolver-rules`) and every request
goes to a proxy on a closed local port; the file's own Content-Security-Policy forbids fetches as well. Every
request the page makes is still recorded (Chromium's performance log), so a test can assert there were none
beyond the file itself.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
DRIVER_NAMES = ("chromedriver",)
LOCAL_SCHEMES = ("file:", "data:", "about:", "blob:", "chrome:", "chrome-error:", "devtools:")


def find_chromium() -> tuple[str | None, str | None, str | None]:
    """(chromium binary, chromedriver binary, reason when unusable)."""
    browser = next((p for n in CHROMIUM_NAMES if (p := shutil.which(n))), None)
    driver = next((p for n in DRIVER_NAMES if (p := shutil.which(n))), None)
    if browser is None or driver is None:
        missing = " and ".join(n for n, p in (("chromium", browser), ("chromedriver", driver)) if p is None)
        return (
            browser,
            driver,
            (
                f"{missing} not found on PATH (Debian: apt-get install chromium chromium-driver; "
                "scripts/setup.sh does it when run as root)"
            ),
        )
    try:
        import selenium  # noqa: F401
    except ImportError:
        return browser, driver, "the selenium package is not installed (pip install -e '.[test]')"
    return browser, driver, None


@dataclass
class PageVisit:
    console: list[dict] = field(default_factory=list)  # {level, message}
    requests: list[str] = field(default_factory=list)  # every URL the page asked for
    load_seconds: float = 0.0  # driver.get until the page's own "rendered" marker
    rendered_ms: float | None = None  # performance.now() when the report's script finished its first render
    results: dict = field(default_factory=dict)  # what the `probe` script returned

    @property
    def errors(self) -> list[dict]:
        return [c for c in self.console if c.get("level") in ("SEVERE", "ERROR")]

    @property
    def external_requests(self) -> list[str]:
        return [u for u in self.requests if not u.startswith(LOCAL_SCHEMES)]


def visit(
    path: str | Path,
    probe: str | None = None,
    screenshot: str | Path | None = None,
    width: int = 1400,
    height: int = 1000,
    actions=None,
    timeout: float = 30.0,
) -> PageVisit:
    """Load `path` (a local file) in headless Chromium with the network blocked and return what happened.

    `probe`: JavaScript (a function body that returns a JSON-able value) run after the page rendered;
    `actions(driver)`: optional callable run before the probe (clicks, typing); `screenshot`: PNG written after."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser, driver_path, reason = find_chromium()
    if reason:
        raise RuntimeError(reason)
    opts = webdriver.ChromeOptions()
    opts.binary_location = browser
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        f"--window-size={width},{height}",
        "--host-resolver-rules=MAP * ~NOTFOUND",
        "--proxy-server=http://127.0.0.1:9",
        "--proxy-bypass-list=<-loopback>",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-extensions",
        "--disable-features=Translate,OptimizationHints,MediaRouter",
        "--hide-scrollbars",
    ):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=opts)
    out = PageVisit()
    try:
        url = Path(path).resolve().as_uri()
        start = time.perf_counter()
        driver.get(url)
        deadline = start + timeout
        while time.perf_counter() < deadline:
            if driver.execute_script("return document.body && document.body.getAttribute('data-rendered')"):
                break
            time.sleep(0.02)
        out.load_seconds = time.perf_counter() - start
        out.rendered_ms = driver.execute_script("return window.__report ? window.__report.renderedMs : null")
        if actions is not None:
            actions(driver)
        if probe:
            out.results = driver.execute_script(probe) or {}
        if screenshot:  # the whole page, not only the window
            import base64

            shot = driver.execute_cdp_cmd("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})
            Path(screenshot).write_bytes(base64.b64decode(shot["data"]))
        out.console = [{"level": e.get("level"), "message": e.get("message")} for e in driver.get_log("browser")]
        for entry in driver.get_log("performance"):
            try:
                msg = json.loads(entry["message"])["message"]
            except (KeyError, ValueError):
                continue
            if msg.get("method") == "Network.requestWillBeSent":
                out.requests.append(msg["params"]["request"]["url"])
    finally:
        driver.quit()
    return out
