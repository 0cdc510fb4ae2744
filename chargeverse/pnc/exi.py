"""Real ISO 15118-2 EXI for OCPP 2.0.1 ``Get15118EVCertificate`` (``exiRequest`` / ``exiResponse``).

Why this shape: ISO 15118-2 messages are schema-informed EXI (against V2G_CI_MsgDef.xsd, with the EXI options
ISO 15118-2 fixes: bit-packed, value partition capacity and built-in element grammars / productions 0).  No
maintained pure-Python EXI codec exists; the maintained Python ISO 15118 stack (PyPI ``iso15118``, SwitchEV/EcoG)
ships ``EXICodec.jar`` (EXIficient with the ISO 15118 grammars precompiled) and drives it through py4j.  We cannot
install that package whole: it pins ``pydantic==1.10.21`` and ``cryptography==44.0.0`` (we run pydantic 2 under
FastAPI and pydantic-settings).  So scripts/setup.sh takes only the jar out of the pinned, hash-checked
``iso15118`` wheel into ``.venv/share/chargeverse/EXICodec.jar``, py4j comes from pyproject.toml and the JVM from
Debian (``default-jre-headless``).  None of the ``iso15118`` Python code is used, and we bypass the jar's own JSON
entry point (it rebuilds a JAXB context on every call: ~30 ms CPU per call, ~200 ms per signed response): we map
our JSON-form documents (element names as keys, ``base64Binary`` as base64 text, simple content with attributes as
``{"Id": .., "value": ..}``) to XML ourselves and drive EXIficient's SAX encoder/decoder with factories built once.
A test checks our bytes equal the jar's own path for every document we encode.

What it does: decode CertificateInstallationReq / CertificateUpdateReq (header SessionID, Id, certificates,
ListOfRootCertificateIDs, and the request's XML signature when present, checked against the OEM provisioning or
current contract certificate), and encode CertificateInstallationRes / CertificateUpdateRes with, when an SA
provisioning signer is given, the ISO 15118-2 header signature: one Reference per signed element
(ContractSignatureCertChain, ContractSignatureEncryptedPrivateKey, DHpublickey, eMAID), each digest the SHA-256 of
that element's EXI fragment encoding, SignedInfo EXI-encoded against xmldsig-core-schema and signed ECDSA-SHA256,
SignatureValue = r || s.

Invariants:
- the CVX1 stand-in (exi_standin.py) stays accepted; a request is answered in the format it came in;
- one JVM per process, started on the first real-EXI message, behind a lock (one shared SAX reader); it dies
  with the process (py4j ``die_on_exit``) and its gateway needs a random per-launch token (``enable_auth``), so
  another local user cannot drive the JVM;
- every size is bounded before decoding (the stream by OCPP's 5600 characters; each certificate by the schema's
  800 bytes); anything the codec cannot decode is ``MalformedExi``, never a crash;
- no codec available (no java, no jar, no py4j) is a clear ``NotEnabled`` rejection naming what is missing.
"""

from __future__ import annotations

import atexit
import base64
import binascii
import hashlib
import json
import logging
import os
import re
import shutil
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.etree import ElementTree
from xml.sax.saxutils import escape as xml_escape
from xml.sax.saxutils import quoteattr

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

from chargeverse.pnc import exi_standin
from chargeverse.pnc.errors import PncRejection, Reason
from chargeverse.pnc.signer import CaSigner

NS_MSG_DEF = "urn:iso:15118:2:2013:MsgDef"
NS_XMLDSIG = "http://www.w3.org/2000/09/xmldsig#"
ALG_C14N_EXI = "http://www.w3.org/TR/canonical-exi/"
ALG_ECDSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"
ALG_SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"
log = logging.getLogger("chargeverse.pnc.exi")
JAR_ENV = "CV_EXI_CODEC_JAR"
JAVA_ENV = "CV_EXI_JAVA"
JAVA_CLASS = "com.siemens.ct.exi.main.cmd.EXICodec"
MAX_CERT_BYTES = 800  # certificateType maxLength
MAX_SUB_CERTIFICATES = 4  # SubCertificatesType maxOccurs
MAX_ROOT_IDS = 20  # ListOfRootCertificateIDsType maxOccurs
NO_SESSION = b"\x00" * 8
_DER = Encoding.DER
SIGNED_ELEMENTS = ("ContractSignatureCertChain", "ContractSignatureEncryptedPrivateKey", "DHpublickey", "eMAID")


# ---- the codec process ----------------------------------------------------------------------------------------------
def jar_path() -> Path:
    """Where setup.sh puts the jar: ``<venv>/share/chargeverse/EXICodec.jar`` unless ``CV_EXI_CODEC_JAR`` says."""
    explicit = os.environ.get(JAR_ENV)
    return Path(explicit) if explicit else Path(sys.prefix) / "share" / "chargeverse" / "EXICodec.jar"


