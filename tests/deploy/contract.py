"""What the deployment artifacts may rely on, taken from the worker itself: the metric names it
exports, the environment variables it reads, the HTTP endpoints it serves. Plus a small PromQL
metric-name extractor to check dashboards and alerts against those names.
"""

from __future__ import annotations

import re

# Series Prometheus itself adds to every scrape target.
PROMETHEUS_SYNTHETIC = frozenset({"up"})

_SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("", "_count", "_sum", "_created"),
    "gauge": ("",),
    "info": ("_info",),
    "stateset": ("",),
    "gaugehistogram": ("_bucket", "_gcount", "_gsum"),
    "unknown": ("",),
}


def sample_names(exposition: str) -> set[str]:
    """Every series name an exposition (the text of /metrics) can contain, from its ``# TYPE``
    lines (so labelled metrics count before their first sample) and its samples.

    >>> sorted(sample_names("# TYPE a_total counter\\na_total 1\\n# TYPE h histogram\\n"))
    ['a_created', 'a_total', 'h_bucket', 'h_count', 'h_created', 'h_sum']
    """
    names: set[str] = set()
    for line in exposition.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(maxsplit=3)
            base = name.removesuffix("_total") if kind == "counter" else name
            names.update(base + suffix for suffix in _SUFFIXES.get(kind, ("",)))
        elif line and not line.startswith("#"):
            names.add(re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line).group())
    return names


def worker_exported_names() -> set[str]:
    """Series names of a fresh `tagstream.worker.metrics.Metrics` (no process needed)."""
    from prometheus_client import CollectorRegistry, generate_latest

    from tagstream.worker.metrics import Metrics

    registry = CollectorRegistry()
    Metrics(registry)
    return sample_names(generate_latest(registry).decode())


def worker_env_names() -> set[str]:
    """Every TAGSTREAM_* variable the worker's settings tree reads."""
    from tagstream.worker.settings import env_names

    return env_names()


_KEYWORDS = frozenset(
    {
        "and",
        "or",
        "unless",
        "bool",
        "offset",
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "inf",
        "nan",
        "atan2",
    }
)


def promql_metric_names(expr: str) -> set[str]:
    """Metric names a PromQL expression (Grafana variables allowed) selects.

    >>> sorted(promql_metric_names('histogram_quantile(0.99, sum by (le) '
    ...     '(rate(x_bucket{job=~"$job"}[$__rate_interval]))) > 1e3 and on() up offset 5m'))
    ['up', 'x_bucket']
    """
    s = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', '""', expr)
    s = re.sub(r"\{[^{}]*\}", " ", s)  # label matchers
    s = re.sub(r"\[[^\[\]]*\]", " ", s)  # ranges and subqueries
    s = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", s)
    s = re.sub(r"\$\{?\w+\}?", " ", s)  # Grafana variables
    names = set()
    for match in re.finditer(r"[a-zA-Z_:][a-zA-Z0-9_:]*", s):
        before = s[match.start() - 1] if match.start() else " "
        if before.isdigit() or before == ".":
            continue  # 1e3, 0.5e-2
        if s[match.end() :].lstrip().startswith("("):
            continue  # a function
        if match.group() in _KEYWORDS:
            continue
        names.add(match.group())
    return names


def grafana_variable_metric_names(query: str) -> set[str]:
    """Metric names of a Grafana Prometheus variable query (label_values, query_result, metrics).

    >>> sorted(grafana_variable_metric_names('label_values(x_info{a="1"}, job)'))
    ['x_info']
    """
    match = re.fullmatch(r"\s*label_values\((.*),\s*\w+\s*\)\s*", query)
    if match:
        return promql_metric_names(match.group(1))
    match = re.fullmatch(r"\s*query_result\((.*)\)\s*", query)
    if match:
        return promql_metric_names(match.group(1))
    return promql_metric_names(query)
