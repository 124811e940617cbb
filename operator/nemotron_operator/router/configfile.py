"""Loading the router's config file (``api.routerconfig.RouterConfig`` as YAML) and noticing
when it changes. A mounted ConfigMap changes by an atomic symlink swap, so the watcher
compares file contents, not mtimes. ``server`` applies a new config without a restart; an
invalid file is logged and the running config kept.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import yaml

from nemotron_operator.api.routerconfig import RouterConfig

__all__ = ["config_digest", "load_config", "parse_config"]


def parse_config(text: str) -> RouterConfig:
    return RouterConfig.model_validate(yaml.safe_load(text) or {})


def load_config(path: str | Path) -> RouterConfig:
    return parse_config(Path(path).read_text(encoding="utf-8"))


def config_digest(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()
