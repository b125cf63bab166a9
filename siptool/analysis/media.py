"""Media side of the analyser: SDP offer/answer per call, RTP/RTCP streams, association to calls.

Streams are found the way Wireshark does by default: a UDP flow to or from an address:port that an
SDP announced is RTP (RTCP on the next port unless rtcp-mux). Flows no SDP names are kept too when
they look like RTP (version 2, steady SSRC and sequence) and are marked `from_sdp = False`.
Per packet only the 12-byte header is unpacked; the numbers are computed per stream with numpy.
"""

from __future__ import annotations

import socket
import struct
from collections import deque
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from .. import sdp as sdplib
from ..capture.batch import take
from ..report.model import Call, Report, RtcpXr, SdpEntry, Stream
from ..rtp.mos import NARROWBAND_MODEL, mos_for_stream, mos_model
from ..rtp.packet import parse_rtcp
from ..rtp.stats import RECORD_DTYPE, StreamMetrics, StreamStats, finish_many
from ..sip.dialogs import SipCall
from ..sip.message import SipMessage
from . import secure_media
from .secure_media import KeyCandidate, StreamCheck
from . import content
from .kinds import classify
from .reception import Reception

_HDR = struct.Struct("!BBHII")
_RTCP_READ = frozenset((200, 201, 207))  # SR, RR, XR: what the analysis reads (not SDES, BYE, APP)
CLOSE_AFTER_S = 10.0  # a stream of a call that got its BYE is closed after this long without packets
SR_KEEP_S = 120.0  # an SR is forgotten this long after it passed (report blocks echo recent ones)
IDLE_S = 300.0  # any stream is closed after this long without packets
SWEEP_EVERY_S = 2.0  # capture seconds between memory sweeps on the per-packet path
HEURISTIC_MIN_PACKETS = 2  # a non-SDP flow needs this many RTP-looking packets to count as a stream


@dataclass
class _Endpoint:
    call: Call
    codecs: dict[int, tuple[str, int]]  # payload type -> (name, clock rate)
    rtcp: bool = False
    frame: int = 0  # frame of the SDP that announced it
    rtp: bool = True  # False: the port carries T.38 over UDPTL (m=image ... udptl), not RTP
    fmtp: dict[int, str] = field(default_factory=dict)  # payload type -> fmtp (content analysis)
    channels: dict[int, int] = field(default_factory=dict)
    keying: str = ""  # SRTP: "sdes", "dtls-srtp", "zrtp" (analysis/secure_media.py); "" for RTP
    keys: list | None = None  # the call's SDES keys seen so far (KeyCandidate), shared by its endpoints


@dataclass
class _StreamState:
    ssrc: int
    pt: int
    stats: StreamStats
    first_frame: int
    call: Call | None
    codecs: dict[int, tuple[str, int]]
    from_sdp: bool
    events: list[bytes] = field(default_factory=list)  # RFC 4733 payloads (few per call)
    event_pt: int | None = None
    last_time: float = 0.0  # capture time of its latest packet
    event_pts: list[int] = field(default_factory=list)  # telephone-event types among codecs, as of...
    event_pts_at: int = -1  # ...this MediaTracker._codec_version
    audio: object = None  # rtp.content.StreamAudio when its content is analysed (analysis/content.py)
    srtp: StreamCheck | None = None  # an SRTP stream with keys to check it by
    keying: str = ""  # an SRTP stream's keying without keys in sight (DTLS-SRTP, ZRTP...)


class _Flow:
    """One direction of a UDP 5-tuple carrying RTP or RTCP."""

    __slots__ = ("kind", "endpoint", "streams", "last", "epoch", "stale", "last_time", "key", "srtcp")

    def __init__(self, kind: str, endpoint: _Endpoint | None, epoch: int = 0) -> None:
        self.kind = kind  # "rtp", "rtcp" or "other"
        self.endpoint = endpoint
        self.streams: dict[int, _StreamState] = {}
        self.last: _StreamState | None = None
        self.epoch = epoch  # frame of the newest SDP announcement of either end when the flow began
        self.stale = False  # a later announcement touched one of its ends: check the epoch again
        self.last_time = 0.0
        self.key: tuple | None = None  # (src, sport, dst, dport), set when the tracker keeps it
        self.srtcp: StreamCheck | None = None  # SRTCP on an SRTP flow: checked before it is read


