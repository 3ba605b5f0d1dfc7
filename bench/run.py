#!/usr/bin/env python3
"""Quarry benchmarks, run side by side with pandas (and DuckDB) in one run.

    python3 bench/run.py            # full: 1 GB CSV, 200k-row XLSX, SQL over the CSV's ~16M rows
    python3 bench/run.py --quick    # small sizes, for a smoke run
    python3 bench/run.py --live-only --live-rows 10000000   # only the live PostgreSQL section

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
    # Every run: a no-op when the pins are installed, an update when they changed.
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
    ap.add_argument("--live-rows", type=int, default=10_000_000)
    ap.add_argument("--ingest-rows", type=int, default=3_000_000, help="rows of the CSV the ingest pairs load")
    ap.add_argument("--beyond-mib", type=int, default=512,
                    help="the ingest worker's memory limit for the larger-than-memory load of the big CSV")
    ap.add_argument("--ingest-only", action="store_true", help="run only the loading pairs and print them")
    ap.add_argument("--cluster-only", action="store_true",
                    help="run only the Ballista section (a build with --features ballista) and replace it in bench/RESULTS.md")
    ap.add_argument("--live-only", action="store_true",
                    help="run only the live-database section and replace it in bench/RESULTS.md")
    a = ap.parse_args()
    if a.quick:
        a.csv_mb, a.xlsx_rows, a.ingest_rows = 50, 20_000, 200_000
    # With Ballista built in where the cluster section runs (it needs it, and
    # nothing else changes); the sections run alone use the default build.
    features = [] if (a.ingest_only or a.live_only) else ["--features", "ballista"]
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "quarry-cli", *features], cwd=ROOT, check=True)
    py = ensure_venv()
    import live
    if a.live_only:
        section = live_section(live.run(str(QUARRY), str(py), a.live_rows, best_of, measure), a)
        print(section)
        if not a.no_write:
            text = (BENCH / "RESULTS.md").read_text()
            head = text.split(LIVE_HEADING)[0].rstrip() + "\n\n"
            (BENCH / "RESULTS.md").write_text(head + section + "\n")
        return
    DATA.mkdir(parents=True, exist_ok=True)
    csv = DATA / f"big_{a.csv_mb}mb.csv"
    xlsx = DATA / f"big_{a.xlsx_rows}.xlsx"
    rows = a.csv_mb * 1024 * 1024 // 68  # about 68 bytes a row
    if not csv.exists():
        subprocess.run([str(QUARRY), "gen", "csv", str(csv), "--rows", str(rows)], check=True)
    if not xlsx.exists():
        subprocess.run([str(QUARRY), "gen", "xlsx", str(xlsx), "--rows", str(a.xlsx_rows)], check=True)

    if a.cluster_only:
        section = cluster_section(py, csv, a)
        print(section)
        if not a.no_write:
            replace_section(CLUSTER_HEADING, section)
        return
    import ingest
    small_csv = DATA / f"ingest_{a.ingest_rows}.csv"
    if not small_csv.exists():
        subprocess.run([str(QUARRY), "gen", "csv", str(small_csv), "--rows", str(a.ingest_rows)], check=True)
    table = ingest.table(str(QUARRY), str(py), small_csv, xlsx, DATA, measure)
    print(table)
    beyond = ingest.beyond_memory(str(QUARRY), csv, DATA, measure, a.beyond_mib)
    print(beyond)
    if a.ingest_only:
        return
    sql_table = sql_bench(py, csv)
    print(sql_table)
    ask_table = ask_bench()
    print(ask_table)
    py_table = python_bench()
    print(py_table)
    import load
    load_table = load.table(load.run(str(QUARRY), 50, 60))
    print(load_table)
    live_text = live_section(live.run(str(QUARRY), str(py), a.live_rows, best_of, measure), a)
    print(live_text)
    cluster_text = cluster_section(py, csv, a)
    print(cluster_text)
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
            "## Loading files\n\n"
            "`bench/ingest.py`: each pair runs alternately (A B A B A B), each a fresh process timed whole with its "
            "peak memory. Every rival writes Parquet, as `quarry load` does; Quarry also infers every column over all "
            "rows, applies its cleaning rules, profiles each column and writes its catalog. "
            "Targets: `quarry load` no slower than DuckDB's CSV→Parquet, at least 2× faster than pandas' default "
            "`read_csv` + `to_parquet`, at least 3× faster than pandas with calamine on XLSX, peak memory ≤ 2× the "
            "file size.\n\n"
            + table + "\n\n"
            "A CSV larger than the ingest worker's memory limit (`--ingest-limit worker_memory_bytes=…`, the "
            "worker's address space) loads with flat memory:\n\n"
            + beyond + "\n\n"
            + BUILD_TEXT.read_text() + "\n\n"
            "## SQL over the loaded CSV\n\n"
            "Each engine runs the query in a fresh process over the same Parquet file Quarry's catalog holds "
            "(Quarry: `quarry sql --data`, which starts a sandboxed worker and opens the session; pandas: "
            "`read_parquet` of the needed columns + the pandas equivalent; DuckDB: the same SQL over `read_parquet`). "
            "Every time includes process start-up: Python plus importing pandas or DuckDB (about 0.3–0.5 s), and Quarry's CLI plus a sandboxed worker. Target: Quarry within 2× of DuckDB and faster than pandas.\n\n"
            + sql_table + "\n\n"
            "## The analyst's own overhead per question\n\n"
            "`quarry bench-ask`: a fake LLM in the same process answers at once (a query, then a final answer), so "
            "the time is everything but the model: context from the catalog, two HTTP round trips, the guard, the "
            "query in a warm sandboxed worker, the filter check, the answer. Target: under 50 ms for a SQL answer.\n\n"
            + ask_table + "\n\n"
            "## Python kernel start\n\n"
            "`quarry bench-python`: time from the request (before the AST check) to the first line of user code "
            "running in the sandboxed kernel (CLOCK_MONOTONIC on both sides). Warm: a kernel from the pre-started "
            "pool (pandas, numpy, scipy, statsmodels, scikit-learn, matplotlib imported; walls up). Cold: the same "
            "with no pre-started worker (jail, interpreter and imports on the clock), and a bare "
            "`python -c \"import pandas\"` outside any sandbox. Target: under 20 ms warm.\n\n"
            + py_table + "\n\n"
            "## The web app under load\n\n"
            "`bench/load.py`: `quarry serve` on loopback and 50 concurrent conversations asking for a minute, each "
            "question in a fresh conversation (POST, then its event stream until `done`), against the fake LLM "
            "answering at once (a query, then a final answer). First event: from the POST to the first event on the "
            "stream. Memory: the server process, and with its SQL and ingest workers. Target: no errors, memory "
            "bounded.\n\n"
            + load_table + "\n\n"
            + live_text + "\n\n"
            + cluster_text + "\n"
        )


LIVE_HEADING = "## A live PostgreSQL table"
CLUSTER_HEADING = "## The same queries on a Ballista cluster"


def replace_section(heading, section):
    """Put `section` in bench/RESULTS.md in place of the one under `heading` (or at the end)."""
    text = (BENCH / "RESULTS.md").read_text()
    if heading in text:
        head, rest = text.split(heading, 1)
        nxt = rest.find("\n## ")
        tail = rest[nxt:] if nxt >= 0 else ""
        text = head.rstrip() + "\n\n" + section + "\n" + tail
    else:
        text = text.rstrip() + "\n\n" + section + "\n"
    (BENCH / "RESULTS.md").write_text(text)


def cluster_section(py, csv, a):
    """The Ballista section, stamped with its own run (it may be run alone: --cluster-only)."""
    import cluster
    data, big, rows = sql_data(py, csv)
    machine = f"{platform.machine()}, {os.cpu_count()} cores"
    return (
        f"{CLUSTER_HEADING}\n\n"
        f"Run: `python3 bench/run.py{' --cluster-only' if a.cluster_only else ''}` on "
        f"{datetime.date.today().isoformat()}, {machine}. `bench/cluster.py`: `quarry sql` on the local engine, "
        "then with `--engine ballista://…` on a scheduler and 1, then 2, executors on this machine (the cores "
        "shared between them). Every time is a whole process, best of 3.\n\n"
        + cluster.run(str(QUARRY), data, big, rows, best_of)
    )
# Measured by hand and kept beside the tables: where loading spends its time
# (perf), and each build profile's clean build time and binary size (a clean
# build takes many minutes and cannot share the machine with the timings).
BUILD_TEXT = BENCH / "MEASURED.md"


def live_section(table, a):
    """The live-database section, stamped with its own run (it may be run alone: --live-only)."""
    machine = f"{platform.machine()}, {os.cpu_count()} cores"
    return (
        f"{LIVE_HEADING}\n\n"
        f"Run: `python3 bench/run.py{' --live-only' if a.live_only else ''}` on {datetime.date.today().isoformat()}, "
        f"{machine}. `bench/live.py`: a PostgreSQL started for the run, one aggregate three ways — Quarry over the "
        "connected table (columns and filter pushed down, grouping in DataFusion), pandas pulling the table with "
        "`read_sql` and grouping itself, and PostgreSQL running the SQL. Every time includes process start-up. "
        "Target: Quarry well ahead of pulling the rows into pandas; PostgreSQL itself is the floor (Quarry does not "
        "push aggregates down yet).\n\n" + table
    )


SQL_QUERIES = [
    ("group-by: 5 aggregates by state",
     "SELECT state, count(*) AS n, sum(tested) AS tested, sum(positive) AS positive, avg(positivity) AS p "
     "FROM big GROUP BY state ORDER BY state",
     "df=pd.read_parquet(P, columns=['state','tested','positive','positivity']);"
     "r=df.groupby('state').agg(n=('tested','size'),tested=('tested','sum'),positive=('positive','sum'),p=('positivity','mean')).sort_index()"),
    ("join with a population table, rate per 1000",
     "SELECT p.state, sum(b.positive) * 1000.0 / max(p.population) AS rate FROM big b "
     "JOIN pop p ON b.state = p.state GROUP BY p.state ORDER BY rate DESC",
     "df=pd.read_parquet(P, columns=['state','positive']); pop=pd.read_parquet(Q);"
     "m=df.merge(pop,on='state'); g=m.groupby('state').agg(pos=('positive','sum'),popn=('population','max'));"
     "r=(g.pos*1000.0/g.popn).sort_values(ascending=False)"),
    ("top 10 facilities by positives (high-cardinality group-by)",
     "SELECT facility, sum(positive) AS s FROM big GROUP BY facility ORDER BY s DESC LIMIT 10",
     "df=pd.read_parquet(P, columns=['facility','positive']);"
     "r=df.groupby('facility')['positive'].sum().nlargest(10)"),
    ("filter + distinct count",
     "SELECT count(DISTINCT facility) FROM big WHERE tested > 1000 AND remark IS NULL",
     "df=pd.read_parquet(P, columns=['facility','tested','remark']);"
     "r=df[(df.tested>1000)&df.remark.isna()].facility.nunique()"),
]


def sql_data(py, csv):
    """The benchmark CSV and a population table loaded by `quarry load`: (data dir, big's table name, rows)."""
    data = DATA / "sql-data"
    pop_csv = DATA / "pop.csv"
    states = subprocess.run([str(py), "-c",
                             "import pandas as pd,sys; print('\\n'.join(sorted(pd.read_csv(sys.argv[1], usecols=['state'], nrows=200000).state.unique())))",
                             str(csv)], check=True, capture_output=True, text=True).stdout.split()
    pop_csv.write_text("state,population\n" + "".join(f"{s},{(i + 1) * 1_000_000}\n" for i, s in enumerate(states)))
    subprocess.run([str(QUARRY), "load", "--data", str(data), str(csv), str(pop_csv)], check=True,
                   stdout=subprocess.DEVNULL)
    return (data,) + parquet_of(py, data, csv)[1:]


def parquet_of(py, data, csv):
    """The loaded tables' Parquet files, big's table name and row count."""
    parquet = {}
    for name in ["big", "pop"]:
        stem = csv.stem if name == "big" else "pop"
        hits = sorted((data / "tables").glob(f"{stem}*/v*.parquet"))
        if not hits:
            raise SystemExit(f"no Parquet for {stem} under {data}")
        parquet[name] = hits[-1]
    rows = subprocess.run([str(py), "-c", "import pyarrow.parquet as pq,sys; print(pq.ParquetFile(sys.argv[1]).metadata.num_rows)",
                           str(parquet["big"])], check=True, capture_output=True, text=True).stdout.strip()
    return parquet, parquet["big"].parent.name, int(rows)


def sql_bench(py, csv):
    """Time the SQL kernel against pandas and DuckDB on the same Parquet files."""
    data, big_name, rows = sql_data(py, csv)
    parquet = parquet_of(py, data, csv)[0]
    lines = [
        f"Table `big`: {rows:,} rows.\n",
        "| query | quarry s | pandas s | duckdb s | quarry vs pandas | quarry vs duckdb | quarry peak MiB | pandas peak MiB | duckdb peak MiB |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for label, sql, pandas_code in SQL_QUERIES:
        qsql = sql.replace("FROM big", f'FROM "{big_name}"')
        q = best_of(3, [str(QUARRY), "sql", "--data", str(data), "--time-limit", "300", "--max-rows", "100",
                        "--format", "csv", "-q", qsql])
        p = best_of(3, [str(py), "-c", "import pandas as pd,sys; P,Q=sys.argv[1],sys.argv[2];" + pandas_code,
                        str(parquet["big"]), str(parquet["pop"])])
        dsql = sql.replace("FROM big", "FROM read_parquet($1)").replace("JOIN pop", "JOIN read_parquet($2)")
        # DuckDB wants exactly the parameters a statement uses.
        d = best_of(3, [str(py), "-c",
                        "import duckdb,sys; c=duckdb.connect(); q=sys.argv[1]; "
                        "c.execute(q, sys.argv[2:4] if '$2' in q else sys.argv[2:3]).fetchall()",
                        dsql, str(parquet["big"]), str(parquet["pop"])])
        lines.append(f"| {label} | {q[0]:.2f} | {p[0]:.2f} | {d[0]:.2f} | {p[0] / q[0]:.1f}× faster | "
                     f"{q[0] / d[0]:.1f}× the time | {q[1]:.0f} | {p[1]:.0f} | {d[1]:.0f} |")
    return "\n".join(lines)


def ask_bench():
    """Per-question overhead of the analyst on the NMEP workbook (or the demo workbook without ../shared)."""
    import json
    shared = ROOT.parent / "shared" / "fixtures" / "nmep_tpr_2024.xlsx"
    data = DATA / "ask-data"
    subprocess.run(["rm", "-rf", str(data)], check=True)
    if shared.exists():
        wb = shared
    else:
        subprocess.run([str(QUARRY), "demo", "--dir", str(DATA / "demo"), "--data", str(data)], check=True,
                       stdout=subprocess.DEVNULL)
        wb = DATA / "demo" / "clinic_reports_2024.xlsx"
    subprocess.run([str(QUARRY), "load", "--data", str(data), str(wb)], check=True, stdout=subprocess.DEVNULL)
    out = subprocess.run([str(QUARRY), "bench-ask", "--data", str(data), "--n", "100"], check=True,
                         capture_output=True, text=True).stdout
    r = json.loads(out)
    return "\n".join([
        "| workbook | table | questions | median ms | p95 ms | target |",
        "|---|---|---|---|---|---|",
        f"| {wb.name} | {r['table']} | {r['questions']} | {r['median_ms']:.1f} | {r['p95_ms']:.1f} | < 50 ms |",
    ])


def python_bench():
    """Request to first line of user code: warm pool vs cold start."""
    import json
    subprocess.run([str(QUARRY), "setup-python"], check=True, stdout=subprocess.DEVNULL)
    out = subprocess.run([str(QUARRY), "bench-python", "--n", "50"], check=True,
                         capture_output=True, text=True).stdout
    r = json.loads(out.strip().splitlines()[-1])
    return "\n".join([
        "| start | median ms | vs cold `import pandas` | target |",
        "|---|---|---|---|",
        f"| warm kernel, same conversation | {r['warm_same_kernel_ms']:.2f} | "
        f"{r['cold_import_pandas_ms'] / r['warm_same_kernel_ms']:.0f}× faster | < 20 ms |",
        f"| warm kernel, new conversation (pre-started) | {r['warm_new_conversation_ms']:.2f} | "
        f"{r['cold_import_pandas_ms'] / r['warm_new_conversation_ms']:.0f}× faster | < 20 ms |",
        f"| cold kernel (jail + all imports) | {r['cold_kernel_ms']:.0f} | — | — |",
        f"| cold `python -c \"import pandas\"` | {r['cold_import_pandas_ms']:.0f} | 1× | — |",
    ])


if __name__ == "__main__":
    main()
