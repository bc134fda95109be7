"""The dashboard receipt as a one-page PDF (`format=pdf`): an attachment whose figures are the JSON receipt's,
documented next to the JSON answer, with the JSON route's errors."""

from __future__ import annotations

import base64
import io
import re
from decimal import Decimal

import pytest
from pypdf import PdfReader

from chalicelib.adapters.signing import verify_signature
from chalicelib.domain.fingerprints import canonical
from tests.helpers import submit, verify

RECEIPT = "/dashboard/customers/cust_a/receipt?period=2026-04"
PDF = {"Accept": "application/pdf"}  # API Gateway (and Chalice) send binary bodies only to requests accepting them


@pytest.fixture
def key(world, tenant):
    return {"X-Api-Key": world.api_key(tenant, "production")[1]}


def pdf_text(reply) -> str:
    reader = PdfReader(io.BytesIO(reply.body), strict=True)
    assert len(reader.pages) == 1
    return reader.pages[0].extract_text()


def test_a_pdf_receipt_shows_the_json_receipts_figures(api, admin, key, tenant, clock):
    ids = [submit(api, key, amount=a) for a in (10, -2.5, 4)]
    verify(tenant, ids[:2], clock)
    api.post("/dashboard/customers/cust_a/checkpoint", headers=admin, json_body={})
    receipt = api.get(RECEIPT, headers=admin).data
    reply = api.get(f"{RECEIPT}&format=pdf", headers={**admin, **PDF})
    assert reply.status == 200 and reply.headers["content-type"] == "application/pdf"
    assert reply.headers["content-disposition"] == 'attachment; filename="receipt-cust_a-2026-04.pdf"'
    assert isinstance(reply.body, bytes) and reply.body.startswith(b"%PDF-1.4")
    text = pdf_text(reply)
    assert (receipt["startingBalance"], receipt["netChange"], receipt["finalBalance"]) == (0, 11.5, 11.5)
    for label, field in (("Starting balance", "startingBalance"), ("Net change", "netChange"),
                         ("Final balance", "finalBalance")):
        exact = receipt["statement"][field]  # the signed decimal text, e.g. "0" where the JSON number is 0.0
        assert f"{label} {exact}" in text and Decimal(exact) == Decimal(str(receipt[field])), label
    for label, field in (("Deltas", "deltaCount"), ("Verified", "verifiedCount"), ("Failed", "failedCount"),
                         ("Awaiting verification", "awaitingVerification"), ("First sequence", "firstSequence"),
                         ("Last sequence", "lastSequence")):
        assert f"{label} {receipt[field]}" in text, label
    checkpoint = receipt["latestCheckpoint"]
    for value in ("cust_a", "2026-04", receipt["startDate"], receipt["endDate"], receipt["keyId"],
                  receipt["verificationKeysUrl"], checkpoint["checkpointId"], checkpoint["root"],
                  f"Tree size {checkpoint['treeSize']}"):
        assert value in text, value
    # Each request signs a fresh receipt (its own receiptId); the rest of the statement is the JSON one's, so
    # the PDF's receipt id and signature, read back off the page, verify with the published key.
    receipt_id = re.search(r"^Receipt id (rct_\S+)$", text, re.M).group(1)
    lines = re.search(r"^Signature \(Ed25519, base64\)\n(.*?)\nVerification keys ", text, re.M | re.S).group(1)
    signature = "".join(lines.split("\n"))
    assert lines.count("\n") >= 1 and len(signature) == 88 and receipt_id != receipt["receiptId"]
    public = base64.b64decode(api.get("/api/v1/verification-keys").data["keys"][0]["publicKey"])
    assert verify_signature(public, canonical({**receipt["statement"], "receiptId": receipt_id}), signature)
    # The page carries the signed statement itself: the PDF alone is enough to check the signature.
    printed = re.search(r"^Signed statement \(RFC 8785; join these lines without breaks\)\n(.*?)\nTo check", text,
                        re.M | re.S).group(1)
    signed = "".join(printed.split("\n")).encode()
    assert signed == canonical({**receipt["statement"], "receiptId": receipt_id})
    assert verify_signature(public, signed, signature)
    assert not verify_signature(public, signed.replace(b"cust_a", b"cust_b"), signature)


def test_format_json_is_the_default(api, admin, key):
    submit(api, key)
    explicit = api.get(f"{RECEIPT}&format=json", headers=admin)
    assert explicit.status == 200 and explicit.headers["content-type"] == "application/json"
    assert explicit.data["finalBalance"] == api.get(RECEIPT, headers=admin).data["finalBalance"] == 1


def test_the_default_period_names_the_file(api, admin, key):
    submit(api, key)
    reply = api.get("/dashboard/customers/cust_a/receipt?format=pdf", headers={**admin, "Accept": "*/*"})
    assert reply.headers["content-disposition"] == 'attachment; filename="receipt-cust_a-2026-04.pdf"'
    assert "Final balance 1" in pdf_text(reply)


def test_an_unknown_format_is_400(api, admin, key):
    submit(api, key)
    reply = api.get(f"{RECEIPT}&format=xml", headers={**admin, **PDF})
    assert reply.status == 400 and reply.error["code"] == "VALIDATION_ERROR" and reply.error["field"] == "format"


def test_unknown_customers_and_other_tenants_are_404(api, world, admin, key):
    submit(api, key)
    unknown = api.get("/dashboard/customers/cust_zz/receipt?format=pdf", headers={**admin, **PDF})
    assert unknown.status == 404 and unknown.error["code"] == "NOT_FOUND"
    globex = world.auth(world.tenant("Globex"), "admin")
    assert api.get(f"{RECEIPT}&format=pdf", headers={**globex, **PDF}).status == 404
    assert api.get(f"{RECEIPT}&format=pdf", headers=PDF).status == 401


def test_a_request_that_does_not_accept_a_pdf_gets_a_link_to_it(api, admin, key):
    from chalicelib import bootstrap

    submit(api, key)
    reply = api.get(f"{RECEIPT}&format=pdf", headers={**admin, "Accept": "application/json"})
    assert reply.status == 303 and reply.headers["location"] == reply.data["url"]
    assert reply.data["filename"] == "receipt-cust_a-2026-04.pdf"
    stored = bootstrap.artifacts().get(reply.data["url"].split(".amazonaws.com/", 1)[1].split("?", 1)[0]).body
    assert stored.startswith(b"%PDF-1.4") and len(stored) == reply.data["bytes"]


def test_the_openapi_document_lists_both_answers(api):
    operation = api.get("/openapi.json").json["paths"]["/dashboard/customers/{customerId}/receipt"]["get"]
    content = operation["responses"]["200"]["content"]
    assert content["application/pdf"]["schema"] == {"type": "string", "format": "binary"}
    assert content["application/json"]["schema"]["properties"]["data"] == {"$ref": "#/components/schemas/Receipt"}
    formats = [p for p in operation["parameters"] if p["name"] == "format"]
    assert formats[0]["schema"]["enum"] == ["json", "pdf"]
