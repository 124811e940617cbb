"""The NemotronDeployment API: pydantic models (the single source of the CRD), presets and the
router config schema. The lowest layer: imports nothing else from the project."""
