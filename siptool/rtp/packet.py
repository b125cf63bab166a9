"""RTP and RTCP wire formats (RFC 3550), RFC 4733 telephone events. Bytes in, values out; never raises
on malformed input (parse functions return None or skip the broken part)."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

_HDR = struct.Struct("!BBHII")
_RTCP_HDR = struct.Struct("!BBH")
_SR = struct.Struct("!IIIIII")  # ssrc, ntp msw, ntp lsw, rtp ts, packet count, octet count
_BLOCK = struct.Struct("!IIIIII")  # ssrc, fraction|cumulative, ext highest seq, jitter, lsr, dlsr
_EVENT = struct.Struct("!BBH")
_VOIP = struct.Struct("!IBBBBHHHHbbBBBBBBBBHHH")  # RFC 3611 4.7 VoIP Metrics block, after its header
XR_VOIP_METRICS = 7

RTCP_SR, RTCP_RR, RTCP_SDES, RTCP_BYE, RTCP_APP = 200, 201, 202, 203, 204
RTCP_RTPFB, RTCP_PSFB, RTCP_XR = 205, 206, 207  # RFC 4585, RFC 3611
SDES_CNAME = 1


# --- RTP (RFC 3550 5.1) -----------------------------------------------------------------------

@dataclass(slots=True)
class RtpHeader:
    """Fixed header plus CSRC list and extension (RFC 3550 5.1, 5.3.1)."""

    payload_type: int
    sequence: int
    timestamp: int
    ssrc: int
    marker: bool = False
    padding: bool = False
    extension: bool = False
    csrcs: tuple[int, ...] = ()
    extension_profile: int | None = None
    extension_data: bytes = b""
    version: int = 2
    payload_offset: int = 12
    payload_length: int = 0
    padding_length: int = 0


def parse_rtp(data: bytes) -> RtpHeader | None:
    """Parse an RTP header; None if it is not version 2 or is shorter than its own header says."""
    n = len(data)
    if n < 12:
        return None
    b0, b1, seq, ts, ssrc = _HDR.unpack_from(data)
    if b0 >> 6 != 2:
        return None
    cc = b0 & 0x0F
    off = 12 + 4 * cc
    if off > n:
        return None
    csrcs = struct.unpack_from(f"!{cc}I", data, 12) if cc else ()
    profile, ext = None, b""
    if b0 & 0x10:
        if off + 4 > n:
            return None
        profile, words = struct.unpack_from("!HH", data, off)
        end = off + 4 + 4 * words
        if end > n:
            return None
        ext = bytes(data[off + 4:end])
        off = end
    pad = 0
    if b0 & 0x20:
        pad = data[-1]
        if pad == 0 or off + pad > n:  # RFC 3550 5.1: count includes itself, so 0 is invalid
            return None
    return RtpHeader(payload_type=b1 & 0x7F, sequence=seq, timestamp=ts, ssrc=ssrc, marker=bool(b1 & 0x80),
                     padding=bool(b0 & 0x20), extension=bool(b0 & 0x10), csrcs=tuple(csrcs),
                     extension_profile=profile, extension_data=ext, payload_offset=off,
                     payload_length=n - off - pad, padding_length=pad)


def rtp_payload(data: bytes) -> bytes:
    """The payload of an RTP packet (header, CSRCs, extension and padding removed); b'' if malformed."""
    h = parse_rtp(data)
    return bytes(data[h.payload_offset:h.payload_offset + h.payload_length]) if h else b""


def build_rtp(payload_type: int, sequence: int, timestamp: int, ssrc: int, payload: bytes = b"",
              marker: bool = False, csrcs: tuple[int, ...] = (), extension: tuple[int, bytes] | None = None,
              padding: int = 0) -> bytes:
    """Serialise an RTP packet (RFC 3550 5.1). `extension` is (profile, data padded to 32 bits);
    `padding` adds that many padding octets (last one holds the count)."""
    b0 = 0x80 | (len(csrcs) & 0x0F)
    if padding:
        b0 |= 0x20
    if extension is not None:
        b0 |= 0x10
    b1 = (0x80 if marker else 0) | (payload_type & 0x7F)
    out = [_HDR.pack(b0, b1, sequence & 0xFFFF, timestamp & 0xFFFFFFFF, ssrc & 0xFFFFFFFF)]
    if csrcs:
        out.append(struct.pack(f"!{len(csrcs)}I", *csrcs))
    if extension is not None:
        profile, ext = extension
        ext = ext + b"\0" * (-len(ext) % 4)
        out.append(struct.pack("!HH", profile, len(ext) // 4) + ext)
    out.append(payload)
    if padding:
        out.append(b"\0" * (padding - 1) + bytes([padding]))
    return b"".join(out)


def is_rtcp(data: bytes) -> bool:
    """RTCP if version 2 and the first packet type is 200-207 (SR..XR); RFC 5761 4 for muxed ports."""
    return len(data) >= 8 and data[0] >> 6 == 2 and 200 <= data[1] <= 207


def looks_like_rtp(data: bytes) -> bool:
    """Cheap test (slicing only): version 2, a header that fits, and not RTCP. A marker bit with
    payload type 64-95 would read as RTCP type 192-223, so it is rejected as Wireshark does (RFC 5761 4)."""
    if len(data) < 12 or data[0] >> 6 != 2:
        return False
    if 192 <= data[1] <= 223:
        return False
    return 12 + 4 * (data[0] & 0x0F) <= len(data)


# --- RTCP (RFC 3550 6.4-6.6, RFC 3611) --------------------------------------------------------

@dataclass(slots=True)
class ReportBlock:
    """One reception report block (RFC 3550 6.4.1)."""

    ssrc: int
    fraction_lost: int  # in 1/256
    cumulative_lost: int  # signed 24 bit
    highest_seq: int  # extended highest sequence number received
    jitter: int  # interarrival jitter in timestamp units
    lsr: int  # middle 32 bits of the NTP timestamp of the last SR
    dlsr: int  # delay since last SR, 1/65536 s

    @property
    def fraction_lost_pct(self) -> float:
        return self.fraction_lost * 100.0 / 256.0


@dataclass(slots=True)
class VoipMetrics:
    """RFC 3611 4.7 VoIP Metrics Report Block: the receiver's own view of a stream (None: unavailable)."""

    ssrc: int
    loss_pct: float  # fraction of packets lost in the network
    discard_pct: float  # fraction discarded by the jitter buffer (late or early)
    round_trip_ms: int | None
    end_system_delay_ms: int | None
    r_factor: int | None
    mos_lq: float | None  # listening quality
    mos_cq: float | None  # conversational quality
    jb_nominal_ms: int
    jb_max_ms: int


