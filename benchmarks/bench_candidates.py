"""Candidate forecasters scored fast, without training the network: the experimental harness
behind the stacked forecaster (modeling/stack.py).

    python benchmarks/bench_candidates.py --shared-data /work/shared/data \
        [--datasets crime,traffic,health] [--horizons 1,7,30] [--cache /tmp/bench_candidates]

For each shared dataset (ingested by the product into a temporary home, then binned on the
product's grid: 500 m cells, or --cell-size, daily windows for crime/traffic, weekly for health) and horizon
(days; 1 = the next window), it takes the product's own splits (training.split_windows with
TrainConfig(horizon_days=...)) and scores on validation and test windows:

    the baselines of the category (their default parameters), each plane of the stack alone
    (kernel-smoothed decayed averages: bandwidth x half-life), the stack (Poisson GLM over all
    of them, fitted on training windows), and what forecaster.choose_blend picks on
    validation among {baselines, stack}: the product's selection with its held-out check.

Printed per dataset and horizon: validation and test PAI@5 / ROC-AUC / hit rate at 0.75 sq mi
of every candidate, the paired block-bootstrap interval (backtest.paired_difference) of the
chosen forecaster's test PAI@5 and per-window AUC minus the best baseline's (best chosen on
test, which flatters the baseline), and the share of that baseline's gap to the hindsight
oracle that it closes. Only this script reads the shared data folder; the library never does.
"""

from __future__ import annotations

import argparse
import os
import pickle
import resource
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SHARED_FILES: dict[str, list[str]] = {
    "crime": ["crime/chicago_assaults/chicago_aggravated_assaults.csv.gz"],
    "traffic": [f"traffic/bcn_accidents/clean/bcn_accidents_{year}.csv" for year in range(2010, 2020)],
    "health": ["health/chicago_wnv/train.csv"],
}
FLAG_AREA = "0.75sqmi"


def load_city(shared: Path, category: str, cache: Path, cell_size_m: float | None = None):
    """The product's CityData of a shared dataset (ingest into a fresh home, prepare_city on
    the product's grid, or a new one of cell_size_m), pickled under cache so that later runs
    skip the ingest."""
    cached = cache / (f"{category}.pkl" if cell_size_m is None else f"{category}-{cell_size_m:g}m.pkl")
    if cached.exists():
        with open(cached, "rb") as f:
            return pickle.load(f)
    home = cache / f"home_{category}"
    os.environ["SAFETY_MODELS_HOME"] = str(home)
    os.environ.pop("SAFETY_MODELS_DB_URL", None)
    from safety_models.data import ingest
    from safety_models.data.store import Store
    from safety_models.modeling.city import prepare_city

    store = Store()
    for rel in SHARED_FILES[category]:
        ingest.ingest_path(store, shared / rel, category)
    city = prepare_city(store, category, cell_size_m=cell_size_m)
    cache.mkdir(parents=True, exist_ok=True)
    with open(cached, "wb") as f:
        pickle.dump(city, f)
    return city


def shifted_city(city, cache: Path, dx_m: float, dy_m: float):
    """The same incidents on the grid moved by (dx_m, dy_m) metres (one more row and column,
    so that nothing falls off), binned and masked as the product bins them."""
    from dataclasses import replace as dc_replace

    from safety_models.data.store import Store
    from safety_models.modeling.city import _city_from_incidents

    os.environ["SAFETY_MODELS_HOME"] = str(cache / f"home_{city.category}")
    store = Store()
    g = city.grid
    spec = dc_replace(g, origin_x_m=g.origin_x_m - g.cell_size_m + dx_m, origin_y_m=g.origin_y_m - g.cell_size_m + dy_m,
                      n_rows=g.n_rows + 1, n_cols=g.n_cols + 1)
    return _city_from_incidents(city.category, spec, city.window_hours, store.incidents(city.category),
                                store.boundary(city.category))


