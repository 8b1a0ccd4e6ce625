"""Render an HTML page in headless Chromium and report what a reader would see: a screenshot and the console errors.

Chromium is driven over the DevTools protocol on ``--remote-debugging-pipe`` (file descriptors 3 and 4, messages
separated by NUL bytes), so no websocket library and no network port are needed. We chose CDP over the simpler
``--screenshot --enable-logging=stderr`` route because the stderr log prints every console message at level INFO
(``console.log`` and ``console.error`` are indistinguishable) and says nothing about images that fail to decode;
over CDP we get ``Runtime.exceptionThrown``, ``Runtime.consoleAPICalled`` with its type, ``Log.entryAdded`` with its
level (failed resource loads), and we can ask the page how many ``<img>`` did not decode.

Install the browser with ``launch/install_chromium.sh`` (Debian package ``chromium``).
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
)

_BROKEN_IMAGES_JS = "Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0)).length"


def find_chromium() -> str | None:
    """Path of a Chromium-like browser on PATH (``REPDYN_CHROMIUM`` overrides), or None."""
    override = os.environ.get("REPDYN_CHROMIUM")
    if override:
        return override
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None


@dataclass
class RenderResult:
    """What headless Chromium saw: console errors (exceptions, console.error, failed loads), images that did not
    decode, the page title and the screenshot path."""

    screenshot: Path | None
    console_errors: list[str] = field(default_factory=list)
    broken_images: int = 0
    n_images: int = 0
    title: str = ""

    @property
    def ok(self) -> bool:
        return not self.console_errors and self.broken_images == 0


class _PipeCDP:
    """Minimal DevTools-protocol client over Chromium's remote-debugging pipe."""

    def __init__(self, proc: subprocess.Popen, write_fd: int, read_fd: int) -> None:
        self.proc, self.write_fd, self.read_fd = proc, write_fd, read_fd
        self._buf = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []

    def _read_message(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buf:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("Chromium did not answer in time")
            ready, _, _ = select.select([self.read_fd], [], [], remaining)
            if not ready:
                continue
            chunk = os.read(self.read_fd, 1 << 20)
            if not chunk:
                raise RuntimeError(f"Chromium closed the DevTools pipe (exit code {self.proc.poll()})")
            self._buf += chunk
        raw, self._buf = self._buf.split(b"\0", 1)
        return json.loads(raw)

    def call(self, method: str, params: dict | None = None, session: str | None = None, timeout: float = 60.0) -> dict:
        self._next_id += 1
        msg: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        try:
            os.write(self.write_fd, json.dumps(msg).encode() + b"\0")
        except BrokenPipeError as err:
            raise RuntimeError(f"Chromium exited before {method} (exit code {self.proc.poll()})") from err
        deadline = time.monotonic() + timeout
        while True:
            reply = self._read_message(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"CDP {method} failed: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_event(self, method: str, timeout: float = 60.0) -> dict:
        for ev in self.events:
            if ev.get("method") == method:
                return ev
        deadline = time.monotonic() + timeout
        while True:
            ev = self._read_message(deadline)
            self.events.append(ev)
            if ev.get("method") == method:
                return ev


def _describe(ev: dict[str, Any]) -> str | None:
    """One line for an event that a reader would call a console error, else None."""
    method, p = ev.get("method"), ev.get("params", {})
    if method == "Runtime.exceptionThrown":
        d = p.get("exceptionDetails", {})
        return "Uncaught " + str(d.get("exception", {}).get("description") or d.get("text", "exception"))
    if method == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
        return "console.error: " + " ".join(str(a.get("value", a.get("description", ""))) for a in p.get("args", []))
    if method == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
        e = p["entry"]
        return f"{e.get('source', 'log')}: {e.get('text', '')} {e.get('url', '')}".strip()
    return None


def _launch_chromium(exe: str, profile: str, to_chrome_r: int, from_chrome_w: int) -> subprocess.Popen:
    """Headless Chromium speaking DevTools over a pipe: it reads commands on fd 3 and writes replies on fd 4."""

    def _child_fds() -> None:
        # Move both ends above 10 first (F_DUPFD), so neither is clobbered when it already sits on 3 or 4 and dup2
        # always targets a different fd (dup2 onto itself would keep Python's close-on-exec flag and Chromium would
        # find the pipe closed).
        r = fcntl.fcntl(to_chrome_r, fcntl.F_DUPFD, 10)
        w = fcntl.fcntl(from_chrome_w, fcntl.F_DUPFD, 10)
        os.dup2(r, 3)
        os.dup2(w, 4)

    args = [exe, *CHROMIUM_FLAGS, "--remote-debugging-pipe", f"--user-data-dir={profile}", "about:blank"]
    return subprocess.Popen(
        args,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=_child_fds,  # only dup/dup2: async-signal-safe enough between fork and exec
        close_fds=False,
    )


def _open_page(cdp: _PipeCDP, html_path: Path, width: int, height: int, timeout: float) -> str:
    """Load ``html_path`` in a new ``width`` x ``height`` tab and wait for its load event; returns the session id."""
    target = cdp.call("Target.createTarget", {"url": "about:blank"}, timeout=timeout)["targetId"]
    sid = cdp.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
    for domain in ("Page", "Runtime", "Log"):
        cdp.call(f"{domain}.enable", session=sid)
    cdp.call(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
        session=sid,
    )
    cdp.call("Page.navigate", {"url": html_path.as_uri()}, session=sid)
    cdp.wait_event("Page.loadEventFired", timeout=timeout)
    return sid


def _inspect_page(cdp: _PipeCDP, sid: str, screenshot: str | os.PathLike | None, settle_s: float) -> RenderResult:
    """Broken images, image count and title of the loaded page, its screenshot, and the console errors so far."""
    time.sleep(settle_s)  # late console messages (timers) arrive as events before the next reply

    def evaluate(expression: str) -> Any:
        return cdp.call("Runtime.evaluate", {"expression": expression}, session=sid)["result"]["value"]

    n_broken = evaluate(_BROKEN_IMAGES_JS)
    n_images = evaluate("document.images.length")
    title = evaluate("document.title")
    shot_path = None
    if screenshot is not None:
        shot = cdp.call("Page.captureScreenshot", {"format": "png"}, session=sid)
        shot_path = Path(screenshot)
        shot_path.parent.mkdir(parents=True, exist_ok=True)
        shot_path.write_bytes(base64.b64decode(shot["data"]))
    return RenderResult(
        screenshot=shot_path,
        console_errors=[d for d in (_describe(ev) for ev in cdp.events) if d],
        broken_images=int(n_broken),
        n_images=int(n_images),
        title=str(title),
    )


def render_page(
    html_path: str | os.PathLike,
    screenshot: str | os.PathLike | None = None,
    *,
    width: int = 1400,
    height: int = 2400,
    settle_s: float = 0.5,
    timeout: float = 120.0,
    chromium: str | None = None,
) -> RenderResult:
    """Load ``html_path`` in headless Chromium, collect console errors, count undecodable images, and save a PNG
    screenshot of the first ``width`` x ``height`` pixels to ``screenshot`` (if given).

    Raises FileNotFoundError when no Chromium is installed (see ``launch/install_chromium.sh``).
    """
    html_path = Path(html_path).resolve()
    if not html_path.is_file():
        raise FileNotFoundError(f"html_path={html_path} does not exist")
    exe = chromium or find_chromium()
    if exe is None:
        raise FileNotFoundError("no chromium on PATH; install it with launch/install_chromium.sh (Debian: chromium)")
    to_chrome_r, to_chrome_w = os.pipe()
    from_chrome_r, from_chrome_w = os.pipe()
    with tempfile.TemporaryDirectory(prefix="repdyn-chromium-") as profile:
        proc = _launch_chromium(exe, profile, to_chrome_r, from_chrome_w)
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        cdp = _PipeCDP(proc, to_chrome_w, from_chrome_r)
        try:
            result = _inspect_page(cdp, _open_page(cdp, html_path, width, height, timeout), screenshot, settle_s)
            try:
                cdp.call("Browser.close", timeout=10)
            except (RuntimeError, TimeoutError):
                pass
        finally:
            os.close(to_chrome_w)
            os.close(from_chrome_r)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    return result