class MediaTracker:
    """Feed SIP messages with bodies (`sip`) and RTP-looking UDP packets (`feed`); `finish` fills the report."""

    def __init__(self, series: dict | None = None, srtp_keys: list | None = None, content=None) -> None:
        self.series = series  # when given: (src, dst, ssrc) -> StreamMetrics with per-packet arrays (plots)
        self.content = content  # analysis.content.ContentOptions: decode audio streams, speech activity
        self.srtp_keys = srtp_keys or []  # --srtp-keys entries (rtp/srtp_keys.KeyEntry)
        self._call_keys: dict[str, list[KeyCandidate]] = {}  # Call-ID -> SDES keys seen in its SDP
        self._best_effort: dict[str, list[_Endpoint]] = {}  # Call-ID -> offered RTP/AVP with a=crypto, unanswered
        self._path_keying: dict[tuple, str] = {}  # flow key -> ZRTP / DTLS seen on that media path
        self.srtcp_unread = 0  # SRTCP packets left unread: no key authenticates them
        self._endpoints: dict[tuple[str, int], list[_Endpoint]] = {}  # announcements, in frame order
        self._flows: dict[tuple, _Flow] = {}
        self._iflows: dict[tuple, _Flow] = {}  # the same flows keyed by integer IPv4 (fast path)
        self._by_endpoint: dict[tuple[str, int], set[tuple]] = {}  # ip, port -> keys of flows touching it
        self._codec_version = 0  # bumped when an announcement's codecs change (see _StreamState.event_pts)
        self._recent: dict[tuple[int, int], int] = {}  # IPv4 endpoint (integer) -> frame of a recent announcement
        self._retired: list[tuple[tuple, _Flow]] = []  # flows whose ports a later call re-used
        self._bye: dict[str, float] = {}  # call_id -> time of its first BYE
        self._closed: list[tuple[Stream, _StreamState, float, tuple]] = []  # finished early (memory), with
        # loss and flow key
        self._next_sweep = 0.0
        self.rtcp_packets = 0
        self._sr_seen: dict[tuple[int, int], float] = {}  # (SR sender SSRC, NTP middle) -> capture time
        self._sr_order: deque[tuple[float, tuple[int, int]]] = deque()  # the same, oldest first
        self.reception = Reception()  # what receivers reported, by source SSRC and reporter
        self.on_stream = None  # a live run's hook: each stream as it closes, rated (see _publish)

    # --- SIP side --------------------------------------------------------------------------

    def sip(self, msg: SipMessage, record: SipCall, call: Call) -> None:
        """An SDP body in the message just added to `record` (its last hop); `call` is its Call in the Report."""
        ctype = (msg.get("content-type") or "").lower()
        if "sdp" not in ctype:
            return
        seen = record.hops[-1]
        desc = sdplib.parse(msg.body)
        role = sdplib.role(msg.is_request, msg.method, msg.cseq[1], msg.status, record.invite_sdp)
        keys = self._call_keys.setdefault(call.call_id, [])
        for media in desc.media:
            address = sdplib.connection_address(desc, media) or ""
            formats = sdplib.codecs(media)
            codecs = {pt: (name, rate) for pt, name, rate, _ch in formats}
            entry = SdpEntry(
                frame=seen.frame, time=seen.time, sender=seen.src, message=msg.label, role=role,
                media=media.media, address=address, port=media.port, protocol=media.proto,
                codecs=[f"{pt} {name}/{rate}" for pt, (name, rate) in codecs.items()],
                direction=sdplib.direction(desc, media), ptime=media.ptime, rtcp_mux=media.rtcp_mux,
                encrypted="DTLS" if media.fingerprint else "SDES" if media.crypto else "",
                ice=bool(media.candidates), side=seen.side, crypto=[c.suite for c in media.crypto])
            call.sdp.append(entry)
            rtp = _carries_rtp(media.proto)
            kind = secure_media.keying(media.proto, media.fingerprint, media.attributes)
            best_effort = not kind and bool(media.crypto) and bool(rtp)
            if best_effort and role == "answer":
                kind = self._best_effort_taken(call)
            source = "sdp-tls" if seen.transport in ("TLS", "WSS") else "sdp"
            keys += [KeyCandidate(c.suite, tuple(c.keys), source, seen.frame) for c in media.crypto]
            if media.port and address and rtp is not None:
                announced = [self._announce((address, media.port), _Endpoint(
                    call, codecs, frame=seen.frame, rtp=rtp, keying=kind, keys=keys, fmtp=dict(media.fmtp),
                    channels={pt: ch for pt, _n, _r, ch in formats}))]
                if rtp and not media.rtcp_mux:
                    rtcp_port = media.rtcp_port or media.port + 1
                    announced.append(self._announce((address, rtcp_port), _Endpoint(
                        call, codecs, rtcp=True, frame=seen.frame, keying=kind, keys=keys)))
                if best_effort and role == "offer":
                    self._best_effort.setdefault(call.call_id, []).extend(announced)

    def _best_effort_taken(self, call: Call) -> str:
        """Best-effort SRTP (RTP/AVP with a=crypto in the offer): an answer with a=crypto took it, so
        the media both ways is SRTP keyed by SDES; the offer's endpoints become so too. (An answer
        without a=crypto declined it: plain RTP, and nothing changes.)"""
        for ep in self._best_effort.pop(call.call_id, []):
            ep.keying = ep.keying or secure_media.SDES
        return secure_media.SDES

    def _announce(self, key: tuple[str, int], ep: _Endpoint) -> _Endpoint:
        """Record an announcement; the endpoint in force for `key` is returned."""
        history = self._endpoints.setdefault(key, [])
        last = history[-1] if history else None
        if last is not None and last.call is ep.call and (last.rtcp, last.rtp) == (ep.rtcp, ep.rtp):
            last.codecs.update(ep.codecs)  # the answer or a re-INVITE of the same call
            last.fmtp.update(ep.fmtp)
            last.channels.update(ep.channels)
            last.keying = last.keying or ep.keying
            self._codec_version += 1
            return last
        history.append(ep)
        ip = _ipv4_int(key[0])
        if ip is not None:  # the fast path is IPv4 only
            self._recent[(ip, key[1])] = ep.frame
        # A new call may re-use this address:port: its packets must start new flows (and streams).
        for flow_key in self._by_endpoint.get(key, ()):
            flow = self._flows.get(flow_key)
            if flow is not None:
                flow.stale = True
        return ep

    def _epoch(self, key: tuple, frame: int) -> int:
        """Frame of the newest announcement (either end of the flow) in force at `frame`."""
        newest = 0
        for end in ((key[0], key[1]), (key[2], key[3])):
            for ep in self._endpoints.get(end, ()):
                if newest < ep.frame <= frame:
                    newest = ep.frame
        return newest

    def _cuts(self, key: tuple, first: int, last: int) -> list[int]:
        """Announcement frames (either end) inside (first, last]: where a batch's flow slice must split."""
        out = [ep.frame for end in ((key[0], key[1]), (key[2], key[3])) for ep in self._endpoints.get(end, ())
               if first < ep.frame <= last]
        return sorted(set(out))

    def _current(self, key: tuple, flow: _Flow | None, frame: int, payload) -> _Flow:
        """The flow for a packet at `frame`: the existing one unless a newer announcement began a new
        epoch. An announcement of the flow's own call (its answer, a re-INVITE, a switch to T.38 and
        back) keeps the flow and its streams, as tshark keeps one stream per 5-tuple and SSRC; the
        flow only takes the kind the SDP now in force gives it. Another call's starts a new flow."""
        if flow is not None:
            if not flow.stale:
                return flow
            flow.stale = False
            epoch = self._epoch(key, frame)
            if flow.epoch == epoch:
                return flow
            new = self._classify(*key, frame, payload)
            if flow.endpoint is not None and new.endpoint is not None and new.endpoint.call is flow.endpoint.call:
                flow.epoch, flow.endpoint = new.epoch, new.endpoint
                if not (flow.kind == "rtp" and new.kind == "rtcp" and not new.endpoint.rtcp):
                    flow.kind = new.kind  # (an RTCP packet that opens an epoch on an RTP port: RFC 5761)
                return flow
            self._retired.append((key, self._flows.pop(key, flow)))
            self._iflows.pop(_int_key(key), None)
            return self._remember(key, new)
        return self._remember(key, self._classify(*key, frame, payload))

    def _remember(self, key: tuple, flow: _Flow) -> _Flow:
        flow.key = key
        self._flows[key] = flow
        self._by_endpoint.setdefault((key[0], key[1]), set()).add(key)
        self._by_endpoint.setdefault((key[2], key[3]), set()).add(key)
        return flow

    def _endpoint(self, key: tuple[str, int], frame: int) -> _Endpoint | None:
        """The announcement in force at `frame` (the latest one made at or before it)."""
        history = self._endpoints.get(key)
        if not history:
            return None
        for ep in reversed(history):
            if ep.frame <= frame:
                return ep
        return None

    # --- packets ---------------------------------------------------------------------------

    def feed(self, pkt) -> None:
        key = (pkt.src, pkt.sport, pkt.dst, pkt.dport)
        flow = self._flows.get(key)
        if flow is None or flow.stale:
            flow = self._current(key, flow, pkt.frame, pkt.payload)
        flow.last_time = pkt.time
        if flow.kind == "rtp":
            self._rtp(flow, pkt)
        elif flow.kind == "rtcp":
            self._rtcp(pkt.payload, pkt.time, flow)

    def media_path(self, pkt) -> None:
        """A non-RTP packet on a UDP flow (RFC 7983): ZRTP or DTLS there says how SRTP is keyed."""
        kind = secure_media.media_path_keying(pkt.payload)
        if kind and len(self._path_keying) < 4096:
            self._path_keying.setdefault((pkt.src, pkt.sport, pkt.dst, pkt.dport), kind)

    def _classify(self, src, sport, dst, dport, frame, payload) -> _Flow:
        """A flow's kind is decided by its first packet: SDP endpoint (either side) or heuristics."""
        ep = self._endpoint((dst, dport), frame) or self._endpoint((src, sport), frame)
        epoch = self._epoch((src, sport, dst, dport), frame)
        is_rtcp = len(payload) >= 8 and 200 <= payload[1] <= 207
        if ep is not None:
            if not ep.rtp:  # T.38 (tshark decodes the port as UDPTL while that SDP is in force)
                return _Flow("other", ep, epoch)
            if ep.rtcp or is_rtcp:
                return _Flow("rtcp", ep, epoch)
            return _Flow("rtp", ep, epoch)
        if is_rtcp:
            return _Flow("rtcp", None, epoch)
        return _Flow("rtp", None, epoch) if len(payload) >= 12 else _Flow("other", None, epoch)

    def _rtp(self, flow: _Flow, pkt) -> None:
        payload = pkt.payload
        if len(payload) < 12 or payload[0] >> 6 != 2:
            return
        if 200 <= payload[1] <= 207:  # RTCP multiplexed on the RTP port (RFC 5761)
            self._rtcp(payload, pkt.time, flow)
            return
        b0, b1, seq, ts, ssrc = _HDR.unpack_from(payload)
        pt = b1 & 0x7F
        state = flow.last
        if state is None or state.ssrc != ssrc:
            state = flow.streams.get(ssrc)
            if state is None:
                state = flow.streams[ssrc] = self._new_stream(flow, pkt.frame, ssrc, pt)
            flow.last = state
        state.stats.add(pkt.frame, pkt.time, seq, ts, pt, b1 >> 7, len(payload))
        state.last_time = pkt.time
        if pkt.time >= self._next_sweep:
            self._sweep(pkt.time)
        clear = payload
        if state.srtp is not None:
            clear = state.srtp.packet(pkt.frame, payload)
        if state.audio is not None and clear is not None:  # content analysis reads the clear packet
            state.audio.rtp(pkt.time, clear)
        if pt != state.pt and state.codecs.get(pt, ("",))[0].lower() == "telephone-event":
            state.event_pt = pt
            if len(state.events) < 4096 and clear is not None and not state.keying:
                state.events.append(clear[_header_len(clear):])

    def feed_batch(self, rtp, buf: np.ndarray, g711: np.ndarray | None = None) -> None:
        """The fast path's RTP/RTCP candidates of one batch (see capture/batch.py), in bulk.

        Same outcome as feeding them one by one: a new flow is classified by its first packet
        against the SDP announcements in force at that frame. The batch is put in flow order
        (FlowBatch); each flow is then a contiguous slice. g711: content.batch_summaries of the
        batch (content analysis), rows in capture order.
        """
        if not len(rtp.index):
            return
        fb = FlowBatch(rtp)
        rec, p, length = fb.rec, fb.payload, fb.length
        if self.content is not None:
            fb.g711 = take(g711 if g711 is not None else content.batch_summaries(rtp, buf), fb.perm)
            fb.g711_others = content.others_per_flow(fb.g711, fb.flows)
        flows, iflows = self._flows, self._iflows
        control: list[int] = []  # RTCP: a few per stream and 5 s, parsed one by one in capture order
        frames = rec["frame"]
        fresh = self._fresh_announcements(fb.first_frame)
        for f, (a0, b0_, s_, sp, d_, dp) in enumerate(fb.flows):
            ikey = (s_, sp, d_, dp)
            flow = iflows.get(ikey)
            key = None if flow is not None and flow.key is not None else (_ipv4(s_), sp, _ipv4(d_), dp)
            if flow is None:
                flow = flows.get(key)
            elif key is None:
                key = flow.key
            cuts = self._cuts(key, int(frames[a0]), int(frames[b0_ - 1])) \
                if fresh and ((s_, sp) in fresh or (d_, dp) in fresh) else None
            if not cuts:
                if flow is None or flow.stale:
                    flow = self._current(key, flow, int(frames[a0]), bytes(buf[p[a0]:p[a0] + length[a0]]))
                    iflows[ikey] = flow
                self._slice(flow, a0, b0_, fb, control, buf, f)
                continue
            bounds = [a0, *(a0 + np.searchsorted(frames[a0:b0_], cuts)).tolist(), b0_]
            for a, b in zip(bounds[:-1], bounds[1:]):
                if a >= b:
                    continue
                if flow is None or flow.stale or a > a0:
                    if flow is not None and a > a0:
                        flow.stale = True  # an announcement inside this slice: maybe a new epoch
                    flow = self._current(key, flow, int(frames[a]), bytes(buf[p[a]:p[a] + length[a]]))
                    iflows[ikey] = flow
                self._slice(flow, a, b, fb, control, buf)
        for i, flow in sorted(control, key=lambda c: rec["frame"][c[0]]):
            start = int(p[i])
            self._rtcp(bytes(buf[start:start + int(length[i])]), float(rec["time"][i]), flow)
        self._sweep(fb.last_time)

    def _fresh_announcements(self, first: int) -> dict:
        """IPv4 endpoints (as integers) announced at a frame after `first` (a batch's first RTP
        frame): only flows touching one of them can need a cut within the batch."""
        self._recent = {key: frame for key, frame in self._recent.items() if frame > first}
        return self._recent

    def _slice(self, flow: _Flow, a: int, b: int, fb: FlowBatch, control: list, buf, f: int | None = None) -> None:
        """Records a..b of one flow in one epoch (f: the flow's index when a..b is the whole flow)."""
        flow.last_time, rtcp, n_bad, single, dynamic = fb.facts(a, b, f)
        if flow.kind == "other":
            return
        control.extend((i, flow) for i in rtcp)
        if flow.kind != "rtp":
            return
        rec, ssrc, p = fb.rec[a:b], fb.ssrc[a:b], fb.payload[a:b]
        g711 = fb.g711[a:b] if fb.g711 is not None else None
        if n_bad:
            u = fb.usable_mask[a:b]
            rec, ssrc, p = rec[u], ssrc[u], p[u]
            g711 = g711[u] if g711 is not None else None
        # all plain G.711 (content.batch_summaries took every usable record): no packet one by one
        all_g711 = g711 is not None and (fb.g711_others[f] == n_bad if f is not None else bool(g711["nsub"].all()))
        if len(rec):
            self._rtp_bulk(flow, rec, ssrc, p, buf, single, dynamic, g711, all_g711)

    def _rtp_bulk(self, flow: _Flow, rec: np.ndarray, ssrc: np.ndarray, p: np.ndarray, buf: np.ndarray,
                  single: bool | None = None, dynamic: bool = True, g711: np.ndarray | None = None,
                  all_g711: bool = False) -> None:
        """One flow's RTP records (one epoch): split by SSRC, appended to each stream's records.
        single: all of one SSRC (None: not known); dynamic: some payload type >= 96 among them;
        g711: the records' content.batch_summaries (content analysis), all_g711: all plain G.711."""
        first = int(ssrc[0])
        if single is None:
            single = bool((ssrc == first).all())
        parts = [(first, None)] if single else [(int(v), np.flatnonzero(ssrc == v)) for v in np.unique(ssrc)]
        for value, idx in parts:
            sub = rec if idx is None else rec[idx]
            state = flow.streams.get(value)
            if state is None:
                state = flow.streams[value] = self._new_stream(flow, int(sub["frame"][0]), value, int(sub["pt"][0]))
            state.stats.extend(sub)
            state.last_time = float(sub["time"][-1])
            if state.srtp is not None:
                self._secure_bulk(state, sub, p if idx is None else p[idx], buf)
                continue
            if state.keying:  # keyed on the media path: its payloads (RFC 4733 events too) are not readable
                continue
            if state.audio is not None:
                summaries = g711 if idx is None else g711[idx]
                if all_g711 and not state.audio.keep:  # (kept audio is decoded packet by packet)
                    state.audio.extend_g711(summaries)
                else:
                    content.feed_bulk(state.audio, sub, summaries, p if idx is None else p[idx], buf)
            if state.codecs:
                if state.event_pts_at != self._codec_version:
                    state.event_pts = [pt for pt, (name, _r) in state.codecs.items()
                                       if name.lower() == "telephone-event"]
                    state.event_pts_at = self._codec_version
                events = state.event_pts
                if events and (dynamic or min(events) < 96):
                    sp = p if idx is None else p[idx]
                    for j in np.flatnonzero(np.isin(sub["pt"], events))[:4096 - len(state.events)]:
                        start = int(sp[j])
                        payload = bytes(buf[start:start + int(sub["size"][j])])
                        state.events.append(payload[_header_len(payload):])

    def _secure_bulk(self, state: _StreamState, sub: np.ndarray, sp: np.ndarray, buf: np.ndarray) -> None:
        """An SRTP stream's packets of one batch, one by one in capture order: each is checked (when
        keys are in sight) and its RFC 4733 events read from the clear packet, never the cipher text."""
        events = [pt for pt, (name, _r) in state.codecs.items() if name.lower() == "telephone-event"]
        for j in range(len(sub)):
            start = int(sp[j])
            data = bytes(buf[start:start + int(sub["size"][j])])
            clear = state.srtp.packet(int(sub["frame"][j]), data)
            if clear is not None and state.audio is not None:  # content analysis: the decrypted packet
                state.audio.rtp(float(sub["time"][j]), clear)
            if clear is not None and int(sub["pt"][j]) in events and len(state.events) < 4096:
                state.events.append(clear[_header_len(clear):])

    def _new_stream(self, flow: _Flow, frame: int, ssrc: int, pt: int) -> _StreamState:
        ep = flow.endpoint
        codecs = ep.codecs if ep is not None else {}
        # tshark: a dynamic payload type with no rtpmap has no known clock (jitter not computed).
        clock = codecs.get(pt, (None, None))[1] or sdplib.static_clock_rate(pt) or 0
        state = _StreamState(ssrc=ssrc, pt=pt, stats=StreamStats(clock, codecs), first_frame=frame,
                             call=ep.call if ep is not None else None, codecs=codecs, from_sdp=ep is not None)
        self._secure(state, flow, ssrc)
        if self.content is not None and flow.key is not None and not state.keying:  # (SRTP: decrypted when keyed)
            src, sport, dst, dport = flow.key
            state.audio = content.stream_audio(self.content, codecs, ep.fmtp if ep else {}, ep.channels if ep else {},
                                               pt, _ep(src, sport), _ep(dst, dport), ssrc,
                                               ep.call.call_id if ep else None)
        return state

    def _secure(self, state: _StreamState, flow: _Flow, ssrc: int) -> None:
        """Make an SRTP stream's check: SDES keys of its call and of the keys file for its sender;
        streams keyed on the media path (DTLS-SRTP, ZRTP) are only marked."""
        ep = flow.endpoint
        src = _ep(flow.key[0], flow.key[1]) if flow.key else ""
        extra = [KeyCandidate(e.suite, e.keys, "keys-file") for e in self.srtp_keys if e.matches(src, ssrc)]
        kind = ep.keying if ep is not None else ("sdes" if extra else "")
        if kind in (secure_media.DTLS, secure_media.ZRTP):
            state.keying = kind
        elif kind:
            keys = ep.keys if ep is not None and ep.keys is not None else []
            if extra:
                keys = keys + extra
            state.srtp = StreamCheck(kind, keys)

    def _rtcp(self, payload: bytes, time: float, flow: _Flow | None = None) -> None:
        """RFC 3550 6.4: remember when each SR passed; read report blocks (loss, jitter, round trip).

        The round trip is measured on the capture clock: report block seen - the SR it echoes (LSR)
        seen - DLSR. It is the full RTT when the capture is taken at the SR's sender. SRTCP (an SRTP
        flow's RTCP) is read only once a key authenticates it: its report blocks are encrypted."""
        self.rtcp_packets += 1
        ep = flow.endpoint if flow is not None else None
        reporter = (flow.key[0], flow.key[1]) if flow is not None and flow.key is not None else None
        if ep is not None and ep.keying:
            if flow.srtcp is None:
                flow.srtcp = StreamCheck(ep.keying, ep.keys if ep.keys is not None else [], rtcp=True)
            payload = flow.srtcp.packet(0, payload)
            if payload is None:
                self.srtcp_unread += 1
                return
        for p in parse_rtcp(payload, _RTCP_READ):
            if p.packet_type == 200:
                key = (p.ssrc, p.ntp_middle)
                self._sr_seen[key] = time
                self._sr_order.append((time, key))
                while self._sr_order[0][0] < time - SR_KEEP_S or len(self._sr_order) > 65536:
                    t, old = self._sr_order.popleft()
                    if self._sr_seen.get(old) == t:
                        del self._sr_seen[old]
            for vm in p.voip_metrics:
                self.reception.voip_metrics(vm.ssrc, reporter, time, RtcpXr(
                    round(vm.loss_pct, 2), round(vm.discard_pct, 2), vm.round_trip_ms, vm.end_system_delay_ms,
                    vm.r_factor, vm.mos_lq, vm.mos_cq, vm.jb_nominal_ms, vm.jb_max_ms,
                    self.reception.xr_reports(vm.ssrc, reporter) + 1))
            for b in p.reports:
                sent = self._sr_seen.get((b.ssrc, b.lsr)) if b.lsr else None
                rtt = (time - sent) * 1000.0 - b.dlsr * 1000.0 / 65536.0 if sent is not None else None
                self.reception.block(b.ssrc, reporter, time, b.fraction_lost_pct, b.jitter, b.cumulative_lost,
                                     rtt if rtt is not None and 0 <= rtt < 10000 else None)

    def ended(self, call: Call, time: float) -> None:
        """The call got a BYE: its streams can be closed once they fall silent (see _sweep)."""
        self._bye.setdefault(call.call_id, time)
        self._best_effort.pop(call.call_id, None)

    def _sweep(self, now: float) -> None:
        """Close streams that are over, so memory follows the calls in progress, not the capture
        length: a stream of a call that got its BYE, silent for CLOSE_AFTER_S; any stream silent for
        IDLE_S. A later packet of the same SSRC on that flow starts a new stream."""
        self._next_sweep = now + SWEEP_EVERY_S
        over = []
        for key, flow in list(self._flows.items()) + self._retired:
            for ssrc, state in flow.streams.items():
                quiet = now - state.last_time
                bye = self._bye.get(state.call.call_id) if state.call is not None else None
                if quiet > IDLE_S or (bye is not None and quiet > CLOSE_AFTER_S and now - bye > CLOSE_AFTER_S):
                    over.append((key, flow, ssrc, state))
        self._close(over)
        for key, flow in list(self._flows.items()):
            if not flow.streams and now - flow.last_time > CLOSE_AFTER_S and self._flows.get(key) is flow:
                del self._flows[key]  # over: a later packet on these ports is classified afresh
                self._iflows.pop(_int_key(key), None)
                for end in ((key[0], key[1]), (key[2], key[3])):
                    keys = self._by_endpoint.get(end)
                    if keys is not None:
                        keys.discard(key)
                        if not keys:
                            del self._by_endpoint[end]
        self._retired = [(key, flow) for key, flow in self._retired if flow.streams]

    def _close(self, over: list[tuple]) -> None:
        """Close streams (key, flow, ssrc, state): their figures are computed together (finish_many)."""
        for key, flow, ssrc, state in over:
            del flow.streams[ssrc]
            if flow.last is state:
                flow.last = None
        audios = [state for _, _, _, state in over if state.audio is not None]
        for state, result in zip(audios, content.finish_many([s.audio for s in audios])):
            state.audio = result  # its content, now (analysis/content.stream_content reads it)
        # a generator, so that each group's records are released once its streams are done
        figures = finish_many(state.stats for _, _, _, state in over)
        for (key, _flow, _ssrc, state), m in zip(over, figures):
            state.stats = None  # the per-packet records are no longer needed
            stream, eff = self._stream(state, m, *key)
            if stream is not None:
                self._closed.append((stream, state, eff, key))
                if self.on_stream is not None:
                    self._publish(stream, state, eff, key)

    def _publish(self, stream: Stream, state: _StreamState, effective_loss_pct: float, key: tuple) -> None:
        """A stream just closed, to `on_stream`: rated and classified as the Report will have it, with
        the RTCP seen so far (finish() rates it again, with any RTCP that came after)."""
        self._rate(stream, state, effective_loss_pct, key)
        classify(stream, state.call)
        self.on_stream(stream)

    def live_figures(self, calls: list[Call], seconds: float) -> dict[int, "CallMedia"]:
        """For each call (keyed by id): the RTP packets of its open streams so far, and their loss and
        voice jitter over the last `seconds` of each stream, from the same statistics the Report's
        figures come from (StreamStats.recent, finish_many): a live view's current figures."""
        wanted = {id(c) for c in calls}
        states = [state for _, flow in self._retired + list(self._flows.items())
                  for state in flow.streams.values() if state.call is not None and id(state.call) in wanted]
        out: dict[int, CallMedia] = {}
        for state, m in zip(states, finish_many(state.stats.recent(seconds) for state in states)):
            was = out.get(id(state.call), CallMedia())
            out[id(state.call)] = CallMedia(was.packets + len(state.stats), was.expected + m.expected,
                                            was.lost + max(m.lost, 0), max(was.jitter_ms, m.max_voice_jitter_ms))
        return out

    # --- end -------------------------------------------------------------------------------

    def finish(self, report: Report) -> None:
        self._close([(key, flow, ssrc, state) for key, flow in self._retired + list(self._flows.items())
                     for ssrc, state in flow.streams.items()])
        for stream, state, eff, key in self._closed:
            self._rate(stream, state, eff, key)
            if state.call is not None:
                stream.call_id = state.call.call_id
                state.call.streams.append(stream)
            else:
                report.streams.append(stream)
        for call in report.calls:
            call.streams.sort(key=lambda s: (s.start, s.src))
        report.streams.sort(key=lambda s: (s.start, s.src))

    def _stream(self, state: _StreamState, m: StreamMetrics, src, sport, dst, dport) -> tuple[Stream | None, float]:
        """The stream from its figures; (None, 0) for a heuristic flow that is not RTP.
        Also returns the effective loss (network + jitter buffer) that the MOS needs."""
        if not state.from_sdp and not _plausible_rtp(m, dst, dport):
            return None, 0.0
        static = sdplib.static_codec_name(state.pt)
        name = state.codecs.get(state.pt, (None,))[0] or static or f"PT{state.pt}"
        if static and name.lower() == static.lower():
            name = static  # "pcma" in an rtpmap is PCMA
        stream = Stream(
            ssrc=state.ssrc, src=_ep(src, sport), dst=_ep(dst, dport), payload_type=state.pt, codec=name,
            clock_rate=m.clock_rate, packets=m.packets, expected=m.expected, lost=m.lost,
            loss_pct=round(m.loss_pct, 3), duplicates=m.duplicates, out_of_order=m.out_of_order,
            sequence_errors=m.sequence_errors, timestamp_jumps=m.timestamp_jumps,
            timestamp_jump_frame=m.timestamp_jump_frame, max_delta_ms=round(m.max_delta_ms, 3), max_delta_frame=m.max_delta_frame,
            mean_jitter_ms=round(m.mean_jitter_ms, 3), max_jitter_ms=round(m.max_jitter_ms, 3),
            max_voice_jitter_ms=round(m.max_voice_jitter_ms, 3),
            mean_bitrate_kbps=round(m.mean_bitrate_kbps, 2), from_sdp=state.from_sdp, start=m.start,
            end=m.end, first_frame=state.first_frame, last_frame=m.last_frame)
        if state.srtp is not None:
            stream.srtp = state.srtp.summary()
        elif state.keying or self._path_keying.get((src, sport, dst, dport)) or \
                self._path_keying.get((dst, dport, src, sport)):
            stream.srtp = secure_media.unexplained(state.keying or self._path_keying.get((src, sport, dst, dport))
                                                   or self._path_keying[(dst, dport, src, sport)])
        if self.series is not None:
            self.series[(stream.src, stream.dst, stream.ssrc)] = m
        if state.audio is not None:
            stream.content = content.stream_content(state.audio)
            if state.srtp is not None and not stream.content.decoded:
                stream.content.error = "SRTP: no key in sight decrypts its packets"
            content.keep_audio(self.content, state.audio, stream.src, stream.dst, stream.ssrc)
            state.audio = None
        if state.events:
            from ..rtp.packet import dtmf_digits
            stream.dtmf = dtmf_digits(state.events)
            state.events = []
        return stream, m.effective_loss_pct

    def _rate(self, stream: Stream, state: _StreamState, effective_loss_pct: float, key: tuple) -> None:
        """RTCP figures and the MOS, at the end: RTCP reports may arrive after the stream closed. The
        reports are its receiver's (analysis/reception.py: an echoed SSRC is two streams)."""
        src, dst = (key[0], key[1]), (key[2], key[3])
        reported = self.reception.blocks_about(state.ssrc, src, dst)
        stream.rtcp_xr = self.reception.xr_about(state.ssrc, src, dst)
        if reported is not None:
            stream.rtcp_loss_pct = round(reported.loss, 2)
            stream.rtcp_lost = reported.lost
            clock = stream.clock_rate
            stream.rtcp_jitter_ms = round(reported.jitter * 1000.0 / clock, 3) if clock else None
            if reported.rtt:
                stream.rtcp_rtt_ms = round(float(np.median(reported.rtt)), 3)
        stream.effective_loss_pct = round(effective_loss_pct, 3)
        if stream.codec.lower() != "telephone-event":
            r, mos = mos_for_stream(stream.codec, effective_loss_pct, mos_delay_ms(stream))
            stream.r_factor, stream.mos = round(r, 1), round(mos, 2)
            if (model := mos_model(stream.codec)) != NARROWBAND_MODEL:
                stream.mos_model = model


