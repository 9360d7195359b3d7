"""Quantities written as a number and a unit, as people type them: a flagged area ("0.75sqmi",
"2km2") and a cell size ("600ft", "150m"). Pure functions, one parser behind both.

    parse_area       "0.75sqmi" -> km²
    parse_length_m   "600ft" -> metres
"""

from __future__ import annotations

import re

_QUANTITY_PATTERN = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)\s*(\S.*?)?\s*$", re.IGNORECASE)


def _parse_quantity(text: str, units: dict[str, float], what: str, examples: str,
                    default_unit: str | None = None) -> float:
    """text -> number x units[unit] (unit lower-cased, spaces removed; default_unit when none is
    written, if given). ValueError naming `what`, the text and the examples otherwise, or when
    the result is not positive."""
    match = _QUANTITY_PATTERN.match(str(text))
    unit = None
    if match:
        unit = (match.group(2) or default_unit or "").lower().replace(" ", "")
    if unit not in units:
        raise ValueError(f"{what} {text!r} not understood: give a number and a unit, {examples}")
    value = float(match.group(1)) * units[unit]
    if not value > 0:
        raise ValueError(f"{what} {text!r} must be positive")
    return value


# ---------------------------------------------------------------------------------------------
# A flagged area in km² or square miles (what a patrol plan is given), instead of a share

# 1 mile = 1.609344 km exactly, so 1 square mile = 2.589988110336 km².
KM2_PER_SQUARE_MILE = 1.609344**2
# Unit spellings (lower case, spaces removed) -> km² per unit.
AREA_UNITS_KM2: dict[str, float] = {
    "km2": 1.0, "km²": 1.0, "sqkm": 1.0, "squarekm": 1.0, "squarekilometres": 1.0, "squarekilometers": 1.0,
    "mi2": KM2_PER_SQUARE_MILE, "mi²": KM2_PER_SQUARE_MILE, "sqmi": KM2_PER_SQUARE_MILE,
    "squaremiles": KM2_PER_SQUARE_MILE, "squaremile": KM2_PER_SQUARE_MILE,
    "m2": 1e-6, "m²": 1e-6, "ha": 0.01,
}


def parse_area(text: str) -> float:
    """An area written as a number and a unit -> km².

    "2km2" -> 2.0; "0.75sqmi" -> 0.75 x 2.589988110336 = 1.942491082752; "0.75 sq mi",
    "1.5 km²", "50ha", "250000m2" work too (case and spaces do not matter). Units: km2 / km² /
    sq km, mi2 / mi² / sq mi, m2 / m², ha. Raises ValueError, naming the text and the
    accepted forms, for anything else or an area that is not positive.
    """
    return _parse_quantity(text, AREA_UNITS_KM2, "area",
                           "e.g. 2km2, 0.75sqmi, 1.5 km², 50ha (units: km2, sqmi, mi2, m2, ha)")


# ---------------------------------------------------------------------------------------------
# A cell size with its unit (US analysts think in feet)

# Length units a cell size may be written in -> metres per unit (a US foot is the
# international foot, 0.3048 m; the survey foot differs by 2 parts per million).
LENGTH_UNITS_M: dict[str, float] = {
    "m": 1.0, "metre": 1.0, "metres": 1.0, "meter": 1.0, "meters": 1.0,
    "km": 1000.0, "kilometre": 1000.0, "kilometres": 1000.0, "kilometer": 1000.0, "kilometers": 1000.0,
    "ft": 0.3048, "foot": 0.3048, "feet": 0.3048, "yd": 0.9144, "yard": 0.9144, "yards": 0.9144,
    "mi": 1609.344, "mile": 1609.344, "miles": 1609.344,
}


def parse_length_m(text: str) -> float:
    """A length written as a number and a unit -> metres: "600ft" -> 182.88, "150m" or "150"
    -> 150.0, "0.1 mi" -> 160.9344, "0.2km" -> 200.0. ValueError, naming the text and the
    accepted units, for anything else or a length that is not positive."""
    return _parse_quantity(text, LENGTH_UNITS_M, "length",
                           "e.g. 150m, 600ft, 0.1mi (units: m, km, ft, yd, mi)", default_unit="m")
