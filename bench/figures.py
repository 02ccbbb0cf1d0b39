"""Raw benchmark figures in, medians, spreads, tables and target ratios out.

`bench/run.py` writes one results directory per run:

    meta.json     the machine, the settings, the points and the sweeps they form
    runs.csv      one row per measured repetition of a point
    pgbench.csv   one row per repetition of the database's own ceiling

and prints the tables made here; `bench/report.py` turns the same directory
into plots and the generated part of docs/scalability.md.
"""

import csv
import json
import statistics
from dataclasses import dataclass
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
LATEST = RESULTS / "latest"

RUN_FIELDS = [
    "point",
    "round",
    "seconds",
    "requests",
    "failures",
    "requests_per_s",
    "children_per_s",
    "p50_ms",
    "p99_ms",
    "service_rss_mb",
    "database_rss_mb",
    "server_cpu_pct",
    "loadgen_cpu_pct",
    "machine_busy_pct",
]
PGBENCH_FIELDS = ["round", "clients", "seconds", "tps", "latency_ms"]


@dataclass(frozen=True)
class Spread:
    """Median of the repetitions, and their lowest and highest value."""

    median: float
    low: float
    high: float

    @classmethod
    def of(cls, values: list[float]) -> "Spread":
        return cls(statistics.median(values), min(values), max(values))


@dataclass(frozen=True)
class Target:
    label: str
    minimum: float | None = None  # the ratio must reach it ...
    maximum: float | None = None  # ... or stay below it

    def met(self, value: float) -> bool:
        if self.minimum is not None:
            return value >= self.minimum
        return value <= self.maximum


def write_rows(path: Path, fields: list[str], rows: list[dict]) -> None:
    with open(path, "w", newline="") as out:
        writer = csv.DictWriter(out, fields)
        writer.writeheader()
        writer.writerows(rows)


