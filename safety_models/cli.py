"""The command line: `python -m safety_models COMMAND ...`.

One function per subcommand, `cmd_<name>(args) -> int` (the exit status), registered in
`build_parser()` with `set_defaults(run=cmd_<name>)`. To add a command: write its function,
then add a block in build_parser. A UserError anywhere becomes its message on stderr and
exit status 2, without a traceback; --json output goes to stdout, everything else for
people (progress, notes) to stderr when --json is on.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd

from . import paths
from .errors import UserError
from .schema import CATEGORIES

EXIT_USER_ERROR = 2

# --<flag>-column option -> ColumnMapping field
MAPPING_OPTIONS = {
    "time": "time", "date": "date", "clock": "clock", "year": "year", "month": "month",
    "day": "day", "hour": "hour", "lat": "lat", "lon": "lon", "location": "location",
    "x": "x", "y": "y", "type": "subtype", "id": "source_id", "outcome": "outcome",
}


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns the exit status (0 ok, 2 for a problem the user can fix)."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m safety_models",
        description="Risk maps for crime, traffic accidents and public-health events from a "
                    f"city's own incident files. State lives in SAFETY_MODELS_HOME "
                    f"(default ./data); SAFETY_MODELS_DB_URL selects another database.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = commands.add_parser("ingest", help="load incident CSV files into the store",
                            description="Load CSV exports of incidents. Columns are recognised "
                            "by name and content; the --*-column options name them when not.")
    p.add_argument("files", nargs="+", metavar="FILE", type=Path)
    p.add_argument("--category", required=True, choices=CATEGORIES)
    for flag, field in MAPPING_OPTIONS.items():
        p.add_argument(f"--{flag}-column", dest=f"column_{field}", metavar="NAME",
                       help=f"the column holding {_MAPPING_HELP[field]}")
    p.add_argument("--crs", metavar="EPSG:NNNN",
                   help="coordinate system of --x-column/--y-column, e.g. EPSG:25831")
    _json_flag(p, "one JSON object per file (one per line for several files)")
    p.set_defaults(run=cmd_ingest)

    p = commands.add_parser("uploads", help="list the loaded files")
    _json_flag(p, "a JSON array of uploads")
    p.set_defaults(run=cmd_uploads)

    p = commands.add_parser("remove-upload", help="remove a loaded file and its incidents")
    p.add_argument("upload_id", type=int, metavar="ID")
    p.set_defaults(run=cmd_remove_upload)

    p = commands.add_parser("rejected", help="write the rejected rows of an upload, with reasons")
    p.add_argument("upload_id", type=int, metavar="ID")
    p.add_argument("--out", type=Path, metavar="FILE.csv", help="default: standard output")
    p.set_defaults(run=cmd_rejected)

    p = commands.add_parser("status", help="incidents per category, uploads and the home folder")
    _json_flag(p, "incidents, uploads, home and time_range as JSON")
    p.set_defaults(run=cmd_status)

    p = commands.add_parser("demo", help="load the built-in demo data (Chicago, Barcelona)")
    p.add_argument("--remove", action="store_true", help="remove the demo data instead")
    _json_flag(p, "one JSON object per demo file (one per line)")
    p.set_defaults(run=cmd_demo)
    return parser


_MAPPING_HELP = {
    "time": "the full date and time", "date": "the date (with --clock-column for the time)",
    "clock": "the time of day", "year": "the year", "month": "the month", "day": "the day",
    "hour": "the hour", "lat": "latitude (WGS84)", "lon": "longitude (WGS84)",
    "location": 'a "(lat, lon)" or "POINT (lon lat)" location', "x": "projected x (see --crs)",
    "y": "projected y (see --crs)", "subtype": "the incident type", "source_id": "the record id",
    "outcome": "a test result (negative rows are skipped)",
}


def _json_flag(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--json", action="store_true", help=f"print {what}")


def _store():
    from .store import Store
    return Store()


# ------------------------------------------------------------------------- commands

def cmd_ingest(args: argparse.Namespace) -> int:
    """Each file is loaded on its own; a file that cannot be used is reported and skipped,
    and the exit status is 2 if any was."""
    from . import ingest
    from .sources import ColumnMapping

    fields = {field: getattr(args, f"column_{field}") for field in MAPPING_OPTIONS.values()}
    if args.crs:
        fields["crs"] = args.crs
    fields = {k: v for k, v in fields.items() if v is not None}
    overrides = ColumnMapping(**fields) if fields else None
    store = _store()
    failed = 0
    try:
        for path in args.files:
            try:
                summary = ingest.ingest_path(store, path, args.category, overrides)
            except UserError as err:
                failed += 1
                print(f"error: {err}", file=sys.stderr)
                continue
            if args.json:
                print(json.dumps(summary.to_dict()), flush=True)
            else:
                print(format_summary(summary), flush=True)
    finally:
        store.close()
    return EXIT_USER_ERROR if failed else 0


def format_summary(summary) -> str:
    """A few lines for people about one UploadSummary."""
    s = summary
    head = f"{s.file_name} ({s.category})"
    if s.already_loaded:
        return (f"{head}: already loaded as upload #{s.upload_id} "
                f"({s.accepted:,} incidents); nothing added")
    lines = [f"{head}: upload #{s.upload_id}",
             f"  read {s.rows_read:,} rows: {s.accepted:,} accepted, {s.rejected:,} rejected, "
             f"{s.duplicates:,} duplicates"]
    if s.rejected:
        top = sorted(s.rejected_reasons.items(), key=lambda kv: -kv[1])[:3]
        lines.append("  rejected: " + ", ".join(f"{reason} {n:,}" for reason, n in top)
                     + f" (python -m safety_models rejected {s.upload_id} --out FILE.csv)")
    if s.time_min:
        lines.append(f"  time range {_show_time(s.time_min)} to {_show_time(s.time_max)}")
    return "\n".join(lines)


def cmd_uploads(args: argparse.Namespace) -> int:
    store = _store()
    try:
        df = store.list_uploads()
    finally:
        store.close()
    if args.json:
        records = [{k: _jsonable(v) for k, v in row.items()}
                   for row in df.drop(columns=["stored_path"]).to_dict("records")]
        print(json.dumps(records))
        return 0
    if df.empty:
        print("no uploads yet: python -m safety_models ingest FILE --category C "
              "(or python -m safety_models demo)")
        return 0
    table = pd.DataFrame({
        "id": df["upload_id"], "category": df["category"], "file": df["file_name"],
        "accepted": df["accepted"].map("{:,}".format),
        "rejected": df["rejected"].map("{:,}".format),
        "duplicates": df["duplicates"].map("{:,}".format),
        "from": df["time_min"].dt.strftime("%Y-%m-%d").fillna("-"),
        "to": df["time_max"].dt.strftime("%Y-%m-%d").fillna("-"),
        "uploaded": df["uploaded_at"].dt.strftime("%Y-%m-%d %H:%M"),
        "demo": df["is_demo"].map({True: "yes", False: ""}),
    })
    print(table.to_string(index=False))
    return 0


def cmd_remove_upload(args: argparse.Namespace) -> int:
    store = _store()
    try:
        upload = store.upload(args.upload_id)
        removed = store.remove_upload(args.upload_id)
    finally:
        store.close()
    print(f"removed upload #{upload.upload_id} ({upload.file_name}, {upload.category}): "
          f"{removed:,} incidents")
    return 0


def cmd_rejected(args: argparse.Namespace) -> int:
    store = _store()
    try:
        df = store.rejected_rows(args.upload_id)
    finally:
        store.close()
    if args.out is None:
        df.to_csv(sys.stdout, index=False)
        return 0
    try:
        df.to_csv(args.out, index=False)
    except OSError as err:
        raise UserError(f"{args.out}: cannot be written ({err.strerror or err})") from err
    print(f"wrote {len(df):,} rejected rows of upload #{args.upload_id} to {args.out}",
          file=sys.stderr)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    store = _store()
    try:
        counts = store.incident_counts()
        n_uploads = len(store.list_uploads())
        ranges = {c: store.time_range(c) for c in CATEGORIES}
    finally:
        store.close()
    status = {
        "incidents": counts,
        "uploads": n_uploads,
        "home": str(paths.home_dir()),
        "time_range": {c: None if r is None else {"start": r[0].isoformat(),
                                                   "end": r[1].isoformat()}
                       for c, r in ranges.items()},
    }
    if args.json:
        print(json.dumps(status))
        return 0
    print(f"home: {status['home']}")
    print(f"uploads: {n_uploads}")
    for c in CATEGORIES:
        r = ranges[c]
        span = "" if r is None else f", {_show_time(r[0])} to {_show_time(r[1])}"
        print(f"{c}: {counts[c]:,} incidents{span}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from . import demo

    store = _store()
    try:
        if args.remove:
            removed = store.remove_demo()
            print(f"removed the demo data: {removed:,} incidents")
            return 0

        def progress(stats: dict) -> None:
            if stats["stage"] == "demo":
                print(f"[{stats['fraction']:4.0%}] loading {stats['file_name']} "
                      f"({stats['category']})", file=sys.stderr, flush=True)

        summaries = demo.load_demo(store, on_progress=progress)
    finally:
        store.close()
    for summary in summaries:
        print(json.dumps(summary.to_dict()) if args.json else format_summary(summary))
    return 0


# ------------------------------------------------------------------------- helpers

def _show_time(value) -> str:
    """ISO time for people: drop a midnight clock (date-only data) and seconds."""
    t = pd.Timestamp(value)
    return t.strftime("%Y-%m-%d") if t == t.normalize() else t.strftime("%Y-%m-%d %H:%M")


def _jsonable(value):
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if value is None or (not isinstance(value, (dict, list, str)) and pd.isna(value)):
        return None
    if hasattr(value, "item"):      # numpy scalars
        return value.item()
    return value
