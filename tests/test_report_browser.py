"""The report in a real headless Chromium: it loads with no console errors and no network requests, every image
decodes, nothing overflows a laptop-sized window, and a screenshot is written.

Chromium is driven through the DevTools protocol over a websocket (a minimal client below, stdlib only). The test is
skipped only when no Chromium is installed (CI installs Debian's ``chromium``).
"""
from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.parse
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium)")

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-default-apps", "--disable-extensions", "--hide-scrollbars", "--mute-audio"]


class WebSocket:
    """Just enough of RFC 6455 for the DevTools protocol: text frames out (masked), frames in (unmasked)."""

    def __init__(self, url: str, timeout: float = 60.0):
        u = urllib.parse.urlparse(url)
        self.sock = socket.create_connection((u.hostname, u.port), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET {u.path} HTTP/1.1\r\nHost: {u.hostname}:{u.port}\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
                           ).encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("websocket handshake: connection closed")
            head += chunk
        status = head.split(b"\r\n", 1)[0]
        if b" 101 " not in status:
            raise ConnectionError(f"websocket handshake failed: {status!r}")
        self.buf = head.split(b"\r\n\r\n", 1)[1]

    def _exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            chunk = self.sock.recv(max(65536, n - len(self.buf)))
            if not chunk:
                raise ConnectionError("websocket closed")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def _frame(self, opcode: int, payload: bytes) -> None:
        n = len(payload)
        head = bytearray([0x80 | opcode])
        if n < 126:
            head.append(0x80 | n)
        elif n < 65536:
            head += bytes([0x80 | 126]) + n.to_bytes(2, "big")
        else:
            head += bytes([0x80 | 127]) + n.to_bytes(8, "big")
        mask = os.urandom(4)
        data = (np.frombuffer(payload, np.uint8) ^ np.resize(np.frombuffer(mask, np.uint8), n)).tobytes()
        self.sock.sendall(bytes(head) + mask + data)

    def send(self, text: str) -> None:
        self._frame(0x1, text.encode())

    def recv(self) -> str:
        parts = []
        while True:
            b0, b1 = self._exact(2)
            n = b1 & 0x7F
            if n == 126:
                n = int.from_bytes(self._exact(2), "big")
            elif n == 127:
                n = int.from_bytes(self._exact(8), "big")
            mask = self._exact(4) if b1 & 0x80 else None
            payload = self._exact(n)
            if mask:
                payload = (np.frombuffer(payload, np.uint8) ^ np.resize(np.frombuffer(mask, np.uint8), n)).tobytes()
            opcode = b0 & 0x0F
            if opcode == 0x8:
                raise ConnectionError("websocket closed by the browser")
            if opcode == 0x9:
                self._frame(0xA, payload)
                continue
            if opcode in (0x0, 0x1, 0x2):
                parts.append(payload)
                if b0 & 0x80:
                    return b"".join(parts).decode("utf-8")

    def close(self) -> None:
        try:
            self._frame(0x8, b"")
        except OSError:
            pass
        self.sock.close()


class DevTools:
    """One page of a headless Chromium, driven through a flattened target session; events are kept in order."""

    def __init__(self, tmp: Path):
        self.profile = Path(tempfile.mkdtemp(prefix="chromium-profile-", dir=tmp))
        self.proc = subprocess.Popen([CHROMIUM, *FLAGS, f"--user-data-dir={self.profile}",
                                      "--remote-debugging-port=0", "--window-size=1366,900", "about:blank"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file = self.profile / "DevToolsActivePort"
        deadline = time.time() + 60
        while not (port_file.is_file() and len(port_file.read_text().split()) >= 2):
            if self.proc.poll() is not None or time.time() > deadline:
                self.stop()
                raise RuntimeError("Chromium did not start (no DevToolsActivePort)")
            time.sleep(0.1)
        port, path = port_file.read_text().split()[:2]
        self.ws = WebSocket(f"ws://127.0.0.1:{port}{path}")
        self.next_id = 0
        self.events: list[dict] = []
        self.session = None
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]

    def call(self, method: str, timeout: float = 60.0, **params) -> dict:
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params}
        if self.session:
            msg["sessionId"] = self.session
        self.ws.send(json.dumps(msg))
        deadline = time.time() + timeout
        while time.time() < deadline:
            reply = json.loads(self.ws.recv())
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)
        raise TimeoutError(method)

    def wait_for(self, method: str, timeout: float = 60.0) -> dict:
        deadline = time.time() + timeout
        for e in self.events:
            if e.get("method") == method:
                return e
        while time.time() < deadline:
            e = json.loads(self.ws.recv())
            self.events.append(e)
            if e.get("method") == method:
                return e
        raise TimeoutError(method)

    def evaluate(self, expression: str):
        r = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in r:
            raise RuntimeError(r["exceptionDetails"])
        return r["result"].get("value")

    def stop(self) -> None:
        if getattr(self, "ws", None) is not None:
            self.ws.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.profile, ignore_errors=True)


