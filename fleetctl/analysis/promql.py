"""The ``query`` source: a PromQL query against the site's Prometheus server (its HTTP
API, ``/api/v1/query``), asked by the controller for the canary and for each baseline
host. ``$host`` in the query becomes the host's inventory name as a PromQL string
(quoted and escaped), so an inventory name can never change the query's shape.

The server is outside the controller's trust: its answer is capped, parsed into a
number or refused, and a server that does not answer makes the interval inconclusive.
"""

from __future__ import annotations

import json
import math

import requests

#: the most of a query's answer fleetctl reads
ANSWER_LIMIT = 2**20


class QueryError(Exception):
    """The query could not be asked or its answer was not a number."""


def render_query(query: str, host: str) -> str:
    """``query`` with ``$host`` replaced by ``host`` as a PromQL string literal."""
    return query.replace("$host", json.dumps(host))


def ask(url: str, query: str, timeout: float = 10.0) -> tuple[float | None, int]:
    """The query's value (the sum of an instant vector's samples, or a scalar) and how
    many series it had; None when the vector is empty."""
    try:
        with requests.get(f"{url.rstrip('/')}/api/v1/query", params={"query": query},
                          timeout=timeout, stream=True) as response:
            body = response.raw.read(ANSWER_LIMIT + 1, decode_content=True)
            status = response.status_code
    except requests.RequestException as exc:
        raise QueryError(f"{url}: no answer ({type(exc).__name__})") from None
    if len(body) > ANSWER_LIMIT:
        raise QueryError(f"{url}: the answer is larger than {ANSWER_LIMIT} bytes")
    try:
        doc = json.loads(body)
    except ValueError:
        raise QueryError(f"{url}: HTTP {status}, not JSON") from None
    if not isinstance(doc, dict) or doc.get("status") != "success":
        error = doc.get("error") if isinstance(doc, dict) else None
        raise QueryError(f"{url}: query refused: {str(error)[:200] or f'HTTP {status}'}")
    data = doc.get("data")
    kind = data.get("resultType") if isinstance(data, dict) else None
    result = data.get("result") if isinstance(data, dict) else None
    try:
        if kind == "scalar":
            return _number(result[1]), 1
        if kind == "vector" and isinstance(result, list):
            values = [_number(series["value"][1]) for series in result]
            found = [v for v in values if v is not None]
            return (sum(found) if found else None), len(values)
    except (TypeError, KeyError, IndexError, ValueError):
        pass
    raise QueryError(f"{url}: the answer is not an instant vector or scalar")


def _number(text: object) -> float | None:
    """A sample's value (Prometheus writes them as strings); None for NaN."""
    value = float(str(text))
    return None if math.isnan(value) else value
