# Quarry's Python kernel. Runs inside the jail (quarry-sandbox/src/jail.rs):
# no network, no other processes, read-only Python installation, a tmpfs
# scratch directory as cwd. It speaks Quarry's frame protocol on two private
# descriptors: u32 header length, JSON header, u64 payload length, payload.
# Results leave as JSON, Arrow IPC streams and PNG images only.
import os
import sys
import struct
import json
import keyword
import time

_T0 = time.monotonic()
_PID = os.getpid()

# The protocol gets private copies of stdin/stdout; fd 0 reads /dev/null and
# fd 1 goes to stderr, so stray writes from C code cannot corrupt frames.
_IN = os.fdopen(os.dup(0), "rb", buffering=0)
_OUT = os.fdopen(os.dup(1), "wb")
_null = os.open("/dev/null", os.O_RDONLY)
os.dup2(_null, 0)
os.dup2(2, 1)
sys.stdin = open(os.devnull)
sys.stdout = os.fdopen(1, "w", closefd=False)


def _read_exact(n):
    buf = bytearray()
    while len(buf) < n:
        chunk = _IN.read(n - len(buf))
        if not chunk:
            raise EOFError
        buf += chunk
    return bytes(buf)


def _recv():
    try:
        (hl,) = struct.unpack("<I", _read_exact(4))
    except EOFError:
        return None
    header = json.loads(_read_exact(hl))
    (pl,) = struct.unpack("<Q", _read_exact(8))
    return header, (_read_exact(pl) if pl else b"")


def _send(header, payload=b""):
    h = json.dumps(header, default=str, allow_nan=False).encode()
    _OUT.write(struct.pack("<I", len(h)) + h + struct.pack("<Q", len(payload)))
    _OUT.write(payload)
    _OUT.flush()


# matplotlib: a private config dir in scratch, seeded with the font cache
# that `quarry setup-python` built, so no worker rebuilds it.
_mpl = os.path.join(os.getcwd(), ".matplotlib")
os.makedirs(_mpl, exist_ok=True)
os.environ["MPLCONFIGDIR"] = _mpl
os.environ["MPLBACKEND"] = "Agg"
_seed = os.environ.get("QUARRY_MPL_CACHE", "")
if _seed and os.path.isdir(_seed):
    import shutil

    for _f in os.listdir(_seed):
        if _f.endswith(".json"):
            shutil.copy(os.path.join(_seed, _f), _mpl)

import io  # noqa: E402
import ast  # noqa: E402
import math  # noqa: E402
import difflib  # noqa: E402
import resource  # noqa: E402
import traceback  # noqa: E402
import contextlib  # noqa: E402
import collections.abc  # noqa: E402
import warnings  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pyarrow as pa  # noqa: E402
import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import scipy  # noqa: E402
import scipy.stats  # noqa: E402
import statsmodels.api as sm  # noqa: E402
import statsmodels.formula.api as smf  # noqa: E402
import sklearn  # noqa: E402
import sklearn.linear_model  # noqa: E402

warnings.filterwarnings("ignore", category=FutureWarning)
warnings.filterwarnings("ignore", category=DeprecationWarning)
pd.set_option("display.width", 160)
pd.set_option("display.max_columns", 40)


class SqlError(Exception):
    """The SQL engine refused or failed a query passed to sql()."""


def _arrow_to_pandas(payload):
    if not payload:
        return pd.DataFrame()
    table = pa.ipc.open_stream(payload).read_all()
    return table.to_pandas()


def _ask(request):
    """Ask the host for data mid-run; it answers with one frame."""
    _send(request)
    msg = _recv()
    if msg is None:
        raise SystemExit(0)
    header, payload = msg
    if not header.get("ok"):
        raise SqlError(header.get("error", "the engine failed"))
    if header.get("truncated"):
        print(
            f"note: {request.get('name') or 'the query'} returned the first {header.get('rows')} rows only; "
            "aggregate with sql() to see all of it"
        )
    return _arrow_to_pandas(payload)


def sql(query):
    """Run a SQL query on Quarry's engine (DataFusion) and return a DataFrame."""
    if not isinstance(query, str):
        raise TypeError("sql() takes the query as a string")
    return _ask({"kind": "sql", "sql": query})


class _Tables(collections.abc.Mapping):
    """The loaded tables by name; each is fetched (as Arrow) on first use."""

    def __init__(self):
        self._names = []
        self._loaded = {}

    def _set(self, names):
        self._names = list(names)

    def __getitem__(self, name):
        if name in self._loaded:
            return self._loaded[name]
        if name not in self._names:
            close = difflib.get_close_matches(str(name), self._names, n=3)
            hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
            raise KeyError(f"no table {name!r}; tables: {', '.join(self._names)}.{hint}")
        df = _ask({"kind": "table_request", "name": name})
        self._loaded[name] = df
        return df

    def __iter__(self):
        return iter(self._names)

    def __len__(self):
        return len(self._names)

    def __repr__(self):
        return f"dfs({', '.join(self._names)})"


