"""siptool call / echo against SIPp (sip-tester) and kamailio, all on loopback."""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path

import pytest
from check.lab import _wait_sip
from interop.peers import HERE, free_port

from siptool.agent import CallOptions, EchoServer, place_call
from siptool.report.agent_view import event_text


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


def _scenario(sipp, name, tmp_path, *replacements):
    """A built-in SIPp scenario (sipp -sd NAME) with shorter pauses, so the tests stay quick."""
    text = subprocess.run([sipp, "-sd", name], capture_output=True, text=True).stdout  # exits 99 after a dump
    for old, new in replacements:
        assert old in text, old
        text = text.replace(old, new)
    path = tmp_path / f"{name}.xml"
    path.write_text(text)
    return path


def _uas(sipp, peers, tmp_path, *extra):
    port, mport = free_port(), free_port(pair=True)
    sf = _scenario(sipp, "uas", tmp_path, ('<timewait milliseconds="4000"/>', '<timewait milliseconds="200"/>'))
    peer = peers([sipp, "-sf", sf, "-i", "127.0.0.1", "-p", port, "-mi", "127.0.0.1", "-mp", mport, "-m", "1",
                  "-nostdin", "-timeout", "30s", *extra], settle=0.5)
    return peer, port


def test_call_to_sipp_uas_reports_one_way_audio(sipp, peers, tmp_path):
    """SIPp's uas answers but sends no RTP: the call is answered, media fails as one-way."""
    peer, port = _uas(sipp, peers, tmp_path)
    res = run(place_call(CallOptions(uri=f"sip:service@127.0.0.1:{port}", duration=1.0)))
    assert res.status == 200 and res.codec == "PCMU" and res.ended_by == "local"
    assert res.tx.packets > 40 and res.rx.packets == 0
    assert not res.ok and res.one_way.startswith("no audio received")
    # the Analyzer, fed the call's own packets, says what analyze would: the caller hears nothing
    one_way = [f for f in res.findings if f.code == "media.one_way"]
    assert one_way and one_way[0].severity == "error" and "hears nothing" in one_way[0].title
    assert sum("one-way" in p.lower() or "hears nothing" in p for p in res.problems) == 1  # said once
    assert peer.wait(10) == 0  # SIPp counted one successful call (it saw our ACK and BYE)


def test_call_to_sipp_uas_rtp_echo(sipp, peers, tmp_path):
    from agent.helpers import check_reflected_reports
    from siptool.drivers.files import analyze_file

    peer, port = _uas(sipp, peers, tmp_path, "-rtp_echo")
    res = run(place_call(CallOptions(uri=f"sip:service@127.0.0.1:{port}", duration=1.5, pcap=str(tmp_path / "c.pcap"))))
    assert res.ok, (res.error, res.problems)
    assert res.rx.packets >= res.tx.packets - 2 and res.rx.mos >= 4.0
    assert res.rtt_ms is not None and res.rtt_ms < 200
    assert peer.wait(10) == 0
    # SIPp echoes our packets as they are, SSRC and all: our report is about the stream coming back
    check_reflected_reports(tmp_path / "c.pcap", analyze_file(tmp_path / "c.pcap"))


@pytest.mark.parametrize("media_port", [None, 0])
def test_sipp_uac_pcap_to_siptool_echo(sipp, peers, tmp_path, media_port):
    """SIPp plays G.711 A-law from a pcap; siptool echo answers and sends every packet back to SIPp
    (media_port 0: on the one port pair all calls share, as `siptool echo` runs)."""
    share = Path("/usr/share/sip-tester")
    if not (share / "g711a.pcap").exists():
        pytest.skip("sip-tester's g711a.pcap is not installed")
    (tmp_path / "pcap").mkdir()
    for f in ("g711a.pcap", "dtmf_2833_1.pcap"):
        os.symlink(share / f, tmp_path / "pcap" / f)
    _scenario(sipp, "uac_pcap", tmp_path, ('milliseconds="8000"', 'milliseconds="2000"'),
              ('milliseconds="1000"', 'milliseconds="300"'))
    mport = free_port(pair=True)

    async def go():
        async with EchoServer(("127.0.0.1", 0), codecs=("PCMU", "PCMA"), media_port=media_port) as echo:
            peer = peers([sipp, f"127.0.0.1:{echo.port}", "-sf", "uac_pcap.xml", "-i", "127.0.0.1", "-p",
                          free_port(), "-mi", "127.0.0.1", "-mp", mport, "-m", "1", "-nostdin", "-timeout", "30s"],
                         cwd=tmp_path)
            while peer.proc.poll() is None:
                await asyncio.sleep(0.1)
            peer.wait(5)
            return peer, list(echo.finished)
    peer, calls = run(go())
    assert peer.proc.returncode == 0, peer.output[-2000:]
    assert len(calls) == 1 and calls[0].codec == "PCMA" and calls[0].ended_by == "remote"
    # ~2.3 s of the pcap (about 33 packets/s) were played: every packet went back to SIPp's media port
    assert calls[0].packets_echoed > 50
    assert calls[0].media.remote == ("127.0.0.1", mport)


