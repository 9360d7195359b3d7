"""The incident vocabulary, declared once: categories, canonical columns, default windows."""

from __future__ import annotations

import re

CATEGORIES: tuple[str, ...] = ("crime", "traffic", "health")

# Canonical columns of an accepted incident table (pandas), in this order.
#   source_key   str    stable de-duplication key: the source's id, else a hash of the raw row
#   category     str    one of CATEGORIES
#   subtype      str    offence / collision / complaint type; "" when the source has none
#   occurred_at  datetime64[ns], naive, the city's local clock as the source recorded it
#   latitude     float64  WGS84 degrees
#   longitude    float64  WGS84 degrees
INCIDENT_COLUMNS: tuple[str, ...] = (
    "source_key", "category", "subtype", "occurred_at", "latitude", "longitude",
)

# Columns added to a rejected-rows table (beside the file's own columns).
#   row_number  int  1-based data row in the file (the header is row 0)
#   reason      str  short, human reason, e.g. "unparseable time", "missing coordinates"
REJECT_COLUMNS: tuple[str, ...] = ("row_number", "reason")

# What a user expects by default: day windows for crime and traffic, weeks for health.
DEFAULT_WINDOW_HOURS: dict[str, int] = {"crime": 24, "traffic": 24, "health": 168}
DEFAULT_CELL_SIZE_M: float = 500.0


def check_category(category: str) -> str:
    """Return category if known, else raise ValueError naming the allowed ones."""
    if category not in CATEGORIES:
        raise ValueError(f"unknown category {category!r}; expected one of {', '.join(CATEGORIES)}")
    return category

# Forecast horizons a category can have a model for (besides the next window): risk over the
# next N days, trained on the events of those days (training.TrainConfig.horizon_days). They are
# the spans plans are made for: a week, two weeks, a month, two months, a quarter (the NIJ
# crime forecasting challenge's five horizons).
HORIZONS: tuple[str, ...] = ("7d", "14d", "30d", "60d", "90d")
# How a horizon may be written: a number of days, weeks or months (a month is 30 days).
_HORIZON_UNIT_DAYS = {"d": 1, "day": 1, "days": 1, "w": 7, "wk": 7, "week": 7, "weeks": 7,
                      "m": 30, "mo": 30, "month": 30, "months": 30}
_HORIZON_PATTERN = re.compile(r"^\s*(\d+)\s*([a-z]+)\s*$")


def parse_horizon(horizon: str) -> str:
    """A horizon as written -> its key in HORIZONS: "7d", "1w", "1 week" -> "7d"; "2w" -> "14d";
    "1m" -> "30d"; "2 months" -> "60d"; "3m" -> "90d". ValueError naming the allowed ones for
    anything else (a span that is not one of HORIZONS included)."""
    match = _HORIZON_PATTERN.match(str(horizon).lower())
    unit = _HORIZON_UNIT_DAYS.get(match.group(2)) if match else None
    key = f"{int(match.group(1)) * unit}d" if unit else None
    if key not in HORIZONS:
        raise ValueError(f"unknown horizon {horizon!r}; expected one of {', '.join(HORIZONS)} "
                         f"(or 1w, 2w, 1m, 2m, 3m)")
    return key


def horizon_days(horizon: str) -> int:
    """"7d" (or "1w", see parse_horizon) -> 7 for a horizon of HORIZONS; ValueError naming the
    allowed ones otherwise."""
    return int(parse_horizon(horizon)[:-1])

# The layout of a saved model checkpoint dict (training writes it, the registry stores it,
# modeling.models rebuilds from it); raise it when the dict's keys change meaning.
CHECKPOINT_FORMAT = 1
