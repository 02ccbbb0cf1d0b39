"""Raw benchmark figures in, medians, spreads, tables and target ratios out.

`bench/run.py` writes one results directory per run:

    meta.json     the machine, the settings, the points and the sweeps they form
    runs.csv      one row per measured repetition of a point
    pgbench.csv   one row per repetition of the database's own ceiling

and prints the tables made here; `bench/report.py` turns the same directory
into plots and the generated part of docs/scalability.md.

With BENCH_BASELINE, a point's twin on the baseline revision is named after
it (`http@base` for `http`), and the two are compared round by round.
"""

import csv
import json
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.stages import STAGES

RESULTS = Path(__file__).resolve().parent / "results"
LATEST = RESULTS / "latest"
TWIN_SUFFIX = "@base"

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
    "idle_service_cpu_pct",
    "reads_per_s",
    "book_p99_ms",
    "haproxy_cpu_pct",
    "shim_cpu_pct",
    "gunicorn_cpu_pct",
    "postgres_cpu_pct",
    "db_commits_per_s",
    "market_polls_per_s",
    "streams",
    "stream_deliveries",
    "stream_p50_s",
    "stream_p99_s",
    "stream_max_s",
    *(f"{stage}_{at}_ms" for stage in STAGES for at in ("p50", "p99")),
]
TIER_NAMES = {
    "haproxy": "HAProxy",
    "shim": "shim",
    "gunicorn": "gunicorn",
    "postgres": "PostgreSQL",
}
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
    """A bound the figure must keep, or none: a figure shown for comparison only."""

    label: str
    minimum: float | None = None  # the ratio must reach it ...
    maximum: float | None = None  # ... or stay below it
    stretch: float | None = None  # a further minimum, worth reporting when reached

    def bound(self) -> str:
        if self.minimum is None:
            return "" if self.maximum is None else f"<= {self.maximum:g}"
        stretch = f" (stretch {self.stretch:g})" if self.stretch is not None else ""
        return f">= {self.minimum:g}{stretch}"

    def verdict(self, value: float) -> str:
        if self.minimum is not None and value < self.minimum:
            return "MISSED"
        if self.maximum is not None and value > self.maximum:
            return "MISSED"
        if self.stretch is not None and value >= self.stretch:
            return "met, stretch too"
        return "" if self.minimum is None and self.maximum is None else "met"


def twin(point: str) -> str:
    """The name of `point`'s twin on the baseline revision."""
    return point + TWIN_SUFFIX


def ours(point: str) -> str:
    """The name of the point a twin is of; a point of ours is its own."""
    return point.removesuffix(TWIN_SUFFIX)


def cpu_ms_per_request(row: dict) -> float | None:
    """CPU milliseconds the server side spent per request in one repetition."""
    return _per_request(row, "server_cpu_pct")


def _per_request(row: dict, cpu_pct: str) -> float | None:
    """CPU milliseconds per request from a percentage of a CPU, in one repetition."""
    if not row["requests_per_s"] or row.get(cpu_pct) is None:
        return None
    return 10 * row[cpu_pct] / row["requests_per_s"]


