"""Twenty dashboard sessions at once, while a retrain and an upload run: page times and
whether anything was lost.

    python benchmarks/bench_load.py                          # demo data + short models, 20 sessions
    python benchmarks/bench_load.py --sessions 3 --rounds 1  # a quick check that it works
    python benchmarks/bench_load.py --home data --cores 2    # a copy of an existing home, on 2 cores
    python benchmarks/bench_load.py --client browser         # 20 chromium contexts instead

The goal (issue 12): with 20 sessions at once, every page within 3 s at the 95th percentile
on 2 cores, and nothing is lost while a retrain and an upload run.

Two kinds of client:
- `websocket` (the default): each session speaks the app's own websocket, as the browser's
  frontend does (benchmarks/streamlit_ws.py): it opens its first page by its address, signs
  in as `admin` through the sign-in form (timed as "sign-in"), then opens every page in turn
  as a click in the navigation does (a rerun naming the page's script hash). A visit is timed
  from the request to the server's "script finished", and fails when the page's title did
  not come back or an exception or error box did. This is the server's own time per page,
  without any browser drawing: on a 2-core machine 20 chromium renderers would take the
  cores from the server.
- `browser`: `--sessions` chromium contexts, each visit a new session opened by its address
  and timed until interactive as in bench_pages.py (title shown, script run finished, on the
  map also its <canvas>), signing in on the way. On 2 cores the renderers' own work is most
  of every figure (the floor shows how much).

What it does:
1. The floor: a bare one-line Streamlit page on a second server, visited by the same number
   of sessions the same number of times with the same client, timed the same way.
2. The dashboard (`streamlit run app.py`) on a home: without --home, demo data and each
   category's starting forecast (bench_pages.prepare_demo_home, about a minute, not
   counted); with --home, a copy of it (the run adds an upload and a model, and should not
   change yours).
3. The sessions, all at once, session i starting at page i (the pages are mixed from the
   first second), each opening every page `--rounds` times, `--think-s` apart.
4. While the sessions run: a retrain (`python -m safety_models train --category traffic
   --base none --epochs 1`, a job recorded like the dashboard's) and an upload (`ingest` of
   a small CSV of new crime incidents made from the home's own, so they are plausible).
5. Afterwards: incidents = before + accepted, the job succeeded and its model is listed,
   the uploads list has the file, and `python -m safety_models check` passes.

Prints per page n, median, p95 and max seconds, and p95 against the floor's p95, with the load
average at the start and the end; then PASS or FAIL against the goal. Always exits 0 (a
benchmark, not a test); 2 without chromium in browser mode.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench_pages import CHROMIUM, REPO, prepare_demo_home   # also puts REPO and tests/ on sys.path

GOAL_P95_S = 3.0
# page -> its address. The Overview is the default page, served at the root (and at
# /overview, the same page), as an operator's bookmark usually opens it.
LOAD_PAGES = {"overview": "", "map": "map", "data": "data", "models": "models",
              "evaluation": "evaluation", "method": "method"}
FLOOR_TITLE = "Floor"
FLOOR_APP = f'import streamlit as st\nst.title("{FLOOR_TITLE}")\n'   # the bare page
ADMIN_NAME = "admin"
ADMIN_PASSWORD_ENV = "SAFETY_MODELS_ADMIN_PASSWORD"
DEFAULT_ADMIN_PASSWORD = "bench-load-admin-password"
LOGIN_NAME_SELECTOR = ".st-key-login_name input"
LOGIN_PASSWORD_SELECTOR = ".st-key-login_password input"
UPLOAD_CATEGORY = "crime"
RETRAIN_CATEGORY = "traffic"
UPLOAD_ROWS = 200
PROGRESS_EVERY_S = 60
JOB_WAIT_S = 1800      # a retrain on a busy 2-core machine can take many minutes


@dataclass(frozen=True)
class Visit:
    """One page opened by one session: seconds until interactive (until it gave up, for a
    failed visit), whether it signed in on the way, and what went wrong (None when nothing)."""
    page: str
    seconds: float
    signed_in: bool
    error: str | None


class VisitFailed(Exception):
    """A visit that did not become interactive; the message says at which step."""


# ------------------------------------------------------------------------------ the browser

async def sign_in(page, ready) -> bool:
    """Sign in when the sign-in form comes before the page; skipped (False) when `ready`
    (the page's own title) shows first, as on a dashboard without accounts."""
    name = page.locator(LOGIN_NAME_SELECTOR)
    await name.or_(ready).first.wait_for()
    if not await name.is_visible():
        return False
    await name.fill(ADMIN_NAME)
    await page.locator(LOGIN_PASSWORD_SELECTOR).fill(os.environ[ADMIN_PASSWORD_ENV])
    await page.get_by_role("button", name="Sign in").click()
    return True


async def open_until_interactive(page, url: str, path: str, title: str) -> tuple[float, bool]:
    """The async twin of test_browser.open_page (+ the map's canvas, as bench_pages waits
    for): (seconds until interactive, signed in on the way)."""
    from test_browser import IDLE_SELECTOR, MAP_CANVAS_SELECTOR

    from playwright.async_api import Error as PlaywrightError

    started = time.monotonic()
    step = "loading the address"
    try:
        await page.goto(f"{url}/{path}")
        step = "the sign-in form or the title"
        heading = page.get_by_role("heading", name=title, exact=True).first
        signed_in = await sign_in(page, heading)
        step = "the title"
        await heading.wait_for()
        step = "the end of the script run"
        await page.wait_for_selector(IDLE_SELECTOR, state="attached")
        if path == "map":
            step = "the map's canvas"
            await page.wait_for_selector(MAP_CANVAS_SELECTOR)
    except PlaywrightError as err:
        raise VisitFailed(f"waiting for {step}: {str(err).splitlines()[0][:100]}") from err
    return time.monotonic() - started, signed_in


async def shown_error(page) -> str | None:
    """The first traceback or error box on the page, None when there is none."""
    for selector in ('[data-testid="stException"]', '[data-testid="stAlertContentError"]'):
        boxes = page.locator(selector)
        if await boxes.count():
            return (await boxes.first.inner_text()).strip().splitlines()[0][:120]
    return None


async def run_session(browser, url: str, pages: list[tuple[str, str, str]],
                      visits_per_page: int, first: int, timeout_s: float,
                      visits: list[Visit]) -> None:
    """One browser context opening `pages` [(name, address, title)] in turn, starting at
    index `first`, until each was opened `visits_per_page` times."""
    from playwright.async_api import Error as PlaywrightError

    context = await browser.new_context(viewport={"width": 1440, "height": 1000})
    context.set_default_timeout(timeout_s * 1000)
    page = await context.new_page()
    try:
        for i in range(visits_per_page * len(pages)):
            name, path, title = pages[(first + i) % len(pages)]
            started = time.monotonic()
            try:
                seconds, signed_in = await open_until_interactive(page, url, path, title)
                visits.append(Visit(name, seconds, signed_in, await shown_error(page)))
            except (VisitFailed, PlaywrightError) as err:
                # A timed-out or broken visit counts at the time it took to give up; the
                # next one starts on a fresh tab.
                visits.append(Visit(name, time.monotonic() - started, False,
                                    str(err).splitlines()[0][:160]))
                with contextlib.suppress(PlaywrightError):
                    await page.close()
                page = await context.new_page()
    finally:
        await context.close()


async def warm_up(browser, url: str, title: str, timeout_s: float) -> None:
    """One untimed visit to the root: a server's very first session runs before app.py has
    declared its pages, so an address like /map would be 'not found' then."""
    context = await browser.new_context()
    context.set_default_timeout(timeout_s * 1000)
    try:
        await open_until_interactive(await context.new_page(), url, "", title)
    finally:
        await context.close()


async def report_progress(visits: list[Visit], total: int, started: float) -> None:
    """A line a minute on stderr while the sessions run (a full run takes many minutes)."""
    while True:
        await asyncio.sleep(PROGRESS_EVERY_S)
        print(f"  {len(visits)}/{total} visits after {time.monotonic() - started:.0f} s; "
              f"{machine_line()}", file=sys.stderr, flush=True)


async def measure_sessions(url: str, pages: list[tuple[str, str, str]], sessions: int,
                           visits_per_page: int, timeout_s: float,
                           while_running=None) -> tuple[list[Visit], float, object]:
    """Run `sessions` at once in one chromium; `while_running` (a coroutine function) is
    started with them and awaited after them. (visits, seconds the sessions took, its result)."""
    from playwright.async_api import async_playwright
    from test_browser import CHROMIUM_ARGS

    visits: list[Visit] = []
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            await warm_up(browser, url, pages[0][2], timeout_s)
            started = time.monotonic()
            side = asyncio.create_task(while_running()) if while_running else None
            ticker = asyncio.create_task(
                report_progress(visits, sessions * visits_per_page * len(pages), started))
            await asyncio.gather(*(run_session(browser, url, pages, visits_per_page, i,
                                               timeout_s, visits) for i in range(sessions)))
            elapsed = time.monotonic() - started
            ticker.cancel()
            result = await side if side else None
        finally:
            await browser.close()
    return visits, elapsed, result


# ------------------------------------------------------------------------------ the websocket

async def ws_visit(session, path: str, title: str) -> Visit:
    """One page opened in a websocket session (see streamlit_ws): request -> script finished."""
    run = await session.open_page(path)
    error = None
    if run.errors:
        error = run.errors[0]
    elif run.page_not_found:
        error = "page not found"
    elif title not in run.headings:
        error = f"no title {title!r} came back (headings {run.headings[:3]})"
    return Visit(path or "overview", run.seconds, False, error)


async def ws_sign_in(session, first_path: str) -> Visit:
    """Open the first page by its address (a deep link) and sign in through the form, as a
    person following a link does: timed from the first request to the page's run's end."""
    started = time.monotonic()
    run = await session.open_page(first_path)
    if "login_name" in run.widgets:
        run = await session.submit_form(
            {"login_name": ADMIN_NAME, "login_password": os.environ[ADMIN_PASSWORD_ENV]},
            "login_submit", run)
    error = run.errors[0] if run.errors else (
        None if session.pages else "no navigation after signing in")
    return Visit("sign-in", time.monotonic() - started, True, error)


async def ws_run_session(url: str, pages: list[tuple[str, str, str]], visits_per_page: int,
                         first: int, timeout_s: float, think_s: float, signs_in: bool,
                         visits: list[Visit], keep_going=lambda: False) -> None:
    """One websocket session: sign in (when the app asks), then open `pages` in turn from
    index `first` until each was opened `visits_per_page` times, and on round after round
    while keep_going() (the retrain still runs); a broken connection counts the visit as
    failed and the session reconnects (and signs in again)."""
    from streamlit_ws import Session

    order = [pages[(first + i) % len(pages)] for i in range(visits_per_page * len(pages))]
    while order:
        started = time.monotonic()
        try:
            async with Session(url, timeout_s) as session:
                if signs_in:
                    visits.append(await ws_sign_in(session, order[0][1]))
                while order:
                    name, path, title = order[0]
                    started = time.monotonic()
                    visit = await ws_visit(session, path, title)
                    visits.append(Visit(name, visit.seconds, False, visit.error))
                    order.pop(0)
                    if not order and keep_going():
                        order = [pages[(first + i) % len(pages)] for i in range(len(pages))]
                    if think_s:
                        await asyncio.sleep(think_s)
        except (OSError, asyncio.TimeoutError, Exception) as err:  # noqa: BLE001 - counted
            visits.append(Visit(order.pop(0)[0], time.monotonic() - started, False,
                                f"{type(err).__name__}: {str(err)[:120]}"))


async def ws_measure_sessions(url: str, pages: list[tuple[str, str, str]], sessions: int,
                              visits_per_page: int, timeout_s: float, think_s: float,
                              signs_in: bool, while_running=None
                              ) -> tuple[list[Visit], float, object]:
    """measure_sessions' twin over the websocket."""
    from streamlit_ws import Session

    async with Session(url, timeout_s) as session:      # the server's first session, untimed
        await session.open_page("")
    visits: list[Visit] = []
    started = time.monotonic()
    side = asyncio.create_task(while_running()) if while_running else None
    ticker = asyncio.create_task(
        report_progress(visits, sessions * visits_per_page * len(pages), started))
    # With a retrain and an upload beside them, the sessions go on until both have ended.
    keep_going = (lambda: not side.done()) if side else (lambda: False)
    await asyncio.gather(*(ws_run_session(url, pages, visits_per_page, i, timeout_s, think_s,
                                          signs_in, visits, keep_going)
                           for i in range(sessions)))
    elapsed = time.monotonic() - started
    ticker.cancel()
    result = await side if side else None
    return visits, elapsed, result


# ------------------------------------------------------------------ the retrain and the upload

def cli(*args: str, home: Path) -> subprocess.CompletedProcess:
    """`python -m safety_models ARGS` on `home`, output captured."""
    return subprocess.run([sys.executable, "-m", "safety_models", *args], cwd=REPO,
                          env=cli_env(home), capture_output=True, text=True)


def cli_env(home: Path) -> dict:
    env = {**os.environ, "SAFETY_MODELS_HOME": str(home), "PYTHONUNBUFFERED": "1"}
    env.pop("SAFETY_MODELS_DB_URL", None)
    return env


def cli_json(*args: str, home: Path):
    done = cli(*args, "--json", home=home)
    if done.returncode != 0:
        raise RuntimeError(f"safety_models {' '.join(args)} failed: {done.stderr.strip()}")
    return json.loads(done.stdout)


def write_upload_csv(home: Path, path: Path, rows: int) -> int:
    """A CSV of `rows` new crime incidents: places, times and types of the home's own (so
    every check of plausibility passes) under fresh ids (so none is a duplicate). Returns
    the number of rows written."""
    import pandas as pd
    from conftest import use_home

    from safety_models.data.store import Store

    with use_home(home):
        store = Store()
        try:
            stored = store.incidents(UPLOAD_CATEGORY)
        finally:
            store.close()
    if stored.empty:
        raise RuntimeError(f"{home} has no {UPLOAD_CATEGORY} incidents to model an upload on")
    sample = stored.sample(n=rows, replace=len(stored) < rows, random_state=12)
    run = time.strftime("%Y%m%d%H%M%S")
    pd.DataFrame({
        "ID": [f"bench-load-{run}-{i}" for i in range(len(sample))],
        "Date": sample["occurred_at"].dt.strftime("%m/%d/%Y %I:%M:%S %p").to_numpy(),
        "Primary Type": sample["subtype"].to_numpy(),
        "Latitude": sample["latitude"].round(6).to_numpy(),
        "Longitude": sample["longitude"].round(6).to_numpy(),
    }).to_csv(path, index=False)
    return len(sample)


@dataclass(frozen=True)
class Finished:
    """A CLI command run beside the sessions: when it started and ended (seconds after the
    sessions started), its exit status and output."""
    started_s: float
    ended_s: float
    returncode: int
    stdout: str
    stderr: str


async def run_cli_async(home: Path, t0: float, *args: str) -> Finished:
    started = time.monotonic() - t0
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "safety_models", *args, cwd=REPO, env=cli_env(home),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), JOB_WAIT_S)
    except asyncio.TimeoutError:
        process.terminate()
        stdout, stderr = await process.communicate()
    return Finished(started, time.monotonic() - t0, process.returncode,
                    stdout.decode(errors="replace"), stderr.decode(errors="replace"))


