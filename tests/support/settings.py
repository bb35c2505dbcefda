"""The configuration every in-process test app starts from."""
from __future__ import annotations

from recovery.config import TestConfig


def app_config(**overrides) -> dict:
    cfg = {k: getattr(TestConfig, k) for k in dir(TestConfig) if k.isupper()}
    cfg.update(overrides)
    return cfg
