"""A loopback stand-in for the Hugging Face hub's file endpoint, for the real download code
(huggingface_hub.hf_hub_download with HF_ENDPOINT pointed here). It serves files a test makes,
answering `HEAD|GET /<repo>/resolve/<revision>/<file>` with the headers the client reads
(commit, ETag, size); anything else is 404. Records the paths asked for."""

import hashlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Dict, List, Tuple

COMMIT = "0123456789abcdef0123456789abcdef01234567"


class HubServer:
    def __init__(self, files: Dict[Tuple[str, str], bytes]):
        self.files = files  # (repo, filename) -> content
        self.requests: List[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _answer(self, body: bool):
                server.requests.append(f"{self.command} {self.path}")
                parts = self.path.split("?")[0].strip("/").split("/")
                # <owner>/<name>/resolve/<revision>/<filename>
                if len(parts) >= 5 and parts[2] == "resolve":
                    key = ("/".join(parts[:2]), "/".join(parts[4:]))
                    data = server.files.get(key)
                    if data is not None:
                        self.send_response(200)
                        self.send_header("Content-Length", str(len(data)))
                        self.send_header("ETag", '"' + hashlib.sha256(data).hexdigest() + '"')
                        self.send_header("X-Repo-Commit", COMMIT)
                        self.send_header("Content-Type", "application/octet-stream")
                        self.end_headers()
                        if body:
                            self.wfile.write(data)
                        return
                self.send_response(404)
                self.send_header("X-Error-Code", "EntryNotFound")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_HEAD(self):
                self._answer(body=False)

            def do_GET(self):
                self._answer(body=True)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
