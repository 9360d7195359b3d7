"""The command line: `python -m safety_models COMMAND ...`.

One function per subcommand, `cmd_<name>(args) -> int` (the exit status), registered in
`build_parser()` with `set_defaults(run=cmd_<name>)`. To add a command: write its function,
then add a block in build_parser. A UserError anywhere becomes its message on stderr and
exit status 2, without a traceback; --json output goes to stdout, everything else for
people (progress, notes) to stderr when --json is on.

Every change goes through service/actions.py as `access.cli_actor()`: an administrator named
after the OS user (whoever has a shell on the server administers it), so each one is checked
and written to the audit trail like the dashboard's.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import pandas as pd

from safety_models import paths
from safety_models.errors import UserError
from safety_models.files import to_jsonable
from safety_models.presentation.text import (progress_bar_line, read_progress,
                                             upload_summary_lines, when_iso)
from safety_models.schema import CATEGORIES, DEFAULT_CELL_SIZE_M

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
    except Exception as err:
        # A damaged database or an unwritable home found after the store opened: a paragraph
        # that says what to do, not a traceback. Anything else is a bug: let it show.
        explained = _storage_error(err)
        if explained is None:
            raise
        print(f"error: {explained}", file=sys.stderr)
        return EXIT_USER_ERROR


def _storage_error(err: Exception) -> UserError | None:
    if "sqlalchemy" not in sys.modules and not isinstance(err, OSError):
        return None
    from safety_models.data.store import explain_storage_error

    return explain_storage_error(err)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m safety_models",
        description="Risk maps for crime, traffic accidents and public-health events from a "
                    "city's own incident files. State lives in SAFETY_MODELS_HOME "
                    "(default ./data); SAFETY_MODELS_DB_URL selects another database.")
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
    p.add_argument("--earliest", metavar="DATE", default=None,
                   help="reject incidents before this date as implausible (default 1970-01-01; "
                        "incidents after the upload time are always rejected)")
    p.add_argument("--only-types", metavar="TYPE", action="append", default=None,
                   help="load only incidents of this type (a value of the type column, e.g. "
                        "BURGLARY; case does not matter; repeat it for several: --only-types "
                        "BURGLARY --only-types 'MOTOR VEHICLE THEFT'): a map of one offence "
                        "instead of all; the other rows are listed as rejected with that reason")
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

    p = commands.add_parser("backup", help="write a backup of the home to one archive",
                            description="A consistent snapshot of the database (safe while the "
                            "dashboard and jobs run) plus the kept uploads, models, evaluations "
                            "and studies, in one tar archive (.tar.gz: compressed).")
    p.add_argument("archive", type=Path, metavar="FILE")
    _json_flag(p, "what the backup holds as JSON")
    p.set_defaults(run=cmd_backup)

    p = commands.add_parser("restore", help="put back a backup made by 'backup'",
                            description="Replace the database and the kept files by those of a "
                            "backup; what they held is moved to HOME/replaced-<time>/. Stop the "
                            "dashboard and jobs first.")
    p.add_argument("archive", type=Path, metavar="FILE")
    _json_flag(p, "what was restored as JSON")
    p.set_defaults(run=cmd_restore)

    p = commands.add_parser("check", help="check the database, model files and kept uploads",
                            description="Read-only: the database's integrity and tables, that "
                            "every registered model checkpoint exists and loads, that every "
                            "kept upload file exists. Exit status 2 when something is wrong.")
    p.add_argument("--skip-model-loading", action="store_true",
                   help="only check that checkpoint files exist (faster)")
    _json_flag(p, "the findings as JSON")
    p.set_defaults(run=cmd_check)

    p = commands.add_parser("demo", help="load the built-in demo data (Chicago, Barcelona)")
    p.add_argument("--remove", action="store_true", help="remove the demo data instead")
    _json_flag(p, "one JSON object per demo file (one per line)")
    p.set_defaults(run=cmd_demo)
    _add_model_commands(commands)

    _add_account_commands(commands)

    p = commands.add_parser("run-job", help="run a queued background job (the dashboard starts "
                            "this; not for everyday use)")
    p.add_argument("job_id", type=int, metavar="ID")
    p.set_defaults(run=cmd_run_job)
    return parser


def cmd_run_job(args: argparse.Namespace) -> int:
    from safety_models.service import jobs

    return jobs.run_job_process(args.job_id)


def _add_model_commands(commands) -> None:
    """pretrain, train, jobs, cancel, models, promote, rollback, predict, evaluate, study."""
    p = commands.add_parser("pretrain", help="pretrain the product's own base model",
                            description="Pretrain the ResNet base on simulated cities plus every "
                            "category stored here; 'train --base pretrained' fine-tunes from it.")
    p.add_argument("--force", action="store_true", help="pretrain again even if a base exists")
    _device_option(p)
    p.set_defaults(run=cmd_pretrain)

    p = commands.add_parser("train", help="fine-tune a risk model for a category",
                            description="Fine-tune a model on the category's incidents; the "
                            "latest period is kept unseen for evaluation. The first model of "
                            "a category becomes active; later ones wait for 'promote'.")
    p.add_argument("--category", required=True, choices=CATEGORIES)
    p.add_argument("--base", default="pretrained", metavar="BASE",
                   help="pretrained (default: the product's base), imagenet (torchvision's "
                        "ImageNet weights, from the local torch cache or --imagenet-weights), "
                        "none (from scratch), or a model id to continue from")
    p.add_argument("--freeze-up-to", choices=FREEZE_CHOICES, default=None,
                   help="freeze the backbone up to and including this stage (default: "
                        "training's default)")
    p.add_argument("--optimizer", choices=("adamw", "sgd"), default=None,
                   help="adamw, or sgd with momentum 0.9 (the classic fine-tuning recipe)")
    p.add_argument("--lr", type=float, default=None, help="learning rate of the backbone")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--window-hours", type=int, default=None,
                   help="window length to predict (default 24 for crime/traffic, 168 for health)")
    cell_size = p.add_mutually_exclusive_group()
    cell_size.add_argument("--cell-size-m", type=_cell_size_m_argument, default=None,
                           help="grid cell size in metres (default: keep the category's grid, as "
                                f"the dashboard does; {DEFAULT_CELL_SIZE_M:g} m for its first "
                                "model). Another size makes a new grid, whose maps do not compare "
                                "cell for cell with the others")
    cell_size.add_argument("--cell-size", dest="cell_size_m", type=_length_argument, default=None,
                           metavar="LENGTH", help="the same with a unit: 600ft, 150m, 0.1mi")
    p.add_argument("--history-days", type=int, default=None,
                   help="train on at most this many days before the validation period")
    p.add_argument("--backbone", choices=("resnet18", "resnet34", "resnet50"), default=None,
                   help="backbone for --base none/imagenet")
    p.add_argument("--imagenet-weights", metavar="FILE", default=None,
                   help="torchvision ImageNet weights file for --base imagenet")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--horizon", type=_horizon_argument, default=None, metavar="HORIZON",
                   help="train for the risk over the next 7, 14, 30, 60 or 90 days (7d, 14d, 30d, 60d, "
                        "90d, or 1w, 2w, 1m, 2m, 3m; events summed over "
                        "them) instead of the next window; it serves predict/evaluate --horizon and "
                        "never replaces the active model")
    _device_option(p)
    p.add_argument("--queue", action="store_true",
                   help="queue the training for a worker (python -m safety_models worker, on "
                        "this machine or another; PostgreSQL only): prints the job id and "
                        "returns at once; --device applies on the worker's machine")
    _json_flag(p, "the new model's id, status and scores as JSON (with --queue: the job id)")
    p.set_defaults(run=cmd_train)

    p = commands.add_parser("jobs", help="training jobs (the dashboard's and the CLI's)")
    _json_flag(p, "a JSON array of jobs")
    p.set_defaults(run=cmd_jobs)

    p = commands.add_parser("cancel", help="ask a running training job to stop")
    p.add_argument("job_id", type=int, metavar="JOB_ID")
    p.set_defaults(run=cmd_cancel)

    p = commands.add_parser(
        "worker", help="run queued jobs (train --queue, the dashboard's retrain button with "
        "SAFETY_MODELS_WORKERS=queue); PostgreSQL only",
        description="Take queued jobs from the PostgreSQL database (SAFETY_MODELS_DB_URL) and "
        "run them here, one at a time, until stopped (Ctrl+C or SIGTERM let the running job "
        "finish). Start one on each machine that should train; every worker needs the same "
        "home folder (SAFETY_MODELS_HOME) as the dashboard, since models are files there.")
    p.add_argument("--once", action="store_true",
                   help="run the jobs queued now, then stop")
    p.set_defaults(run=cmd_worker)

    p = commands.add_parser("models", help="model versions, their scores and which is active")
    p.add_argument("--category", choices=CATEGORIES, default=None)
    _json_flag(p, "a JSON array of models")
    p.set_defaults(run=cmd_models)

    p = commands.add_parser("promote", help="make a model version the active one")
    p.add_argument("model_id", metavar="MODEL_ID")
    p.set_defaults(run=cmd_promote)

    p = commands.add_parser("rollback", help="reactivate the previously active model")
    p.add_argument("--category", required=True, choices=CATEGORIES)
    p.set_defaults(run=cmd_rollback)

    p = commands.add_parser("predict", help="score every cell of the city for one window",
                            description="Write one row (CSV) or polygon (GeoJSON) per city cell: "
                            "id, outline, probability, expected count, risk level, rank, model id.")
    p.add_argument("--category", required=True, choices=CATEGORIES)
    p.add_argument("--at", default=None, metavar="DATE",
                   help="a date/time inside the window to predict (default: the next window)")
    p.add_argument("--model", default=None, metavar="MODEL_ID", help="default: the active model")
    p.add_argument("--horizon", type=_horizon_argument, default=None, metavar="HORIZON",
                   help="the chance of at least one event, and the expected events, over the next "
                        "7/14/30/60/90 days from the window (7d .. 90d, or 1w, 2w, 1m, 2m, 3m; the "
                        "category's model for that horizon)")
    p.add_argument("--out", required=True, type=Path, metavar="FILE.csv|FILE.geojson")
    _device_option(p)
    p.set_defaults(run=cmd_predict)

    p = commands.add_parser("evaluate", help="backtest a model against the baselines",
                            description="Score the model on the held-out period after its "
                            "training and validation data, window by window, beside the "
                            "baselines on the same windows and cells.")
    p.add_argument("--category", required=True, choices=CATEGORIES)
    p.add_argument("--model", default=None, metavar="MODEL_ID", help="default: the active model")
    p.add_argument("--horizon", type=_horizon_argument, default=None, metavar="HORIZON",
                   help="backtest the category's model for this horizon (forecasts of the next N days: "
                        "7d, 14d, 30d, 60d, 90d, or 1w, 2w, 1m, 2m, 3m)")
    _device_option(p)
    p.add_argument("--flag-area", dest="flag_areas", action="append", default=[], type=_area_argument,
                   metavar="AREA", help="also score a flagged area, e.g. 0.75sqmi or 2km2 (whole cells "
                   "until the area is used, at least one); repeatable")
    _json_flag(p, "the full result as one JSON object (areas under pai_area, hit_rate_area, pei_area)")
    p.set_defaults(run=cmd_evaluate)

    p = commands.add_parser("study", help="fine-tuning study: freezing depth, lr, history",
                            description="Train from scratch and fine-tuned with each freezing "
                            "depth, learning rate and amount of history; print and save the "
                            "table of test scores and training times.")
    p.add_argument("--category", required=True, choices=CATEGORIES)
    p.add_argument("--quick", action="store_true", help="a reduced set of runs")
    _json_flag(p, "the table as a JSON array")
    p.set_defaults(run=cmd_study)


_MAPPING_HELP = {
    "time": "the full date and time", "date": "the date (with --clock-column for the time)",
    "clock": "the time of day", "year": "the year", "month": "the month", "day": "the day",
    "hour": "the hour", "lat": "latitude (WGS84)", "lon": "longitude (WGS84)",
    "location": 'a "(lat, lon)" or "POINT (lon lat)" location', "x": "projected x (see --crs)",
    "y": "projected y (see --crs)", "subtype": "the incident type", "source_id": "the record id",
    "outcome": "a test result (negative rows are skipped)",
}


def _length_argument(text: str) -> float:
    """argparse type of --cell-size: metres, from a length with its unit (units.parse_length_m)."""
    from safety_models.units import parse_length_m

    try:
        return _cell_size_m_argument(parse_length_m(text))
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _cell_size_m_argument(value: str | float) -> float:
    """argparse type of --cell-size-m: metres within grid.CELL_SIZE_RANGE_M."""
    from safety_models.grid import CELL_SIZE_RANGE_M

    try:
        metres = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"cell size {value!r} is not a number of metres") from None
    low, high = CELL_SIZE_RANGE_M
    if not low <= metres <= high:
        raise argparse.ArgumentTypeError(
            f"cell size {metres:g} m is outside {low:g} m .. {high:g} m (a block is about 150 m, "
            f"the default {DEFAULT_CELL_SIZE_M:g} m)")
    return metres


def _horizon_argument(text: str) -> str:
    """argparse type of --horizon: "7d" .. "90d" (schema.HORIZONS), "1w", "3m" and the like."""
    from safety_models.schema import parse_horizon

    try:
        return parse_horizon(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _area_argument(text: str) -> str:
    """argparse type of --flag-area: the text as given, once units.parse_area reads it."""
    from safety_models.units import parse_area

    try:
        parse_area(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return text


def _json_flag(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--json", action="store_true", help=f"print {what}")


def _device_option(p: argparse.ArgumentParser) -> None:
    # Spelt out like FREEZE_CHOICES so that `--help` need not import torch (devices.py
    # holds the same choices; tests/modeling/test_devices.py checks that they agree).
    p.add_argument("--device", choices=DEVICE_CHOICES, default="auto",
                   help="where the network runs: auto (a CUDA GPU when torch sees one, "
                        "else the CPU; the default), cpu, or cuda (an error without a GPU); "
                        "on a GPU, mixed precision (bf16) where it is safe")


def _store():
    from safety_models.data.store import Store
    return Store()


def _actor():
    from safety_models.service.access import cli_actor
    return cli_actor()


# ------------------------------------------------------------------------- commands

def cmd_ingest(args: argparse.Namespace) -> int:
    """Each file is loaded on its own; a file that cannot be used is reported and skipped,
    and the exit status is 2 if any was."""
    from safety_models.data.columns import ColumnMapping
    from safety_models.service import actions

    fields = {field: getattr(args, f"column_{field}") for field in MAPPING_OPTIONS.values()}
    if args.crs:
        fields["crs"] = args.crs
    fields = {k: v for k, v in fields.items() if v is not None}
    overrides = ColumnMapping(**fields) if fields else None
    earliest = _date_option(args.earliest, "--earliest") if args.earliest else None
    only_types = [t for t in (args.only_types or []) if t.strip()] or None
    failed = 0
    with _store() as store:
        for path in args.files:
            try:
                summary = actions.ingest_path(store, _actor(), path, args.category, overrides,
                                              earliest=earliest, only_types=only_types)
            except UserError as err:
                failed += 1
                print(f"error: {err}", file=sys.stderr)
                continue
            summary = summary.to_dict()
            print(json.dumps(summary) if args.json else upload_summary_lines(summary), flush=True)
    return EXIT_USER_ERROR if failed else 0


def cmd_uploads(args: argparse.Namespace) -> int:
    from safety_models.presentation.tables import uploads_text_table

    with _store() as store:
        df = store.list_uploads()
    if args.json:
        records = [{k: to_jsonable(v) for k, v in row.items()}
                   for row in df.drop(columns=["stored_path"]).to_dict("records")]
        print(json.dumps(records))
        return 0
    if df.empty:
        print("no uploads yet: python -m safety_models ingest FILE --category C "
              "(or python -m safety_models demo)")
        return 0
    print(uploads_text_table(df).to_string(index=False))
    return 0


def cmd_remove_upload(args: argparse.Namespace) -> int:
    from safety_models.service import actions

    with _store() as store:
        upload = store.upload(args.upload_id)
        removed = actions.remove_upload(store, _actor(), args.upload_id)
    print(f"removed upload #{upload.upload_id} ({upload.file_name}, {upload.category}): "
          f"{removed:,} incidents")
    return 0


def cmd_rejected(args: argparse.Namespace) -> int:
    from safety_models.presentation import export

    with _store() as store:
        df = store.rejected_rows(args.upload_id)
    if args.out is None:
        sys.stdout.write(export.csv_text(df))
        return 0
    try:
        args.out.write_bytes(export.csv_bytes(df))
    except OSError as err:
        raise UserError(f"{args.out}: cannot be written ({err.strerror or err})") from err
    print(f"wrote {len(df):,} rejected rows of upload #{args.upload_id} to {args.out}",
          file=sys.stderr)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    with _store() as store:
        counts = store.incident_counts()
        n_uploads = len(store.list_uploads())
        ranges = {c: store.time_range(c) for c in CATEGORIES}
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
        span = "" if r is None else f", {when_iso(r[0])} to {when_iso(r[1])}"
        print(f"{c}: {counts[c]:,} incidents{span}")
    return 0


def _date_option(text: str, flag: str) -> pd.Timestamp:
    try:
        value = pd.Timestamp(text)
    except (ValueError, TypeError) as err:
        raise UserError(f"{flag} {text!r} is not a date; expected e.g. 1990-01-01") from err
    if pd.isna(value):
        raise UserError(f"{flag} {text!r} is not a date; expected e.g. 1990-01-01")
    return value


def cmd_backup(args: argparse.Namespace) -> int:
    from safety_models.service import backup

    report = backup.backup_home(args.archive)
    if args.json:
        print(json.dumps(to_jsonable(report.to_dict())))
        return 0
    print(f"backed up {paths.home_dir()} to {report.archive} ({report.bytes / 1e6:,.1f} MB): "
          f"the {report.database} database ({report.uploads:,} uploads, {report.incidents:,} "
          f"incidents, {report.models:,} models) and {report.files:,} files")
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    from safety_models.service import actions

    report = actions.restore_home(_actor(), args.archive)
    if args.json:
        print(json.dumps(to_jsonable(report.to_dict())))
        return 0
    print(f"restored the backup of {report.created_at} from {report.archive}: "
          f"{report.uploads:,} uploads, {report.models:,} models, {report.files:,} files")
    if report.replaced is not None:
        print(f"what it replaced was moved to {report.replaced} (delete it when all is well)")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from safety_models.service import backup

    report = backup.check_home(load_models=not args.skip_model_loading)
    if args.json:
        print(json.dumps(report.to_dict()))
    else:
        for line in report.checked:
            print(f"ok: {line}")
        for problem in report.problems:
            print(f"problem: {problem}")
        if report.ok:
            print("no problems found")
    return 0 if report.ok else EXIT_USER_ERROR


def cmd_demo(args: argparse.Namespace) -> int:
    from safety_models.service import actions

    with _store() as store:
        if args.remove:
            removed = actions.remove_demo(store, _actor())
            print(f"removed the demo data: {removed:,} incidents")
            return 0

        def progress(stats: dict) -> None:
            if stats["stage"] == "demo":
                print(f"[{stats['fraction']:4.0%}] loading {stats['file_name']} "
                      f"({stats['category']})", file=sys.stderr, flush=True)

        summaries = actions.load_demo(store, _actor(), on_progress=progress)
    for summary in summaries:
        summary = summary.to_dict()
        print(json.dumps(summary) if args.json else upload_summary_lines(summary))
    return 0


# ------------------------------------------------------------------------- model commands

# models.STAGES with 'none' in front, spelt out so that `--help` and `ingest` need not import
# torch; tests/test_cli.py checks that the two agree.
FREEZE_CHOICES = ("none", "stem", "layer1", "layer2", "layer3", "layer4")
DEVICE_CHOICES = ("auto", "cpu", "cuda")     # modeling.devices.DEVICE_CHOICES
TRAIN_OPTIONS = ("base", "freeze_up_to", "optimizer", "lr", "epochs", "window_hours",
                 "cell_size_m", "history_days", "backbone", "imagenet_weights", "seed",
                 "device")


class ProgressBar:
    """on_progress for the terminal: one line on stderr (text.progress_bar_line), redrawn at
    most every 0.2 s, and on a new line when the stage changes."""

    def __init__(self, stream=sys.stderr):
        self.stream = stream
        self.last_draw = 0.0
        self.last_stage = None

    def __call__(self, stats: dict) -> None:
        import time

        now = time.monotonic()
        progress = read_progress(stats)
        if (progress.stage == self.last_stage and now - self.last_draw < 0.2
                and progress.fraction < 1.0):
            return
        if self.last_stage is not None and progress.stage != self.last_stage:
            self.stream.write("\n")
        self.last_stage, self.last_draw = progress.stage, now
        self.stream.write("\r" + progress_bar_line(stats) + " " * 4)
        self.stream.flush()

    def close(self) -> None:
        if self.last_stage is not None:
            self.stream.write("\n")
            self.stream.flush()


def _run_job(store, kind: str, config: dict) -> dict:
    from safety_models.service import actions

    bar = ProgressBar()
    try:
        return actions.run_training(store, _actor(), kind, config, on_progress=bar)
    finally:
        bar.close()


def _check_device(name: str) -> None:
    """Refuse --device cuda without a GPU before any work starts (a UserError)."""
    from safety_models.modeling.devices import resolve_device

    resolve_device(name)


def cmd_pretrain(args: argparse.Namespace) -> int:
    _check_device(args.device)
    with _store() as store:
        job = _run_job(store, "pretrain", {"force": bool(args.force),
                                           "pretrain": {"device": args.device}})
    print(f"base model: {job['model_id']}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from safety_models.modeling.training import TrainConfig

    from safety_models.schema import horizon_days

    options = {k: getattr(args, k) for k in TRAIN_OPTIONS if getattr(args, k) is not None}
    if args.horizon:
        options["horizon_days"] = horizon_days(args.horizon)
    cfg = TrainConfig(category=args.category, **options)
    if args.queue:
        return _queue_training(cfg.to_dict(), args.json)
    _check_device(cfg.device)
    if int(os.environ.get("WORLD_SIZE", "1") or 1) > 1:      # started by torchrun
        return _train_under_torchrun(args, cfg)
    with _store() as store:
        job = _run_job(store, "train", cfg.to_dict())
        return _print_training(args, store, job)


def _train_under_torchrun(args: argparse.Namespace, cfg) -> int:
    """`torchrun --nproc_per_node N -m safety_models train ...`: every rank fits under
    DistributedDataParallel (modeling/distributed.py); rank 0 makes the pretrained base
    first when it is missing, runs the recorded job and saves the version, and the other
    ranks fit alongside it and write nothing."""
    import dataclasses

    from safety_models.modeling import distributed
    from safety_models.modeling.devices import resolve_device
    from safety_models.service import workflows

    info = distributed.from_environment()
    with distributed.process_group(info, resolve_device(cfg.device)) as device:
        cfg = dataclasses.replace(cfg, device=str(device))
        with _store() as store:
            if info.is_main:
                workflows.base_for_training(store, cfg)   # pretrains only when missing
            distributed.barrier()                         # the others read it after
            if not info.is_main:
                workflows.fit_as_worker_rank(store, cfg)
                return 0
            job = _run_job(store, "train", cfg.to_dict())
            return _print_training(args, store, job)


def _print_training(args: argparse.Namespace, store, job: dict) -> int:
    from safety_models.modeling import registry

    info = registry.model_info(store, job["model_id"])
    active = registry.active_model_id(store, args.category)
    result = {"model_id": job["model_id"], "category": args.category,
              "status": info.get("status"), "active_model_id": active,
              "train_seconds": info.get("train_seconds"),
              "validation": info.get("val_metrics"), "test": info.get("test_metrics")}
    if args.json:
        print(json.dumps(to_jsonable(result)))
        return 0
    print(f"model {result['model_id']} ({result['status']}), trained in "
          f"{result['train_seconds'] or 0:.0f} s")
    for name in ("validation", "test"):
        scores = result[name] or {}
        shown = ", ".join(f"{k} {v:.3f}" for k, v in scores.items()
                          if isinstance(v, (int, float)) and not isinstance(v, bool))
        if shown:
            print(f"  {name}: {shown}")
    if active != result["model_id"]:
        print(f"  the active model is still {active}; "
              f"python -m safety_models promote {result['model_id']} to switch")
    return 0


def _queue_training(config: dict, as_json: bool) -> int:
    """train --queue: the job id on stdout (alone, for scripts), what happens next on
    stderr. The device is checked where the job runs, on the worker's machine."""
    from safety_models.service import actions

    from safety_models.service import jobs

    with _store() as store:
        job_id = actions.start_training(store, _actor(), config, via_queue=True)
        alive = jobs.workers_alive(store)
    if as_json:
        print(json.dumps({"job_id": job_id, "status": "queued"}))
    else:
        print(job_id)
    print(f"job {job_id} queued: a worker (python -m safety_models worker) runs it; "
          f"follow it with: python -m safety_models jobs, stop it with: "
          f"python -m safety_models cancel {job_id}", file=sys.stderr)
    if alive == 0:
        print("note: no worker is running now; the job waits until one starts", file=sys.stderr)
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from safety_models.service import workers

    with _store() as store:
        workers.run_worker(store, once=bool(args.once),
                           say=lambda line: print(line, file=sys.stderr, flush=True))
    return 0


