#!/usr/bin/env python3
"""A live PostgreSQL table, queried three ways (imported by run.py).

Starts a PostgreSQL of its own (Debian's `initdb`/`pg_ctl`, a temporary
directory, a free loopback port; as the `postgres` user under root), fills a
facility-month table with `generate_series`, ANALYZEs it, and times one
aggregate — positives and tests by state over the second half of the year:

- Quarry: `quarry sql` over the connected table. Projection and the filter
  are pushed down; the grouping runs in DataFusion.
- pandas: what a pandas user does — pull the table with `read_sql` (psycopg)
  and filter and group in pandas.
- PostgreSQL itself: the same SQL through `psql`.
"""
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

SQL = ("SELECT state, sum(positive) AS positive, sum(tested) AS tested FROM {t} "
       "WHERE month >= '2024-07' GROUP BY state ORDER BY state")


def pg_bin():
    base = Path("/usr/lib/postgresql")
    found = sorted(base.glob("*/bin/initdb")) if base.exists() else []
    return found[-1].parent if found else None


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Postgres:
    def __init__(self, bin_dir):
        self.bin, self.dir = bin_dir, Path(tempfile.mkdtemp(prefix="quarry-bench-pg-"))
        self.port, self.root = free_port(), os.geteuid() == 0
        if self.root:
            shutil.chown(self.dir, "postgres")
        self.run("initdb", "-U", "bench", "--auth=trust", "-D", str(self.dir / "db"))
        opts = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.dir} -c shared_buffers=512MB"
        self.run("pg_ctl", "-D", str(self.dir / "db"), "-l", str(self.dir / "log"), "-o", opts, "-w", "start")

    def run(self, tool, *args):
        cmd = [str(self.bin / tool), *args]
        if self.root:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)

    def psql_cmd(self, sql):
        return ["psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "bench", "-d", "postgres", "-q", "-c", sql]

    def url(self):
        return f"postgres://bench@127.0.0.1:{self.port}/postgres?sslmode=disable"

    def stop(self):
        self.run("pg_ctl", "-D", str(self.dir / "db"), "-m", "fast", "-w", "stop")
        shutil.rmtree(self.dir, ignore_errors=True)


def fill(pg, rows):
    states = ["Abia", "Adamawa", "Bauchi", "Benue", "Borno", "Ebonyi", "Kaduna", "Kano", "Katsina", "Kebbi",
              "Lagos", "Niger", "Ogun", "Oyo", "Plateau", "Sokoto", "Taraba", "Yobe", "Zamfara", "FCT"]
    arr = "ARRAY[" + ",".join(f"'{s}'" for s in states) + "]"
    sql = (
        "CREATE TABLE facility_months (state text, lga text, facility text, month text, tested int, positive int);"
        f"INSERT INTO facility_months SELECT ({arr})[1 + i % {len(states)}], 'LGA ' || (i % 774), "
        "'Facility ' || (i % 40000), '2024-' || lpad((1 + i % 12)::text, 2, '0'), 100 + i % 900, (i * 7) % 400 "
        f"FROM generate_series(1, {rows}) AS i; ANALYZE facility_months;"
    )
    subprocess.run(pg.psql_cmd(sql), check=True, stdout=subprocess.DEVNULL)


def run(quarry, py, rows, best_of, measure):
    """Markdown for the live-database section, or a line saying why it did not run."""
    b = pg_bin()
    if b is None:
        return "(not run: PostgreSQL is not installed — Debian: apt-get install postgresql)"
    pg = Postgres(b)
    try:
        fill(pg, rows)
        data = Path(tempfile.mkdtemp(prefix="quarry-bench-live-"))
        subprocess.run([quarry, "connect", "pg", pg.url(), "--data", str(data)], check=True, stdout=subprocess.DEVNULL)
        q = best_of(3, [quarry, "sql", "--data", str(data), "--time-limit", "600", "--format", "csv",
                        "-q", SQL.format(t="pg.facility_months")])
        pandas_code = (
            "import sys, pandas as pd, psycopg, warnings; warnings.simplefilter('ignore');"
            "c = psycopg.connect(sys.argv[1]);"
            "df = pd.read_sql('SELECT * FROM facility_months', c);"
            "r = df[df.month >= '2024-07'].groupby('state')[['positive', 'tested']].sum().sort_index(); print(len(r))"
        )
        p = best_of(1, [py, "-c", pandas_code, pg.url().replace("?sslmode=disable", "")])
        d = best_of(3, pg.psql_cmd(SQL.format(t="facility_months")))
        shutil.rmtree(data, ignore_errors=True)
    finally:
        pg.stop()
    return "\n".join([
        f"Table: {rows:,} facility-months in PostgreSQL; the query reads half of them (month ≥ 2024-07).\n",
        "| query | quarry s | pandas s (read_sql, then pandas) | PostgreSQL s (psql) | quarry vs pandas | quarry vs PostgreSQL | quarry peak MiB | pandas peak MiB |",
        "|---|---|---|---|---|---|---|---|",
        f"| positives and tests by state, second half | {q[0]:.2f} | {p[0]:.2f} | {d[0]:.2f} | "
        f"{p[0] / q[0]:.1f}× faster | {q[0] / d[0]:.1f}× the time | {q[1]:.0f} | {p[1]:.0f} |",
    ])
