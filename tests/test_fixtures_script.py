"""fixtures/: the committed captures hold the facts fixtures/pcaps/README.md promises, the tone
generator and relay behave as documented, and make_pcaps.sh really regenerates captures."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

import dpkt
import pytest
from support import FIXTURES, REPO, require_binary

FX = REPO / "fixtures"
SCEN = FX / "scenarios"
SCRIPT = FX / "make_pcaps.sh"


def load(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


gen = load(SCEN / "gen_rtp_pcap.py")
relay = load(FX / "relay.py")


# --- capture helpers (dpkt; per-file facts) ------------------------------------------------

def frames(path: Path):
    with open(path, "rb") as f:
        for _, buf in dpkt.pcap.Reader(f):
            yield dpkt.ethernet.Ethernet(buf).data


def udp_datagrams(path: Path):
    """(src, sport, dst, dport, payload) for unfragmented UDP over IPv4."""
    for ip in frames(path):
        if isinstance(ip, dpkt.ip.IP) and ip.p == 17 and not (ip.mf or ip.offset):
            u = ip.data
            yield socket.inet_ntoa(ip.src), u.sport, socket.inet_ntoa(ip.dst), u.dport, bytes(u.data)


def rtp_streams(path: Path):
    """(src, sport, dst, dport, ssrc) -> list of seq, for UDP that is not SIP (port 5060)."""
    streams = defaultdict(list)
    for src, sp, dst, dp, data in udp_datagrams(path):
        if 5060 in (sp, dp) or len(data) < 12 or data[0] >> 6 != 2:
            continue
        seq, _, ssrc = struct.unpack_from("!HII", data, 2)
        streams[(src, sp, dst, dp, ssrc)].append(seq)
    return streams


def sip_messages(path: Path):
    """Start lines and Call-IDs of the SIP messages over UDP/TCP (IPv4 fragments joined)."""
    frags, tcp = defaultdict(list), defaultdict(bytes)
    out = []
    for ip in frames(path):
        if not isinstance(ip, dpkt.ip.IP):
            continue
        if ip.mf or ip.offset:
            frags[ip.id].append((ip.offset * 8, bytes(ip.data)))  # offset in 8-byte units
            if ip.mf:
                continue
            data = b"".join(d for _, d in sorted(frags.pop(ip.id)))[8:]
        elif ip.p == 17 and 5060 in (ip.data.sport, ip.data.dport):
            data = bytes(ip.data.data)
        elif ip.p == 6:
            key = (ip.src, ip.data.sport, ip.dst, ip.data.dport)
            tcp[key] += bytes(ip.data.data)
            while b"\r\n\r\n" in tcp[key]:
                head, rest = tcp[key].split(b"\r\n\r\n", 1)
                clen = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                if len(rest) < clen:
                    break
                out.append(head)
                tcp[key] = rest[clen:]
            continue
        else:
            continue
        if data.startswith(b"SIP/2.0") or b" SIP/2.0\r\n" in data[:200]:
            out.append(data.split(b"\r\n\r\n")[0])
    result = []
    for head in out:
        lines = head.decode().split("\r\n")
        hdr = {l.split(":", 1)[0].lower(): l.split(":", 1)[1].strip() for l in lines[1:] if ":" in l}
        result.append((lines[0], hdr["call-id"], hdr["cseq"]))
    return result


def final_codes(path: Path):
    """Call-ID -> list of final (>=200) status codes of INVITE transactions, in order."""
    finals = defaultdict(list)
    for start, cid, cseq in sip_messages(path):
        if start.startswith("SIP/2.0") and cseq.endswith("INVITE") and int(start.split()[1]) >= 200:
            finals[cid].append(int(start.split()[1]))
    return dict(finals)


def methods(path: Path):
    return Counter(s.split()[0] if not s.startswith("SIP/") else s.split()[1]
                   for s, _, _ in sip_messages(path))


EXPECTED_FINALS = {
    "call_ok": {"1-call_ok@127.0.0.1": [200]},
    "busy_486": {"1-busy_486@127.0.0.1": [486]},
    "cancel_487": {"1-cancel_487@127.0.0.1": [487]},
    "auth_401": {"1-auth_401@127.0.0.1": [401, 200]},
    "call_tcp": {"1-call_tcp@127.0.0.1": [200], "2-call_tcp@127.0.0.1": [200]},
    "frag_udp": {"1-frag_udp@127.0.0.1": [200]},
    "calls_mixed": {f"{n}-calls_mixed@127.0.0.1": [c] for n, c in
                    enumerate([200, 200, 486, 200, 503, 486, 200, 200], start=1)},
    "media_ok": {"1-media_ok@127.0.0.1": [200]},
    "media_oneway": {"1-media_oneway@127.0.0.1": [200]},
    "media_nat_sdp": {"1-media_nat_sdp@127.0.0.1": [200]},
    "reject_488": {"1-reject_488@127.0.0.1": [488]},
    "media_impaired": {"1-media_impaired@127.0.0.1": [200]},
    "nat_oneway_inside": {"1-nat_oneway@10.0.0.2": [200]},
    "nat_oneway_outside": {"1-nat_oneway@10.0.0.2": [200]},
    **{f"diff_proxy_{side}": {"1-diff_proxy@10.18.1.2": [200], "2-diff_proxy@10.18.1.2": [486]} for side in "ab"},
    "diff_topoh_a": {"1-diff_topoh@10.18.1.2": [200], "2-diff_topoh@10.18.1.2": [486], "3-diff_topoh@10.18.1.2": [200]},
    **{f"diff_relay_{side}": {"1-diff_relay@10.18.1.2": [200]} for side in "ab"},
    "speech_turns": {"1-speech_turns@127.0.0.1": [200]},  # the content fixtures (issue 16), SIPp ones
    "speech_faults": {"1-speech_faults@127.0.0.1": [200]},
    "speech_silent": {"1-speech_silent@127.0.0.1": [200]},
    "speech_cut": {"1-speech_cut@127.0.0.1": [200]},
}

UAC, UAS = 0x1A2B3C4D, 0x5E6F7A8B
SEQ_UAC = list(range(1000, 1200))
SEQ_UAS = [(65436 + i) & 0xFFFF for i in range(200)]


def need(name: str) -> Path:
    path = FIXTURES / name
    if not path.exists():
        pytest.skip(f"{name} not generated yet (run sudo fixtures/make_pcaps.sh)")
    return path


# --- committed captures -----------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(EXPECTED_FINALS))
def test_capture_is_small_classic_pcap_with_expected_calls(name):
    path = need(f"{name}.pcap")
    assert path.stat().st_size < 200_000
    magic, _, _, _, _, snaplen, linktype = struct.unpack("<IHHiIII", path.read_bytes()[:24])
    assert (magic, linktype) == (0xA1B2C3D4, 1) and snaplen >= 65535
    assert final_codes(path) == EXPECTED_FINALS[name]


def test_readme_names_every_capture():
    readme = (FIXTURES / "README.md").read_text()
    for path in FIXTURES.glob("*.pcap"):
        assert f"| {path.name} |" in readme


def test_call_ok_ladder():
    seq = [s.split()[0] if not s.startswith("SIP/") else s.split()[1]
           for s, _, _ in sip_messages(need("call_ok.pcap"))]
    assert seq == ["INVITE", "100", "180", "200", "ACK", "BYE", "200"]


def test_cancel_and_busy_ladders():
    assert [s.split()[0] if not s.startswith("SIP/") else s.split()[1]
            for s, _, _ in sip_messages(need("cancel_487.pcap"))] == \
        ["INVITE", "100", "180", "CANCEL", "200", "487", "ACK"]
    assert methods(need("busy_486.pcap")) == Counter({"INVITE": 1, "100": 1, "486": 1, "ACK": 1})


def test_auth_retry_carries_rfc2617_digest():
    import hashlib
    path = need("auth_401.pcap")
    invites = [d for *_, d in udp_datagrams(path) if d.startswith(b"INVITE")]
    assert len(invites) == 2 and b"Authorization:" not in invites[0]
    auth = invites[1].split(b"Authorization: Digest ")[1].split(b"\r\n")[0].decode()
    p = dict(kv.split("=", 1) for kv in auth.split(","))
    p = {k.strip(): v.strip('"') for k, v in p.items()}
    md5 = lambda s: hashlib.md5(s.encode()).hexdigest()  # noqa: E731
    ha1, ha2 = md5("fixture:siptool.test:secret"), md5(f"INVITE:{p['uri']}")
    want = md5(f"{ha1}:{p['nonce']}:{p['nc']}:{p['cnonce']}:{p['qop']}:{ha2}")
    assert p["uri"] == "sip:alice@127.0.0.2:5060" and p["response"] == want


def test_tcp_calls_share_one_connection():
    path = need("call_tcp.pcap")
    conns = {frozenset([(ip.src, ip.data.sport), (ip.dst, ip.data.dport)])
             for ip in frames(path) if isinstance(ip, dpkt.ip.IP) and ip.p == 6}
    assert len(conns) == 1
    assert methods(path) == Counter({"INVITE": 2, "100": 2, "180": 2, "200": 4, "ACK": 2, "BYE": 2})


def test_large_invite_is_ip_fragmented():
    path = need("frag_udp.pcap")
    frag = [ip for ip in frames(path) if isinstance(ip, dpkt.ip.IP) and (ip.mf or ip.offset)]
    assert len({ip.id for ip in frag}) == 1 and len(frag) == 3
    assert [ip.offset * 8 for ip in frag] == [0, 1480, 2960]
    assert max(len(ip) for ip in frag) == 1500
    assert sip_messages(path)[0][0].startswith("INVITE sip:alice@")


def test_mixed_calls_counts():
    m = methods(need("calls_mixed.pcap"))
    assert m == Counter({"INVITE": 8, "100": 8, "180": 5, "200": 10, "486": 2, "503": 1,
                         "ACK": 8, "BYE": 5})


def test_media_ok_two_clean_streams_with_wrap():
    s = rtp_streams(need("media_ok.pcap"))
    assert s == {("127.0.0.1", 6000, "127.0.0.2", 6000, UAC): SEQ_UAC,
                 ("127.0.0.2", 6000, "127.0.0.1", 6000, UAS): SEQ_UAS}


def test_media_oneway_only_caller_sends():
    s = rtp_streams(need("media_oneway.pcap"))
    assert s == {("127.0.0.1", 6000, "127.0.0.2", 6000, UAC): SEQ_UAC}


def test_media_nat_sdp_private_address_only_in_sdp():
    path = need("media_nat_sdp.pcap")
    invite = next(d for *_, d in udp_datagrams(path) if d.startswith(b"INVITE"))
    assert b"c=IN IP4 192.168.1.10\r\n" in invite and b"m=audio 7078 RTP/AVP 0\r\n" in invite
    s = rtp_streams(path)
    assert s == {("127.0.0.1", 7080, "127.0.0.2", 6000, UAC): SEQ_UAC,
                 ("127.0.0.2", 6000, "127.0.0.1", 7080, UAC): SEQ_UAC}
    addrs = {socket.inet_ntoa(a) for ip in frames(path) for a in (ip.src, ip.dst)}
    assert addrs == {"127.0.0.1", "127.0.0.2"}


def test_reject_488_has_no_media():
    path = need("reject_488.pcap")
    invite = next(d for *_, d in udp_datagrams(path) if d.startswith(b"INVITE"))
    assert b"m=audio 6000 RTP/AVP 18\r\n" in invite
    assert not rtp_streams(path)


def test_impaired_capture_matches_relay_log():
    path = need("media_impaired.pcap")
    log = json.loads(need("media_impaired.relay.json").read_text())
    s = rtp_streams(path)
    assert s[("127.0.0.1", 6000, "127.0.0.3", 40000, UAC)] == SEQ_UAC
    impaired = s[("127.0.0.3", 40002, "127.0.0.2", 40000, UAC)]
    assert impaired == [int(x) for x in log["sent_order_seq"].split()]
    sm = log["summary"]
    assert sorted(set(SEQ_UAC) - set(impaired)) == sm["dropped_seq"]
    assert sorted(q for q, n in Counter(impaired).items() if n == 2) == sm["duplicated_seq"]
    for q in sm["reordered_seq"]:
        assert impaired.index(q) == impaired.index(q + 1) + 1
    assert (sm["received"], sm["dropped"], sm["duplicated"], sm["reordered"], sm["sent"]) == \
        (200, 6, 2, 2, 196)
    # the echo and the relay's return leg carry the impaired stream unchanged
    assert s[("127.0.0.2", 40000, "127.0.0.3", 40002, UAC)] == impaired
    assert s[("127.0.0.3", 40000, "127.0.0.1", 6000, UAC)] == impaired
    assert len(s) == 4


# --- tone generator ---------------------------------------------------------------------

def test_ulaw_matches_g711_reference_points():
    import numpy as np
    pcm = np.array([0, -1, 1, 32767, -32768, 100, -100, 8000, -8000], dtype=np.int16)
    # values of the CCITT/Sun reference encoder (as in Python's audioop.lin2ulaw)
    assert gen.linear_to_ulaw(pcm).tolist() == [255, 126, 255, 128, 0, 242, 114, 160, 32]


def test_ulaw_matches_audioop_everywhere():
    import warnings

    import numpy as np
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        audioop = pytest.importorskip("audioop")
    pcm = np.arange(-32768, 32768, dtype=np.int16)
    ref = np.frombuffer(audioop.lin2ulaw(pcm.tobytes(), 2), dtype=np.uint8)
    assert (gen.linear_to_ulaw(pcm) == ref).all()


@pytest.mark.parametrize("name,args", [
    ("uac_tone.pcap", ["--freq", "440", "--ssrc", "0x1a2b3c4d", "--seq", "1000", "--ts", "160000"]),
    ("uas_tone.pcap", ["--freq", "880", "--ssrc", "0x5e6f7a8b", "--seq", "65436",
                       "--ts", "4294951296"]),
])
def test_tone_pcaps_regenerate_byte_for_byte(tmp_path, name, args):
    out = tmp_path / name
    subprocess.run([sys.executable, str(SCEN / "gen_rtp_pcap.py"), str(out), *args,
                    "--seconds", "4"], check=True)
    assert out.read_bytes() == (SCEN / name).read_bytes()
    script = " ".join(SCRIPT.read_text().replace("\\\n", " ").split())
    assert f"$SCEN/{name}\" {' '.join(args)} --seconds 4" in script  # the script's own call


# --- relay ------------------------------------------------------------------------------

def test_schedule_is_seeded():
    a = relay.make_schedule(4, 200, 0.03, 40, 2, 2)
    assert a == relay.make_schedule(4, 200, 0.03, 40, 2, 2)
    assert a != relay.make_schedule(5, 200, 0.03, 40, 2, 2)
    acts = Counter(p["action"] for p in a)
    assert (acts["drop"], acts["reorder"], acts["duplicate"]) == (6, 2, 2)
    assert all(0 <= p["delay_ms"] <= 40 for p in a)


def free_udp_port(host="127.0.0.1"):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def test_relay_live_on_loopback(tmp_path):
    """Real packets through relay.py: what arrives equals its log and its seeded plan."""
    pa, pb = free_udp_port(), free_udp_port()
    callee = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    callee.bind(("127.0.0.1", 0))
    caller = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    caller.bind(("127.0.0.1", 0))
    log = tmp_path / "relay.json"
    proc = subprocess.Popen([sys.executable, str(FX / "relay.py"),
                             "--listen-a", f"127.0.0.1:{pa}", "--listen-b", f"127.0.0.1:{pb}",
                             "--peer-b", "127.0.0.1:%d" % callee.getsockname()[1],
                             "--seed", "11", "--drop", "0.05", "--jitter-ms", "5",
                             "--reorder", "3", "--duplicate", "2", "--max-packets", "100",
                             "--log", str(log)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline() == "relay: listening\n"  # both legs are bound
        sent = [struct.pack("!BBHII", 0x80, 0, 500 + i, 160 * i, 0xABCD) + b"\xff" * 160
                for i in range(100)]
        for pkt in sent:
            caller.sendto(pkt, ("127.0.0.1", pa))
            time.sleep(0.003)
        callee.settimeout(1.0)
        got = []
        try:
            while True:
                data, addr = callee.recvfrom(2048)
                got.append(struct.unpack_from("!H", data, 2)[0])
        except socket.timeout:
            pass
        callee.sendto(sent[0], addr)                 # return leg goes back to the caller
        caller.settimeout(1.0)
        assert caller.recvfrom(2048)[0] == sent[0]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)
    report = json.loads(log.read_text())
    assert got == [int(x) for x in report["sent_order_seq"].split()]
    plan = relay.make_schedule(11, 100, 0.05, 5, 3, 2)
    assert [p["action"] for p in report["packets"]] == [p["action"] for p in plan]
    dropped = {500 + i for i, p in enumerate(plan) if p["action"] == "drop"}
    assert set(range(500, 600)) - set(got) == dropped
    assert len(got) == 100 - len(dropped) + 2
    assert report["summary"]["returned_b_to_a"] == 1


def test_relay_refuses_non_loopback(tmp_path):
    r = subprocess.run([sys.executable, str(FX / "relay.py"), "--listen-a", "192.168.1.10:4000",
                        "--listen-b", "127.0.0.1:4002", "--peer-b", "127.0.0.1:4004",
                        "--log", str(tmp_path / "x.json")], capture_output=True, text=True)
    assert r.returncode != 0 and "not a loopback address" in r.stderr


# --- the script itself ------------------------------------------------------------------

def test_script_syntax():
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)


@pytest.mark.interop
def test_script_regenerates_captures(tmp_path):
    """Run make_pcaps.sh for three quick cases into a temporary folder (needs root)."""
    if os.geteuid() != 0:
        pytest.skip("make_pcaps.sh needs root for its network namespace")
    for tool in ("sipp", "tcpdump", "ip"):
        require_binary(tool)
    env = dict(os.environ, SIPTOOL_FX_OUT=str(tmp_path))
    subprocess.run([str(SCRIPT), "call_ok", "busy_486", "reject_488"], env=env, check=True,
                   capture_output=True, timeout=120)
    for name in ("call_ok", "busy_486", "reject_488"):
        assert final_codes(tmp_path / f"{name}.pcap") == EXPECTED_FINALS[name]
    assert methods(tmp_path / "call_ok.pcap") == methods(FIXTURES / "call_ok.pcap")


def nat_verdicts(inside: Path, outside: Path) -> None:
    """What each side of the NAT must be told: the caller (behind the NAT) hears nothing."""
    from siptool.drivers.files import analyze_file

    for path in (inside, outside):
        report = analyze_file(path)
        (call,) = report.calls
        (one_way,) = [f for f in call.findings if f.code == "media.one_way"]
        assert one_way.severity == "error" and one_way.evidence["hears_nothing"] == "caller"
        assert one_way.evidence["cause"] == "nat" and "latch" in one_way.fix
        codes = sorted(f.code for f in report.all_findings())
        if path is inside:  # only the caller's RTP leaves the LAN; nothing comes back in
            assert codes == ["media.one_way"] and "10.0.0.2:6000, a private address" in one_way.explanation
            assert [(s.src, s.dst) for s in call.streams] == [("10.0.0.2:6000", "203.0.113.10:6000")]
        else:  # the callee's RTP goes to the private address; the caller's comes from the NAT
            assert codes == ["media.one_way", "nat.private_contact", "nat.private_sdp", "nat.rtp_source"]
            assert one_way.evidence["sent_to"] == "10.0.0.2:6000"
            assert one_way.evidence["media_from"] == "203.0.113.1:6000"


def test_nat_fixture_verdicts():
    nat_verdicts(need("nat_oneway_inside.pcap"), need("nat_oneway_outside.pcap"))


@pytest.mark.interop
def test_script_makes_the_nat_case_with_a_real_nat(tmp_path):
    """nat_oneway: SIPp behind a real masquerading NAT (iptables in a namespace the script makes),
    captured on both sides; each capture gets the right verdict."""
    if os.geteuid() != 0:
        pytest.skip("make_pcaps.sh needs root for its network namespaces")
    for tool in ("sipp", "tcpdump", "ip", "iptables"):
        require_binary(tool)
    env = dict(os.environ, SIPTOOL_FX_OUT=str(tmp_path))
    subprocess.run([str(SCRIPT), "nat_oneway"], env=env, check=True, capture_output=True, timeout=120)
    nat_verdicts(tmp_path / "nat_oneway_inside.pcap", tmp_path / "nat_oneway_outside.pcap")



# Findings that judge when the peers' packets left: on a loaded machine the real peers (baresip, the
# fixture client) send late, and a capture made again has real jitter (a lower MOS), timestamps off
# the arrival clock, or a call that outlasts the time media is due by. They say how busy the machine
# was, not whether the script reproduced its case.
PEER_TIMING = ("media.jitter", "media.mos", "media.timestamp_jump", "media.none", "capture.no_media")


def verdict(path: Path, keylog: Path | None = None) -> tuple:
    """What a capture says, without what changes on every run (Call-IDs, keys, times, PEER_TIMING):
    per call its final status, its SIP messages (each one's method or status code, in order),
    transport, streams and SRTP; the findings."""
    from siptool.drivers.files import analyze_file

    report = analyze_file(path, tls_keylog=str(keylog) if keylog else None)
    calls = [(c.final_status, [step.label.split()[0] for step in c.ladder], c.transport, len(c.streams),
              sorted((s.srtp.keying, s.srtp.checked, s.srtp.suite) for s in c.streams if s.srtp)) for c in report.calls]
    return calls, sorted(f.code for f in report.all_findings() if f.code not in PEER_TIMING)


def differences(name: str, new: tuple, old: tuple) -> str:
    """Which calls and messages of a regenerated capture differ from the committed one's, in words."""
    out = []
    for i, (a, b) in enumerate(zip(new[0], old[0]), 1):
        if a != b:
            missing = [m for m in b[1] if b[1].count(m) > a[1].count(m)]
            extra = [m for m in a[1] if a[1].count(m) > b[1].count(m)]
            out.append(f"call {i} ({b[2]}): messages {' '.join(a[1])} instead of {' '.join(b[1])}"
                       + (f"; missing {', '.join(sorted(set(missing)))}" if missing else "")
                       + (f"; extra {', '.join(sorted(set(extra)))}" if extra else "")
                       + (f"; {a[0]} {a[3:]} instead of {b[0]} {b[3:]}" if (a[0], a[3:]) != (b[0], b[3:]) else ""))
    if len(new[0]) != len(old[0]):
        out.append(f"{len(new[0])} calls instead of {len(old[0])}")
    if new[1] != old[1]:
        out.append(f"findings {new[1]} instead of {old[1]}")
    return f"{name}: " + "; ".join(out)


@pytest.mark.interop
def test_script_makes_the_secure_and_websocket_cases(tmp_path):
    """sctp_calls (usrsctp), ws_calls and ws_refused (kamailio websocket), srtp_wrong_key (baresip
    and kamailio rewriting the key) and tls_calls (kamailio tls, the client's key log), made again
    from the real peers: each new capture gets the verdict the committed one gets."""
    import ctypes.util

    if os.geteuid() != 0:
        pytest.skip("make_pcaps.sh needs root for its network namespaces")
    for tool in ("sipp", "tcpdump", "ip", "kamailio", "baresip", "openssl", "sox", "tshark"):
        require_binary(tool)
    if ctypes.util.find_library("usrsctp") is None:
        require_binary("libusrsctp")  # skips, or fails under SIPTOOL_REQUIRE_PEERS (Debian libusrsctp2)
    cases = ["sctp_calls", "ws_calls", "srtp_wrong_key", "tls_calls"]
    env = dict(os.environ, SIPTOOL_FX_OUT=str(tmp_path), PYTHON=sys.executable)
    r = subprocess.run([str(SCRIPT), *cases], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    for name in cases + ["ws_refused"]:
        assert (tmp_path / f"{name}.pcap").stat().st_size < 200_000
        new, old = verdict(tmp_path / f"{name}.pcap"), verdict(FIXTURES / f"{name}.pcap")
        assert new == old, differences(name, new, old)
    new = verdict(tmp_path / "tls_calls.pcap", tmp_path / "tls_calls.keys")
    old = verdict(FIXTURES / "tls_calls.pcap", FIXTURES / "tls_calls.keys")
    assert new == old, differences("tls_calls (decrypted)", new, old)