def load_in_browser(html_path: Path, tmp: Path, shot: Path, width: int = 1366, height: int = 900) -> dict:
    """Open the report, let it settle, and return what a reader's browser saw; writes a screenshot to ``shot``."""
    dt = DevTools(tmp)
    try:
        for domain in ("Page", "Runtime", "Log", "Network"):
            dt.call(f"{domain}.enable")
        dt.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False)
        dt.call("Page.navigate", url=html_path.resolve().as_uri())
        dt.wait_for("Page.loadEventFired")
        dt.evaluate("Promise.all(Array.from(document.images).map(i => i.decode().catch(() => null)))")
        images = dt.evaluate("Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.naturalHeight, "
                             "i.getBoundingClientRect().width, i.alt])")
        layout = dt.evaluate("({scroll: document.documentElement.scrollWidth, inner: window.innerWidth, "
                             "height: document.documentElement.scrollHeight, "
                             "sections: Array.from(document.querySelectorAll('section')).map(s => s.id)})")
        png = base64.b64decode(dt.call("Page.captureScreenshot", format="png")["data"])
        shot.write_bytes(png)
        time.sleep(0.2)
        dt.call("Runtime.evaluate", expression="1")   # flush late events
        ev = dt.events
        errors = [e["params"] for e in ev if e.get("method") == "Runtime.exceptionThrown"]
        errors += [e["params"] for e in ev if e.get("method") == "Runtime.consoleAPICalled"
                   and e["params"].get("type") in ("error", "assert")]
        errors += [e["params"]["entry"] for e in ev if e.get("method") == "Log.entryAdded"
                   and e["params"]["entry"].get("level") == "error"]
        requests = [e["params"]["request"]["url"] for e in ev if e.get("method") == "Network.requestWillBeSent"]
        failed = [e["params"] for e in ev if e.get("method") == "Network.loadingFailed"]
        return {"images": images, "layout": layout, "errors": errors, "requests": requests, "failed": failed}
    finally:
        dt.stop()


def _check_page(seen: dict, shot: Path, n_images: int) -> None:
    assert seen["errors"] == [], seen["errors"]
    assert seen["failed"] == [], seen["failed"]
    external = [u for u in seen["requests"] if not u.startswith(("file:", "data:"))]
    assert external == [], external
    assert len(seen["images"]) == n_images
    for complete, nw, nh, shown, alt in seen["images"]:
        assert complete and nw > 0 and nh > 0, f"image {alt!r} did not decode"
        assert shown > 0
    lay = seen["layout"]
    assert lay["sections"] == ["summary", "tree", "basins", "paths", "masses", "labels", "kinetics", "map",
                              "diagnostics"]
    assert lay["scroll"] <= lay["inner"], "the page is wider than a 1366-pixel laptop window"
    img = Image.open(shot)
    img.load()
    assert img.size == (1366, 900)
    a = np.asarray(img.convert("L"), dtype=float)
    assert a.std() > 10, "the screenshot is blank"


def test_report_in_headless_chromium(tmp_path):
    from mb_helpers import mb_analysis
    html = mb_analysis().write_report(tmp_path / "report.html")
    shot = tmp_path / "report.png"
    seen = load_in_browser(html, tmp_path, shot)
    # tree, 2 path cards, masses, confusion, first-passage matrix, free-energy graph, sampler check, contour map
    _check_page(seen, shot, n_images=9)


