"""Active testing: a SIP user agent (sans-I/O transactions on asyncio) that places calls and echoes media."""

from .caller import (AgentError, CallOptions, CallResult, Summary, Thresholds, options_ping, place_call,  # noqa: F401
                     place_calls, register)
from .echo import EchoServer  # noqa: F401
from .media import MediaFigures  # noqa: F401
from .transport import TlsOptions  # noqa: F401
