"""Reading a node's operations HTTP listener (`metrics.http.listener`) as a person's
tools would: a plain HTTP client, Prometheus' text format parsed line by line, and the
status page's tables parsed as HTML. Shared by the metrics and cluster tests."""

from __future__ import annotations

import re
import urllib.error
import urllib.request
from html.parser import HTMLParser

METRIC_LINE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)$")
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def http_get(url: str, method: str = "GET", timeout: float = 10.0):
    """(status, headers (case-insensitive), body)."""
    req = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.headers, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read().decode()


def scrape(b) -> list[tuple[str, dict[str, str], float]]:
    status, headers, body = http_get(f"{b.metrics_url}/metrics")
    assert status == 200, body
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4"), headers
    samples = []
    for line in body.splitlines():
        if not line or line.startswith("#"):
            continue
        m = METRIC_LINE.match(line)
        assert m, f"not a Prometheus sample line: {line!r}"
        labels = dict(LABEL.findall(m.group(3) or ""))
        samples.append((m.group(1), labels, float(m.group(4))))
    return samples


def value(samples, name: str, **labels) -> float | None:
    """The one sample of `name` whose labels include `labels` (None: no such sample)."""
    found = [v for n, ls, v in samples if n == name and all(ls.get(k) == str(x) for k, x in labels.items())]
    assert len(found) <= 1, f"{name}{labels} matches {len(found)} samples"
    return found[0] if found else None


class Rows(HTMLParser):
    """Table rows of a page as (attributes of the <tr>, cell texts)."""

    def __init__(self):
        super().__init__()
        self.rows: list[tuple[dict, list[str]]] = []
        self.ids: dict[str, str] = {}
        self._cell: list[str] | None = None
        self._id: str | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "tr":
            self.rows.append((a, []))
        elif tag in ("td", "th"):
            self._cell = []
        if "id" in a and tag == "span":
            self._id = a["id"]
            self.ids[self._id] = ""

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None and self.rows:
            self.rows[-1][1].append("".join(self._cell).strip())
            self._cell = None
        if tag == "span":
            self._id = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)
        if self._id is not None:
            self.ids[self._id] += data
