"""Per-model facts for the model presets a NemotronDeployment can name (``spec.model.preset``).

Every number comes from the model cards in ``shared/seeds/``: both models take 131,072 tokens
of context, run in bf16 on one GPU (the 4B card lists 1x H100-80GB / A100-80GB / RTX; the 8B
card says any GPU with >= 16 GB), and are served with ``--gpu-memory-utilization 0.95``.
Used by ``api.models`` (the enum of preset names) and by the controller's desired-state
builders (defaults for fields the CR leaves out).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["PRESETS", "PRESET_NAMES", "ModelPreset", "PresetName"]

PresetName = Literal["nano-4b-v1.1", "nano-8b-v1"]


@dataclass(frozen=True)
class ModelPreset:
    """What the operator knows about one model without downloading it."""

    name: str
    hugging_face_id: str
    served_model_name: str
    parameters_billion: float
    max_model_len: int
    default_gpus: int
    # bf16 weights on disk, rounded up: a floor for the GPU and the model-cache PVC.
    weights_gib: int
    min_gpu_memory_gib: int
    gpu_memory_utilization: float


PRESETS: dict[str, ModelPreset] = {
    "nano-4b-v1.1": ModelPreset(
        name="nano-4b-v1.1",
        hugging_face_id="nvidia/Llama-3.1-Nemotron-Nano-4B-v1.1",
        # The card's own ``--served-model-name``.
        served_model_name="Llama-Nemotron-Nano-4B-v1.1",
        parameters_billion=4.5,
        max_model_len=131072,
        default_gpus=1,
        weights_gib=10,
        min_gpu_memory_gib=24,
        gpu_memory_utilization=0.95,
    ),
    "nano-8b-v1": ModelPreset(
        name="nano-8b-v1",
        hugging_face_id="nvidia/Llama-3.1-Nemotron-Nano-8B-v1",
        served_model_name="Llama-Nemotron-Nano-8B-v1",
        parameters_billion=8.0,
        max_model_len=131072,
        default_gpus=1,
        # "16.1 GB on disk" (8B card).
        weights_gib=16,
        min_gpu_memory_gib=16,
        gpu_memory_utilization=0.95,
    ),
}

PRESET_NAMES: tuple[str, ...] = tuple(PRESETS)
