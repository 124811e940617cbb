"""The emulator process's life: start-up checks (missing mount, unknown flag), the start-up
delay, API keys, injected faults, timing on, and the SIGTERM drain."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import httpx
import openai
import pytest

from nemotron_operator.engine.assets import CHAT_TEMPLATE_FILE, TOOL_PARSER_FILE
from tests.support.waiting import wait_for
from tests.unit.emulator.engine_process import (
    SERVED,
    emulator_command,
    free_port,
    run_command,
    start_emulator,
    write_mount,
)

CHAT = {
    "model": SERVED,
    "messages": [
        {"role": "system", "content": "detailed thinking off"},
        {"role": "user", "content": "Hello"},
    ],
}


@pytest.fixture
def mount(tmp_path: Path) -> Path:
    return write_mount(tmp_path / "engine")


@pytest.mark.parametrize("missing", [CHAT_TEMPLATE_FILE, TOOL_PARSER_FILE])
def test_missing_mounted_file_fails_start_up(mount: Path, missing: str) -> None:
    (mount / missing).unlink()
    result = run_command(emulator_command(mount, free_port()))
    assert result.returncode == 1
    assert str(mount / missing) in result.stderr
    assert "cannot read the file" in result.stderr


def test_plugin_without_the_named_parser_fails_start_up(mount: Path) -> None:
    (mount / TOOL_PARSER_FILE).write_text("# an empty plugin\n", encoding="utf-8")
    result = run_command(emulator_command(mount, free_port()))
    assert result.returncode == 1
    assert "does not register a parser named 'llama_nemotron_json'" in result.stderr


def test_broken_template_fails_start_up(mount: Path) -> None:
    (mount / CHAT_TEMPLATE_FILE).write_text("{% if %}", encoding="utf-8")
    result = run_command(emulator_command(mount, free_port()))
    assert result.returncode == 1
    assert "not a valid Jinja template" in result.stderr


def test_unknown_flag_exits_2_like_vllm(mount: Path) -> None:
    result = run_command(emulator_command(mount, free_port(), "--no-such-flag"))
    assert result.returncode == 2
    assert "unrecognized arguments: --no-such-flag" in result.stderr


def test_kv_cache_smaller_than_max_model_len_fails_like_vllm(mount: Path) -> None:
    result = run_command(
        emulator_command(mount, free_port()), env={"NEMOTRON_EMULATOR_GPU_MEMORY_GIB": "24"}
    )
    assert result.returncode == 1
    assert "larger than the maximum number of tokens that can be stored in KV cache" in (
        result.stderr
    )


def test_health_is_503_until_the_model_has_loaded(mount: Path) -> None:
    with start_emulator(
        mount, env={"NEMOTRON_EMULATOR_STARTUP_SECONDS": "1.5"}, wait_healthy=False
    ) as engine:
        first = wait_for(lambda: httpx.get(f"{engine.base_url}/health", timeout=2).status_code, 30)
        assert first == 503
        loading = httpx.post(f"{engine.base_url}/v1/chat/completions", json=CHAT, timeout=5)
        assert loading.status_code == 503
        wait_for(
            lambda: httpx.get(f"{engine.base_url}/health", timeout=2).status_code == 200,
            30,
            what="health 200 after the start-up delay",
        )


def test_api_key_is_required_on_v1(mount: Path) -> None:
    with start_emulator(mount, "--api-key", "sekrit") as engine:
        refused = httpx.post(f"{engine.base_url}/v1/chat/completions", json=CHAT, timeout=5)
        assert refused.status_code == 401
        assert httpx.get(f"{engine.base_url}/health", timeout=5).status_code == 200
        with openai.OpenAI(base_url=f"{engine.base_url}/v1", api_key="sekrit") as client:
            reply = client.chat.completions.create(**CHAT)  # type: ignore[call-overload]
        assert reply.choices[0].message.content


def test_fail_fault_fails_the_first_requests(mount: Path) -> None:
    with (
        start_emulator(mount, env={"NEMOTRON_EMULATOR_FAULTS": "fail:2"}) as engine,
        openai.OpenAI(base_url=f"{engine.base_url}/v1", api_key="x", max_retries=0) as client,
    ):
        for _ in range(2):
            with pytest.raises(openai.InternalServerError):
                client.chat.completions.create(**CHAT)  # type: ignore[call-overload]
        assert client.chat.completions.create(**CHAT).choices[0].message.content  # type: ignore[call-overload]


def test_stall_fault_never_answers(mount: Path) -> None:
    with start_emulator(mount, env={"NEMOTRON_EMULATOR_FAULTS": "stall"}) as engine:
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(f"{engine.base_url}/v1/chat/completions", json=CHAT, timeout=1.0)
        assert httpx.get(f"{engine.base_url}/health", timeout=5).status_code == 200


def test_die_mid_stream_fault_kills_the_process(mount: Path) -> None:
    with start_emulator(mount, env={"NEMOTRON_EMULATOR_FAULTS": "die-mid-stream:3"}) as engine:
        body = {**CHAT, "stream": True, "max_tokens": 50, "ignore_eos": True}
        lines: list[str] = []
        with (
            pytest.raises(httpx.RemoteProtocolError),
            httpx.stream(
                "POST", f"{engine.base_url}/v1/chat/completions", json=body, timeout=10
            ) as response,
        ):
            lines.extend(line for line in response.iter_lines() if line)
        assert len(lines) == 3
        assert "[DONE]" not in lines[-1]
        assert engine.process.wait(timeout=10) == 1
        assert "injected fault" in engine.output()


def test_timing_on_paces_tokens_and_shows_load_in_metrics(mount: Path) -> None:
    # speed 1: 200 tokens take at least 200 decode steps of >= 5 ms
    with start_emulator(mount, env={"NEMOTRON_EMULATOR_SPEED": "1"}) as engine:
        body = {**CHAT, "max_tokens": 200, "ignore_eos": True}
        results: list[float] = []

        def call() -> None:
            started = time.monotonic()
            httpx.post(f"{engine.base_url}/v1/chat/completions", json=body, timeout=30)
            results.append(time.monotonic() - started)

        threads = [threading.Thread(target=call) for _ in range(4)]
        for t in threads:
            t.start()

        def running() -> float:
            metrics = httpx.get(f"{engine.base_url}/metrics", timeout=5).text
            line = next(
                x for x in metrics.splitlines() if x.startswith("vllm:num_requests_running{")
            )
            return float(line.split()[-1])

        assert wait_for(running, 10, interval=0.02, what="requests running") >= 1
        for t in threads:
            t.join(30)
        assert len(results) == 4
        assert min(results) >= 200 * 0.005


def test_sigterm_drains_in_flight_streams_and_refuses_new_requests(mount: Path) -> None:
    # speed 1, 600 tokens: the stream lasts about 3 s, well beyond the SIGTERM
    with start_emulator(mount, env={"NEMOTRON_EMULATOR_SPEED": "1"}, shutdown_timeout=30) as engine:
        body = {**CHAT, "stream": True, "max_tokens": 600, "ignore_eos": True}
        received: list[str] = []
        with httpx.stream(
            "POST", f"{engine.base_url}/v1/chat/completions", json=body, timeout=30
        ) as response:
            lines = response.iter_lines()
            received.extend(next(lines) for _ in range(3))
            engine.terminate()
            refused = wait_for(
                lambda: (
                    httpx.post(
                        f"{engine.base_url}/v1/chat/completions", json=CHAT, timeout=5
                    ).status_code
                ),
                10,
            )
            health = httpx.get(f"{engine.base_url}/health", timeout=5).status_code
            received.extend(line for line in lines if line)
        assert refused == 503
        assert health == 503
        assert received[-1] == "data: [DONE]"
        finish = json.loads(received[-2].removeprefix("data: "))
        assert finish["choices"][0]["finish_reason"] == "length"
        assert engine.process.wait(timeout=30) == 0


def test_sigterm_cuts_off_what_outlives_the_shutdown_timeout(mount: Path) -> None:
    with start_emulator(mount, env={"NEMOTRON_EMULATOR_SPEED": "1"}, shutdown_timeout=1) as engine:
        body = {**CHAT, "stream": True, "max_tokens": 5000, "ignore_eos": True}
        with httpx.stream(
            "POST", f"{engine.base_url}/v1/chat/completions", json=body, timeout=30
        ) as response:
            lines = response.iter_lines()
            next(lines)
            started = time.monotonic()
            engine.terminate()
            with pytest.raises(httpx.RemoteProtocolError):
                for _ in lines:
                    pass
        assert engine.process.wait(timeout=30) == 0
        assert time.monotonic() - started < 10
        assert "aborted" in engine.output()


def test_a_client_leaving_mid_stream_frees_its_batch_slot(mount: Path) -> None:
    with start_emulator(mount, env={"NEMOTRON_EMULATOR_SPEED": "1"}) as engine:
        body = {**CHAT, "stream": True, "max_tokens": 5000, "ignore_eos": True}

        def running() -> float:
            metrics = httpx.get(f"{engine.base_url}/metrics", timeout=5).text
            line = next(
                x for x in metrics.splitlines() if x.startswith("vllm:num_requests_running{")
            )
            return float(line.split()[-1])

        with httpx.stream(
            "POST", f"{engine.base_url}/v1/chat/completions", json=body, timeout=30
        ) as response:
            lines = response.iter_lines()
            next(lines)
            next(lines)
            assert running() == 1
        wait_for(lambda: running() == 0, 10, what="the slot freed after the client left")
        assert httpx.get(f"{engine.base_url}/health", timeout=5).status_code == 200


def test_a_full_batch_shows_waiting_requests_in_metrics(mount: Path) -> None:
    with start_emulator(
        mount, "--max-num-seqs", "2", env={"NEMOTRON_EMULATOR_SPEED": "1"}
    ) as engine:
        body = {**CHAT, "max_tokens": 300, "ignore_eos": True}
        codes: list[int] = []

        def call() -> None:
            response = httpx.post(f"{engine.base_url}/v1/chat/completions", json=body, timeout=60)
            codes.append(response.status_code)

        threads = [threading.Thread(target=call) for _ in range(5)]
        for t in threads:
            t.start()

        def load() -> tuple[float, float] | None:
            metrics = httpx.get(f"{engine.base_url}/metrics", timeout=5).text
            values = {
                line.split("{")[0]: float(line.split()[-1])
                for line in metrics.splitlines()
                if line.startswith(("vllm:num_requests_running{", "vllm:num_requests_waiting{"))
            }
            seen = (values["vllm:num_requests_running"], values["vllm:num_requests_waiting"])
            return seen if seen[1] > 0 else None

        running, waiting = wait_for(load, 10, interval=0.02, what="requests waiting")
        assert running == 2
        assert waiting >= 1
        for t in threads:
            t.join(60)
        assert codes == [200] * 5
