"""gearman.metrics: the text exposition format (exact text, and prometheus-client's
parser), thread safety, and the HTTP server."""
from __future__ import annotations

import math
import threading
import urllib.error
import urllib.request

import pytest

from gearman.metrics import (CONTENT_TYPE, Counter, MetricFamily, MetricsServer, Registry,
                             format_value, parse_listen_address)


def parse(text):
    """prometheus-client's own parser: strict about the 0.0.4 text format (a test-only
    dependency, pinned in requirements-test.txt)."""
    parser = pytest.importorskip("prometheus_client.parser",
                                 reason="prometheus-client (requirements-test.txt)")
    return {family.name: family for family in parser.text_string_to_metric_families(text)}


# -- exact text ------------------------------------------------------------------------------
def test_counter_and_gauge_render_exact_text():
    registry = Registry()
    jobs = registry.counter("demo_jobs_total", "Jobs done.", ["task"])
    jobs.labels(task="a").inc()
    jobs.labels("a").inc(2)
    jobs.labels("b")  # made at 0 by labels()
    level = registry.gauge("demo_level", "A level.")
    level.set(2.5)
    level.dec(0.5)
    assert registry.render() == (
        "# HELP demo_jobs_total Jobs done.\n"
        "# TYPE demo_jobs_total counter\n"
        'demo_jobs_total{task="a"} 3\n'
        'demo_jobs_total{task="b"} 0\n'
        "# HELP demo_level A level.\n"
        "# TYPE demo_level gauge\n"
        "demo_level 2\n")


def test_label_values_and_help_are_escaped():
    registry = Registry()
    counter = registry.counter("demo_total", 'Help with \\ backslash,\nnewline and "quotes".',
                               ["path"])
    counter.labels('C:\\dir\\"x"\nnext').inc()
    text = registry.render()
    assert text == (
        '# HELP demo_total Help with \\\\ backslash,\\nnewline and "quotes".\n'
        "# TYPE demo_total counter\n"
        'demo_total{path="C:\\\\dir\\\\\\"x\\"\\nnext"} 1\n')
    family = parse(text)["demo"]
    assert family.documentation == 'Help with \\ backslash,\nnewline and "quotes".'
    assert family.samples[0].labels == {"path": 'C:\\dir\\"x"\nnext'}


def test_histogram_buckets_are_cumulative_with_inf_sum_and_count():
    registry = Registry()
    took = registry.histogram("demo_seconds", "Durations.", ["task"], buckets=[0.1, 1, 10])
    for value in (0.05, 0.1, 0.5, 2, 20, 30):
        took.labels("t").observe(value)
    assert registry.render() == (
        "# HELP demo_seconds Durations.\n"
        "# TYPE demo_seconds histogram\n"
        'demo_seconds_bucket{task="t",le="0.1"} 2\n'
        'demo_seconds_bucket{task="t",le="1"} 3\n'
        'demo_seconds_bucket{task="t",le="10"} 4\n'
        'demo_seconds_bucket{task="t",le="+Inf"} 6\n'
        'demo_seconds_sum{task="t"} 52.65\n'
        'demo_seconds_count{task="t"} 6\n')
    family = parse(registry.render())["demo_seconds"]
    assert family.type == "histogram"
    buckets = {s.labels["le"]: s.value for s in family.samples if s.name.endswith("_bucket")}
    assert buckets == {"0.1": 2, "1": 3, "10": 4, "+Inf": 6}


def test_special_float_values():
    assert [format_value(v) for v in (math.inf, -math.inf, math.nan, 3, 3.0, 0.25, -2, 1e300,
                                      True)] == ["+Inf", "-Inf", "NaN", "3", "3", "0.25", "-2",
                                                 "1e+300", "1"]
    registry = Registry()
    gauge = registry.gauge("demo_g", "g", ["k"])
    gauge.labels("inf").set(math.inf)
    gauge.labels("ninf").set(-math.inf)
    gauge.labels("nan").set(math.nan)
    values = {s.labels["k"]: s.value for s in parse(registry.render())["demo_g"].samples}
    assert values["inf"] == math.inf and values["ninf"] == -math.inf
    assert math.isnan(values["nan"])


def test_collectors_run_at_scrape_time_and_parse():
    registry = Registry()
    calls = []

    def collect():
        calls.append(1)
        return [MetricFamily("demo_up", "Up.", "gauge").add({"server": "a:1"}, 1)
                .add({"server": "b:2"}, 0)]

    registry.add_collector(collect)
    assert calls == []
    families = parse(registry.render())
    assert calls == [1]
    assert [(s.labels, s.value) for s in families["demo_up"].samples] == [
        ({"server": "a:1"}, 1), ({"server": "b:2"}, 0)]


def test_whole_page_parses_strictly():
    registry = Registry()
    registry.counter("a_total", "a", ["x", "y"]).labels(x="1", y="2").inc(5)
    registry.gauge("b", "b").set(-1)
    registry.histogram("c_seconds", "c").observe(0.3)
    registry.add_collector(lambda: [MetricFamily("d_info", "d", "gauge").add({"v": "1.1"}, 1)])
    families = parse(registry.render())
    assert sorted(families) == ["a", "b", "c_seconds", "d_info"]
    assert families["a"].type == "counter"


