"""The edge's per-CALL decisions before any answer is computed: direction, registration state, security profile,
leniency per model (edges/ocpp/server.py `answer_call`).  The token store is a stand-in: only the decision logic
is under test here; the real path (Postgres, Kafka, sockets) is in tests/integration/test_ocpp_*.py."""

from __future__ import annotations

import json
from typing import Any, Iterable

import pytest

from chargeverse.settings import Settings
from edges.ocpp import framing
from edges.ocpp.context import TokenRecord
from edges.ocpp.credentials import Registration
from edges.ocpp.examples import V16, V201
from edges.ocpp.leniency import Leniency
from edges.ocpp.server import EdgeLimits, OcppEdge
from edges.ocpp.session import AnswerMemory, ChargerSession, TokenBucket
from edges.ocpp.versions import VERSIONS


class Tokens:
    def __init__(self) -> None:
        self.next_id = 100

    async def lookup(self, uids: Iterable[str], station_id: str | None = None) -> dict[str, Any]:
        return {u: TokenRecord(u, None, "Accepted") if u == "TAG-1" else None for u in uids}

    async def next_transaction_id(self) -> int:
        self.next_id += 1
        return self.next_id


class Registrations:
    """The operator's registration decisions, as the credentials projection would hold them."""

    def __init__(self) -> None:
        self.status: dict[str, str] = {}

    async def lookup(self, station_id: str) -> Registration | None:
        return Registration("h", 1, registration_status=self.status.get(station_id, "Accepted"))


@pytest.fixture
def edge() -> OcppEdge:
    e = OcppEdge(Settings(ocpp_heartbeat_interval=60), producer=object(),  # type: ignore[arg-type]
                 leniency=Leniency.from_config({"chargeverse-sim/SIM-LAX": "known"}), limits=EdgeLimits())
    e.tokens = Tokens()  # type: ignore[assignment]
    e.credentials = Registrations()  # type: ignore[assignment]
    return e


def session(sp: str = "ocpp1.6", profile: int = 1, **kw: Any) -> ChargerSession:
    return ChargerSession("CP-1", "conn-1", VERSIONS[sp], profile, TokenBucket(10, 10, 0.0), AnswerMemory(), **kw)


async def call(edge: OcppEdge, s: ChargerSession, action: str, payload: dict[str, Any]) -> tuple[dict, list]:
    fields, reply, _ = await edge.answer_call(s, framing.Frame(2, "m1", action=action, payload=payload))
    return fields, json.loads(reply)


async def test_direction_decides_not_supported_versus_not_implemented(edge) -> None:  # noqa: ANN001
    for sp, action, code in [("ocpp1.6", "RemoteStartTransaction", "NotSupported"),
                             ("ocpp2.0.1", "RequestStartTransaction", "NotSupported"),
                             ("ocpp2.0.1", "StartTransaction", "NotImplemented"),  # a 1.6 action on 2.0.1
                             ("ocpp1.6", "TransactionEvent", "NotImplemented")]:
        fields, reply = await call(edge, session(sp), action, {})
        assert reply[:3] == [4, "m1", code] and fields["valid"] is False, (sp, action)


async def test_pending_charger_gets_security_error_until_accepted(edge) -> None:  # noqa: ANN001
    s = session("ocpp2.0.1")
    edge.credentials.status["CP-1"] = "Pending"
    _, reply = await call(edge, s, "BootNotification", V201["BootNotification"])
    assert reply[2]["status"] == "Pending" and s.boot_status == "Pending"
    _, reply = await call(edge, s, "Heartbeat", {})
    assert reply[:3] == [4, "m1", "SecurityError"]
    edge.credentials.status["CP-1"] = "Accepted"  # the operator accepts it; the station boots again, same socket
    _, reply = await call(edge, s, "BootNotification", V201["BootNotification"])
    assert reply[2]["status"] == "Accepted"
    assert (await call(edge, s, "Heartbeat", {}))[1][0] == 3


async def test_a_reconnect_without_boot_is_served(edge) -> None:  # noqa: ANN001
    assert (await call(edge, session(), "Heartbeat", {}))[1][0] == 3


@pytest.mark.parametrize("sp, action", [("ocpp1.6", "SignCertificate"), ("ocpp2.0.1", "SignCertificate"),
                                        ("ocpp2.0.1", "Get15118EVCertificate"),
                                        ("ocpp2.0.1", "GetCertificateStatus")])
async def test_certificate_operations_need_tls(edge, sp, action) -> None:  # noqa: ANN001
    example = (V16 if sp == "ocpp1.6" else V201)[action]
    for profile in (0, 1):
        _, reply = await call(edge, session(sp, profile), action, example)
        assert reply[:3] == [4, "m1", "SecurityError"]
    for profile in (2, 3):
        _, reply = await call(edge, session(sp, profile), action, example)
        assert reply[0] == 3 and reply[2]["status"] in ("Rejected", "Failed")  # no signer / PnC wired yet


async def test_lookups_feed_the_answers(edge) -> None:  # noqa: ANN001
    _, a = await call(edge, session(), "StartTransaction", V16["StartTransaction"])
    _, b = await call(edge, session(), "StartTransaction", {**V16["StartTransaction"], "idTag": "WHO"})
    assert (a[2]["transactionId"], a[2]["idTagInfo"]["status"]) == (101, "Accepted")
    assert (b[2]["transactionId"], b[2]["idTagInfo"]["status"]) == (102, "Invalid")
    _, c = await call(edge, session("ocpp2.0.1"), "Authorize", {"idToken": {"idToken": "WHO", "type": "Central"}})
    assert c[2] == {"idTokenInfo": {"status": "Unknown"}}


