"""asyncio SIP transports (RFC 3261 18): UDP datagrams, TCP and TLS streams framed by Content-Length
with the capture side's SipFramer, and SIP over WebSocket (RFC 7118, WS and WSS; a client only) in
the capture side's WebSocket frames. Each transport hands whole messages to `on_message(data, addr,
now)`; `send(data, addr, now)` opens a stream connection on demand. `now` is the time the tap
records (a message's one clock: what the agent logs and what the Analyzer reads are one reading).
TLS verifies certificates and host names by default (RFC 5922); `insecure=True` turns that off;
`sni` overrides the server name sent; `keylog` (else the SSLKEYLOGFILE variable) names a file the
TLS session keys are appended to in the NSS key log format (Python ssl's keylog_filename), made
readable by its owner only: it decrypts the sessions."""

from __future__ import annotations

import asyncio
import base64
import errno
import ipaddress
import os
import socket
import ssl
import sys
from dataclasses import dataclass
from typing import Callable

from ..capture.websocket import FrameReader, Handshake, Message, Opcode, Ping, client_request, frame, parse_head
from ..errors import SiptoolError
from ..status import ExitStatus
from ..sip.framing import SipFramer
from .stun import Binding
from .clock import stamp

Addr = tuple[str, int]
IP_RECVERR, IPV6_RECVERR = 11, 25  # Linux <linux/in.h>, <linux/in6.h>; socket does not export them
MAX_CONNECTIONS = 512  # accepted TCP/TLS connections at once (each may buffer one framed message)
MAX_PER_HOST = 32  # of them from one host
IDLE_S = 300.0  # an accepted connection that sends nothing for this long is closed


def udp_socket(host: str, port: int = 0) -> socket.socket:
    """A bound non-blocking UDP socket that hears ICMP errors even unconnected (Linux IP_RECVERR)."""
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(fam, socket.SOCK_DGRAM)
    try:
        if hasattr(socket, "MSG_ERRQUEUE"):
            if fam == socket.AF_INET:
                sock.setsockopt(socket.IPPROTO_IP, IP_RECVERR, 1)
            else:
                sock.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVERR, 1)
        sock.bind((host, port))
    except BaseException:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


def drain_errors(sock: socket.socket) -> list[tuple[Addr, OSError]]:
    """Read the socket's error queue: (address the failed datagram was sent to, the error) each.
    The queue must be emptied, or the socket stays readable (EPOLLERR) for ever."""
    out: list[tuple[Addr, OSError]] = []
    if not hasattr(socket, "MSG_ERRQUEUE"):
        return out
    for _ in range(64):
        try:
            _data, anc, _flags, addr = sock.recvmsg(1, 512, socket.MSG_ERRQUEUE)
        except (BlockingIOError, InterruptedError):
            break
        except OSError:
            break
        for _level, _type, ext in anc:
            if len(ext) >= 4 and addr:  # struct sock_extended_err: ee_errno first
                code = int.from_bytes(ext[:4], sys.byteorder)
                out.append((tuple(addr[:2]), OSError(code, os.strerror(code))))
    return out


def sendable(addr, local: Addr | None = None) -> bool:
    """An address a datagram may go to: an IP literal (of the local socket's family, when given) and a
    port 1-65535. Anything else would make asyncio close the socket (OverflowError is fatal to it)."""
    try:
        host, port = addr
    except (TypeError, ValueError):
        return False
    if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536 or not isinstance(host, str):
        return False
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    if local is not None and ip.version != (6 if ":" in local[0] else 4):
        return False
    return not (ip.is_multicast or ip.is_unspecified or (ip.version == 4 and host == "255.255.255.255"))


class TransportError(SiptoolError):
    exit_code = ExitStatus.FAILED


@dataclass
class TlsOptions:
    insecure: bool = False
    ca_file: str | None = None
    sni: str | None = None
    cert_file: str | None = None  # client certificate (or server certificate for listeners)
    key_file: str | None = None
    keylog: str | None = None  # NSS key log file (None: $SSLKEYLOGFILE, if set)

    @property
    def keylog_path(self) -> str | None:
        return self.keylog or os.environ.get("SSLKEYLOGFILE") or None

    def _keylog(self, ctx: ssl.SSLContext) -> None:
        path = self.keylog_path
        if path:
            private_file(path)
            ctx.keylog_filename = path

    def client_context(self) -> ssl.SSLContext:
        private_file(self.keylog_path)  # before ssl opens $SSLKEYLOGFILE by itself, with the umask's mode
        ctx = ssl.create_default_context(cafile=self.ca_file)
        self._keylog(ctx)
        if self.insecure:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        if self.cert_file:
            ctx.load_cert_chain(self.cert_file, self.key_file)
        return ctx

    def server_context(self) -> ssl.SSLContext:
        if not self.cert_file:
            raise SiptoolError("TLS listening needs a certificate (--cert FILE --key FILE)")
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.cert_file, self.key_file)
        self._keylog(ctx)
        return ctx


