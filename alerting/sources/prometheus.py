"""Prometheus HTTP API datasource: instant (and range, for backtests) PromQL queries over httpx."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import httpx
import orjson
import promql_parser

from alerting.durations import parse_duration
from alerting.errors import ConfigError, DatasourceError, Position, QueryError, RuleFileError
from alerting.sources import Kind, Sample
from alerting.transport import SetupError, TLSFilesError, new_client, parse_http_config

# Prometheus error types that mean "this query is wrong" rather than "the server cannot answer".
_QUERY_FAULTS = {"bad_data", "execution", "not_found"}
_FIELDS = ("url", "timeout", "headers")  # besides the http_config fields
_RANGE_POINTS = 11000  # Prometheus rejects range queries with more points per series than this


def check_expr(expr: Any, pos: Position) -> str:
    """Parse PromQL offline; a syntax error is a rule-file error at the ``expr`` position."""
    if not isinstance(expr, str) or not expr.strip():
        raise RuleFileError("expr must be a non-empty PromQL string", pos)
    try:
        promql_parser.parse(expr)
    except (ValueError, RuntimeError) as exc:
        raise RuleFileError(f"invalid PromQL in expr: {exc}", pos) from None
    return expr


def without_credentials(url: str) -> str:
    """``url`` without the ``user:password@`` it may carry: for anything a person or receiver sees."""
    return str(httpx.URL(url).copy_with(username=None, password=None))


def _float(text: Any) -> float:
    # Prometheus encodes sample values as strings: "1.5", "NaN", "+Inf", "-Inf".
    if not isinstance(text, str):
        raise ValueError(f"sample value must be a string, got {type(text).__name__}")
    return float(text)


class PrometheusSource:
    """One Prometheus server. Thread-safe: a group's queries share the connection pool."""

    def __init__(self, name: str, config: Mapping[str, Any]) -> None:
        self.name = name
        self.url = str(config.get("url") or "http://localhost:9090").rstrip("/")
        # Error messages end up in rule health, `alerting status` and history: never with the
        # credentials a URL may carry (http://user:password@host).
        self.shown_url = without_credentials(self.url)
        self.timeout = parse_duration(str(config.get("timeout", "30s")))
        # The HTTP settings sit beside url and timeout, as in Prometheus's remote_read: the same
        # http_config whether they come from PROMETHEUS_* variables or a datasources: entry.
        http = parse_http_config(config, f'datasource "{name}"', getattr(config, "pos", None), beside=_FIELDS)
        headers = config.get("headers") or {}
        if not isinstance(headers, Mapping):
            raise ConfigError(f'datasource "{name}": headers must be a mapping', getattr(config, "pos", None))
        try:
            self._client = new_client(
                http,
                # Prometheus is told the same timeout; the extra second lets its own answer arrive.
                httpx.Timeout(self.timeout + 1, connect=min(self.timeout, 10.0)),
                base_url=self.url,
                # Uncompressed answers: a rule's answer is a few kilobytes, and gunzipping it cost
                # more of our CPU per query than decoding its JSON (Prometheus saves the gzip too).
                # A configured Accept-Encoding header wins.
                headers=_with_identity({str(k): str(v) for k, v in headers.items()}),
                limits=httpx.Limits(max_connections=32, max_keepalive_connections=16),
            )
        except TLSFilesError as exc:
            raise ConfigError(
                f'datasource "{name}": cannot load TLS files: {exc}', getattr(config, "pos", None)
            ) from None

    def close(self) -> None:
        self._client.close()

    def _get(self, path: str, params: dict[str, Any]) -> Any:
        try:
            response = self._client.post(path, data=params)
        except httpx.TimeoutException:
            raise DatasourceError(f"timeout querying {self.shown_url}", self.name) from None
        except SetupError as exc:
            raise DatasourceError(f"cannot query {self.shown_url}: {exc}", self.name) from None
        except httpx.HTTPError as exc:
            raise DatasourceError(f"cannot reach {self.shown_url}: {exc}", self.name) from None
        try:
            # orjson: decoding the answer was the largest part of a query's cost in our own process.
            body = orjson.loads(response.content)
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
            snippet = response.text[:200].strip()
            raise DatasourceError(
                f"HTTP {response.status_code} from {self.shown_url}: {snippet or 'empty body'}", self.name
            ) from None
        if not isinstance(body, dict) or body.get("status") not in ("success", "error"):
            raise DatasourceError(
                f"unexpected response from {self.shown_url}: not a Prometheus API envelope", self.name
            )
        if body["status"] == "error":
            # Any JSON may sit in these fields; only text means something.
            error_type = str(body.get("errorType") or "")
            message = str(body.get("error") or "unknown error")
            if error_type in _QUERY_FAULTS and response.status_code < 500:
                raise QueryError(f"{error_type}: {message}")
            raise DatasourceError(f"{error_type or response.status_code}: {message}", self.name)
        return body.get("data")

    def query(self, query: Any, at: float) -> list[Sample]:
        """Instant query at ``at``; a scalar becomes one sample with no labels, as in rules."""
        data = self._get(
            "/api/v1/query", {"query": query, "time": f"{at:.3f}", "timeout": f"{self.timeout:g}s"}
        )
        try:
            kind, result = data["resultType"], data["result"]
            if kind == "vector":
                return [Sample(_labels(item["metric"]), _float(item["value"][1])) for item in result]
            if kind == "scalar":
                return [Sample({}, _float(result[1]))]
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise DatasourceError(
                f"malformed query result from {self.shown_url}: {exc!r}", self.name
            ) from None
        raise QueryError(f"rule result is not a vector or scalar: got {kind}")

    def query_range(self, query: str, start: float, end: float, step: float) -> dict[float, list[Sample]]:
        """Range query, chunked under Prometheus's point limit; returns samples per step time."""
        out: dict[float, list[Sample]] = {}
        chunk = step * (_RANGE_POINTS - 1)
        t = start
        while t <= end:
            stop = min(end, t + chunk)
            data = self._get(
                "/api/v1/query_range",
                {"query": query, "start": f"{t:.3f}", "end": f"{stop:.3f}", "step": f"{step:g}"},
            )
            try:
                for series in data["result"]:
                    labels = _labels(series.get("metric", {}))
                    for ts, value in series["values"]:
                        out.setdefault(round(float(ts), 3), []).append(Sample(labels, _float(value)))
            except (KeyError, IndexError, TypeError, ValueError) as exc:
                raise DatasourceError(
                    f"malformed range result from {self.shown_url}: {exc!r}", self.name
                ) from None
            t = stop + step
        return out


def _with_identity(headers: dict[str, str]) -> dict[str, str]:
    if any(name.lower() == "accept-encoding" for name in headers):
        return headers
    return {"Accept-Encoding": "identity", **headers}


def _labels(metric: Any) -> dict[str, str]:
    if not isinstance(metric, dict):
        raise ValueError("metric must be an object")
    return {str(k): str(v) for k, v in metric.items()}


KIND: Kind = Kind(
    name="promql",
    field="expr",
    check=check_expr,
    open=PrometheusSource,
    default_datasource="prometheus",
)
