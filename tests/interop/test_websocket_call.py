"""`siptool call --transport ws|wss` (SIP over WebSocket, RFC 7118) to kamailio's websocket module,
which relays over UDP to siptool echo: the handshake, masked frames, SRTP media both ways; tcpdump's
capture of it reads as WS (WSS with the key log the call wrote), and so does the call's own pcap."""

from __future__ import annotations

import json

import pytest
from interop.secure_lab import SecureLab


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    lab = SecureLab(tmp_path_factory.mktemp("ws"), "ws")
    try:
        lab.kamailio()
        lab.echo("--ring", "0.2")  # kamailio's two workers could relay a 180 and a 200 at once out of order
        yield lab
    finally:
        lab.close()


@pytest.mark.parametrize("kind, port", [("ws", 8080), ("wss", 8443)])
def test_call_over_websocket_through_kamailio(lab, kind, port):
    cert, _ = lab.certificate()
    keys, own = lab.dir / f"{kind}.keys", lab.dir / f"{kind}-own.pcap"
    secure = ["--ca-file", cert, "--sni", "sip.example.test", "--tls-keylog", keys] if kind == "wss" else []
    capture = lab.capture(kind, f"tcp port {port}").start()
    proc = lab.siptool("call", "sip:alice@127.0.0.1", "--proxy", f"sip:127.0.0.1:{port};transport={kind}",
                       "--srtp", "mandatory", "-d", "1.5", "--pcap", own, "--json", *secure,
                       "--mos", "1", "--jitter", "1000")  # judged here: the transport and SRTP, not the machine's load
    pcap = capture.stop()
    res = json.loads(proc.stdout)
    assert res["ok"], (res["error"], res["problems"], proc.stderr[-1000:])
    label = kind.upper()
    call = res["call"]
    assert {s["transport"] for s in call["ladder"]} == {label} and len(call["ladder"]) >= 7
    assert res["rx"]["packets"] > 60 and call["agent"]["srtp"]["suite"] == "AEAD_AES_128_GCM"
    codes = {f["code"] for f in res["findings"]}
    assert ("security.srtp_keys_cleartext" in codes) == (kind == "ws")  # WS is clear, WSS is not
    # tcpdump's view of the connection: the Upgrade, then SIP in frames (decrypted with the key log)
    opened = ["--tls-keylog", keys] if kind == "wss" else []
    seen = json.loads(lab.siptool("analyze", pcap, "--json", *opened).stdout)
    (captured,) = seen["calls"]
    assert captured["call_id"] == res["call_id"] and {s["transport"] for s in captured["ladder"]} == {label}
    assert [f["code"] for f in seen["findings"]] == ["capture.no_media"]  # (filtered out); no ws.*, sip.tls
    assert not any(f["code"].startswith("ws.") for f in captured["findings"])
    # the call's own pcap: its WebSocket bytes as TCP (the TLS of WSS is not in it)
    mine = json.loads(lab.siptool("analyze", own, "--json").stdout)
    assert {s["transport"] for s in mine["calls"][0]["ladder"]} == {"WS"}
