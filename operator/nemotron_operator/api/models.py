"""The NemotronDeployment API (group ``serving.nemotron.dev``, version ``v1alpha1``) as pydantic
models: the single source of truth for the CRD (``api.crd`` converts their JSON schema), the
reference doc (``api.docs``) and the controller, which reads every CR through
``NemotronDeployment.model_validate``.

Field names are camelCase on the wire (aliases) and snake_case in Python. Cross-field rules
are written twice on purpose: as CEL (``x-kubernetes-validations``, checked by the apiserver at
apply time) and as pydantic validators (checked by the controller, whose input may predate a
rule). ``presets`` holds the per-model facts; ``managed_flags`` the flags ``engineArgs`` refuses.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel
from pydantic.config import JsonDict

from nemotron_operator.api.managed_flags import (
    managed_flag_message,
    managed_flag_regex,
    managed_flags_in,
)
from nemotron_operator.api.presets import PRESETS, PresetName

__all__ = [
    "API_VERSION",
    "DEFAULT_VLLM_IMAGE",
    "GROUP",
    "KIND",
    "PLURAL",
    "VERSION",
    "AutoscalingSpec",
    "Condition",
    "ModelCacheSpec",
    "ModelSpec",
    "NemotronDeployment",
    "NemotronDeploymentSpec",
    "NemotronDeploymentStatus",
    "OffPoolSpec",
    "OffSampling",
    "OnPoolSpec",
    "OnSampling",
    "PoolAutoscalingStatus",
    "PoolSpec",
    "PoolStatus",
    "PoolsSpec",
    "PoolsStatus",
    "ReplicasSpec",
    "RouterSpec",
    "SamplingSpec",
    "SecretKeyRef",
    "SecretRef",
    "ToolCallingSpec",
]

GROUP = "serving.nemotron.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "NemotronDeployment"
PLURAL = "nemotrondeployments"
DEFAULT_VLLM_IMAGE = "vllm/vllm-openai:v0.33.0"

# JSON-schema markers that ``api.crd`` turns into Kubernetes extensions.
_PRESERVE: dict[str, Any] = {"x-kubernetes-preserve-unknown-fields": True}
_QUANTITY_PATTERN = r"^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$"
_HF_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$"

# A resource quantity, always written as a string ("50Gi") so pydantic and the CRD agree.
Quantity = Annotated[str, Field(pattern=_QUANTITY_PATTERN, max_length=64)]
# Kubernetes objects we pass through unchanged (the apiserver validates them on the Pods).
Passthrough = Annotated[dict[str, Any], Field(json_schema_extra=_PRESERVE)]


def _cel(rule: str, message: str, field_path: str | None = None) -> JsonDict:
    item: JsonDict = {"rule": rule, "message": message}
    if field_path is not None:
        item["fieldPath"] = field_path
    return item


def _enabled(parent: str, pool: str, guard: str | None = None) -> str:
    """CEL: whether ``parent.pool`` is enabled, reading an absent field as its default (true).

    The apiserver also checks rules against the schema's ``default: {}`` values before nested
    defaults fill them, so every rule must read absent fields as their defaults.
    """
    field = f"{parent}.{pool}"
    checks = [f"has({field})", f"has({field}.enabled)"]
    if guard is not None:
        checks.insert(0, f"has({parent})")
    return f"({' && '.join(checks)} ? {field}.enabled : true)"


class _Model(BaseModel):
    """Base of every API model: camelCase aliases, unknown fields refused, immutable."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
    )


class SecretRef(_Model):
    """A Secret in the CR's namespace."""

    name: str = Field(min_length=1, max_length=253, description="Name of the Secret.")


class SecretKeyRef(_Model):
    """One key of a Secret in the CR's namespace."""

    name: str = Field(min_length=1, max_length=253, description="Name of the Secret.")
    key: str = Field(
        default="token", min_length=1, max_length=253, description="Key within the Secret."
    )


