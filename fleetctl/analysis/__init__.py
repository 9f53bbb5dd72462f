"""Canary analysis: judging a release by how the app performs, not only whether it is
alive. The ``analysis:`` schema (:mod:`.spec`), conditions (:mod:`.conditions`), what
a source measured (:mod:`.measurements`), the verdict over the intervals
(:mod:`.verdict`), and taking the measurements over the hosts' SSH connections
(:mod:`.sampling`).

May import: device, ssh, yamlfile and the shared helpers; never inventory, catalog,
plan, rollout, delivery, api or cli (the catalog and the rollout import it).
"""
