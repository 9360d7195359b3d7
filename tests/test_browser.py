"""The dashboard in a real browser: Debian's chromium driven by Playwright.

Starts `streamlit run app.py` on a free local port (its own home each time), and checks what
an operator sees:

* every page, each by its own address (deep links, /overview included), each as a fresh
  server's very first request, with only the app's navigation, never the list Streamlit
  makes of the pages/ folder;
* the first start of an empty home: every demo category has a risk map within its first
  minute (the starting forecasts of the background job);
* the street map under the cells from a style server, and the plain map when the style
  cannot be reached (offline: no tile is requested);
* looking back over past windows, stepping and playing, for the next window and a horizon;
* uploading a file, and a short retrain (a real background process) with its progress.

Screenshots are kept (folder printed; `screenshots/` in the repo, git-ignored). Servers and
the job processes they start are always stopped. Skips cleanly without chromium or Playwright.
Each address opened anew is a new session: it shows the sign-in form first (the server runs
with SAFETY_MODELS_ADMIN_PASSWORD set) and lands on the page the address named.
"""

from __future__ import annotations

import http.server
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest

from conftest import copy_home, synthetic_incidents

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[1]
APP = REPO / "app.py"
CHROMIUM = Path("/usr/bin/chromium")
SHOTS = REPO / "screenshots"
CHROMIUM_ARGS = ["--use-angle=swiftshader", "--enable-unsafe-swiftshader", "--no-sandbox",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
PAGES = {  # url path -> title shown on the page ("" is the default page, the Overview)
    "": "Overview", "map": "Risk map", "data": "Data",
    "models": "Models and training", "evaluation": "Evaluation",
    "method": "Method and limitations", "admin": "Accounts and audit",
}
# Every page's own address: the default page has one too (app.py's hidden alias).
ADDRESSES = {**PAGES, "overview": "Overview"}
# The first start's admin password (the server is started with it; an existing home's own
# admin password when benchmarks/bench_pages.py --home runs with it set).
ADMIN_PASSWORD = os.environ.get("SAFETY_MODELS_ADMIN_PASSWORD") or "browser-admin-password"
SERVER_START_TIMEOUT_S = 60
PAGE_TIMEOUT_MS = 60_000
# Streamlit's script run has finished: every widget drawn and answering.
IDLE_SELECTOR = '[data-testid="stApp"][data-test-script-state="notRunning"]'
MAP_CANVAS_SELECTOR = '[data-testid="stDeckGlJsonChart"] canvas'   # deck.gl draws here
# The first start: the goal is every demo category's map within 60 s of `streamlit run` on an
# idle 2-core machine (27-41 s measured alone; the test prints its figures). The test itself
# fails only past three times that, a bound no shared machine's noise reaches but the old
# design (waiting for pretraining and each network in turn: 218 s to the first map, 10-20
# minutes to the last) does. SAFETY_MODELS_FIRST_MAP_LIMIT_S=60 checks the goal itself.
FIRST_MAP_GOAL_S = 60.0
FIRST_MAP_LIMIT_S = float(os.environ.get("SAFETY_MODELS_FIRST_MAP_LIMIT_S", 3 * FIRST_MAP_GOAL_S))
NO_STREETS = {"SAFETY_MODELS_MAP_STYLE": "none"}   # nothing fetched from outside

if not CHROMIUM.exists():
    pytest.skip("needs Debian's chromium at /usr/bin/chromium", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_healthy(url: str, process: subprocess.Popen, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"streamlit exited with {process.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.read().strip() == b"ok":
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise TimeoutError(f"streamlit did not answer at {url} within {timeout_s} s")


def start_server(home: Path, log_path: Path, app: Path = APP,
                 env: dict | None = None) -> tuple[subprocess.Popen, str]:
    """`streamlit run app.py` (or another script, e.g. a benchmark's bare floor page) on a
    free port with SAFETY_MODELS_HOME=home and env's settings; (process, url). The
    repository's .streamlit/config.toml applies (the server runs in the repository)."""
    port = free_port()
    environ = {**os.environ, "SAFETY_MODELS_HOME": str(home), "PYTHONUNBUFFERED": "1",
               "SAFETY_MODELS_ADMIN_PASSWORD": ADMIN_PASSWORD, **(env or {})}
    environ.pop("SAFETY_MODELS_DB_URL", None)
    log = open(log_path, "wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(app),
         "--server.headless", "true", "--server.port", str(port),
         "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false",
         "--server.fileWatcherType", "none"],
        cwd=REPO, env=environ, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    process.home = Path(home)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, process, SERVER_START_TIMEOUT_S)
    except BaseException:
        stop_server(process)
        raise
    return process, url


def job_pids(home: Path) -> list[int]:
    """Pids of the jobs still running that a server started in this home (each in its own
    session: stopping the server does not stop them). Only a live `run-job ID` process of
    one of this home's active jobs counts, never a pid that another program reuses."""
    from safety_models.service.jobs import pid_alive

    databases = list(Path(home).glob("*.db")) if Path(home).exists() else []
    pids = []
    for database in databases:
        try:
            with sqlite3.connect(database) as conn:
                rows = conn.execute("SELECT job_id, pid FROM jobs WHERE pid IS NOT NULL AND "
                                    "status IN ('queued', 'running')").fetchall()
        except sqlite3.Error:
            continue
        pids += [pid for job_id, pid in rows if pid_alive(pid, job_id)]
    return pids


def stop_server(process: subprocess.Popen) -> None:
    """Terminate the server (and its session group), then the job processes it started."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
    for pid in job_pids(getattr(process, "home", Path("/nonexistent"))):
        os.kill(pid, signal.SIGTERM)                # the job ends itself as failed
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.2)
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    state = Path(f"/proc/{pid}/stat")
    return not state.exists() or state.read_text().rsplit(")", 1)[1].split()[0] not in "ZX"


@contextmanager
def running(home: Path, name: str, env: dict | None = None):
    """A server on home for a with-block; its log is kept beside the home."""
    process, url = start_server(home, home.parent / f"{name}.log", env=env)
    try:
        yield url
    finally:
        stop_server(process)


@pytest.fixture(scope="module")
def server(tiny_home_with_models, tmp_path_factory):
    home = tmp_path_factory.mktemp("browser") / "home"
    copy_home(tiny_home_with_models, home)
    with running(home, "streamlit", env=NO_STREETS) as url:
        yield url
    print(f"\nstreamlit log: {home.parent / 'streamlit.log'}")


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="module")
def browser_page(browser):
    page = browser.new_page(viewport={"width": 1440, "height": 1000})
    page.set_default_timeout(PAGE_TIMEOUT_MS)
    yield page
    page.close()


@pytest.fixture
def fresh_page(browser):
    """A new tab for one test."""
    page = browser.new_page(viewport={"width": 1440, "height": 1000})
    page.set_default_timeout(PAGE_TIMEOUT_MS)
    yield page
    page.close()


def wait_idle(page, timeout_ms: int = PAGE_TIMEOUT_MS) -> None:
    """Until the script run has finished (Streamlit's 'running' indicator is gone)."""
    page.wait_for_selector(IDLE_SELECTOR, timeout=timeout_ms, state="attached")


def choose(page, key: str, option: str, tries: int = 3) -> None:
    """Pick option in the selectbox with this key. A click that lands while the page is still
    being redrawn may leave the list closed (seen once on a busy machine): then it is opened
    again, up to tries times, before the option's own wait fails the test."""
    box = page.locator(f".st-key-{key}")
    wanted = page.get_by_role("option", name=option)
    for attempt in range(tries):
        wait_idle(page)
        box.click()
        if attempt == tries - 1:
            break                      # the last try: the click's own wait decides
        try:
            wanted.wait_for(timeout=10_000)
            break
        except sync_api.TimeoutError:
            page.keyboard.press("Escape")
    wanted.click()


def sign_in(page, name: str = "admin", password: str = ADMIN_PASSWORD) -> None:
    """Fill in the sign-in form (the only thing a new session shows) and send it."""
    page.locator(".st-key-login_name input").fill(name)
    page.locator(".st-key-login_password input").fill(password)
    page.get_by_role("button", name="Sign in").click()


def open_page(page, url: str, path: str, titles: dict | None = None,
              signed_in: bool = False) -> float:
    """Go to a page's address (a new session), sign in, wait until the page's title shows
    and the run is done; seconds it took, signing in included. signed_in: the address is
    opened within the session (a click on the app's navigation), no sign-in."""
    started = time.monotonic()
    if signed_in:
        page.locator('[data-testid="stTopNavLink"]').get_by_text(
            (titles or ADDRESSES)[path], exact=True).click()
    else:
        page.goto(f"{url}/{path}")
        page.get_by_role("heading", name="Safety risk maps", exact=True).wait_for()
        sign_in(page)
    page.get_by_role("heading", name=(titles or ADDRESSES)[path], exact=True).first.wait_for()
    wait_idle(page)
    return time.monotonic() - started


def assert_no_error(page, allowed: str | None = None) -> None:
    """No traceback and no error box (except ones containing `allowed`)."""
    exceptions = page.locator('[data-testid="stException"]')
    assert exceptions.count() == 0, exceptions.first.inner_text()
    errors = [e for e in page.locator('[data-testid="stAlertContentError"]').all_inner_texts()
              if allowed is None or allowed not in e]
    assert not errors, errors


def screenshot(page, name: str) -> None:
    """The whole page (Streamlit scrolls inside its own container, so the window is made as
    tall as the content for the picture, then set back)."""
    SHOTS.mkdir(exist_ok=True)
    size = page.viewport_size
    height = page.evaluate(
        "() => Math.max(...[...document.querySelectorAll('[data-testid=\"stMain\"], "
        "[data-testid=\"stMainBlockContainer\"]')].map(e => e.scrollHeight), 800)")
    page.set_viewport_size({"width": size["width"], "height": min(int(height) + 120, 6000)})
    page.wait_for_timeout(500)
    page.screenshot(path=str(SHOTS / f"{name}.png"))
    page.set_viewport_size(size)


def canvas_variance(page, selector: str) -> float:
    """Pixel variance of a screenshot of the element (0 for a blank canvas)."""
    import io

    from PIL import Image, ImageStat

    png = page.locator(selector).first.screenshot()
    image = Image.open(io.BytesIO(png)).convert("L")
    return ImageStat.Stat(image).var[0]


def map_drawn(page, timeout_ms: int = PAGE_TIMEOUT_MS) -> None:
    """deck.gl draws into a <canvas>: wait for it, give WebGL a moment, check pixels."""
    page.wait_for_selector(MAP_CANVAS_SELECTOR, timeout=timeout_ms)
    page.wait_for_timeout(1500)
    variance = canvas_variance(page, '[data-testid="stDeckGlJsonChart"]')
    assert variance > 20, f"the map looks blank (pixel variance {variance:.1f})"


def pick(page, key: str, label: str) -> None:
    """Choose an option of a segmented control (found by its key) and wait for the rerun."""
    page.locator(f".st-key-{key}").get_by_text(label, exact=True).click()
    wait_idle(page)


def folder_list_shown(page) -> bool:
    """Whether Streamlit's list of the pages/ folder's scripts is on the page (its names are
    the file names: 'risk map page', 'ui', ...)."""
    nav = page.locator('[data-testid="stSidebarNav"]')
    return nav.count() > 0 and "page" in nav.first.inner_text().lower()


def test_sign_in_comes_before_any_page(server, browser_page):
    page = browser_page
    page.goto(f"{server}/models")
    page.get_by_role("heading", name="Safety risk maps", exact=True).wait_for()
    wait_idle(page)
    assert page.get_by_role("heading", name="Models and training").count() == 0
    assert page.locator('[data-testid="stSidebarNav"]').count() == 0, "no navigation yet"
    assert page.locator('[data-testid="stTopNavLink"]').count() == 0, "no navigation yet"
    sign_in(page, password="not the password")
    page.get_by_text("Wrong account name or password", exact=False).wait_for()
    screenshot(page, "sign-in")
    sign_in(page)
    # The deep link's page, once signed in; then signing out shows the form again.
    page.get_by_role("heading", name="Models and training", exact=True).first.wait_for()
    wait_idle(page)
    page.get_by_role("button", name="Sign out").click()
    page.get_by_text("You are signed out.").wait_for()


def test_every_page_in_chromium(server, browser_page, tmp_path):
    page = browser_page
    failed_requests: list[str] = []

    def request_failed(request) -> None:
        # A request of the app's own that the page itself cancelled (net::ERR_ABORTED: a
        # script chunk still loading when the next page was opened, as happens on a busy
        # machine) was not refused by anyone; any other failure, and any request elsewhere,
        # is one.
        aborted = "ERR_ABORTED" in (request.failure or "")
        if not (aborted and request.url.startswith(server)):
            failed_requests.append(f"{request.url} ({request.failure})")

    page.on("requestfailed", request_failed)
    page.on("response", lambda response: failed_requests.append(response.url)
            if response.status >= 400 else None)
    timings = {}
    for path in PAGES:
        timings[path] = open_page(page, server, path)
        if path == "map":
            map_drawn(page)
            # Hovering a cell shows its values; clicking it shows its history.
            box = page.locator('[data-testid="stDeckGlJsonChart"]').first.bounding_box()
            centre = (box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
            page.mouse.move(*centre)
            page.get_by_text("Chance of at least one incident:", exact=False).first.wait_for()
            canvas = page.locator('[data-testid="stDeckGlJsonChart"] canvas').first
            canvas.click(position={"x": box["width"] / 2, "y": box["height"] / 2})
            page.locator(".st-key-map_history .js-plotly-plot").wait_for()
            wait_idle(page)
        if path == "evaluation":
            # Lazy tabs: the charts run when their tab is opened.
            page.get_by_role("tab", name="Curves").click()
            wait_idle(page)
            page.wait_for_selector(".js-plotly-plot")
        if path == "admin":
            page.get_by_role("tab", name="Audit trail").click()
            wait_idle(page)
            # The table draws on a canvas; its cells are in the DOM for screen readers.
            page.locator('[data-testid="stDataFrame"]').get_by_text("login", exact=True).first \
                .wait_for(state="attached")
            assert_no_error(page)
            screenshot(page, "admin-audit")
            page.get_by_role("tab", name="Accounts").click()
            wait_idle(page)
        if path == "data":
            # Lazy tabs: each one runs when opened.
            for tab, name in (("Uploads", "data-uploads"), ("Incidents over time", "data-charts")):
                page.get_by_role("tab", name=tab).click()
                wait_idle(page)
                assert_no_error(page)
                if name == "data-charts":
                    page.wait_for_selector(".js-plotly-plot")
                screenshot(page, name)
            page.get_by_role("tab", name="Load files").click()
            wait_idle(page)
        assert_no_error(page)
        screenshot(page, path or "overview")
    print(f"\nscreenshots: {SHOTS}")
    print("seconds to interactive: " + ", ".join(f"{k} {v:.1f}" for k, v in timings.items()))
    # Nothing failed to load, and nothing was fetched from outside (no basemap tiles, no
    # fonts, no telemetry). Streamlit itself first probes its endpoints under the page's
    # path (/map/_stcore/health, answered 404) before the root: not ours, not a failure.
    failed = [u for u in failed_requests if "/_stcore/" not in u or not u.startswith(server)]
    assert not failed, failed


def test_upload_a_file_on_the_data_page(server, browser_page, tmp_path):
    page = browser_page
    extra = synthetic_incidents("crime", 40, seed=21)
    extra["ID"] = [f"browser{i}" for i in range(len(extra))]
    path = tmp_path / "browser_upload.csv"
    extra.to_csv(path, index=False)
    open_page(page, server, "data")
    page.locator(".st-key-upload_files input[type=file]").set_input_files(str(path))
    page.locator(".st-key-upload_load button").wait_for()
    wait_idle(page)
    screenshot(page, "data-mapping")
    page.locator(".st-key-upload_load button").click()
    page.get_by_text("40 incidents added", exact=False).first.wait_for()
    wait_idle(page)
    assert_no_error(page)
    screenshot(page, "data-loaded")


def test_retrain_shows_live_progress(server, browser_page):
    page = browser_page
    open_page(page, server, "models")
    # The smallest real job: from scratch (no pretraining first), one epoch.
    choose(page, "train_base", "From scratch")
    epochs = page.locator(".st-key-train_epochs input")
    epochs.fill("1")
    epochs.press("Tab")
    page.locator(".st-key-train_start button").click()
    # The job runs as its own process; the page follows it from the jobs table.
    page.locator('[data-testid="stProgress"]').first.wait_for(timeout=30_000)
    # The process starts and reports its epochs (or finishes first).
    page.wait_for_function(
        """() => {
            const bar = document.querySelector('[data-testid="stProgress"]');
            return !bar || bar.innerText.includes('epoch');
        }""", timeout=90_000)
    screenshot(page, "models-training")
    try:
        page.locator(".st-key-train_cancel button").click(timeout=5_000)
    except sync_api.TimeoutError:
        pass   # the job finished first; the form is back already
    # Finished or cancelled, the form comes back by itself, saying how the job ended.
    page.locator(".st-key-train_start button").wait_for(timeout=90_000)
    wait_idle(page)
    outcome = page.get_by_text("Training – Crime (job", exact=False).first
    outcome.wait_for()
    # A job that fails says why on the page (a failure of the training library on this
    # tiny city is its own bug, not the page's): no traceback, no other error.
    assert_no_error(page, allowed="Training – Crime (job")
    screenshot(page, "models-after")


# ---------------------------------------------------------------------------------------------
# Navigation: only the app's, every page by its own address, from a fresh server's first request


def first_request(page, url: str, path: str) -> None:
    """Open path as a fresh server's very first request and sign in, watching the page
    while it loads for Streamlit's pages/-folder list and its "Page not found" dialog. That
    first run is answered in Streamlit's folder mode before app.py runs; app.py hides the
    dialog at once and reloads the address (pages/_navigation.py), so on a busy machine the
    dialog may show for a moment, never for long."""
    seen_folder_list, not_found_s = False, 0.0
    page.goto(f"{url}/{path}", wait_until="commit")
    form = page.get_by_role("heading", name="Safety risk maps", exact=True)
    deadline = time.monotonic() + PAGE_TIMEOUT_MS / 1000
    while form.count() == 0 and time.monotonic() < deadline:
        seen_folder_list |= folder_list_shown(page)
        if page.get_by_text("Page not found").is_visible():
            not_found_s += 0.05
        page.wait_for_timeout(50)
    form.wait_for()
    sign_in(page)
    page.get_by_role("heading", name=ADDRESSES[path], exact=True).first.wait_for()
    wait_idle(page)
    assert page.url.rstrip("/").endswith(f"/{path}".rstrip("/")), page.url
    assert not page.get_by_text("Page not found").is_visible(), path
    assert not_found_s <= 0.5, f"{path}: 'Page not found' shown for about {not_found_s:.1f} s"
    assert not seen_folder_list and not folder_list_shown(page), \
        f"{path}: the pages/ folder's list was shown"
    assert_no_error(page)


@pytest.mark.parametrize("path", [p for p in ADDRESSES if p != "map"])
def test_each_address_works_as_a_fresh_servers_first_request(tiny_home_with_models, tmp_path,
                                                             fresh_page, path):
    home = tmp_path / "home"
    copy_home(tiny_home_with_models, home)
    with running(home, "streamlit-first-request", env=NO_STREETS) as url:
        first_request(fresh_page, url, path)
        screenshot(fresh_page, f"first-request-{path or 'root'}")


def test_deep_links_work_from_a_fresh_servers_first_request(tiny_home_with_models,
                                                             tmp_path, fresh_page):
    page = fresh_page
    home = tmp_path / "home"
    copy_home(tiny_home_with_models, home)
    with running(home, "streamlit-deep-links", env=NO_STREETS) as url:
        # The very first request of this server is a deep link (the other addresses as the
        # first request: the test above).
        first_request(page, url, "map")
        screenshot(page, "deep-link-first-request")
        # Every page by its own address, the default page's alias included; only the app's
        # navigation (at the top), never the folder's list.
        for path, title in ADDRESSES.items():
            open_page(page, url, path)
            assert page.url.rstrip("/").endswith(f"/{path}".rstrip("/"))
            assert not page.get_by_text("Page not found").is_visible(), path
            assert not folder_list_shown(page), path
            links = page.locator('[data-testid="stTopNavLink"]').all_inner_texts()
            # each link reads "<icon name>\n\n<title>"
            assert [t.split("\n")[-1].strip() for t in links] == list(PAGES.values()), links
            assert_no_error(page)


# ---------------------------------------------------------------------------------------------
# The first start: a risk map for every demo category within the first minute


def test_first_start_shows_every_categorys_map_within_a_minute(tmp_path, fresh_page):
    page = fresh_page
    home = tmp_path / "empty-home"
    started = time.monotonic()
    process, url = start_server(home, tmp_path / "streamlit-first-start.log", env=NO_STREETS)
    try:
        open_page(page, url, "")
        assert_no_error(page)
        screenshot(page, "first-start-overview")
        open_page(page, url, "map", signed_in=True)
        shown = {}
        for category, label in (("crime", "Crime"), ("traffic", "Traffic accidents"),
                                ("health", "Public health")):
            pick(page, "map_category", label)
            # The page fills in by itself as soon as the category's first model is ready.
            left_ms = max(1_000, int((started + FIRST_MAP_LIMIT_S + 60 - time.monotonic()) * 1000))
            map_drawn(page, timeout_ms=left_ms)
            shown[category] = time.monotonic() - started
            forecaster = page.get_by_text("Forecast by", exact=False).first.inner_text()
            assert "starting forecast" in forecaster or "fine-tuned network" in forecaster
            assert "in use since" in forecaster
            assert_no_error(page)
            screenshot(page, f"first-start-map-{category}")
        print("\nfirst start, seconds from `streamlit run` to each map (goal "
              f"{FIRST_MAP_GOAL_S:.0f} s): " + ", ".join(f"{c} {s:.0f}" for c, s in shown.items()))
        late = {c: round(s) for c, s in shown.items() if s > FIRST_MAP_LIMIT_S}
        assert not late, f"maps later than {FIRST_MAP_LIMIT_S:.0f} s after the start: {late}"
    finally:
        stop_server(process)


# ---------------------------------------------------------------------------------------------
# Streets under the risk, and the plain map when they cannot be reached


STYLE_JSON = {"version": 8, "name": "test streets", "sources": {},
              "layers": [{"id": "background", "type": "background",
                          "paint": {"background-color": "#dfe6ee"}}]}


@pytest.fixture
def style_server():
    """A local 'city tile server' that serves one MapLibre style (a plain background)."""
    requests: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - the stdlib's name
            requests.append(self.path)
            body = json.dumps(STYLE_JSON).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Access-Control-Allow-Origin", "*")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/style.json", requests
    finally:
        httpd.shutdown()


def test_streets_under_the_cells_from_the_citys_style_server(tiny_home_with_models, tmp_path,
                                                             fresh_page, style_server):
    page = fresh_page
    style_url, served = style_server
    home = tmp_path / "home"
    copy_home(tiny_home_with_models, home)
    fetched: list[str] = []
    page.on("request", lambda request: fetched.append(request.url))
    with running(home, "streamlit-streets", env={"SAFETY_MODELS_MAP_STYLE": style_url}) as url:
        open_page(page, url, "map")
        map_drawn(page)
        assert style_url in fetched, "the browser loads the street map's style"
        assert not page.get_by_text("Street map not shown").count()
        assert_no_error(page)
        screenshot(page, "map-streets")
    assert "/style.json" in served


def test_offline_the_map_is_drawn_without_streets(tiny_home_with_models, tmp_path, fresh_page):
    page = fresh_page
    home = tmp_path / "home"
    copy_home(tiny_home_with_models, home)
    unreachable = f"http://127.0.0.1:{free_port()}/style.json"     # nothing listens there
    fetched: list[str] = []
    page.on("request", lambda request: fetched.append(request.url))
    with running(home, "streamlit-offline", env={"SAFETY_MODELS_MAP_STYLE": unreachable}) as url:
        started = time.monotonic()
        open_page(page, url, "map")
        map_drawn(page)
        assert time.monotonic() - started < 45, "an unreachable street map must not hold the page"
        page.get_by_text("Street map not shown", exact=False).first.wait_for()
        assert_no_error(page)
        screenshot(page, "map-offline")
    outside = [u for u in fetched if not u.startswith(url)]
    assert not outside, f"nothing may be fetched from elsewhere offline: {outside}"


# ---------------------------------------------------------------------------------------------
# Looking back: the forecast beside what happened, step by step and played


def test_look_back_steps_and_plays_through_past_windows(server, browser_page):
    page = browser_page
    open_page(page, server, "map")
    pick(page, "map_when", "Look back")
    map_drawn(page)
    summary = page.get_by_text("happened", exact=False).first
    summary.wait_for()
    slider = page.locator(".st-key-map_back")
    latest = slider.inner_text()
    screenshot(page, "map-look-back")
    changed = """(before) => {
        const el = document.querySelector('.st-key-map_back');
        return el && el.innerText !== before;
    }"""
    # Play starts from the first window and moves on by itself.
    page.locator(".st-key-map_play button").click()
    page.wait_for_function(changed, arg=latest, timeout=30_000)
    first = slider.inner_text()
    page.wait_for_function(changed, arg=first, timeout=30_000)
    page.locator(".st-key-map_play").get_by_text("Pause", exact=True).wait_for()
    map_drawn(page)
    screenshot(page, "map-look-back-playing")
    page.locator(".st-key-map_play button").click()
    page.locator(".st-key-map_play").get_by_text("Play", exact=True).wait_for()
    wait_idle(page)
    assert_no_error(page)
    # The horizon shown (the tiny home's crime has a model for the next 7 days): its
    # forecasts beside the incidents of each whole 7-day period.
    pick(page, "map_horizon", "Next 7 days")
    page.get_by_text("7-day period from", exact=False).first.wait_for()
    map_drawn(page)
    assert page.get_by_text("happened", exact=False).count() > 0
    screenshot(page, "map-look-back-7-days")
    before = slider.inner_text()
    page.locator(".st-key-map_play button").click()
    page.wait_for_function(changed, arg=before, timeout=30_000)
    map_drawn(page)
    page.locator(".st-key-map_play button").click()
    page.locator(".st-key-map_play").get_by_text("Play", exact=True).wait_for()
    wait_idle(page)
    assert_no_error(page)
    pick(page, "map_horizon", "Next day")
