"""Counters, gauges and histograms with labels, and the registry that renders them
in the Prometheus text exposition format 0.0.4.  Standard library only.

Each metric family has one lock, shared by its children: an update is a few
arithmetic operations under it, and a scrape copies the values under it, so a
scrape never sees half an observation.
"""
from __future__ import annotations

import math
import threading
from typing import (Any, Callable, Dict, Generic, Iterable, List, Mapping, Optional, Sequence,
                    Tuple, TypeVar)

from gearman.metrics.exposition import (LabelPairs, MetricFamily, Number, Sample,
                                        check_label_name, check_metric_name, format_value)

#: Prometheus' usual buckets, in seconds (``+Inf`` is always added).
DEFAULT_BUCKETS: Tuple[float, ...] = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                                      5.0, 10.0)


def _check_amount(amount: Number, what: str) -> float:
    if isinstance(amount, bool) or not isinstance(amount, (int, float)):
        raise TypeError(f"{what} must be a number, got {type(amount).__name__}")
    return float(amount)


# -- the metric types ----------------------------------------------------------------------
class _Child:
    """One labelled series of a family; updates take the family's lock."""

    __slots__ = ("_lock",)

    def __init__(self, lock: threading.Lock) -> None:
        self._lock = lock


class CounterChild(_Child):
    __slots__ = ("_value",)

    def __init__(self, lock: threading.Lock) -> None:
        super().__init__(lock)
        self._value = 0.0

    def inc(self, amount: Number = 1) -> None:
        """Add ``amount`` (>= 0: a counter only goes up)."""
        value = _check_amount(amount, "amount")
        if not value >= 0 or math.isinf(value):
            raise ValueError(f"a counter goes up by a finite amount >= 0, got {amount!r}")
        with self._lock:
            self._value += value

    def get(self) -> float:
        with self._lock:
            return self._value


class GaugeChild(_Child):
    __slots__ = ("_value",)

    def __init__(self, lock: threading.Lock) -> None:
        super().__init__(lock)
        self._value = 0.0

    def set(self, value: Number) -> None:
        checked = _check_amount(value, "value")
        with self._lock:
            self._value = checked

    def inc(self, amount: Number = 1) -> None:
        checked = _check_amount(amount, "amount")
        with self._lock:
            self._value += checked

    def dec(self, amount: Number = 1) -> None:
        checked = _check_amount(amount, "amount")
        with self._lock:
            self._value -= checked

    def get(self) -> float:
        with self._lock:
            return self._value


class HistogramChild(_Child):
    __slots__ = ("_bounds", "_counts", "_sum")

    def __init__(self, lock: threading.Lock, bounds: Tuple[float, ...]) -> None:
        super().__init__(lock)
        self._bounds = bounds  # finite upper bounds, increasing; +Inf is implied
        self._counts = [0] * (len(bounds) + 1)
        self._sum = 0.0

    def observe(self, value: Number) -> None:
        """Count ``value`` in the first bucket whose upper bound is >= it."""
        checked = _check_amount(value, "value")
        index = len(self._bounds)
        for i, bound in enumerate(self._bounds):
            if checked <= bound:
                index = i
                break
        with self._lock:
            self._counts[index] += 1
            self._sum += checked

    def snapshot(self) -> Tuple[List[int], float]:
        """(cumulative counts per bucket, +Inf last; sum)."""
        with self._lock:
            counts, total = list(self._counts), self._sum
        running, cumulative = 0, []
        for count in counts:
            running += count
            cumulative.append(running)
        return cumulative, total


C = TypeVar("C", bound=_Child)


