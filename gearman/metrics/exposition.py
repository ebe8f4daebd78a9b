"""The Prometheus text exposition format 0.0.4: value formatting, escaping, and the
MetricFamily snapshot that a metric or a collector hands to the renderer."""
from __future__ import annotations

import math
import re
from typing import List, Mapping, Tuple, Union

Number = Union[int, float]
LabelPairs = Tuple[Tuple[str, str], ...]

#: The content type of the rendered text.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*\Z")
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")


def format_value(value: Number) -> str:
    """A sample value as the text format spells it: ``+Inf``, ``-Inf``, ``NaN``, whole
    numbers without a fraction, others as Python's shortest round-tripping repr."""
    if isinstance(value, bool):
        value = int(value)
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value.is_integer() and abs(value) < 2 ** 53:
        return str(int(value))
    return repr(value)


def escape_label_value(value: str) -> str:
    """Backslash, double quote and newline escaped, as the text format requires."""
    return value.replace("\\", "\\\\").replace("\"", "\\\"").replace("\n", "\\n")


def escape_help(text: str) -> str:
    """HELP text: backslash and newline escaped (a double quote stays as it is)."""
    return text.replace("\\", "\\\\").replace("\n", "\\n")


class Sample:
    """One line of output: a sample name, its labels (in order) and its value."""

    __slots__ = ("name", "labels", "value")

    def __init__(self, name: str, labels: LabelPairs, value: Number) -> None:
        self.name, self.labels, self.value = name, labels, value

    def render(self) -> str:
        if self.labels:
            pairs = ",".join(f'{key}="{escape_label_value(value)}"'
                             for key, value in self.labels)
            return f"{self.name}{{{pairs}}} {format_value(self.value)}"
        return f"{self.name} {format_value(self.value)}"


class MetricFamily:
    """A snapshot of one metric family: what a collector returns at scrape time.

    ``MetricFamily("gearman_up", "1 if the server answered", "gauge")``, then
    ``family.add({"server": "gm1:4730"}, 1)`` per sample.
    """

    TYPES = ("counter", "gauge", "histogram", "untyped")

    def __init__(self, name: str, help_text: str, metric_type: str) -> None:
        check_metric_name(name)
        if metric_type not in self.TYPES:
            raise ValueError(f"metric type must be one of {', '.join(self.TYPES)}, "
                             f"got {metric_type!r}")
        self.name, self.help, self.type = name, help_text, metric_type
        self.samples: List[Sample] = []

    def add(self, labels: Mapping[str, str], value: Number, suffix: str = "") -> MetricFamily:
        """Add a sample named ``name + suffix`` (suffix e.g. ``_bucket``); returns self."""
        for key in labels:
            check_label_name(key)
        pairs = tuple((key, str(text)) for key, text in labels.items())
        self.samples.append(Sample(self.name + suffix, pairs, value))
        return self

    def render(self) -> str:
        lines = [f"# HELP {self.name} {escape_help(self.help)}",
                 f"# TYPE {self.name} {self.type}"]
        lines.extend(sample.render() for sample in self.samples)
        return "\n".join(lines) + "\n"


def check_metric_name(name: str) -> str:
    if not isinstance(name, str) or not _METRIC_NAME.match(name):
        raise ValueError(f"{name!r} is not a valid metric name ([a-zA-Z_:][a-zA-Z0-9_:]*)")
    return name


def check_label_name(name: str) -> str:
    if not isinstance(name, str) or not _LABEL_NAME.match(name) or name.startswith("__"):
        raise ValueError(f"{name!r} is not a valid label name ([a-zA-Z_][a-zA-Z0-9_]*, "
                         "not starting with __)")
    return name