def test_report_with_thumbnails_and_filmstrips_in_headless_chromium(tmp_path):
    from test_report import decoder_analysis
    res = decoder_analysis()
    html = res.write_report(tmp_path / "report.html")
    shot = tmp_path / "report.png"
    seen = load_in_browser(html, tmp_path, shot)
    # tree, 3 basin thumbnails, 2 path cards, masses, confusion, first-passage matrix, free-energy graph, sampler
    # check, contour map
    _check_page(seen, shot, n_images=12)
    assert sorted(alt for *_, alt in seen["images"] if alt.startswith("prototype")) == [
        "prototype 0", "prototype 1", "prototype 2"]


def test_the_checks_can_fail(tmp_path):
    """The harness sees what it must catch: a corrupt image, console errors, exceptions and outside requests."""
    bad = tmp_path / "bad.html"
    bad.write_text('<!DOCTYPE html><html><head><meta charset="utf-8"><link rel="icon" href="data:,"></head><body>'
                   '<section id="x"><img alt="broken" src="data:image/png;base64,iVBORw0KGgoAAAAN">'
                   '<img alt="outside" src="http://127.0.0.1:9/x.png"></section>'
                   '<script>console.error("boom"); throw new Error("bang");</script></body></html>')
    seen = load_in_browser(bad, tmp_path, tmp_path / "bad.png")
    widths = {alt: nw for _, nw, _, _, alt in seen["images"]}
    assert widths == {"broken": 0, "outside": 0}
    text = json.dumps(seen["errors"])
    assert "boom" in text and "bang" in text
    assert "http://127.0.0.1:9/x.png" in seen["requests"]


def test_a_thousand_minimum_style_report_sorts_and_pages_in_headless_chromium(tmp_path):
    """The report of the product landscape (64 minima: more than a page, a pruned tree): no console errors, every
    image decodes, the basin table shows 50 rows of 64, sorts by a column and pages."""
    import energyscope as es
    from energyscope.surfaces import RotatedProduct
    res = es.analyze(es.Landscape(RotatedProduct(32, 6), dim=32), seed=0, masses=False, progress=False)
    html = res.write_report(tmp_path / "report.html")
    dt = DevTools(tmp_path)
    try:
        for domain in ("Page", "Runtime", "Log"):
            dt.call(f"{domain}.enable")
        dt.call("Page.navigate", url=html.resolve().as_uri())
        dt.wait_for("Page.loadEventFired")
        dt.evaluate("Promise.all(Array.from(document.images).map(i => i.decode().catch(() => null)))")
        decoded = dt.evaluate("Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)")
        rows = "Array.from(document.querySelectorAll('#basin-table tbody tr'))"
        visible = f"{rows}.filter(r => !r.hidden).map(r => +r.dataset.index)"
        first = dt.evaluate(visible)
        pager = dt.evaluate("document.querySelector('#basin-pager span').textContent")
        dt.evaluate("document.querySelector('#basin-table th[data-key=\"barrier\"]').click()")
        by_barrier = dt.evaluate(f"{rows}.filter(r => !r.hidden).map(r => r.dataset.barrier)")
        sorted_first = dt.evaluate(visible)
        dt.evaluate("document.querySelector('#basin-pager button[data-step=\"1\"]').click()")
        second = dt.evaluate(visible)
        time.sleep(0.2)
        dt.call("Runtime.evaluate", expression="1")
        errors = [e for e in dt.events if e.get("method") == "Runtime.exceptionThrown"
                  or (e.get("method") == "Log.entryAdded" and e["params"]["entry"].get("level") == "error")]
    finally:
        dt.stop()
    assert errors == [] and decoded
    assert first == list(range(50)) and pager == "page 1 of 2 (64 basins)"
    b = [float(x) for x in by_barrier]
    assert len(b) == 50 and b == sorted(b)                      # ascending barriers on the first page
    assert len(second) == 14 and set(second).isdisjoint(sorted_first) and len(set(second) | set(sorted_first)) == 64
