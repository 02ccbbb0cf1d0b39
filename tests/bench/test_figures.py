"""The run's tables from small synthetic results directories: before/after pairs and targets."""

import json

import pytest

from bench import report, stages
from bench.figures import PGBENCH_FIELDS, RUN_FIELDS, Results, Target, write_rows

BASELINE = {"revision": "HEAD~5", "commit": "4b8afb9" + "0" * 33, "subject": "An older release"}


def _row(point: str, round_number: int, requests_per_s: float, **figures) -> dict:
    row = dict.fromkeys(RUN_FIELDS, 0.0)
    row.update(point=point, round=round_number, requests_per_s=requests_per_s, **figures)
    return row


def _results(directory, runs: list[dict], pgbench_tps=(), baseline=BASELINE) -> Results:
    points = {}
    for row in runs:
        ours = row["point"].removesuffix("@base")
        points[row["point"]] = {
            "label": f"label of {row['point']}",
            "workers": 2,
            "cluster": row["point"].startswith("cluster-"),
        }
        points.setdefault(ours, {"label": f"label of {ours}", "workers": 2})
    meta = {
        "commit": "705f695",
        "changed_files": 0,
        "settings": {"default_workers": 2},
        "base_point": "http",
        "baseline": baseline,
        "points": points,
        "sweeps": {"cores": {}},
    }
    (directory / "meta.json").write_text(json.dumps(meta))
    write_rows(directory / "runs.csv", RUN_FIELDS, runs)
    pgbench = [
        {"round": n, "clients": 8, "seconds": 10, "tps": tps, "latency_ms": 3}
        for n, tps in enumerate(pgbench_tps, 1)
    ]
    write_rows(directory / "pgbench.csv", PGBENCH_FIELDS, pgbench)
    return Results(directory)


def test_after_over_before_pairs_the_rounds_instead_of_dividing_medians(tmp_path):
    results = _results(
        tmp_path,
        [
            _row("http", 1, 100), _row("http@base", 1, 50),
            _row("http", 2, 300), _row("http@base", 2, 200),
            _row("http", 3, 200), _row("http@base", 3, 200),
            _row("http", 4, 900),  # interrupted before its twin: no pair
        ],
    )  # fmt: skip
    ratios = results.paired_ratios("http", lambda row: row["requests_per_s"])
    assert (ratios.median, ratios.low, ratios.high) == (1.5, 1.0, 2.0)
    header, http = results.comparison()
    assert header[:4] == ["point", "req/s before", "after", "after / before"]
    assert http[:4] == ["http", "200", "250", "1.50 (1.00-2.00)"]


def test_before_and_after_compare_p99_and_server_cpu_per_request(tmp_path):
    results = _results(
        tmp_path,
        [
            _row("tcp", 1, 500, p99_ms=40, server_cpu_pct=50),
            _row("tcp@base", 1, 250, p99_ms=80, server_cpu_pct=100),
        ],
    )
    header, tcp = results.comparison()
    assert (header[4], header[7]) == ("p99 ms before", "server CPU ms/req before")
    assert tcp[4:] == ["80", "40", "0.50", "4.00", "1.00", "0.25"]


def test_no_comparison_without_twins(tmp_path):
    results = _results(tmp_path, [_row("http", 1, 100), _row("tcp", 1, 90)], baseline=None)
    assert results.twins() == []
    assert results.comparison() == []


def test_the_table_has_a_row_for_each_twin_after_its_point(tmp_path):
    results = _results(tmp_path, [_row("http", 1, 100), _row("http@base", 1, 50)])
    table = results.table()
    assert [row[0] for row in table[1:]] == ["http", "http@base"]
    assert table[2][1:3] == ["label of http@base", "50"]


def _targets(results: Results) -> dict[str, list[str]]:
    return {row[0]: row[1:] for row in results.targets_table()[1:]}


