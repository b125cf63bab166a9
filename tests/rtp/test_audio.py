"""Codecs (rtp/audio.py): every decoder the registry names exists in the pinned PyAV wheel; encoders
and decoders round-trip speech; RFC 4867 AMR payloads; and the codecs of real captures (Wireshark's
sample calls, one recording in six codecs) decode to the same speech as their G.711 version."""

from __future__ import annotations

import subprocess
import wave

import numpy as np
import pytest
from support import SHARED, require_binary

from siptool.capture import open_capture
from siptool.rtp import amr, audio, codecs, g711
from siptool.rtp.packet import parse_rtp


def envelope(x: np.ndarray, rate: int) -> np.ndarray:
    """Level per 10 ms (dB): what speech looks like whatever the codec does to the waveform."""
    n = rate // 100
    frames = np.asarray(x[:len(x) // n * n], np.float64).reshape(-1, n)
    return 10 * np.log10(np.mean(frames ** 2, axis=1) + 1.0)


def best_correlation(a: np.ndarray, b: np.ndarray, max_lag: int) -> tuple[float, int]:
    """Largest Pearson correlation of a and b shifted by -max_lag..max_lag samples, and that lag."""
    best = (-1.0, 0)
    for lag in range(-max_lag, max_lag + 1):
        x, y = (a[lag:], b) if lag >= 0 else (a, b[-lag:])
        n = min(len(x), len(y))
        if n > 10:
            best = max(best, (float(np.corrcoef(x[:n], y[:n])[0, 1]), lag))
    return best


def speech(rate: int, seconds: float = 2.0) -> np.ndarray:
    return g711.speech_like(seconds, rate, -20.0)


@pytest.mark.parametrize("codec", [c for c in codecs.REGISTRY if c.decoder], ids=lambda c: c.name)
def test_every_registry_decoder_is_in_the_wheel(codec):
    """PyAV 18.1's FFmpeg (the pinned wheel) has each decoder the registry names."""
    d = codecs.decoder(codec.name, codec.clock_rate, codec.channels)
    assert d.rate == (codec.rate or codec.clock_rate)


def test_unknown_codecs_say_so():
    for name in ("DVI4", "LPC", "SILK", "telephone-event", "nonsense"):
        with pytest.raises(audio.AudioError):
            codecs.decoder(name, 8000)


@pytest.mark.parametrize("name,rate,quality", [("PCMU", 8000, 0.99), ("PCMA", 8000, 0.99), ("G722", 16000, 0.95),
                                               ("opus", 48000, 0.8)])
def test_encode_then_decode_round_trip(name, rate, quality):
    enc = audio.encoder(name)
    dec = codecs.decoder(name, enc.clock_rate, 2 if name == "opus" else 1)
    assert (enc.rate, dec.rate) == (rate, rate) and enc.frame_samples == rate // 50
    assert enc.frame_ticks == enc.clock_rate // 50  # G.722: 160 ticks of its 8000 Hz clock per 20 ms
    x = speech(rate)
    payloads = [enc.encode(x[i:i + enc.frame_samples]) for i in range(0, len(x), enc.frame_samples)]
    if name in ("PCMU", "PCMA", "G722"):
        assert {len(p) for p in payloads} == {160}  # 64 kbit/s
    y = np.concatenate([dec.decode(p) for p in payloads])
    r, lag = best_correlation(y[:len(x)].astype(float), x.astype(float), rate // 100)
    assert r >= quality, (name, r, lag)


def test_g726_payloads_decode():
    """G.726-32 packed as RFC 3551 4.5.4 says (FFmpeg's g726le): 4 bits a sample, 80 bytes per 20 ms."""
    import av

    enc = av.CodecContext.create("g726le", "w")
    enc.sample_rate, enc.layout, enc.format, enc.bit_rate = 8000, "mono", "s16", 32000
    enc.open()
    x = speech(8000)
    frame = av.AudioFrame.from_ndarray(x[None, :], format="s16", layout="mono")
    frame.sample_rate = 8000
    stream = b"".join(bytes(p) for p in enc.encode(frame)) + b"".join(bytes(p) for p in enc.encode(None))
    dec = codecs.decoder("G726-32", 8000)
    y = np.concatenate([dec.decode(stream[i:i + 80]) for i in range(0, len(stream), 80)])
    assert len(y) == len(stream) * 2
    r, _ = best_correlation(y[:len(x)].astype(float), x.astype(float), 40)
    assert r > 0.95


def amr_frames(x: np.ndarray) -> list[bytes]:
    """AMR-NB 12.2 kbit/s storage-format frames from opencore's encoder (as FFmpeg writes .amr)."""
    import av

    enc = av.CodecContext.create("libopencore_amrnb", "w")
    enc.sample_rate, enc.layout, enc.format, enc.bit_rate = 8000, "mono", "s16", 12200
    enc.open()
    out = []
    for i in range(0, len(x) - 159, 160):
        f = av.AudioFrame.from_ndarray(x[None, i:i + 160], format="s16", layout="mono")
        f.sample_rate, f.pts = 8000, i
        out += [bytes(p) for p in enc.encode(f)]
    return out


@pytest.mark.parametrize("aligned", [False, True], ids=["bandwidth-efficient", "octet-aligned"])
def test_amr_rtp_payloads(aligned):
    """RFC 4867 payloads of one and three frames decode to what the storage frames decode to."""
    import av

    frames = amr_frames(speech(8000, 1.0))
    assert frames and {f[0] >> 3 & 0x0F for f in frames} == {7}  # 12.2 kbit/s (FT 7): 31 bytes
    direct = av.CodecContext.create("amrnb", "r")
    direct.sample_rate, direct.layout = 8000, "mono"
    want = np.concatenate([f.to_ndarray().ravel() for fr in frames for f in direct.decode(av.Packet(fr))])
    want = np.clip(np.round(want * 32768.0), -32768, 32767).astype(np.int16)  # float samples, as siptool gives them
    for per in (1, 3):
        payloads = [amr.pack(frames[i:i + per], octet_aligned=aligned) for i in range(0, len(frames), per)]
        assert all(amr.unpack(p, octet_aligned=aligned) == frames[i * per:i * per + per] for i, p in enumerate(payloads))
        dec = codecs.decoder("AMR", 8000, fmtp="octet-align=1" if aligned else "")
        got = np.concatenate([dec.decode(p) for p in payloads])
        assert np.array_equal(got, want)


def test_amr_garbage_gives_nothing():
    for junk in (b"", b"\xf0", b"\xff" * 3, bytes(range(40))):
        assert isinstance(amr.unpack(junk), list)
    assert codecs.decoder("AMR", 8000).decode(b"\xff\xff\xff").size == 0


def test_damaged_payloads_never_raise():
    for name in ("G722", "opus", "G729", "GSM", "iLBC", "speex", "AMR-WB"):
        dec = codecs.decoder(name, 0, 2 if name == "opus" else 1)
        for junk in (b"", b"\x00", bytes(range(256)), b"\xff" * 7):
            assert dec.decode(junk).dtype == np.int16


def test_speex_from_its_reference_encoder(tmp_path):
    """speexenc (Xiph's reference encoder) writes Speex in Ogg; its packets are what RTP carries
    (RFC 5574 3): siptool's decode follows the speech it was given."""
    speexenc = require_binary("speexenc")
    x = speech(8000, 2.0)
    src = tmp_path / "in.wav"
    with wave.open(str(src), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(x.astype("<i2").tobytes())
    subprocess.run([speexenc, str(src), str(tmp_path / "out.spx")], check=True, capture_output=True)
    import av

    with av.open(str(tmp_path / "out.spx")) as c:
        packets = [bytes(p) for p in c.demux(c.streams.audio[0]) if p.size]
    dec = codecs.decoder("speex", 8000)
    y = np.concatenate([dec.decode(p) for p in packets])
    r, _ = best_correlation(envelope(y, 8000), envelope(x, 8000), 10)
    assert len(y) >= len(x) - 320 and r > 0.9


# --- real captures: one recording in six codecs (Wireshark's sample captures, ../shared/pcaps) ---

SAMPLES = {"wsc_sip-rtp-g711.pcap": ("PCMU", 8000, 1), "wsc_sip-rtp-g722.pcap": ("G722", 8000, 1),
           "wsc_sip-rtp-g729a.pcap": ("G729", 8000, 1), "wsc_sip-rtp-gsm.pcap": ("GSM", 8000, 1),
           "wsc_sip-rtp-ilbc.pcap": ("iLBC", 8000, 1), "wsc_sip-rtp-opus.pcap": ("opus", 48000, 2)}


def decode_capture(path, name: str, clock: int, channels: int) -> tuple[np.ndarray, int]:
    """The first stream of `name`'s RTP in the capture, decoded in sequence order."""
    dec = codecs.decoder(name, clock, channels)
    packets = []
    with open_capture(path) as source:
        for pkt in source:
            if pkt.transport != "udp" or 5060 in (pkt.sport, pkt.dport):
                continue
            h = parse_rtp(pkt.payload)
            if h is not None and h.payload_type in (0, 3, 9, 18, 99):  # the codecs of SAMPLES
                packets.append((h.sequence, pkt.payload[h.payload_offset:h.payload_offset + h.payload_length],
                                h.payload_type))
    first_pt = packets[0][2]
    samples = [dec.decode(p) for _, p, pt in sorted(packets) if pt == first_pt]
    return np.concatenate(samples), dec.rate


@pytest.mark.shared
@pytest.mark.parametrize("name", [n for n in SAMPLES if "g711" not in n])
def test_real_captures_decode_to_the_same_speech(name):
    if not (SHARED / name).exists():
        pytest.skip("../shared/pcaps is not here")
    ref, _ = decode_capture(SHARED / "wsc_sip-rtp-g711.pcap", "PCMU", 8000, 1)
    x, rate = decode_capture(SHARED / name, *SAMPLES[name])
    assert abs(len(x) / rate - 8.5) < 0.1  # the recording's length: every packet decoded, none twice
    if rate != 8000:  # narrowband, as the G.711 reference: the mean of each 1/8000 s
        x = x[:len(x) // (rate // 8000) * (rate // 8000)].reshape(-1, rate // 8000).mean(axis=1)
    r, lag = best_correlation(envelope(x, 8000), envelope(ref, 8000), 20)
    assert r > 0.9, (name, r, lag)