def splits(city, horizon_days: int | None):
    """(t_train, t_val, t_test, horizon windows) exactly as training.fit makes them."""
    from safety_models.features import FeatureConfig
    from safety_models.modeling.training import TrainConfig, split_windows

    cfg = TrainConfig(category=city.category, horizon_days=horizon_days)
    fcfg = FeatureConfig(window_hours=city.window_hours)
    first, train_end, val_end, T = split_windows(city.counts, cfg, fcfg)
    h = cfg.horizon_windows(fcfg)
    return (np.arange(first, train_end - h + 1), np.arange(train_end, val_end - h + 1),
            np.arange(val_end, T - h + 1), h)


def score(scores: np.ndarray, observed: np.ndarray, city) -> dict:
    """PAI@5, hit rate@5, pooled ROC-AUC, hit rate at FLAG_AREA, per-window rows."""
    from safety_models.evaluation import metrics

    full = metrics.score_windows(scores, observed, city.mask, threshold=0.5)
    area = metrics.score_areas(scores, observed, [FLAG_AREA], city.grid.cell_size_m, city.mask)
    return {"pai_5": full["pai"]["5"], "hit_5": full["hit_rate"]["5"], "auc": full["roc_auc"],
            "per_window": full["per_window"], "area": area["hit_rate_area"][FLAG_AREA],
            "area_cells": area["cells_flagged_area"][FLAG_AREA]}