def test_targets_of_the_issue(tmp_path):
    results = _results(
        tmp_path,
        [
            _row("http", 1, 640, p50_ms=20, p99_ms=45, server_cpu_pct=64, service_rss_mb=300),
            _row("tcp", 1, 512, p50_ms=20, p99_ms=55, server_cpu_pct=77, service_rss_mb=310),
            _row("hot-symbol", 1, 480, p99_ms=90),
            _row("http@base", 1, 300, service_rss_mb=900),
        ],
        pgbench_tps=[1000],
    )
    targets = _targets(results)
    assert targets["mixed over HTTP / pgbench"] == ["0.64", ">= 0.7 (stretch 0.8)", "MISSED"]
    assert targets["mixed over TCP / mixed over HTTP"] == ["0.80", ">= 0.9", "MISSED"]
    assert targets["p99 at 32 clients over TCP, ms"] == ["55.00", "<= 50", "MISSED"]
    assert targets["p99 / p50 over HTTP"] == ["2.25", "<= 2.5", "met"]
    assert targets["p99 / p50 over TCP"] == ["2.75", "<= 2.5", "MISSED"]
    assert targets["p99 with 1 hot symbol, ms"] == ["90.00", "<= 80", "MISSED"]
    assert targets["server CPU per request over HTTP, ms"] == ["1.00", "<= 1", "met"]
    assert targets["server CPU per request over TCP, ms"] == ["1.50", "<= 1.2", "MISSED"]
    assert targets["1 hot symbol / 10 symbols"] == ["0.75", ">= 0.8", "MISSED"]
    assert targets["100k resting / empty book"] == ["not measured", ">= 0.9", ""]
    # The baseline's memory is not ours to answer for.
    assert targets["service RSS, default workers, MB"] == ["310.00", "<= 400", "met"]


def test_the_memory_of_make_cluster_is_not_held_against_one_service(tmp_path):
    results = _results(
        tmp_path,
        [
            _row("http", 1, 1000, service_rss_mb=300),
            _row("cluster-http", 1, 900, service_rss_mb=850),
        ],
        baseline=None,
    )
    assert _targets(results)["service RSS, default workers, MB"] == ["300.00", "<= 400", "met"]


def test_targets_under_attack_compare_with_the_same_run_unattacked(tmp_path):
    results = _results(
        tmp_path,
        [
            _row("http", 1, 1000, p99_ms=50, service_rss_mb=300),
            _row("http-attacked", 1, 850, p99_ms=110, service_rss_mb=380),
            _row("tcp", 1, 900, p99_ms=60),
            _row("tcp-attacked", 1, 700, p99_ms=90, service_rss_mb=420),
        ],
    )
    targets = _targets(results)
    assert targets["HTTP under attack / unattacked"] == ["0.85", ">= 0.8", "met"]
    assert targets["TCP under attack / unattacked"] == ["0.78", ">= 0.8", "MISSED"]
    assert targets["p99 over HTTP under attack / unattacked"] == ["2.20", "<= 2", "MISSED"]
    assert targets["p99 over TCP under attack / unattacked"] == ["1.50", "<= 2", "met"]
    assert targets["service RSS under attack, MB"] == ["420.00", "<= 400", "MISSED"]


def test_readers_targets_compare_order_throughput_and_give_the_book_p99(tmp_path):
    results = _results(
        tmp_path,
        [
            _row("1-symbol-100k", 1, 800),
            _row("readers", 1, 760, book_p99_ms=12, reads_per_s=70),
        ],
    )
    targets = _targets(results)
    assert targets["orders with 8 readers / without (1 symbol, 100k resting)"] == [
        "0.95",
        ">= 0.9",
        "met",
    ]
    assert targets["book depth p99 with 8 readers, 100k resting, ms"] == ["12.00", "<= 20", "met"]


