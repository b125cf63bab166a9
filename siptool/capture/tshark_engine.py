"""`--engine tshark`: tshark (through pyshark) decodes the capture, siptool's Analyzer does the rest.

A second, independent decoder for cross-checking siptool's own capture layer (decode.py, reassembly.py):
tshark does link layers, VLAN/SLL/tunnels, IPv4/IPv6 and IP defragmentation (RFC 791, RFC 8200 4.5);
the Packets it yields are the same type `Decoder` yields, so `Analyzer.feed()` / `finish()` (SIP, media,
findings) run unchanged and the two engines' reports can be diffed.

How Packets are built (tshark -T json, read through pyshark's JsonLayer field dicts):
- frame: frame.number; time: float(frame.time_epoch), the same float reader.py makes of the record
  (seconds + fraction x 1e-6 or 1e-9 rounds to the nearest float of the decimal at epoch magnitudes),
  so both engines compute jitter from identical times.
- addresses: the innermost ip/ipv6 layer before the innermost udp/tcp layer (IP-in-IP, GRE, ERSPAN,
  VXLAN: the tunnelled packet). UDP or TCP quoted inside an ICMP error is not traffic and is skipped.
- UDP: udp.payload of the frame that completes a datagram; tshark defragments (ip.defragment), so a
  fragmented INVITE arrives once, with every fragment's frame in `Packet.frames`. Fragments never
  completed are returned, like the native engine's, as `incomplete` frame lists.
- TCP: tcp.payload, tcp.seq_raw and tcp.flags of every segment, with tshark's own TCP reassembly
  (tcp.desegment_tcp_streams) turned OFF. Why: tshark reassembles only for its dissectors and shows
  the result per PDU (tcp.reassembled.data on the last segment, single-segment PDUs in place, a
  trailing partial PDU hidden); rebuilding a byte stream from that view loses or repeats bytes
  whenever tshark's SIP framing disagrees with ours (junk before a request, a bad Content-Length).
  Raw segments in capture order keep every byte, and siptool's TcpStream + SipFramer order them.
  So this engine cross-checks decoding and IP defragmentation, not TCP stream ordering.
- SCTP: tshark's own reassembly of DATA chunks into user messages (sctp.reassembly, on by default);
  each user message it completes in a frame (a "data" layer) is handed over as one unfragmented
  DATA chunk, so siptool's chunk reassembly (capture/sctp.py) is cross-checked by tshark's.

No display filter: every frame's time and count feed CaptureInfo (packets, duration, and the time
that closes unfinished calls); `-J` trims other frames' JSON to the frame layer, and the SIP/SDP/RTP
dissectors are off since siptool parses those itself. Speed: about 0.3 s to start tshark, then some
0.1-0.3 ms a packet (the native engine: microseconds); use it to check, not for big captures.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import threading
from collections import Counter
from typing import Iterator

from ..errors import SiptoolError
from .decode import _PROTO_NAMES, SCTP, TCP, UDP, Packet
from .sctp import DataChunk, serialise
from .reader import Capture, CaptureInfo

NEED_PYSHARK = "--engine tshark needs pyshark: pip install 'siptool[tshark]'"
NEED_TSHARK = ("--engine tshark needs the tshark program (Debian/Ubuntu: apt install tshark; "
               "elsewhere install Wireshark and put tshark on PATH)")
PREFS = {"tcp.desegment_tcp_streams": "FALSE", "ip.defragment": "TRUE", "ipv6.defragment": "TRUE"}
DISABLED = ("sip", "sdp", "rtp", "rtcp", "rtpevent")  # siptool parses these; tshark need not
JSON_LAYERS = "frame ip ipv6 udp tcp sctp data"  # -J: only these layers (with all their fields) are output
LINK_NAMES = {"eth": "ether", "sll": "linux-sll", "sll2": "linux-sll2", "null": "null", "loop": "loop",
              "raw": "rawip", "ip": "rawip", "ipv6": "rawip"}
_TRANSPORTS = ("udp", "tcp", "sctp")
_IPS = ("ip", "ipv6")
_QUOTING = ("icmp", "icmpv6")  # ICMP errors quote the IP/UDP header of the packet they answer
HELD = "IP fragment (held for reassembly)"  # the native decoder's words for skipped frames
NOT_IP = "not IP (ARP, LLDP, ...)"


def _pyshark():
    try:
        import pyshark
    except ImportError:
        raise SiptoolError(NEED_PYSHARK) from None
    if shutil.which("tshark") is None:
        raise SiptoolError(NEED_TSHARK)
    return pyshark


def _event_loop() -> None:
    """pyshark runs tshark on the thread's current asyncio loop; after asyncio.run() there is none
    (or a closed one), so give it a fresh one."""
    policy = asyncio.get_event_loop_policy()
    try:
        if not policy.get_event_loop().is_closed():
            return
    except RuntimeError:
        pass
    policy.set_event_loop(policy.new_event_loop())


def _options() -> dict:
    params = ["-J", JSON_LAYERS]
    for proto in DISABLED:
        params += ["--disable-protocol", proto]
    return dict(keep_packets=False, use_json=True, override_prefs=dict(PREFS), custom_parameters=params)


class TsharkSource:
    """Packets of a capture file (or, with `interface`, a live capture) decoded by tshark.

    Same shape as `PacketSource`: iterate for Packets; afterwards `info`, `skipped` and `incomplete`
    go to `Analyzer.finish(info, skipped, incomplete)`.
    """

    def __init__(self, path=None, interface: str | None = None, bpf: str | None = None,
                 duration: float | None = None) -> None:
        pyshark = _pyshark()
        _event_loop()
        self.skipped: Counter[str] = Counter()
        self.incomplete: list[list[int]] = []
        self._pieces: dict[int, tuple] = {}  # frame of an IP fragment not (yet) reassembled -> datagram key
        self._links: list[str] = []
        self._live = interface is not None
        opts = _options()
        if interface is None:
            with Capture(path) as cap:  # siptool's reader only checks the file and names its format
                self.info = cap.info
            self._cap = pyshark.FileCapture(str(path), **opts)
            _wait_for_exit(self._cap)
        else:
            self.info = CaptureInfo(path=f"live:{interface}", format="live")
            opts["custom_parameters"] += ["-l"]  # flush each packet: Ctrl-C loses none
            if duration:
                opts["custom_parameters"] += ["-a", f"duration:{max(1, round(duration))}"]
            del opts["keep_packets"]  # sniff_continuously() keeps none
            self._cap = pyshark.LiveCapture(interface=interface, bpf_filter=bpf, **opts)
            self._cap.eventloop.set_exception_handler(_quiet_eof)

    def __enter__(self) -> "TsharkSource":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        cap, self._cap = self._cap, None
        if cap is None:
            return
        try:
            cap.close()
        except Exception:  # tshark exited non-zero; the reason was handled while iterating
            cap._running_processes.clear()  # else pyshark's __del__ raises the same error again

    def __iter__(self) -> Iterator[Packet]:
        from pyshark.capture.capture import TSharkCrashException

        packets = self._cap.sniff_continuously() if self._live else self._cap
        stop = _StopOnSignal(self._cap) if self._live else None
        try:
            for raw in packets:
                pkt = self._packet(raw)
                if pkt is not None:
                    yield pkt
        except TSharkCrashException as exc:
            line = next((x for x in str(exc).splitlines() if x.startswith("Last error line:")), str(exc))
            reason = line.removeprefix("Last error line:").strip().removeprefix("tshark:").strip()
            if "cut short" not in reason:
                raise SiptoolError(f"{self.info.path}: tshark cannot read it: {reason}") from None
            self.info.truncated = reason
        finally:
            if stop is not None:
                stop.restore()
            self.close()
        self.info.linktypes = self._links
        groups: dict[tuple, list[int]] = {}
        for frame, key in self._pieces.items():
            groups.setdefault(key, []).append(frame)
        self.incomplete.extend(groups.values())

    def _packet(self, raw) -> Packet | None:
        """One tshark packet -> Packet (or None, with the reason counted)."""
        fields = raw.frame_info._all_fields  # the tshark JSON dict itself, without pyshark's wrappers
        frame = int(fields["frame.number"])
        time = float(fields["frame.time_epoch"])
        info = self.info
        info.packets = info.packets + 1 if self._live else frame
        if info.first_time is None:
            info.first_time = time
        info.last_time = time
        protos = fields["frame.protocols"].split(":")
        link = LINK_NAMES.get(protos[0], protos[0])
        if link not in self._links:
            self._links.append(link)
        layers: dict[str, list[dict]] = {}
        for layer in raw.layers:
            if layer.layer_name in _IPS or layer.layer_name in _TRANSPORTS or layer.layer_name == "data":
                layers[layer.layer_name] = [layer._all_fields] + [d._all_fields for d in layer.duplicate_layers]
        for name in _IPS:
            for ip in layers.get(name, ()):
                self._fragment(name, ip, frame)
        last = max((i for i, p in enumerate(protos) if p in _TRANSPORTS), default=-1)
        if last < 0 or any(p in _QUOTING for p in protos[:last]):
            self.skipped[self._why(protos, layers, frame)] += 1
            return None
        where = max((i for i, p in enumerate(protos[:last]) if p in _IPS), default=-1)
        if where < 0:
            self.skipped[NOT_IP] += 1
            return None
        ip_name, transport = protos[where], protos[last]
        ip = _nth(layers[ip_name], protos[:where + 1].count(ip_name))
        t = _nth(layers[transport], protos[:last + 1].count(transport))
        src, dst = ip[ip_name + ".src"], ip[ip_name + ".dst"]
        if transport == "udp":
            pkt = Packet(frame, time, src, int(t["udp.srcport"]), dst, int(t["udp.dstport"]), UDP,
                         _hex(t.get("udp.payload")))
        elif transport == "sctp":
            pkt = Packet(frame, time, src, int(t["sctp.srcport"]), dst, int(t["sctp.dstport"]), SCTP,
                         _sctp_messages(layers))
        else:
            pkt = Packet(frame, time, src, int(t["tcp.srcport"]), dst, int(t["tcp.dstport"]), TCP,
                         _hex(t.get("tcp.payload")), int(t["tcp.seq_raw"]), int(t["tcp.flags"], 16))
        frames = _reassembled(ip_name, ip)
        if frames:
            pkt.frames = frames
        return pkt

    def _why(self, protos: list[str], layers: dict, frame: int) -> str:
        """Why a frame gave no packet, in the native decoder's words (for `skipped`)."""
        if frame in self._pieces:
            return HELD
        where = max((i for i, p in enumerate(protos) if p in _IPS), default=-1)
        if where < 0:
            return NOT_IP
        name = protos[where]
        ip = _nth(layers[name], protos[:where + 1].count(name))
        proto = ip.get("ip.proto") if name == "ip" else ip.get("ipv6.nxt")
        if not (proto or "").isdigit():
            return "not UDP/TCP"
        return _PROTO_NAMES.get(int(proto), f"IP protocol {proto}")

    def _fragment(self, name: str, ip: dict, frame: int) -> None:
        """Track IP fragments: held until a later frame lists them as reassembled (RFC 791, RFC 8200 4.5)."""
        done = _reassembled(name, ip)
        if done:
            for f in done:
                self._pieces.pop(f, None)
            return
        if name == "ip":
            flags = ip.get("ip.flags_tree")
            more = isinstance(flags, dict) and flags.get("ip.flags.mf") == "1"
            if more or ip.get("ip.frag_offset", "0") != "0":
                self._pieces[frame] = (ip["ip.src"], ip["ip.dst"], ip.get("ip.id"))
            return
        hdr = ip.get("ipv6.fraghdr")
        if isinstance(hdr, dict) and (hdr.get("ipv6.fraghdr.more") == "1" or
                                      hdr.get("ipv6.fraghdr.offset", "0") != "0"):
            self._pieces[frame] = (ip["ipv6.src"], ip["ipv6.dst"], hdr.get("ipv6.fraghdr.ident"))


