"""Server setting values compared the way PostgreSQL reads them: `1GB` = `1024MB` = `131072`
(8kB pages of shared_buffers), `on` = `true`, `30s` = `30000` (ms). Pure; no database. The
units themselves (tables and PostgreSQL's spellings) are dbops.units'."""

from __future__ import annotations

import re
from dataclasses import dataclass

from dbops.units import unit_family

_QUANTITY = re.compile(r"^\s*(-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)\s*([a-zA-Z]*)\s*$")
_TRUE = {"on", "true", "yes", "1", "t", "y"}
_FALSE = {"off", "false", "no", "0", "f", "n"}

Comparable = str | float | bool


@dataclass(frozen=True)
class SettingSpec:
    """What pg_settings says about one setting: enough to read and check a value."""

    name: str
    vartype: str  # bool | integer | real | string | enum
    unit: str | None  # e.g. 8kB, kB, MB, ms, s, min
    min_val: str | None = None
    max_val: str | None = None
    enumvals: tuple[str, ...] = ()


def _unit_scale(unit: str | None) -> tuple[dict[str, float], float] | None:
    """The unit family of a pg_settings unit (PostgreSQL's grammar, from dbops.units) and the
    size of one unit in the family's base (bytes, milliseconds)."""
    return unit_family(unit) if unit else None


def normalize(spec: SettingSpec, value: str) -> Comparable:
    """A value as a comparable: memory in bytes, time in milliseconds, booleans as bool,
    enums lower-cased. Raises ValueError with a message naming the setting on bad input."""
    text = str(value).strip()
    if spec.vartype == "bool":
        lowered = text.lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise ValueError(f"{spec.name}: {value!r} is not a boolean (on/off)")
    if spec.vartype == "enum":
        if spec.enumvals and text.lower() not in {e.lower() for e in spec.enumvals}:
            raise ValueError(f"{spec.name}: {value!r} is not one of {', '.join(spec.enumvals)}")
        return text.lower()
    if spec.vartype not in ("integer", "real"):
        return text
    return _quantity(spec, text)


def _quantity(spec: SettingSpec, text: str) -> float:
    if spec.vartype == "integer" and re.fullmatch(r"0[0-7]+|0[xX][0-9a-fA-F]+", text.strip()):
        return float(int(text.strip(), 0 if "x" in text.lower() else 8))  # as PostgreSQL reads it
    match = _QUANTITY.match(text)
    if not match:
        raise ValueError(f"{spec.name}: {text!r} is not a number{_unit_hint(spec)}")
    number, suffix = float(match.group(1)), match.group(2)
    scale = _unit_scale(spec.unit)
    if not suffix:
        return number * scale[1] if scale else number
    if scale is None or suffix not in scale[0]:
        raise ValueError(f"{spec.name}: unit {suffix!r} is not valid here{_unit_hint(spec)}")
    return number * scale[0][suffix]


def _unit_hint(spec: SettingSpec) -> str:
    scale = _unit_scale(spec.unit)
    if scale is None:
        return ""
    kinds = "B, kB, MB, GB, TB" if "kB" in scale[0] else "us, ms, s, min, h, d"
    return f" (units: {kinds}; a bare number is in {spec.unit})"


def check(spec: SettingSpec, value: str) -> None:
    """Raise ValueError when PostgreSQL would refuse `value` (type, unit, range, enum)."""
    parsed = normalize(spec, value)
    if isinstance(parsed, float) and spec.min_val is not None and spec.max_val is not None:
        low, high = (_quantity(spec, spec.min_val), _quantity(spec, spec.max_val))
        if not low <= parsed <= high:
            raise ValueError(f"{spec.name}: {value} is out of range "
                             f"({display(spec, spec.min_val)} .. {display(spec, spec.max_val)})")
        if spec.vartype == "integer" and spec.unit is None and not float(parsed).is_integer():
            raise ValueError(f"{spec.name}: {value} is not an integer")


def same(spec: SettingSpec, a: str, b: str) -> bool:
    """Whether two spellings mean the same value (integers compare after PostgreSQL's rounding
    to the setting's unit)."""
    x, y = normalize(spec, a), normalize(spec, b)
    if isinstance(x, float) and isinstance(y, float):
        scale = _unit_scale(spec.unit)
        step = scale[1] if scale and spec.vartype == "integer" else 0
        if step:
            return round(x / step) == round(y / step)
        if spec.vartype == "integer":
            return x == y
        return abs(x - y) <= 1e-9 * max(1.0, abs(x), abs(y))
    return x == y


def display(spec: SettingSpec, raw: str) -> str:
    """pg_settings' raw value in its unit, spelled for people: 131072 (8kB) -> 1GB."""
    scale = _unit_scale(spec.unit)
    if scale is None or spec.vartype not in ("integer", "real"):
        return raw
    try:
        amount = float(raw) * scale[1]
    except ValueError:
        return raw
    if amount < 0:
        return raw
    family, _ = scale
    ladder = (("TB", "GB", "MB", "kB", "B") if "kB" in family
              else ("d", "h", "min", "s", "ms"))
    for unit in ladder:
        size = family[unit]
        if amount >= size and (amount / size).is_integer():
            return f"{int(amount / size)}{unit}"
    return f"{amount:g}{ladder[-1]}"


def spelled_like(spec: SettingSpec, value: str, like: str | None) -> str:
    """`value` (pg_settings' raw number in the setting's unit, or a spelled value) in the unit
    `like` is written in, so a plan's `8MB` is shown beside `16MB`, not `16384`: the same
    amount in like's unit when it is a whole number of them, `display` otherwise."""
    scale = _unit_scale(spec.unit)
    if scale is None or spec.vartype not in ("integer", "real"):
        return value
    try:
        amount = _quantity(spec, value)
    except ValueError:
        return value
    match = _QUANTITY.match(like or "")
    suffix = match.group(2) if match else ""
    if suffix in scale[0] and (amount / scale[0][suffix]).is_integer():
        return f"{int(amount / scale[0][suffix])}{suffix}"
    if match and not suffix and (amount / scale[1]).is_integer():
        return str(int(amount / scale[1]))  # the plan writes bare numbers in the setting's unit
    return display(spec, str(amount / scale[1]).removesuffix(".0"))