def test_call_through_kamailio_with_407_to_echo(kamailio, peers, tmp_path):
    kport, eport = free_port(), free_port()
    cfg = (HERE / "kamailio.cfg").read_text()
    for k, v in (("LISTEN_PORT", kport), ("ECHO_PORT", eport), ("PASSWORD", "s3cret"), ("ALGORITHM", "SHA-256")):
        cfg = cfg.replace(f"@{k}@", str(v))
    (tmp_path / "k.cfg").write_text(cfg)
    peers([kamailio, "-f", tmp_path / "k.cfg", "-DD", "-E", "-m", "32", "-M", "8", "-Y", tmp_path, "-P",
           tmp_path / "pid"])
    _wait_sip(kport)  # until kamailio answers (a fixed pause was too short on a loaded machine)

    async def go(password):
        async with EchoServer(("127.0.0.1", eport)) as echo:
            res = await place_call(CallOptions(uri="sip:100@127.0.0.1", proxy=f"sip:127.0.0.1:{kport}", user="alice",
                                               password=password, duration=1.5, dtmf="7"))
            return res, list(echo.finished)
    res, calls = run(go("s3cret"))
    assert res.ok, (res.error, res.problems)
    assert res.auth == "407" and res.status == 200 and res.rx.packets > 50 and res.rtt_ms is not None
    assert "<- 407 Proxy Authentication Required" in [event_text(e) for e in res.events]
    assert len(calls) == 1 and calls[0].remote[1] == kport  # the INVITE came through kamailio
    res, calls = run(go("wrong"))
    assert not res.ok and res.status == 407 and "authentication failed" in res.error and not calls


BARESIP_CONFIG = """sip_listen 127.0.0.1:{port}
net_interface 127.0.0.1
audio_player aubridge,loop
audio_source aubridge,loop
audio_alert aubridge,alert
module_path /usr/lib/baresip/modules
module g711.so
module aubridge.so
module account.so
module menu.so
rtp_ports {rtp}-{rtp_end}
"""


def test_call_to_baresip_auto_answer_echo(peers, tmp_path):
    """baresip headless: auto-answer account, aubridge plays what it receives back as its source (an echo
    through baresip's jitter buffer and audio pipeline), so the round trip is measurable."""
    from support import require_binary

    baresip = require_binary("baresip")
    if not Path("/usr/lib/baresip/modules/aubridge.so").exists():
        pytest.skip("baresip's aubridge module is not installed")
    port, rtp = free_port(), free_port(pair=True)
    (tmp_path / "config").write_text(BARESIP_CONFIG.format(port=port, rtp=rtp, rtp_end=rtp + 9))
    (tmp_path / "accounts").write_text("<sip:bob@127.0.0.1>;regint=0;answermode=auto;audio_codecs=PCMU,PCMA\n")
    peer = peers([baresip, "-f", tmp_path], settle=1.0)
    res = run(place_call(CallOptions(uri=f"sip:bob@127.0.0.1:{port}", duration=2.5, codecs=("PCMA", "PCMU"))))
    assert res.ok, (res.error, res.problems, peer.stop()[-1500:])
    assert res.codec == "PCMA" and res.rx.packets > 80 and res.rx.mos >= 4.0
    assert res.rtt_ms is not None and 20 < res.rtt_ms < 1000  # jitter buffer + audio loop inside baresip


def test_dtmf_to_sipp_uas_blames_the_answer_without_telephone_event(sipp, peers, tmp_path):
    """SIPp's uas answers with PCMU alone: no RFC 4733 digits can be sent, and the verdict says why."""
    peer, port = _uas(sipp, peers, tmp_path, "-rtp_echo")
    res = run(place_call(CallOptions(uri=f"sip:service@127.0.0.1:{port}", duration=1.5, dtmf="12")))
    assert res.status == 200 and res.dtmf_sent == "" and not res.ok
    assert res.problems == ["DTMF: sent '' of '12': the answer has no telephone-event (RFC 4733), so no digits "
                            "were sent"]
    assert peer.wait(10) == 0
