"""Benchmarks: collected only when bench/ (or a file in it) is named on the command line.

`testpaths = ["tests"]` keeps them out of the test run; this conftest makes
`python -m pytest bench --benchmark-only` collect `bench_*.py`, and prints the
framer's throughput table (MB/s, events/s, compiled/pure) once the run ends, so
that every ratio comes from one run on one machine state.
"""
import pytest


def pytest_collect_file(file_path, parent):
    # Files named explicitly are collected by pytest itself; this adds the
    # bench_*.py files under a named directory.
    if (file_path.suffix == ".py" and file_path.name.startswith("bench_")
            and not parent.session.isinitpath(file_path)):
        return pytest.Module.from_parent(parent, path=file_path)
    return None


def framer_table(records):
    """records: dicts with impl, stream, feed, bytes, events, seconds -> markdown lines."""
    by_key = {(r["stream"], r["feed"], r["impl"]): r for r in records}
    lines = [
        "| stream | feed | compiled MB/s | compiled Mevents/s | pure MB/s | pure Mevents/s | compiled/pure |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for stream, feed in sorted({(s, f) for s, f, _ in by_key}):
        cells = []
        speeds = {}
        for impl in ("compiled", "pure"):
            r = by_key.get((stream, feed, impl))
            if r is None:
                cells += ["-", "-"]
                continue
            speeds[impl] = r["bytes"] / r["seconds"]
            cells += [f"{speeds[impl] / 1e6:,.0f}" if speeds[impl] >= 1e8 else f"{speeds[impl] / 1e6:,.1f}",
                      f"{r['events'] / r['seconds'] / 1e6:.2f}"]
        ratio = f"{speeds['compiled'] / speeds['pure']:.1f}x" if len(speeds) == 2 else "-"
        lines.append(f"| {stream} | {feed} | " + " | ".join(cells) + f" | {ratio} |")
    return lines


def pytest_terminal_summary(terminalreporter, config):
    # The best round, not the median: on a shared machine the other tenants
    # only ever add time, and using the same statistic for both framers keeps
    # the ratio fair.
    session = getattr(config, "_benchmarksession", None)
    if session is None:
        return
    records = []
    for bench in session.benchmarks:
        info = bench.extra_info
        if bench.stats and {"impl", "stream", "feed"} <= info.keys():
            records.append(dict(info, seconds=bench.stats.min))
    if records:
        terminalreporter.write_sep("-", "framer throughput (best round of each benchmark)")
        for line in framer_table(records):
            terminalreporter.write_line(line)