class ModelSpec(_Model):
    """Which model to serve: a preset, or any Hugging Face id (optionally pinned to a revision)."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                _cel(
                    "has(self.preset) != has(self.huggingFaceId)",
                    "set exactly one of model.preset or model.huggingFaceId",
                )
            ]
        }
    )

    preset: PresetName | None = Field(
        default=None,
        description=(
            "A model the operator knows (Hugging Face id, GPUs, context length from the model "
            "card): nano-4b-v1.1 (nvidia/Llama-3.1-Nemotron-Nano-4B-v1.1) or nano-8b-v1 "
            "(nvidia/Llama-3.1-Nemotron-Nano-8B-v1)."
        ),
    )
    hugging_face_id: str | None = Field(
        default=None,
        pattern=_HF_ID_PATTERN,
        max_length=200,
        description=(
            "A Hugging Face model id (org/name) to serve instead of a preset; it must use the "
            "Llama-Nemotron chat format."
        ),
    )
    revision: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9._/-]+$",
        max_length=100,
        description="Hugging Face revision (branch, tag or commit) to pin; default: main.",
    )

    @model_validator(mode="after")
    def _one_source(self) -> ModelSpec:
        if (self.preset is None) == (self.hugging_face_id is None):
            raise ValueError("set exactly one of model.preset or model.huggingFaceId")
        return self

    @property
    def hf_id(self) -> str:
        """The Hugging Face id that vLLM loads."""
        if self.preset is not None:
            return PRESETS[self.preset].hugging_face_id
        assert self.hugging_face_id is not None  # guaranteed by _one_source
        return self.hugging_face_id


class ModelCacheSpec(_Model):
    """Where engine pods keep the downloaded model. Absent: each pod downloads into its own
    emptyDir. With ``existingClaim`` that PVC is used; otherwise the operator creates
    ``<name>-model-cache``."""

    existing_claim: str | None = Field(
        default=None,
        min_length=1,
        max_length=253,
        description="Use this existing PersistentVolumeClaim instead of creating one.",
    )
    size: Quantity = Field(default="50Gi", description="Size of the PVC the operator creates.")
    storage_class_name: str | None = Field(
        default=None,
        max_length=253,
        description="StorageClass of the created PVC; default: the cluster's default class.",
    )
    access_mode: Literal["ReadWriteMany", "ReadWriteOnce", "ReadOnlyMany"] = Field(
        default="ReadWriteMany",
        description=(
            "Access mode of the created PVC. ReadWriteMany lets pods on several nodes share one "
            "download; ReadWriteOnce pins every engine pod to the node that mounts it."
        ),
    )


class ToolCallingSpec(_Model):
    """OpenAI tool calling through the model's <TOOLCALL> format."""

    enabled: bool = Field(
        default=True,
        description=(
            "Render --enable-auto-tool-choice with the operator's tool-call parser plugin and "
            "chat template (from the engine ConfigMap)."
        ),
    )


