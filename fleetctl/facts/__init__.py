"""Facts: the probe (one POSIX sh script per host over SSH), its parser into HostFacts,
NVIDIA's Jetson tables, and the audit built on them.

May import: inventory, ssh, state and the shared helpers.
"""
