"""`siptool audio CAPTURE --call N -o call.wav`: a call's audio as the people on it heard it."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .common import (SRTP_KEYS_HELP, TLS_KEYLOG_HELP, call_with_media, check_output, decryption_keys, epilog, fail,
                     guarded, writing)

EPILOG = epilog([
    ("call 1 as one stereo WAV: caller left, callee right", "siptool audio agent.pcap --call 1 -o call.wav"),
    ("one WAV per stream, all on the same time line", "siptool audio trunk.pcap --call 4 --split -o call.wav"),
    ("one stream: its number in the call, or its SSRC", "siptool audio trunk.pcap -c 4 --stream 0x1A2B3C4D"),
    ("what a test call heard", "siptool call sip:echo@pbx.example --pcap c.pcap && siptool audio c.pcap"),
    ("SRTP keyed in SIP over TLS: the TLS key log opens both", "siptool audio tls.pcap --tls-keylog keys.log"),
],  "Times: the WAV begins at the call's first RTP packet; each stream's audio is placed by its RTP "
    "timestamps from its first packet's arrival, so silences and overlaps are where they happened; lost "
    "packets are silence. Codecs: G.711, G.722, Opus, G.726, G.729, GSM, iLBC, AMR, AMR-WB, L16, Speex "
    "(docs/content.md). Without --call, the capture must hold exactly one call with media.",
    "Exit codes: 0 written; 2 unreadable capture, no such call or stream, nothing decodable, or an output "
    "file that cannot be written (checked before the capture is read).")


def audio(
    capture: Path = typer.Argument(..., help="pcap, pcapng or gzip'd capture file (also a `siptool call --pcap`)."),
    call: Optional[str] = typer.Option(None, "--call", "-c", help="Call number (as analyze shows it) or whole Call-ID."),
    output: Path = typer.Option(Path("siptool-audio.wav"), "--output", "-o", help="WAV file to write."),
    split: bool = typer.Option(False, "--split", help="One mono WAV per stream (NAME-1-caller.wav...) "
                               "instead of one stereo WAV."),
    stream: Optional[str] = typer.Option(None, "--stream", help="Only this stream, mono: its number in "
                                         "the call (1, 2... as analyze lists them) or its SSRC (0x1A2B3C4D)."),
    tls_keylog: Optional[str] = typer.Option(None, "--tls-keylog", metavar="FILE", help=TLS_KEYLOG_HELP),
    srtp_keys: Optional[str] = typer.Option(None, "--srtp-keys", metavar="FILE", help=SRTP_KEYS_HELP),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Write a call's audio as WAV: caller left, callee right, time-aligned as it was heard."""
    with guarded():
        import sys

        from ..drivers.recording import on_timeline, stereo, tracks
        from ..drivers.files import analyze_file
        from ..report import wav

        check_output(output, "-o", ".wav")
        if split and stream is not None:
            raise typer.BadParameter("give --split or --stream, not both", param_hint="--stream")
        keys = decryption_keys(tls_keylog, srtp_keys)
        report = analyze_file(str(capture), progress=not quiet and sys.stderr.isatty(), tls_keylog=tls_keylog,
                              srtp_keys=keys)
        target = call_with_media(report, call)
        if not target.streams:
            fail(f"call {target.number} (Call-ID {target.call_id}) has no RTP in this capture: no audio to write")
        picked = target.streams
        if stream is not None:
            picked = [_pick_stream(target, stream)]
        heard = [t for t in tracks(str(capture), target, tls_keylog, keys) if t.stream in picked]
        if not heard:
            why = "; ".join(sorted({s.content.error for s in picked if s.content and s.content.error})) or "no audio"
            fail(f"call {target.number}: nothing could be decoded ({why})")
        start = min(t.start for t in heard)
        with writing(output):
            if split:
                end = max(t.end for t in heard)
                names = []
                for i, t in enumerate(heard, 1):
                    name = output.with_name(f"{output.stem}-{target.streams.index(t.stream) + 1}"
                                            f"{'-' + t.side if t.side else ''}{output.suffix}")
                    wav.write(name, on_timeline(t, start, int(round((end - start) * t.rate)), t.rate), t.rate)
                    names.append(name.name)
                what = f"{len(names)} files: {', '.join(names)}"
            elif stream is not None:
                (t,) = heard
                wav.write(output, t.samples, t.rate)
                what = f"{output} ({t.stream.src} -> {t.stream.dst}, {t.rate} Hz mono, {len(t.samples) / t.rate:.2f} s)"
            else:
                samples, rate, start = stereo(heard)
                wav.write(output, samples, rate)
                what = (f"{output} ({rate} Hz stereo, caller left, callee right, {len(samples) / rate:.2f} s "
                        f"from the first RTP packet)")
        typer.echo(f"wrote {what} (call {target.number}, Call-ID {target.call_id})", err=True)


def _pick_stream(call, key: str):
    """The call's stream by its number in the call (1-based, as analyze lists them) or its SSRC."""
    key = key.strip()
    if key.isdigit() and 1 <= int(key) <= len(call.streams):
        return call.streams[int(key) - 1]
    try:
        ssrc = int(key, 16)
    except ValueError:
        ssrc = None
    found = [s for s in call.streams if s.ssrc == ssrc]
    if not found:
        listed = ", ".join(f"{i} ({s.src} -> {s.dst}, SSRC {s.ssrc:08X})" for i, s in enumerate(call.streams, 1))
        fail(f"call {call.number} has no stream {key}; its streams: {listed}")
    return found[0]


def register(app: typer.Typer) -> None:
    app.command("audio", epilog=EPILOG)(audio)
