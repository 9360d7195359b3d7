"""How long each dashboard page takes to become interactive in chromium, on the demo data.

    python benchmarks/bench_pages.py                  # a temporary home: demo data + tiny models
    python benchmarks/bench_pages.py --home data      # an existing home (e.g. after first start)
    python benchmarks/bench_pages.py --repeat 3

"Interactive" = the page's title is shown and Streamlit's script run has finished (every
widget drawn and answering); for the risk map also the map's <canvas> is on the page. Each
page is measured cold (first visit: predictions computed, caches empty) and warm (second
visit, cached). Without a --home, the demo data is loaded into a temporary home and a
short model (ten steps) is trained from scratch per category first (a few minutes on a laptop CPU,
not counted). Needs /usr/bin/chromium and Playwright's Python package.

Each visit opens the page's address in a new session, so it signs in first (included in the
time, as for a person following a link). With --home, set SAFETY_MODELS_ADMIN_PASSWORD to
that home's admin password.
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


def prepare_demo_home(home: Path) -> None:
    """Demo data and a one-epoch model per category, trained from scratch in this process."""
    from conftest import use_home

    from safety_models.data import demo
    from safety_models.evaluation import backtest as evaluation
    from safety_models.service import workflows
    from safety_models.schema import CATEGORIES
    from safety_models.data.store import Store
    from safety_models.modeling.training import TrainConfig

    with use_home(home):
        store = Store()
        started = time.monotonic()
        demo.load_demo(store)
        print(f"demo data loaded in {time.monotonic() - started:.0f} s: "
              f"{store.incident_counts()}")
        for category in CATEGORIES:
            started = time.monotonic()
            # Page timings do not depend on how well the model is trained: a few steps.
            model_id = workflows.train_category(
                store, TrainConfig(category=category, base="none", freeze_up_to="none",
                                   epochs=1, steps_per_epoch=10, batch_size=8))
            evaluation.evaluate_category(store, category, model_id)
            print(f"{category}: model {model_id} trained and evaluated in "
                  f"{time.monotonic() - started:.0f} s")
        store.set_meta("first_start", "skipped: benchmark home")
        store.close()


def measure(url: str, repeat: int) -> dict[str, list[float]]:
    from playwright.sync_api import sync_playwright
    from test_browser import CHROMIUM_ARGS, MAP_CANVAS_SELECTOR, PAGES, open_page

    timings: dict[str, list[float]] = {path: [] for path in PAGES}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            for _ in range(repeat):
                page = browser.new_page(viewport={"width": 1440, "height": 1000})
                page.set_default_timeout(180_000)
                for path in PAGES:
                    started = time.monotonic()
                    open_page(page, url, path)
                    if path == "map":
                        page.wait_for_selector(MAP_CANVAS_SELECTOR)
                    timings[path].append(time.monotonic() - started)
                page.close()
        finally:
            browser.close()
    return timings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, help="an existing SAFETY_MODELS_HOME")
    parser.add_argument("--repeat", type=int, default=2,
                        help="visits per page (the first is cold, the rest warm)")
    args = parser.parse_args(argv)
    if not CHROMIUM.exists():
        print("needs /usr/bin/chromium", file=sys.stderr)
        return 2
    from test_browser import start_server, stop_server
    with tempfile.TemporaryDirectory(prefix="bench-pages-") as tmp:
        home = args.home.resolve() if args.home else Path(tmp) / "home"
        if args.home is None:
            prepare_demo_home(home)
        process, url = start_server(home, Path(tmp) / "streamlit.log")
        try:
            timings = measure(url, max(1, args.repeat))
        finally:
            stop_server(process)
    print(f"\nseconds until each page is interactive in chromium ({home}):")
    print(f"{'page':<12} {'cold':>7} {'warm':>7}")
    for path, values in timings.items():
        warm = statistics.median(values[1:]) if len(values) > 1 else float("nan")
        print(f"{path or 'overview':<12} {values[0]:7.2f} {warm:7.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
