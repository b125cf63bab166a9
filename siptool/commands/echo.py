"""`siptool echo`: the built-in echo agent (answers calls, echoes RTP to its source)."""

from __future__ import annotations

import asyncio
import gc
import sys
import signal
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import List, Optional

import typer

from ..errors import SiptoolError
from .call import read_password
from .common import codec_list, epilog, guarded

EPILOG = epilog([
    ("", "siptool echo --listen 127.0.0.1:5060"),
    ("challenge calls (digest) with a password from the environment",
     "SIP_PW=pw siptool echo -l 0.0.0.0:5080 --user alice --password-env SIP_PW"),
    ("over TLS", "siptool echo -l 127.0.0.1:5061 -t tls --cert cert.pem --key key.pem"),
    ("behind a firewall: forward UDP 5060, 40000 and 40001", "siptool echo --listen 0.0.0.0:5060 --media-port 40000"),
    ("a trunk that refuses every call (failover tests)", "siptool echo -l 127.0.0.1:5070 --reject 503 --retry-after 30"),
    ("every packet to a file, each call analysed in full (media too)", "siptool echo --pcap echo.pcap"),
    ("a voice agent (latency tests): greets 0.8 s after answering, replies 0.6 s (the default) after the caller stops",
     "siptool echo --greeting hi.wav --greeting-delay 0.8 --reply ok.wav"),
    ("Prometheus metrics at http://HOST:9466/metrics", "siptool echo -l 0.0.0.0:5060 --metrics 0.0.0.0:9466"),
],  "Every call's media uses one RTP port (and the next for RTCP), echoed in batches as SIPp's -rtp_echo "
    "does; --port-per-call gives each call a port pair of its own instead.",
    "For test suites (the one siptool check --init writes passes against it): the number \"ring\" "
    "(sip:ring@HOST:PORT, or ring-...) rings and is never answered: 180 Ringing, 487 to a CANCEL, 480 after "
    "60 s. REGISTER is answered as by a minimal registrar: 200 with the bindings (Contact;expires) and Expires "
    "(at most 3600 s), kept in memory (at most 1000 addresses of record, 10 contacts each). With --user, "
    "REGISTER and INVITE are challenged (401 digest, SHA-256 and MD5) and a wrong password gets 403 "
    "Forbidden; without --user every REGISTER is accepted.",
    "Safe to leave on a public address: every message is checked before use (malformed requests get 400 "
    "with the reason; nothing is sent to an address taken from a message other than where it came from), "
    "each source host gets --rate messages per second, at most --max-calls calls run at once, and memory "
    "follows the calls in progress. See the README's Security section.",
    "Prints one line per call; Ctrl-C hangs up the calls in progress and exits 0. Exit codes: 0 stopped; "
    "2 bad arguments or the address cannot be listened on; 3 internal error.")