class CallMedia(NamedTuple):
    """A call's media as a live view shows it (MediaTracker.live_figures)."""

    packets: int = 0  # RTP packets so far, every open stream of the call
    expected: int = 0  # over the recent window
    lost: int = 0  # over the recent window
    jitter_ms: float = 0.0  # the highest voice jitter (RFC 3550) over the recent window


def mos_delay_ms(stream: Stream) -> float | None:
    """The one-way delay the E-model's Id uses for a stream (G.107 7.4): half its RTCP round trip on
    the capture clock, else half the round trip its receiver measured (RTCP XR, RFC 3611 4.7), else
    None (G.107's default)."""
    if stream.rtcp_rtt_ms is not None:
        return stream.rtcp_rtt_ms / 2
    if stream.rtcp_xr is not None and stream.rtcp_xr.round_trip_ms:
        return stream.rtcp_xr.round_trip_ms / 2
    return None


class FlowBatch:
    """One batch's RTP/RTCP candidates in flow order (capture order within a flow): the RTP records
    as RECORD_DTYPE, and per flow its start/stop, 4-tuple, counts of RTCP-looking and unusable
    records, whether it is of one SSRC, has a dynamic payload type, and its last time, computed for
    all flows at once so that a flow costs list lookups, not numpy calls."""

    __slots__ = ("rec", "ssrc", "payload", "length", "rtcp_mask", "usable_mask", "dynamic_mask", "flows",
                 "rtcp", "bad", "single", "dynamic", "flow_last_time", "rtcp_at", "rtcp_from", "first_frame",
                 "last_time", "perm", "g711", "g711_others")

    def __init__(self, rtp) -> None:
        sel = rtp.index
        n = len(sel)
        a_end = (rtp.src[sel].astype(np.int64) << 16) | rtp.sport[sel]  # 48-bit address:port of each end
        b_end = (rtp.dst[sel].astype(np.int64) << 16) | rtp.dport[sel]
        order = self.perm = _flow_order(a_end, b_end)  # perm: positions among the candidates
        a_end, b_end = a_end[order], b_end[order]
        order = sel[order]  # positions among the batch's records
        change = np.empty(n, bool)
        change[0] = True
        change[1:] = (a_end[1:] != a_end[:-1]) | (b_end[1:] != b_end[:-1])
        starts = np.flatnonzero(change)
        stops = np.append(starts[1:], n)
        first = order[starts]
        self.flows = list(zip(starts.tolist(), stops.tolist(), rtp.src[first].tolist(), rtp.sport[first].tolist(),
                              rtp.dst[first].tolist(), rtp.dport[first].tolist()))
        self.payload, self.length, hdr = rtp.payload[order], rtp.length[order], take(rtp.header, order)
        b1 = hdr["b1"]
        self.g711, self.g711_others = None, None  # content.batch_summaries in flow order (content analysis)
        rtcp = (b1 >= 200) & (b1 <= 207)
        usable = ~rtcp & (self.length >= 12)  # version 2: checked by the batch
        rec = self.rec = np.empty(n, dtype=RECORD_DTYPE)
        rec["frame"] = rtp.frame[order]
        rec["time"] = rtp.time[order]
        rec["seq"] = hdr["seq"]
        rec["ts"] = hdr["ts"]
        rec["pt"] = b1 & 0x7F
        rec["marker"] = b1 >> 7
        rec["size"] = self.length
        ssrc = self.ssrc = hdr["ssrc"].astype(np.uint32)
        self.first_frame = int(rtp.frame[sel[0]])  # records are in capture order
        self.last_time = float(rec["time"].max())
        self.rtcp_mask, self.usable_mask = rtcp, usable
        self.dynamic_mask = rec["pt"] >= 96
        change = np.zeros(n, np.int8)
        change[1:] = ssrc[1:] != ssrc[:-1]
        change[starts] = 0
        flags = np.stack([rtcp, ~usable, self.dynamic_mask, change.view(bool)]).astype(np.int32)
        counts = np.add.reduceat(flags, starts, axis=1)
        self.rtcp, self.bad, dynamic, changes = counts.tolist()
        self.dynamic = [bool(v) for v in dynamic]
        self.single = [not v for v in changes]
        self.flow_last_time = rec["time"][stops - 1].tolist()
        self.rtcp_at = np.flatnonzero(rtcp).tolist()  # RTCP-looking records; flow f's from rtcp_from[f]
        self.rtcp_from = (np.cumsum(counts[0]) - counts[0]).tolist()

    def facts(self, a: int, b: int, f: int | None) -> tuple[float, list[int], int, bool | None, bool]:
        """Of records a..b: last time, RTCP-looking records, unusable count, one SSRC (None: not
        known), any dynamic payload type. Precomputed when a..b is flow f whole; else counted."""
        if f is not None:
            first, n_bad = self.rtcp_from[f], self.bad[f]
            rtcp = self.rtcp_at[first:first + self.rtcp[f]]
            return self.flow_last_time[f], rtcp, n_bad, None if n_bad else self.single[f], self.dynamic[f]
        rtcp = (np.flatnonzero(self.rtcp_mask[a:b]) + a).tolist()
        n_bad = b - a - int(np.count_nonzero(self.usable_mask[a:b]))
        return float(self.rec["time"][b - 1]), rtcp, n_bad, None, bool(self.dynamic_mask[a:b].any())


