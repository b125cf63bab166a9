"""RFC 3263 server location, sans-I/O: the questions asked for each kind of URI and the servers their
answers give (a DNS in a dict), and RFC 2782's weighted order checked as a distribution."""

from __future__ import annotations

import math
import random

import pytest

from siptool.sip.locate import LocateError, Naptr, Srv, locate
from siptool.sip.uri import parse_uri

ZONE = {
    ("trunk.example", "NAPTR"): [Naptr(20, 10, "s", "SIP+D2U", "_sip._udp.trunk.example"),
                                 Naptr(10, 10, "s", "SIP+D2T", "_sip._tcp.trunk.example"),
                                 Naptr(5, 10, "u", "E2U+sip", "!^.*$!sip:info@example!"),
                                 Naptr(10, 5, "s", "SIPS+D2T", "_sips._tcp.trunk.example")],
    ("_sip._tcp.trunk.example", "SRV"): [Srv(10, 60, 5070, "a.trunk.example"), Srv(10, 40, 5072, "b.trunk.example"),
                                         Srv(20, 0, 5074, "c.trunk.example")],
    ("_sips._tcp.trunk.example", "SRV"): [Srv(10, 0, 5061, "a.trunk.example")],
    ("_sip._udp.trunk.example", "SRV"): [Srv(10, 0, 5060, "a.trunk.example")],
    ("a.trunk.example", "A"): ["192.0.2.1"], ("b.trunk.example", "A"): ["192.0.2.2"],
    ("b.trunk.example", "AAAA"): ["2001:db8::2"], ("c.trunk.example", "A"): ["192.0.2.3"],
    ("trunk.example", "A"): ["192.0.2.9"],
    ("srvonly.example", "NAPTR"): [],
    ("_sip._tcp.srvonly.example", "SRV"): [Srv(1, 1, 5080, "a.trunk.example")],
    ("plain.example", "A"): ["192.0.2.7"],
}


def run(uri: str, transport: str | None = None, zone=ZONE):
    """The servers located, and every question asked, in order."""
    asked = []
    steps = locate(parse_uri(uri), transport)
    try:
        q = next(steps)
        while True:
            asked.append((q.name, q.rdtype))
            q = steps.send(list(zone.get((q.name, q.rdtype), [])))
    except StopIteration as done:
        return done.value, asked


def addrs(res):
    return [(s.address, s.port, s.transport) for s in res.servers]


def test_naptr_picks_the_lowest_order_then_preference_of_a_sip_service():
    """Flag "u" (ENUM) is not for us; of the rest, order 10 preference 5 comes first: SIPS+D2T, which a
    sip: URI may use too (RFC 3263 4.1)."""
    res, asked = run("sip:100@trunk.example")
    assert asked[:2] == [("trunk.example", "NAPTR"), ("_sips._tcp.trunk.example", "SRV")]
    assert res.transport == "tls" and addrs(res) == [("192.0.2.1", 5061, "tls")]


def test_naptr_order_over_preference():
    zone = {**ZONE, ("trunk.example", "NAPTR"): [Naptr(20, 1, "s", "SIP+D2U", "_sip._udp.trunk.example"),
                                                 Naptr(10, 9, "s", "SIP+D2T", "_sip._tcp.trunk.example")]}
    res, asked = run("sip:100@trunk.example", zone=zone)
    assert res.transport == "tcp" and asked[1] == ("_sip._tcp.trunk.example", "SRV")
    assert addrs(res) == [("192.0.2.1", 5070, "tcp"), ("192.0.2.2", 5072, "tcp"), ("2001:db8::2", 5072, "tcp"),
                          ("192.0.2.3", 5074, "tcp")]
    assert {s.found for s in res.servers} == {"NAPTR+SRV"}


def test_sips_takes_only_sips_d2t():
    res, asked = run("sips:100@trunk.example")
    assert res.transport == "tls" and asked[1] == ("_sips._tcp.trunk.example", "SRV")
    assert addrs(res) == [("192.0.2.1", 5061, "tls")]


def test_numeric_host_asks_nothing():
    res, asked = run("sip:100@192.0.2.50")
    assert asked == [] and addrs(res) == [("192.0.2.50", 5060, "udp")] and res.servers[0].found == "numeric"
    res, asked = run("sips:100@[2001:db8::5]:5071")
    assert asked == [] and addrs(res) == [("2001:db8::5", 5071, "tls")]


def test_explicit_port_skips_naptr_and_srv():
    res, asked = run("sip:100@trunk.example:5099")
    assert asked == [("trunk.example", "A"), ("trunk.example", "AAAA")]
    assert addrs(res) == [("192.0.2.9", 5099, "udp")]


def test_transport_given_skips_naptr():
    res, asked = run("sip:100@trunk.example;transport=udp")
    assert asked[0] == ("_sip._udp.trunk.example", "SRV") and res.transport == "udp"
    res, asked = run("sip:100@trunk.example", transport="tcp")
    assert asked[0] == ("_sip._tcp.trunk.example", "SRV") and res.transport == "tcp"


def test_no_naptr_tries_srv_for_each_transport_in_turn():
    res, asked = run("sip:100@srvonly.example")
    assert asked[:3] == [("srvonly.example", "NAPTR"), ("_sip._udp.srvonly.example", "SRV"),
                         ("_sip._tcp.srvonly.example", "SRV")]
    assert res.transport == "tcp" and addrs(res) == [("192.0.2.1", 5080, "tcp")] and res.servers[0].found == "SRV"


