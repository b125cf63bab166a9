"""`siptool call URI`: place a test call (or N concurrent calls) and judge signalling and media."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Optional

import typer

from ..errors import SiptoolError
from ..status import ExitStatus
from .common import console, epilog, guarded

CALL_SCHEMA = "siptool.call/1.1"  # docs/json-schema.md; 1.1 added findings (the Analyzer's)

EPILOG = epilog([
    ("", "siptool call sip:100@127.0.0.1:5060"),
    ("over TLS with digest credentials from the environment",
     "SIP_PW=pw siptool call sips:100@sbc.example -u bob --password-env SIP_PW"),
    ("through an outbound proxy, A-law only, with DTMF",
     "siptool call sip:100@10.0.0.5 --proxy sip:10.0.0.1 --codec PCMA --dtmf 123#"),
    ("keep what came back, the call's own packets and a JSON result",
     "siptool call sip:echo@127.0.0.1 --record heard.wav --pcap call.pcap --json"),
    ("capacity: 50 calls at 10 a second", "siptool call sip:100@127.0.0.1 --calls 50 --rate 10 -d 20"),
    ("behind NAT", "siptool call sip:+15551234567@trunk.example.com --stun stun.example.net"),
],  "The local address is the one the kernel routes to the first hop from (--local-ip overrides). Behind "
    "NAT, an OPTIONS first shows (received/rport) the address the far end sees; Contact and SDP carry it. "
    "--stun asks a STUN server instead, --public-ip names the address. The summary says what it found.",
    "Exit codes: 0 call answered and media met the thresholds; 1 call failed (no answer, rejected, timeout, "
    "nothing listening, one-way audio, media gaps, thresholds not met); 2 bad arguments (checked before "
    "anything is sent); 3 internal error. An answered call is always hung up (BYE), also on Ctrl-C, SIGTERM "
    "or an error.")


def read_password(env: str | None, file: Path | None) -> str | None:
    """Password from an environment variable or a file (first line); never from the command line."""
    if env and file:
        raise SiptoolError("give --password-env or --password-file, not both")
    if env:
        value = os.environ.get(env)
        if value is None:
            raise SiptoolError(f"environment variable {env} (from --password-env) is not set")
        return value
    if file:
        try:
            lines = file.read_text().splitlines()
        except OSError as exc:
            raise SiptoolError(f"cannot read --password-file {file}: {exc.strerror}") from None
        except ValueError:
            raise SiptoolError(f"--password-file {file}: not a text file") from None
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
    codec: str = typer.Option("PCMU,PCMA", "--codec", help="Codecs to offer, in order: PCMU,PCMA."),
    duration: float = typer.Option(5.0, "--duration", "-d", help="Seconds of media after the answer."),
    dtmf: str = typer.Option("", "--dtmf", help="RFC 4733 digits to send 1 s after the answer (0-9*#A-D)."),
    play: Optional[Path] = typer.Option(None, "--play", help="8 kHz mono 16-bit WAV to send (default: speech-like signal)."),
    record: Optional[Path] = typer.Option(None, "--record", help="Write the received audio to this WAV file."),
    pcap: Optional[Path] = typer.Option(None, "--pcap", help="Save the call's own SIP and RTP as a pcap (siptool analyze reads it)."),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
    calls: int = typer.Option(1, "--calls", "-n", help="Number of calls (capacity test)."),
    rate: float = typer.Option(1.0, "--rate", "-r", help="New calls per second with --calls."),
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

        codecs = tuple(c.strip().upper() for c in codec.split(",") if c.strip())
        if not codecs or any(c not in ("PCMU", "PCMA") for c in codecs):
            raise SiptoolError(f"--codec {codec}: use PCMU and/or PCMA")
        inputs.number("--calls", calls, 1, 100_000)
        inputs.number("--rate", rate, 0, 10_000, above=True, unit="calls/s")
        o = CallOptions(uri=uri, transport=transport, from_uri=from_uri, user=user,
                        password=read_password(password_env, password_file), proxy=proxy, codecs=codecs,
                        duration=duration, dtmf=dtmf.upper(), play=str(play) if play else None,
                        record=str(record) if record else None, local_ip=local_ip, public_ip=public_ip,
                        stun=stun, t1=t1, insecure=insecure,
                        ca_file=str(ca_file) if ca_file else None, sni=sni, cert_file=str(cert) if cert else None,
                        key_file=str(key) if key else None, pcap=str(pcap) if pcap else None,
                        thresholds=Thresholds.from_limits(max_loss, max_jitter, mos, max_pdd, max_gap))
        out = console(no_color)
        err = console(no_color, stderr=True)
        o.check()  # every argument, before anything is sent
        if calls == 1:
            def live(_cid, t, text):
                if not json_out:
                    out.print(f"[dim]{t:9.1f} ms[/dim]  {text}" if t is not None else f"[dim]{'':12}[/dim] {text}")
            res = run(place_call(o, on_event=live))
            if json_out:
                typer.echo(json.dumps({"schema": CALL_SCHEMA, **res.to_dict()}, indent=2))
            else:
                render_result(out, res)
            raise typer.Exit(ExitStatus.OK if res.ok else ExitStatus.FAILED)
        board = Board(calls)
        live_view = not json_out and err.is_terminal

        def progress(res):
            board.finished(res)
            if not json_out and not live_view:  # a log line per call when not on a terminal
                mark = "[green]ok[/green]" if res.ok else f"[red]{(res.error or res.reason or 'failed')[:50]}[/red]"
                err.print(f"[{board.done}/{calls}] {res.call_id or '-'} {res.status or '-'} pdd {res.pdd_ms or 0:.0f} ms "
                          f"MOS {res.rx.mos if res.rx.mos is not None else '-'} {mark}")

        if live_view:
            from rich.live import Live

            async def run_live():
                with Live(board.render(), console=err, refresh_per_second=4, transient=True) as view:
                    task = asyncio.ensure_future(place_calls(o, calls, rate, on_result=progress, on_event=board.event))
                    while not task.done():
                        view.update(board.render())
                        await asyncio.sleep(0.25)
                    return task.result()

            summary = run(run_live())
        else:
            summary = run(place_calls(o, calls, rate, on_result=progress))
        if json_out:
            typer.echo(json.dumps({"schema": "siptool.calls/1", **summary.to_dict()}, indent=2))
        else:
            render_summary(out, summary)
        raise typer.Exit(ExitStatus.OK if summary.succeeded == summary.attempted else ExitStatus.FAILED)


class Board:
    """What the live view of a capacity run shows: started, answered, failed, active, PDD and MOS so far."""

    def __init__(self, total: int) -> None:
        self.total, self.done, self.ok = total, 0, 0
        self.started: set[str] = set()
        self.answered: set[str] = set()
        self.failed = 0
        self.pdd: list[float] = []
        self.mos: list[float] = []

    def event(self, call_id: str, _t: float, text: str) -> None:
        if text.startswith("-> INVITE") and "(" not in text:
            self.started.add(call_id)
        elif text.startswith("<- 2") and "INVITE" not in text and "(" not in text:
            self.answered.add(call_id)

    def finished(self, res) -> None:
        self.done += 1
        self.ok += bool(res.ok)
        self.failed += not (res.status and 200 <= res.status < 300)
        if res.pdd_ms is not None:
            self.pdd.append(res.pdd_ms)
        if res.rx.mos is not None:
            self.mos.append(res.rx.mos)

    def render(self):
        import numpy as np
        from rich.table import Table

        t = Table.grid(padding=(0, 2))
        active = len(self.started) - self.done
        setup = 100.0 * (self.done - self.failed) / self.done if self.done else 0.0
        t.add_row(f"[bold]calls[/] {self.done}/{self.total} done", f"started {len(self.started)}",
                  f"answered {len(self.answered)}", f"active {max(active, 0)}",
                  f"[red]failed {self.failed}[/]" if self.failed else "failed 0", f"setup {setup:.1f}%")
        pdd = (f"PDD p50 {np.percentile(self.pdd, 50):.0f} ms, p95 {np.percentile(self.pdd, 95):.0f} ms"
               if self.pdd else "PDD -")
        mos = f"MOS min {min(self.mos):.2f}, median {np.median(self.mos):.2f}" if self.mos else "MOS -"
        bar_w = 30
        filled = int(bar_w * self.done / max(self.total, 1))
        t.add_row("[green]" + "█" * filled + "[/][dim]" + "░" * (bar_w - filled) + "[/]", pdd, mos, "", "", "")
        return t


def _fmt(v, unit="") -> str:
    return "-" if v is None else f"{v}{unit}"


def render_result(out, res) -> None:
    from rich.table import Table

    verdict = "[green]PASS[/green]" if res.ok else "[red]FAIL[/red]"
    head = f"{res.status} {res.reason}" if res.status else "no answer"
    out.print(f"\n{verdict}  {head}  " + (f"call-id {res.call_id}" if res.call_id else "(no INVITE sent)"))
    if res.error:
        out.print(f"[red]{res.error}[/red]")
    answered = res.status is not None and 200 <= res.status < 300
    if answered:
        out.print(f"post-dial delay {_fmt(res.pdd_ms, ' ms')}, answer {_fmt(res.answer_ms, ' ms')}, "
                  f"codec {_fmt(res.codec)}, ended by {_fmt(res.ended_by)} after {res.duration_s} s"
                  + (f", DTMF sent {res.dtmf_sent}" if res.dtmf_sent else ""))
    elif res.pdd_ms is not None:
        out.print(f"post-dial delay {res.pdd_ms} ms")
    if res.nat.get("text") and res.status is not None:
        first, *rest = res.nat["text"].split("; ")  # one clause a line: fits 80 columns
        out.print(first)
        for clause in rest:
            out.print(f"     {clause}")
    if res.codec:
        t = Table(box=None, pad_edge=False)
        for col in ("direction", "packets", "lost", "loss %", "jitter ms", "MOS", "source"):
            t.add_column(col, justify="right" if col not in ("direction", "source") else "left")
        for name, f in (("sent", res.tx), ("received", res.rx)):
            t.add_row(name, str(f.packets), str(f.lost), f"{f.loss_pct:.2f}", f"{f.jitter_ms:.2f}", _fmt(f.mos), f.source)
        out.print(t)
        out.print(f"round-trip audio delay {_fmt(res.rtt_ms, ' ms')} (correlation), RTCP round trip {_fmt(res.rtcp_rtt_ms, ' ms')}")
    for p in res.problems:
        out.print(f"[yellow]- {p}[/yellow]")
    if res.findings:  # what `analyze` says of this call's own packets, as it prints findings
        from rich.padding import Padding
        from rich.text import Text

        from ..report.terminal import finding_line
        out.print(f"Findings ({len(res.findings)}, from the call's own packets as analyze reads them)")
        for f in res.findings:
            out.print(finding_line(f.severity, f.title, f.code))
            if f.fix:
                out.print(Padding(Text("fix: " + f.fix, style="green"), (0, 0, 0, 9)))


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


def render_summary(out, s) -> None:
    out.print(f"\ncalls {s.attempted}, answered {s.answered}, passed {s.succeeded}, "
              f"setup success {100 * s.setup_ratio:.1f}%")
    if s.pdd_ms:
        out.print("post-dial delay ms: " + ", ".join(f"{k} {v}" for k, v in s.pdd_ms.items()))
    if s.mos:
        out.print("MOS received: " + ", ".join(f"{k} {v}" for k, v in s.mos.items()))
    for why, n in sorted(s.failures.items(), key=lambda kv: -kv[1]):
        out.print(f"[red]{n} x {why}[/red]")


def register(app: typer.Typer) -> None:
    app.command("call", epilog=EPILOG)(call)
