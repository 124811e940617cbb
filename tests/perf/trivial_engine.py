"""A trivial OpenAI-shaped engine for router overhead benchmarks (workload R1): raw asyncio,
HTTP/1.1 keep-alive, answers at once with precomputed bytes so that the backend costs as
little CPU as possible. Non-streaming: one chat.completion JSON. Streaming (``"stream": true``
in the body): 32 SSE chunks, each its own write, then ``data: [DONE]``. Also /health,
/v1/models and an empty /metrics. Run: ``python tests/perf/trivial_engine.py --port N``."""

from __future__ import annotations

import argparse
import asyncio
import json

CHUNKS = 32

_COMPLETION = json.dumps({
    "id": "chatcmpl-bench", "object": "chat.completion", "created": 0, "model": "nano-4b",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok " * 64},
                 "finish_reason": "length"}],
    "usage": {"prompt_tokens": 50, "completion_tokens": 64, "total_tokens": 114},
}).encode()  # fmt: skip
_MODELS = json.dumps({"object": "list", "data": [{"id": "nano-4b", "object": "model"}]}).encode()


def _event(i: int) -> bytes:
    chunk = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 0,
             "model": "nano-4b", "choices": [{"index": 0, "delta": {"content": f"t{i} "},
                                              "finish_reason": None}]}  # fmt: skip
    data = b"data: " + json.dumps(chunk).encode() + b"\n\n"
    return b"%x\r\n%s\r\n" % (len(data), data)


_EVENTS = [_event(i) for i in range(CHUNKS)]
_DONE = b"data: [DONE]\n\n"
_TAIL = b"%x\r\n%s\r\n0\r\n\r\n" % (len(_DONE), _DONE)


def _plain(status: bytes, body: bytes, ctype: bytes = b"application/json") -> bytes:
    return (b"HTTP/1.1 " + status + b"\r\nContent-Type: " + ctype + b"\r\nContent-Length: "
            + str(len(body)).encode() + b"\r\n\r\n" + body)  # fmt: skip


_STREAM_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
)


class Engine(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end].decode("latin-1")
            length = 0
            for line in head.split("\r\n")[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            if len(self.buffer) < end + 4 + length:
                return
            body = self.buffer[end + 4 : end + 4 + length]
            self.buffer = self.buffer[end + 4 + length :]
            self.answer(head.split(" ", 2)[1], body)

    def answer(self, path: str, body: bytes) -> None:
        if path.startswith("/v1/chat/completions") or path.startswith("/v1/completions"):
            if b'"stream":true' in body.replace(b" ", b""):
                asyncio.get_running_loop().create_task(self.stream())
            else:
                self.transport.write(_plain(b"200 OK", _COMPLETION))
        elif path.startswith("/v1/models"):
            self.transport.write(_plain(b"200 OK", _MODELS))
        elif path.startswith("/metrics"):
            self.transport.write(_plain(b"200 OK", b"", b"text/plain"))
        else:
            self.transport.write(_plain(b"200 OK", b"{}"))

    async def stream(self) -> None:
        self.transport.write(_STREAM_HEAD)
        for event in _EVENTS:
            self.transport.write(event)
            await asyncio.sleep(0)  # one write per chunk, as an engine's steps would be
        self.transport.write(_TAIL)


async def main(port: int) -> None:
    server = await asyncio.get_running_loop().create_server(Engine, "127.0.0.1", port, backlog=4096)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    asyncio.run(main(parser.parse_args().port))
