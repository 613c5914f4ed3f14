"""TOML text from plain data: what the instructor configuration holds (tables, numbers, strings, booleans, lists).

Python reads TOML (tomllib) but does not write it; the configuration needs writing twice:
the Gradescope zip packs the part of a course-wide config its assignment needs, and
`python -m graders doctor --time` writes time limits as a config snippet. Every text
is read back and compared with the data it came from, so a value this module cannot
write is an error here, never a different config.
"""

from __future__ import annotations

import json
import math
import re
import sys

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
loads = tomllib.loads


def _key(key: str) -> str:
    return key if BARE_KEY.match(key) else json.dumps(key, ensure_ascii=False)


def _value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # JSON's escapes are TOML's basic-string escapes
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")


def _table(path: list[str], data: dict, lines: list[str], comments: dict[str, str]) -> None:
    plain = {k: v for k, v in data.items() if not isinstance(v, dict) or (path and _inline(v))}
    nested = {k: v for k, v in data.items() if k not in plain}
    name = ".".join(_key(p) for p in path)
    if path and lines and lines[-1] != "" and not lines[-1].startswith("#"):  # a table's comment stays above it
        lines.append("")
    if name in comments:
        lines += [f"# {line}" for line in comments[name].splitlines()]
    if path and (plain or not nested):
        lines.append(f"[{name}]")
    lines += [f"{_key(k)} = {_value(v)}" for k, v in plain.items()]
    for k, v in nested.items():
        _table([*path, k], v, lines, comments)


def _inline(value: dict) -> bool:
    """A per-device value ({cpu = 60, cuda = 30}) reads best inline."""
    return bool(value) and set(value) <= {"cpu", "cuda"}


def dumps(data: dict, header: str = "", comments: dict[str, str] | None = None) -> str:
    """TOML for `data` (nested dicts are tables); `comments`: {table name: text shown above it}."""
    lines = [f"# {line}" for line in header.splitlines()] + ([""] if header else [])
    _table([], data, lines, comments or {})
    text = "\n".join(lines) + "\n"
    if tomllib.loads(text) != data:
        raise ValueError("the TOML written does not read back as the data it was written from")
    return text
