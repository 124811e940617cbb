"""Parsing vLLM's /metrics text (router.enginemetrics)."""

from __future__ import annotations

from nemotron_operator.router.enginemetrics import EngineLoad, parse_engine_metrics

TEXT = """\
# HELP vllm:num_requests_waiting Number of requests waiting to be processed.
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{engine="0",model_name="nano-4b"} 3.0
vllm:num_requests_waiting{engine="1",model_name="nano-4b"} 2.0
vllm:num_requests_running{engine="0",model_name="nano-4b"} 7.0
vllm:kv_cache_usage_perc{engine="0",model_name="nano-4b"} 0.42
vllm:kv_cache_usage_perc{engine="1",model_name="x{y}"} 0.5
garbage line
vllm:num_requests_waiting{model_name="nano-4b"} NaN
"""


def test_sums_waiting_and_takes_max_kv() -> None:
    assert parse_engine_metrics(TEXT) == EngineLoad(waiting=5.0, kv_usage=0.5)


def test_old_gauge_name_and_clamping() -> None:
    text = "vllm:gpu_cache_usage_perc 1.7\nvllm:num_requests_waiting -1\n"
    assert parse_engine_metrics(text) == EngineLoad(waiting=0.0, kv_usage=1.0)


def test_empty_text() -> None:
    assert parse_engine_metrics("") == EngineLoad()