def cmd_jobs(args: argparse.Namespace) -> int:
    from safety_models.service import jobs

    with _store() as store:
        jobs.recover_stale_jobs(store)
        rows = jobs.list_jobs(store)
    if args.json:
        print(json.dumps(to_jsonable(rows)))
        return 0
    if not rows:
        print("no training jobs yet")
        return 0
    for job in rows:
        fraction = (job.get("progress") or {}).get("fraction")
        done = f" {fraction:.0%}" if fraction is not None and job["status"] == "running" else ""
        if job["status"] == "running" and job.get("host"):
            done += f" on {job['host']}"        # a worker's machine, or this one
        elif job["status"] == "queued" and job.get("queue_job_id") is not None:
            done += " for a worker"
        print(f"#{job['job_id']:<4} {job['kind']:<9} {job.get('category') or '-':<8} "
              f"{job['status']}{done}  {job.get('model_id') or ''}  {job.get('message') or ''}")
    return 0


def cmd_cancel(args: argparse.Namespace) -> int:
    from safety_models.service import actions

    with _store() as store:
        actions.cancel_job(store, _actor(), args.job_id)
    print(f"asked job #{args.job_id} to stop")
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from safety_models.modeling import registry
    from safety_models.presentation.tables import models_text_table

    with _store() as store:
        df = registry.list_models(store, args.category)
    if args.json:
        print(json.dumps(to_jsonable(df.to_dict("records"))))
        return 0
    if df.empty:
        print("no models yet: python -m safety_models train --category C")
        return 0
    print(models_text_table(df).to_string(index=False))
    return 0


