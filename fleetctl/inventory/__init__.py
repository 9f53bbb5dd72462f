"""Inventories: Ansible YAML/INI files, folders, inventory scripts and plugins, groups,
vars (vaulted ones too) and host patterns, and the SSH target of each host (ssh_config,
jump hosts, become).

May import: fleetctl's shared helpers (errors, yamlfile, secrets, vault) and
facts.hostfacts (for --where selectors).
"""