def test_no_naptr_no_srv_is_the_host_on_the_default_port():
    res, asked = run("sip:100@plain.example")
    assert asked[-2:] == [("plain.example", "A"), ("plain.example", "AAAA")]
    assert addrs(res) == [("192.0.2.7", 5060, "udp")] and "no SRV records" in res.steps[-1]
    res, _ = run("sips:100@plain.example")
    assert addrs(res) == [("192.0.2.7", 5061, "tls")]


def test_sips_over_udp_is_refused():
    with pytest.raises(LocateError):
        run("sips:100@plain.example;transport=udp")
    with pytest.raises(LocateError):
        run("sip:100@plain.example", transport="sctp")


def test_a_target_of_dot_means_no_service():
    zone = {("x.example", "NAPTR"): [], ("_sip._udp.x.example", "SRV"): [Srv(0, 0, 0, ".")],
            ("x.example", "A"): ["192.0.2.4"]}
    res, _ = run("sip:1@x.example", zone=zone)
    assert addrs(res) == [("192.0.2.4", 5060, "udp")]


def test_priority_first_then_weighted_draw():
    res, _ = run("sip:100@trunk.example", transport="tcp")
    rng = random.Random(7)
    seen = set()
    for _ in range(50):
        names = [s.name for s in res.order(rng)]
        entries = [n for i, n in enumerate(names) if i == 0 or names[i - 1] != n]  # b's two addresses together
        assert sorted(entries[:2]) == ["a.trunk.example", "b.trunk.example"] and entries[2:] == ["c.trunk.example"]
        seen.add(entries[0])
    assert seen == {"a.trunk.example", "b.trunk.example"}


def test_weights_split_the_first_choice_in_proportion():
    """RFC 2782: weight 60 and 40 at one priority; the first server of 2000 draws is `a` with
    probability 61/101 (the draw is 0..100 inclusive: 0..60 picks a), within 4 standard deviations."""
    res, _ = run("sip:100@trunk.example", transport="tcp")
    rng = random.Random(2782)
    n = 2000
    first_a = sum(res.order(rng)[0].name == "a.trunk.example" for _ in range(n))
    p = 61 / 101
    assert abs(first_a - n * p) < 4 * math.sqrt(n * p * (1 - p))


def test_a_zero_weight_is_drawn_first_now_and_then():
    """RFC 2782: weight 0 next to weight 10 is first in the draw (0..10) only when the draw is 0."""
    zone = {("z.example", "NAPTR"): [], ("_sip._udp.z.example", "SRV"): [Srv(1, 10, 5060, "a.trunk.example"),
                                                                         Srv(1, 0, 5062, "c.trunk.example")],
            **{k: v for k, v in ZONE.items() if k[1] in ("A", "AAAA")}}
    res, _ = run("sip:1@z.example", zone=zone)
    rng = random.Random(11)
    n, p = 2200, 1 / 11
    zero_first = sum(res.order(rng)[0].name == "c.trunk.example" for _ in range(n))
    assert abs(zero_first - n * p) < 4 * math.sqrt(n * p * (1 - p))



from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from siptool.agent.failover import retry_after  # noqa: E402
from siptool.sip.message import parse  # noqa: E402

NAMES = st.sampled_from(["a.example", "b.example", "", ".", "c.example"])
SRVS = st.lists(st.builds(Srv, st.integers(0, 65535), st.integers(0, 65535), st.integers(0, 65535), NAMES), max_size=6)
NAPTRS = st.lists(st.builds(Naptr, st.integers(0, 65535), st.integers(0, 65535), st.sampled_from(["s", "S", "u", ""]),
                            st.sampled_from(["SIP+D2U", "SIP+D2T", "SIPS+D2T", "SIP+D2S", "x"]), NAMES), max_size=4)


@settings(max_examples=200, deadline=None)
@given(NAPTRS, SRVS, st.lists(st.sampled_from(["192.0.2.1", "2001:db8::1"]), max_size=3),
       st.sampled_from(["sip:1@x.example", "sips:1@x.example", "sip:1@x.example;transport=tcp"]), st.integers(0, 99))
def test_any_answers_give_servers_in_a_drawn_order(naptr, srv, addresses, uri, seed):
    """Whatever a DNS server answers, location ends in a Resolution, and each draw orders every
    server found exactly once."""
    zone = {("x.example", "NAPTR"): naptr}
    for name in ("a.example", "b.example", "c.example", "x.example"):
        zone[(name, "A")] = [a for a in addresses if ":" not in a]
        zone[(name, "AAAA")] = [a for a in addresses if ":" in a]

    class Zone(dict):
        def get(self, key, default=None):
            return srv if key[1] == "SRV" else dict.get(self, key, default)

    res, _ = run(uri, zone=Zone(zone))
    order = res.order(random.Random(seed))
    assert sorted(map(repr, order)) == sorted(map(repr, res.servers))
    assert res.transport in ("udp", "tcp", "tls") and (not uri.startswith("sips") or res.transport == "tls")


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=30))
def test_retry_after_reads_any_header_value(value):
    msg = parse(f"SIP/2.0 503 Service Unavailable\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n"
                f"Call-ID: x\r\nCSeq: 1 INVITE\r\nRetry-After: {value}\r\nContent-Length: 0\r\n\r\n".encode())
    got = retry_after(msg)
    assert got is None or 0 <= got <= 3600
