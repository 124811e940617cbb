"""The slice of the kubelet API that ``kubectl logs`` needs, served by the pod runner.

The apiserver proxies ``kubectl logs`` to ``https://<node InternalIP>:10250/containerLogs/
<namespace>/<pod>/<container>``; the pod runner answers from the container's log file in the
state directory (``tailLines``, ``limitBytes`` and ``follow`` honoured). One listener per
simulated node, on the node's loopback InternalIP, with the apiserver's serving certificate
(the apiserver does not verify kubelets here: no ``--kubelet-certificate-authority``).
"""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

from aiohttp import web

__all__ = ["serve_kubelet_api", "tail"]


def tail(text: str, lines: int | None) -> str:
    """The last ``lines`` lines of ``text`` (all when None), keeping the final newline."""
    if lines is None:
        return text
    if lines <= 0:
        return ""
    kept = text.splitlines(keepends=True)[-lines:]
    return "".join(kept)


def _app(pods_dir: Path) -> web.Application:
    async def container_logs(request: web.Request) -> web.StreamResponse:
        ns, pod, container = (request.match_info[k] for k in ("namespace", "pod", "container"))
        path = pods_dir / f"{ns}_{pod}" / f"{container}.log"
        if not path.is_file():
            raise web.HTTPNotFound(text=f"no log for container {container!r} of pod {ns}/{pod}\n")
        query = request.query
        lines = int(query["tailLines"]) if "tailLines" in query else None
        text = tail(path.read_text(errors="replace"), lines)
        if "limitBytes" in query:
            text = text[: int(query["limitBytes"])]
        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        await response.prepare(request)
        await response.write(text.encode())
        if query.get("follow") in ("true", "1"):
            offset = path.stat().st_size
            while path.exists():
                size = path.stat().st_size
                if size > offset:
                    with path.open("rb") as fh:
                        fh.seek(offset)
                        await response.write(fh.read(size - offset))
                    offset = size
                await asyncio.sleep(0.5)
        return response

    app = web.Application()
    app.router.add_get("/containerLogs/{namespace}/{pod}/{container}", container_logs)
    return app


async def serve_kubelet_api(
    *, pods_dir: Path, addresses: list[str], cert: Path, key: Path, port: int = 10250
) -> web.AppRunner:
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(str(cert), str(key))
    runner = web.AppRunner(_app(pods_dir), access_log=None)
    await runner.setup()
    for address in addresses:
        await web.TCPSite(runner, address, port, ssl_context=tls).start()
    return runner