_U64 = np.uint64
_MIX1, _MIX2 = _U64(0x9E3779B97F4A7C15), _U64(0xBF58476D1CE4E5B9)


def _flow_order(a_end: np.ndarray, b_end: np.ndarray) -> np.ndarray:
    """A permutation that groups records by flow (a_end, b_end), capture order within each group.

    One sort of 64-bit keys: a 48-bit hash of the flow above the record's 16-bit index (3x faster
    than lexsort on the two keys). Two flows whose hashes collide only interleave within one group;
    the caller cuts groups where the actual keys change, so such a flow comes as several slices,
    still in capture order: slower, never wrong."""
    n = len(a_end)
    if n > 1 << 16:
        return np.lexsort((b_end, a_end))
    x = a_end.astype(_U64) * _MIX1 ^ b_end.astype(_U64)  # splitmix64-style mixing
    x ^= x >> _U64(31)
    x *= _MIX2
    x ^= x >> _U64(29)
    key = np.sort((x & _U64(0xFFFFFFFFFFFF0000)) | np.arange(n, dtype=_U64))
    return (key & _U64(0xFFFF)).astype(np.int64)


def _carries_rtp(proto: str) -> bool | None:
    """What an m= line's transport puts on its port (RFC 4566 5.14): True for RTP profiles (RTP/AVP,
    RTP/SAVPF, UDP/TLS/RTP/SAVPF...), False for T.38 over UDPTL (ITU-T T.38 Annex D), None for
    anything else (no RTP is looked for there; tshark sets up nothing for those either)."""
    if "RTP/" in proto.upper():
        return True
    return False if proto.lower() == "udptl" else None


