"""Judging measurements: each interval's measurement of a metric passes, fails or is
inconclusive; a metric fails once more than ``failure_limit`` of its measurements
failed; the analysis fails if a metric failed, is inconclusive if a measurement could
not be judged (too few samples, no baseline), and succeeds otherwise. Inconclusive
never promotes: the rollout pauses for a person, or fails, as the analysis says.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fleetctl.analysis.conditions import Condition, Values, evaluate, explain, missing
from fleetctl.analysis.spec import Metric


@dataclass(frozen=True)
class Judged:
    """One measurement's outcome (passed, failed or inconclusive) and why."""

    outcome: str
    detail: str
    samples: int | None = None


def judge(metric: Metric, values: Values, baseline: Values | None,
          samples: int | None = None) -> Judged:
    """One measurement of ``metric`` against its conditions. ``samples`` (requests
    answered or sent) below the metric's ``min_samples`` is inconclusive."""
    counted = f" ({samples} samples)" if samples is not None else ""
    if samples is not None and samples < metric.min_samples:
        return Judged("inconclusive", f"{metric.name}: only {samples} samples, "
                                      f"{metric.min_samples} needed", samples)
    checks: list[tuple[Condition, bool]] = []
    if metric.failure is not None:
        checks.append((metric.failure, True))
    if metric.success is not None:
        checks.append((metric.success, False))
    for condition, fails_when in checks:
        result = evaluate(condition, values, baseline)
        if result is None:
            return Judged("inconclusive", f"{metric.name}: {condition}: "
                          f"{missing(condition, values, baseline)}{counted}", samples)
        if result == fails_when:
            word = "met its failure condition" if fails_when else "failed"
            return Judged("failed", f"{metric.name}: {condition} {word}: "
                          f"{explain(condition, values, baseline)}{counted}", samples)
    shown = "; ".join(explain(c, values, baseline) for c, _ in checks)
    return Judged("passed", f"{metric.name}: {shown}{counted}", samples)


@dataclass
class MetricRun:
    """A metric's measurements so far."""

    metric: Metric
    judged: list[Judged] = field(default_factory=list)
    unavailable: str | None = None      # why the host cannot measure this source at all

    @property
    def failures(self) -> int:
        return sum(j.outcome == "failed" for j in self.judged)

    @property
    def failed(self) -> bool:
        return self.failures > self.metric.failure_limit

    @property
    def finished(self) -> bool:
        return self.unavailable is not None or self.failed or \
            len(self.judged) >= self.metric.count

    @property
    def outcome(self) -> str:
        """failed, inconclusive, successful, unavailable (left out: the host cannot
        measure it), or running (measurements to come)."""
        if self.unavailable is not None:
            return "unavailable"
        if self.failed:
            return "failed"
        if not self.finished:
            return "running"
        if any(j.outcome == "inconclusive" for j in self.judged):
            return "inconclusive"
        return "successful"


@dataclass(frozen=True)
class Verdict:
    """The analysis' outcome on one host (successful, failed or inconclusive), the
    measurement that decided it, and every measurement for the journal."""

    outcome: str
    detail: str
    measurements: dict[str, list[dict[str, Any]]]

    def to_json(self) -> dict[str, Any]:
        return {"outcome": self.outcome, "detail": self.detail,
                "measurements": self.measurements}


def verdict(runs: list[MetricRun], baseline_hosts: list[str]) -> Verdict:
    """The analysis' outcome from its metrics' runs."""
    measurements = {r.metric.name: [{"outcome": j.outcome, "detail": j.detail,
                                     "samples": j.samples} for j in r.judged] for r in runs}
    against = f"; baseline: {', '.join(baseline_hosts)}" if baseline_hosts else \
        "; no baseline host"
    left_out = [r for r in runs if r.outcome == "unavailable"]
    if left_out:
        against += "; not measured: " + ", ".join(f"{r.metric.name} ({r.unavailable})"
                                                   for r in left_out)
        runs = [r for r in runs if r not in left_out]
        if not runs:
            return Verdict("inconclusive", "no metric could be measured" + against,
                           measurements)
    failed = [r for r in runs if r.outcome == "failed"]
    if failed:
        last = next(j for j in reversed(failed[0].judged) if j.outcome == "failed")
        return Verdict("failed", last.detail + against, measurements)
    unsure = [r for r in runs if r.outcome in ("inconclusive", "running")]
    if unsure:
        last = next((j for j in reversed(unsure[0].judged) if j.outcome == "inconclusive"),
                    None)
        why = last.detail if last else f"{unsure[0].metric.name}: not measured"
        return Verdict("inconclusive", why + against, measurements)
    shown = "; ".join(r.judged[-1].detail for r in runs)
    metrics = f"{len(runs)} metric" + ("s" if len(runs) != 1 else "")
    return Verdict("successful", f"{metrics} passed ({shown}){against}", measurements)