# What the before/after table compares, per repetition, and how it is shown.
COMPARED: list[tuple[str, Callable[[dict], float | None], str]] = [
    ("req/s", lambda row: row["requests_per_s"], ".0f"),
    ("p99 ms", lambda row: row["p99_ms"], ".0f"),
    ("server CPU ms/req", cpu_ms_per_request, ".2f"),
]


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
        return self.spread_of(point, lambda row: row[field])

    def spread_of(self, point: str, value: Callable[[dict], float | None]) -> Spread | None:
        """The spread of a figure computed from each repetition, where it has one."""
        values = [value(row) for row in self.runs if row["point"] == point]
        values = [number for number in values if number is not None]
        return Spread.of(values) if values else None

    def total(self, point: str, field: str) -> float:
        return sum(row[field] for row in self.runs if row["point"] == point)

    def median(self, point: str, field: str = "requests_per_s") -> float | None:
        """None where the point has no such figure (a run before the field existed, say)."""
        return self.median_of(point, lambda row: row.get(field))

    def median_of(self, point: str, value: Callable[[dict], float | None]) -> float | None:
        spread = self.spread_of(point, value)
        return spread.median if spread else None

    def cpu_per_request(self, point: str) -> float | None:
        """Median CPU milliseconds the server side (service and PostgreSQL) spent
        per request: steadier than throughput on a machine shared with others."""
        return self.median_of(point, cpu_ms_per_request)

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
                    _number(self.cpu_per_request(point), ".1f"),
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
        base = self.meta["base_point"]
        ceiling = self.ceiling()
        one, two = (dict(self.sweep("cores")).get(cores) for cores in (1, 2))
        default_workers = self.meta["settings"]["default_workers"]
        rss = [
            self.spread(point, "service_rss_mb").high
            for point in self.points()
            if ours(point) == point
            and self.meta["points"][point]["workers"] == default_workers
            and not self.meta["points"][point].get("cluster")  # several instances: their sum
        ]

        attacked_rss = [
            self.spread(point, "service_rss_mb").high
            for point in ("http-attacked", "tcp-attacked")
            if point in self.points()
        ]

        def versus_base(point: str) -> float | None:
            return _ratio(self.median(point), self.median(base))

        def tail_ratio(point: str) -> float | None:
            return _ratio(self.median(point, "p99_ms"), self.median(point, "p50_ms"))

        def peak_rss(point: str) -> float | None:
            spread = self.spread(point, "service_rss_mb")
            return spread.high if spread else None

        return [
            (Target("mixed over HTTP / pgbench", minimum=0.70, stretch=0.80),
             _ratio(self.median(base), ceiling.median if ceiling else None)),
            (Target("mixed over TCP / mixed over HTTP", minimum=0.90), versus_base("tcp")),
            (Target("p99 at 32 clients over HTTP, ms", maximum=50), self.median(base, "p99_ms")),
            (Target("p99 at 32 clients over TCP, ms", maximum=50), self.median("tcp", "p99_ms")),
            (Target("p99 / p50 over HTTP", maximum=2.5), tail_ratio(base)),
            (Target("p99 / p50 over TCP", maximum=2.5), tail_ratio("tcp")),
            (Target("p99 with 1 hot symbol, ms", maximum=80), self.median("hot-symbol", "p99_ms")),
            (Target("server CPU per request over HTTP, ms", maximum=1.0),
             self.cpu_per_request(base)),
            (Target("server CPU per request over TCP, ms", maximum=1.2),
             self.cpu_per_request("tcp")),
            (Target("1 hot symbol / 10 symbols", minimum=0.80), versus_base("hot-symbol")),
            (Target("100k resting / empty book", minimum=0.90), versus_base("100k-resting")),
            (Target("2 cores / 1 core", minimum=1.6), _ratio(self.median(two), self.median(one))),
            (Target("service RSS, default workers, MB", maximum=400), max(rss, default=None)),
            (Target("orders with 8 readers / without (1 symbol, 100k resting)", minimum=0.9),
             _ratio(self.median("readers"), self.median("1-symbol-100k"))),
            (Target("book depth p99 with 8 readers, 100k resting, ms", maximum=20),
             self.median("readers", "book_p99_ms")),
            (Target("HTTP under attack / unattacked", minimum=0.8), versus_base("http-attacked")),
            (Target("TCP under attack / unattacked", minimum=0.8),
             _ratio(self.median("tcp-attacked"), self.median("tcp"))),
            (Target("p99 over HTTP under attack / unattacked", maximum=2.0),
             _ratio(self.median("http-attacked", "p99_ms"), self.median(base, "p99_ms"))),
            (Target("p99 over TCP under attack / unattacked", maximum=2.0),
             _ratio(self.median("tcp-attacked", "p99_ms"), self.median("tcp", "p99_ms"))),
            (Target("service RSS under attack, MB", maximum=400),
             max(attacked_rss, default=None)),
            (Target("HTTP with authentication on / off", minimum=0.9), versus_base("http-auth")),
            (Target("TCP with authentication on / off", minimum=0.9),
             _ratio(self.median("tcp-auth"), self.median("tcp"))),
            (Target("make cluster over HTTP / make run over HTTP", minimum=0.85),
             versus_base("cluster-http")),
            (Target("make cluster over TCP / make run over TCP", minimum=0.85),
             _ratio(self.median("cluster-tcp"), self.median("tcp"))),
            (Target("p99 of make cluster / make run, HTTP", maximum=1.5),
             _ratio(self.median("cluster-http", "p99_ms"), self.median(base, "p99_ms"))),
            (Target("p99 of make cluster / make run, TCP", maximum=1.5),
             _ratio(self.median("cluster-tcp", "p99_ms"), self.median("tcp", "p99_ms"))),
            (Target("keyed / unkeyed over HTTP", minimum=0.9), versus_base("http-keyed")),
            (Target("keyed / unkeyed over TCP", minimum=0.9),
             _ratio(self.median("tcp-keyed"), self.median("tcp"))),
            (Target("orders with 1,000 streams / without", minimum=0.9),
             versus_base("streams-1000")),
            (Target("trade to stream p99 with 1,000 streams, s", maximum=1.0),
             self.median("streams-1000", "stream_p99_s")),
            (Target("market polls of the database/s, 1,000 streams / 10 streams", maximum=1.05),
             _ratio(self.median("streams-1000", "market_polls_per_s"),
                    self.median("streams-10", "market_polls_per_s"))),
            (Target("service RSS, 1,000 streams / without", maximum=2.0),
             _ratio(peak_rss("streams-1000"), peak_rss(base))),
        ]  # fmt: skip

    def tiers_table(self) -> list[list[str]]:
        """CPU milliseconds per request of each tier, medians, for the points that have them."""
        rows = [["point", *TIER_NAMES.values(), "all"]]
        for point in self.points():
            per_tier = [
                self.median_of(point, lambda row, tier=tier: _per_request(row, f"{tier}_cpu_pct"))
                for tier in TIER_NAMES
            ]
            if not any(per_tier):
                continue
            total = sum(value or 0 for value in per_tier)
            rows.append([point, *(_number(value, ".2f") for value in per_tier), f"{total:.2f}"])
        return rows

    def stages_table(self) -> list[list[str]]:
        """Per point, the medians of each stage's p50 and p99 (app/web/stages.py), ms."""
        rows = [["point", *(f"{stage} p50 / p99" for stage in STAGES)]]
        for point in self.points():
            cells = []
            for stage in STAGES:
                p50, p99 = (self.median(point, f"{stage}_{at}_ms") for at in ("p50", "p99"))
                cells.append("" if p99 is None else f"{p50:.1f} / {p99:.1f}")
            if any(cells):
                rows.append([point, *cells])
        return rows

    def streams_table(self) -> list[list[str]]:
        """The base point and those with streams: how fast trades reached the streams, and
        what the database did meanwhile. Empty when no point had streams."""
        with_streams = [point for point in self.points() if self.median(point, "streams")]
        if not with_streams:
            return []
        rows = [
            [
                "point",
                "streams",
                "req/s",
                "trade to stream p50 s",
                "p99 s",
                "max s",
                "DB commits/s",
                "market polls/s",
                "service RSS MB",
                "load gen CPU %",
            ]
        ]
        for point in [self.meta["base_point"], *with_streams]:
            if point not in self.points():
                continue
            figures = [
                ("streams", ".0f"),
                ("requests_per_s", ".0f"),
                ("stream_p50_s", ".3f"),
                ("stream_p99_s", ".3f"),
                ("stream_max_s", ".3f"),
                ("db_commits_per_s", ".0f"),
                ("market_polls_per_s", ".1f"),
            ]
            rows.append(
                [point]
                + [_number(self.median(point, field), spec) for field, spec in figures]
                + [
                    f"{self.spread(point, 'service_rss_mb').high:.0f}",
                    f"{self.median(point, 'loadgen_cpu_pct'):.0f}",
                ]
            )
        return rows

    def targets_table(self) -> list[list[str]]:
        rows = [["target", "measured", "bound", "verdict"]]
        for target, value in self.ratios():
            if value is None:
                rows.append([target.label, "not measured", target.bound(), ""])
            else:
                rows.append([target.label, f"{value:.2f}", target.bound(), target.verdict(value)])
        return rows

    # -- before and after: our points against their twins on the baseline -------

    def twins(self) -> list[str]:
        """Our points whose twin on the baseline was measured too, in order."""
        measured = set(self.points())
        return [point for point in self.points() if twin(point) in measured]

    def paired_ratios(self, point: str, value: Callable[[dict], float | None]) -> Spread | None:
        """ours / baseline of `value`, round by round: a pair is measured minutes
        apart, so what drifts over a run (the machine, the database) cancels out."""
        ours = self._by_round(point, value)
        before = self._by_round(twin(point), value)
        ratios = [ours[n] / before[n] for n in ours.keys() & before.keys() if before[n]]
        return Spread.of(ratios) if ratios else None

    def _by_round(self, point: str, value: Callable[[dict], float | None]) -> dict[int, float]:
        values = {int(row["round"]): value(row) for row in self.runs if row["point"] == point}
        return {number: v for number, v in values.items() if v is not None}

    def comparison(self) -> list[list[str]]:
        """Per twin pair, each compared figure before (the baseline), after (ours)
        and after / before: the median of the rounds' ratios and their range.
        Empty without twins."""
        if not self.twins():
            return []
        header = ["point"]
        for name, _, _ in COMPARED:
            header += [f"{name} before", "after", "after / before"]
        rows = [header]
        for point in self.twins():
            row = [point]
            for _, value, spec in COMPARED:
                row += [_number(self.median_of(name, value), spec) for name in (twin(point), point)]
                row.append(_ratio_cell(self.paired_ratios(point, value)))
            rows.append(row)
        return rows

    def comparison_caption(self) -> str:
        baseline = self.meta["baseline"]
        changed = self.meta["changed_files"]
        return (
            f"Before: `{baseline['commit'][:7]}` ({baseline['subject']}); after: "
            f"`{self.meta['commit']}`"
            + (f" with {changed} files changed" if changed else "")
            + ". "
            "Measured in the same rounds, each point next to its twin (which of the two goes "
            "first alternates from round to round); after / before "
            "is the median of the rounds' own ratios (lowest-highest): above 1 is a gain "
            "for req/s, below 1 for p99 and CPU."
        )


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    return numerator / denominator if numerator and denominator else None


def _number(value: float | None, spec: str) -> str:
    return "" if value is None else format(value, spec)


def _ratio_cell(ratios: Spread | None) -> str:
    if ratios is None:
        return ""
    if ratios.low == ratios.high:
        return f"{ratios.median:.2f}"
    return f"{ratios.median:.2f} ({ratios.low:.2f}-{ratios.high:.2f})"


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