class ReplicasSpec(_Model):
    """Bounds for a pool's replica count; the autoscaler (or kubectl scale) moves within them."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                _cel(
                    "!has(self.min) || !has(self.max) || self.min <= self.max",
                    "replicas.min must be <= replicas.max",
                )
            ]
        }
    )

    min: int = Field(
        default=1, ge=0, le=1000, description="Fewest replicas; 0 allows scale to zero."
    )
    max: int = Field(default=1, ge=0, le=1000, description="Most replicas.")

    @model_validator(mode="after")
    def _ordered(self) -> ReplicasSpec:
        if self.min > self.max:
            raise ValueError("replicas.min must be <= replicas.max")
        return self


class SamplingSpec(_Model):
    """Sampling defaults the router applies to requests of this pool that set none."""

    temperature: float = Field(ge=0.0, le=2.0, description="Default temperature.")
    top_p: float = Field(gt=0.0, le=1.0, description="Default top_p.")


class OnSampling(SamplingSpec):
    """Reasoning-on sampling: the model card recommends temperature 0.6, top_p 0.95 and warns
    against temperature 0 (endless repetition)."""

    temperature: float = Field(
        default=0.6,
        gt=0.0,
        le=2.0,
        description="Default temperature (card: 0.6; must be > 0 with reasoning on).",
    )
    top_p: float = Field(default=0.95, gt=0.0, le=1.0, description="Default top_p (card: 0.95).")


class OffSampling(SamplingSpec):
    """Reasoning-off sampling: the model card recommends greedy decoding."""

    temperature: float = Field(
        default=0.0, ge=0.0, le=2.0, description="Default temperature (card: 0, greedy)."
    )
    top_p: float = Field(default=1.0, gt=0.0, le=1.0, description="Default top_p (card: 1).")


class AutoscalingSpec(_Model):
    """Queue-depth autoscaling of one pool (the router's queue plus the engines' waiting
    requests), within ``replicas.min`` .. ``replicas.max``."""

    enabled: bool = Field(
        default=False, description="Scale this pool on queue depth; off: replicas stay as set."
    )
    engine: Literal["builtin", "keda"] = Field(
        default="builtin",
        description="builtin: the operator scales through /scale; keda: leave it to KEDA.",
    )
    target_queue_per_replica: int = Field(
        default=4, ge=1, le=10000, description="Queued requests one replica should carry."
    )
    scale_up_stabilization_seconds: int = Field(
        default=0, ge=0, le=3600, description="Look-back window before scaling up."
    )
    scale_down_stabilization_seconds: int = Field(
        default=300, ge=0, le=86400, description="Look-back window before scaling down."
    )
    scale_down_consecutive: int = Field(
        default=3, ge=1, le=100, description="Scale-down decisions needed in a row."
    )
    scale_to_zero_idle_seconds: int = Field(
        default=600,
        ge=0,
        le=86400,
        description="Idle time before scaling to zero (only when replicas.min is 0).",
    )
    interval_seconds: int = Field(default=5, ge=1, le=600, description="How often the policy runs.")


_ENGINE_ARGS_RULE = _cel(
    f"self.all(a, !a.matches('{managed_flag_regex()}'))",
    managed_flag_message(),
)


class PoolSpec(_Model):
    """One pool of vLLM replicas serving one reasoning mode."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                _cel(
                    "!has(self.maxModelLen) || !has(self.maxTokens)"
                    " || self.maxTokens <= self.maxModelLen",
                    "maxTokens must be <= maxModelLen",
                    ".maxTokens",
                ),
                _cel(
                    "!has(self.autoscaling) || !has(self.autoscaling.enabled)"
                    " || !self.autoscaling.enabled"
                    " || !has(self.replicas) || !has(self.replicas.max) || self.replicas.max >= 1",
                    "autoscaling needs replicas.max >= 1",
                    ".replicas.max",
                ),
            ]
        }
    )

    # Per-mode defaults; subclasses override them with the model card's values.
    mode: ClassVar[Literal["on", "off"]] = "on"

    enabled: bool = Field(default=True, description="Run this pool.")
    replicas: ReplicasSpec = Field(
        default_factory=ReplicasSpec,
        description="Replica bounds; the autoscaler or kubectl scale owns the count within them.",
    )
    sampling: SamplingSpec
    max_tokens: int = Field(
        ge=1, le=1048576, description="max_tokens budget: default when absent, clamp when larger."
    )
    max_model_len: int | None = Field(
        default=None,
        ge=256,
        le=1048576,
        description="vLLM --max-model-len; default: the preset's context length (131072).",
    )
    gpus_per_replica: int | None = Field(
        default=None,
        ge=1,
        le=8,
        description="GPUs per replica (= --tensor-parallel-size); default: the preset's (1).",
    )
    gpu_memory_utilization: float = Field(
        default=0.95,
        gt=0.0,
        le=1.0,
        description="vLLM --gpu-memory-utilization (card: 0.95).",
    )
    shutdown_timeout_seconds: int = Field(
        default=60,
        ge=0,
        le=3600,
        description="vLLM --shutdown-timeout: how long a stopping engine drains requests.",
    )
    startup_timeout_seconds: int = Field(
        default=1800,
        ge=60,
        le=86400,
        description="How long the startup probe waits for model download and load.",
    )
    resources: Passthrough = Field(
        default_factory=dict,
        description=(
            "Container resources (ResourceRequirements). nvidia.com/gpu is set from "
            "gpusPerReplica and overrides any value here."
        ),
    )
    engine_args: list[Annotated[str, Field(max_length=1024)]] = Field(
        default_factory=list,
        max_length=64,
        description="Extra vLLM flags appended to the rendered ones; managed flags are refused.",
        json_schema_extra={"x-kubernetes-validations": [_ENGINE_ARGS_RULE]},
    )
    env: list[Passthrough] = Field(
        default_factory=list, max_length=128, description="Extra environment variables (EnvVar)."
    )
    node_selector: dict[str, str] = Field(
        default_factory=dict, description="Node selector of the engine pods."
    )
    tolerations: list[Passthrough] = Field(
        default_factory=list, max_length=64, description="Tolerations of the engine pods."
    )
    affinity: Passthrough = Field(default_factory=dict, description="Affinity of the engine pods.")
    priority_class_name: str | None = Field(
        default=None, max_length=253, description="PriorityClass of the engine pods."
    )
    autoscaling: AutoscalingSpec = Field(
        default_factory=AutoscalingSpec, description="Queue-depth autoscaling of this pool."
    )

    @model_validator(mode="after")
    def _cross_fields(self) -> PoolSpec:
        if self.max_model_len is not None and self.max_tokens > self.max_model_len:
            raise ValueError("maxTokens must be <= maxModelLen")
        if managed_flags_in(self.engine_args):
            raise ValueError(managed_flag_message())
        return self


