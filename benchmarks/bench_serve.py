"""Web app under load: requests/s and latency of POST /api/v1/predict over loopback.

Starts ``bodyshape serve`` in a subprocess on a free loopback port (shipped model, default
limits), waits for /api/health, then runs N concurrent clients for a fixed time, each posting
the example photos (and, with --masks, also a pair of person masks made from them) in a loop.
A probe meanwhile times GET /api/health once a second. Predictions run one at a time on the
server, so more clients add queueing latency, not throughput.

Reports requests/s, p50/p95/max latency, the error count, and the health-check latency under
load into docs/BENCHMARKS.md (section "serve") and benchmarks/results/serve.json.

Usage: python benchmarks/bench_serve.py [--clients 4] [--seconds 30] [--masks]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import cv2
import httpx
import numpy as np
from report import table, write_section

from bodyshape.web.testing import free_port

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE_HEIGHT_CM = 171.3


def start_server(port: int, log: Path) -> subprocess.Popen:
    """``bodyshape serve`` on 127.0.0.1:port; returns once /api/health answers."""
    proc = subprocess.Popen([sys.executable, "-m", "bodyshape.cli", "serve", "--host",
                             "127.0.0.1", "--port", str(port)],
                            stdout=log.open("wb"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"bodyshape serve exited with {proc.returncode}: "
                               f"{log.read_text()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=1).status_code == 200:
                return proc
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    proc.terminate()
    raise TimeoutError("bodyshape serve did not start in 120 s")


def mask_pair(folder: Path) -> tuple[Path, Path]:
    """Person masks of the example photos (MediaPipe, as the server would segment them)."""
    from bodyshape.inputs import load_image
    from bodyshape.segment import Segmenter

    out = []
    with Segmenter() as seg:
        for view in ("front", "side"):
            mask = seg.segment(load_image(ROOT / f"examples/{view}.jpg")).mask
            path = folder / f"{view}_mask.png"
            cv2.imwrite(str(path), mask.astype(np.uint8) * 255)
            out.append(path)
    return out[0], out[1]


def client_loop(url: str, pairs: list[tuple[bytes, bytes, str]], stop_at: float,
                results: list, worker: int) -> None:
    """Post the pairs in turn until ``stop_at``; appends (kind, seconds, status) per request."""
    with httpx.Client(timeout=300) as client:
        i = worker  # clients start on different pairs
        while time.monotonic() < stop_at:
            front, side, kind = pairs[i % len(pairs)]
            i += 1
            t0 = time.perf_counter()
            try:
                r = client.post(url + "/api/v1/predict",
                                files={"front": ("front", front), "side": ("side", side)},
                                data={"height_cm": str(EXAMPLE_HEIGHT_CM)})
                status = r.status_code
            except httpx.HTTPError as exc:
                status = f"{type(exc).__name__}"
            results.append((kind, time.perf_counter() - t0, status))


def health_probe(url: str, stop_at: float, out: list) -> None:
    with httpx.Client(timeout=30) as client:
        while time.monotonic() < stop_at:
            t0 = time.perf_counter()
            try:
                client.get(url + "/api/health")
                out.append(time.perf_counter() - t0)
            except httpx.HTTPError:
                out.append(float("inf"))
            time.sleep(1.0)


def summarize(rows: list, seconds: float) -> dict:
    lat = np.array([s for _, s, status in rows if status == 200])
    errors = sum(status != 200 for _, _, status in rows)
    return {"requests": len(rows), "ok": int(lat.size), "errors": int(errors),
            "req_per_s": lat.size / seconds,
            "p50_s": float(np.percentile(lat, 50)) if lat.size else float("nan"),
            "p95_s": float(np.percentile(lat, 95)) if lat.size else float("nan"),
            "max_s": float(lat.max()) if lat.size else float("nan")}


def run_load(a: argparse.Namespace, tmp: Path) -> tuple[list, list, float, float, list]:
    """Start the server, warm it up, run the clients and the health probe, stop it.
    -> (request rows, health latencies, wall seconds, start-up seconds, posted pairs)."""
    pairs = [((ROOT / "examples/front.jpg").read_bytes(), (ROOT / "examples/side.jpg")
              .read_bytes(), "photos")]
    if a.masks:
        fm, sm = mask_pair(tmp)
        pairs.append((fm.read_bytes(), sm.read_bytes(), "masks"))
    port = free_port()
    t0 = time.perf_counter()
    server = start_server(port, tmp / "server.log")
    startup_s = time.perf_counter() - t0
    url = f"http://127.0.0.1:{port}"
    try:
        # One warm-up request per pair kind (first-call costs: MediaPipe graph, numba).
        for front, side, _ in pairs:
            httpx.post(url + "/api/v1/predict", files={"front": ("f", front), "side": ("s", side)},
                       data={"height_cm": str(EXAMPLE_HEIGHT_CM)}, timeout=300)
        rows: list = []
        health: list = []
        stop_at = time.monotonic() + a.seconds
        t_start = time.perf_counter()
        threads = [threading.Thread(target=client_loop, args=(url, pairs, stop_at, rows, i))
                   for i in range(a.clients)]
        threads.append(threading.Thread(target=health_probe, args=(url, stop_at, health)))
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t_start  # includes the requests in flight at the end
    finally:
        server.terminate()
        server.wait(timeout=30)
    return rows, health, wall, startup_s, pairs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--masks", action="store_true",
                    help="also post a mask pair (no segmentation on the server)")
    a = ap.parse_args()
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench_serve-") as tmp:
        rows, health, wall, startup_s, pairs = run_load(a, Path(tmp))

    kinds = sorted({k for _, _, k in pairs})
    per_kind = {k: summarize([r for r in rows if r[0] == k], wall) for k in kinds}
    total = summarize(rows, wall)
    statuses = sorted({str(s) for _, _, s in rows if s != 200})
    health_a = np.array(health)
    res = {"clients": a.clients, "seconds": a.seconds, "wall_s": wall, "startup_s": startup_s,
           "load_avg_before": load_before, "total": total, "per_kind": per_kind,
           "error_statuses": statuses,
           "health_p50_s": float(np.percentile(health_a, 50)),
           "health_max_s": float(health_a.max()), "health_probes": int(health_a.size)}
    fmt = lambda s: f"{1000 * s:.0f}"  # noqa: E731
    body_rows = [[k, v["requests"], v["errors"], f"{v['req_per_s']:.2f}", fmt(v["p50_s"]),
                  fmt(v["p95_s"]), fmt(v["max_s"])] for k, v in per_kind.items()]
    if len(per_kind) > 1:
        body_rows.append(["all", total["requests"], total["errors"], f"{total['req_per_s']:.2f}",
                          fmt(total["p50_s"]), fmt(total["p95_s"]), fmt(total["max_s"])])
    cores = os.cpu_count() or 1
    shared = (f"The machine was shared with other work during the run (load average "
              f"{load_before:.1f} on {cores} cores just before it), so these figures are "
              "pessimistic." if load_before > 0.5 * cores else
              f"The machine was otherwise idle (load average {load_before:.1f}).")
    body = f"""`bodyshape serve` (shipped model, default limits) on loopback: {a.clients} concurrent
clients post the 1536x2048 example photos{' and a mask pair' if a.masks else ''} to
`POST /api/v1/predict` in a loop for {a.seconds:.0f} s, after one warm-up request per input
kind. Latency is measured by the client, upload included. Predictions run one at a time, so
a request's latency is mostly the wait for those ahead of it (about {a.clients} x the
service time).

{table(["inputs", "requests", "errors", "requests/s", "p50 ms", "p95 ms", "max ms"], body_rows)}

Errors: {total['errors']}{' (' + ', '.join(statuses) + ')' if statuses else ''}. Health check
under load ({res['health_probes']} probes, one a second): median {fmt(res['health_p50_s'])} ms,
max {fmt(res['health_max_s'])} ms. Server start-up to a healthy `/api/health`:
{startup_s:.1f} s. {shared}
"""
    write_section("serve", "Web app: load test of POST /api/v1/predict", body, res)
    print(body)


if __name__ == "__main__":
    main()
