"""JetPack (L4T) updates: which way each host can go to a target release, or why not
(:mod:`.paths`), and the check that its apps have images for the new release
(:mod:`.plan`).

May import: facts, catalog, plan and the shared helpers; never rollout, api or cli.
"""