def retrain_and_upload(home: Path, csv_path: Path):
    """The coroutine function started with the dashboard's sessions: both commands at once."""
    async def run() -> tuple[Finished, Finished]:
        t0 = time.monotonic()
        return await asyncio.gather(
            run_cli_async(home, t0, "train", "--category", RETRAIN_CATEGORY, "--base", "none",
                          "--freeze-up-to", "none", "--epochs", "1", "--json"),
            run_cli_async(home, t0, "ingest", str(csv_path), "--category", UPLOAD_CATEGORY,
                          "--json"))
    return run


def last_json_line(text: str):
    lines = [line for line in text.splitlines() if line.strip().startswith("{")]
    return json.loads(lines[-1]) if lines else None


def check_nothing_lost(home: Path, before: dict, last_job_before: int, csv_path: Path,
                       rows_written: int, retrain: Finished, upload: Finished
                       ) -> list[tuple[bool, str]]:
    """(passed, what) per check, in the order a reader wants them."""
    checks: list[tuple[bool, str]] = []
    summary = last_json_line(upload.stdout) if upload.returncode == 0 else None
    if summary is None:
        checks.append((False, f"upload: ingest exited {upload.returncode}: "
                              f"{upload.stderr.strip()[-300:]}"))
        accepted = 0
    else:
        accepted = int(summary["accepted"])
        checks.append((accepted == rows_written,
                       f"upload: {accepted} of {rows_written} rows accepted "
                       f"({summary['duplicates']} duplicates, {summary['rejected']} rejected)"))
    after = cli_json("status", home=home)["incidents"]
    expected = {c: n + (accepted if c == UPLOAD_CATEGORY else 0) for c, n in before.items()}
    checks.append((after == expected,
                   f"incidents: before {before} + {accepted} {UPLOAD_CATEGORY} = {expected}, "
                   f"after {after}"))
    names = [u["file_name"] for u in cli_json("uploads", home=home)]
    checks.append((csv_path.name in names, f"uploads list has {csv_path.name}"))

    new_jobs = [j for j in cli_json("jobs", home=home)
                if j["job_id"] > last_job_before and j["kind"] == "train"]
    job = new_jobs[0] if new_jobs else None
    if job is None:
        checks.append((False, f"retrain: no job recorded (train exited {retrain.returncode}: "
                              f"{retrain.stderr.strip()[-300:]})"))
    else:
        models = [m["model_id"] for m in cli_json("models", "--category", RETRAIN_CATEGORY,
                                                  home=home)]
        checks.append((job["status"] == "succeeded" and retrain.returncode == 0,
                       f"retrain: job {job['job_id']} {job['status']}"
                       f"{': ' + job['message'] if job.get('message') else ''} "
                       f"(train exited {retrain.returncode})"))
        checks.append((job.get("model_id") in models,
                       f"retrain: model {job.get('model_id')} is in the {RETRAIN_CATEGORY} "
                       f"models list"))
    check = cli("check", home=home)
    if check.returncode != 0 and "invalid choice" in check.stderr:
        checks.append((True, "store check: no `check` command in this version (skipped)"))
    else:
        problems = [line for line in check.stdout.splitlines() if line.startswith("problem")]
        checks.append((check.returncode == 0,
                       "store check: `python -m safety_models check` "
                       + ("passed" if check.returncode == 0
                          else f"exited {check.returncode}: {problems or check.stderr.strip()}")))
    return checks


