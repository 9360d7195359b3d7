"""How long each dashboard page takes to become interactive in chromium, on the demo data,
beside the floor: a bare one-line Streamlit page served and measured the same way.

    python benchmarks/bench_pages.py                  # a temporary home: demo data + first models
    python benchmarks/bench_pages.py --home data      # an existing home (e.g. after first start)
    python benchmarks/bench_pages.py --repeat 3

"Interactive" = the page's title is shown and Streamlit's script run has finished (every
widget drawn and answering); for the risk map also the map's <canvas> is on the page. Each
page is measured cold (first visit after the server started: caches empty) and warm (later
visits, cached); the table gives each page's ratio to the bare page's time in the same run.
Without a --home, the demo data is loaded into a temporary home and each category gets what
the first start gives it within its first minute: the starting forecast, evaluated, with its
forecasts precomputed (as the bootstrap job does; about a minute on a laptop CPU, not
counted). Needs /usr/bin/chromium and Playwright's Python package.
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
BARE_PAGE = 'import streamlit as st\n\nst.title("Bare")\n'


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


def measure(url: str, paths: dict[str, str], repeat: int,
            map_path: str | None = "map") -> dict[str, list[float]]:
    """Seconds to interactive per path, `repeat` visits each (the first cold)."""
    from playwright.sync_api import sync_playwright
    from test_browser import CHROMIUM_ARGS, open_page

    timings: dict[str, list[float]] = {path: [] for path in paths}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            for _ in range(repeat):
                page = browser.new_page(viewport={"width": 1440, "height": 1000})
                page.set_default_timeout(180_000)
                for path in paths:
                    started = time.monotonic()
                    open_page(page, url, path, paths)
                    if path == map_path:
                        page.wait_for_selector('[data-testid="stDeckGlJsonChart"] canvas')
                    timings[path].append(time.monotonic() - started)
                page.close()
        finally:
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
        # The floor: a bare page, one streamlit server of its own, measured the same way.
        bare = tmp / "bare" / "bare.py"
        bare.parent.mkdir()
        bare.write_text(BARE_PAGE)
        process, url = start_server(home, tmp / "bare.log", script=bare)
        try:
            floor = measure(url, {"": "Bare"}, repeat, map_path=None)[""]
        finally:
            stop_server(process)
        process, url = start_server(home, tmp / "streamlit.log")
        try:
            timings = measure(url, PAGES, repeat)
        finally:
            stop_server(process)
    cold_floor = floor[0]
    warm_floor = statistics.median(floor[1:])
    print(f"\nseconds until each page is interactive in chromium ({home}; "
          f"{repeat} visits, warm = median of the later ones):")
    print(f"{'page':<12} {'cold':>7} {'warm':>7} {'cold/floor':>11} {'warm/floor':>11}")
    print(f"{'bare (floor)':<12} {cold_floor:7.2f} {warm_floor:7.2f} {1:11.1f} {1:11.1f}")
    for path, values in timings.items():
        warm = statistics.median(values[1:])
        print(f"{PAGES[path].split()[0].lower() if path == '' else path:<12} {values[0]:7.2f} "
              f"{warm:7.2f} {values[0] / cold_floor:11.1f} {warm / warm_floor:11.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