async def test_a_store_outage_is_an_internal_error_for_that_call_only(edge) -> None:  # noqa: ANN001
    async def down(uids: Iterable[str]) -> dict:
        raise OSError("connection refused")

    edge.tokens.lookup = down  # type: ignore[method-assign]
    fields, reply = await call(edge, session(), "Authorize", {"idTag": "TAG-1"})
    assert reply[:3] == [4, "m1", "InternalError"] and fields["error_code"] == "InternalError"
    assert (await call(edge, session(), "Heartbeat", {}))[1][0] == 3


async def test_leniency_applies_only_to_the_configured_model_and_is_recorded(edge) -> None:  # noqa: ANN001
    sloppy = {"connectorId": 1, "errorCode": "Error", "status": "available"}
    strict = session()
    fields, reply = await call(edge, strict, "StatusNotification", sloppy)
    assert reply[:3] == [4, "m1", "PropertyConstraintViolation"]
    lax = session()
    boot = {"chargePointVendor": "chargeverse-sim", "chargePointModel": "SIM-LAX"}
    assert (await call(edge, lax, "BootNotification", boot))[1][0] == 3
    assert lax.rules and (lax.vendor, lax.model) == ("chargeverse-sim", "SIM-LAX")
    fields, reply = await call(edge, lax, "StatusNotification", sloppy)
    assert reply[0] == 3 and fields["valid"] is True
    assert json.loads(fields["normalized"]) == {"connectorId": 1, "errorCode": "OtherError", "status": "Available"}


async def test_results_for_unknown_ids_are_recorded_and_ignored(edge) -> None:  # noqa: ANN001
    s = session()
    fields = edge.on_result(s, framing.Frame(3, "never-sent", payload={}))
    assert fields["valid"] is False and "ignored" in fields["error_description"]


def test_cv_run_ocpp_reads_the_proposed_settings_when_they_exist(tmp_path) -> None:  # noqa: ANN001
    from edges.ocpp.server import edge_from_settings

    plain = edge_from_settings(Settings(), producer=object())  # type: ignore[arg-type]
    assert plain.tls is None and plain.plain and plain.leniency.enabled == {} and plain.data_transfer == {}

    class Proposed(Settings):
        ocpp_tls_port: int | None = 9443
        ocpp_tls_cert_file: str | None = "/etc/cv/server.crt"
        ocpp_tls_key_file: str | None = "/etc/cv/server.key"
        ocpp_tls_charger_ca_file: str | None = "/etc/cv/charger-ca.pem"
        ocpp_rate_per_second: float = 3.0
        ocpp_rate_burst: int = 9
        ocpp_leniency: str = str(tmp_path / "leniency.json")
        ocpp_data_transfer_vendors: str = '{"com.example": []}'

    (tmp_path / "leniency.json").write_text('{"chargeverse-sim/SIM-LAX": "known"}')
    e = edge_from_settings(Proposed(), producer=object())  # type: ignore[arg-type]
    assert e.tls is not None and e.tls.port == 9443 and str(e.tls.charger_ca_file) == "/etc/cv/charger-ca.pem"
    assert e.plain  # ws:// stays on ocpp_port beside wss:// on its own port
    assert (e.limits.rate, e.limits.burst) == (3.0, 9)
    assert e.leniency.rules_for("chargeverse-sim", "SIM-LAX") and e.data_transfer == {"com.example": frozenset()}


def test_the_edge_serves_on_uvloop_unless_turned_off() -> None:
    import uvloop

    from edges.ocpp.server import loop_factory

    factory = loop_factory(Settings())
    assert factory is uvloop.new_event_loop
    loop = factory()
    try:
        assert isinstance(loop, uvloop.Loop)
    finally:
        loop.close()
    assert loop_factory(Settings(ocpp_uvloop=False)) is None  # CV_OCPP_UVLOOP=false: asyncio's own loop


class Recorder:
    """A producer stand-in keeping what the edge hands it (the real one: tests/integration/test_ocpp_*.py)."""

    def __init__(self) -> None:
        from chargeverse.avro import default_codec

        self.codec = default_codec()
        self.values: list[bytes] = []

    async def publish_raw(self, topic: str, key: str, value: bytes) -> None:
        self.values.append(value)

    def publish_raw_unawaited(self, topic: str, key: str, value: bytes, on_error: Any) -> None:
        self.values.append(value)


async def test_a_frame_is_the_same_event_with_or_without_the_connections_writer() -> None:
    """Without a FrameWriter (a schema registry, a schema the writer does not know) frames are encoded from records:
    the same fields either way."""
    rec = Recorder()
    e = OcppEdge(Settings(), producer=rec)  # type: ignore[arg-type]
    fast = session()
    fast.writer = e._frame_writer(e.source, "CP-1", "ocpp1.6", "conn-1")  # type: ignore[misc]
    slow = session()
    assert fast.writer is not None and slow.writer is None
    fields = {"message_type_id": 2, "message_id": "m1", "action": "Heartbeat"}
    for s in (fast, slow):
        in_id = await e._publish_frame(s, "IN", '[2,"m1","Heartbeat",{}]', fields)
        e._publish_frame_nowait(s, "OUT", '[3,"m1",{}]', {**fields, "message_type_id": 3}, in_id, "answer")
    events = [rec.codec.decode(v)[1] for v in rec.values]
    volatile = ("event_id", "occurred_at", "recorded_at", "causation_id")
    for a, b in ((events[0], events[2]), (events[1], events[3])):
        assert {k: v for k, v in a.items() if k not in volatile} == {k: v for k, v in b.items() if k not in volatile}
    assert events[1]["causation_id"] == events[0]["event_id"] and events[3]["causation_id"] == events[2]["event_id"]
    assert events[1]["direction"] == "OUT" and events[0]["source"] == e.source