def test_streams_targets_compare_with_the_same_run_without_streams(tmp_path):
    results = _results(
        tmp_path,
        [
            _row("http", 1, 1000, service_rss_mb=250, db_commits_per_s=900),
            _row(
                "streams-10",
                1,
                990,
                streams=10,
                db_commits_per_s=890,
                market_polls_per_s=3.9,
                stream_p99_s=0.4,
            ),
            _row(
                "streams-1000",
                1,
                920,
                streams=1000,
                service_rss_mb=300,
                db_commits_per_s=850,
                market_polls_per_s=4,
                stream_p50_s=0.3,
                stream_p99_s=0.6,
                stream_max_s=0.9,
            ),
        ],
    )
    targets = _targets(results)
    assert targets["orders with 1,000 streams / without"] == ["0.92", ">= 0.9", "met"]
    assert targets["trade to stream p99 with 1,000 streams, s"] == ["0.60", "<= 1", "met"]
    polls = "market polls of the database/s, 1,000 streams / 10 streams"
    assert targets[polls] == ["1.03", "<= 1.05", "met"]
    assert targets["service RSS, 1,000 streams / without"] == ["1.20", "<= 2", "met"]
    table = results.streams_table()
    assert [row[0] for row in table] == ["point", "http", "streams-10", "streams-1000"]
    assert table[3][1:8] == ["1000", "920", "0.300", "0.600", "0.900", "850", "4.0"]


def test_no_streams_table_without_streams(tmp_path):
    assert _results(tmp_path, [_row("http", 1, 1000)]).streams_table() == []


@pytest.mark.parametrize(
    "target, value, verdict",
    [
        (Target("ratio", minimum=0.6, stretch=0.75), 0.59, "MISSED"),
        (Target("ratio", minimum=0.6, stretch=0.75), 0.6, "met"),
        (Target("ratio", minimum=0.6, stretch=0.75), 0.75, "met, stretch too"),
        (Target("ms", maximum=50), 50, "met"),
        (Target("ms", maximum=50), 51, "MISSED"),
        (Target("shown only"), 1e9, ""),
    ],
)
def test_verdicts(target, value, verdict):
    assert target.verdict(value) == verdict


def test_report_writes_the_comparison_into_the_page(tmp_path, monkeypatch):
    monkeypatch.setattr(report, "PAGE", tmp_path / "scalability.md")
    monkeypatch.setattr(report, "PLOTS", tmp_path)
    results = _results(
        tmp_path,
        [_row("http", n, 100 + n, server_cpu_pct=50) for n in (1, 2)]
        + [_row("http@base", n, 50, server_cpu_pct=50) for n in (1, 2)],
    )
    results.meta["started"] = "now"
    results.meta["machine"] = {"cpus": 2, "model": "test"}
    results.meta["settings"].update(repeats=2, seconds=3, warmup=1, loadgen_cpus=[1])
    plot = report.plot_before_after(results, "before-after.png")
    report.write_page(results, [plot])
    page = report.PAGE.read_text()
    assert "Before: `4b8afb9` (An older release); after: `705f695`." in page
    assert "| http | 50 | 102 | 2.03 (2.02-2.04) |" in page
    assert "![before-after](scalability/before-after.png)" in page
    assert (tmp_path / "before-after.png").stat().st_size > 0


def test_a_stages_quantiles_are_read_off_the_buckets_of_the_point_alone():
    before = {"queued": {0.001: 10.0, 0.01: 10.0, float("inf"): 10.0}}
    after = {
        "queued": {0.001: 60.0, 0.01: 110.0, float("inf"): 110.0},
        "database": {0.001: 0.0, 0.01: 100.0, float("inf"): 100.0},
    }
    spent = stages.quantiles(before, after, wanted=(0.5, 0.99))
    assert spent["queued"] == [pytest.approx(0.001), pytest.approx(0.01 - 0.009 * 0.02)]
    assert spent["database"] == [pytest.approx(0.0055), pytest.approx(0.00991)]
    assert spent["replying"] == [0.0, 0.0]  # none measured
