"""Exceptions shared by modules that must not import each other (config, methods, device).

Importable from here without pulling in torch or any other robustbook module;
``robustbook.config.ConfigError`` and ``robustbook.runs.ConfigError`` are the same class.
"""

__all__ = ["ConfigError"]


class ConfigError(ValueError):
    """A RunConfig field (or another setting) has a value outside its allowed range;
    the message names the field and says what to use instead."""
