"""Seeding a site before the first step: one host gets the blobs once over the uplink and
serves them to the others over the LAN.
"""

from __future__ import annotations

from fleetctl import device
from fleetctl.delivery.images import (
    Seed,
    clean,
    declared_size,
    deliver_from_seed,
    image_parts,
    load,
    stage_for_peers,
    survey,
)
from fleetctl.errors import FleetError
from fleetctl.plan import Plan, PlanEntry
from fleetctl.rollout.context import Context, Options, connect_host, parallel, ssh_delivery
from fleetctl.rollout.host import states_by_host
from fleetctl.rollout.journal import RolloutRecord
from fleetctl.ssh import Connection, SSHFailure


def seed_sites(ctx: Context, record: RolloutRecord, plan: Plan, options: Options) -> None:
    """Before the first step, per site: one host (the first in rollout order) gets every
    blob the site's hosts lack over the uplink, once, and loads its own images; the
    others fetch theirs from it over the LAN. A host this fails for is left to get its
    image over its own SSH connection at its step."""
    states = states_by_host(ctx.journal, record.id)
    order = {h: i for i, h in enumerate(h for step in record.steps for h in step)}
    sites: dict[str, dict[str, list[PlanEntry]]] = {}
    for e in plan.entries:
        if (e.target and e.host in order and ssh_delivery(ctx, options, e.host)
                and any(s.package == e.package and s.phase in ("pending", "deferred")
                        for s in states[e.host])):
            sites.setdefault(e.site or "-", {}).setdefault(e.host, []).append(e)
    parallel(lambda site: _seed_site(ctx, record, options, site,
                                     dict(sorted(sites[site].items(),
                                                 key=lambda item: order[item[0]]))),
             [site for site, hosts in sites.items() if len(hosts) > 1])


def _seed_site(ctx: Context, record: RolloutRecord, options: Options, site: str,
               hosts: dict[str, list[PlanEntry]]) -> None:
    assert ctx.blobs is not None
    store, journal = ctx.blobs, ctx.journal
    images = {h: [image_parts(store, e.target) for e in entries if e.target]
              for h, entries in hosts.items()}
    every_image = [image for found in images.values() for image in found]

    def note(host: str, phase: str, detail: str) -> None:
        for entry in hosts[host]:
            journal.note(record.id, host, entry.package, phase, detail)

    conns: dict[str, Connection] = {}
    for host, conn in zip(hosts, parallel(lambda h: try_connect(ctx, h, options), list(hosts)),
                          strict=True):
        if isinstance(conn, Connection):
            conns[host] = conn
        else:
            note(host, "delivery", f"not reached for seeding ({conn}); it gets its image "
                                   f"itself at its step")
    if len(conns) < 2:
        for conn in conns.values():
            conn.close()
        return
    seed_host, *peers = conns
    seed_conn = conns[seed_host]
    try:
        needs = dict(zip(conns, parallel(lambda h: survey(conns[h], images[h]), list(conns)),
                         strict=True))
        blobs = {d: store.ensure(ref, d, max_size=declared_size(every_image, d))
                 for need in needs.values() for d, ref in need.blobs.items()}
        sent, resumed = stage_for_peers(seed_conn, blobs, ctx.site_limit(site))
        for image in needs[seed_host].images:
            load(seed_conn, image)
        note(seed_host, "delivery", f"seed of site {site}: {len(blobs)} blobs, {sent:,} bytes "
                                    f"sent over SSH" + (f" ({resumed:,} staged before)"
                                                        if resumed else ""))
        seed = Seed(seed_conn, ctx.hosts[seed_host].vars.get("ansible_host") or
                    seed_conn.target.address)
        try:
            def fetch(peer: str) -> None:
                try:
                    done = deliver_from_seed(conns[peer], peer, images[peer], seed, seed_host)
                    note(peer, "delivery", done.describe())
                except (device.StepFailed, SSHFailure) as exc:
                    note(peer, "delivery", f"from seed {seed_host} failed ({exc}); it gets "
                                           f"its image itself at its step")
            parallel(fetch, peers)
        finally:
            seed.close()
        clean(seed_conn, list(blobs))
    except (device.StepFailed, SSHFailure, FleetError) as exc:
        note(seed_host, "delivery", f"seeding site {site} failed ({exc}); each host gets "
                                    f"its image itself at its step")
    finally:
        for conn in conns.values():
            conn.close()


def try_connect(ctx: Context, host: str, options: Options) -> Connection | str:
    try:
        return connect_host(ctx, host, options.connect_timeout)
    except SSHFailure as exc:
        return f"{exc.reason}: {exc.detail}"
