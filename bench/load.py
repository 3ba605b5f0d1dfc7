"""Load test of `quarry serve` on loopback: N concurrent conversations ask
questions for a while against the fake LLM (which answers at once: a query,
then a final answer). Reports questions answered, errors, time from the POST
to the first event on the stream (p50/p99), and peak memory of the server
and its workers. Standard library only; run by bench/run.py or alone:

    python3 bench/load.py --quarry target/release/quarry --conversations 50 --seconds 60
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

SCRIPT = {
    "repeat": True,
    "replies": [
        {"turn": 0, "tool_calls": [{"name": "run_sql", "arguments": {
            "sql": "SELECT state, population_2024_projected FROM population_2024 ORDER BY 2 DESC"}}]},
        {"turn": 1, "tool_calls": [{"name": "final_answer", "arguments": {"answer": "States by population."}}]},
    ],
}


def start(cmd, pattern, env=None, cwd=None):
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env, cwd=cwd)
    deadline = time.time() + 120
    while time.time() < deadline:
        line = p.stdout.readline()
        if not line:
            break
        if pattern in line:
            return p, line
    p.kill()
    raise RuntimeError(f"{cmd[1]} did not start")


def call(url, method="GET", body=None, data=None, timeout=60):
    req = urllib.request.Request(url, method=method, data=data if data is not None else (
        json.dumps(body).encode() if body is not None else None))
    if body is not None:
        req.add_header("content-type", "application/json")
    elif data is not None:
        # urllib would say form-encoded, which the server refuses for uploads.
        req.add_header("content-type", "application/octet-stream")
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.status, json.loads(r.read() or b"null")


def tree_rss_mb(pid):
    """Resident memory of a process and all its descendants, in MiB."""
    kids = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                kids.setdefault(ppid, []).append(int(d))
            except (OSError, IndexError, ValueError):
                pass
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        todo.extend(kids.get(p, []))
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


def rss_mb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return 0.0
    return 0.0


def run(quarry, conversations=50, seconds=60):
    tmp = tempfile.mkdtemp(prefix="quarry-load-")
    script = os.path.join(tmp, "script.json")
    with open(script, "w") as f:
        json.dump(SCRIPT, f)
    subprocess.run([quarry, "demo", "--no-serve", "--dir", os.path.join(tmp, "files"), "--data",
                    os.path.join(tmp, "scratch")], check=True, stdout=subprocess.DEVNULL, cwd=tmp)
    fake, line = start([quarry, "fake-llm", "--script", script], "OpenAI-compatible at")
    llm_url = line.split("OpenAI-compatible at")[1].split()[0]
    env = {**os.environ, "QUARRY_LLM_BASE_URL": llm_url, "QUARRY_LLM_MODEL": "fake-model",
           "OPENAI_API_KEY": "", "ANTHROPIC_API_KEY": "", "QUARRY_LLM_API_KEY": ""}
    server, line = start([quarry, "serve", "--port", "0", "--data", os.path.join(tmp, "data"), "--no-python",
                          "--questions-per-minute", "1000000", "--requests-per-minute", "1000000"], "serving http", env=env, cwd=tmp)
    base = line.split("serving ")[1].split()[0]
    try:
        _, ws = call(f"{base}/api/workspaces")
        ws = ws[0]["id"]
        with open(os.path.join(tmp, "files", "population_2024.csv"), "rb") as f:
            call(f"{base}/api/workspaces/{ws}/datasets?name=population_2024.csv", "POST", data=f.read())
        lock = threading.Lock()
        ttfe, totals, errors = [], [], []
        answered = [0]
        stop = time.time() + seconds

        def worker():
            n = 0
            while time.time() < stop:
                # A fresh conversation per question keeps the scripted model's turns simple;
                # a numbered question keeps the answer cache out of it.
                n += 1
                t0 = time.perf_counter()
                try:
                    _, conv = call(f"{base}/api/workspaces/{ws}/conversations", "POST", {})
                    cid, after = conv["id"], 0
                    t0 = time.perf_counter()
                    status, acc = call(f"{base}/api/conversations/{cid}/questions", "POST",
                                       {"question": f"Population by state? ({threading.get_ident()}-{n})"})
                    if status != 202:
                        raise RuntimeError(f"status {status}")
                    first, ok = None, None
                    with urllib.request.urlopen(f"{base}/api/conversations/{cid}/events?after={after}", timeout=60) as r:
                        for raw in r:
                            if time.perf_counter() - t0 > 60:
                                raise RuntimeError(f"no `done` within 60 s (conversation {cid})")
                            line = raw.decode().strip()
                            if not line.startswith("data: "):
                                continue
                            ev = json.loads(line[6:])
                            if ev["question"] != acc["question"]:
                                continue
                            if first is None:
                                first = time.perf_counter() - t0
                            after = max(after, ev["seq"])
                            if ev["event"]["type"] == "done":
                                ok = ev["event"]["ok"]
                                break
                    if not ok:
                        raise RuntimeError("the question did not end well")
                    with lock:
                        ttfe.append(first * 1000)
                        totals.append((time.perf_counter() - t0) * 1000)
                        answered[0] += 1
                except Exception as e:  # noqa: BLE001
                    with lock:
                        errors.append(str(e))

        threads = [threading.Thread(target=worker) for _ in range(conversations)]
        peak_server, peak_tree = 0.0, 0.0
        for t in threads:
            t.start()
        while any(t.is_alive() for t in threads):
            peak_server = max(peak_server, rss_mb(server.pid))
            peak_tree = max(peak_tree, tree_rss_mb(server.pid))
            time.sleep(0.5)
        ttfe.sort()
        totals.sort()
        pct = lambda v, p: v[min(len(v) - 1, int(len(v) * p))] if v else float("nan")  # noqa: E731
        return {
            "conversations": conversations, "seconds": seconds, "answered": answered[0], "errors": len(errors),
            "first_errors": errors[:3], "ttfe_p50_ms": pct(ttfe, 0.5), "ttfe_p99_ms": pct(ttfe, 0.99),
            "answer_p50_ms": statistics.median(totals) if totals else float("nan"), "answer_p99_ms": pct(totals, 0.99),
            "server_peak_mb": peak_server, "tree_peak_mb": peak_tree,
        }
    finally:
        server.terminate()
        fake.terminate()
        server.wait(timeout=30)
        fake.wait(timeout=30)


def table(r):
    return "\n".join([
        "| conversations | seconds | questions answered | errors | first event p50 ms | first event p99 ms "
        "| answer p50 ms | answer p99 ms | server peak MiB | with workers MiB |",
        "|---|---|---|---|---|---|---|---|---|---|",
        f"| {r['conversations']} | {r['seconds']} | {r['answered']} | {r['errors']} | {r['ttfe_p50_ms']:.1f} "
        f"| {r['ttfe_p99_ms']:.1f} | {r['answer_p50_ms']:.0f} | {r['answer_p99_ms']:.0f} "
        f"| {r['server_peak_mb']:.0f} | {r['tree_peak_mb']:.0f} |",
    ])


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--quarry", default=os.path.join(os.path.dirname(__file__), "..", "target", "release", "quarry"))
    ap.add_argument("--conversations", type=int, default=50)
    ap.add_argument("--seconds", type=int, default=60)
    a = ap.parse_args()
    r = run(os.path.abspath(a.quarry), a.conversations, a.seconds)
    print(table(r))
    if r["first_errors"]:
        print("errors:", r["first_errors"], file=sys.stderr)
    sys.exit(1 if r["errors"] else 0)
