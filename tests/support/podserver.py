"""A tiny HTTP server that cluster tests run as a pod's container through the pod runner.

``python -m tests.support.podserver PORT`` binds ``$POD_IP:PORT`` and answers:
``/healthz`` (200), ``/pid`` (its pid), ``/file?path=P`` (a mounted file's text),
``/env?name=N`` (an env var), ``/k8s?path=P`` (GET P on the apiserver with the pod's mounted
ServiceAccount token and CA, as in-cluster clients do; answers with the apiserver's status).
"""

from __future__ import annotations

import http.server
import os
import ssl
import sys
import urllib.error
import urllib.parse
import urllib.request

SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


class Handler(http.server.BaseHTTPRequestHandler):
    def _send(self, status: int, body: str) -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        url = urllib.parse.urlparse(self.path)
        query = dict(urllib.parse.parse_qsl(url.query))
        if url.path == "/healthz":
            self._send(200, "ok")
        elif url.path == "/pid":
            self._send(200, str(os.getpid()))
        elif url.path == "/file":
            try:
                with open(query["path"]) as fh:
                    self._send(200, fh.read())
            except OSError as exc:
                self._send(404, str(exc))
        elif url.path == "/env":
            self._send(200, os.environ.get(query["name"], ""))
        elif url.path == "/k8s":
            self._send(200, str(_api_status(query["path"])))
        else:
            self._send(404, "not found")

    def log_message(self, format: str, *args: object) -> None:
        return


def _api_status(path: str) -> int:
    with open(f"{SA_DIR}/token") as fh:
        token = fh.read().strip()
    host, port = os.environ["KUBERNETES_SERVICE_HOST"], os.environ["KUBERNETES_SERVICE_PORT"]
    ctx = ssl.create_default_context(cafile=f"{SA_DIR}/ca.crt")
    req = urllib.request.Request(
        f"https://{host}:{port}{path}", headers={"Authorization": f"Bearer {token}"}
    )
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=5) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def main() -> None:
    port = int(sys.argv[1])
    server = http.server.ThreadingHTTPServer((os.environ["POD_IP"], port), Handler)
    print(f"podserver serving on {os.environ['POD_IP']}:{port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