# ------------------------------------------------------------------------------ the report

def page_stats(visits: list[Visit], page: str) -> dict:
    seconds = np.array([v.seconds for v in visits if v.page == page])
    return {"n": len(seconds), "median": float(np.median(seconds)),
            "p95": float(np.percentile(seconds, 95)), "max": float(seconds.max()),
            "failed": sum(1 for v in visits if v.page == page and v.error)}


def print_report(visits: list[Visit], floor: list[Visit], args, elapsed_s: float,
                 floor_elapsed_s: float) -> bool:
    """The table; True when every page's p95 is within the goal and no visit failed."""
    floor_stats = page_stats(floor, "floor")
    until = ("until the script run finished (websocket)" if args.client == "websocket"
             else "until interactive in chromium")
    print(f"\nseconds {until}, {args.sessions} sessions at once x {args.rounds} "
          f"round(s), {args.think_s:g} s between visits ({elapsed_s:.0f} s; the floor's "
          f"phase {floor_elapsed_s:.0f} s):")
    print(f"{'page':<12} {'n':>4} {'median':>7} {'p95':>7} {'max':>7} {'p95/floor':>9} "
          f"{'failed':>6}  goal p95 <= {GOAL_P95_S:g} s")
    met = True
    for page in LOAD_PAGES:
        s = page_stats(visits, page)
        ok = s["p95"] <= GOAL_P95_S and s["failed"] == 0
        met &= ok
        print(f"{page:<12} {s['n']:>4} {s['median']:7.2f} {s['p95']:7.2f} {s['max']:7.2f} "
              f"{s['p95'] / floor_stats['p95']:8.1f}x {s['failed']:>6}  "
              f"{'PASS' if ok else 'FAIL'}")
    print(f"{'floor':<12} {floor_stats['n']:>4} {floor_stats['median']:7.2f} "
          f"{floor_stats['p95']:7.2f} {floor_stats['max']:7.2f} {'1.0':>8}x "
          f"{floor_stats['failed']:>6}  (a bare one-line page, same sessions)")
    if any(v.page == "sign-in" for v in visits):
        s = page_stats(visits, "sign-in")
        print(f"{'sign-in':<12} {s['n']:>4} {s['median']:7.2f} {s['p95']:7.2f} "
              f"{s['max']:7.2f} {s['p95'] / floor_stats['p95']:8.1f}x {s['failed']:>6}  "
              "(the first page by its address + the sign-in form: an argon2id hash, "
              "deliberately costly; not a page)")
    signed_in = sum(v.signed_in for v in visits if v.page != "sign-in")
    if signed_in:
        print(f"signed in on {signed_in} of {len(visits)} visits (included in the times)")
    for v in [v for v in visits + floor if v.error][:5]:
        print(f"  failed: {v.page} after {v.seconds:.1f} s: {v.error}")
    return met