def echo(
    listen: str = typer.Option("127.0.0.1:5060", "--listen", "-l", help="HOST:PORT to listen on."),
    transport: str = typer.Option("udp", "--transport", "-t", help="udp, tcp or tls."),
    user: Optional[str] = typer.Option(None, "--user", "-u", help="Challenge INVITEs and REGISTERs (401 digest) for this user."),
    password_env: Optional[str] = typer.Option(None, "--password-env", help="Environment variable holding the password."),
    password_file: Optional[Path] = typer.Option(None, "--password-file", help="File whose first line is the password."),
    codec: Optional[List[str]] = typer.Option(None, "--codec", help="Codec to accept: pcmu, pcma, g722, opus; "
                                              "repeat for more (default: all four; the caller's order wins)."),
    cert: Optional[Path] = typer.Option(None, "--cert", help="TLS certificate (PEM)."),
    key: Optional[Path] = typer.Option(None, "--key", help="TLS key (PEM)."),
    ring: float = typer.Option(0.0, "--ring", help="Seconds of 180 Ringing before answering."),
    hangup_after: Optional[float] = typer.Option(None, "--hangup-after", help="Send BYE after this many seconds."),
    media_port: int = typer.Option(0, "--media-port", help="RTP port shared by every call (RTCP on the next); "
                                   "0: any free even port. One port pair to open in a firewall or NAT."),
    port_per_call: bool = typer.Option(False, "--port-per-call", help="Give each call its own RTP/RTCP port "
                                       "pair, as most user agents do (fewer concurrent calls)."),
    rate: float = typer.Option(500.0, "--rate", help="SIP messages per second one source host may send "
                               "(bursts of 4x); beyond, its messages are dropped. 0: no limit."),
    max_calls: int = typer.Option(5000, "--max-calls", help="Calls in progress at once; more get 503."),
    greeting: Optional[str] = typer.Option(None, "--greeting", metavar="WAV|WORDS", help="Be a voice agent, not "
                                           "an echo: say this when answering (a .wav file, or words spoken by "
                                           "espeak-ng), then reply to each thing the caller says."),
    greeting_delay: float = typer.Option(0.5, "--greeting-delay", metavar="S", help="Voice agent: from the "
                                         "answer to the greeting."),
    reply: Optional[List[str]] = typer.Option(None, "--reply", metavar="WAV|WORDS", help="Voice agent: what it "
                                              "says when the caller stops speaking (repeat: said in turn)."),
    reply_gap: float = typer.Option(0.6, "--reply-gap", metavar="S", help="Voice agent: from the end of the "
                                    "caller's speech to the reply (exact from 0.35 s: it takes 0.3 s of silence "
                                    "to know the caller stopped)."),
    talk_over: bool = typer.Option(False, "--talk-over", help="Voice agent: keep speaking when the caller barges "
                                   "in (default: stop, as barge-in handling does)."),
    reject: Optional[int] = typer.Option(None, "--reject", help="Answer every INVITE with this final status "
                                         "(400-699), e.g. 503: a trunk that refuses calls (failover tests)."),
    retry_after: Optional[int] = typer.Option(None, "--retry-after", help="With --reject 503: the Retry-After "
                                              "seconds it carries (RFC 3261 21.5.4)."),
    pcap: Optional[Path] = typer.Option(None, "--pcap", help="Write every packet sent and received (SIP and RTP) "
                                        "to this file, and analyse each call's media too (its line gets the "
                                        "figures). Costs capacity: media then takes a port pair per call."),
    metrics: Optional[str] = typer.Option(None, "--metrics", metavar="ADDR:PORT", help="Serve Prometheus "
                                          "metrics at http://ADDR:PORT/metrics: calls, echoed packets, refusals."),
) -> None:
    """Answer calls and echo their audio back (a far end for siptool call and SIPp)."""
    with guarded():
        from ..agent import inputs, mmsg
        from ..agent.echo import EchoServer
        from ..agent.transport import TlsOptions
        from ..report.agent_view import echo_line

        host, port = inputs.host_port("--listen", listen, allow_zero=True)
        host = inputs.local_address("--listen", host) if host not in ("0.0.0.0", "::") else host
        kind = transport.lower()
        if kind not in ("udp", "tcp", "tls"):
            raise SiptoolError(f"--transport {transport}: use udp, tcp or tls")
        password = read_password(password_env, password_file)
        if user and password is None:
            raise SiptoolError("--user needs --password-env or --password-file")
        inputs.number("--ring", ring, 0, 3600, unit="s")
        inputs.number("--media-port", media_port, 0, 65534)
        inputs.number("--rate", rate, 0, 1_000_000)
        inputs.number("--max-calls", max_calls, 1, 1_000_000)
        if reject is not None:
            inputs.number("--reject", reject, 400, 699)
        if retry_after is not None:
            if reject != 503:
                raise SiptoolError("--retry-after goes with --reject 503")
            inputs.number("--retry-after", retry_after, 1, 86400, unit="s")
        served = inputs.host_port("--metrics", metrics, allow_zero=True) if metrics is not None else None
        if hangup_after is not None:
            inputs.number("--hangup-after", hangup_after, 0, 86400, above=True, unit="s")
        tls = None
        if kind == "tls":
            if not cert or not key:
                raise SiptoolError("--transport tls needs --cert FILE and --key FILE (PEM)")
            tls = TlsOptions(cert_file=inputs.readable("--cert", cert), key_file=inputs.readable("--key", key))
            try:
                tls.server_context()
            except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
                raise SiptoolError(f"TLS: cannot load --cert/--key: {exc}") from None
        from ..rtp.codecs import AGENT

        codecs = codec_list(codec, AGENT)
        plan = voice_plan(greeting, greeting_delay, reply or [], reply_gap, talk_over)
        if pcap:
            inputs.writable("--pcap", pcap)
        shared = not port_per_call and plan is None and not pcap and mmsg.available()  # recvmmsg/sendmmsg: Linux
        if shared:
            # The echo thread and the SIP event loop share the GIL: hand it over every 0.5 ms, not 5 ms,
            # so that an echoed batch never waits behind the loop for more than that.
            sys.setswitchinterval(0.0005)
        # With default thresholds the collector runs a full pass over all calls' objects every few
        # seconds, a pause of milliseconds that shows as echo delay. Collect young objects rarely; the
        # agent's objects live as long as its calls.
        gc.set_threshold(50_000, 50, 100)
        asyncio.run(_serve(EchoServer((host, port), kind, user, password, codecs=codecs, ring=ring,
                                      hangup_after=hangup_after, tls=tls, on_call=lambda c: typer.echo(echo_line(c)),
                                      media_port=media_port if shared else None, rate=rate,
                                      max_calls=max_calls, on_error=lambda s: typer.echo(s, err=True),
                                      reject=reject, retry_after=retry_after,
                                      agent=plan, pcap=str(pcap) if pcap else None), served))


