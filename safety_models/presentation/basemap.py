"""The street map under the risk cells, and links to a place in the city's usual map
(no streamlit).

Which base map (SAFETY_MODELS_MAP_STYLE):
    unset or "carto"  CARTO's free Positron style: light streets and place names from
                      OpenStreetMap, no key needed
    a URL             the city's own MapLibre / Mapbox GL style (a style.json on its tile server)
    "none"            no base map: the cells and district outlines on the page's background
The browser fetches the tiles, but a city's machines are often offline. So the server fetches
the style once, with a short timeout (PROBE_TIMEOUT_S), in the background, and keeps the
answer for RECHECK_AFTER_S; when it cannot be reached the map is drawn without a base map,
as it always was, and says why. Nothing waits longer than the caller allows.

Links (SAFETY_MODELS_PLACE_URL): a template with {lat} and {lon}, by default OpenStreetMap's
map centred on the point.
"""

from __future__ import annotations

import os
import threading
import time
import urllib.request
from dataclasses import dataclass

STYLE_ENV = "SAFETY_MODELS_MAP_STYLE"
PLACE_URL_ENV = "SAFETY_MODELS_PLACE_URL"
CARTO_POSITRON_URL = "https://basemaps.cartocdn.com/gl/positron-gl-style/style.json"
DEFAULT_PLACE_URL = "https://www.openstreetmap.org/?mlat={lat:.5f}&mlon={lon:.5f}#map=17/{lat:.5f}/{lon:.5f}"
PROBE_TIMEOUT_S = 2.0
RECHECK_AFTER_S = 600.0
OSM_ATTRIBUTION = "© OpenStreetMap contributors"


@dataclass(frozen=True)
class Basemap:
    """What goes under the cells: a style URL and the pydeck provider for it, or nothing.

    note: one line for people when there is no base map (why), '' otherwise."""

    style_url: str | None = None
    provider: str | None = None          # pydeck's map_provider: 'carto' or 'maplibre'
    attribution: str = ""
    note: str = ""

    @property
    def shown(self) -> bool:
        return self.style_url is not None


NO_BASEMAP = Basemap(note="No street map is configured (SAFETY_MODELS_MAP_STYLE=none).")


def configured_style(environ: dict | None = None) -> str | None:
    """The style URL the setting asks for; None for 'none'."""
    value = (environ if environ is not None else os.environ).get(STYLE_ENV, "").strip()
    if value.lower() in ("", "carto", "positron", "default"):
        return CARTO_POSITRON_URL
    if value.lower() in ("none", "off", "no", "false", "0"):
        return None
    return value


def basemap_for(style_url: str | None, reachable: bool | None) -> Basemap:
    """The base map for a configured style and what the probe found (None: not known yet,
    drawn without one for now)."""
    if style_url is None:
        return NO_BASEMAP
    if not reachable:
        why = "could not be reached" if reachable is False else "is still being checked"
        host = style_url.split("/")[2] if "://" in style_url else style_url
        return Basemap(note=f"Street map not shown: its server ({host}) {why} from here, so the "
                            "cells are drawn on a plain background.")
    carto = "cartocdn.com" in style_url
    return Basemap(style_url=style_url, provider="carto" if carto else "maplibre",
                   attribution=f"Base map © CARTO, {OSM_ATTRIBUTION}" if carto else "")


def probe(url: str, timeout_s: float = PROBE_TIMEOUT_S) -> bool:
    """Whether a GET of url answers 2xx/3xx within timeout_s (a style.json is small)."""
    request = urllib.request.Request(url, headers={"User-Agent": "safety_models basemap check"})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            response.read(1)
            return 200 <= response.status < 400
    except (OSError, ValueError):
        return False


class BasemapChooser:
    """Probes the configured style in a background thread and remembers the answer.

    choose(wait_s) returns at once when the answer is known (or within wait_s while the first
    probe runs); it never blocks longer. One instance serves every session of a process."""

    def __init__(self, style_url: str | None, timeout_s: float = PROBE_TIMEOUT_S,
                 recheck_after_s: float = RECHECK_AFTER_S, probe_fn=probe):
        self.style_url = style_url
        self.timeout_s = timeout_s
        self.recheck_after_s = recheck_after_s
        self._probe = probe_fn
        self._lock = threading.Lock()
        self._reachable: bool | None = None
        self._checked_at = float("-inf")
        self._thread: threading.Thread | None = None

    def _run(self) -> None:
        reachable = bool(self._probe(self.style_url, self.timeout_s))
        with self._lock:
            self._reachable, self._checked_at = reachable, time.monotonic()
            self._thread = None

    def start(self) -> None:
        """Start a probe unless one runs or the last answer is still fresh."""
        if self.style_url is None:
            return
        with self._lock:
            fresh = time.monotonic() - self._checked_at < self.recheck_after_s
            if self._thread is not None or fresh:
                return
            self._thread = threading.Thread(target=self._run, name="basemap-probe", daemon=True)
            self._thread.start()

    def choose(self, wait_s: float = 0.0) -> Basemap:
        self.start()
        thread = self._thread
        if thread is not None and self._reachable is None and wait_s > 0:
            thread.join(wait_s)
        return basemap_for(self.style_url, self._reachable)


def place_url(lat: float, lon: float, environ: dict | None = None) -> str:
    """A link that opens the point in the city's usual map (SAFETY_MODELS_PLACE_URL, a
    template with {lat} and {lon}; OpenStreetMap by default)."""
    template = (environ if environ is not None else os.environ).get(PLACE_URL_ENV) or DEFAULT_PLACE_URL
    return template.format(lat=float(lat), lon=float(lon))
