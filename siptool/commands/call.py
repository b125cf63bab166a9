"""`siptool call URI`: place a test call (or N concurrent calls) and judge signalling and media."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
from pathlib import Path
from typing import List, Optional

import typer

from ..errors import SiptoolError
from ..status import ExitStatus
from .common import codec_list, console, epilog, guarded

EPILOG = epilog([
    ("", "siptool call sip:100@127.0.0.1:5060"),
    ("over TLS with digest credentials from the environment",
     "SIP_PW=pw siptool call sips:100@sbc.example -u bob --password-env SIP_PW"),
    ("through an outbound proxy, A-law only, with DTMF",
     "siptool call sip:100@10.0.0.5 --proxy sip:10.0.0.1 --codec PCMA --dtmf 123#"),
    ("keep what came back, the call's own packets and a JSON result",
     "siptool call sip:echo@127.0.0.1 --record heard.wav --pcap call.pcap --json"),
    ("capacity: 50 calls at 10 a second", "siptool call sip:100@127.0.0.1 --calls 50 --rate 10 -d 20"),
    ("capacity ramp: 10, 20 ... 100 calls at once, 20 s each", "siptool call sip:100@10.0.0.5 --ramp 10:10:100 "
     "--hold 20 --cps 20"),
    ("behind NAT", "siptool call sip:+15551234567@trunk.example.com --stun stun.example.net"),
    ("a trunk by its domain (RFC 3263); the next server after 2 s without an answer",
     "siptool call sip:100@trunk.example --dns-server 10.0.0.53 --target-timeout 2"),
    ("a voice agent: its greeting, then two prompts and how fast it answers each",
     'siptool call sip:bot@pbx --codec opus --say hi.wav --say "Opening hours?"'),
    ("the same as a CI gate, with a script file (docs/voice-agents.md)",
     "siptool call sip:bot@pbx --script test.txt --max-response-ms 1200 --json"),
],  "The local address is the one the kernel routes to the first hop from (--local-ip overrides). Behind "
    "NAT, an OPTIONS first shows (received/rport) the address the far end sees; Contact and SDP carry it. "
    "--stun asks a STUN server instead, --public-ip names the address. The summary says what it found.",
    "A trunk named by its domain is located as RFC 3263 says: NAPTR for the transport, SRV for the servers "
    "(by priority, then drawn by weight for each call), A/AAAA for their addresses; an explicit port or an "
    "address skips what does not apply. A server that gives a transport error, no response (timer B, or "
    "--target-timeout) or 503 is left for the next (a 503's Retry-After keeps the run's calls off it); "
    "every server tried is listed, with what happened and how long it took.",
    "Exit codes: 0 call answered and media met the thresholds; 1 call failed (no answer, rejected, timeout, "
    "nothing listening, one-way audio, media gaps, thresholds not met); 2 bad arguments (checked before "
    "anything is sent); 3 internal error. An answered call is always hung up (BYE), also on Ctrl-C, SIGTERM "
    "or an error.")


def read_password(env: str | None, file: Path | None,
                  options: tuple[str, str] = ("--password-env", "--password-file")) -> str | None:
    """Password from an environment variable or a file (first line); never from the command line.
    `options` name the two options in messages (siptool's one reader of secrets: SIP and HEP)."""
    env_option, file_option = options
    if env and file:
        raise SiptoolError(f"give {env_option} or {file_option}, not both")
    if env:
        value = os.environ.get(env)
        if value is None:
            raise SiptoolError(f"environment variable {env} (from {env_option}) is not set")
        return value
    if file:
        try:
            lines = file.read_text().splitlines()
        except OSError as exc:
            raise SiptoolError(f"cannot read {file_option} {file}: {exc.strerror}") from None
        except ValueError:
            raise SiptoolError(f"{file_option} {file}: not a text file") from None
        return lines[0] if lines else ""
    return None


def call(
    uri: str = typer.Argument(..., help="Request-URI: sip:NUMBER@HOST[:PORT] (sips: for TLS)."),
    transport: Optional[str] = typer.Option(None, "--transport", "-t", help="udp, tcp or tls (default from URI, else udp)."),
    from_uri: Optional[str] = typer.Option(None, "--from", help="From URI (default sip:USER@local-ip)."),
    user: Optional[str] = typer.Option(None, "--user", "-u", help="Digest user name."),
    password_env: Optional[str] = typer.Option(None, "--password-env", help="Environment variable holding the password."),
    password_file: Optional[Path] = typer.Option(None, "--password-file", help="File whose first line is the password."),
    proxy: Optional[str] = typer.Option(None, "--proxy", help="Outbound proxy URI, e.g. sip:10.0.0.1:5060."),
    codec: Optional[List[str]] = typer.Option(None, "--codec", help="Codec to offer: pcmu, pcma, g722 (RFC "
                                              "3551) or opus (RFC 7587); repeat for more, in order (default: "
                                              "pcmu, pcma)."),
    duration: Optional[float] = typer.Option(None, "--duration", "-d", help="Seconds of media after the answer "
                                             "(default 5; with --say or --script: until the script ends)."),
    dtmf: str = typer.Option("", "--dtmf", help="RFC 4733 digits to send 1 s after the answer (0-9*#A-D)."),
    play: Optional[Path] = typer.Option(None, "--play", help="16-bit WAV to send, repeated (default: speech-like signal)."),
    say: Optional[List[str]] = typer.Option(None, "--say", metavar="WAV|WORDS", help="A voice test: after the far "
                                            "end's greeting, say this (a .wav file, or words spoken by espeak-ng) "
                                            "and wait for its answer; repeat for more prompts."),
    pause: Optional[float] = typer.Option(None, "--pause", metavar="S", help="With --say: S seconds between the "
                                          "prompts instead of waiting for each answer."),
    script: Optional[Path] = typer.Option(None, "--script", metavar="FILE", help="A voice test from a file: "
                                          "lines say WAV|WORDS, pause S, wait [S] (docs/voice-agents.md)."),
    max_greeting: Optional[float] = typer.Option(None, "--max-greeting-ms", "--greeting-ms", metavar="MS",
                                                 help="Fail when the far end's first speech comes later than "
                                                      "this after the answer (default 2000; a voice test)."),
    max_response: Optional[float] = typer.Option(None, "--max-response-ms", "--response-ms", metavar="MS",
                                                 help="Fail when the far end answers a prompt later than this "
                                                      "after our speech ends (default 800; a voice test)."),
    max_talk_over: Optional[float] = typer.Option(None, "--max-talk-over-s", "--talk-over-s", metavar="S",
                                                  help="Fail when the far end keeps speaking this long over us "
                                                       "(default 1; a voice test)."),
    content: bool = typer.Option(True, "--content/--no-content", help="Decode the call's audio: who spoke when, "
                                 "levels, greeting and turn gaps (docs/content.md)."),
    record: Optional[Path] = typer.Option(None, "--record", help="Write the received audio to this WAV file."),
    pcap: Optional[Path] = typer.Option(None, "--pcap", help="Save the call's own SIP and RTP as a pcap (siptool analyze reads it)."),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
    calls: int = typer.Option(1, "--calls", "-n", help="Number of calls (capacity test)."),
    rate: float = typer.Option(1.0, "--rate", "-r", help="New calls per second with --calls."),
    ramp: Optional[str] = typer.Option(None, "--ramp", help="Capacity ramp START:STEP:MAX: levels of that many "
                                       "calls up at once, each held --hold s with media; stops at the first level "
                                       "that fails, and says the highest that passed (CCC) and why."),
    hold: float = typer.Option(5.0, "--hold", help="With --ramp: seconds every call of a level is up together."),
    cps: float = typer.Option(10.0, "--cps", help="With --ramp: new calls per second while a level builds up."),
    local_ip: Optional[str] = typer.Option(None, "--local-ip", help="Local address for SIP and RTP "
                                           "(default: the source address of the route to the first hop)."),
    public_ip: Optional[str] = typer.Option(None, "--public-ip", help="Behind NAT: advertise this address in "
                                            "Contact and SDP (default: learned from an OPTIONS' received/rport)."),
    stun: Optional[str] = typer.Option(None, "--stun", help="Behind NAT: learn the public address and RTP port "
                                       "from this STUN server, HOST[:PORT] (RFC 5389, UDP)."),
    insecure: bool = typer.Option(False, "--insecure", help="TLS: do not verify the server certificate."),
    ca_file: Optional[Path] = typer.Option(None, "--ca-file", help="TLS: CA bundle to verify the server with."),
    sni: Optional[str] = typer.Option(None, "--sni", help="TLS: server name to send and verify (default: host)."),
    cert: Optional[Path] = typer.Option(None, "--cert", help="TLS: client certificate (PEM)."),
    key: Optional[Path] = typer.Option(None, "--key", help="TLS: client key (PEM)."),
    t1: float = typer.Option(0.5, "--t1", help="RFC 3261 T1 in seconds (timer B = 64*T1)."),
    dns_server: Optional[str] = typer.Option(None, "--dns-server", help="Ask this DNS server, ADDR[:PORT], for the "
                                             "NAPTR, SRV and A/AAAA records that locate the trunk (RFC 3263; "
                                             "default: the system's)."),
    target_timeout: Optional[float] = typer.Option(None, "--target-timeout", help="Fail over to the next server "
                                                   "after this many seconds without a response (default: timer B)."),
    mos: float = typer.Option(3.6, "--mos", "--mos-min", help="Fail below this E-model MOS (either direction)."),
    max_loss: float = typer.Option(1.0, "--loss", "--max-loss", help="Fail at this packet loss or more, percent."),
    max_jitter: float = typer.Option(30.0, "--jitter", "--max-jitter", help="Fail at this maximum RFC 3550 jitter "
                                     "or more, ms (received: measured; sent: the far end's RTCP)."),
    max_pdd: float = typer.Option(5000.0, "--pdd", "--max-pdd", help="Fail above this post-dial delay, ms."),
    max_gap: float = typer.Option(2.0, "--max-gap", help="Fail when the far end's RTP stops this long, s "
                                  "(a media timeout: one-way audio, a frozen stream, media ending early)."),
    no_color: bool = typer.Option(False, "--no-color", help="No colours."),
) -> None:
    """Place a test call: SIP steps with timings, codec, media both ways (loss, jitter, MOS, round trip)."""
    with guarded():
        from ..agent import inputs
        from ..agent.caller import CallOptions, Thresholds, place_call, place_calls
        from ..agent.tally import Tally

        codecs = codec_list(codec, ("PCMU", "PCMA"))
        voice = bool(say or script) or any(v is not None for v in (max_greeting, max_response, max_talk_over))
        if duration is None and not voice:
            duration = 5.0
        limits = Thresholds.from_limits(max_loss, max_jitter, mos, max_pdd, max_gap)
        for name, value, field, high in (("--max-greeting-ms", max_greeting, "greeting_ms", 600_000),
                                         ("--max-response-ms", max_response, "response_ms", 600_000),
                                         ("--max-talk-over-s", max_talk_over, "talk_over_s", 600)):
            if value is not None:
                limits = dataclasses.replace(limits, **{field: inputs.number(name, value, 0, high)})
        inputs.number("--calls", calls, 1, 100_000)
        inputs.number("--rate", rate, 0, 10_000, above=True, unit="calls/s")
        o = CallOptions(uri=uri, transport=transport, from_uri=from_uri, user=user,
                        password=read_password(password_env, password_file), proxy=proxy, codecs=codecs,
                        duration=duration, dtmf=dtmf.upper(), play=str(play) if play else None,
                        record=str(record) if record else None, local_ip=local_ip, public_ip=public_ip,
                        stun=stun, t1=t1, insecure=insecure, dns_server=dns_server, target_timeout=target_timeout,
                        ca_file=str(ca_file) if ca_file else None, sni=sni, cert_file=str(cert) if cert else None,
                        key_file=str(key) if key else None, pcap=str(pcap) if pcap else None,
                        thresholds=limits, content=content, says=tuple(say or ()), pause=pause,
                        script=str(script) if script else None, voice=voice)
        out = console(no_color)
        err = console(no_color, stderr=True)
        plan = None
        if ramp is not None:
            from ..agent.ramp import RampPlan
            if calls != 1:
                raise SiptoolError("give --ramp or --calls, not both")
            plan = RampPlan.parse(ramp, hold, cps)
        o.check()  # every argument, before anything is sent
        from ..report import agent_view as view

        if plan is not None:
            run_capacity(o, plan, out, json_out)

        if calls == 1:
            def live(event):
                if not json_out:
                    out.print(view.log_line(event))
            res = run(place_call(o, on_event=live))
            if json_out:
                typer.echo(json.dumps(view.call_json(res), indent=2))
            else:
                view.render_result(out, res)
            raise typer.Exit(ExitStatus.OK if res.ok else ExitStatus.FAILED)
        tally = Tally(calls)
        live_view = not json_out and err.is_terminal

        def progress(res):
            tally.finished(res)
            if not json_out and not live_view:  # a log line per call when not on a terminal
                err.print(view.progress_line(tally.done, calls, res))

        if live_view:
            from rich.live import Live

            async def run_live():
                with Live(view.board(tally.figures()), console=err, refresh_per_second=4, transient=True) as shown:
                    task = asyncio.ensure_future(place_calls(o, calls, rate, on_result=progress, on_event=tally.event))
                    while not task.done():
                        shown.update(view.board(tally.figures()))
                        await asyncio.sleep(0.25)
                    return task.result()

            summary = run(run_live())
        else:
            summary = run(place_calls(o, calls, rate, on_result=progress))
        if json_out:
            typer.echo(json.dumps(view.summary_json(summary), indent=2))
        else:
            view.render_summary(out, summary)
        raise typer.Exit(ExitStatus.OK if summary.succeeded == summary.attempted else ExitStatus.FAILED)


def run_capacity(o, plan, out, json_out: bool) -> None:
    """`call --ramp`: the levels as they end, the answer; exit 0 when every level up to MAX passed."""
    from ..agent.ramp import run_ramp
    from ..report import ramp_view

    def shown(lv) -> None:
        if not json_out:
            out.print(ramp_view.level_line(lv))

    if not json_out:
        out.print(f"capacity ramp {plan.start}:{plan.step}:{plan.max} to {o.uri}, {plan.cps:g} calls/s, "
                  f"each level held {plan.hold:g} s")
        out.print(ramp_view.HEAD)
    result = run(run_ramp(o, plan, on_level=shown))
    if json_out:
        typer.echo(json.dumps(ramp_view.ramp_json(result), indent=2))
    else:
        ramp_view.render(out, result, header=False)
    raise typer.Exit(ExitStatus.OK if result.ccc == plan.levels()[-1] else ExitStatus.FAILED)


def run(coro):
    """asyncio.run, with SIGTERM treated as Ctrl-C: the call's own cleanup hangs up (BYE) first."""
    import signal

    async def main():
        task = asyncio.current_task()
        loop = asyncio.get_running_loop()
        try:
            loop.add_signal_handler(signal.SIGTERM, task.cancel)
        except (NotImplementedError, RuntimeError):  # not the main thread / not Unix
            pass
        return await coro

    try:
        return asyncio.run(main())
    except asyncio.CancelledError:
        raise KeyboardInterrupt from None


def register(app: typer.Typer) -> None:
    app.command("call", epilog=EPILOG)(call)
