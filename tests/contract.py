"""A chalice.test.Client wrapper that checks every response against GET /openapi.json.

Any undocumented status, or a body that does not match its schema, fails the
test that made the request: the whole functional suite doubles as a contract test.
"""

from __future__ import annotations

import copy
import json
import re
from functools import lru_cache
from typing import Any

from chalice.test import Client
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

DOC_URI = "urn:tally:openapi"


@lru_cache(maxsize=1)
def _document() -> dict:
    from chalicelib.api.openapi import build_document

    return build_document("http://testserver")


@lru_cache(maxsize=1)
def _registry() -> Registry:
    return Registry().with_resource(DOC_URI, Resource.from_contents(_document(), default_specification=DRAFT202012))


def _absolute_refs(schema: Any) -> Any:
    if isinstance(schema, dict):
        return {k: (DOC_URI + v if k == "$ref" and v.startswith("#") else _absolute_refs(v)) for k, v in schema.items()}
    if isinstance(schema, list):
        return [_absolute_refs(v) for v in schema]
    return schema


def _match(path: str) -> str | None:
    for template in _document()["paths"]:
        pattern = "^" + re.sub(r"\{[^}]+\}", "[^/]+", template) + "$"
        if re.match(pattern, path):
            return template
    return None


class Reply:
    def __init__(self, raw: Any) -> None:
        self.status = raw.status_code
        self.headers = {k.lower(): v for k, v in raw.headers.items()}
        self.body = raw.body
        self._raw = raw

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def data(self) -> Any:
        return self.json["data"]

    @property
    def error(self) -> dict:
        return self.json["error"]

    def __repr__(self) -> str:
        return f"<Reply {self.status} {self.body[:300]!r}>"


def check_contract(method: str, path: str, reply: Reply) -> None:
    bare = path.split("?", 1)[0]
    template = _match(bare)
    if template is None or method.lower() not in _document()["paths"][template]:
        # Unknown routes and methods: only the error envelope (platform style on /tenants) is promised.
        platform = template is not None and (template == "/tenants" or template.startswith("/tenants/"))
        schema = {"$ref": "#/components/schemas/" + ("PlatformError" if platform else "Error")}
    else:
        operation = _document()["paths"][template][method.lower()]
        documented = operation["responses"].get(str(reply.status))
        assert documented, f"{method} {template} answered undocumented status {reply.status}: {reply!r}"
        media = reply.headers.get("content-type", "application/json").split(";", 1)[0].strip()
        assert media in documented["content"], f"{method} {template} {reply.status} answered undocumented {media}"
        missing = [name for name, spec in documented.get("headers", {}).items()
                   if spec.get("required") and name.lower() not in reply.headers]
        assert not missing, f"{method} {template} {reply.status} lacks the required headers {missing}"
        if media != "application/json":
            return  # a file (CSV, zip): its media type is the contract
        schema = documented["content"]["application/json"]["schema"]
    validator = Draft202012Validator(_absolute_refs(copy.deepcopy(schema)), registry=_registry())
    errors = sorted(validator.iter_errors(reply.json), key=str)
    assert not errors, f"{method} {path} {reply.status} breaks the contract: {errors[0].message}\n{reply!r}"


class ContractClient:
    """HTTP-level client: chalice.test.Client with the deployed gateway's unknown-route answer."""

    def __init__(self) -> None:
        from app import app
        from chalicelib.cli.local_gateway import TallyLocalGateway

        self._client = Client(app)
        http = self._client.http
        http._local_gateway = TallyLocalGateway(app, http._config)

    def request(self, method: str, path: str, *, json_body: Any = None, body: bytes | str | None = None,
                headers: dict | None = None) -> Reply:
        headers = dict(headers or {})
        if json_body is not None:
            body = json.dumps(json_body)
            headers.setdefault("Content-Type", "application/json")
        if isinstance(body, str):
            body = body.encode()
        raw = self._client.http.request(method, path, headers=headers, body=body or b"")
        reply = Reply(raw)
        assert "x-request-id" in reply.headers, f"no X-Request-Id on {method} {path}"
        check_contract(method, path, reply)
        return reply

    def get(self, path: str, **kw: Any) -> Reply:
        return self.request("GET", path, **kw)

    def post(self, path: str, **kw: Any) -> Reply:
        return self.request("POST", path, **kw)

    def delete(self, path: str, **kw: Any) -> Reply:
        return self.request("DELETE", path, **kw)

    def put(self, path: str, **kw: Any) -> Reply:
        return self.request("PUT", path, **kw)

    def patch(self, path: str, **kw: Any) -> Reply:
        return self.request("PATCH", path, **kw)
