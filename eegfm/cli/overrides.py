"""Typed run configs from ``--key=value`` command-line overrides.

A run config is a (nested) dataclass; each field is set with ``--name=value`` and a nested
one with ``--section.name=value`` (``--train.steps=500``, ``--model.num_codes=1024``).
Values are parsed by the field's type (int, float, str, bool, optional, tuples/lists as
comma-separated values). An unknown key is an error that says which keys exist and which
one was probably meant.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from collections.abc import Sequence

__all__ = ["ConfigError", "add_config_parser", "apply_overrides", "config_to_dict", "describe"]

_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}


class ConfigError(ValueError):
    """A bad ``--key=value`` override."""


def _fields(cls) -> dict:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _keys(config, prefix="") -> list[str]:
    keys = []
    for name, kind in _fields(type(config)).items():
        value = getattr(config, name)
        if dataclasses.is_dataclass(value):
            keys += _keys(value, f"{prefix}{name}.")
        else:
            keys.append(prefix + name)
    return keys


def _parse(text: str, kind, key: str, current=None):
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        if text.lower() in {"none", "null", ""} and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _parse(text, inner[0], key)
    if origin in (tuple, list, Sequence, typing.Sequence) or kind in (tuple, list):
        # bare `tuple`/`list`: take the item type from the current value, e.g. (0.9, 0.98) -> float
        item = args[0] if args else (type(current[0]) if current else str)
        values = [_parse(part.strip(), item, key) for part in text.split(",") if part.strip()]
        return tuple(values) if origin is tuple or kind is tuple else values
    if kind is bool:
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
        raise ConfigError(f"--{key} expects true/false, got {text!r}")
    if kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            raise ConfigError(f"--{key} expects {kind.__name__}, got {text!r}") from None
    return text


def apply_overrides(config, overrides: Sequence[str]):
    """Return a copy of the dataclass ``config`` with ``--key=value`` overrides applied.

    Parameters
    ----------
    config : dataclass instance
    overrides : sequence of str
        Items like ``"--train.steps=100"`` (the leading dashes are optional).

    Returns
    -------
    The updated copy.
    """
    config = dataclasses.replace(config)
    known = _keys(config)
    for item in overrides:
        body = item[2:] if item.startswith("--") else item
        if "=" not in body:
            raise ConfigError(f"override {item!r} must look like --key=value (known keys: {', '.join(known)})")
        key, text = body.split("=", 1)
        key = key.replace("-", "_")
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            hint = f" Did you mean --{close[0]}?" if close else ""
            raise ConfigError(f"unknown config key --{key}.{hint} Known keys: {', '.join(known)}")
        *path, name = key.split(".")
        target = config
        for part in path:  # copy nested sections so the input config is never mutated
            child = dataclasses.replace(getattr(target, part))
            setattr(target, part, child)
            target = child
        setattr(target, name, _parse(text, _fields(type(target))[name], key, getattr(target, name)))
    return config


def config_to_dict(config) -> dict:
    """The config as plain JSON-safe dicts (tuples become lists)."""
    return dataclasses.asdict(config)


def describe(config, prefix="") -> str:
    """One ``--key=value`` line per field (for ``--help`` texts)."""
    lines = []
    for name in _fields(type(config)):
        value = getattr(config, name)
        if dataclasses.is_dataclass(value):
            lines.append(describe(value, f"{prefix}{name}."))
        else:
            shown = ",".join(map(str, value)) if isinstance(value, (list, tuple)) else value
            lines.append(f"  --{prefix}{name}={shown}")
    return "\n".join(lines)


def add_config_parser(sub, name: str, help: str, doc: str, config):
    """A subcommand whose settings are ``--key=value`` overrides of the dataclass ``config``.

    Its ``--help`` is ``doc`` followed by every key with its default (:func:`describe`).
    """
    import argparse

    parser = sub.add_parser(name, help=help, formatter_class=argparse.RawDescriptionHelpFormatter,
                            description=doc + "\noptions (--key=value):\n" + describe(config))
    parser.add_argument("overrides", nargs="*", help="--key=value settings (see above)")
    return parser
