"""Live views of nbstream in a notebook: FlowView, ServerView, LoadTestView, ProxyView.

Each view consumes an event stream (or a load test's progress), folds what it
sees into its own bounded state and refreshes the browser at most about ten times
a second. Display one as a cell's last expression; call ``close()`` when done.
"""

from nbstream.views.flow import FlowView
from nbstream.views.loadtest import LoadTestView
from nbstream.views.proxy import ProxyView
from nbstream.views.server import ServerView

__all__ = ["FlowView", "LoadTestView", "ProxyView", "ServerView"]
