"""Real Chromium, driven by Selenium through the system chromedriver: what annotators see.

Reusable by any browser test: `launch()` starts a headless Chromium with a fresh profile,
`Browser` wraps the driver with the few verbs the tests need (open, log in, wait, click
by text, read the console), and `save_failure_artifacts` keeps a screenshot, the page
and the browser console of a failed test (tests/browser/conftest.py calls it).

The Debian `chromium` and `chromium-driver` packages are used as they are: nothing is
downloaded (Selenium's driver manager is never asked, because the driver path is given).
`scripts/setup_env.sh` installs them where they are missing.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any, Callable, TypeVar

from PIL import Image
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement

ROOT = Path(__file__).resolve().parents[2]
# Failure screenshots, console logs and the screenshots tests take on purpose land here (git-ignored).
ARTIFACTS = Path(os.environ.get("BROWSER_ARTIFACTS_DIR", ROOT / "test-artifacts" / "browser"))
# Flags that work headless on a bare Linux box, as root, with no network beyond loopback.
HEADLESS_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage",
)
WINDOW = (1280, 800)

T = TypeVar("T")


class BrowserMissing(RuntimeError):
    """Chromium or chromedriver is not installed."""


def chromium_binaries() -> tuple[str, str]:
    """(chromium, chromedriver) paths; raises BrowserMissing saying how to install them."""
    chromium = os.environ.get("CHROMIUM_BIN") or shutil.which("chromium") or shutil.which("chromium-browser")
    driver = os.environ.get("CHROMEDRIVER_BIN") or shutil.which("chromedriver")
    if not chromium or not driver:
        raise BrowserMissing(
            "Chromium and chromedriver are needed for the browser tests: run `bash scripts/setup_env.sh` "
            "(it installs the Debian packages chromium and chromium-driver with apt-get), or set "
            "CHROMIUM_BIN and CHROMEDRIVER_BIN"
        )
    return chromium, driver


def launch(base_url: str, profile_dir: Path, window: tuple[int, int] = WINDOW) -> "Browser":
    """A headless Chromium with a fresh profile in `profile_dir`, its console log recorded."""
    chromium, driver = chromium_binaries()
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in HEADLESS_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile_dir}")
    options.add_argument(f"--window-size={window[0]},{window[1]}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return Browser(webdriver.Chrome(service=Service(driver), options=options), base_url)


class Browser:
    """A Selenium driver plus the verbs browser tests share."""

    def __init__(self, driver: webdriver.Chrome, base_url: str):
        self.driver = driver
        self.base_url = base_url.rstrip("/")
        self._console: list[dict[str, Any]] = []

    def open(self, path: str) -> None:
        self.driver.get(self.base_url + path)

    def login(self, email: str, password: str, path: str = "/user/login/") -> None:
        """Log in through the login form, as a person would."""
        self.open(path)
        self.wait_for(lambda: self.driver.find_elements(By.ID, "email"), what="the login form")
        self.driver.find_element(By.ID, "email").send_keys(email)
        self.driver.find_element(By.ID, "password").send_keys(password)
        self.driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        self.wait_for(lambda: "/user/login" not in self.driver.current_url, what="the login to finish")

    def wait_for(self, condition: Callable[[], T], timeout_s: float = 60.0, every_s: float = 0.25, what: str = "condition") -> T:
        """Poll `condition()` until it is truthy and return it; raise TimeoutError saying what never happened.

        Elements that React replaces while they are read count as "not yet".
        """
        deadline = time.monotonic() + timeout_s
        last: Any = None
        while time.monotonic() < deadline:
            try:
                last = condition()
            except (StaleElementReferenceException, WebDriverException) as exc:
                last = exc
            else:
                if last:
                    return last
            time.sleep(every_s)
        raise TimeoutError(f"timed out after {timeout_s:.0f} s waiting for {what} (last value: {last!r:.300})")

    def find_all(self, css: str) -> list[WebElement]:
        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def by_text(self, text: str, tag: str = "*") -> list[WebElement]:
        """Displayed elements whose own text is exactly `text`."""
        literal = json.dumps(text) if "'" in text else f"'{text}'"
        return [e for e in self.driver.find_elements(By.XPATH, f"//{tag}[normalize-space(text())={literal}]") if e.is_displayed()]

    def click_text(self, text: str, tag: str = "*", timeout_s: float = 30.0) -> None:
        """Click the element showing exactly `text`, once it is there."""
        self.wait_for(lambda: self.by_text(text, tag), timeout_s, what=f"{text!r} on the page")[0].click()

    def press(self, keys: str) -> None:
        """Type `keys` into whatever has focus (hotkeys)."""
        ActionChains(self.driver).send_keys(keys).perform()

    def console(self) -> list[dict[str, Any]]:
        """Every browser console entry so far (Chromium hands each out only once: they are kept here)."""
        try:
            self._console.extend(self.driver.get_log("browser"))
        except WebDriverException:
            pass
        return list(self._console)

    def console_errors(self, ignore: tuple[str, ...] = ()) -> list[str]:
        """Console messages at SEVERE level, minus those containing any of `ignore`."""
        return [e["message"] for e in self.console()
                if e.get("level") == "SEVERE" and not any(part in e["message"] for part in ignore)]

    def screenshot(self, path: Path, colors: int = 128) -> Path:
        """A PNG of the window, reduced to `colors` palette colors so it stays small enough to commit."""
        path.parent.mkdir(parents=True, exist_ok=True)
        image = Image.open(io.BytesIO(self.driver.get_screenshot_as_png())).convert("RGB")
        image.quantize(colors=colors, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
        return path

    def save_failure_artifacts(self, folder: Path) -> list[Path]:
        """Screenshot, browser console and page source of the current state, for a failed test."""
        folder.mkdir(parents=True, exist_ok=True)
        saved = []
        try:
            saved.append(self.screenshot(folder / "screenshot.png", colors=256))
        except WebDriverException:
            pass
        console = folder / "console.log"
        console.write_text("".join(f"{e.get('level')} {e.get('message')}\n" for e in self.console()))
        saved.append(console)
        try:
            (folder / "page.html").write_text(f"<!-- {self.driver.current_url} -->\n{self.driver.page_source}")
            saved.append(folder / "page.html")
        except WebDriverException:
            pass
        return saved

    def quit(self) -> None:
        try:
            self.driver.quit()
        except WebDriverException:
            pass