def read_rows(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with open(path, newline="") as source:
        return [
            {key: value if key == "point" else float(value) for key, value in row.items()}
            for row in csv.DictReader(source)
        ]


class Results:
    """One results directory, summarised."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.meta = json.loads((directory / "meta.json").read_text())
        self.runs = read_rows(directory / "runs.csv")
        self.pgbench = read_rows(directory / "pgbench.csv")

    def points(self) -> list[str]:
        """Points with at least one measurement, in the order they are defined."""
        measured = {row["point"] for row in self.runs}
        return [name for name in self.meta["points"] if name in measured]

    def spread(self, point: str, field: str) -> Spread | None:
        values = [row[field] for row in self.runs if row["point"] == point]
        return Spread.of(values) if values else None

    def total(self, point: str, field: str) -> float:
        return sum(row[field] for row in self.runs if row["point"] == point)

    def cpu_per_request(self, point: str) -> float:
        """Median CPU milliseconds the server side (service and PostgreSQL) spent
        per request: steadier than throughput on a machine shared with others."""
        return statistics.median(
            10 * row["server_cpu_pct"] / row["requests_per_s"]
            for row in self.runs
            if row["point"] == point and row["requests_per_s"]
        )

    def ceiling(self) -> Spread | None:
        return Spread.of([row["tps"] for row in self.pgbench]) if self.pgbench else None

    def sweep(self, name: str) -> list[tuple[int, str]]:
        """(value, point) pairs of a sweep that were measured, in increasing value."""
        measured = set(self.points())
        pairs = self.meta["sweeps"].get(name, {}).items()
        return sorted((int(value), point) for value, point in pairs if point in measured)

    def table(self) -> list[list[str]]:
        """One row per point: medians of the repetitions, errors summed."""
        header = [
            "point",
            "what",
            "req/s",
            "(min-max)",
            "child ops/s",
            "p50 ms",
            "p99 ms",
            "errors",
            "service RSS MB",
            "PostgreSQL RSS MB",
            "server CPU %",
            "server CPU ms/req",
            "load gen CPU %",
        ]
        rows = [header]
        for point in self.points():
            throughput = self.spread(point, "requests_per_s")
            rows.append(
                [
                    point,
                    self.meta["points"][point]["label"],
                    f"{throughput.median:.0f}",
                    f"{throughput.low:.0f}-{throughput.high:.0f}",
                    f"{self.spread(point, 'children_per_s').median:.0f}",
                    f"{self.spread(point, 'p50_ms').median:.0f}",
                    f"{self.spread(point, 'p99_ms').median:.0f}",
                    f"{self.total(point, 'failures'):.0f} / {self.total(point, 'requests'):.0f}",
                    f"{self.spread(point, 'service_rss_mb').high:.0f}",
                    f"{self.spread(point, 'database_rss_mb').high:.0f}",
                    f"{self.spread(point, 'server_cpu_pct').median:.0f}",
                    f"{self.cpu_per_request(point):.1f}",
                    f"{self.spread(point, 'loadgen_cpu_pct').median:.0f}",
                ]
            )
        ceiling = self.ceiling()
        if ceiling:
            rows.append(
                [
                    "pgbench",
                    f"database ceiling, {self.pgbench[0]['clients']:.0f} clients",
                    f"{ceiling.median:.0f}",
                    f"{ceiling.low:.0f}-{ceiling.high:.0f}",
                    *[""] * 9,
                ]
            )
        return rows

    def ratios(self) -> list[tuple[Target, float | None]]:
        """Each target and the value measured for it (None when a point is missing)."""

        def median(point: str, field: str = "requests_per_s") -> float | None:
            spread = self.spread(point, field)
            return spread.median if spread else None

        def ratio(numerator: float | None, denominator: float | None) -> float | None:
            return numerator / denominator if numerator and denominator else None

        ceiling = self.ceiling()
        ceiling_tps = ceiling.median if ceiling else None
        one, two = (dict(self.sweep("cores")).get(cores) for cores in (1, 2))
        base = self.meta["base_point"]
        default_workers = self.meta["settings"]["default_workers"]
        rss = [
            self.spread(point, "service_rss_mb")
            for point in self.points()
            if self.meta["points"][point]["workers"] == default_workers
        ]

        def versus_base(point: str) -> float | None:
            return ratio(median(point), median(base))

        highest_rss = max((spread.high for spread in rss if spread), default=None)
        two_over_one = ratio(median(two), median(one)) if one and two else None
        return [
            (Target("mixed over TCP / pgbench", minimum=0.60), ratio(median("tcp"), ceiling_tps)),
            (Target("mixed over HTTP / pgbench", minimum=0.60), ratio(median(base), ceiling_tps)),
            (Target("p99 at 32 clients over HTTP, ms", maximum=50), median(base, "p99_ms")),
            (Target("p99 at 32 clients over TCP, ms", maximum=50), median("tcp", "p99_ms")),
            (Target("2 cores / 1 core", minimum=1.6), two_over_one),
            (Target("1 hot symbol / 10 symbols", minimum=0.70), versus_base("hot-symbol")),
            (Target("100k resting / empty book", minimum=0.80), versus_base("100k-resting")),
            (Target("service RSS, default workers, MB", maximum=400), highest_rss),
        ]  # fmt: skip

    def ratio_lines(self) -> list[str]:
        lines = []
        for target, value in self.ratios():
            bound = (
                f">= {target.minimum:g}" if target.minimum is not None else f"<= {target.maximum:g}"
            )
            if value is None:
                lines.append(f"{target.label:<40} {'not measured':>10}   target {bound}")
            else:
                verdict = "met" if target.met(value) else "MISSED"
                lines.append(f"{target.label:<40} {value:10.2f}   target {bound:<8} {verdict}")
        return lines


def render_text(rows: list[list[str]]) -> str:
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


def render_markdown(rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    lines += ["| " + " | ".join(row) + " |" for row in rows[1:]]
    return "\n".join(lines)
