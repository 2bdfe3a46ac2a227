"""Consumer groups: a coordinator shares a group's topics out among worker processes.

Compatible with Lance's Rust `lnc-client` (`GroupCoordinator`, `GroupedConsumer`): the same
text protocol on the coordinator's own TCP port (`wire`), the same strategies (`assignment`), so
Python workers can join a Rust coordinator and Rust workers a Python one. See docs/groups.md.

Layers: `wire` (sans-I/O codec) and `state` (sans-I/O membership and generations) at the bottom;
`transport` (one request/reply), `coordinator` (the TCP service) and `worker` (the consuming
side, on `StandaloneConsumer`) above them.
"""

from lnc_client.groups.assignment import AssignmentStrategy, assign
from lnc_client.groups.coordinator import DEFAULT_COORDINATOR_PORT, GroupConfig, GroupCoordinator
from lnc_client.groups.worker import GroupBatch, GroupedConsumer, WorkerConfig

__all__ = [
    "DEFAULT_COORDINATOR_PORT",
    "AssignmentStrategy",
    "GroupBatch",
    "GroupConfig",
    "GroupCoordinator",
    "GroupedConsumer",
    "WorkerConfig",
    "assign",
]
