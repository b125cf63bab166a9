"""Active testing: sans-I/O SIP call sessions and RTP sessions (session.py, rtpsession.py) on the
transaction layer (endpoint.py), with thin asyncio drivers that place calls and echo media."""

from .caller import (AgentError, CallOptions, CallResult, Summary, Thresholds, options_ping, place_call,  # noqa: F401
                     place_calls, register)
from .echo import EchoServer  # noqa: F401
from .transport import TlsOptions  # noqa: F401
