"""Server memory over many fresh client sessions: the app's bound against gradio's default.

    python -m bench.sessions                  # 2,000 requests, each from a new session
    python -m bench.sessions --requests 500

The app is launched in a process of its own on a free local port, twice: with the app's
session bound (TRANSLATOR_SESSIONS, default 200) and with gradio's default of 10,000. Each
request goes through gradio's /call route, which gives every request a session of its own, to
/checkpoints (a listing: cheap, so what grows is the session store). The server's resident
memory is read from /proc after warm-up and after every 500 requests.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SERVER = (
    "import os; from translator.app import Studio, build_app, launch_options; from translator.app.workspace import Workspace; "
    "demo = build_app(Studio(Workspace(os.environ['BENCH_HOME']), device='cpu')); "
    "demo.launch(server_port=int(os.environ['BENCH_PORT']), quiet=True, **launch_options())"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    rows = {}
    for label, capacity in (("app bound (200)", "200"), ("gradio default (10000)", "10000")):
        rows[label] = drive(capacity, args.requests)
        r = rows[label]
        print(f"{label}: RSS {r['rss_mb'][0]:.0f} -> {r['rss_mb'][-1]:.0f} MB over {args.requests} sessions "
              f"(+{r['rss_mb'][-1] - r['rss_mb'][0]:.0f} MB), {r['seconds']:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps({"date": time.strftime("%Y-%m-%d"), "requests": args.requests, "rows": rows}, indent=2))


def drive(capacity: str, requests: int) -> dict:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "BENCH_HOME": home, "BENCH_PORT": str(port), "TRANSLATOR_SESSIONS": capacity, "GRADIO_ANALYTICS_ENABLED": "False"}
        server = subprocess.Popen([sys.executable, "-c", SERVER], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            base = f"http://127.0.0.1:{port}"
            _wait(base, server)
            for _ in range(20):  # warm-up
                _call(base)
            rss, started = [_rss(server.pid)], time.perf_counter()
            for number in range(1, requests + 1):
                _call(base)
                if number % 500 == 0 or number == requests:
                    rss.append(_rss(server.pid))
            return {"capacity": int(capacity), "rss_mb": rss, "seconds": time.perf_counter() - started}
        finally:
            server.terminate()
            server.wait(30)


def _call(base: str) -> None:
    request = urllib.request.Request(f"{base}/gradio_api/call/checkpoints", data=json.dumps({"data": [""]}).encode(), headers={"Content-Type": "application/json"})
    event = json.loads(urllib.request.urlopen(request, timeout=30).read())["event_id"]
    urllib.request.urlopen(f"{base}/gradio_api/call/checkpoints/{event}", timeout=30).read()


def _wait(base: str, server: subprocess.Popen) -> None:
    deadline = time.time() + 120
    while time.time() < deadline and server.poll() is None:
        try:
            urllib.request.urlopen(base, timeout=5).read()
            return
        except OSError:
            time.sleep(0.5)
    raise SystemExit("the app did not start")


def _rss(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


if __name__ == "__main__":
    main()
