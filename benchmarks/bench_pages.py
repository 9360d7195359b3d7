"""How long each dashboard page takes to become interactive in chromium, on the demo data,
beside the floor: a bare one-line Streamlit page served and measured the same way.

    python benchmarks/bench_pages.py                  # a temporary home: demo data + first models
    python benchmarks/bench_pages.py --home data      # an existing home (e.g. after first start)
    python benchmarks/bench_pages.py --repeat 3

"Interactive" = the page's title is shown and Streamlit's script run has finished (every
widget drawn and answering); for the risk map also the map's <canvas> is on the page. Each
round opens the dashboard's address in a new session (a new tab of one browser profile, so
later rounds find the page's scripts and compiled WebGL programs in the browser's caches) and signs in (timed as "sign-in"),
then opens every page from the app's navigation, as an operator does (SETTLE_MS apart,
not timed). The first round is
cold (first visits after the server started: caches empty), the later ones warm. The floor
is a bare app served the same way: its address loaded (beside the sign-in) and a click to
its second one-line page (beside each page); the table gives each ratio. A second floor, for
the risk map: a click to the bare app's third page, one `st.pydeck_chart` holding one polygon
(no base map) in a column as wide as the risk map's, timed until its <canvas> is there, as
the risk map is: what any deck.gl chart costs in this browser (its code, its WebGL context).
Both servers run throughout and each round times the bare app just before the dashboard (each
in its own browser), so that a change in what else the shared machine runs moves the floors
and the pages alike.
Without a --home, the demo data is loaded into a temporary home and each category gets what
the first start gives it within its first minute: the starting forecast, evaluated, with its
forecasts precomputed (as the bootstrap job does; about a minute on a laptop CPU, not
counted). With --home, set SAFETY_MODELS_ADMIN_PASSWORD to that home's admin password.
Needs /usr/bin/chromium and Playwright's Python package.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

CHROMIUM = Path("/usr/bin/chromium")
# A pause between visits, not timed: what the previous page still draws after it became
# interactive (the map's WebGL, in software here) is not charged to the next page.
SETTLE_MS = 1500
BARE_PAGE = 'import streamlit as st\n\nst.title("Bare")\n'
# The deck floor: the risk map's chart (same height, column, selection mode and no base map)
# with one polygon instead of a city's cells and no other element.
BARE_DECK_PAGE = """import pydeck as pdk
import streamlit as st

st.title("Deck")
polygon = [[-87.64, 41.87], [-87.62, 41.87], [-87.62, 41.89], [-87.64, 41.89]]
layer = pdk.Layer("PolygonLayer", id="cells", data=[{"polygon": polygon, "cell_id": 0}],
                  get_polygon="polygon", get_fill_color=[227, 26, 28, 190], pickable=True)
deck = pdk.Deck(layers=[layer], map_provider=None,
                initial_view_state=pdk.ViewState(latitude=41.88, longitude=-87.63, zoom=12))
left, right = st.columns([2.5, 1.1], gap="medium")
with left:
    st.pydeck_chart(deck, key="deck", on_select="rerun", selection_mode="single-object",
                    height=560)
"""
BARE_APP = ("import streamlit as st\n\n"
            "st.navigation([st.Page('bare.py', title='Bare', default=True),\n"
            "               st.Page('other.py', title='Other'),\n"
            "               st.Page('deck.py', title='Deck')], position='top').run()\n")
BARE_TITLES = {"": "Bare", "other": "Other", "deck": "Deck"}


def prepare_demo_home(home: Path) -> None:
    """Demo data and, per category, what the bootstrap job makes first: the starting forecast
    (evaluated) with its forecasts precomputed."""
    from conftest import use_home

    from safety_models.data import demo
    from safety_models.data.store import Store
    from safety_models.schema import CATEGORIES
    from safety_models.service import forecasts, workflows

    with use_home(home):
        store = Store()
        started = time.monotonic()
        demo.load_demo(store)
        print(f"demo data loaded in {time.monotonic() - started:.0f} s: "
              f"{store.incident_counts()}")
        for category in CATEGORIES:
            started = time.monotonic()
            model_id = workflows.train_starting_forecast(store, category)
            forecasts.model_ready(store, category, model_id)
            print(f"{category}: model {model_id} made, evaluated and its forecasts computed in "
                  f"{time.monotonic() - started:.0f} s")
        store.set_meta("first_start", "skipped: benchmark home")
        store.close()


def measure_round(context, url: str, titles: dict[str, str], timings: dict[str, list[float]],
                  signs_in: bool = True, map_path: str | None = "map") -> None:
    """One round, its seconds to interactive added to timings: the address of titles' first
    path in a new tab and session (signed in when signs_in), then each other path from the
    app's navigation, then the first again. Keys: "sign-in" (or "load"), then the paths."""
    from test_browser import MAP_CANVAS_SELECTOR, open_page, wait_idle

    first, *others = list(titles)
    entry = "sign-in" if signs_in else "load"
    page = context.new_page()
    page.set_default_timeout(180_000)
    try:
        started = time.monotonic()
        if signs_in:
            open_page(page, url, first, titles)
        else:
            page.goto(f"{url}/{first}")
            page.get_by_role("heading", name=titles[first], exact=True).wait_for()
            wait_idle(page)
        timings.setdefault(entry, []).append(time.monotonic() - started)
        for path in [*others, first]:
            page.wait_for_timeout(SETTLE_MS)   # the last page finishes drawing
            started = time.monotonic()
            open_page(page, url, path, titles, signed_in=True)
            if path == map_path:
                page.wait_for_selector(MAP_CANVAS_SELECTOR)
            timings.setdefault(path, []).append(time.monotonic() - started)
    finally:
        page.close()