_SHOWN = []


def show(obj, name=None):
    """Return a DataFrame (or Series) to Quarry as a result table."""
    _SHOWN.append((obj, name))


display = show


def _fresh_namespace():
    return {
        "__name__": "__main__",
        "pd": pd,
        "np": np,
        "plt": plt,
        "scipy": scipy,
        "stats": scipy.stats,
        "sm": sm,
        "smf": smf,
        "sql": sql,
        "SqlError": SqlError,
        "dfs": _Tables(),
        "show": show,
        "display": display,
    }


class _Capped(io.TextIOBase):
    def __init__(self, cap):
        self.cap = cap
        self.parts = []
        self.size = 0
        self.dropped = 0

    def writable(self):
        return True

    def write(self, s):
        s = str(s)
        room = self.cap - self.size
        if room > 0:
            self.parts.append(s[:room])
            self.size += min(len(s), room)
        if len(s) > room:
            self.dropped += len(s) - max(room, 0)
        return len(s)

    def text(self):
        return "".join(self.parts)


def _frame_of(obj):
    if isinstance(obj, pd.Series):
        obj = obj.to_frame(name=str(obj.name) if obj.name is not None else "value")
    if not isinstance(obj, pd.DataFrame):
        return None
    df = obj
    if not isinstance(df.index, pd.RangeIndex) or df.index.name is not None:
        df = df.reset_index()
    if isinstance(df.columns, pd.MultiIndex):
        df.columns = [" ".join(str(p) for p in c if str(p) != "").strip() for c in df.columns]
    names, seen = [], {}
    for c in df.columns:
        n = str(c)
        if n in seen:
            seen[n] += 1
            n = f"{n}_{seen[n]}"
        else:
            seen[n] = 0
        names.append(n)
    df = df.copy()
    df.columns = names
    return df


def _table_payload(df, max_rows):
    rows = len(df)
    head = df.head(max_rows)
    try:
        table = pa.Table.from_pandas(head, preserve_index=False)
    except Exception:
        table = pa.Table.from_pandas(head.astype(str), preserve_index=False)
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema) as w:
        w.write_table(table)
    return rows, sink.getvalue()


