"""What the benchmarks share: the summary table's rows, percentiles, CPU timing, quiet logs."""

from __future__ import annotations

import logging
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass

import structlog


@dataclass(frozen=True, slots=True)
class Row:
    """One line of the summary table: a figure, its value, and what it compares with.

    A row with a ``metric`` is also compared with the committed baseline (bench/baseline.json):
    ``number`` is its value there, ``higher_is_better`` says which way is a regression.
    """

    figure: str
    value: str
    bound: str = ""  # the lower bound or a ratio, where the figure compares with one
    metric: str = ""
    number: float | None = None
    higher_is_better: bool = False


COLUMNS = ("figure", "value", "bound")


def percentile(data: Sequence[float], p: float) -> float:
    """The ``p`` quantile (0..1) of ``data``, interpolated between the closest ranks."""
    ordered = sorted(data)
    k = (len(ordered) - 1) * p
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def latency_rows(label: str, series: Sequence[tuple[str, Sequence[float]]]) -> list[Row]:
    """Print p50/p95/max of each named series of latencies (ms); one table row each."""
    rows = []
    for name, data in series:
        p50, p95 = percentile(data, 0.5), percentile(data, 0.95)
        print(f"{name}: p50 {p50:.1f} ms, p95 {p95:.1f} ms, max {max(data):.1f} ms over "
              f"{len(data)} commands")  # fmt: skip
        rows.append(Row(f"{label}: {name}", f"p50 {p50:.1f} ms, p95 {p95:.1f} ms"))
    return rows


def median(data: Sequence[float]) -> float:
    return statistics.median(data)


class Timer:
    """CPU (``process_time``) and wall time of a block, in milliseconds."""

    def __enter__(self) -> Timer:
        self.cpu, self.wall = time.process_time(), time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.cpu = (time.process_time() - self.cpu) * 1000
        self.wall = (time.perf_counter() - self.wall) * 1000


def quiet_logs(level: int = logging.WARNING) -> None:
    """Keep the project's logs (structlog and stdlib) below ``level`` out of the figures."""
    logging.disable(level - 10)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(level))


def format_table(rows: Sequence[Row], *, markdown: bool = False) -> str:
    """The rows as an aligned text table, or a Markdown one."""
    header = Row("Figure", "Value", "Bound / ratio")
    if markdown:
        lines = [f"| {header.figure} | {header.value} | {header.bound} |", "|---|---|---|"]
        for r in rows:
            figure = r.figure.lstrip()
            if figure != r.figure:  # a breakdown row: Markdown drops leading spaces in a cell
                figure = f"&emsp;{figure}"
            lines.append(f"| {figure} | {r.value} | {r.bound} |")
        return "\n".join(lines)
    widths = [max(len(getattr(r, col)) for r in (header, *rows)) for col in COLUMNS]
    rule = "  ".join("-" * w for w in widths)

    def line(r: Row) -> str:
        cells = (r.figure, r.value, r.bound)
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    return "\n".join([line(header), rule, *(line(r) for r in rows)])