class _Metric(Generic[C]):
    """A metric family: its name, help, label names and children by label values."""

    type = "untyped"
    reserved_labels: Tuple[str, ...] = ()

    def __init__(self, name: str, help_text: str, labelnames: Sequence[str] = ()) -> None:
        check_metric_name(name)
        if not isinstance(help_text, str):
            raise TypeError(f"help for {name} must be str, got {type(help_text).__name__}")
        if isinstance(labelnames, str):
            raise TypeError(f"labelnames for {name} must be a sequence of names, not a str")
        names = tuple(check_label_name(label) for label in labelnames)
        if len(set(names)) != len(names):
            raise ValueError(f"{name}: label names repeat: {names!r}")
        for reserved in self.reserved_labels:
            if reserved in names:
                raise ValueError(f"{name}: label {reserved!r} is reserved for a {self.type}")
        self.name, self.help, self.labelnames = name, help_text, names
        self._lock = threading.Lock()
        self._children: Dict[Tuple[str, ...], C] = {}
        if not names:
            self._children[()] = self._new_child()

    def _new_child(self) -> C:
        raise NotImplementedError

    def labels(self, *values: object, **named: object) -> C:
        """The child for these label values (by position or by name), made at 0 on
        first use."""
        key = self._key(values, named)
        child = self._children.get(key)
        if child is None:
            with self._lock:
                child = self._children.get(key)
                if child is None:
                    child = self._children[key] = self._new_child()
        return child

    def _key(self, values: Sequence[object], named: Mapping[str, object]) -> Tuple[str, ...]:
        if values and named:
            raise TypeError(f"{self.name}: give label values by position or by name, not both")
        if named:
            if set(named) != set(self.labelnames):
                raise ValueError(f"{self.name}: labels are {list(self.labelnames)}, "
                                 f"got {sorted(named)}")
            values = [named[label] for label in self.labelnames]
        if len(values) != len(self.labelnames):
            raise ValueError(f"{self.name}: {len(self.labelnames)} label values expected "
                             f"({', '.join(self.labelnames) or 'none'}), got {len(values)}")
        return tuple(str(value) for value in values)

    def _only_child(self) -> C:
        if self.labelnames:
            raise ValueError(f"{self.name} has labels {list(self.labelnames)}: "
                             "use .labels(...) first")
        return self._children[()]

    def remove(self, *values: object, **named: object) -> None:
        """Forget the series with these label values (no error if absent)."""
        key = self._key(values, named)
        with self._lock:
            self._children.pop(key, None)

    def clear(self) -> None:
        """Forget every labelled series."""
        if self.labelnames:
            with self._lock:
                self._children.clear()

    def _series(self) -> List[Tuple[LabelPairs, C]]:
        with self._lock:
            items = list(self._children.items())
        return [(tuple(zip(self.labelnames, key)), child) for key, child in items]

    def collect(self) -> MetricFamily:
        raise NotImplementedError


V = TypeVar("V", CounterChild, GaugeChild)


class _ValueMetric(_Metric[V]):
    """A family whose children hold one number each (counters, gauges)."""

    def get(self) -> float:
        return self._only_child().get()

    def inc(self, amount: Number = 1) -> None:
        self._only_child().inc(amount)

    def collect(self) -> MetricFamily:
        family = MetricFamily(self.name, self.help, self.type)
        for pairs, child in self._series():
            family.samples.append(Sample(self.name, pairs, child.get()))
        return family


class Counter(_ValueMetric[CounterChild]):
    """Goes up only: ``inc(amount=1)``.  Name it ``..._total``."""

    type = "counter"

    def _new_child(self) -> CounterChild:
        return CounterChild(self._lock)



class Gauge(_ValueMetric[GaugeChild]):
    """Goes up and down: ``set(v)``, ``inc(a=1)``, ``dec(a=1)``."""

    type = "gauge"

    def _new_child(self) -> GaugeChild:
        return GaugeChild(self._lock)

    def set(self, value: Number) -> None:
        self._only_child().set(value)

    def dec(self, amount: Number = 1) -> None:
        self._only_child().dec(amount)