def unavailable_reason() -> str | None:
    """Why no real EXI codec can run here, or None when it can (cheap: no JVM is started)."""
    java = os.environ.get(JAVA_ENV) or shutil.which("java")
    if not java:
        return "no Java runtime on PATH (Debian: apt-get install default-jre-headless; scripts/setup.sh does)"
    if not jar_path().is_file():
        return f"EXI codec jar missing at {jar_path()} (scripts/setup.sh installs it)"
    try:
        import py4j  # noqa: F401
    except ImportError:
        return "py4j is not installed (pyproject.toml dependency)"
    return None


_MSG = "urn:iso:15118:2:2013:"
NS_HEADER, NS_BODY, NS_TYPES = _MSG + "MsgHeader", _MSG + "MsgBody", _MSG + "MsgDataTypes"
_MESSAGES = frozenset({"CertificateInstallationReq", "CertificateInstallationRes", "CertificateUpdateReq",
                       "CertificateUpdateRes"})
_ATTRIBUTES = frozenset({"Id", "Algorithm", "URI", "Type"})  # all unqualified in these schemas
_INTEGERS = frozenset({"X509SerialNumber", "RetryCounter"})
_REPEATED = frozenset({"RootCertificateID", "Reference", "Transform"})  # SubCertificates/Certificate too


def _namespace(name: str, parent: str | None, parent_ns: str | None) -> str:
    """The namespace of element ``name`` under ``parent`` (V2G_CI_*.xsd are elementFormDefault="qualified")."""
    if name in ("Signature", "SignedInfo") or parent_ns == NS_XMLDSIG or parent == "RootCertificateID":
        return NS_XMLDSIG
    if parent is None:
        return NS_MSG_DEF if name == "V2G_Message" else NS_BODY
    if parent == "V2G_Message":
        return NS_MSG_DEF
    if parent == "Header":
        return NS_HEADER
    if parent == "Body" or parent in _MESSAGES:
        return NS_BODY
    return NS_TYPES


def _to_xml(doc: dict[str, Any]) -> str:
    """The XML of a one-root JSON-form document (insertion order is schema order)."""
    out: list[str] = ['<?xml version="1.0" encoding="UTF-8"?>']
    prefixes = {NS_MSG_DEF: "d", NS_HEADER: "h", NS_BODY: "b", NS_TYPES: "t", NS_XMLDSIG: "s"}

    def element(name: str, value: Any, parent: str | None, parent_ns: str | None) -> None:
        if isinstance(value, list):
            for item in value:
                element(name, item, parent, parent_ns)
            return
        ns = _namespace(name, parent, parent_ns)
        tag = f"{prefixes[ns]}:{name}"
        head = tag + ("".join(f' xmlns:{p}="{u}"' for u, p in prefixes.items()) if parent is None else "")
        if not isinstance(value, dict):
            out.append(f"<{head}>{xml_escape(_scalar(value))}</{tag}>")
            return
        # V2G_CI_*.xsd say attributeFormDefault="qualified": Id is in the namespace of the schema defining the
        # element's type (MsgBody for the messages, MsgDataTypes for the rest); xmldsig's attributes are not
        owner = "" if ns == NS_XMLDSIG else ("b:" if name in _MESSAGES else "t:")
        attrs = "".join(f' {owner}{k}={quoteattr(_scalar(v))}' for k, v in value.items() if k in _ATTRIBUTES)
        out.append(f"<{head}{attrs}>")
        for key, child in value.items():
            if key == "value":
                out.append(xml_escape(_scalar(child)))
            elif key not in _ATTRIBUTES:
                element(key, child, name, ns)
        out.append(f"</{tag}>")

    (root, content), = doc.items()
    element(root, content, None, None)
    return "".join(out)