class _StopOnSignal:
    """Live: Ctrl-C / SIGTERM stop the capture, not Python: tshark then closes its output and pyshark
    hands over every packet (the JSON of the last one is complete only when tshark ends it)."""

    def __init__(self, cap) -> None:
        self.cap = cap
        self.old = {}
        if threading.current_thread() is threading.main_thread():
            self.old = {s: signal.signal(s, self.stop) for s in (signal.SIGINT, signal.SIGTERM)}

    def stop(self, signum=None, frame=None) -> None:
        # What a terminal's Ctrl-C does to the whole process group: SIGINT to pyshark's dumpcap and
        # tshark (only those two, by pid); tshark then ends its JSON and exits.
        for proc in list(getattr(self.cap, "_running_processes", ())):
            if proc.returncode is None and _comm(proc.pid) in ("dumpcap", "tshark"):
                try:
                    os.kill(proc.pid, signal.SIGINT)
                except ProcessLookupError:
                    pass

    def restore(self) -> None:
        for s, handler in self.old.items():
            signal.signal(s, handler)


def _comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as fh:
            return fh.read().strip()
    except OSError:
        return ""


def _wait_for_exit(cap) -> None:
    """When tshark's output ends, pyshark kills tshark unless it has already exited, and only then
    looks at its exit status: a race that sometimes hides an error (such as a file cut short).
    Let tshark exit by itself first, and its stderr reader take the last line."""
    cleanup = cap._cleanup_subprocess

    async def patient(process):
        if process.returncode is None and cap._eof_reached:
            try:
                await asyncio.wait_for(process.wait(), 10)
                await asyncio.sleep(0.05)
            except asyncio.TimeoutError:
                pass
        return await cleanup(process)

    cap._cleanup_subprocess = patient


