"""The rendered report in a real browser: headless Chromium, driven over the DevTools protocol.

Chromium is started with ``--remote-debugging-pipe``: it reads DevTools commands from file
descriptor 3 and writes replies and events to descriptor 4, each message JSON ended by a NUL
byte. That needs no websocket client and opens no port. The test loads the report and a code
page from disk and checks what a person would see: the page loads without console errors or
failed requests, fetches nothing from the network, every image decodes (naturalWidth > 0),
and the screenshot is not blank.

Needs Debian's ``chromium`` (``apt-get install chromium``, see .ci/run); skipped without it.
"""

from __future__ import annotations

import base64
import fcntl
import io
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

pytest.importorskip("pandas", reason="the report needs pandas: pip install 'cnn-rosetta[report]'")
pytest.importorskip("matplotlib", reason="the report needs matplotlib (the 'report' extra)")
pytest.importorskip("pygments", reason="the code pages need pygments (the 'report' extra)")
pytest.importorskip("jinja2", reason="the report's templates need jinja2 (the 'report' extra)")
PIL = pytest.importorskip("PIL.Image", reason="the screenshot check needs Pillow (matplotlib's)")

from parity_tests.test_render import make_run  # noqa: E402
from reports.render import render  # noqa: E402

CHROMIUM = Path("/usr/bin/chromium")
TIMEOUT = 60.0  # seconds for any one DevTools reply or page load
WINDOW = (1280, 2000)


def _chromium() -> Path:
    if CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK):
        return CHROMIUM
    found = shutil.which("chromium")
    if found is None:
        pytest.skip("Chromium is not installed (/usr/bin/chromium): apt-get install chromium "
                    "to check the rendered report in a browser")
    return Path(found)


def _above_4(fd: int) -> int:
    """A close-on-exec copy of ``fd`` numbered 10 or more; ``fd`` itself is closed."""
    high = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return high


class DevTools:
    """A headless Chromium and a DevTools session on one page, over the debugging pipe."""

    def __init__(self, profile: Path):
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()
        # The browser's ends must not already sit at 3 or 4: dup2 onto itself would keep the
        # close-on-exec flag, and one end could overwrite the other before it is copied.
        to_browser_r, from_browser_w = _above_4(to_browser_r), _above_4(from_browser_w)

        def pipes_at_3_and_4() -> None:  # the descriptors --remote-debugging-pipe uses
            os.dup2(to_browser_r, 3)
            os.dup2(from_browser_w, 4)

        args = [str(_chromium()), "--headless", "--no-sandbox", "--disable-gpu",
                "--disable-quic", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--disable-extensions",
                "--disable-dev-shm-usage", "--remote-debugging-pipe",
                f"--user-data-dir={profile}", f"--window-size={WINDOW[0]},{WINDOW[1]}",
                "about:blank"]
        self._stderr = tempfile.TemporaryFile()  # a file, not a pipe: a full pipe would block
        self.process = subprocess.Popen(args, stdin=subprocess.DEVNULL,
                                        stdout=subprocess.DEVNULL, stderr=self._stderr,
                                        close_fds=False, preexec_fn=pipes_at_3_and_4)
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict] = []
        self.session: str | None = None

    def _read_message(self, deadline: float) -> dict:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self._from_browser], [], [], max(left, 0))
            if not ready:
                raise TimeoutError("no message from Chromium in time")
            chunk = os.read(self._from_browser, 1 << 20)
            if not chunk:
                raise ConnectionError("Chromium closed the DevTools pipe")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def call(self, method: str, params: dict | None = None, session: bool = True) -> dict:
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if session and self.session:
            message["sessionId"] = self.session
        try:
            os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        except BrokenPipeError:
            raise self._died() from None
        deadline = time.monotonic() + TIMEOUT
        while True:
            try:
                reply = self._read_message(deadline)
            except ConnectionError:
                raise self._died() from None
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def _died(self) -> ConnectionError:
        """Chromium is gone: say why (its exit status and the end of its stderr)."""
        try:
            code = self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            return ConnectionError("Chromium closed the DevTools pipe but is still running")
        self._stderr.seek(0)
        stderr = self._stderr.read().decode(errors="replace")[-2000:]
        return ConnectionError(f"Chromium exited with status {code}:\n{stderr}")

    def wait_for(self, method: str) -> dict:
        deadline = time.monotonic() + TIMEOUT
        for i, event in enumerate(self.events):
            if event.get("method") == method:
                return self.events.pop(i)
        while True:
            event = self._read_message(deadline)
            if event.get("method") == method:
                return event
            self.events.append(event)

    def open_page(self) -> None:
        target = self.call("Target.createTarget", {"url": "about:blank"}, session=False)
        attached = self.call("Target.attachToTarget",
                             {"targetId": target["targetId"], "flatten": True}, session=False)
        self.session = attached["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.call(f"{domain}.enable")
        self.call("Emulation.setDeviceMetricsOverride",
                  {"width": WINDOW[0], "height": WINDOW[1], "deviceScaleFactor": 1,
                   "mobile": False})

    def load(self, path: Path) -> dict:
        """Navigate to a local file; return what the page showed and logged."""
        self.events.clear()
        self.call("Page.navigate", {"url": path.resolve().as_uri()})
        self.wait_for("Page.loadEventFired")
        images = self.call("Runtime.evaluate", {
            "expression": "Array.from(document.images).map(i => ({src: i.src.slice(0, 30), "
                          "complete: i.complete, width: i.naturalWidth, "
                          "height: i.naturalHeight}))",
            "returnByValue": True})["result"]["value"]
        title = self.call("Runtime.evaluate", {"expression": "document.title",
                                               "returnByValue": True})["result"]["value"]
        shot = self.call("Page.captureScreenshot", {"format": "png"})
        # Give late console messages a moment to arrive, then collect everything seen.
        self.call("Runtime.evaluate", {"expression": "new Promise(r => setTimeout(r, 200))",
                                       "awaitPromise": True})
        return {"images": images, "title": title, "png": base64.b64decode(shot["data"]),
                "errors": self._errors(), "requests": self._requests()}

    def _errors(self) -> list[str]:
        out = []
        for e in self.events:
            method, params = e.get("method"), e.get("params", {})
            if method == "Runtime.consoleAPICalled" and params.get("type") in ("error",
                                                                               "assert"):
                out.append(f"console: {params.get('args')}")
            elif method == "Runtime.exceptionThrown":
                out.append(f"exception: {params.get('exceptionDetails')}")
            elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
                out.append(f"log: {params['entry'].get('text')} {params['entry'].get('url')}")
            elif method == "Network.loadingFailed":
                out.append(f"request failed: {params.get('errorText')}")
        return out

    def _requests(self) -> list[str]:
        return [e["params"]["request"]["url"] for e in self.events
                if e.get("method") == "Network.requestWillBeSent"]

    def close(self) -> None:
        try:
            self.call("Browser.close", session=False)
        except (OSError, RuntimeError, TimeoutError, ConnectionError):
            pass
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self._to_browser)
        os.close(self._from_browser)
        self._stderr.close()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    tools = DevTools(tmp_path_factory.mktemp("chromium-profile"))
    try:
        tools.open_page()
    except BaseException:
        tools.close()
        raise
    yield tools
    tools.close()


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    path = make_run(tmp_path_factory.mktemp("browser-run"))
    render(path)
    return path


