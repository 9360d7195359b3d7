"""Ingestion throughput: a CSV export of N synthetic incidents -> parsed -> stored.

Prints rows per second for parsing (read_incident_file: encoding/separator sniffing, column
recognition, time and coordinate parsing, outlier rejection) and for storing (Store.add_upload
into a fresh SQLite home: de-duplication and the atomic insert), and the reading rate of
Store.incidents, which every training run starts with.

    python benchmarks/bench_ingest.py            # 1,000,000 rows
    python benchmarks/bench_ingest.py --rows 200000
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere


def synthetic_export(n_rows: int, seed: int = 0) -> bytes:
    """A portal-style CSV: id, date (m/d/Y H:M), offence type, lat, lon (~30 km city)."""
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2016-01-01")
    minutes = rng.integers(0, 3 * 365 * 24 * 60, n_rows)
    times = start + pd.to_timedelta(minutes, unit="min")
    frame = pd.DataFrame({
        "Incident ID": np.arange(1, n_rows + 1),
        "Date": times.strftime("%m/%d/%Y %H:%M"),
        "Primary Type": rng.choice(["THEFT", "BATTERY", "ASSAULT", "BURGLARY"], n_rows),
        "Latitude": np.round(41.85 + rng.normal(0, 0.06, n_rows), 6),
        "Longitude": np.round(-87.65 + rng.normal(0, 0.06, n_rows), 6),
    })
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    return buffer.getvalue().encode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as home:
        os.environ["SAFETY_MODELS_HOME"] = home
        os.environ.pop("SAFETY_MODELS_DB_URL", None)
        from safety_models.data.ingest import read_incident_file
        from safety_models.data.store import Store

        data = synthetic_export(args.rows)
        print(f"synthetic export: {args.rows:,} rows, {len(data) / 1e6:.1f} MB")

        t0 = time.perf_counter()
        parsed = read_incident_file(data, "bench.csv", "crime")
        t_parse = time.perf_counter() - t0
        print(f"parse:  {t_parse:6.2f} s  {args.rows / t_parse:12,.0f} rows/s  "
              f"(accepted {len(parsed.accepted):,}, rejected {len(parsed.rejected):,})")

        store = Store()
        t0 = time.perf_counter()
        summary = store.add_upload("bench.csv", data, "crime", parsed.accepted, parsed.rejected,
                                   parsed.rows_read, parsed.mapping.to_dict())
        t_store = time.perf_counter() - t0
        print(f"store:  {t_store:6.2f} s  {summary.accepted / t_store:12,.0f} rows/s  "
              f"(stored {summary.accepted:,}, duplicates {summary.duplicates:,})")
        total = t_parse + t_store
        print(f"ingest: {total:6.2f} s  {args.rows / total:12,.0f} rows/s  (parse + store)")

        t0 = time.perf_counter()
        frame = store.incidents("crime")
        t_read = time.perf_counter() - t0
        print(f"read:   {t_read:6.2f} s  {len(frame) / t_read:12,.0f} rows/s  (Store.incidents)")
        store.close()


if __name__ == "__main__":
    main()
