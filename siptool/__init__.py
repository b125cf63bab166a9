"""siptool: SIP trunk diagnostics."""

__version__ = "0.1.0"