def _not_blank(png: bytes) -> None:
    image = PIL.open(io.BytesIO(png)).convert("RGB")
    assert image.size == WINDOW
    colours = image.getcolors(maxcolors=1 << 16)
    assert colours is None or len(colours) > 50, "the screenshot is (nearly) one colour"
    extrema = image.convert("L").getextrema()
    assert extrema[1] - extrema[0] > 100, f"no contrast in the screenshot: {extrema}"


def _local_only(requests: list[str]) -> None:
    remote = [u for u in requests if not u.startswith(("file:", "data:", "about:"))]
    assert remote == [], f"the page fetched from the network: {remote}"


def test_report_shows_in_a_browser(browser, run, tmp_path):
    page = browser.load(run / "report.html")
    assert page["errors"] == []
    _local_only(page["requests"])
    assert page["title"].startswith("cnn-rosetta comparison")
    assert len(page["images"]) == len(list((run / "plots").glob("*.png"))) == 6
    for image in page["images"]:
        assert image["src"].startswith("data:image/png;base64,")
        assert image["complete"] and image["width"] > 0 and image["height"] > 0, image
    (tmp_path / "report.png").write_bytes(page["png"])
    _not_blank(page["png"])


def test_code_page_shows_in_a_browser(browser, run):
    page = browser.load(run / "code" / "op-conv2d.html")
    assert page["errors"] == []
    _local_only(page["requests"])
    assert page["images"] == []
    _not_blank(page["png"])
    columns = browser.call("Runtime.evaluate", {
        "expression": "Array.from(document.querySelectorAll('.col')).map("
                      "c => Math.round(c.getBoundingClientRect().left))",
        "returnByValue": True})["result"]["value"]
    assert len(columns) == 4 and len(set(columns)) == 4, columns  # side by side, not stacked


def test_a_broken_image_is_caught(browser, tmp_path):
    """The check itself works: a page with a missing image and a console error fails it."""
    bad = tmp_path / "bad.html"
    bad.write_text('<!DOCTYPE html><html><head><meta charset="utf-8"><title>bad</title></head>'
                   '<body><img src="missing.png"><script>console.error("oops")</script>'
                   "</body></html>", encoding="utf-8")
    page = browser.load(bad)
    assert page["images"][0]["width"] == 0
    assert any("oops" in e for e in page["errors"])
    assert any("missing.png" in e or "ERR_FILE_NOT_FOUND" in e for e in page["errors"])