def measure(sites: list[dict], repeat: int) -> list[dict[str, list[float]]]:
    """measure_round for each site (measure_round's arguments but the context and timings)
    in turn, `repeat` times, the first round cold: the floors and the app are timed in the
    same minutes, so a change in what else the machine runs moves both. One timings dict per
    site."""
    from playwright.sync_api import sync_playwright
    from test_browser import CHROMIUM_ARGS

    timings: list[dict[str, list[float]]] = [{} for _ in sites]
    with sync_playwright() as p:
        # One browser per site, its profile kept for every round: later rounds find the
        # scripts in its cache, as an operator's browser does on a second visit. Not one for
        # all: chromium keeps compiled WebGL programs per profile, for every address, so the
        # bare deck's would make the map's first draw warm.
        browsers = [p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
                    for _ in sites]
        try:
            contexts = [browser.new_context(viewport={"width": 1440, "height": 1000})
                        for browser in browsers]
            for _ in range(repeat):
                for site, context, site_timings in zip(sites, contexts, timings):
                    measure_round(context, timings=site_timings, **site)
        finally:
            for browser in browsers:
                browser.close()
    return timings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, help="an existing SAFETY_MODELS_HOME")
    parser.add_argument("--repeat", type=int, default=3,
                        help="visits per page (the first is cold, the rest warm)")
    args = parser.parse_args(argv)
    if not CHROMIUM.exists():
        print("needs /usr/bin/chromium", file=sys.stderr)
        return 2
    from test_browser import PAGES, start_server, stop_server

    repeat = max(2, args.repeat)
    with tempfile.TemporaryDirectory(prefix="bench-pages-") as tmp:
        tmp = Path(tmp)
        home = args.home.resolve() if args.home else tmp / "home"
        if args.home is None:
            prepare_demo_home(home)
        # The floors: a bare app (two one-line pages and a one-polygon deck), its own
        # server, measured the same way, each round just before the app's.
        bare = tmp / "bare"
        bare.mkdir()
        (bare / "bare.py").write_text(BARE_PAGE)
        (bare / "other.py").write_text(BARE_PAGE.replace("Bare", "Other"))
        (bare / "deck.py").write_text(BARE_DECK_PAGE)
        (bare / "app.py").write_text(BARE_APP)
        floor_process, floor_url = start_server(home, tmp / "bare.log", app=bare / "app.py")
        try:
            process, url = start_server(home, tmp / "streamlit.log")
            try:
                floor, timings = measure(
                    [{"url": floor_url, "titles": BARE_TITLES, "signs_in": False,
                      "map_path": "deck"},
                     {"url": url, "titles": dict(PAGES)}], repeat)
            finally:
                stop_server(process)
        finally:
            stop_server(floor_process)

    def cold_warm(values: list[float]) -> tuple[float, float]:
        return values[0], statistics.median(values[1:])

    load_floor, click_floor = cold_warm(floor["load"]), cold_warm(floor["other"])
    deck_floor = cold_warm(floor["deck"])
    print(f"\nseconds until each page is interactive in chromium ({home}; {repeat} rounds, "
          "warm = median of the later ones):")
    print(f"{'page':<14} {'cold':>7} {'warm':>7} {'cold/floor':>11} {'warm/floor':>11}")
    print(f"{'bare: load':<14} {load_floor[0]:7.2f} {load_floor[1]:7.2f} {'(floor)':>11} "
          f"{'(floor)':>11}")
    print(f"{'bare: click':<14} {click_floor[0]:7.2f} {click_floor[1]:7.2f} {'(floor)':>11} "
          f"{'(floor)':>11}")
    print(f"{'bare: deck':<14} {deck_floor[0]:7.2f} {deck_floor[1]:7.2f} "
          f"{deck_floor[0] / click_floor[0]:11.1f} {deck_floor[1] / click_floor[1]:11.1f}")
    for path, values in timings.items():
        cold, warm = cold_warm(values)
        base = load_floor if path == "sign-in" else click_floor
        name = path if path == "sign-in" else (PAGES[path].split()[0].lower() if path == ""
                                                else path)
        print(f"{name:<14} {cold:7.2f} {warm:7.2f} {cold / base[0]:11.1f} {warm / base[1]:11.1f}")
    map_cold, map_warm = cold_warm(timings["map"])
    print(f"risk map / bare deck: {map_cold / deck_floor[0]:.1f} cold, "
          f"{map_warm / deck_floor[1]:.1f} warm (the part of the map's time that is not what "
          "any deck.gl chart costs here: "
          f"{map_cold - deck_floor[0]:+.2f} s cold, {map_warm - deck_floor[1]:+.2f} s warm)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
