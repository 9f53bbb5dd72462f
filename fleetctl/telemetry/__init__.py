"""How the fleet is doing, outside a rollout: each host's apps and device in one SSH
round trip (:mod:`.status`), and the same as Prometheus's exposition format
(:mod:`.prometheus`).

May import: inventory, facts, catalog, rollout.journal, ssh, state and the shared
helpers; never api or cli.
"""
