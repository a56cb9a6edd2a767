"""Counts the MongoDB driver's pooled connections, for ``/metrics``.

A connection the driver opens and never closes (or one opened per call and kept) is a leak a soak must
see; pymongo reports every pool event to a listener, so the count is exact and costs one addition per event.
"""

from __future__ import annotations

from pymongo import monitoring


class PoolStats(monitoring.ConnectionPoolListener):
    """Open and checked-out connections across the client's pools (one pool per server)."""

    def __init__(self) -> None:
        self.open = 0
        self.in_use = 0

    def connection_created(self, event: monitoring.ConnectionCreatedEvent) -> None:
        self.open += 1

    def connection_closed(self, event: monitoring.ConnectionClosedEvent) -> None:
        self.open -= 1

    def connection_checked_out(self, event: monitoring.ConnectionCheckedOutEvent) -> None:
        self.in_use += 1

    def connection_checked_in(self, event: monitoring.ConnectionCheckedInEvent) -> None:
        self.in_use -= 1

    def connection_ready(self, event: monitoring.ConnectionReadyEvent) -> None:
        pass

    def connection_check_out_started(self, event: monitoring.ConnectionCheckOutStartedEvent) -> None:
        pass

    def connection_check_out_failed(self, event: monitoring.ConnectionCheckOutFailedEvent) -> None:
        pass

    def pool_created(self, event: monitoring.PoolCreatedEvent) -> None:
        pass

    def pool_ready(self, event: monitoring.PoolReadyEvent) -> None:
        pass

    def pool_cleared(self, event: monitoring.PoolClearedEvent) -> None:
        pass

    def pool_closed(self, event: monitoring.PoolClosedEvent) -> None:
        pass