def _voip_metrics(body: bytes, off: int) -> VoipMetrics | None:
    if off + _VOIP.size > len(body):
        return None
    (ssrc, loss, discard, _bd, _gd, _bdur, _gdur, rtt, esd, _sig, _noise, _rerl, _gmin, r, _ext_r, lq, cq,
     _rx, _res, jb_nom, jb_max, _jb_abs) = _VOIP.unpack_from(body, off)

    def mos(v: int) -> float | None:
        return v / 10 if 10 <= v <= 50 else None  # 127: unavailable

    return VoipMetrics(ssrc, loss * 100 / 256, discard * 100 / 256, rtt or None, esd or None,
                       r if r != 127 else None, mos(lq), mos(cq), jb_nom, jb_max)


@dataclass(slots=True)
class RtcpPacket:
    """One packet of a compound RTCP datagram; fields filled according to `packet_type`."""

    packet_type: int
    count: int
    ssrc: int = 0
    ntp_timestamp: int = 0  # SR: 64-bit NTP
    rtp_timestamp: int = 0
    sender_packets: int = 0
    sender_octets: int = 0
    reports: list[ReportBlock] = field(default_factory=list)
    cname: str | None = None  # SDES CNAME of the first chunk
    sdes: dict[int, dict[int, str]] = field(default_factory=dict)  # ssrc -> item type -> text
    bye_ssrcs: list[int] = field(default_factory=list)
    reason: str = ""
    app_name: str = ""
    xr_block_types: list[int] = field(default_factory=list)  # RFC 3611 BT values (7 = VoIP metrics)
    voip_metrics: list[VoipMetrics] = field(default_factory=list)  # XR BT 7 blocks
    data: bytes = b""  # body after the common header (APP data, feedback, unknown types)

    @property
    def name(self) -> str:
        return {200: "SR", 201: "RR", 202: "SDES", 203: "BYE", 204: "APP", 205: "RTPFB", 206: "PSFB",
                207: "XR"}.get(self.packet_type, str(self.packet_type))

    @property
    def ntp_middle(self) -> int:
        """Middle 32 bits of the SR NTP timestamp: what a later report block echoes as LSR."""
        return (self.ntp_timestamp >> 16) & 0xFFFFFFFF


