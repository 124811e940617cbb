"""The router's configuration file: written by the controller into the ``<name>-router``
ConfigMap, read (and re-read on change) by the router process.

It is the contract between ``controller`` (which renders it from a NemotronDeployment) and
``router`` (which serves with it), so it lives in the lowest layer and imports nothing else
from the project. Field names are snake_case: this is a file format, not a Kubernetes API.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["PoolName", "PoolRoute", "RouterConfig", "StaticEndpoint"]

PoolName = Literal["on", "off"]


class StaticEndpoint(BaseModel):
    """An engine endpoint given directly (tests, benchmarks, or a router run outside a cluster)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = Field(description="Base URL of the engine, e.g. http://127.0.0.1:8000")


class PoolRoute(BaseModel):
    """How the router serves one pool: where its engines are and what policy it applies."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: PoolName
    enabled: bool = True
    # Endpoint discovery: pods in ``namespace`` matching ``label_selector`` that are Ready, not
    # terminating and have an IP. Ignored when ``static_endpoints`` is non-empty.
    namespace: str = "default"
    label_selector: str = ""
    port: int = Field(default=8000, ge=1, le=65535)
    static_endpoints: tuple[StaticEndpoint, ...] = ()
    # Policy (model card defaults; the CR may override).
    temperature: float = Field(ge=0.0, le=2.0)
    top_p: float = Field(gt=0.0, le=1.0)
    max_tokens: int = Field(ge=1, description="Budget: default when absent, clamp when larger.")
    # The engines' context length (--max-model-len; None: unknown). A request is lent to the
    # other pool only if that pool's engines take at least its own pool's length.
    max_model_len: int | None = Field(default=None, ge=1)
    allow_zero_temperature: bool = False
    # Admission.
    max_queue: int = Field(default=256, ge=0)
    # Requests one router sends to one engine at a time before queueing its own (0 = no cap).
    max_inflight_per_endpoint: int = Field(default=0, ge=0)
    queue_timeout_seconds: float = Field(default=60.0, gt=0)


class RouterConfig(BaseModel):
    """The whole router config file (``config.yaml``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    generation: int = Field(default=0, ge=0, description="Bumped by the controller on change.")
    served_model_name: str
    default_mode: PoolName = "off"
    pools: tuple[PoolRoute, ...]
    request_timeout_seconds: float = Field(default=600.0, gt=0)
    max_body_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)
    # Directory of a mounted Secret: each file is one accepted API key. None = no auth.
    api_keys_dir: str | None = None
    max_retries: int = Field(default=2, ge=0)
    # Lend idle capacity: a request whose pool is saturated may run on a nearly idle engine of
    # the other pool (router/balancer.py says when). The CRD's default too.
    lend_idle_capacity: bool = True
