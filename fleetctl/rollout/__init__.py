"""Rollouts: the engine (steps, failure policy), each host's state machine (lock,
preflight, stage, activate, gate, commit or revert), the health gate, the journal,
playbooks and package rollbacks.

May import: inventory, facts, catalog, plan, delivery, device, ssh, state and the shared
helpers; never api or cli.
"""