def _quiet_eof(loop, context) -> None:
    """pyshark's reader task ends in EOFError when Ctrl-C stops tshark: expected, not worth a traceback."""
    if not isinstance(context.get("exception"), EOFError):
        loop.default_exception_handler(context)


def _sctp_messages(layers: dict) -> bytes:
    """The user messages tshark completed in this frame (its "data" layers, in order), each as one
    unfragmented DATA chunk carrying the TSN of the chunk that completed it (RFC 9260 3.3.1)."""
    ends = [int(chunk["sctp.data_tsn_raw"]) for layer in layers.get("sctp", ()) for chunk in layer.values()
            if isinstance(chunk, dict) and chunk.get("sctp.chunk_type") == "0"
            and chunk.get("sctp.chunk_flags_tree", {}).get("sctp.data_e_bit") == "1"]
    messages = [_hex(d.get("data.data")) for d in layers.get("data", ())]
    if len(ends) != len(messages):  # a last fragment whose message tshark could not complete
        ends = list(range(len(messages)))
    return b"".join(serialise(DataChunk(tsn, 0, 0, 0, True, True, False, data)) for tsn, data in zip(ends, messages))


def _nth(found: list[dict], n: int) -> dict:
    """The n-th (1-based) layer of that name; the last one if tshark output fewer."""
    return found[min(n, len(found)) - 1]


def _reassembled(name: str, ip: dict) -> list[int] | None:
    """Frames of the datagram tshark reassembled in this frame, else None."""
    tree = ip.get("ip.fragments_tree") if name == "ip" else ip.get("ipv6.fragments")
    if not isinstance(tree, dict):
        return None
    frames = tree.get(f"{name}.fragment")
    if frames is None:
        return None
    return [int(f) for f in ([frames] if isinstance(frames, str) else frames)]


def _hex(text: str | None) -> bytes:
    """tshark shows bytes as aa:bb:cc."""
    return bytes.fromhex(text.replace(":", "")) if text else b""