def _scalar(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ValueError(f"not a text or integer value: {type(value).__name__}")
    return str(value)


def _from_xml(text: str) -> dict[str, Any]:
    """The JSON form of decoder output (namespaces dropped: names are unique within their parent here)."""
    root = ElementTree.fromstring(text.encode("utf-8"))

    def local(tag: str) -> str:
        return tag.rsplit("}", 1)[-1]

    def convert(el: ElementTree.Element) -> Any:
        name = local(el.tag)
        attrs = {local(k): v for k, v in el.attrib.items() if not k.startswith("{http://www.w3.org/2001/XMLSchema")}
        children = list(el)
        if not children:
            text = el.text or ""
            scalar: Any = int(text) if name in _INTEGERS and text.strip().lstrip("-").isdigit() else text
            return {**attrs, "value": scalar} if attrs else scalar
        out: dict[str, Any] = dict(attrs)
        for child in children:
            key = local(child.tag)
            value = convert(child)
            if key in out:
                out[key] = [*_list(out[key]), value]
            elif key in _REPEATED or (key == "Certificate" and name == "SubCertificates"):
                out[key] = [value]
            else:
                out[key] = value
        return out

    return {local(root.tag): convert(root)}


def _java_message(exc: Any) -> str:
    """The Java exception's message without its chain of class-name prefixes (it goes into statusInfo)."""
    text = str(exc.java_exception) if hasattr(exc, "java_exception") else str(exc)
    return re.sub(r"^(?:[a-z][\w$]*(?:\.[\w$]+)+: )+", "", text)[:200]


class ExiCodec:
    """One EXIficient JVM behind an authenticated py4j gateway: JSON-form documents in and out.

    Encoding and decoding drive EXIficient's SAX API directly with factories built once (the ISO 15118-2 and
    xmldsig grammars precompiled in the jar, and the options the jar's own codec sets: bit-packed, strict
    grammars, value partition capacity / built-in grammars and productions 0; fragment mode for the signed
    elements and SignedInfo).  The jar's own JSON entry point (``jar_json_encode``) rebuilds a JAXB context per
    call (~30 ms CPU); it is kept only as the independent cross-check the tests use."""

    def __init__(self, jar: Path | None = None, java: str | None = None) -> None:
        reason = unavailable_reason() if jar is None else None
        if reason:
            raise PncRejection(Reason.NOT_ENABLED, f"real ISO 15118-2 EXI unavailable: {reason}")
        from py4j.java_gateway import GatewayParameters, JavaGateway, launch_gateway

        port, token, self._proc = launch_gateway(
            classpath=str(jar or jar_path()), die_on_exit=True, enable_auth=True, return_proc=True,
            java_path=java or os.environ.get(JAVA_ENV) or shutil.which("java") or "java",
            javaopts=["--add-opens", "java.base/java.lang=ALL-UNNAMED", "-Xmx256m", "-Xss4m"])
        self._gateway = JavaGateway(gateway_parameters=GatewayParameters(port=port, auth_token=token))
        self._lock = threading.Lock()
        jvm: Any = self._gateway.jvm
        self._jvm = jvm
        base = jvm.com.siemens.ct.exi.core.helpers.DefaultEXIFactory.newInstance()
        for setter in ("setValueMaxLength", "setValuePartitionCapacity", "setMaximumNumberOfBuiltInElementGrammars",
                       "setMaximumNumberOfBuiltInProductions"):
            getattr(base, setter)(0)
        grammar = jvm.com.siemens.ct.exi.main.generatedgrammar
        self._factories: dict[tuple[str, bool], Any] = {}
        for namespace, grammars in ((NS_MSG_DEF, grammar.ISO15118_2Grammar()),
                                    (NS_XMLDSIG, grammar.XMLDSIG_Core_Schema_Grammar())):
            for fragment in (False, True):
                factory = base.clone()
                factory.setGrammars(grammars)
                factory.setFragment(fragment)
                self._factories[(namespace, fragment)] = factory
        parsers = jvm.javax.xml.parsers.SAXParserFactory.newInstance()
        parsers.setNamespaceAware(True)
        self._reader = parsers.newSAXParser().getXMLReader()
        self._transformers = jvm.javax.xml.transform.TransformerFactory.newInstance()
        self._jar_codec: Any = None

    def _factory(self, root: str, namespace: str) -> Any:
        return self._factories[(namespace, namespace != NS_MSG_DEF or root != "V2G_Message")]

    def encode(self, doc: dict[str, Any], namespace: str) -> bytes:
        """EXI of ``doc`` (one root); ValueError when it does not fit the schema, NotEnabled when the JVM is gone."""
        from py4j.protocol import Py4JError, Py4JJavaError

        if len(doc) != 1:
            raise ValueError("one root element expected")
        xml = _to_xml(doc)
        jvm = self._jvm
        try:
            with self._lock:
                result = jvm.com.siemens.ct.exi.main.api.sax.EXIResult(self._factory(next(iter(doc)), namespace))
                sink = jvm.java.io.ByteArrayOutputStream()
                result.setOutputStream(sink)
                self._reader.setContentHandler(result.getHandler())
                self._reader.parse(jvm.org.xml.sax.InputSource(jvm.java.io.StringReader(xml)))
                return bytes(sink.toByteArray())
        except Py4JJavaError as exc:
            raise ValueError(f"EXI encoding failed: {_java_message(exc)}") from exc
        except Py4JError as exc:
            raise PncRejection(Reason.NOT_ENABLED, f"EXI codec process failed: {str(exc)[:200]}") from exc

    def decode(self, stream: bytes, namespace: str, *, fragment: bool = False) -> dict[str, Any]:
        """The JSON form of an EXI stream; anything the decoder refuses is ``MalformedExi``."""
        from py4j.protocol import Py4JError, Py4JJavaError

        jvm = self._jvm
        try:
            with self._lock:
                source = jvm.com.siemens.ct.exi.main.api.sax.EXISource(self._factories[(namespace, fragment)])
                sax = jvm.javax.xml.transform.sax.SAXSource(
                    source.getXMLReader(), jvm.org.xml.sax.InputSource(jvm.java.io.ByteArrayInputStream(stream)))
                text = jvm.java.io.StringWriter()
                self._transformers.newTransformer().transform(sax, jvm.javax.xml.transform.stream.StreamResult(text))
                xml = str(text.toString())
        except Py4JJavaError as exc:
            raise PncRejection(Reason.MALFORMED_EXI, f"not ISO 15118-2 EXI: {_java_message(exc)}") from exc
        except Py4JError as exc:  # the JVM is gone or unreachable: not the car's fault
            raise PncRejection(Reason.NOT_ENABLED, f"EXI codec process failed: {str(exc)[:200]}") from exc
        try:
            return _from_xml(xml)
        except (ElementTree.ParseError, ValueError) as exc:
            raise PncRejection(Reason.MALFORMED_EXI, f"EXI decoder output unreadable: {exc}") from exc

    def jar_json_encode(self, doc: dict[str, Any], namespace: str) -> bytes:
        """The jar's own JSON -> JAXB -> EXI path (slow; the tests' independent cross-check of ``encode``)."""
        with self._lock:
            if self._jar_codec is None:
                cls: Any = self._jvm
                for part in JAVA_CLASS.split("."):
                    cls = getattr(cls, part)
                self._jar_codec = cls()
            out = self._jar_codec.encode(json.dumps(doc), namespace)
            if out is None:
                raise ValueError(str(self._jar_codec.get_last_encoding_error()))
        return bytes(out)

    def close(self) -> None:
        try:
            self._gateway.shutdown()
        except Exception:  # noqa: BLE001 - the JVM may already be gone; closing must not raise
            pass
        if self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait(timeout=5)


_default: ExiCodec | None = None
_default_lock = threading.Lock()


def default_codec() -> ExiCodec:
    """The process-wide codec, started on first use (JVM start: a few seconds once)."""
    global _default
    with _default_lock:
        if _default is None or _default._proc.poll() is not None:
            _default = ExiCodec()
            atexit.register(_default.close)
        return _default


# ---- requests -------------------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class RealInstallationRequest(exi_standin.InstallationRequest):
    """A decoded EXI CertificateInstallationReq (the service treats it like the CVX1 one)."""

    session_id: bytes
    root_certificate_ids: tuple[tuple[str, int], ...]
    signature_checked: bool


@dataclass(frozen=True, slots=True)
class RealUpdateRequest(exi_standin.UpdateRequest):
    session_id: bytes
    root_certificate_ids: tuple[tuple[str, int], ...]
    signature_checked: bool


def is_cvx1(stream: bytes) -> bool:
    return stream.startswith(exi_standin.PREFIX)


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _bytes(value: object, what: str, limit: int = MAX_CERT_BYTES) -> bytes:
    if not isinstance(value, str) or len(value) > 4 * ((limit + 2) // 3):
        raise PncRejection(Reason.MALFORMED_EXI, f"{what}: base64Binary of at most {limit} bytes expected")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise PncRejection(Reason.MALFORMED_EXI, f"{what}: {exc}") from exc


def _text(value: object, what: str, limit: int) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= limit:
        raise PncRejection(Reason.MALFORMED_EXI, f"{what}: string of 1..{limit} characters expected")
    return value


def _chain(value: object, what: str) -> tuple[bytes, tuple[bytes, ...]]:
    if not isinstance(value, dict) or "Certificate" not in value:
        raise PncRejection(Reason.MALFORMED_EXI, f"{what}: Certificate expected")
    subs_doc = value.get("SubCertificates")
    subs: list[Any] = []
    if subs_doc is not None:
        if not isinstance(subs_doc, dict):
            raise PncRejection(Reason.MALFORMED_EXI, f"{what}.SubCertificates: Certificate list expected")
        subs = _list(subs_doc.get("Certificate"))
        if len(subs) > MAX_SUB_CERTIFICATES:
            raise PncRejection(Reason.MALFORMED_EXI, f"{what}: at most {MAX_SUB_CERTIFICATES} sub-certificates")
    return (_bytes(value["Certificate"], f"{what}.Certificate"),
            tuple(_bytes(c, f"{what}.SubCertificates[{i}]") for i, c in enumerate(subs)))


def _root_ids(value: object) -> tuple[tuple[str, int], ...]:
    if value is None:
        return ()
    if not isinstance(value, dict):
        raise PncRejection(Reason.MALFORMED_EXI, "ListOfRootCertificateIDs: RootCertificateID list expected")
    ids = _list(value.get("RootCertificateID"))
    if len(ids) > MAX_ROOT_IDS:
        raise PncRejection(Reason.MALFORMED_EXI, f"ListOfRootCertificateIDs: at most {MAX_ROOT_IDS}")
    out = []
    for i, rid in enumerate(ids):
        if not isinstance(rid, dict) or not isinstance(rid.get("X509SerialNumber"), int):
            raise PncRejection(Reason.MALFORMED_EXI, f"RootCertificateID[{i}]: X509IssuerName and X509SerialNumber")
        out.append((_text(rid.get("X509IssuerName"), f"RootCertificateID[{i}].X509IssuerName", 1024),
                    int(rid["X509SerialNumber"])))
    return tuple(out)


def _session_id(header: object) -> bytes:
    sid = header.get("SessionID") if isinstance(header, dict) else None
    try:
        raw = bytes.fromhex(sid) if isinstance(sid, str) else b""
    except ValueError:
        raw = b""
    if not raw or len(raw) > 8:
        raise PncRejection(Reason.MALFORMED_EXI, "Header.SessionID: 1..8 bytes of hexBinary expected")
    return raw


def _split(doc: dict[str, Any]) -> tuple[dict[str, Any], str, dict[str, Any]]:
    msg = doc.get("V2G_Message")
    if not isinstance(msg, dict) or not isinstance(msg.get("Header"), dict) or not isinstance(msg.get("Body"), dict):
        raise PncRejection(Reason.MALFORMED_EXI, "not a V2G_Message with Header and Body")
    body = msg["Body"]
    if len(body) != 1:
        raise PncRejection(Reason.MALFORMED_EXI, "Body must hold exactly one message")
    name, content = next(iter(body.items()))
    if not isinstance(content, dict):
        raise PncRejection(Reason.MALFORMED_EXI, f"{name}: element content expected")
    return msg["Header"], name, content


def decode_request(stream: bytes, action: str, codec: ExiCodec | None = None
                   ) -> exi_standin.InstallationRequest | exi_standin.UpdateRequest:
    """The request in ``stream``: CVX1 goes to the stand-in, anything else is decoded as ISO 15118-2 EXI.

    ``action`` is the OCPP action (Install / Update) and must match the message.  A signature in the request's
    header, if present, must verify against the certificate the request carries (else ``BadSignature``)."""
    if is_cvx1(stream):
        return exi_standin.decode_request(stream, action)
    if len(stream) > exi_standin.MAX_STREAM_BYTES:
        raise PncRejection(Reason.OVERSIZED_INPUT, f"EXI stream of {len(stream)} bytes, "
                           f"limit {exi_standin.MAX_STREAM_BYTES}")
    codec = codec or default_codec()
    header, name, body = _split(codec.decode(stream, NS_MSG_DEF))
    expected = "CertificateInstallationReq" if action == "Install" else "CertificateUpdateReq"
    if name != expected:
        raise PncRejection(Reason.MALFORMED_EXI, f"OCPP action {action} needs {expected}, got {name}")
    session = _session_id(header)
    message_id = _text(body.get("Id"), f"{name}.Id", 64)
    roots = _root_ids(body.get("ListOfRootCertificateIDs"))
    if name == "CertificateInstallationReq":
        leaf = _bytes(body.get("OEMProvisioningCert"), "OEMProvisioningCert")
        checked = _check_request_signature(codec, header, name, body, leaf)
        return RealInstallationRequest(message_id, leaf, (), session, roots, checked)
    contract, subs = _chain(body.get("ContractSignatureCertChain"), "ContractSignatureCertChain")
    emaid_doc = body.get("eMAID")
    emaid = _text(emaid_doc.get("value") if isinstance(emaid_doc, dict) else emaid_doc, "eMAID", 15)
    checked = _check_request_signature(codec, header, name, body, contract)
    return RealUpdateRequest(message_id, contract, subs, emaid, session, roots, checked)


def _check_request_signature(codec: ExiCodec, header: dict[str, Any], name: str, body: dict[str, Any],
                             signer_der: bytes) -> bool:
    """ISO 15118-2: the car signs the request element (Reference to its Id) with the key of ``signer_der``.
    Absent signature: False (the caller decides; OCPP gives the CSMS no way to ask again).  Wrong: rejection."""
    sig = header.get("Signature")
    if sig is None:
        return False
    try:
        public_key = x509.load_der_x509_certificate(signer_der).public_key()
    except ValueError as exc:
        raise PncRejection(Reason.MALFORMED_CERTIFICATE, f"certificate of the signer: {exc}") from exc
    except UnsupportedAlgorithm as exc:
        raise PncRejection(Reason.UNSUPPORTED_KEY, f"certificate of the signer: {exc}") from exc
    if not isinstance(public_key, ec.EllipticCurvePublicKey):
        raise PncRejection(Reason.UNSUPPORTED_KEY, "the request signer's key is not ECDSA")
    verify_signature(codec, sig, {name: body}, public_key)
    return True


# ---- signatures -----------------------------------------------------------------------------------------------------
def fragment_digest(codec: ExiCodec, element: dict[str, Any]) -> bytes:
    """SHA-256 over the EXI fragment encoding of one element ``{name: content}`` (ISO 15118-2 canonical EXI)."""
    try:
        return hashlib.sha256(codec.encode(element, NS_MSG_DEF)).digest()
    except ValueError as exc:
        raise PncRejection(Reason.BAD_SIGNATURE, f"signed element {next(iter(element))} cannot be re-encoded") from exc


def signed_info(references: Sequence[tuple[str, bytes]]) -> dict[str, Any]:
    return {"CanonicalizationMethod": {"Algorithm": ALG_C14N_EXI},
            "SignatureMethod": {"Algorithm": ALG_ECDSA_SHA256},
            "Reference": [{"URI": f"#{uri}", "Transforms": {"Transform": [{"Algorithm": ALG_C14N_EXI}]},
                           "DigestMethod": {"Algorithm": ALG_SHA256},
                           "DigestValue": base64.b64encode(digest).decode()} for uri, digest in references]}


def sign(codec: ExiCodec, elements: Sequence[dict[str, Any]], signer: CaSigner) -> dict[str, Any]:
    """The header ``Signature`` over ``elements`` (each ``{name: content}`` with an ``Id``)."""
    refs = [(next(iter(e.values()))["Id"], fragment_digest(codec, e)) for e in elements]
    info = signed_info(refs)
    r, s = decode_dss_signature(signer.sign(codec.encode({"SignedInfo": info}, NS_XMLDSIG)))
    return {"SignedInfo": info, "SignatureValue": {"value": base64.b64encode(r.to_bytes(32, "big")
                                                                              + s.to_bytes(32, "big")).decode()}}


def verify_signature(codec: ExiCodec, signature: object, elements: dict[str, Any],
                     public_key: ec.EllipticCurvePublicKey) -> None:
    """Check a header ``Signature``: every Reference names one of ``elements`` (by Id), digests match, and the
    SignatureValue (r || s) verifies over the EXI SignedInfo.  Any failure is ``BadSignature``."""
    if not isinstance(signature, dict) or not isinstance(signature.get("SignedInfo"), dict):
        raise PncRejection(Reason.BAD_SIGNATURE, "Signature without SignedInfo")
    info = signature["SignedInfo"]
    by_id = {c.get("Id"): {n: c} for n, c in elements.items() if isinstance(c, dict)}
    refs = _list(info.get("Reference"))
    if not refs or len(refs) > len(by_id):
        raise PncRejection(Reason.BAD_SIGNATURE, "Signature references nothing or too much")
    for ref in refs:
        if not isinstance(ref, dict) or not isinstance(ref.get("URI"), str):
            raise PncRejection(Reason.BAD_SIGNATURE, "Reference without URI")
        target = by_id.get(ref["URI"].removeprefix("#"))
        if target is None:
            raise PncRejection(Reason.BAD_SIGNATURE, f"Reference {ref['URI'][:70]} names no signed element")
        method = ref.get("DigestMethod")
        if not isinstance(method, dict) or method.get("Algorithm") != ALG_SHA256:
            raise PncRejection(Reason.WRONG_HASH_ALGORITHM, "Reference digest must be SHA-256")
        if _bytes(ref.get("DigestValue"), "DigestValue", 64) != fragment_digest(codec, target):
            raise PncRejection(Reason.BAD_SIGNATURE, f"digest of {next(iter(target))} does not match")
    value_doc = signature.get("SignatureValue")
    value = _bytes(value_doc.get("value") if isinstance(value_doc, dict) else value_doc, "SignatureValue", 64)
    if len(value) != 64:
        raise PncRejection(Reason.BAD_SIGNATURE, "SignatureValue must be r || s, 64 bytes")
    der = encode_dss_signature(int.from_bytes(value[:32], "big"), int.from_bytes(value[32:], "big"))
    try:
        public_key.verify(der, codec.encode({"SignedInfo": info}, NS_XMLDSIG), ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError) as exc:  # ValueError: SignedInfo does not re-encode
        raise PncRejection(Reason.BAD_SIGNATURE, "SignatureValue does not verify over SignedInfo") from exc


# ---- responses ------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SaProvisioning:
    """The certificate provisioning service's chain (CPS leaf first, then its sub-CAs) and, to sign, its key.

    ISO 15118-2 makes SAProvisioningCertificateChain mandatory in both responses and the car verifies the header
    signature with the leaf against a V2G root it trusts; without a signer the response goes out unsigned."""

    chain_der: tuple[bytes, ...]
    signer: CaSigner | None = None


def _chain_doc(chain_der: Sequence[bytes], element_id: str | None = None) -> dict[str, Any]:
    doc: dict[str, Any] = {"Id": element_id} if element_id else {}
    doc["Certificate"] = base64.b64encode(chain_der[0]).decode()
    if len(chain_der) > 1:
        doc["SubCertificates"] = {"Certificate": [base64.b64encode(c).decode() for c in chain_der[1:]]}
    return doc


def encode_response(action: str, response_code: str, sa: SaProvisioning, *, session_id: bytes = NO_SESSION,
                    chain_der: Sequence[bytes] | None = None, encrypted_private_key: bytes | None = None,
                    dh_public_key: bytes | None = None, emaid: str | None = None,
                    codec: ExiCodec | None = None) -> bytes:
    """CertificateInstallationRes / CertificateUpdateRes as ISO 15118-2 EXI.

    The schema makes every element mandatory even on failure; a FAILED_* response therefore carries empty
    certificates and keys and the placeholder eMAID ``ZZ00000000000X`` (the EV must ignore them: the
    ResponseCode says FAILED), and is never signed."""
    if not sa.chain_der:
        raise ValueError("SAProvisioningCertificateChain needs at least the CPS leaf")
    ok = response_code.startswith("OK")
    if ok and not (chain_der and encrypted_private_key and dh_public_key and emaid):
        raise ValueError("an OK response carries the chain, the wrapped key, the DH public key and the eMAID")
    codec = codec or default_codec()
    signed = {
        "ContractSignatureCertChain": _chain_doc(chain_der if ok and chain_der else [b""], "id1"),
        "ContractSignatureEncryptedPrivateKey": {"Id": "id2", "value": base64.b64encode(
            encrypted_private_key if ok and encrypted_private_key else b"").decode()},
        "DHpublickey": {"Id": "id3", "value": base64.b64encode(
            dh_public_key if ok and dh_public_key else b"").decode()},
        "eMAID": {"Id": "id4", "value": emaid if ok and emaid else "ZZ00000000000X"},
    }
    body: dict[str, Any] = {"ResponseCode": response_code, "SAProvisioningCertificateChain": _chain_doc(sa.chain_der),
                            **signed}
    header: dict[str, Any] = {"SessionID": (session_id or NO_SESSION).hex().upper()}
    if ok and sa.signer is not None:
        header["Signature"] = sign(codec, [{k: v} for k, v in signed.items()], sa.signer)
    name = "CertificateInstallationRes" if action == "Install" else "CertificateUpdateRes"
    try:
        return codec.encode({"V2G_Message": {"Header": header, "Body": {name: body}}}, NS_MSG_DEF)
    except ValueError as exc:  # our own document: a schema violation here is a bug, say which
        raise ValueError(f"{name} does not fit the ISO 15118-2 schema: {exc}") from exc


def respond(action: str, response_code: str, request_stream: bytes | None,
            request: exi_standin.InstallationRequest | exi_standin.UpdateRequest | None,
            sa: SaProvisioning | None, *, chain_der: Sequence[bytes] | None = None,
            encrypted_private_key: bytes | None = None, dh_public_key: bytes | None = None,
            emaid: str | None = None) -> bytes:
    """Answer in the request's format: real EXI to a real-EXI request, CVX1 otherwise (and to a stream that
    never passed the EXI header check, or when no codec / no SA chain is available for a failure)."""
    real = (request_stream is not None and not is_cvx1(request_stream)
            and (request is None or isinstance(request, (RealInstallationRequest, RealUpdateRequest))))
    if real and sa is not None:
        session = request.session_id if isinstance(request, (RealInstallationRequest, RealUpdateRequest)) \
            else NO_SESSION
        try:
            return encode_response(action, response_code, sa, session_id=session, chain_der=chain_der,
                                   encrypted_private_key=encrypted_private_key, dh_public_key=dh_public_key,
                                   emaid=emaid)
        except Exception as exc:  # noqa: BLE001 - no codec, a dead JVM, or a bug: never crash the handler
            if response_code.startswith("OK"):
                raise PncRejection(Reason.NOT_ENABLED, f"EXI encoding of the response failed: {exc}"[:300]) from exc
            log.warning("EXI encoding of a %s response failed, answering in CVX1: %s", response_code, exc)
    return exi_standin.encode_response(action, response_code, chain_der=list(chain_der) if chain_der else None,
                                       encrypted_private_key=encrypted_private_key, dh_public_key=dh_public_key,
                                       emaid=emaid)


def decode_response(stream: bytes, codec: ExiCodec | None = None) -> tuple[dict[str, Any], str, dict[str, Any]]:
    """What the car does with our answer (tests, tools): (Header, message name, Body content), JSON form."""
    return _split((codec or default_codec()).decode(stream, NS_MSG_DEF))


def encode_request_installation(oem_cert_der: bytes, *, session_id: bytes = b"\x01" * 8, message_id: str = "id1",
                                root_ids: Sequence[tuple[str, int]] = (), sign_with: ec.EllipticCurvePrivateKey
                                | None = None, codec: ExiCodec | None = None) -> bytes:
    """What a car (or a test playing one) sends for CertificateInstallation, optionally signed by its OEM key."""
    body = {"Id": message_id, "OEMProvisioningCert": base64.b64encode(oem_cert_der).decode(),
            "ListOfRootCertificateIDs": _root_doc(root_ids)}
    return _request("CertificateInstallationReq", body, session_id, sign_with, codec or default_codec())


def encode_request_update(contract_der: bytes, subs_der: Sequence[bytes], emaid: str, *,
                          session_id: bytes = b"\x01" * 8, message_id: str = "id1",
                          root_ids: Sequence[tuple[str, int]] = (), sign_with: ec.EllipticCurvePrivateKey | None = None,
                          codec: ExiCodec | None = None) -> bytes:
    body = {"Id": message_id, "ContractSignatureCertChain": _chain_doc([contract_der, *subs_der]),
            "eMAID": emaid, "ListOfRootCertificateIDs": _root_doc(root_ids)}  # here eMAIDType: no Id
    return _request("CertificateUpdateReq", body, session_id, sign_with, codec or default_codec())


def _root_doc(root_ids: Sequence[tuple[str, int]]) -> dict[str, Any]:
    ids = root_ids or [("CN=V2GRootCA", 1)]  # the schema wants at least one
    return {"RootCertificateID": [{"X509IssuerName": n, "X509SerialNumber": s} for n, s in ids]}


def _request(name: str, body: dict[str, Any], session_id: bytes, key: ec.EllipticCurvePrivateKey | None,
             codec: ExiCodec) -> bytes:
    header: dict[str, Any] = {"SessionID": session_id.hex().upper()}
    if key is not None:
        header["Signature"] = sign(codec, [{name: body}], _KeySigner(key))
    return codec.encode({"V2G_Message": {"Header": header, "Body": {name: body}}}, NS_MSG_DEF)


class _KeySigner:
    """A CaSigner over a plain key (the car's side, in tests and tools)."""

    def __init__(self, key: ec.EllipticCurvePrivateKey) -> None:
        self._key = key

    def public_key(self) -> ec.EllipticCurvePublicKey:
        return self._key.public_key()

    def sign(self, data: bytes) -> bytes:
        return self._key.sign(data, ec.ECDSA(hashes.SHA256()))


def sa_from_material(material: object) -> SaProvisioning:
    """The SA provisioning chain the service answers with.

    A ``cps`` attribute on the CA material (chargeverse.pnc.cps.SigningLeaf: ``signer`` and ``path_to_root``, made
    and renewed by edges/pnc/material.py or imported with ``cv pnc import-cps``) gives a signed response: the CPS
    leaf and its sub-CAs, root left out as ISO 15118-2 requires.  When it is None (no usable CPS chain) the
    response carries the CPO sub-CA chain and is unsigned; a car that insists on the signature refuses it, which
    is the truth: we hold no CPS key to sign with."""
    cps = getattr(material, "cps", None)
    if cps is not None and hasattr(cps, "signer") and hasattr(cps, "path_to_root"):
        path = list(cps.path_to_root)
        return SaProvisioning(tuple(c.public_bytes(_DER) for c in (path[:-1] or path)), cps.signer)
    cpo = getattr(material, "cpo_sub2")
    path = list(cpo.path_to_root)
    return SaProvisioning(tuple(c.public_bytes(_DER) for c in (path[:-1] or path)), None)
