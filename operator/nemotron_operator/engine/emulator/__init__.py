"""The vLLM engine emulator (``nemotron-operator emulate-engine``): vLLM's OpenAI API subset,
``/health`` and ``/metrics``, with a continuous-batching timing model, for tests and the local
cluster where there is no GPU.

Modules, lowest first: ``flags`` (vLLM's command line and the emulator's environment knobs),
``timing`` (the pure batching model), ``generation`` (deterministic fake output), ``faults``,
``protocol`` (OpenAI request parsing and response shapes), ``metrics``, ``scheduler`` (drives
``timing`` in real time), ``server`` (aiohttp) and ``cli``.
"""