def voice_plan(greeting, delay: float, replies: list[str], gap: float, talk_over: bool):
    """The voice agent's plan (agent/voice_agent.py), its WAVs read and its words spoken now; None
    when it is an echo."""
    from ..agent import inputs, prompts
    from ..agent.voice_agent import AgentPlan

    if greeting is None and not replies:
        for name, given in (("--talk-over", talk_over), ("--greeting-delay", delay != 0.5), ("--reply-gap", gap != 0.6)):
            if given:
                raise SiptoolError(f"{name} is for the voice agent: give --greeting and/or --reply")
        return None
    inputs.number("--greeting-delay", delay, 0, 3600, unit="s")
    inputs.number("--reply-gap", gap, 0, 3600, unit="s")
    said = prompts.load_all([t for t in [greeting, *replies] if t is not None], "--greeting/--reply")
    first = said[greeting] if greeting is not None else None
    return AgentPlan(greeting=(first.samples, first.rate) if first else None,
                     replies=tuple((said[t].samples, said[t].rate) for t in replies), delay_s=delay, gap_s=gap,
                     talk_over=talk_over, names=(first.label if first else "",
                                                 *(said[t].label for t in replies)))


async def _serve(server, metrics: tuple[str, int] | None = None) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    with _metrics(server, metrics) if metrics is not None else nullcontext():
        async with server:
            media = f", media on port {server.shared.port}" if server.shared else ", media on a port pair per call"
            typer.echo(f"siptool echo: listening on {server.ua.kind.upper()} {server.ua.local[0]}:{server.port}"
                       f"{media} (Ctrl-C to stop)", err=True)
            await stop.wait()
            typer.echo(f"siptool echo: stopping, {len(server.calls)} call(s) in progress", err=True)
    typer.echo(f"siptool echo: {len(server.finished)} call(s) handled", err=True)


@contextmanager
def _metrics(server, address: tuple[str, int]):
    """--metrics: the echo's figures (agent/echo_metrics.py) served for Prometheus while it runs."""
    from ..agent.echo_metrics import EchoMetrics
    from ..report.prometheus import Exporter

    exporter = Exporter(echo=True)
    http = exporter.serve(*address)
    ticks = asyncio.ensure_future(EchoMetrics(server, exporter.apply).run())
    typer.echo(f"siptool echo: Prometheus metrics at http://{address[0]}:{http.server_port}/metrics", err=True)
    try:
        yield
    finally:
        ticks.cancel()
        http.shutdown()
        http.server_close()


def register(app: typer.Typer) -> None:
    app.command("echo", epilog=EPILOG)(echo)
