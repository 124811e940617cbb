"""End to end over real sockets: the official ``openai`` client -> the router process ->
engine emulator processes. The emulator reports the sampling parameters it received
(``X-Emulator-Sampling``) and the mode it saw (``X-Emulator-Mode``), which proves the policy."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from nemotron_operator.router.enginemetrics import parse_engine_metrics
from tests.support.waiting import wait_for
from tests.unit.router.processes import (
    SERVED,
    free_port,
    router_config,
    start_emulator,
    start_router,
    stop,
)

FAST = {"NEMOTRON_EMULATOR_SPEED": "0"}


class Stack:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.processes: list[subprocess.Popen[bytes]] = []

    def emulator(self, env: dict[str, str] | None = None) -> str:
        port = free_port()
        self.processes.append(
            start_emulator(port, self.workdir / f"emulator-{port}.log", env={**FAST, **(env or {})})
        )
        return f"http://127.0.0.1:{port}"

    def router(self, config: dict[str, Any], extra: tuple[str, ...] = ()) -> tuple[str, Any]:
        port = free_port()
        process = start_router(config, port, self.workdir, extra=extra)
        self.processes.append(process)
        return f"http://127.0.0.1:{port}", process

    def close(self) -> None:
        for process in reversed(self.processes):
            stop(process)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = Stack(tmp_path_factory.mktemp("router-e2e"))
    try:
        yield s
    finally:
        s.close()


@pytest.fixture(scope="module")
def engines(stack: Stack) -> dict[str, str]:
    return {"on": stack.emulator(), "off": stack.emulator()}


@pytest.fixture(scope="module")
def base(stack: Stack, engines: dict[str, str]) -> str:
    url, _ = stack.router(router_config(on=[engines["on"]], off=[engines["off"]], generation=7))
    return url


@pytest.fixture
def client(base: str) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=base + "/v1", api_key="unused", max_retries=0) as c:
        yield c


def sampling(raw: Any) -> dict[str, Any]:
    return dict(json.loads(raw.headers["X-Emulator-Sampling"]))


def test_chat_default_mode_gets_the_off_policy(client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model=SERVED, messages=[{"role": "user", "content": "Hello there"}]
    )
    assert raw.headers["X-Emulator-Mode"] == "off"
    got = sampling(raw)
    assert (got["temperature"], got["top_p"], got["max_tokens"]) == (0.0, 1.0, 8192)
    completion = raw.parse()
    assert completion.choices[0].message.content
    assert completion.usage is not None


def test_chat_reasoning_on_by_extra_body_streams_reasoning(client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model=SERVED,
        messages=[
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "Why is the sky blue?"},
        ],
        temperature=0,
        max_tokens=100000,
        stream=True,
        stream_options={"include_usage": True},
        extra_body={"reasoning": "on"},
    )
    assert raw.headers["X-Emulator-Mode"] == "on"
    got = sampling(raw)
    assert (got["temperature"], got["top_p"], got["max_tokens"]) == (0.6, 0.95, 32768)
    chunks = list(raw.parse())
    reasoning = "".join(
        (c.choices[0].delta.model_extra or {}).get("reasoning") or "" for c in chunks if c.choices
    )
    assert reasoning.strip()  # the reasoning parser's field passes through unchanged
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens > 0
    assert len(chunks) > 3


def test_system_prompt_toggle_and_header(client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model=SERVED,
        messages=[
            {"role": "system", "content": "detailed thinking on"},
            {"role": "user", "content": "2+2?"},
        ],
        max_tokens=50,
    )
    assert raw.headers["X-Emulator-Mode"] == "on"
    message = raw.parse().choices[0].message
    assert (message.model_extra or {}).get("reasoning") is not None
    raw = client.chat.completions.with_raw_response.create(
        model=SERVED,
        messages=[
            {"role": "system", "content": "detailed thinking on"},
            {"role": "user", "content": "2+2?"},
        ],
        extra_headers={"X-Reasoning-Mode": "off"},
    )
    assert raw.headers["X-Emulator-Mode"] == "off"
    assert sampling(raw)["temperature"] == 0.0


def test_completions_stream_and_not(client: openai.OpenAI) -> None:
    raw = client.completions.with_raw_response.create(
        model=SERVED, prompt="Once upon", max_tokens=8
    )
    assert sampling(raw)["max_tokens"] == 8
    assert raw.parse().choices[0].text
    stream = client.completions.create(
        model=SERVED,
        prompt="Once upon",
        max_tokens=8,
        stream=True,
        stream_options={"include_usage": True},
    )
    pieces = list(stream)
    assert "".join(p.choices[0].text for p in pieces if p.choices)
    assert pieces[-1].usage is not None


def test_tool_calls(client: openai.OpenAI) -> None:
    tools: Any = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "weather for a city",
                "parameters": {
                    "type": "object",
                    "properties": {"city": {"type": "string"}},
                    "required": ["city"],
                },
            },
        }
    ]
    completion = client.chat.completions.create(
        model=SERVED,
        messages=[{"role": "user", "content": "Call get_weather for Paris"}],
        tools=tools,
    )
    calls = completion.choices[0].message.tool_calls
    assert calls
    assert calls[0].function.name == "get_weather"  # type: ignore[union-attr]
    assert "city" in json.loads(calls[0].function.arguments)  # type: ignore[union-attr]
    stream = client.chat.completions.create(
        model=SERVED,
        messages=[{"role": "user", "content": "Call get_weather for Paris"}],
        tools=tools,
        stream=True,
    )
    names = [
        call.function.name
        for chunk in stream
        if chunk.choices
        for call in chunk.choices[0].delta.tool_calls or []
        if call.function
    ]
    assert "get_weather" in names


def test_models_health_ready_metrics(client: openai.OpenAI, base: str) -> None:
    assert [m.id for m in client.models.list()] == [SERVED]
    assert httpx.get(base + "/health").status_code == 200
    assert httpx.get(base + "/ready").status_code == 200
    text = httpx.get(base + "/metrics").text
    assert "nemotron_router_config_generation 7.0" in text
    assert 'nemotron_router_endpoints{pool="on"} 1.0' in text
    assert 'nemotron_router_requests_total{code="200",pool="off"}' in text
    assert 'nemotron_router_request_duration_seconds_bucket{le="0.005",pool="off"}' in text
    assert 'nemotron_router_time_to_first_token_seconds_count{pool="on"}' in text


def test_client_errors(client: openai.OpenAI, base: str) -> None:
    with pytest.raises(openai.NotFoundError) as not_found:
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    assert not_found.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError) as bad:
        client.chat.completions.create(model=SERVED, messages=[])
    assert bad.value.code == "missing_field"
    r = httpx.post(
        base + "/v1/completions", content=b"{oops", headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 400
    assert r.json()["error"]["type"] == "invalid_request_error"
    r = httpx.post(base + "/v1/chat/completions", content=b"x" * (5 * 1024 * 1024))
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "request_too_large"


def test_api_keys(stack: Stack, engines: dict[str, str], tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.mkdir()
    (keys / "team-a").write_text("sk-a")
    url, _ = stack.router(router_config(on=[], off=[engines["off"]], api_keys_dir=str(keys)))
    with (
        openai.OpenAI(base_url=url + "/v1", api_key="sk-wrong", max_retries=0) as wrong,
        pytest.raises(openai.AuthenticationError),
    ):
        wrong.chat.completions.create(model=SERVED, messages=[{"role": "user", "content": "x"}])
    with openai.OpenAI(base_url=url + "/v1", api_key="sk-a", max_retries=0) as right:
        assert right.chat.completions.create(
            model=SERVED, messages=[{"role": "user", "content": "x"}]
        ).choices
        # Reasoning on is not served by this deployment (only the off pool is enabled).
        with pytest.raises(openai.BadRequestError) as info:
            right.chat.completions.create(
                model=SERVED,
                messages=[{"role": "user", "content": "x"}],
                extra_body={"reasoning": "on"},
            )
        assert info.value.code == "mode_not_served"


def test_failing_engine_is_retried_on_another(stack: Stack, engines: dict[str, str]) -> None:
    failing = stack.emulator({"NEMOTRON_EMULATOR_FAULTS": "fail:1000"})
    url, _ = stack.router(router_config(on=[], off=[failing, engines["off"]]))
    with openai.OpenAI(base_url=url + "/v1", api_key="x", max_retries=0) as c:
        for _ in range(12):
            assert c.chat.completions.create(
                model=SERVED, messages=[{"role": "user", "content": "x"}], max_tokens=4
            ).choices
    text = httpx.get(url + "/metrics").text
    assert 'nemotron_router_retries_total{pool="off"}' in text
    assert 'nemotron_router_requests_total{code="200",pool="off"} 12.0' in text


def test_stalled_engine_gives_504_and_full_queue_429(stack: Stack) -> None:
    stalled = stack.emulator({"NEMOTRON_EMULATOR_FAULTS": "stall"})
    url, _ = stack.router(
        router_config(
            on=[],
            off=[stalled],
            request_timeout_seconds=1.0,
            pool={"max_inflight_per_endpoint": 1, "max_queue": 0},
        )
    )
    with openai.OpenAI(base_url=url + "/v1", api_key="x", max_retries=0) as c:
        holder_error: list[BaseException] = []

        def hold() -> None:
            try:
                c.chat.completions.create(model=SERVED, messages=[{"role": "user", "content": "x"}])
            except openai.APIStatusError as exc:
                holder_error.append(exc)

        thread = threading.Thread(target=hold)
        thread.start()
        wait_for(
            lambda: 'inflight_requests{pool="off"} 1.0' in httpx.get(url + "/metrics").text,
            10,
            what="one in flight",
        )
        with pytest.raises(openai.RateLimitError) as limited:
            c.chat.completions.create(model=SERVED, messages=[{"role": "user", "content": "x"}])
        assert int(limited.value.response.headers["Retry-After"]) >= 1
        thread.join(10)
        assert isinstance(holder_error[0], openai.APIStatusError)
        assert holder_error[0].status_code == 504
        assert holder_error[0].code == "upstream_timeout"


def _engine_running(url: str) -> float:
    text = urllib.request.urlopen(url + "/metrics", timeout=2).read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("vllm:num_requests_running")
    )


def test_client_disconnect_stops_the_engine(stack: Stack) -> None:
    slow = stack.emulator({"NEMOTRON_EMULATOR_SPEED": "1"})
    url, _ = stack.router(router_config(on=[], off=[slow]))
    with (
        httpx.Client(timeout=30) as http,
        http.stream(
            "POST",
            url + "/v1/chat/completions",
            json={
                "model": SERVED,
                "messages": [{"role": "user", "content": "x"}],
                "max_tokens": 5000,
                "ignore_eos": True,
                "stream": True,
            },
        ) as response,
    ):
        first = next(response.iter_bytes())
        assert first.startswith(b"data: ")
        # The engine's gauge follows its scheduler's steps, so poll rather than read once.
        wait_for(lambda: _engine_running(slow) == 1, 10, what="engine generating")
    wait_for(lambda: _engine_running(slow) == 0, 10, what="engine request aborted")
    wait_for(
        lambda: 'inflight_requests{pool="off"} 0.0' in httpx.get(url + "/metrics").text,
        10,
        what="router slot released",
    )


def test_sigterm_drains_streams_then_exits(stack: Stack) -> None:
    slow = stack.emulator({"NEMOTRON_EMULATOR_SPEED": "1"})
    url, process = stack.router(router_config(on=[], off=[slow]), extra=("--drain-seconds", "20"))
    with (
        httpx.Client(timeout=30) as http,
        http.stream(
            "POST",
            url + "/v1/chat/completions",
            json={
                "model": SERVED,
                "messages": [{"role": "user", "content": "x"}],
                "max_tokens": 60,
                "ignore_eos": True,
                "stream": True,
            },
        ) as response,
    ):
        chunks = response.iter_bytes()
        next(chunks)
        process.send_signal(signal.SIGTERM)
        wait_for(lambda: not _listening(url), 5, what="listener closed")
        assert process.poll() is None  # still finishing the stream
        rest = b"".join(chunks)
    assert rest.rstrip().endswith(b"data: [DONE]")
    assert process.wait(20) == 0


def _listening(url: str) -> bool:
    try:
        httpx.get(url + "/health", timeout=1)
    except httpx.ConnectError:
        return False
    return True


def test_engine_metrics_are_scraped(stack: Stack, engines: dict[str, str], base: str) -> None:
    # The balancer's inputs come from the engines' own metrics pages; the router must be able
    # to read them (a parse of the real emulator page, not a fixture).
    text = urllib.request.urlopen(engines["off"] + "/metrics", timeout=2).read().decode()
    assert "vllm:num_requests_waiting" in text
    assert "vllm:kv_cache_usage_perc" in text
    load = parse_engine_metrics(text)
    assert load.waiting >= 0
    assert 0 <= load.kv_usage <= 1
