"""Drivers: move packets between the world and the sans-I/O Analyzer, and nothing else.

- files.py: a capture file, streamed with the next batch read ahead by a thread (or decoded by tshark);
- live.py: a live run: any source of `capture.Packet`s (a network interface through the AF_PACKET
  ring or libpcap; later HEP) into the Analyzer, with any number of observers (the live board).

They sit above analysis/ (they feed it) and below commands/ (which pick one and render its Report).
The agent's asyncio drivers (agent/) move SIP and RTP for placed calls; their packets reach the
Analyzer through agent/tap.py.
"""
