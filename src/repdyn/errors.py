"""Exceptions shared across layers: defined here, below everything, so that low-level modules (agents, replay
memory, interventions) can raise them without importing the config module that validates whole runs."""

from __future__ import annotations


class ConfigError(ValueError):
    """A user-caused configuration problem, reported before any compute (the CLI exits with code 2)."""