def private_file(path: str | None) -> None:
    """Create `path` (or keep it, appending) readable and writable by its owner only (mode 0600): a
    TLS key log decrypts every session it holds. OSError when it cannot be made so."""
    if not path:
        return
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)


class Transport:
    kind = "udp"
    reliable = False

    def __init__(self, on_message: Callable[[bytes, Addr, float], None], tap: Callable | None = None) -> None:
        self.on_message = on_message
        self.tap = tap  # tap(direction, local, remote, data, kind, now): the Analyzer, and --pcap
        self.local: Addr = ("0.0.0.0", 0)
        self.on_unreachable: Callable[[Addr, OSError], None] | None = None  # ICMP error, TCP RST

    async def send(self, data: bytes, addr: Addr, now: float | None = None) -> None:  # pragma: no cover
        raise NotImplementedError

    async def close(self) -> None:  # pragma: no cover - overridden
        pass


class UdpTransport(Transport, asyncio.DatagramProtocol):
    """One UDP socket for sending and receiving (so rport/symmetric signalling works, RFC 3581)."""

    def __init__(self, on_message, tap=None) -> None:
        Transport.__init__(self, on_message, tap)
        self.sock: asyncio.DatagramTransport | None = None
        self.raw: socket.socket | None = None
        self.stun = Binding()
        self._sending: Addr | None = None

    async def open(self, host: str, port: int = 0) -> "UdpTransport":
        loop = asyncio.get_running_loop()
        try:
            self.raw = udp_socket(host, port)
            self.sock, _ = await loop.create_datagram_endpoint(lambda: self, sock=self.raw)
        except OSError as exc:
            raise TransportError(f"cannot bind UDP {host}:{port}: {exc.strerror or exc}") from None
        self.local = self.sock.get_extra_info("sockname")[:2]
        return self

    def datagram_received(self, data: bytes, addr) -> None:
        addr = addr[:2]
        if self.stun.feed(data):
            return
        now = stamp()
        if self.tap:
            self.tap("in", self.local, addr, data, "udp", now)
        if data.strip(b"\r\n\x00"):  # ignore CRLF keep-alives
            self.on_message(data, addr, now)

    def error_received(self, exc) -> None:
        """ICMP errors (port or host unreachable) for datagrams we sent, each with the address it was
        sent to, read from the socket's error queue (IP_RECVERR); an error of sendto() itself belongs
        to the address being sent to. RFC 3261 18.4: the transaction user hears of it at once."""
        found = drain_errors(self.raw) if self.raw is not None else []
        if not found and self._sending is not None:
            found = [(self._sending, exc)]
        for addr, err in found:
            if self.on_unreachable is not None:
                self.on_unreachable(addr, err)

    async def send(self, data: bytes, addr: Addr, now: float | None = None) -> None:
        self.send_now(data, addr, now)

    def send_now(self, data: bytes, addr: Addr, now: float | None = None) -> None:
        """A datagram goes at once (UDP never waits)."""
        if self.sock is None or self.sock.is_closing():
            return
        if not sendable(addr, self.local):
            raise TransportError(f"not sent: {addr[0]!s:.60}:{addr[1]!s:.8} is not an address to send to")
        if self.tap:
            self.tap("out", self.local, addr, data, "udp", stamp() if now is None else now)
        self._sending = addr
        try:
            self.sock.sendto(data, addr)
        finally:
            self._sending = None

    async def stun_query(self, server: Addr, rto: float = 0.5, tries: int = 4) -> Addr:
        """Our SIP socket's address as the STUN server sees it (RFC 5389)."""
        return await self.stun.query(lambda msg, to: self.sock.sendto(msg, to), server, rto, tries)

    async def close(self) -> None:
        if self.sock is not None:
            self.sock.close()


