"""Simulators that speak the real wire protocols: city HTTP, rig Modbus, scanner pty."""
