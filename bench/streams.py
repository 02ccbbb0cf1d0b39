"""How long trades take to reach the streams, and what the database does meanwhile.

locustfile.py's MarketStreamUser notes, for every trade event a stream
receives, the trade's id and when its chunk arrived (LOAD_STREAM_LOG). A
trade happened at its execution's `executed_at`, taken inside the order's
transaction just before it commits, so before the order is answered: the
difference is an upper bound on the delay from the order's reply to the
stream, per stream and trade. Both clocks are this machine's.
"""

import csv
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

# The database's side, by SQL run in the service's database.
EXECUTED = (
    "COPY (SELECT id, extract(epoch FROM executed_at) FROM executions"
    " WHERE id BETWEEN {first} AND {last}) TO STDOUT WITH (FORMAT csv)"
)
COMMITS = "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"


@dataclass(frozen=True)
class Delays:
    """Seconds from each trade to each stream it reached: median, p99 and the longest."""

    deliveries: int
    p50_s: float
    p99_s: float
    max_s: float


def delays(arrivals_csv: Path, query: Callable[[str], str]) -> Delays | None:
    """The delays of the arrivals in the file; `query(sql)` answers from the service's
    database. None when no trade reached a stream."""
    if not arrivals_csv.exists():
        return None
    with open(arrivals_csv, newline="") as source:
        arrivals = [(int(row["trade_id"]), float(row["arrived"])) for row in csv.DictReader(source)]
    if not arrivals:
        return None
    numbers = [number for number, _ in arrivals]
    rows = csv.reader(query(EXECUTED.format(first=min(numbers), last=max(numbers))).splitlines())
    executed = {int(number): float(at) for number, at in rows}
    waited = sorted(at - executed[number] for number, at in arrivals if number in executed)
    if not waited:
        return None
    # Inclusive: a percentile between two of the delays measured, never beyond the longest.
    p99 = (
        statistics.quantiles(waited, n=100, method="inclusive")[98]
        if len(waited) > 1
        else waited[0]
    )
    return Delays(len(waited), statistics.median(waited), p99, waited[-1])
