"""The benchmark suite (bench/): its command line, its table, and the pieces it measures with."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import givtcp_async
from bench.__main__ import NAMES, load_baseline, regressions
from bench.bench_cycle import stats_of
from bench.bench_memory import compile_package, proc_cpu, proc_status
from bench.common import Row, format_table
from givtcp_async.assemble import SnapshotAssembler
from givtcp_async.cache import RegisterCache
from givtcp_async.connection import ConnectionSettings, DongleConnection
from givtcp_async.reader import PlantReader
from givtcp_async.simulator.plant import Plant, PlantConfig

ROOT = Path(__file__).resolve().parents[1]
LONDON = ZoneInfo("Europe/London")


def test_python_m_bench_help_lists_every_benchmark() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "--quick" in done.stdout
    assert "--update-baseline" in done.stdout
    names = ("codec", "connection", "refresh", "cycle", "mqtt", "rest", "evc", "startup", "memory",
             "fuzz")  # fmt: skip
    for name in names:
        assert name in NAMES
        assert f"{name}:" in done.stdout


def test_a_figure_25_percent_worse_than_its_baseline_is_a_regression() -> None:
    baseline: dict[str, dict[str, object]] = {
        "codec.decode_vs_peer": {"value": 30.0, "higher_is_better": True},
        "memory.rss_bare_mib": {"value": 40.0, "higher_is_better": False},
    }
    ok = [
        Row("decode", "", metric="codec.decode_vs_peer", number=24.1, higher_is_better=True),
        Row("rss", "", metric="memory.rss_bare_mib", number=49.9),
        Row("not in the baseline", "", metric="startup.read_s", number=99.0),
        Row("no metric", "1 ms"),
    ]
    assert regressions(ok, baseline) == []
    worse = [
        Row("decode", "", metric="codec.decode_vs_peer", number=23.9, higher_is_better=True),
        Row("  rss", "", metric="memory.rss_bare_mib", number=50.1),
    ]
    found = regressions(worse, baseline)
    assert len(found) == 2
    assert found[0].startswith("codec.decode_vs_peer (decode): 23.9, baseline 30")
    assert found[1].startswith("memory.rss_bare_mib (rss): 50.1, baseline 40")


def test_the_committed_baseline_names_figures_the_benchmarks_produce() -> None:
    figures = load_baseline()
    assert {"codec.decode_vs_peer", "refresh.model_vs_peer", "startup.read_s",
            "memory.rss_bare_mib"} <= set(figures)  # fmt: skip
    assert all(isinstance(f["value"], int | float) and f["value"] > 0 for f in figures.values())


def test_table_aligns_columns_and_renders_markdown() -> None:
    rows = [
        Row("a figure", "1 ms", "bound 2 ms"),
        Row("another, longer figure", "10 ms"),
        Row("  of which a part", "4 ms"),
    ]
    lines = format_table(rows).splitlines()
    assert lines[0].startswith("Figure")
    assert lines[2].index("1 ms") == lines[3].index("10 ms") == lines[0].index("Value")
    assert lines[2].endswith("bound 2 ms")
    assert lines[3] == lines[3].rstrip()
    markdown = format_table(rows, markdown=True).splitlines()
    assert markdown[:2] == ["| Figure | Value | Bound / ratio |", "|---|---|---|"]
    assert markdown[3] == "| another, longer figure | 10 ms |  |"
    assert markdown[4] == "| &emsp;of which a part | 4 ms |  |"


def test_proc_readers_see_this_process() -> None:
    status = proc_status(os.getpid())
    assert 1024 * 1024 < status["VmRSS"] <= status["VmHWM"]
    before = proc_cpu(os.getpid())
    sum(i * i for i in range(300_000))
    assert proc_cpu(os.getpid()) >= before > 0


async def test_timed_build_equals_snapshot_assembler_build() -> None:
    """The cycle bench times SnapshotAssembler.build stage by stage: timing must build the same
    and account for every stage."""
    plant = Plant(
        PlantConfig(speed=0, start=datetime(2026, 6, 21, 13, tzinfo=LONDON).replace(tzinfo=None))
    )
    async with plant.simulator() as sim:
        settings = ConnectionSettings("127.0.0.1", sim.port, pacing=0.0)
        async with DongleConnection(settings) as conn:
            await conn.wait_connected(5)
            cache = RegisterCache()
            reader = PlantReader(conn, cache, probe_meters=False)
            layout = await reader.detect()
            timed = SnapshotAssembler(layout.model, layout.serial, layout.fields, LONDON)
            real = SnapshotAssembler(layout.model, layout.serial, layout.fields, LONDON)
            cpu: dict[str, list[float]] = {k: [] for k in ("decode", "gates", "derived",
                                                           "assemble")}  # fmt: skip
            for _ in range(3):
                assert (await reader.refresh(layout.plan.blocks)).ok
                plant.advance(15)
                now = datetime.now(LONDON)
                stats = stats_of(now)
                timings: dict[str, float] = {}
                ours = timed.build(
                    cache, devices=layout.devices, now=now, stats=stats, timings=timings
                )
                for stage, seconds in timings.items():
                    cpu[stage].append(seconds)
                theirs = real.build(cache, devices=layout.devices, now=now, stats=stats)
                assert ours == theirs
    assert len(ours.values) > 100
    assert [b.address for b in ours.batteries] == [0x32, 0x33, 0x31]  # two packs, the LV BCU
    assert all(len(times) == 3 for times in cpu.values())


def test_the_memory_bench_writes_the_packages_bytecode_first() -> None:
    """A module the daemon compiles itself leaves the compiler's heap behind: every module of the
    measured package has a current .pyc before a daemon starts."""
    compile_package()
    sources = [p for d in givtcp_async.__path__ for p in Path(d).rglob("*.py")]
    assert sources
    cached = {s: Path(importlib.util.cache_from_source(str(s))) for s in sources}
    stale = [s for s, c in cached.items()
             if not c.exists() or c.stat().st_mtime < s.stat().st_mtime]  # fmt: skip
    assert stale == []
