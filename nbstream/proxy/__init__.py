"""A fault proxy for WebSocket connections, in the kernel: see :func:`nbstream.proxy`.

Modules, one idea each: ``units`` (what flows), ``stage`` (a fault on one direction),
``tcp`` and ``messages`` (the TCP-level and WebSocket-level faults), ``faults`` (the
vocabulary and its checks), ``frames`` (reading frames with websockets' parser),
``pipe`` (the sans-I/O core), ``shell`` (sockets and timers), ``api`` (FaultProxy).
"""

from nbstream.proxy.api import FaultHandle, FaultProxy, aproxy, proxy
from nbstream.proxy.faults import KINDS

__all__ = ["KINDS", "FaultHandle", "FaultProxy", "aproxy", "proxy"]
