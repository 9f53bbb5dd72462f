"""The canary analysis of one host after its health gate: which hosts are its baseline
(same package, same L4T and module, not in this step, still on the release the canary
ran before), the metrics' URLs rendered for each, and the verdict.
"""

from __future__ import annotations

from contextlib import ExitStack

from fleetctl import device
from fleetctl.analysis.sampling import HostSubject, analyse
from fleetctl.analysis.spec import Analysis
from fleetctl.analysis.verdict import Verdict
from fleetctl.catalog.compose import RenderContext, render_text
from fleetctl.catalog.packages import Package
from fleetctl.plan import Plan, PlanEntry
from fleetctl.rollout.context import Context, connect_host, live_facts, render_context
from fleetctl.ssh import Connection, SSHFailure


def baseline_hosts(plan: Plan, entry: PlanEntry, step_hosts: list[str], limit: int) -> list[str]:
    """Up to ``limit`` hosts, by name, of the canary's class that run what the canary ran
    before and are not in its step."""
    if not entry.current_digest:
        return []
    return sorted(e.host for e in plan.entries
                  if e.package == entry.package and e.host not in step_hosts
                  and (e.l4t, e.module) == (entry.l4t, entry.module)
                  and e.current_digest == entry.current_digest)[:limit]


def urls(analysis: Analysis, render: RenderContext) -> dict[str, str]:
    """Each metric's request or metrics URL rendered for one host."""
    found = {}
    for metric in analysis.metrics:
        url = metric.request.url if metric.request else metric.url
        if url:
            found[metric.name] = render_text(render, url)
    return found


def analyse_host(ctx: Context, conn: Connection, plan: Plan, entry: PlanEntry,
                 package: Package, render: RenderContext, step_hosts: list[str],
                 timeout: float) -> Verdict:
    """Measure the canary ``conn`` beside its baseline hosts as the package's analysis
    says; a baseline host that cannot be reached is left out (and named)."""
    analysis = package.analysis
    assert analysis is not None
    canary = HostSubject(entry.host, conn, package.name, render.release, urls(analysis, render))
    with ExitStack() as stack:
        subjects, missing = [], []
        for host in baseline_hosts(plan, entry, step_hosts, analysis.baseline_hosts):
            try:
                other = stack.enter_context(connect_host(ctx, host, timeout))
                current, _, _ = device.releases(other, package.name)
                if not current:
                    raise device.StepFailed("no current release")
                facts = live_facts(other)
                other_render = render_context(ctx, package, host, current, facts,
                                              next(e.current_version for e in plan.entries
                                                   if e.host == host
                                                   and e.package == package.name))
            except (SSHFailure, device.StepFailed) as exc:
                missing.append(f"{host} ({exc})")
                continue
            subjects.append(HostSubject(host, other, package.name, current,
                                        urls(analysis, other_render)))
        result = analyse(analysis, canary, subjects, sleep=ctx.sleep, clock=ctx.clock)
    if missing:
        result = Verdict(result.outcome, f"{result.detail}; left out of the baseline: "
                                         f"{', '.join(missing)}", result.measurements)
    return result
