"""Nemotron operator: serves Llama-3.1-Nemotron-Nano reasoning models on Kubernetes with vLLM.

Sub-packages, lowest layer first (enforced by import-linter, see ``.importlinter``):

- ``api``: the NemotronDeployment spec/status as pydantic models, presets, CRD generation,
  and the router's config schema (shared by the controller that writes it and the router
  that reads it).
- ``engine``: what runs in the vLLM pod (args, chat template, parser plugins) and the engine
  emulator that stands in for vLLM without a GPU.
- ``autoscaler``: the pure scaling policy, the simulator and the loop.
- ``controller`` / ``router`` / ``devcluster``: the kopf operator, the OpenAI gateway and the
  local control plane; independent of each other.
- ``cli``: the ``nemotron-operator`` command that wires them up.
"""

__all__ = ["__version__"]

__version__ = "0.1.0"