def cmd_promote(args: argparse.Namespace) -> int:
    from safety_models.service import actions

    with _store() as store:
        actions.promote(store, _actor(), args.model_id)
    print(f"{args.model_id} is now active")
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    from safety_models.service import actions

    with _store() as store:
        model_id = actions.rollback(store, _actor(), args.category)
    print(f"{model_id} is active again for {args.category}")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from safety_models.presentation import export
    from safety_models.modeling import registry
    from safety_models.service import workflows

    suffix = args.out.suffix.lower()
    if suffix not in (".csv", ".geojson", ".json"):
        raise UserError(f"{args.out}: give a .csv or .geojson file name")
    _check_device(args.device)
    with _store() as store:
        df = workflows.predict_category(store, args.category, at=args.at, model_id=args.model,
                                        device=args.device, horizon=args.horizon)
        if suffix == ".csv":
            data = export.prediction_to_csv(df)
        else:
            from safety_models.grid import GridSpec

            _, checkpoint = registry.load_model(store, str(df["model_id"].iloc[0]))
            data = json.dumps(export.prediction_to_geojson(df, GridSpec.from_dict(
                checkpoint["grid"]))).encode()
    try:
        args.out.write_bytes(data)
    except OSError as err:
        raise UserError(f"{args.out}: cannot be written ({err.strerror or err})") from err
    top = df.head(3)
    print(f"wrote {len(df):,} cells for the window {when_iso(df['window_start'].iloc[0])} to "
          f"{when_iso(df['window_end'].iloc[0])} to {args.out} (model {df['model_id'].iloc[0]})")
    for _, row in top.iterrows():
        print(f"  rank {row['rank']}: cell {row['cell_id']} at {row['lat']:.4f}, {row['lon']:.4f}"
              f"  p={row['probability']:.3f}  expected {row['expected_count']:.2f}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from safety_models.evaluation import backtest as evaluation
    from safety_models.service import actions

    _check_device(args.device)
    bar = None if args.json else ProgressBar()
    try:
        with _store() as store:
            result = actions.evaluate(store, _actor(), args.category, model_id=args.model,
                                      on_progress=bar, device=args.device,
                                      flag_areas=args.flag_areas, horizon=args.horizon)
    finally:
        if bar is not None:
            bar.close()
    if args.json:
        print(json.dumps(to_jsonable(result.to_dict())))
        return 0
    d = result.to_dict()
    span = (f", each forecasting the next {d['horizon_windows']} windows" if d.get("horizon_windows", 1) > 1
            else "")
    print(f"{d['category']} model {d['model_id']}: test {d['test_start']} to {d['test_end']}, "
          f"{d['n_windows']} windows of {d['window_hours']} h{span}, {d['n_test_events']:,} events")
    print(evaluation.summary_table(d).to_string())
    if args.flag_areas:
        print(area_table(d).to_string())
    return 0


def area_table(evaluation_dict: dict) -> pd.DataFrame:
    """Hit rate, PAI and PEI of every forecaster for each flagged area, one row per pair."""
    results = evaluation_dict["results"]
    forecasters = {"model": results["model"], **results.get("baselines", {})}
    if "oracle" in results:
        forecasters["oracle"] = results["oracle"]
    rows = []
    for name, m in forecasters.items():
        for area, hit in (m.get("hit_rate_area") or {}).items():
            rows.append({"forecaster": name, "area": area, "cells": m["cells_flagged_area"][area],
                         "km2": round(m["area_km2"][area], 3), "hit_rate": hit,
                         "pai": m["pai_area"][area], "pei": m["pei_area"][area]})
    return pd.DataFrame(rows).set_index(["area", "forecaster"]).sort_index(level=0, sort_remaining=False)


def cmd_study(args: argparse.Namespace) -> int:
    from safety_models.evaluation import study
    from safety_models.service import actions

    bar = ProgressBar()
    try:
        with _store() as store:
            table = actions.run_study(store, _actor(), args.category, quick=args.quick,
                                      on_progress=bar)
    finally:
        bar.close()
    if args.json:
        print(json.dumps(to_jsonable(table.to_dict("records"))))
        return 0
    print(table.to_string(index=False))
    for line in study.summarise_study(table):
        print("- " + line)
    return 0


# ------------------------------------------------------------------------- accounts, audit


def _add_account_commands(commands) -> None:
    """users (add, list, set-role, disable, enable, reset-password) and audit."""
    from safety_models.service.access import ROLES

    p = commands.add_parser("users", help="dashboard accounts and their roles",
                            description="Accounts for the dashboard. Roles: viewer (maps, "
                            "scores, predictions), analyst (+ loading files, retraining), admin "
                            "(+ promote/rollback, removing data, outlines, accounts, audit). "
                            "The command line itself acts as an administrator.")
    users = p.add_subparsers(dest="users_command", required=True, metavar="ACTION")
    q = users.add_parser("add", help="create an account (asks for its password)")
    q.add_argument("name", metavar="NAME")
    q.add_argument("--role", required=True, choices=ROLES)
    _password_stdin_flag(q)
    q.set_defaults(run=cmd_users_add)
    q = users.add_parser("list", help="every account, its role and state")
    _json_flag(q, "a JSON array of accounts")
    q.set_defaults(run=cmd_users_list)
    q = users.add_parser("set-role", help="change an account's role")
    q.add_argument("name", metavar="NAME")
    q.add_argument("role", choices=ROLES)
    q.set_defaults(run=cmd_users_set_role)
    q = users.add_parser("disable", help="stop an account from signing in")
    q.add_argument("name", metavar="NAME")
    q.set_defaults(run=cmd_users_disable, disabled=True)
    q = users.add_parser("enable", help="let a disabled or locked account sign in again")
    q.add_argument("name", metavar="NAME")
    q.set_defaults(run=cmd_users_disable, disabled=False)
    q = users.add_parser("reset-password", help="give an account a new password (also "
                         "lifts a sign-in lock)")
    q.add_argument("name", metavar="NAME")
    _password_stdin_flag(q)
    q.set_defaults(run=cmd_users_reset_password)

    p = commands.add_parser("audit", help="the audit trail: who changed what, and sign-ins",
                            description="Print the audit trail, oldest first: every sign-in, "
                            "sign-out and change, from the dashboard and this command line.")
    p.add_argument("--since", metavar="DATE", help="from this date or time on (e.g. 2026-11-01)")
    p.add_argument("--until", metavar="DATE", help="before this date or time")
    p.add_argument("--who", metavar="NAME", help="only this account (or OS user)")
    p.add_argument("--action", metavar="ACTION", action="append",
                   help="only this action (login, upload, model.promote, ...); repeatable")
    output = p.add_mutually_exclusive_group()
    _json_flag(output, "a JSON array of rows")
    output.add_argument("--csv", action="store_true", help="print CSV (for a spreadsheet)")
    p.set_defaults(run=cmd_audit)


def _password_stdin_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--password-stdin", action="store_true",
                   help="read the password from the first line of standard input instead of "
                        "asking (for scripts)")