def parse_rtcp(data: bytes, types: frozenset | None = None) -> list[RtcpPacket]:
    """Split a compound RTCP datagram (RFC 3550 6.1) and parse each packet (only those of `types`
    when given). Stops at the first packet whose length runs past the datagram; returns what was
    parsed before it (empty if not RTCP)."""
    out: list[RtcpPacket] = []
    off, n = 0, len(data)
    while off + 4 <= n:
        b0, pt, words = _RTCP_HDR.unpack_from(data, off)
        if b0 >> 6 != 2:
            break
        end = off + 4 * (words + 1)
        if end > n:
            break
        if types is not None and pt not in types:
            off = end
            continue
        body = bytes(data[off + 4:end])
        if b0 & 0x20 and body:  # padding (only allowed on the last packet)
            body = body[:max(0, len(body) - body[-1])]
        out.append(_rtcp_one(pt, b0 & 0x1F, body))
        off = end
    return out


def _blocks(body: bytes, off: int, count: int) -> list[ReportBlock]:
    blocks = []
    for _ in range(count):
        if off + 24 > len(body):
            break
        ssrc, lost, hseq, jit, lsr, dlsr = _BLOCK.unpack_from(body, off)
        cum = lost & 0xFFFFFF
        if cum & 0x800000:
            cum -= 0x1000000
        blocks.append(ReportBlock(ssrc, lost >> 24, cum, hseq, jit, lsr, dlsr))
        off += 24
    return blocks


