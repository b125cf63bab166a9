"""SIP dialogs (RFC 3261 12): identity (Call-ID and tags), route set, CSeq, remote target; building
in-dialog requests and the ACK for a 2xx (13.2.2.4)."""

from __future__ import annotations

from dataclasses import dataclass, field

from . import build
from .message import SipMessage
from .uri import name_addr


@dataclass
class Dialog:
    call_id: str
    local_tag: str
    remote_tag: str
    local_uri: str  # From value of our requests, without tag
    remote_uri: str
    remote_target: str  # Contact URI of the far end
    route_set: list[str] = field(default_factory=list)
    local_seq: int = 0
    remote_seq: int | None = None

    @property
    def key(self) -> tuple[str, str, str]:
        return self.call_id, self.local_tag, self.remote_tag

    @classmethod
    def uac(cls, req: SipMessage, resp: SipMessage) -> "Dialog":
        """From our INVITE and its 2xx/18x (12.1.2): route set is Record-Route reversed."""
        contact = resp.get_all("contact")
        return cls(call_id=req.call_id or "", local_tag=req.from_tag or "", remote_tag=resp.to_tag or "",
                   local_uri=_strip_tag(req.get("from") or ""), remote_uri=_strip_tag(resp.get("to") or ""),
                   remote_target=name_addr(contact[0])[1] if contact else req.uri or "",
                   route_set=list(reversed(resp.get_all("record-route"))), local_seq=req.cseq[0])

    @classmethod
    def uas(cls, req: SipMessage, local_tag: str) -> "Dialog":
        """From a received INVITE (12.1.1): route set is Record-Route in order."""
        contact = req.get_all("contact")
        return cls(call_id=req.call_id or "", local_tag=local_tag, remote_tag=req.from_tag or "",
                   local_uri=_strip_tag(req.get("to") or ""), remote_uri=_strip_tag(req.get("from") or ""),
                   remote_target=name_addr(contact[0])[1] if contact else "", route_set=req.get_all("record-route"),
                   local_seq=0, remote_seq=req.cseq[0])

    def _uri_and_routes(self) -> tuple[str, list[str]]:
        """12.2.1.1: loose routing when the first route has ;lr, else strict (target moved into Route)."""
        if not self.route_set:
            return self.remote_target, []
        first = name_addr(self.route_set[0])[1]
        if ";lr" in first:
            return self.remote_target, list(self.route_set)
        return first, list(self.route_set[1:]) + [f"<{self.remote_target}>"]

    def next_hop(self) -> str:
        return name_addr(self.route_set[0])[1] if self.route_set else self.remote_target

    def request(self, method: str, via_value: str, contact: str | None = None, body: bytes = b"",
                headers: list[tuple[str, str]] = (), cseq: int | None = None) -> SipMessage:
        """An in-dialog request (12.2.1.1). CSeq increments except for ACK/CANCEL (given explicitly)."""
        if cseq is None:
            self.local_seq += 1
            cseq = self.local_seq
        uri, routes = self._uri_and_routes()
        return build.request(method, uri, via_value=via_value, from_value=f"{self.local_uri};tag={self.local_tag}",
                              to_value=f"{self.remote_uri};tag={self.remote_tag}", call_id=self.call_id, cseq=cseq,
                              contact=contact, routes=routes, headers=headers, body=body)

    def ack(self, invite_cseq: int, via_value: str, body: bytes = b"") -> SipMessage:
        """ACK for a 2xx: a new transaction with its own branch, CSeq number of the INVITE (13.2.2.4)."""
        return self.request("ACK", via_value, body=body, cseq=invite_cseq)

    def accepts(self, req: SipMessage) -> bool:
        """Is this request inside the dialog (12.2.2)? Same Call-ID, tags swapped."""
        return req.call_id == self.call_id and req.to_tag == self.local_tag and req.from_tag == self.remote_tag


def _strip_tag(value: str) -> str:
    parts = value.split(";")
    keep = [parts[0]] + [p for p in parts[1:] if not p.strip().lower().startswith("tag=")]
    return ";".join(keep)
