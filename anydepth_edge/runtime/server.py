"""The viewer for headless robots: a small HTTP server with MJPEG streams of the camera and the
depth, live timings as JSON, and one HTML page showing both side by side.

Binds 127.0.0.1 unless a host is given (`--serve 0.0.0.0:8080` to expose it). Hardened for a
robot on a shared network: only requests addressed to this server by name are answered (the Host
header: DNS rebinding cannot turn a web page into a client), sockets time out, client threads
are bounded (extra clients get a quick 503), and clients that go away are not tracebacks.
Standard library only, Python 3.8.
"""

import ipaddress
import json
import logging
import re
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Dict, FrozenSet, List, Optional, Tuple
from urllib.parse import urlsplit

from anydepth_edge.errors import UserError

PAGE = Path(__file__).with_name("static") / "index.html"
BOUNDARY = "anydepthframe"
STREAMS = ("rgb", "depth")
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
WILDCARDS = frozenset({"", "0.0.0.0", "::"})
REQUEST_TIMEOUT_S = 10.0  # a client that stops sending (or reading) for this long is dropped
MAX_CLIENTS = 32  # a page holds two streams and polls the stats: room for many viewers, not for a flood
BUSY_BODY = b"too many viewers: try again shortly\n"
BUSY = (b"HTTP/1.0 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n"
        b"Retry-After: 5\r\nConnection: close\r\n\r\n" % len(BUSY_BODY)) + BUSY_BODY
log = logging.getLogger(__name__)


def parse_serve(text: str, option: str = "--serve") -> Tuple[str, int]:
    """'8080' -> ('127.0.0.1', 8080); 'HOST:PORT' as given; port 0 picks a free one."""
    host, _, port = str(text).rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    try:
        number = int(port)
    except ValueError:
        raise UserError(f"{option} {text}: give PORT or HOST:PORT (e.g. 8080 or 0.0.0.0:8080)") from None
    if not 0 <= number <= 65535:
        raise UserError(f"{option} {text}: port must be 0-65535")
    return canonical_host(host), number


def canonical_host(host: str) -> str:
    """The address the socket will bind, spelt canonically: '0' and '0000' are 0.0.0.0 to the socket
    (inet_aton), so they must be to the Host check and the exposure warning too."""
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    if re.fullmatch(r"[0-9.]+|0[xX][0-9a-fA-F]+", host):
        try:
            return socket.inet_ntoa(socket.inet_aton(host))
        except OSError:
            raise UserError(f"--serve {host}: not an IP address") from None
    return host


def exposed(host: str) -> bool:
    """Whether binding `host` makes the viewer reachable from other machines."""
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host.lower() != "localhost"


def allowed_hosts(bind_host: str, bound_ip: str) -> Tuple[FrozenSet[str], bool]:
    """(names a Host header may carry, whether any IP literal may): loopback and the bound
    address; bound to every interface, also this machine's name (and its mDNS .local) and IPs."""
    names = set(LOOPBACK_NAMES) | {bind_host.lower(), bound_ip.lower()}
    wildcard = bind_host in WILDCARDS
    if wildcard:
        hostname = socket.gethostname().lower()
        names |= {hostname, f"{hostname}.local"}
    return frozenset(names - {""}), wildcard


def host_ok(header: Optional[str], names: FrozenSet[str], any_ip: bool) -> bool:
    """Whether the Host header (any port) names this server."""
    try:
        host = urlsplit(f"//{header.strip()}").hostname if header else None
    except ValueError:  # e.g. an unclosed IPv6 bracket
        return False
    if not host:
        return False
    if host in names:
        return True
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return any_ip


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


def _handler(hub: FrameHub, names: FrozenSet[str], any_ip: bool, request_timeout: float):
    class Handler(BaseHTTPRequestHandler):
        server_version = "anydepth-edge"
        timeout = request_timeout  # put on the socket: a held partial request or a stalled reader ends

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
            if not host_ok(self.headers.get("Host"), names, any_ip):
                self._send(421, "text/plain", b"this server answers to its own address only (Host header)\n")
                return
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
            except (ConnectionError, socket.timeout):
                pass  # the viewer went away (or stopped reading)

    return Handler


