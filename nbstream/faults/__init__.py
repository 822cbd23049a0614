"""A fault proxy for WebSocket connections, in the kernel: see :func:`nbstream.proxy`.

Modules, one idea each: ``units`` (what flows), ``stage`` (a fault on one direction),
``tcp`` and ``messages`` (the TCP-level and WebSocket-level faults), ``vocabulary``
(their names, parameters and checks), ``frames`` (reading frames with websockets' parser),
``pipe`` (the sans-I/O core), ``shell`` (sockets and timers), ``eventlog`` (its events
as a table), ``api`` (FaultProxy).
"""

from nbstream.faults.api import FaultHandle, FaultProxy, aproxy, proxy
from nbstream.faults.vocabulary import KINDS

__all__ = ["KINDS", "FaultHandle", "FaultProxy", "aproxy", "proxy"]