def _plain(value, depth=0):
    """A JSON-able copy of value, or None when it is not plain data."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        v = float(value)
        return v if math.isfinite(v) else None
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, (pd.Timestamp,)):
        return value.isoformat()
    if depth < 4 and isinstance(value, (list, tuple)) and len(value) <= 1000:
        out = [_plain(v, depth + 1) for v in value]
        return out if all(o is not None or v is None for o, v in zip(out, value)) else None
    if depth < 4 and isinstance(value, dict) and len(value) <= 1000:
        out = {str(k): _plain(v, depth + 1) for k, v in value.items()}
        return out if all(out[str(k)] is not None or v is None for k, v in value.items()) else None
    return None


def _error(e, code):
    line = None
    if isinstance(e, SyntaxError) and e.filename == "<cell>":
        line = e.lineno
    tb = e.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<cell>":
            line = tb.tb_lineno
        tb = tb.tb_next
    message = f"{type(e).__name__}: {e}"
    if isinstance(e, MemoryError):
        message = "MemoryError: the code ran out of memory (the kernel's memory limit)"
    hint = None
    if isinstance(e, KeyError) and e.args and isinstance(e.args[0], str):
        cols = []
        for v in list(_NS.values()):
            if isinstance(v, pd.DataFrame):
                cols.extend(str(c) for c in v.columns)
        close = difflib.get_close_matches(e.args[0], cols, n=3)
        if close:
            hint = f"closest columns: {', '.join(close)}"
    if isinstance(e, NameError) and getattr(e, "name", None) == "df" and len(_NS["dfs"]) != 1:
        hint = f"df exists only when there is one table; use dfs[name] with one of: {', '.join(_NS['dfs'])}"
    src = code.splitlines()[line - 1].strip() if line and 0 < line <= len(code.splitlines()) else None
    return {"type": type(e).__name__, "message": message, "line": line, "source": src, "hint": hint}


def _arm_cpu(seconds):
    used = resource.getrusage(resource.RUSAGE_SELF)
    spent = int(used.ru_utime + used.ru_stime)
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    soft = spent + int(seconds)
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))


def _others_running():
    # Only meaningful as PID 1 of the kernel's own PID namespace; without
    # namespaces (--unsafe-python) /proc shows the host's processes.
    if os.getpid() != 1:
        return []
    try:
        return [p for p in os.listdir("/proc") if p.isdigit() and int(p) != os.getpid()]
    except OSError:
        return []


def _run(h):
    global _SHOWN
    limits = h.get("limits", {})
    max_rows = int(limits.get("max_rows", 10000))
    max_output = int(limits.get("max_output", 65536))
    max_figures = int(limits.get("max_figures", 10))
    _arm_cpu(limits.get("cpu_seconds", 65))
    code = h.get("code", "")
    _NS["dfs"]._set(h.get("tables", []))
    # A saved analysis's parameters: plain values, set as variables (never code).
    for name, value in (h.get("params") or {}).items():
        if name.isidentifier() and not keyword.iskeyword(name) and not name.startswith("_"):
            if value is None or isinstance(value, (str, int, float, bool)):
                _NS[name] = value
    _SHOWN = []
    out = _Capped(max_output)
    value, error, recycle = None, None, False
    started = time.monotonic_ns()
    try:
        tree = ast.parse(code, "<cell>", "exec")
        names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
        tables = h.get("tables", [])
        if "df" in names and "df" not in _NS and len(tables) == 1:
            _NS["df"] = _NS["dfs"][tables[0]]
        last = None
        if tree.body and isinstance(tree.body[-1], ast.Expr):
            last = ast.Expression(tree.body.pop().value)
        assigns_result = any(
            isinstance(n, ast.Name) and n.id == "result" and isinstance(n.ctx, ast.Store) for n in ast.walk(tree)
        )
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            exec(compile(tree, "<cell>", "exec"), _NS)
            if last is not None:
                value = eval(compile(last, "<cell>", "eval"), _NS)
            elif assigns_result:
                value = _NS.get("result")
    except BaseException as e:  # noqa: B036 -- user code may raise anything, SystemExit included
        if os.getpid() != _PID:
            os._exit(0)
        error = _error(e, code)
        recycle = isinstance(e, (MemoryError, KeyboardInterrupt))
    if os.getpid() != _PID:
        os._exit(0)
    elapsed_ms = (time.monotonic_ns() - started) / 1e6

    # Results leave as Arrow (tables), PNG (figures) and JSON (everything else).
    tables_sent = 0
    shown = list(_SHOWN)
    if error is None and value is not None and _frame_of(value) is not None:
        shown.append((value, "result"))
        value = None
    for obj, name in shown[:20]:
        try:
            df = _frame_of(obj)
            if df is None:
                continue
            rows, payload = _table_payload(df, max_rows)
            _send(
                {"kind": "table", "name": name or f"table_{tables_sent + 1}", "rows": rows,
                 "truncated": rows > max_rows},
                payload,
            )
            tables_sent += 1
        except Exception as e:  # a table that cannot be converted is reported, not fatal
            out.write(f"\n[quarry] could not return a table: {type(e).__name__}: {e}\n")
    figures = 0
    for num in plt.get_fignums()[:max_figures]:
        try:
            buf = io.BytesIO()
            plt.figure(num).savefig(buf, format="png", dpi=100, bbox_inches="tight")
            _send({"kind": "figure", "n": figures}, buf.getvalue())
            figures += 1
        except Exception as e:
            out.write(f"\n[quarry] could not render a figure: {type(e).__name__}: {e}\n")
    plt.close("all")
    plain = None
    if value is not None:
        plain = _plain(value)
        if plain is None:
            try:
                plain = {"repr": str(value)[:max_output]}
            except Exception as e:
                plain = {"repr": f"<unprintable {type(value).__name__}: {type(e).__name__}>"}
    others = _others_running()
    if others:
        recycle = True
        out.write(f"\n[quarry] the code left {len(others)} other process(es) running; the kernel will be restarted\n")
    _send(
        {
            "kind": "done",
            "ok": error is None,
            "stdout": out.text(),
            "stdout_dropped": out.dropped,
            "value": plain,
            "error": error,
            "started_ns": started,
            "elapsed_ms": elapsed_ms,
            "recycle": recycle,
        }
    )


_NS = _fresh_namespace()
_send({"kind": "ready", "import_ms": (time.monotonic() - _T0) * 1000, "python": sys.version.split()[0]})

while True:
    _msg = _recv()
    if _msg is None:
        break
    _h, _ = _msg
    _op = _h.get("op")
    if _op == "run":
        _run(_h)
    elif _op == "ping":
        _send({"kind": "pong"})
    else:
        _send({"kind": "done", "ok": False, "error": {"type": "Protocol", "message": f"unknown op {_op!r}"}})
