"""The program bench_cpu.py runs under ``wizsock run``: one download, one upload.

Plain blocking sockets, as an unmodified program would use them; ``wizsock run``
patched them to the module before this file was imported.  Prints one JSON line:
for each direction the bytes, the wall time and the process's CPU time (user +
system, all threads: ``time.process_time`` is CLOCK_PROCESS_CPUTIME_ID), counted
from just before ``connect`` to EOF (download) or to the sink's answer (upload).
Hashing is done outside the counted time.

Usage: cpu_client.py HOST DOWN_PORT DOWN_BYTES UP_PORT UP_BYTES
"""
import hashlib
import json
import socket
import sys
import time


def proc_cpu() -> float:
    return time.process_time()


def download(host: str, port: int) -> dict:
    chunks = []
    t0, c0 = time.perf_counter(), proc_cpu()
    s = socket.create_connection((host, port))
    t_conn = time.perf_counter()
    while True:
        d = s.recv(65536)
        if not d:
            break
        chunks.append(d)
    t1, c1 = time.perf_counter(), proc_cpu()
    s.close()
    data = b"".join(chunks)
    return {"bytes": len(data), "wall": t1 - t0, "cpu": c1 - c0, "connect": t_conn - t0,
            "sha256": hashlib.sha256(data).hexdigest()}


def upload(host: str, port: int, n: int) -> dict:
    data = bytes((i * 7 + (i >> 8)) & 0xFF for i in range(n))
    t0, c0 = time.perf_counter(), proc_cpu()
    s = socket.create_connection((host, port))
    t_conn = time.perf_counter()
    for i in range(0, n, 16384):
        s.sendall(data[i:i + 16384])
    t_sent = time.perf_counter()
    reply = b""
    while not reply.endswith(b"\n"):
        d = s.recv(200)
        if not d:
            break
        reply += d
    t1, c1 = time.perf_counter(), proc_cpu()
    s.close()
    return {"bytes": n, "wall": t1 - t0, "cpu": c1 - c0, "connect": t_conn - t0,
            "tail": t1 - t_sent, "sha256": hashlib.sha256(data).hexdigest(),
            "reply": reply.decode()}


def main() -> None:
    host, down_port, down_n, up_port, up_n = sys.argv[1:6]
    out = {"down": download(host, int(down_port)), "up": upload(host, int(up_port), int(up_n))}
    if out["down"]["bytes"] != int(down_n):
        out["error"] = f"download: {out['down']['bytes']} of {down_n} bytes"
    print("CPU-RESULT " + json.dumps(out), flush=True)


main()
