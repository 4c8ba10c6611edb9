"""Numbers as a reader wants them: units, thousands separators, SI prefixes, no ``e+05``.

A metric's unit and whether it counts things come from the run's ``summary["metrics"]``; a
column of one metric shares its number of decimals, so values line up and compare at a glance.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

_PREFIXES = ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"))
_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")
_BYTE_UNITS = {"bytes", "byte", "B"}
# Integers below this are written out in full (with separators); larger ones get a prefix.
_PLAIN_BELOW = 10_000
MISSING = "—"


def finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def scientific(value: float, digits: int = 2) -> str:
    """``3.0×10⁻⁶``: for the rare tiny value, never the ``3e-06`` a reader must decode."""
    if value == 0:
        return "0"
    exponent = math.floor(math.log10(abs(value)))
    mantissa = value / 10**exponent
    if round(abs(mantissa), digits - 1) >= 10:
        mantissa, exponent = mantissa / 10, exponent + 1
    return f"{mantissa:.{digits - 1}f}×10{str(exponent).translate(_SUPERSCRIPT)}"


def si(value: float, digits: int = 3) -> tuple[str, str]:
    """``(number, prefix)`` with ``digits`` significant digits: ``426600 -> ("427", "k")``."""
    for size, prefix in _PREFIXES:
        if abs(value) >= size * (1 - 0.5 * 10**-digits):
            scaled = value / size
            decimals = max(0, digits - 1 - math.floor(math.log10(max(abs(scaled), 1.0))))
            text = f"{scaled:.{decimals}f}"
            if abs(float(text)) >= 1000 and prefix != "T":  # 999.95 k -> 1.00 M
                continue
            return text, prefix
    return f"{value:,.0f}", ""


def integer(value: float) -> tuple[str, str]:
    """A count: ``1,621`` in full below 10,000, else with an SI prefix (``1.23``, ``M``)."""
    if abs(value) < _PLAIN_BELOW:
        return f"{round(value):,}", ""
    return si(value)


def decimals_for(values: Iterable[float], significant: int = 4) -> int:
    """Decimals that give the smallest (non-zero, not tiny) value of a column ``significant``
    digits, between 0 and 4: ``2.314`` and ``0.1234`` but ``41.23`` and ``426.6``."""
    magnitudes = [abs(v) for v in values if finite(v) and abs(v) >= 1e-3]
    if not magnitudes:
        return 2
    return max(0, min(4, significant - 1 - math.floor(math.log10(min(magnitudes)))))


def unit_text(unit: str) -> str:
    """What follows a number: ``%`` touches it, any other unit is spaced."""
    if not unit:
        return ""
    return unit if unit == "%" else f" {unit}"


def with_unit(number: str, prefix: str, unit: str) -> str:
    if number == MISSING:
        return number
    if unit in _BYTE_UNITS and prefix:
        return f"{number} {prefix}B"
    if prefix:
        return f"{number} {prefix}" + (f" {unit}" if unit else "")
    return number + unit_text(unit)


class MetricFormat:
    """How one metric is written, from its entry in ``summary["metrics"]`` and, optionally,
    the values it will be used for (so a column shares its decimals)."""

    def __init__(
        self, name: str, meta: Mapping[str, Any] | None = None, values: Iterable[float] = ()
    ) -> None:
        meta = meta or {}
        self.name = name
        self.unit = str(meta.get("unit") or "")
        self.description = str(meta.get("description") or "")
        self.integer = bool(meta.get("integer", False))
        self.split = meta.get("split")
        self.decimals = decimals_for(values)

    def parts(self, value: Any) -> tuple[str, str]:
        """``(number, SI prefix)`` without the unit."""
        if not finite(value):
            return MISSING, ""
        value = float(value)
        if self.integer:
            return integer(value)
        if value != 0 and abs(value) < 1e-3:
            return scientific(value), ""
        if abs(value) >= 1e5:
            return si(value, 4)
        if abs(value) >= 1e3:
            return f"{value:,.0f}", ""
        return f"{value:,.{self.decimals}f}", ""

    def compact(self, value: Any) -> str:
        """A round number as typed (a limit, say): ``2 ms``, ``1 M params``, not ``2.0000``."""
        if not finite(value):
            return MISSING
        value = float(value)
        if self.integer or abs(value) >= 1e5 or (value != 0 and abs(value) < 1e-3):
            text, prefix = self.parts(value)
            if "." in text and "×" not in text:
                text = text.rstrip("0").rstrip(".")
        else:
            text, prefix = f"{value:,.4g}", ""
        return with_unit(text, prefix, self.unit)

    def number(self, value: Any) -> str:
        """For a table cell under a header that names the unit: ``1.23 M``, ``2.314``."""
        text, prefix = self.parts(value)
        if prefix and self.unit in _BYTE_UNITS:
            return f"{text} {prefix}B"
        return f"{text} {prefix}" if prefix else text

    def text(self, value: Any) -> str:
        """With the unit, for prose and hover labels: ``1.23 M MACs``, ``0.52 ms``, ``41.2%``."""
        return with_unit(*self.parts(value), self.unit)


def metric_formats(
    meta: Mapping[str, Mapping[str, Any]], rows: Iterable[Mapping[str, Any] | None]
) -> dict[str, MetricFormat]:
    """A format per metric seen in ``rows`` (or described in ``meta``), each fitted to the
    values it takes across ``rows``."""
    rows = [r for r in rows if r]
    names = list(dict.fromkeys([*meta, *(n for r in rows for n in r)]))
    return {n: MetricFormat(n, meta.get(n), [r[n] for r in rows if n in r]) for n in names}


def seconds(value: Any) -> str:
    """Stage times: ``234.5 s``, with minutes beside anything over two minutes."""
    if not finite(value):
        return MISSING
    text = f"{float(value):,.1f} s"
    if value >= 120:
        text += f" ({float(value) / 60:.1f} min)"
    return text


def quantity(size: Any, unit: str) -> str:
    """A data split's size: ``28,651,215 bytes (28.7 MB)``, ``1,437 images``."""
    if not finite(size):
        return MISSING
    text = f"{round(float(size)):,} {unit}".rstrip()
    if unit in _BYTE_UNITS and size >= _PLAIN_BELOW:
        number, prefix = si(float(size))
        text += f" ({number} {prefix}B)"
    return text


def scalar(value: Any) -> str:
    """Any setting or device field as short text."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}" if abs(value) >= _PLAIN_BELOW else str(value)
    if isinstance(value, float):
        if not math.isfinite(value) or value == 0:
            return f"{value:g}"
        if abs(value) < 1e-3 or abs(value) >= 1e15:
            return scientific(value, 3)
        return f"{value:,.6g}" if abs(value) < 1e6 else f"{value:,.0f}"
    if value is None:
        return MISSING
    return str(value)
