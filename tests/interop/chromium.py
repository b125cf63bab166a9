"""Headless Chromium driven over the DevTools protocol (CDP), to check siptool's pictures as a browser
renders them: the boxes of every SVG text and arrowhead, console errors, screenshots.

One browser per test module; each `render(path)` opens a fresh tab, loads the file, measures it and
closes the tab. The browser listens on a loopback port it picks itself (DevToolsActivePort).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0", "--hide-scrollbars"]

# Runs in the page: every <svg>'s box, each <text>'s box, and each arrowhead's box, computed from
# the marker's own size (markerUnits strokeWidth scales it by the stroke) at the end of its line.
MEASURE = r"""
(() => {
  const box = r => ({x0: r.left, y0: r.top, x1: r.right, y1: r.bottom});
  const out = [];
  for (const svg of document.querySelectorAll('svg')) {
    const texts = [...svg.querySelectorAll('text')].map(t => Object.assign(box(t.getBoundingClientRect()),
      {text: t.textContent}));
    const heads = [];
    for (const el of svg.querySelectorAll('[marker-end]')) {
      const id = el.getAttribute('marker-end').match(/#([^)]+)/)[1];
      const m = svg.querySelector('marker#' + CSS.escape(id));
      const scale = m.getAttribute('markerUnits') === 'userSpaceOnUse' ? 1 :
        parseFloat(getComputedStyle(el).strokeWidth);
      const len = parseFloat(m.getAttribute('markerWidth') || 3) * scale;
      const half = parseFloat(m.getAttribute('markerHeight') || 3) * scale / 2;
      const total = el.getTotalLength();
      const tip = el.getPointAtLength(total), back = el.getPointAtLength(Math.max(total - 1, 0));
      let dx = tip.x - back.x, dy = tip.y - back.y;
      const d = Math.hypot(dx, dy) || 1; dx /= d; dy /= d;
      const ctm = el.getScreenCTM();
      const pts = [[tip.x, tip.y], [tip.x - dx * len - dy * half, tip.y - dy * len + dx * half],
                   [tip.x - dx * len + dy * half, tip.y - dy * len - dx * half]].map(([x, y]) => {
        const p = new DOMPoint(x, y).matrixTransform(ctm); return [p.x, p.y]; });
      const xs = pts.map(p => p[0]), ys = pts.map(p => p[1]);
      heads.push({x0: Math.min(...xs), y0: Math.min(...ys), x1: Math.max(...xs), y1: Math.max(...ys),
                  size: len});
    }
    out.push({svg: box(svg.getBoundingClientRect()), texts, heads});
  }
  const right = Math.max(0, ...out.map(s => s.svg.x1 + window.scrollX));
  return {svgs: out, width: Math.max(document.documentElement.scrollWidth, Math.ceil(right) + 40),
          height: document.documentElement.scrollHeight};
})()
"""


@dataclass
class Rendered:
    svgs: list[dict]
    errors: list[str] = field(default_factory=list)  # console errors, exceptions, failed loads
    screenshot: bytes = b""
    value: object = None  # what the page's expression returned


class Chromium:
    def __init__(self, binary: str) -> None:
        import websocket  # websocket-client, the test extra

        self.profile = Path(tempfile.mkdtemp(prefix="siptool-chromium-"))
        self.log = open(self.profile / "chromium.log", "wb")  # a file, not a pipe: it writes a lot
        self.proc = subprocess.Popen([binary, *FLAGS, f"--user-data-dir={self.profile}", "about:blank"],
                                     stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     start_new_session=True)
        port_file = self.profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not (port_file.exists() and len(port_file.read_text().splitlines()) >= 2):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise RuntimeError(f"chromium did not start: {self.output()[-2000:]}")
            time.sleep(0.05)
        port, path = port_file.read_text().splitlines()[:2]
        self.ws = websocket.create_connection(f"ws://127.0.0.1:{port}{path}", timeout=30, suppress_origin=True)
        self.next_id = 0
        self.events: list[dict] = []

    def send(self, method: str, session: str | None = None, **params) -> dict:
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params}
        if session:
            msg["sessionId"] = session
        self.ws.send(json.dumps(msg))
        while True:
            reply = json.loads(self.ws.recv())
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_event(self, method: str, session: str, timeout: float = 30) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            for i, ev in enumerate(self.events):
                if ev.get("method") == method and ev.get("sessionId") == session:
                    return self.events.pop(i)
            if time.monotonic() > deadline:
                raise TimeoutError(method)
            self.events.append(json.loads(self.ws.recv()))

    def render(self, path: Path, width: int = 1280, height: int = 800) -> Rendered:
        """Load `path`, measure its SVGs, take a screenshot of the whole page."""
        return self.open(path, MEASURE, width=width, height=height)

    def open(self, path: Path, expression: str, ready: str = "true", width: int = 1280, height: int = 800,
             timeout: float = 30) -> Rendered:
        """Load `path`, wait until `ready` (JavaScript) is true, then evaluate `expression`; its value
        (an object with `svgs`, or anything under "value") comes back with the console errors."""
        target = self.send("Target.createTarget", url="about:blank")["targetId"]
        session = self.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        try:
            for domain in ("Page", "Runtime", "Log"):
                self.send(f"{domain}.enable", session)
            self.send("Emulation.setDeviceMetricsOverride", session, width=width, height=height,
                      deviceScaleFactor=1, mobile=False)
            self.send("Page.navigate", session, url=Path(path).resolve().as_uri())
            self.wait_event("Page.loadEventFired", session)
            deadline = time.monotonic() + timeout
            while not self.send("Runtime.evaluate", session, expression=f"!!({ready})",
                                returnByValue=True)["result"].get("value"):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{path}: {ready}")
                time.sleep(0.05)
            result = self.send("Runtime.evaluate", session, expression=expression, returnByValue=True)
            if "exceptionDetails" in result:
                raise RuntimeError(f"evaluating failed: {result['exceptionDetails']}")
            page = result["result"]["value"]
            self.send("Emulation.setDeviceMetricsOverride", session,
                      width=max(width, int(page.get("width", 0)) if isinstance(page, dict) else width),
                      height=int(page.get("height", height)) if isinstance(page, dict) else height,
                      deviceScaleFactor=1, mobile=False)
            shot = self.send("Page.captureScreenshot", session, format="png")["data"]
            errors = []
            for ev in [e for e in self.events if e.get("sessionId") == session]:
                p = ev.get("params", {})
                if ev.get("method") == "Runtime.exceptionThrown":
                    errors.append(p["exceptionDetails"].get("text", "exception"))
                elif ev.get("method") == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                    errors.append(" ".join(str(a.get("value", a.get("description"))) for a in p.get("args", [])))
                elif ev.get("method") == "Log.entryAdded" and p["entry"].get("level") == "error":
                    errors.append(p["entry"].get("text", ""))
            svgs = page.get("svgs", []) if isinstance(page, dict) else []
            return Rendered(svgs=svgs, errors=errors, screenshot=base64.b64decode(shot), value=page)
        finally:
            self.events = [e for e in self.events if e.get("sessionId") != session]
            self.send("Target.closeTarget", targetId=target)

    def output(self) -> str:
        return (self.profile / "chromium.log").read_text(errors="replace")

    def close(self) -> None:
        """Stop the browser and its helper processes (its own process group), remove its profile."""
        if getattr(self, "ws", None) is not None:
            self.ws.close()
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(self.proc.pid, sig)
                self.proc.wait(timeout=10)
                break
            except ProcessLookupError:
                break
            except subprocess.TimeoutExpired:
                continue
        self.log.close()
        shutil.rmtree(self.profile, ignore_errors=True)


def overlap(a: dict, b: dict, tolerance: float = 0.5) -> bool:
    """Two boxes share more than `tolerance` px in both directions."""
    return (min(a["x1"], b["x1"]) - max(a["x0"], b["x0"]) > tolerance
            and min(a["y1"], b["y1"]) - max(a["y0"], b["y0"]) > tolerance)


def layout_problems(rendered: Rendered) -> list[str]:
    """What a reader would trip over: text on text, text under an arrowhead, text off the picture,
    console errors."""
    problems = [f"console: {e}" for e in rendered.errors]
    for n, s in enumerate(rendered.svgs):
        texts, heads, frame = s["texts"], s["heads"], s["svg"]
        for i, a in enumerate(texts):
            if a["x0"] < frame["x0"] - 0.5 or a["x1"] > frame["x1"] + 0.5 or a["y0"] < frame["y0"] - 0.5 \
                    or a["y1"] > frame["y1"] + 0.5:
                problems.append(f"svg {n}: {a['text']!r} extends beyond the picture")
            for b in texts[i + 1:]:
                if overlap(a, b):
                    problems.append(f"svg {n}: {a['text']!r} overlaps {b['text']!r}")
            for h in heads:
                if overlap(a, h):
                    problems.append(f"svg {n}: {a['text']!r} overlaps an arrowhead at "
                                    f"({h['x0']:.0f}, {h['y0']:.0f})")
    return problems
