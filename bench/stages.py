"""The stage breakdown of a measured point: where its requests' time went (app/web/stages.py).

The service's `/metrics` is read before and after the point; the difference of
`exchange_request_stage_seconds` bucket counts is the histogram of that point
alone, and its quantiles are read off it by linear interpolation within the
bucket they fall in (Prometheus' histogram_quantile).
"""

from prometheus_client.parser import text_string_to_metric_families

STAGES = ("arriving", "queued", "locking", "database", "application", "replying")
METRIC = "exchange_request_stage_seconds"

Buckets = dict[str, dict[float, float]]  # stage -> upper bound -> cumulative count


def buckets(scraped: str) -> Buckets:
    """Every stage's cumulative bucket counts in a scrape of `/metrics`."""
    found: Buckets = {}
    for family in text_string_to_metric_families(scraped):
        if family.name != METRIC:
            continue
        for sample in family.samples:
            if sample.name == f"{METRIC}_bucket":
                bound = float(sample.labels["le"])
                found.setdefault(sample.labels["stage"], {})[bound] = sample.value
    return found


def quantiles(before: Buckets, after: Buckets, wanted=(0.5, 0.99)) -> dict[str, list[float]]:
    """Seconds at each wanted quantile, per stage, of the requests between the two scrapes."""
    result = {}
    for stage in STAGES:
        counts = {
            bound: count - before.get(stage, {}).get(bound, 0.0)
            for bound, count in sorted(after.get(stage, {}).items())
        }
        result[stage] = [_quantile(counts, q) for q in wanted]
    return result


def _quantile(cumulative: dict[float, float], q: float) -> float:
    total = cumulative.get(float("inf"), 0.0)
    if total <= 0:
        return 0.0
    rank, lower, below = q * total, 0.0, 0.0
    for bound, count in cumulative.items():
        if count >= rank:
            if bound == float("inf"):
                return lower  # beyond the last bound: say the last bound
            share = (rank - below) / (count - below) if count > below else 1.0
            return lower + (bound - lower) * share
        lower, below = bound, count
    return lower
