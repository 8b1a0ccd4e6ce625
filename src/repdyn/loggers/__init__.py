"""Logging: one call (:meth:`Logger.log`) feeds the local append-only history and the W&B sink."""
