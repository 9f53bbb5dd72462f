"""Inventories: Ansible YAML/INI files, groups, vars and host patterns, and the SSH target
of each host.

May import: fleetctl's shared helpers (errors, yamlfile) and facts.hostfacts (for
--where selectors).
"""
