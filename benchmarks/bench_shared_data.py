"""Parse every file of the shared open-data folder in full; print rows read, accepted,
rejected with reasons, and seconds per file (developers only: reads ../shared/data).

    python benchmarks/bench_shared_data.py [--shared-data PATH]
"""
import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from safety_models.data.ingest import read_incident_file
from safety_models.data.columns import ColumnMapping
parser = argparse.ArgumentParser()
parser.add_argument('--shared-data', type=Path, default=Path(__file__).resolve().parents[2] / 'shared' / 'data')
D = parser.parse_args().shared_data
jobs = [('crime', 'crime/chicago_assaults/chicago_aggravated_assaults.csv.gz', None)]
jobs += [('crime', str(p.relative_to(D)), None) for p in sorted((D/'crime/houston_crime_2010').glob('*.csv'))]
jobs += [('health', 'health/chicago_wnv/train.csv', None), ('health', 'health/chicago_wnv/spray.csv', None),
         ('health', 'health/nyc_311_animal_2025q1/311_Animals_short.csv', None),
         ('traffic', 'traffic/nyc_crashes_2023_01/nyc_crashes_202301.csv', None)]
jobs += [('traffic', str(p.relative_to(D)), None) for p in sorted((D/'traffic/bcn_accidents/clean').glob('*.csv'))]
jobs += [('traffic', str(p.relative_to(D)), ColumnMapping(crs='EPSG:23031')) for p in sorted((D/'traffic/bcn_accidents/raw').glob('*.csv'))]
jobs += [('health', 'health/chicago_wnv/weather.csv', None)]
jobs += [('health', str(p.relative_to(D)), None) for p in sorted((D/'health/nyc_covid_modzcta').glob('*.csv'))]
for cat, rel, ov in jobs:
    t = time.time()
    try:
        p = read_incident_file((D/rel).read_bytes(), Path(rel).name, cat, ov)
        print(f"{rel}{' --crs '+ov.crs if ov else ''}: rows={p.rows_read} accepted={len(p.accepted)} rejected={len(p.rejected)} {p.rejected_reasons()} [{time.time()-t:.1f}s]")
    except Exception as e:
        print(f"{rel}: {type(e).__name__}: {str(e)[:160]}")