class Histogram(_Metric[HistogramChild]):
    """Counts observations in buckets: ``observe(v)``; renders cumulative
    ``_bucket{le=...}`` (ending with ``+Inf``), ``_sum`` and ``_count``."""

    type = "histogram"
    reserved_labels = ("le",)

    def __init__(self, name: str, help_text: str, labelnames: Sequence[str] = (),
                 buckets: Sequence[Number] = DEFAULT_BUCKETS) -> None:
        bounds = [_check_amount(bound, "bucket bound") for bound in buckets]
        if bounds and math.isinf(bounds[-1]) and bounds[-1] > 0:
            bounds.pop()  # +Inf is always there
        if not bounds:
            raise ValueError(f"{name}: a histogram needs at least one finite bucket bound")
        if any(math.isnan(b) or math.isinf(b) for b in bounds):
            raise ValueError(f"{name}: bucket bounds must be finite (+Inf is added)")
        if any(later <= earlier for earlier, later in zip(bounds, bounds[1:])):
            raise ValueError(f"{name}: bucket bounds must increase, got {list(buckets)!r}")
        self.buckets: Tuple[float, ...] = tuple(bounds)
        super().__init__(name, help_text, labelnames)

    def _new_child(self) -> HistogramChild:
        return HistogramChild(self._lock, self.buckets)

    def observe(self, value: Number) -> None:
        self._only_child().observe(value)

    def collect(self) -> MetricFamily:
        family = MetricFamily(self.name, self.help, self.type)
        bounds = [format_value(bound) for bound in self.buckets] + ["+Inf"]
        for pairs, child in self._series():
            cumulative, total = child.snapshot()
            for bound, count in zip(bounds, cumulative):
                family.samples.append(Sample(self.name + "_bucket", pairs + (("le", bound),),
                                             count))
            family.samples.append(Sample(self.name + "_sum", pairs, total))
            family.samples.append(Sample(self.name + "_count", pairs, cumulative[-1]))
        return family


# -- the registry --------------------------------------------------------------------------
Collector = Callable[[], Iterable[MetricFamily]]
M = TypeVar("M", bound="_Metric[Any]")


class Registry:
    """The metrics one ``/metrics`` page shows, in the order they were added, then
    what each collector returns at scrape time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._metrics: Dict[str, _Metric[Any]] = {}
        self._collectors: List[Collector] = []

    def register(self, metric: M) -> M:
        """Add a metric built by hand; a second metric of the same name is refused."""
        with self._lock:
            if metric.name in self._metrics:
                raise ValueError(f"a metric named {metric.name} is already registered")
            self._metrics[metric.name] = metric
        return metric

    def _get_or_add(self, kind: type, name: str, help_text: str, labelnames: Sequence[str],
                    **options: object) -> _Metric[Any]:
        with self._lock:
            existing = self._metrics.get(name)
            if existing is None:
                metric: _Metric[Any] = kind(name, help_text, labelnames, **options)
                self._metrics[name] = metric
                return metric
        if type(existing) is not kind or existing.labelnames != tuple(labelnames):
            raise ValueError(f"{name} is already registered as a {existing.type} with labels "
                             f"{list(existing.labelnames)}")
        return existing

    def counter(self, name: str, help_text: str, labelnames: Sequence[str] = ()) -> Counter:
        """The counter ``name``, made on first use (same type and labels after that)."""
        metric = self._get_or_add(Counter, name, help_text, labelnames)
        assert isinstance(metric, Counter)
        return metric

    def gauge(self, name: str, help_text: str, labelnames: Sequence[str] = ()) -> Gauge:
        """The gauge ``name``, made on first use."""
        metric = self._get_or_add(Gauge, name, help_text, labelnames)
        assert isinstance(metric, Gauge)
        return metric

    def histogram(self, name: str, help_text: str, labelnames: Sequence[str] = (),
                  buckets: Sequence[Number] = DEFAULT_BUCKETS) -> Histogram:
        """The histogram ``name``, made on first use."""
        metric = self._get_or_add(Histogram, name, help_text, labelnames, buckets=buckets)
        assert isinstance(metric, Histogram)
        return metric

    def get(self, name: str) -> Optional[_Metric[Any]]:
        with self._lock:
            return self._metrics.get(name)

    def add_collector(self, collector: Collector) -> Collector:
        """Call ``collector()`` at every scrape; it returns MetricFamily snapshots."""
        if not callable(collector):
            raise TypeError(f"collector must be callable, got {type(collector).__name__}")
        with self._lock:
            self._collectors.append(collector)
        return collector

    def remove_collector(self, collector: Collector) -> None:
        with self._lock:
            if collector in self._collectors:
                self._collectors.remove(collector)

    def collect(self) -> List[MetricFamily]:
        """Every family now.  A collector that raises makes the scrape fail (the
        error propagates): a partial page would look like healthy zeros."""
        with self._lock:
            metrics, collectors = list(self._metrics.values()), list(self._collectors)
        families = [metric.collect() for metric in metrics]
        for collector in collectors:
            families.extend(collector())
        return families

    def render(self) -> str:
        """The text exposition format 0.0.4 of everything registered."""
        return "".join(family.render() for family in self.collect())
