"""What checking SRTP costs `siptool analyze`: the same captures analysed with and without the
per-packet authentication check, printed as ratios (run it on a quiet machine; rounds alternate).

    python bench/srtp_check.py [--rounds 5]

The captures are the fixtures whose streams are SRTP with keys in sight (srtp_call, srtp_wrong_key,
tls_calls with its key log). "Without" replaces the check by a no-op (the streams are still marked
SRTP), so the difference is libsrtp through pylibsrtp plus the per-packet Python around it.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from unittest import mock

from siptool.analysis import media
from siptool.drivers.files import analyze_file

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "pcaps"
CASES = [("srtp_call.pcap", None), ("srtp_wrong_key.pcap", None), ("tls_calls.pcap", "tls_calls.keys")]


def run(name: str, keylog: str | None, check: bool) -> tuple[float, int]:
    start = time.perf_counter()
    if check:
        report = analyze_file(FIXTURES / name, tls_keylog=str(FIXTURES / keylog) if keylog else None)
    else:
        with mock.patch.object(media.MediaTracker, "_secure", lambda self, state, flow, ssrc: None):
            report = analyze_file(FIXTURES / name, tls_keylog=str(FIXTURES / keylog) if keylog else None)
    packets = sum(s.packets for c in report.calls for s in c.streams)
    return time.perf_counter() - start, packets


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args()
    print(f"{'capture':24} {'SRTP packets':>12} {'with/without':>13} {'extra us/packet':>16}")
    for name, keylog in CASES:
        with_, without = [], []
        for _ in range(args.rounds):
            t, packets = run(name, keylog, True)
            with_.append(t)
            without.append(run(name, keylog, False)[0])
        a, b = statistics.median(with_), statistics.median(without)
        print(f"{name:24} {packets:12,} {a / b:13.2f} {(a - b) * 1e6 / max(packets, 1):16.1f}")


if __name__ == "__main__":
    main()
