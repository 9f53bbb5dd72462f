"""The simulated Jetson lab: namespaced hosts with real sshd and dockerd, and a registry."""