class StreamTransport(Transport):
    """TCP or TLS: a listener (optional) and connections keyed by the peer address."""

    reliable = True

    def __init__(self, on_message, tls: TlsOptions | None = None, tap=None) -> None:
        super().__init__(on_message, tap)
        self.kind = "tls" if tls is not None else "tcp"
        self.tls = tls
        self.server: asyncio.AbstractServer | None = None
        self.conns: dict[Addr, asyncio.StreamWriter] = {}
        self.locals: dict[Addr, Addr] = {}
        self.tasks: set[asyncio.Task] = set()
        self._connecting: dict[Addr, asyncio.Future] = {}

    async def open(self, host: str, port: int = 0) -> "StreamTransport":
        ctx = self.tls.server_context() if (self.tls and self.tls.cert_file) else None
        if self.tls is not None and ctx is None:  # TLS client without certificate: no listener
            self.local = (host, 0)
            return self
        try:
            self.server = await asyncio.start_server(self._accepted, host, port, ssl=ctx,
                                                     family=socket.AF_INET6 if ":" in host else socket.AF_INET)
        except OSError as exc:
            raise TransportError(f"cannot listen on {self.kind.upper()} {host}:{port}: {exc.strerror or exc}") from None
        self.local = self.server.sockets[0].getsockname()[:2]
        return self

    async def _accepted(self, reader, writer) -> None:
        peer = writer.get_extra_info("peername")[:2]
        from_host = sum(1 for p in self.conns if p[0] == peer[0])
        if len(self.conns) >= MAX_CONNECTIONS or from_host >= MAX_PER_HOST:
            writer.close()  # full: refused at once, so one host cannot hold every connection
            return
        self.conns[peer] = writer
        self.locals[peer] = writer.get_extra_info("sockname")[:2]
        try:
            await self._read(reader, peer, IDLE_S)
        except asyncio.CancelledError:  # shutdown: the server's own task, nothing to report
            pass

    def _messages(self, peer: Addr):
        """A connection's reader: bytes in order -> whole SIP messages (Content-Length, RFC 3261 18.3)."""
        framer = SipFramer()
        return lambda data: [msg for msg, _ in framer.feed(data)]

    def _wire(self, data: bytes) -> bytes:
        """A SIP message as it goes on the connection."""
        return data

    async def _opened(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, addr: Addr) -> None:
        """What a new outgoing connection does before SIP (WebSocket: its opening handshake)."""

    async def _read(self, reader: asyncio.StreamReader, peer: Addr, idle: float | None = None) -> None:
        messages = self._messages(peer)
        try:
            while True:
                data = await asyncio.wait_for(reader.read(65536), idle)
                if not data:
                    break
                now = stamp()
                if self.tap:
                    self.tap("in", self.locals.get(peer, self.local), peer, data, self.kind, now)
                for msg in messages(data):
                    self.on_message(msg, peer, now)
        except (ConnectionError, ssl.SSLError, asyncio.IncompleteReadError, asyncio.TimeoutError, OSError):
            pass
        finally:
            w = self.conns.pop(peer, None)
            if w is not None:
                w.close()

    async def _connect(self, addr: Addr) -> asyncio.StreamWriter:
        if addr in self.conns:
            return self.conns[addr]
        pending = self._connecting.get(addr)
        if pending is not None:
            return await asyncio.shield(pending)
        fut = asyncio.get_running_loop().create_future()
        self._connecting[addr] = fut
        try:
            ctx = server_hostname = None
            if self.tls is not None:
                ctx = self.tls.client_context()
                server_hostname = self.tls.sni or addr[0]
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(addr[0], addr[1], ssl=ctx, server_hostname=server_hostname), 10)
            except ssl.SSLCertVerificationError as exc:
                raise TransportError(f"TLS certificate of {addr[0]}:{addr[1]} rejected: {exc.verify_message} "
                                     "(use --insecure to skip verification, or --ca-file)") from None
            except ssl.SSLError as exc:
                raise TransportError(f"TLS handshake with {addr[0]}:{addr[1]} failed: {exc.reason or exc}") from None
            except ConnectionRefusedError:  # a TCP RST: fail at once (RFC 3261 18.4)
                raise TransportError(unreachable_text(addr, errno.ECONNREFUSED, self.kind)) from None
            except (OSError, asyncio.TimeoutError) as exc:
                why = getattr(exc, "strerror", None) or type(exc).__name__
                raise TransportError(f"cannot connect {self.kind.upper()} to {addr[0]}:{addr[1]}: {why}") from None
            self.locals[addr] = writer.get_extra_info("sockname")[:2]
            await self._opened(reader, writer, addr)
            self.conns[addr] = writer
            if self.local[1] == 0:
                self.local = self.locals[addr]
            task = asyncio.create_task(self._read(reader, addr))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
            fut.set_result(writer)
            return writer
        except BaseException as exc:
            fut.set_exception(exc)
            fut.exception()  # mark retrieved
            raise
        finally:
            self._connecting.pop(addr, None)

    async def send(self, data: bytes, addr: Addr, now: float | None = None) -> None:
        writer = await self._connect(addr)
        if not data:
            return
        data = self._wire(data)
        if self.tap:
            self.tap("out", self.locals.get(addr, self.local), addr, data, self.kind, stamp() if now is None else now)
        if writer.transport.get_write_buffer_size() > 1 << 20:  # the peer reads nothing we send
            writer.close()
            raise TransportError(f"{self.kind.upper()} connection to {addr[0]}:{addr[1]} closed: "
                                 "the peer stopped reading")
        writer.write(data)

    async def close(self) -> None:
        for w in list(self.conns.values()):
            w.close()
        self.conns.clear()
        if self.server is not None:
            self.server.close()
        for t in list(self.tasks):
            t.cancel()
        await asyncio.sleep(0)  # let the readers see EOF/cancellation before the loop goes