# -- bad input -------------------------------------------------------------------------------
@pytest.mark.parametrize("call, error", [
    (lambda r: r.counter("bad name", "h"), ValueError),
    (lambda r: r.counter("ok_total", "h", ["__reserved"]), ValueError),
    (lambda r: r.counter("ok_total", "h", "task"), TypeError),
    (lambda r: r.histogram("h_seconds", "h", ["le"]), ValueError),
    (lambda r: r.histogram("h_seconds", "h", buckets=[1, 1]), ValueError),
    (lambda r: r.histogram("h_seconds", "h", buckets=[]), ValueError),
])
def test_bad_definitions_are_refused(call, error):
    with pytest.raises(error):
        call(Registry())


def test_bad_updates_are_refused():
    registry = Registry()
    counter = registry.counter("c_total", "c", ["task"])
    with pytest.raises(ValueError, match="use .labels"):
        counter.inc()
    with pytest.raises(ValueError, match="1 label values expected"):
        counter.labels("a", "b")
    with pytest.raises(ValueError, match="labels are"):
        counter.labels(other="a")
    with pytest.raises(ValueError, match=">= 0"):
        counter.labels("a").inc(-1)
    with pytest.raises(TypeError):
        counter.labels("a").inc("1")


def test_same_name_is_shared_or_refused():
    registry = Registry()
    first = registry.counter("c_total", "c", ["task"])
    assert registry.counter("c_total", "c", ["task"]) is first
    with pytest.raises(ValueError, match="already registered"):
        registry.gauge("c_total", "c", ["task"])
    with pytest.raises(ValueError, match="already registered"):
        registry.counter("c_total", "c", ["other"])
    with pytest.raises(ValueError, match="already registered"):
        registry.register(Counter("c_total", "c"))


# -- threads ---------------------------------------------------------------------------------
def test_concurrent_updates_are_exact():
    registry = Registry()
    counter = registry.counter("c_total", "c", ["task"])
    took = registry.histogram("h_seconds", "h", ["task"], buckets=[0.5])
    threads, rounds = 8, 5000
    start = threading.Barrier(threads)

    def hammer(n):
        start.wait()
        for i in range(rounds):
            counter.labels(f"t{i % 3}").inc()
            took.labels("t").observe(i % 2)
            if i % 500 == 0:
                registry.render()  # scrapes while updates go on

    workers = [threading.Thread(target=hammer, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    total = sum(counter.labels(f"t{k}").get() for k in range(3))
    assert total == threads * rounds
    family = parse(registry.render())["h_seconds"]
    count = [s.value for s in family.samples if s.name == "h_seconds_count"]
    assert count == [threads * rounds]


# -- the HTTP server -------------------------------------------------------------------------
@pytest.mark.parametrize("text, expected", [
    ("127.0.0.1:9418", ("127.0.0.1", 9418)), (":0", ("", 0)), ("[::1]:80", ("::1", 80)),
    ("localhost:65535", ("localhost", 65535))])
def test_parse_listen_address(text, expected):
    assert parse_listen_address(text) == expected


@pytest.mark.parametrize("text, message", [
    ("9418", "needs a port"), ("host:http", "not a number"), ("h:70000", "not in 0..65535"),
    ("::1:80", "brackets")])
def test_parse_listen_address_errors(text, message):
    with pytest.raises(ValueError, match=message):
        parse_listen_address(text)


def fetch(url):
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read().decode()


def test_server_serves_metrics_and_health_then_closes():
    registry = Registry()
    registry.gauge("demo_g", "g").set(7)
    healthy = [True]
    with MetricsServer("127.0.0.1:0", registry,
                       health=lambda: (healthy[0], "all good" if healthy[0] else "a child is down")
                       ) as server:
        assert server.port > 0
        status, ctype, body = fetch(server.url + "/metrics")
        assert (status, ctype) == (200, CONTENT_TYPE)
        assert parse(body)["demo_g"].samples[0].value == 7
        assert fetch(server.url + "/healthz") == (200, "text/plain; charset=utf-8",
                                                  "all good\n")
        healthy[0] = False
        assert fetch(server.url + "/healthz")[::2] == (503, "a child is down\n")
        assert fetch(server.url + "/nope")[0] == 404
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(server.url + "/metrics", timeout=5)
    server.close()  # idempotent


def test_a_failing_collector_makes_a_500_not_half_a_page():
    registry = Registry()
    registry.gauge("demo_g", "g").set(1)

    def broken():
        raise RuntimeError("boom")

    registry.add_collector(broken)
    with MetricsServer(("127.0.0.1", 0), registry) as server:
        status, _, body = fetch(server.url + "/metrics")
        assert status == 500 and "boom" in body
        assert fetch(server.url + "/healthz")[0] == 200


def test_a_taken_port_is_a_clear_error():
    with MetricsServer("127.0.0.1:0", Registry()) as first:
        with pytest.raises(OSError, match=f"cannot listen on 127.0.0.1:{first.port}"):
            MetricsServer(f"127.0.0.1:{first.port}", Registry())
