"""fleetctl: fleet orchestration for NVIDIA Jetson devices."""

__version__ = "0.1.0"
