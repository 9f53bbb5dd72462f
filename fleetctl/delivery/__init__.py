"""Getting images onto hosts without a registry: over SSH, seeded per site, from signed
bundles, through the controller's content-addressed blob store; and the keys that sign
bundles.

May import: catalog (registry, compose paths), device, ssh, state and the shared
helpers.
"""
