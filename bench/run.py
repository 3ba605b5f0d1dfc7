#!/usr/bin/env python3
"""Quarry benchmarks, run side by side with pandas (and DuckDB) in one run.

    python3 bench/run.py            # full: 1 GB CSV, 200k-row XLSX
    python3 bench/run.py --quick    # small sizes, for a smoke run

Builds `quarry` in release mode, generates the inputs with `quarry gen` (the
project's own generator), then times each tool in its own process and reads
its peak memory (max RSS). Prints a Markdown table and, unless --no-write,
replaces bench/RESULTS.md with it, stamped with date and machine.
Speed and memory targets live here, not in tests.
"""
import argparse
import datetime
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
DATA = BENCH / "data"
VENV = BENCH / ".venv"
QUARRY = ROOT / "target" / "release" / "quarry"


def ensure_venv():
    py = VENV / "bin" / "python"
    if not py.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", "-r", str(BENCH / "requirements.txt")], check=True)
    return py


def measure(cmd, env=None):
    """Run cmd in a child; return (seconds, peak RSS in MiB)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.perf_counter()
    # A fresh process per measurement so ru_maxrss of children is this child's.
    wrapper = [sys.executable, "-c",
               "import resource,subprocess,sys;"
               "r=subprocess.run(sys.argv[1:]);"
               "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr);"
               "sys.exit(r.returncode)"] + cmd
    p = subprocess.run(wrapper, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    dt = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{p.stderr}")
    rss_kib = int(p.stderr.strip().splitlines()[-1])
    del before
    return dt, rss_kib / 1024


def best_of(n, cmd, prep=None):
    runs = []
    for _ in range(n):
        if prep:
            prep()
        runs.append(measure(cmd))
    return min(r[0] for r in runs), max(r[1] for r in runs)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--csv-mb", type=int, default=1024)
    ap.add_argument("--xlsx-rows", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--no-write", action="store_true")
    a = ap.parse_args()
    if a.quick:
        a.csv_mb, a.xlsx_rows = 50, 20_000
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "quarry-cli"], cwd=ROOT, check=True)
    py = ensure_venv()
    DATA.mkdir(parents=True, exist_ok=True)
    csv = DATA / f"big_{a.csv_mb}mb.csv"
    xlsx = DATA / f"big_{a.xlsx_rows}.xlsx"
    rows = a.csv_mb * 1024 * 1024 // 68  # about 68 bytes a row
    if not csv.exists():
        subprocess.run([str(QUARRY), "gen", "csv", str(csv), "--rows", str(rows)], check=True)
    if not xlsx.exists():
        subprocess.run([str(QUARRY), "gen", "xlsx", str(xlsx), "--rows", str(a.xlsx_rows)], check=True)

    out_dir = DATA / "quarry-data"

    def fresh():
        subprocess.run(["rm", "-rf", str(out_dir)], check=True)

    results = []
    for label, path, pandas_code in [
        ("CSV", csv, "import pandas as pd,sys; df=pd.read_csv(sys.argv[1]); print(len(df))"),
        ("XLSX", xlsx, "import pandas as pd,sys; df=pd.read_excel(sys.argv[1]); print(len(df))"),
    ]:
        size_mb = path.stat().st_size / 2**20
        q = best_of(a.repeat, [str(QUARRY), "load", "--data", str(out_dir), str(path)], prep=fresh)
        p = best_of(a.repeat, [str(py), "-c", pandas_code, str(path)])
        row = {"what": f"load {label} ({size_mb:.0f} MiB)", "quarry_s": q[0], "quarry_mb": q[1],
               "pandas_s": p[0], "pandas_mb": p[1], "file_mb": size_mb}
        if label == "CSV":
            d = best_of(a.repeat, [str(py), "-c",
                                   "import duckdb,sys; c=duckdb.connect(); "
                                   "c.execute(\"COPY (SELECT * FROM read_csv_auto(?)) TO '/dev/null' (FORMAT PARQUET)\", [sys.argv[1]])",
                                   str(path)])
            row["duckdb_s"], row["duckdb_mb"] = d
        results.append(row)

    lines = [
        "| benchmark | quarry s | pandas s | speed-up vs pandas | duckdb s (CSV→Parquet) | quarry peak MiB | pandas peak MiB | quarry peak / file size |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        duck = f"{r['duckdb_s']:.2f}" if "duckdb_s" in r else "—"
        lines.append(
            f"| {r['what']} | {r['quarry_s']:.2f} | {r['pandas_s']:.2f} | {r['pandas_s'] / r['quarry_s']:.1f}× | {duck} "
            f"| {r['quarry_mb']:.0f} | {r['pandas_mb']:.0f} | {r['quarry_mb'] / r['file_mb']:.2f} |"
        )
    table = "\n".join(lines)
    print(table)
    if not a.no_write:
        machine = f"{platform.machine()}, {os.cpu_count()} cores, {platform.system()} {platform.release()}"
        try:
            mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
            machine += f", {mem:.0f} GiB RAM"
        except (ValueError, OSError):
            pass
        (BENCH / "RESULTS.md").write_text(
            f"# Benchmark results\n\nRun: `python3 bench/run.py{' --quick' if a.quick else ''}` on "
            f"{datetime.date.today().isoformat()}, {machine}.\n\n"
            "Quarry's `load` detects, infers over every row (two passes), writes Parquet and the catalog, "
            "and profiles each column; pandas `read_csv`/`read_excel` only parse into memory; DuckDB converts the CSV "
            "to Parquet. Targets: ≥ 5× pandas on CSV, ≥ 3× on XLSX, peak memory ≤ 2× the file size.\n\n"
            + table + "\n"
        )


if __name__ == "__main__":
    main()