def read_password(from_stdin: bool, stdin=None) -> str:
    """The first line of stdin (--password-stdin), or asked twice on the terminal."""
    import getpass

    stdin = stdin or sys.stdin
    if from_stdin:
        line = stdin.readline()
        password = line[:-1] if line.endswith("\n") else line
        return password[:-1] if password.endswith("\r") else password
    if not stdin.isatty():
        raise UserError("there is no terminal to ask for the password: give it on standard "
                        "input with --password-stdin")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Again: ") != first:
        raise UserError("the two passwords differ; nothing was changed")
    return first


def cmd_users_add(args: argparse.Namespace) -> int:
    from safety_models.service import accounts, actions

    password = read_password(args.password_stdin)
    accounts.check_password(password)
    with _store() as store:
        account = actions.add_account(store, _actor(), args.name, args.role, password)
    print(f"account {account['name']} ({account['role']}) created")
    return 0


def cmd_users_list(args: argparse.Namespace) -> int:
    from safety_models.presentation import tables
    from safety_models.service import actions

    with _store() as store:
        df = actions.list_accounts(store, _actor())
    if args.json:
        print(json.dumps(to_jsonable(df.to_dict("records"))))
        return 0
    if df.empty:
        print("no accounts yet: the dashboard makes 'admin' on its first start, or "
              "python -m safety_models users add NAME --role admin")
        return 0
    print(tables.accounts_text_table(df).to_string(index=False))
    return 0