def _rtcp_one(pt: int, count: int, body: bytes) -> RtcpPacket:
    p = RtcpPacket(packet_type=pt, count=count)
    if len(body) >= 4:
        p.ssrc = struct.unpack_from("!I", body)[0]
    if pt == RTCP_SR and len(body) >= 24:
        ssrc, msw, lsw, ts, pc, oc = _SR.unpack_from(body)
        p.ntp_timestamp, p.rtp_timestamp, p.sender_packets, p.sender_octets = (msw << 32) | lsw, ts, pc, oc
        p.reports = _blocks(body, 24, count)
    elif pt == RTCP_RR:
        p.reports = _blocks(body, 4, count)
    elif pt == RTCP_SDES:
        p.sdes = _sdes(body, count)
        if p.sdes:
            first = next(iter(p.sdes))
            p.ssrc = first
            p.cname = p.sdes[first].get(SDES_CNAME)
    elif pt == RTCP_BYE:
        k = min(count, len(body) // 4)
        p.bye_ssrcs = list(struct.unpack_from(f"!{k}I", body)) if k else []
        rest = body[4 * k:]
        if rest:
            p.reason = rest[1:1 + rest[0]].decode("utf-8", "replace")
    elif pt == RTCP_APP:
        p.app_name = body[4:8].decode("ascii", "replace")
        p.data = body[8:]
    elif pt == RTCP_XR:
        off = 4
        while off + 4 <= len(body):  # RFC 3611 3: BT, type-specific, block length (32-bit words)
            bt, _, blen = struct.unpack_from("!BBH", body, off)
            p.xr_block_types.append(bt)
            if bt == XR_VOIP_METRICS and blen == 8:
                vm = _voip_metrics(body, off + 4)
                if vm is not None:
                    p.voip_metrics.append(vm)
            off += 4 + 4 * blen
        p.data = body[4:]
    else:
        p.data = body[4:]
    return p


def _sdes(body: bytes, count: int) -> dict[int, dict[int, str]]:
    """SDES chunks (RFC 3550 6.5): SSRC then items, ended by a null octet and padded to 32 bits."""
    chunks: dict[int, dict[int, str]] = {}
    off, n = 0, len(body)
    for _ in range(count):
        if off + 4 > n:
            break
        ssrc = struct.unpack_from("!I", body, off)[0]
        off += 4
        items: dict[int, str] = {}
        while off < n and body[off] != 0:
            if off + 2 > n:
                break
            typ, ln = body[off], body[off + 1]
            items[typ] = body[off + 2:off + 2 + ln].decode("utf-8", "replace")
            off += 2 + ln
        off += 1
        off += -off % 4
        chunks[ssrc] = items
    return chunks


def build_sr(ssrc: int, ntp_timestamp: int, rtp_timestamp: int, packets: int, octets: int,
             reports: list[ReportBlock] = ()) -> bytes:
    """Serialise a sender report (RFC 3550 6.4.1)."""
    body = _SR.pack(ssrc, ntp_timestamp >> 32 & 0xFFFFFFFF, ntp_timestamp & 0xFFFFFFFF, rtp_timestamp & 0xFFFFFFFF,
                    packets & 0xFFFFFFFF, octets & 0xFFFFFFFF) + b"".join(_pack_block(b) for b in reports)
    return _RTCP_HDR.pack(0x80 | len(reports), RTCP_SR, len(body) // 4) + body


def build_rr(ssrc: int, reports: list[ReportBlock] = ()) -> bytes:
    """Serialise a receiver report (RFC 3550 6.4.2)."""
    body = struct.pack("!I", ssrc) + b"".join(_pack_block(b) for b in reports)
    return _RTCP_HDR.pack(0x80 | len(reports), RTCP_RR, len(body) // 4) + body


def build_bye(ssrc: int) -> bytes:
    """Serialise a BYE for one source (RFC 3550 6.6): the last packet of a compound one on leaving."""
    return _RTCP_HDR.pack(0x81, RTCP_BYE, 1) + struct.pack("!I", ssrc)


def build_sdes(ssrc: int, cname: str) -> bytes:
    """Serialise an SDES packet with one CNAME chunk (RFC 3550 6.5.1), as a compound packet needs."""
    raw = cname.encode()[:255]
    chunk = struct.pack("!I", ssrc) + bytes([SDES_CNAME, len(raw)]) + raw + b"\0"
    chunk += b"\0" * (-len(chunk) % 4)
    return _RTCP_HDR.pack(0x81, RTCP_SDES, len(chunk) // 4) + chunk


def _pack_block(b: ReportBlock) -> bytes:
    lost = ((b.fraction_lost & 0xFF) << 24) | (b.cumulative_lost & 0xFFFFFF)
    return _BLOCK.pack(b.ssrc, lost, b.highest_seq & 0xFFFFFFFF, b.jitter & 0xFFFFFFFF, b.lsr & 0xFFFFFFFF,
                       b.dlsr & 0xFFFFFFFF)


def ntp_middle(seconds: float) -> int:
    """Middle 32 bits of an NTP timestamp (16.16 fixed point seconds), the unit of LSR."""
    return int(round(seconds * 65536)) & 0xFFFFFFFF


def round_trip_ms(arrival_ntp_middle: int, lsr: int, dlsr: int) -> float | None:
    """RTCP round-trip time (RFC 3550 6.4.1): A - LSR - DLSR, all in 1/65536 s, when a report block
    reaches the sender of the SR it refers to at time A. None when LSR is 0 (no SR received yet)."""
    if lsr == 0:
        return None
    rtt = (arrival_ntp_middle - lsr - dlsr) & 0xFFFFFFFF
    if rtt & 0x80000000:  # negative: clocks or fields are inconsistent
        return None
    return rtt * 1000.0 / 65536.0


# --- RFC 4733 telephone events ------------------------------------------------------------------

DTMF_EVENTS = "0123456789*#ABCD"


@dataclass(slots=True, frozen=True)
class TelephoneEvent:
    """RFC 4733 2.3 event payload: event code, end bit, volume (-dBm0), duration (timestamp units)."""

    event: int
    end: bool
    volume: int
    duration: int

    @property
    def digit(self) -> str:
        return DTMF_EVENTS[self.event] if self.event < 16 else f"E{self.event}"


def parse_telephone_event(payload: bytes) -> TelephoneEvent | None:
    """Parse the first 4-octet event of an RFC 4733 payload (the RTP payload, header removed)."""
    if len(payload) < 4:
        return None
    ev, flags, duration = _EVENT.unpack_from(payload)
    return TelephoneEvent(ev, bool(flags & 0x80), flags & 0x3F, duration)


def build_telephone_event(event: int, end: bool, volume: int = 10, duration: int = 0) -> bytes:
    return _EVENT.pack(event & 0xFF, (0x80 if end else 0) | (volume & 0x3F), duration & 0xFFFF)


def dtmf_digits(packets) -> str:
    """Digits from a sequence of telephone-event packets, in order. Each item is either a whole RTP
    packet (bytes starting with an RTP v2 header), a bare event payload (bytes), or a pair
    (rtp_timestamp, payload). RFC 4733 2.5.1: all packets of one event share the RTP timestamp and the
    final (end-bit) packet is sent three times, so one digit is counted per distinct timestamp+event.
    Bare payloads carry no timestamp: then a new digit starts after an end packet or a code change."""
    digits: list[str] = []
    seen: set[tuple[int, int]] = set()
    last_bare: tuple[int, bool] | None = None
    for item in packets:
        ts = None
        if isinstance(item, tuple):
            ts, payload = item
        else:
            payload = bytes(item)
            h = parse_rtp(payload) if len(payload) >= 12 and payload[0] >> 6 == 2 else None
            if h is not None:
                ts, payload = h.timestamp, payload[h.payload_offset:h.payload_offset + h.payload_length]
        ev = parse_telephone_event(payload)
        if ev is None:
            continue
        if ts is not None:
            key = (ts, ev.event)
            if key not in seen:
                seen.add(key)
                digits.append(ev.digit)
            continue
        if last_bare is None or last_bare[0] != ev.event or last_bare[1]:
            if not (last_bare is not None and last_bare[0] == ev.event and last_bare[1] and ev.end):
                digits.append(ev.digit)
        last_bare = (ev.event, ev.end)
    return "".join(digits)