class _Server(ThreadingHTTPServer):
    """ThreadingHTTPServer with a bounded number of client threads and quiet disconnects."""

    daemon_threads = True
    request_queue_size = 128  # listen backlog: the default 5 refuses a page opening its streams at once

    def __init__(self, address, max_clients: int):
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.slots = threading.BoundedSemaphore(max_clients)
        super().__init__(address, None)  # the handler depends on the bound address: set once bound

    def process_request(self, request, client_address):
        if not self.slots.acquire(blocking=False):
            self._busy(request)
            return
        try:
            super().process_request(request, client_address)  # starts the thread, which releases the slot
        except BaseException:
            self.slots.release()
            raise

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()

    def _busy(self, request) -> None:
        """503 at once, on the accepting thread: no thread for a client over the limit."""
        try:
            request.settimeout(0.1)
            request.sendall(BUSY)
            request.shutdown(socket.SHUT_WR)
            request.recv(65536)  # read the request, so closing sends FIN, not a reset that loses the 503
        except OSError:
            pass
        finally:
            request.close()

    def handle_error(self, request, client_address):
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, socket.timeout)):
            log.debug("viewer: client %s went away (%s)", client_address, exc)
        else:
            log.warning("viewer: request from %s failed: %s: %s", client_address, type(exc).__name__, exc)


class DepthServer:
    def __init__(self, hub: FrameHub, host: str = "127.0.0.1", port: int = 8080,
                 timeout: float = REQUEST_TIMEOUT_S, max_clients: int = MAX_CLIENTS):
        self.hub = hub
        try:
            self.httpd = _Server((host, port), max_clients)
        except OSError as e:
            raise UserError(f"--serve {host}:{port}: cannot listen ({e.strerror or e})") from None
        names, any_ip = allowed_hosts(host, self.address[0])
        self.httpd.RequestHandlerClass = _handler(hub, names, any_ip, timeout)
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="viewer", daemon=True)
        self.thread.start()

    @property
    def address(self) -> Tuple[str, int]:
        return self.httpd.server_address[:2]

    @property
    def url(self) -> str:
        host, port = self.address
        return _url(host, port)

    @property
    def urls(self) -> List[str]:
        """What to open: the bound address, or bound to every interface (0.0.0.0 opens nothing
        from a laptop), this machine's name and each of its addresses another machine can use."""
        host, port = self.address
        return [_url(name, port) for name in reachable_hosts(host)]

    def close(self, wait: Optional[float] = 2.0) -> None:
        self.hub.close()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=wait)


def _url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


def reachable_hosts(host: str) -> List[str]:
    """The names another machine can use for a server bound to `host`: itself, or bound to every
    interface (0.0.0.0 opens nothing from a laptop), this machine's name and its addresses."""
    if host not in WILDCARDS:
        return [host]
    return [socket.gethostname().lower()] + host_addresses()


def host_addresses() -> List[str]:
    """This machine's non-loopback IPv4 addresses: the one its default route leaves from (a UDP
    connect sends nothing) and those its name resolves to."""
    found = []
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect(("192.0.2.1", 9))  # TEST-NET-1: never routed anywhere, no packet leaves
            found.append(probe.getsockname()[0])
    except OSError:  # no route at all (an offline robot): the name's addresses only
        pass
    try:
        found += socket.gethostbyname_ex(socket.gethostname())[2]
    except OSError:
        pass
    return [a for a in dict.fromkeys(found) if not ipaddress.ip_address(a).is_loopback
            and not ipaddress.ip_address(a).is_unspecified]


def jpeg(cv2, image, quality: int = 80) -> bytes:
    ok, buf = cv2.imencode(".jpg", image, [int(cv2.IMWRITE_JPEG_QUALITY), quality])
    return buf.tobytes() if ok else b""
