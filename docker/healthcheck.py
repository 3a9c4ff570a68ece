#!/usr/bin/env python3
"""Health check of the `run` service (docker/compose.yaml): GET /healthz on the viewer, which the
service serves at VIEWER_HOST:VIEWER_PORT (127.0.0.1:8080 by default; 0.0.0.0 / :: are asked on
loopback). Exit 0 when it answers 200, 1 otherwise (Docker's convention). Standard library only."""

import os
import sys
import urllib.error
import urllib.request

ANY = ("", "0.0.0.0", "::", "[::]")


def url(env=os.environ) -> str:
    host = env.get("VIEWER_HOST", "127.0.0.1").strip()
    host = "127.0.0.1" if host in ANY else host
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # an IPv6 literal
    return f"http://{host}:{env.get('VIEWER_PORT', '8080').strip() or '8080'}/healthz"


def main(env=os.environ, timeout: float = 3.0) -> int:
    target = url(env)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via an http_proxy
    try:
        with opener.open(target, timeout=timeout) as resp:
            if resp.status == 200:
                return 0
            print(f"healthcheck: {target} answered {resp.status}", file=sys.stderr)
    except (urllib.error.URLError, OSError) as e:
        print(f"healthcheck: {target}: {e}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
