"""Adapters between the ports in appliance.ports and real or simulated hardware.

Each module imports its hardware library (picamera2, gpiozero, OpenCV's capture) inside
the adapter, so importing this package works on any machine; simulated adapters stand in
for the real ones when the appliance runs with ``--simulate`` and in tests.
"""