NOT_RTP_PORTS = {53, 67, 68, 123, 137, 138, 161, 500, 1900, 3478, 4500, 5353, 5355}  # DNS, DHCP, NTP, mDNS...


def _plausible_rtp(m, dst: str, dport: int) -> bool:
    """A flow no SDP announced counts as RTP only if it behaves like it: enough packets, sequence
    numbers that mostly move forward, not to a multicast/broadcast address or a well-known port
    of a protocol whose first byte can look like RTP version 2 (LLMNR, mDNS, SSDP, DNS...)."""
    if m.packets < HEURISTIC_MIN_PACKETS or dport in NOT_RTP_PORTS:
        return False
    if dst.startswith(("224.", "239.", "255.", "ff0", "FF0")) or dst.endswith(".255"):
        return False
    steps = np.diff(m.sequence)  # RFC 4733 end-of-event packets repeat their sequence number (step 0)
    return bool(len(steps)) and np.count_nonzero((steps >= 0) & (steps < 1000)) >= 0.8 * len(steps)


def _ipv4(value: int) -> str:
    """Dotted quad of an integer IPv4 address (a flow's key, made once per new flow)."""
    return socket.inet_ntoa(struct.pack("!I", value))


def _ipv4_int(name: str) -> int | None:
    try:
        return struct.unpack("!I", socket.inet_aton(name))[0]
    except OSError:
        return None


def _int_key(key: tuple) -> tuple | None:
    """The fast path's integer form of a flow key (IPv4 only)."""
    src, dst = _ipv4_int(key[0]), _ipv4_int(key[2])
    return None if src is None or dst is None else (src, key[1], dst, key[3])


def _ep(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def _header_len(payload: bytes) -> int:
    n = 12 + 4 * (payload[0] & 0x0F)
    if payload[0] & 0x10 and len(payload) >= n + 4:
        n += 4 + 4 * struct.unpack_from("!H", payload, n + 2)[0]
    return n