def cmd_users_set_role(args: argparse.Namespace) -> int:
    from safety_models.service import actions

    with _store() as store:
        account = actions.set_role(store, _actor(), args.name, args.role)
    print(f"{account['name']} is now {account['role']}")
    return 0


def cmd_users_disable(args: argparse.Namespace) -> int:
    from safety_models.service import actions

    with _store() as store:
        account = actions.set_disabled(store, _actor(), args.name, args.disabled)
    print(f"{account['name']} is {'disabled' if account['disabled'] else 'enabled'}")
    return 0


def cmd_users_reset_password(args: argparse.Namespace) -> int:
    from safety_models.service import accounts, actions

    password = read_password(args.password_stdin)
    accounts.check_password(password)
    with _store() as store:
        account = actions.reset_password(store, _actor(), args.name, password)
    print(f"new password set for {account['name']}")
    return 0


def _when(text: str | None, flag: str):
    import pandas as pd

    if text is None:
        return None
    try:
        return pd.Timestamp(text)
    except ValueError:
        raise UserError(f"{flag} {text!r}: give a date like 2026-11-01 or "
                        "2026-11-01T08:00") from None


def cmd_audit(args: argparse.Namespace) -> int:
    from safety_models.presentation import export, tables
    from safety_models.service import actions

    since, until = _when(args.since, "--since"), _when(args.until, "--until")
    with _store() as store:
        df = actions.audit_trail(store, _actor(), since=since, until=until, who=args.who,
                                 actions=args.action)
    df = df.iloc[::-1].reset_index(drop=True)     # oldest first, like a log
    if args.json:
        print(json.dumps(to_jsonable(df.to_dict("records"))))
        return 0
    if args.csv:
        sys.stdout.write(export.csv_text(df))
        return 0
    if df.empty:
        print("no audit rows" + (" in that period" if since or until else " yet"))
        return 0
    print(tables.audit_text_table(df).to_string(index=False))
    return 0
