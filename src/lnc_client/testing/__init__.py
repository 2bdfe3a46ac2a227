"""Tools for testing code that uses lnc-client: the pytest plugin and the fault proxy.

The plugin (`pytest_plugin`) is registered with pytest through the `pytest11` entry point, so
installing lnc-client is enough to get its fixtures (`lance_server`, `lance_client`, ...); see
docs/testing.md. `FaultProxy` (`fault_proxy`) is a TCP proxy that injects network faults
(latency, bandwidth, cuts, half-close, split and coalesced segments, bit flips, a peer that
stops reading); see docs/reliability.md. This package sits above the client and the embedded
server and may use both.
"""

from lnc_client.testing.fault_proxy import Direction, FaultProxy, LinkFaults, ProxyStats

__all__ = ["Direction", "FaultProxy", "LinkFaults", "ProxyStats"]