def machine_line() -> str:
    load = os.getloadavg()
    return (f"{len(os.sched_getaffinity(0))} CPU cores in use of {os.cpu_count()}; load average "
            f"{load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")


# ------------------------------------------------------------------------------ main

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path,
                        help="an existing SAFETY_MODELS_HOME (copied first; default: demo data "
                             "and short models in a temporary one)")
    parser.add_argument("--client", choices=("websocket", "browser"), default="websocket",
                        help="websocket: the app's own websocket, timed to the end of each "
                             "script run; browser: chromium contexts, timed until interactive")
    parser.add_argument("--sessions", type=int, default=20, help="sessions at once")
    parser.add_argument("--think-s", type=float, default=0.0,
                        help="seconds a session waits between two visits (an operator "
                             "reading the page; 0: the next at once)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="times each session opens every page")
    parser.add_argument("--cores", type=int, default=None,
                        help="run everything (servers, chromium, CLI) on this many CPU cores")
    parser.add_argument("--page-timeout-s", type=float, default=180.0,
                        help="a visit with a step (loading, the title, the end of the run, "
                             "the map's canvas) waiting longer than this counts as failed")
    args = parser.parse_args(argv)
    if args.client == "browser" and not CHROMIUM.exists():
        print("needs /usr/bin/chromium", file=sys.stderr)
        return 2
    if args.cores:
        # Inherited by every process started from here on.
        os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:args.cores])
    # The server reads it on a home without accounts (the sign-in branch); harmless before.
    os.environ.setdefault(ADMIN_PASSWORD_ENV, DEFAULT_ADMIN_PASSWORD)
    from test_browser import PAGES, start_server, stop_server

    pages = [(name, path, PAGES[path]) for name, path in LOAD_PAGES.items()]
    print(f"machine at the start: {machine_line()}")

    with tempfile.TemporaryDirectory(prefix="bench-load-") as tmp:
        tmp = Path(tmp)
        home = tmp / "home"
        if args.home:
            shutil.copytree(args.home.resolve(), home)
        else:
            prepare_demo_home(home)

        floor_app = tmp / "floor_app.py"
        floor_app.write_text(FLOOR_APP)
        process, url = start_server(tmp / "floor-home", tmp / "floor.log", app=floor_app)
        try:
            if args.client == "websocket":
                floor, floor_elapsed, _ = asyncio.run(ws_measure_sessions(
                    url, [("floor", "", FLOOR_TITLE)], args.sessions, args.rounds * len(pages),
                    args.page_timeout_s, args.think_s, signs_in=False))
            else:
                floor, floor_elapsed, _ = asyncio.run(measure_sessions(
                    url, [("floor", "", FLOOR_TITLE)], args.sessions, args.rounds * len(pages),
                    args.page_timeout_s))
            print(f"floor measured: {machine_line()}")
        finally:
            stop_server(process)

        csv_path = tmp / "bench_load_upload.csv"
        rows_written = write_upload_csv(home, csv_path, UPLOAD_ROWS)
        before = cli_json("status", home=home)["incidents"]
        last_job_before = max((j["job_id"] for j in cli_json("jobs", home=home)), default=0)
        process, url = start_server(home, tmp / "streamlit.log")
        try:
            if args.client == "websocket":
                visits, elapsed, (retrain, upload) = asyncio.run(ws_measure_sessions(
                    url, pages, args.sessions, args.rounds, args.page_timeout_s, args.think_s,
                    signs_in=True, while_running=retrain_and_upload(home, csv_path)))
            else:
                visits, elapsed, (retrain, upload) = asyncio.run(measure_sessions(
                    url, pages, args.sessions, args.rounds, args.page_timeout_s,
                    while_running=retrain_and_upload(home, csv_path)))
        finally:
            stop_server(process)
        print(f"machine at the end: {machine_line()}")
        met = print_report(visits, floor, args, elapsed, floor_elapsed)

        print(f"\nbeside the sessions (0-{elapsed:.0f} s): retrain {retrain.started_s:.0f}-"
              f"{retrain.ended_s:.0f} s, upload {upload.started_s:.0f}-{upload.ended_s:.0f} s")
        if retrain.ended_s > elapsed:
            print(f"  (the retrain outlasted the sessions: they ran beside its first "
                  f"{elapsed - retrain.started_s:.0f} s; more --rounds cover more of it)")
        checks = check_nothing_lost(home, before, last_job_before, csv_path, rows_written,
                                    retrain, upload)
        for passed, what in checks:
            print(f"  {'ok  ' if passed else 'LOST'} {what}")
        lost = not all(passed for passed, _ in checks)
    print(f"\n{'PASS' if met else 'FAIL'}: p95 <= {GOAL_P95_S:g} s on every page with "
          f"{args.sessions} sessions, no failed visit")
    print(f"{'FAIL' if lost else 'PASS'}: nothing lost while a retrain and an upload ran")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