class OnPoolSpec(PoolSpec):
    """The reasoning-on pool ("detailed thinking on")."""

    mode: ClassVar[Literal["on", "off"]] = "on"
    sampling: OnSampling = Field(
        default_factory=OnSampling, description="Card defaults: temperature 0.6, top_p 0.95."
    )
    max_tokens: int = Field(
        default=32768,
        ge=1,
        le=1048576,
        description="max_tokens budget: default when absent, clamp when larger (card: 32768).",
    )


class OffPoolSpec(PoolSpec):
    """The reasoning-off pool ("detailed thinking off")."""

    mode: ClassVar[Literal["on", "off"]] = "off"
    sampling: OffSampling = Field(
        default_factory=OffSampling, description="Card defaults: greedy (temperature 0)."
    )
    max_tokens: int = Field(
        default=8192,
        ge=1,
        le=1048576,
        description="max_tokens budget: default when absent, clamp when larger (card: 8192).",
    )


class PoolsSpec(_Model):
    """The two pools; at least one must be enabled."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                _cel(
                    f"{_enabled('self', 'reasoningOn')} || {_enabled('self', 'reasoningOff')}",
                    "at least one pool must be enabled",
                )
            ]
        }
    )

    reasoning_on: OnPoolSpec = Field(
        default_factory=OnPoolSpec, description="Pool serving reasoning-on requests."
    )
    reasoning_off: OffPoolSpec = Field(
        default_factory=OffPoolSpec, description="Pool serving reasoning-off requests."
    )

    @model_validator(mode="after")
    def _one_enabled(self) -> PoolsSpec:
        if not (self.reasoning_on.enabled or self.reasoning_off.enabled):
            raise ValueError("at least one pool must be enabled")
        return self


class RouterSpec(_Model):
    """The OpenAI-compatible router in front of the pools (Service ``<name>``)."""

    replicas: int = Field(default=1, ge=1, le=100, description="Router replicas.")
    resources: Passthrough = Field(
        default_factory=dict, description="Router container resources (ResourceRequirements)."
    )
    default_mode: Literal["on", "off"] = Field(
        default="off",
        description="Reasoning mode of requests whose system prompt does not choose one.",
    )
    api_key_secret_ref: SecretRef | None = Field(
        default=None,
        description="Secret whose every key is one accepted API key; absent: no auth.",
    )
    max_queue_per_pool: int = Field(
        default=256, ge=0, le=100000, description="Requests queued per pool before 429."
    )
    request_timeout_seconds: int = Field(
        default=600, ge=1, le=86400, description="Upper bound of one request's duration."
    )
    lend_idle_capacity: bool = Field(
        default=True,
        description=(
            "While every engine of a request's pool is queueing and an engine of the other"
            " pool has been nearly idle for about 5 s (no queue, KV cache at most half used),"
            " run the request there, with its own mode's sampling and budget. Only between"
            " pools whose engines take the same or a longer context."
        ),
    )
    node_selector: dict[str, str] = Field(
        default_factory=dict, description="Node selector of the router pods."
    )
    tolerations: list[Passthrough] = Field(
        default_factory=list, max_length=64, description="Tolerations of the router pods."
    )
    priority_class_name: str | None = Field(
        default=None, max_length=253, description="PriorityClass of the router pods."
    )


class NemotronDeploymentSpec(_Model):
    """A Llama-Nemotron-Nano model served by two vLLM pools behind one router."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                _cel(
                    "(has(self.router) && has(self.router.defaultMode)"
                    " ? self.router.defaultMode : 'off') == 'on'"
                    f" ? {_enabled('self.pools', 'reasoningOn', guard='self')}"
                    f" : {_enabled('self.pools', 'reasoningOff', guard='self')}",
                    "router.defaultMode must name an enabled pool",
                    ".router.defaultMode",
                ),
            ]
        }
    )

    model: ModelSpec = Field(description="The model to serve.")
    image: str = Field(
        default=DEFAULT_VLLM_IMAGE,
        min_length=1,
        max_length=512,
        description="vLLM container image.",
    )
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = Field(
        default="IfNotPresent", description="Pull policy of the vLLM image."
    )
    served_model_name: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="Model name clients send; default: the preset's name, else the HF id.",
    )
    hf_token_secret_ref: SecretKeyRef | None = Field(
        default=None,
        description="Secret key holding a Hugging Face token (env HF_TOKEN of the engines).",
    )
    model_cache: ModelCacheSpec | None = Field(
        default=None,
        description="Shared model cache on a PVC; absent: each pod downloads the model.",
    )
    tool_calling: ToolCallingSpec = Field(
        default_factory=ToolCallingSpec, description="Tool calling."
    )
    pools: PoolsSpec = Field(default_factory=PoolsSpec, description="The reasoning pools.")
    router: RouterSpec = Field(default_factory=RouterSpec, description="The router.")

    @model_validator(mode="after")
    def _default_mode_enabled(self) -> NemotronDeploymentSpec:
        pool = (
            self.pools.reasoning_on
            if self.router.default_mode == "on"
            else self.pools.reasoning_off
        )
        if not pool.enabled:
            raise ValueError("router.defaultMode must name an enabled pool")
        return self

    def pool(self, mode: Literal["on", "off"]) -> PoolSpec:
        """The pool serving ``mode``."""
        return self.pools.reasoning_on if mode == "on" else self.pools.reasoning_off

    @property
    def resolved_served_model_name(self) -> str:
        """The name clients send as ``model``."""
        if self.served_model_name is not None:
            return self.served_model_name
        if self.model.preset is not None:
            return PRESETS[self.model.preset].served_model_name
        return self.model.hf_id


