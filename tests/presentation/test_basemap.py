"""basemap.py: which street map goes under the cells, checked once and never waited on long."""

from __future__ import annotations

import http.server
import socket
import threading
import time

import pytest

from safety_models.presentation import basemap


def test_the_setting_names_carto_none_or_the_citys_own_style():
    assert basemap.configured_style({}) == basemap.CARTO_POSITRON_URL
    assert basemap.configured_style({basemap.STYLE_ENV: "carto"}) == basemap.CARTO_POSITRON_URL
    assert basemap.configured_style({basemap.STYLE_ENV: "none"}) is None
    own = "https://tiles.city.example/styles/streets/style.json"
    assert basemap.configured_style({basemap.STYLE_ENV: own}) == own


def test_what_is_drawn_for_each_answer():
    carto = basemap.basemap_for(basemap.CARTO_POSITRON_URL, True)
    assert carto.shown and carto.provider == "carto" and "OpenStreetMap" in carto.attribution
    own = basemap.basemap_for("http://10.0.0.5/style.json", True)
    assert own.provider == "maplibre" and own.style_url == "http://10.0.0.5/style.json"
    for reachable, why in ((False, "could not be reached"), (None, "still being checked")):
        offline = basemap.basemap_for("http://10.0.0.5/style.json", reachable)
        assert not offline.shown and why in offline.note and "10.0.0.5" in offline.note
    assert not basemap.basemap_for(None, None).shown


def test_the_chooser_probes_once_in_the_background_and_never_blocks_longer_than_asked():
    calls = []
    release = threading.Event()

    def slow_probe(url, timeout_s):
        calls.append(url)
        release.wait(5)
        return True

    chooser = basemap.BasemapChooser("http://streets.example/style.json", probe_fn=slow_probe)
    started = time.monotonic()
    assert not chooser.choose(wait_s=0.2).shown             # not known yet: plain map
    assert time.monotonic() - started < 1.0
    release.set()
    assert chooser.choose(wait_s=2.0).shown
    chooser.choose()
    assert calls == ["http://streets.example/style.json"]     # one probe, remembered


def test_probe_answers_quickly_both_ways():
    class Style(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Style)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        assert basemap.probe(f"http://127.0.0.1:{httpd.server_address[1]}/style.json")
    finally:
        httpd.shutdown()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    started = time.monotonic()
    assert not basemap.probe(f"http://127.0.0.1:{port}/style.json", timeout_s=1.0)
    assert time.monotonic() - started < 2.0


@pytest.mark.parametrize("lat, lon, url", [
    (41.88, -87.65, "https://www.openstreetmap.org/?mlat=41.88000&mlon=-87.65000"
                    "#map=17/41.88000/-87.65000"),
])
def test_place_links(lat, lon, url):
    assert basemap.place_url(lat, lon, {}) == url
    assert basemap.place_url(lat, lon, {basemap.PLACE_URL_ENV: "https://m.example/{lat:.2f}/{lon:.2f}"}) \
        == "https://m.example/41.88/-87.65"
