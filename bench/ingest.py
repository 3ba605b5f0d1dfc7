"""Loading files: `quarry load` side by side with what users would run instead.

Each pair (A = Quarry, B = a rival) runs alternately, A B A B A B, each in a
fresh process timed whole (start-up included) with its peak memory (max
RSS). The table gives the median wall time of each side, the median of the
three per-pair ratios A/B, the target and whether it is met. Every rival
turns the file into Parquet, as `quarry load` does (Quarry also infers every
column over all rows, cleans, profiles and writes its catalog).

Called by bench/run.py (`table(...)`); not a test.
"""
import statistics
import subprocess

DUCKDB = ("import duckdb,sys; c=duckdb.connect(); "
          "c.execute(\"COPY (SELECT * FROM read_csv_auto(?)) TO '\" + sys.argv[2] + \"' (FORMAT PARQUET)\", [sys.argv[1]])")
PANDAS = "import pandas as pd,sys; pd.read_csv(sys.argv[1]).to_parquet(sys.argv[2])"
PANDAS_ARROW = "import pandas as pd,sys; pd.read_csv(sys.argv[1], engine='pyarrow').to_parquet(sys.argv[2])"
POLARS = "import polars as pl,sys; pl.read_csv(sys.argv[1]).write_parquet(sys.argv[2])"
XLSX_CALAMINE = "import pandas as pd,sys; pd.read_excel(sys.argv[1], engine='calamine').to_parquet(sys.argv[2])"
XLSX_OPENPYXL = "import pandas as pd,sys; pd.read_excel(sys.argv[1], engine='openpyxl').to_parquet(sys.argv[2])"

VERSIONS = ("import importlib.metadata as m, json; "
            "print(json.dumps({p: m.version(p) for p in ['pandas','duckdb','polars','pyarrow','python-calamine','openpyxl']}))")


def versions(py):
    import json
    out = subprocess.run([py, "-c", VERSIONS], check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def pairs(quarry, py, csv, xlsx, data_dir, measure):
    """[(label, rival, version key, target ratio or None, A runs, B runs)]"""
    out = data_dir / "rival.parquet"
    qdata = data_dir / "quarry-data"

    def quarry_load(path):
        subprocess.run(["rm", "-rf", str(qdata)], check=True)
        return measure([quarry, "load", "--data", str(qdata), str(path)])

    def rival(code, path):
        out.unlink(missing_ok=True)
        return measure([py, "-c", code, str(path), str(out)])

    plan = [
        (csv, "DuckDB `COPY (SELECT * FROM read_csv_auto(…)) TO '….parquet'`", "duckdb", 1.0, DUCKDB),
        (csv, "pandas `read_csv` + `to_parquet`", "pandas", 0.5, PANDAS),
        (csv, "pandas `read_csv(engine=\"pyarrow\")` + `to_parquet`", "pandas", None, PANDAS_ARROW),
        (csv, "Polars `read_csv` + `write_parquet`", "polars", None, POLARS),
        (xlsx, "pandas `read_excel(engine=\"calamine\")` + `to_parquet`", "python-calamine", 1 / 3, XLSX_CALAMINE),
        (xlsx, "pandas `read_excel(engine=\"openpyxl\")` + `to_parquet`", "openpyxl", None, XLSX_OPENPYXL),
    ]
    rows = []
    for path, label, key, target, code in plan:
        a_runs, b_runs = [], []
        for _ in range(3):
            a_runs.append(quarry_load(path))
            b_runs.append(rival(code, path))
        rows.append((path, label, key, target, a_runs, b_runs))
    return rows


def table(quarry, py, csv, xlsx, data_dir, measure):
    v = versions(py)
    rows = pairs(quarry, py, csv, xlsx, data_dir, measure)
    lines = [
        "| file | A / B | B's version | A wall s | B wall s | A/B wall, median of 3 pairs | target A/B | met | "
        "A peak MiB | B peak MiB | A peak / file size |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for path, label, key, target, a_runs, b_runs in rows:
        size = path.stat().st_size / 2**20
        ratio = statistics.median(a[0] / b[0] for a, b in zip(a_runs, b_runs))
        a_s = statistics.median(a[0] for a in a_runs)
        b_s = statistics.median(b[0] for b in b_runs)
        a_mb = max(a[1] for a in a_runs)
        b_mb = max(b[1] for b in b_runs)
        if target is None:
            t, met = "—", "—"
        else:
            t = f"≤ {target:.2f}"
            met = "yes" if ratio <= target else f"no: {ratio / target:.2f}× over"
        version = f"{key} {v.get(key, '?')}"
        if key != "pandas" and key != "duckdb" and key != "polars":
            version += f", pandas {v.get('pandas', '?')}"
        lines.append(
            f"| {path.name} ({size:.0f} MiB) | `quarry load` / {label} | {version} | {a_s:.2f} | {b_s:.2f} | "
            f"{ratio:.2f} | {t} | {met} | {a_mb:.0f} | {b_mb:.0f} | {a_mb / size:.2f} |"
        )
    lines.append("")
    lines.append(f"pyarrow {v.get('pyarrow', '?')} writes the pandas rows' Parquet.")
    return "\n".join(lines)


def beyond_memory(quarry, csv, data_dir, measure, limit_mib):
    """A CSV bigger than the ingest worker's memory limit: it loads, with flat memory."""
    qdata = data_dir / "quarry-small"
    subprocess.run(["rm", "-rf", str(qdata)], check=True)
    secs, peak = measure([quarry, "load", "--ingest-limit", f"worker_memory_bytes={limit_mib}M",
                          "--data", str(qdata), str(csv)])
    size = csv.stat().st_size / 2**20
    return "\n".join([
        "| file | worker memory limit MiB | loaded in s | peak MiB | peak / file size |",
        "|---|---|---|---|---|",
        f"| {csv.name} ({size:.0f} MiB) | {limit_mib} | {secs:.2f} | {peak:.0f} | {peak / size:.2f} |",
    ])