def unreachable_text(addr: Addr, code: int | None, kind: str = "udp") -> str:
    """One line for a transport error that came back from the network (ICMP, TCP RST)."""
    where = f"{addr[0]}:{addr[1]}"
    if code == errno.ECONNREFUSED:
        how = "TCP connection refused" if kind != "udp" else "ICMP port unreachable"
        return f"nothing listens on {where} ({how})"
    if code in (errno.EHOSTUNREACH, errno.ENETUNREACH):
        return f"{addr[0]} is unreachable ({os.strerror(code)}, ICMP): no route to that host"
    return f"cannot reach {where}: {os.strerror(code) if code else 'transport error'}"


class WebSocketTransport(StreamTransport):
    """SIP over WebSocket (RFC 7118), WS or WSS (`tls`), as a client (call, check). Each new
    connection opens with the handshake (RFC 6455 4.1) offering the sip subprotocol, which the
    server must answer 101 selecting sip with the right accept key (RFC 7118 4.1; the capture side's
    Handshake checks it); then each SIP message is one masked text frame (5.3), frames received are
    read by the capture side's FrameReader, and pings are answered (5.5.2). The tap sees the bytes
    on the connection (handshake and frames), so the Analyzer reads it as WebSocket."""

    path = "/"

    def __init__(self, on_message, tls: TlsOptions | None = None, tap=None) -> None:
        super().__init__(on_message, tls, tap)
        self.kind = "wss" if tls is not None else "ws"

    async def open(self, host: str, port: int = 0) -> "WebSocketTransport":
        self.local = (host, 0)  # a client: it listens nowhere (requests come back on its connection)
        return self

    async def _opened(self, reader, writer, addr: Addr) -> None:
        key = base64.b64encode(os.urandom(16)).decode()
        request = client_request(f"{addr[0]}:{addr[1]}", self.path, key)
        here = self.locals[addr]
        if self.tap:
            self.tap("out", here, addr, request, self.kind, stamp())
        writer.write(request)
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, asyncio.TimeoutError, OSError):
            writer.close()
            raise TransportError(f"{self.kind.upper()} {addr[0]}:{addr[1]}: no answer to the WebSocket "
                                 "Upgrade (RFC 6455 4.1)") from None
        if self.tap:
            self.tap("in", here, addr, head, self.kind, stamp())
        shake = Handshake(parse_head(client_request("", self.path, key)), 0, parse_head(head))
        if shake.response is None or shake.problems():
            writer.close()
            why = "; ".join(shake.problems()) if shake.response is not None else "not an HTTP response"
            raise TransportError(f"{self.kind.upper()} {addr[0]}:{addr[1]}: WebSocket Upgrade failed: {why}")

    def _wire(self, data: bytes) -> bytes:
        return frame(Opcode.TEXT, data, os.urandom(4))

    def _messages(self, peer: Addr):
        reader = FrameReader(from_client=False, pings=True)

        def messages(data: bytes) -> list[bytes]:
            out = []
            for ev in reader.feed(data):
                if isinstance(ev, Message) and ev.data.strip(b"\r\n"):  # (CRLF keep-alives, RFC 7118 6)
                    out.append(ev.data)
                elif isinstance(ev, Ping):
                    self._pong(peer, ev.data)
            return out
        return messages

    def _pong(self, peer: Addr, data: bytes) -> None:
        writer = self.conns.get(peer)
        if writer is not None and not writer.is_closing():
            pong = frame(Opcode.PONG, data, os.urandom(4))
            if self.tap:
                self.tap("out", self.locals.get(peer, self.local), peer, pong, self.kind, stamp())
            writer.write(pong)


async def open_transport(kind: str, host: str, port: int, on_message, tls: TlsOptions | None = None,
                         tap=None) -> Transport:
    kind = kind.lower()
    if kind == "udp":
        return await UdpTransport(on_message, tap).open(host, port)
    if kind == "tcp":
        return await StreamTransport(on_message, None, tap).open(host, port)
    if kind == "tls":
        return await StreamTransport(on_message, tls or TlsOptions(), tap).open(host, port)
    if kind in ("ws", "wss"):
        return await WebSocketTransport(on_message, (tls or TlsOptions()) if kind == "wss" else None, tap).open(
            host, port)
    raise SiptoolError(f"unknown transport {kind!r}: use udp, tcp, tls, ws or wss")