class Condition(_Model):
    """A status condition, shaped like metav1.Condition."""

    model_config = ConfigDict(extra="ignore")

    type: str = Field(description="Ready, Progressing or Degraded.")
    status: Literal["True", "False", "Unknown"] = Field(description="True, False or Unknown.")
    reason: str = Field(description="Machine-readable CamelCase reason.")
    message: str = Field(default="", description="Human-readable explanation.")
    last_transition_time: str | None = Field(
        default=None, description="When status last changed (RFC 3339)."
    )
    observed_generation: int | None = Field(
        default=None, description="spec generation this condition was computed from."
    )


class PoolAutoscalingStatus(_Model):
    """The builtin autoscaler's latest decision for one pool, written when it changes."""

    model_config = ConfigDict(extra="ignore")

    desired_replicas: int = Field(default=0, description="Replicas the policy asked for.")
    current_replicas: int = Field(default=0, description="Replicas (/scale) when it decided.")
    last_decision: str = Field(
        default="", description="The decision and its reason, e.g. 'scale up: demand 12, ...'."
    )
    last_decision_time: str | None = Field(
        default=None, description="When that decision was made (RFC 3339)."
    )
    error: str | None = Field(default=None, description="Why the last /scale write failed.")


class PoolStatus(_Model):
    """Observed state of one pool."""

    model_config = ConfigDict(extra="ignore")

    enabled: bool = Field(default=False, description="Whether the pool is enabled.")
    desired_replicas: int = Field(default=0, description="Replicas the Deployment asks for.")
    ready_replicas: int = Field(default=0, description="Replicas ready to serve.")
    replicas: str = Field(default="0/0", description="ready/desired, for kubectl get.")
    autoscaling: PoolAutoscalingStatus | None = Field(
        default=None, description="The builtin autoscaler's latest decision (autoscaled pools)."
    )


class PoolsStatus(_Model):
    """Observed state of both pools (keys ``on`` and ``off`` as everywhere else)."""

    model_config = ConfigDict(extra="ignore")

    on: PoolStatus = Field(default_factory=PoolStatus, description="The reasoning-on pool.")
    off: PoolStatus = Field(default_factory=PoolStatus, description="The reasoning-off pool.")


class NemotronDeploymentStatus(_Model):
    """What the operator observed and did."""

    model_config = ConfigDict(extra="ignore")

    observed_generation: int | None = Field(
        default=None, description="metadata.generation the status reflects."
    )
    model: str | None = Field(default=None, description="The Hugging Face id being served.")
    endpoint: str | None = Field(
        default=None, description="Cluster-internal OpenAI base URL (the router Service)."
    )
    conditions: list[Condition] = Field(
        default_factory=list, description="Ready, Progressing, Degraded."
    )
    pools: PoolsStatus = Field(default_factory=PoolsStatus, description="Per-pool replicas.")


class NemotronDeployment(_Model):
    """The custom resource as the controller reads it (metadata is kept as a plain mapping)."""

    model_config = ConfigDict(extra="ignore")

    api_version: str = Field(default=API_VERSION, alias="apiVersion")
    kind: str = KIND
    metadata: dict[str, Any] = Field(default_factory=dict)
    spec: NemotronDeploymentSpec
    status: NemotronDeploymentStatus = Field(default_factory=NemotronDeploymentStatus)
