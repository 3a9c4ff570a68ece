"""The viewer for headless robots: a small HTTP server with MJPEG streams of the camera and the
depth, live timings as JSON, and one HTML page showing both side by side.

Binds 127.0.0.1 unless a host is given (`--serve 0.0.0.0:8080` to expose it). Standard library
only, Python 3.8.
"""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

from anydepth_edge.errors import UserError

PAGE = Path(__file__).with_name("static") / "index.html"
BOUNDARY = "anydepthframe"
STREAMS = ("rgb", "depth")


def parse_serve(text: str) -> Tuple[str, int]:
    """'8080' -> ('127.0.0.1', 8080); 'HOST:PORT' as given; port 0 picks a free one."""
    host, _, port = str(text).rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    try:
        number = int(port)
    except ValueError:
        raise UserError(f"--serve {text}: give PORT or HOST:PORT (e.g. 8080 or 0.0.0.0:8080)") from None
    if not 0 <= number <= 65535:
        raise UserError(f"--serve {text}: port must be 0-65535")
    return host, number


class FrameHub:
    """The newest JPEG of each stream and the newest stats; handlers wait for the next one."""

    def __init__(self):
        self.cond = threading.Condition()
        self.jpegs: Dict[str, bytes] = {}
        self.seq = 0
        self.stats: Dict[str, Any] = {}
        self.closed = False

    def publish(self, jpegs: Dict[str, bytes], stats: Dict[str, Any]) -> None:
        with self.cond:
            self.jpegs = jpegs
            self.stats = stats
            self.seq += 1
            self.cond.notify_all()

    def wait(self, after: int, timeout: float = 5.0):
        with self.cond:
            self.cond.wait_for(lambda: self.seq > after or self.closed, timeout=timeout)
            return self.seq, dict(self.jpegs)

    def close(self) -> None:
        with self.cond:
            self.closed = True
            self.cond.notify_all()


def _handler(hub: FrameHub):
    class Handler(BaseHTTPRequestHandler):
        server_version = "anydepth-edge"

        def log_message(self, fmt, *args):  # quiet: the loop prints its own summary
            pass

        def _send(self, code: int, ctype: str, body: bytes) -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            path = self.path.split("?", 1)[0]
            if path in ("/", "/index.html"):
                self._send(200, "text/html; charset=utf-8", PAGE.read_bytes())
            elif path == "/stats.json":
                with hub.cond:
                    body = json.dumps({"seq": hub.seq, **hub.stats}).encode()
                self._send(200, "application/json", body)
            elif path == "/healthz":
                self._send(200, "text/plain", b"ok\n")
            elif path.startswith("/snapshot/") and path[len("/snapshot/"):].split(".")[0] in STREAMS:
                name = path[len("/snapshot/"):].split(".")[0]
                _, jpegs = hub.wait(0, timeout=5.0)
                if name in jpegs:
                    self._send(200, "image/jpeg", jpegs[name])
                else:
                    self._send(503, "text/plain", b"no frame yet\n")
            elif path.startswith("/stream/") and path[len("/stream/"):].split(".")[0] in STREAMS:
                self._stream(path[len("/stream/"):].split(".")[0])
            else:
                self._send(404, "text/plain", b"not found\n")

        def _stream(self, name: str) -> None:
            self.send_response(200)
            self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            seq = 0
            try:
                while not hub.closed:
                    seq, jpegs = hub.wait(seq)
                    jpeg = jpegs.get(name)
                    if jpeg is None:
                        continue
                    self.wfile.write(f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n".encode())
                    self.wfile.write(jpeg + b"\r\n")
                    self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                pass  # the viewer went away

    return Handler


class DepthServer:
    def __init__(self, hub: FrameHub, host: str = "127.0.0.1", port: int = 8080):
        self.hub = hub
        try:
            self.httpd = ThreadingHTTPServer((host, port), _handler(hub))
        except OSError as e:
            raise UserError(f"--serve {host}:{port}: cannot listen ({e.strerror or e})") from None
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="viewer", daemon=True)
        self.thread.start()

    @property
    def address(self) -> Tuple[str, int]:
        return self.httpd.server_address[:2]

    @property
    def url(self) -> str:
        host, port = self.address
        return f"http://{host}:{port}/"

    def close(self, wait: Optional[float] = 2.0) -> None:
        self.hub.close()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=wait)


def jpeg(cv2, image, quality: int = 80) -> bytes:
    ok, buf = cv2.imencode(".jpg", image, [int(cv2.IMWRITE_JPEG_QUALITY), quality])
    return buf.tobytes() if ok else b""