def run(city, horizon_days: int | None, label: str, with_planes: bool, variant: dict | None = None,
        refit: bool = False) -> dict:
    from safety_models.evaluation.backtest import horizon_counts, paired_difference
    from safety_models.modeling import forecaster, stack

    t0, c0 = time.perf_counter(), time.process_time()
    t_train, t_val, t_test, h = splits(city, horizon_days)
    counts = np.asarray(city.counts, np.float32)
    mask = np.asarray(city.mask, bool)
    obs_val, obs_test = horizon_counts(counts, t_val, h), horizon_counts(counts, t_test, h)
    t_both = np.concatenate([t_val, t_test])
    n_val = len(t_val)
    raw: dict[str, np.ndarray] = {}
    names = list(forecaster.baselines_mod.baselines_for(city.category))
    for name in names:
        raw[name] = forecaster.baseline_raw_scores(name, forecaster.baseline_parameters(name), counts, city.starts,
                                                   city.window_hours, city.grid, t_both)
    t_base = time.perf_counter() - t0
    variant = dict(variant or {})
    cfg = stack.default_config(city.window_hours)
    if variant.get("half_lives_days"):
        cfg = replace(cfg, half_lives_days=variant.pop("half_lives_days"))
    if variant.get("weekday_half_life_days") and city.window_hours < 168:
        cfg = replace(cfg, weekday_half_life_days=variant.pop("weekday_half_life_days"))
    variant.pop("weekday_half_life_days", None)
    if variant.get("bandwidths_m"):
        cfg = replace(cfg, bandwidths_m=variant.pop("bandwidths_m"))
    t1 = time.perf_counter()
    model = stack.fit(counts, t_train, mask, city.grid.cell_size_m, cfg, horizon_windows=h,
                      **{k: v for k, v in variant.items() if v is not None})
    t_fit = time.perf_counter() - t1
    if model is not None:
        raw[stack.STACK] = model.score(counts, t_both, mask, city.grid.cell_size_m)
    planes = {}
    if with_planes:
        x = stack.features(counts, t_both, mask, cfg, city.grid.cell_size_m)        # (N, F, H, W)
        planes = {f"plane {n}": x[:, i] for i, n in enumerate(cfg.feature_names())}
    # the product's selection on validation among the baselines and the stack
    params = {stack.STACK: {"model": model.to_dict()}} if model is not None else {}
    blend = forecaster.choose_blend({k: v[:n_val] for k, v in raw.items()}, obs_val, mask, city.window_hours,
                                    params=params)
    if refit and model is not None:
        # what the product does after the choice: the stack refitted on train + validation
        # windows (same layout), scored on the test windows only
        again = stack.fit(counts, np.concatenate([t_train, t_val]),
                          mask, city.grid.cell_size_m, cfg, horizon_windows=h,
                          **{k: v for k, v in variant.items() if v is not None})
        if again is not None:
            raw[stack.STACK] = np.concatenate([raw[stack.STACK][:n_val],
                                               again.score(counts, t_test, mask, city.grid.cell_size_m)])
    chosen_test = forecaster.apply_blend(blend, {k: v[n_val:] for k, v in raw.items()}, mask)[0]
    rows = {}
    for name, s in {**raw, **planes}.items():
        rows[name] = {"val": score(s[:n_val], obs_val, city), "test": score(s[n_val:], obs_test, city)}
    rows["chosen"] = {"val": None, "test": score(chosen_test, obs_test, city)}
    best = max(names, key=lambda n: (rows[n]["test"]["pai_5"], rows[n]["test"]["auc"]))
    oracle_total = obs_test.sum(axis=0)
    oracle = score(np.broadcast_to(oracle_total, obs_test.shape), obs_test, city)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0

    print(f"\n== {label}, horizon {horizon_days or 1} d ({h} windows of {city.window_hours} h): "
          f"train {len(t_train)} / val {len(t_val)} / test {len(t_test)} forecasts; "
          f"{wall:.1f} s wall, {cpu:.1f} s CPU (baselines {t_base:.1f} s, stack fit {t_fit:.1f} s)")
    print(f"   {'candidate':34s} {'val PAI@5':>9s} {'val AUC':>8s} {'test PAI@5':>10s} {'test AUC':>8s} "
          f"{'test hit@' + FLAG_AREA:>16s}")
    shown = names + ([stack.STACK] if stack.STACK in raw else [])
    if planes:
        shown += sorted(planes, key=lambda n: -rows[n]["val"]["pai_5"])[:8]
    for name in shown + ["chosen"]:
        v, t = rows[name]["val"], rows[name]["test"]
        vtxt = f"{v['pai_5']:9.3f} {v['auc']:8.4f}" if v else f"{'':9s} {'':8s}"
        print(f"   {name:34s} {vtxt} {t['pai_5']:10.3f} {t['auc']:8.4f} {t['area'] if t['area'] is not None else float('nan'):16.3f}")
    print(f"   {'oracle (hindsight)':34s} {'':9s} {'':8s} {oracle['pai_5']:10.3f} "
          f"{oracle['auc']:8.4f} {oracle['area']:16.3f}")
    print(f"   chosen: {blend.describe()} -- {blend.reason}")
    out = {"label": label, "horizon": horizon_days or 1, "chosen_name": blend.describe(), "best_baseline": best}
    for who in ("chosen", stack.STACK):
        if who not in rows:
            continue
        t = rows[who]["test"]
        diffs = {}
        for key in ("pai_5", "auc"):
            d = paired_difference(np.array([w[key] for w in t["per_window"]], float),
                                  np.array([w[key] for w in rows[best]["test"]["per_window"]], float),
                                  city.window_hours, min_block=h)
            diffs[key] = d
        b = rows[best]["test"]
        gap = oracle["pai_5"] - b["pai_5"]
        share = (t["pai_5"] - b["pai_5"]) / gap if gap > 0 else float("nan")
        print(f"   {who} - {best}: PAI@5 {diffs['pai_5']['mean_difference']:+.3f} "
              f"({diffs['pai_5']['ci95'][0]:+.3f} .. {diffs['pai_5']['ci95'][1]:+.3f}), per-window AUC "
              f"{diffs['auc']['mean_difference']:+.4f} ({diffs['auc']['ci95'][0]:+.4f} .. {diffs['auc']['ci95'][1]:+.4f}); "
              f"pooled AUC {t['auc']:.4f} vs {b['auc']:.4f}; closes {share:.0%} of the gap to the oracle "
              f"({b['pai_5']:.2f} -> {oracle['pai_5']:.2f})")
        out[who] = {"pai_5": t["pai_5"], "auc": t["auc"], "diff": diffs, "gap_share": share}
    out["best"] = {"pai_5": rows[best]["test"]["pai_5"], "auc": rows[best]["test"]["auc"]}
    out["oracle"] = oracle["pai_5"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared-data", type=Path, required=True)
    ap.add_argument("--datasets", default="crime,traffic,health")
    ap.add_argument("--horizons", default="1,7,30", help="days; 1 = the next window")
    ap.add_argument("--cache", type=Path, default=Path("/tmp/bench_candidates"))
    ap.add_argument("--planes", action="store_true", help="also score every plane of the stack alone")
    ap.add_argument("--half-lives", help="stack variant: half-lives in days, e.g. 7,28,91,365,1095")
    ap.add_argument("--bandwidths", help="stack variant: bandwidths in metres, e.g. 0,250,500,1000,2000")
    ap.add_argument("--fit-days", type=float, help="stack variant: fit on the latest N days of training")
    ap.add_argument("--fit-rows", type=int, help="stack variant: city cell-windows the fit samples")
    ap.add_argument("--l2", type=float, help="stack variant: ridge penalty")
    ap.add_argument("--weekday", type=float, help="stack variant: same-weekday plane of this half-life (days)")
    ap.add_argument("--top-weight", type=float, help="stack variant: weight of the top cells' rows in the fit")
    ap.add_argument("--refit", action="store_true", help="refit the stack on train + validation after the choice")
    ap.add_argument("--cell-size", type=float, help="cells of this size (m) instead of the product's 500 m grid")
    ap.add_argument("--offsets", help="grid placement: shifts as fractions of a cell, e.g. 0:0,0.5:0,0:0.5,0.5:0.5")
    args = ap.parse_args()
    floats = lambda text: tuple(float(v) for v in text.split(",")) if text else None
    variant = {"half_lives_days": floats(args.half_lives), "bandwidths_m": floats(args.bandwidths),
               "history_days": args.fit_days, "max_rows": args.fit_rows, "l2": args.l2,
               "weekday_half_life_days": args.weekday, "top_weight": args.top_weight}
    print(f"stack variant: { {k: v for k, v in variant.items() if v is not None} or 'the defaults'}")
    print(f"load average {os.getloadavg()[0]:.1f} {os.getloadavg()[1]:.1f} {os.getloadavg()[2]:.1f}")
    labels = {"crime": "Chicago assaults", "traffic": "Barcelona accidents", "health": "Chicago West Nile"}
    results = []
    for category in args.datasets.split(","):
        city = load_city(args.shared_data, category, args.cache, args.cell_size)
        if args.offsets:
            for shift in args.offsets.split(","):
                fx, fy = (float(v) for v in shift.split(":"))
                moved = shifted_city(city, args.cache, fx * city.grid.cell_size_m, fy * city.grid.cell_size_m)
                for h in args.horizons.split(","):
                    run(moved, None if int(h) <= 1 else int(h), f"{labels[category]} grid shifted {shift} cells",
                        False, variant)
            continue
        for h in args.horizons.split(","):
            days = int(h)
            if category == "health" and days < 7:
                days = 1   # weekly windows: the next window
            results.append(run(city, None if days <= 1 else days, labels[category], args.planes, variant,
                               args.refit))
    print("\nsummary (test): chosen and stack vs the best baseline on test, PAI@5 difference (95 % interval)")
    for r in results:
        c = r.get("chosen", {})
        print(f"  {r['label']:22s} {r['horizon']:>3} d  chosen {r['chosen_name'][:40]:40s} "
              f"{c.get('pai_5', float('nan')):6.2f} vs {r['best_baseline']} {r['best']['pai_5']:6.2f}: "
              f"{c['diff']['pai_5']['mean_difference']:+.3f} ({c['diff']['pai_5']['ci95'][0]:+.3f} .. "
              f"{c['diff']['pai_5']['ci95'][1]:+.3f}); AUC {c.get('auc', float('nan')):.4f} vs {r['best']['auc']:.4f}; "
              f"oracle {r['oracle']:.2f}, gap closed {c.get('gap_share', float('nan')):.0%}")
    ru = resource.getrusage(resource.RUSAGE_SELF)
    print(f"CPU {ru.ru_utime + ru.ru_stime:.0f} s; load average now {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
