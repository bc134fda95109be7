"""The deployment template and the PynamoDB models describe the same tables."""

from __future__ import annotations

import json

import pytest

from chalicelib.adapters.dynamodb.models import ALL_MODELS, TABLES
from chalicelib.cli.resources import TEMPLATE
from chalicelib.settings import get_settings
from infra.build_template import build

TEMPLATE_DOC = json.loads(TEMPLATE.read_text())
TABLE_RESOURCES = {
    res["Properties"]["TableName"]["Fn::Sub"].removeprefix("${AWS::StackName}-"): (logical, res["Properties"])
    for logical, res in TEMPLATE_DOC["Resources"].items()
    if res.get("Type") == "AWS::DynamoDB::Table"
}


def _key_schema(entries: list[dict]) -> list[tuple[str, str]]:
    """HASH first, then RANGE (PynamoDB lists an index's keys in attribute-name order)."""
    return sorted(((e["AttributeName"], e["KeyType"]) for e in entries), key=lambda k: k[1] != "HASH")


def _model_schema(table_suffix: str) -> dict:
    """Union of the key schema and indexes every model on one table declares."""
    physical = get_settings().table_name(table_suffix)
    keys, attrs, indexes, ttl = None, {}, {}, set()
    for model in ALL_MODELS:
        if model.Meta.table_name != physical:
            continue
        schema = model._get_schema()
        model_keys = _key_schema(schema["key_schema"])
        assert keys in (None, model_keys), f"models on {table_suffix} disagree on keys"
        keys = model_keys
        attrs.update({a["AttributeName"]: a["AttributeType"] for a in schema["attribute_definitions"]})
        for index in schema.get("global_secondary_indexes", []):
            indexes[index["index_name"]] = (_key_schema(index["key_schema"]), index["projection"]["ProjectionType"])
        ttl |= {name for name, attr in model.get_attributes().items() if type(attr).__name__ == "TTLAttribute"}
    return {"keys": keys, "attrs": attrs, "indexes": indexes, "ttl": ttl}


def test_checked_in_template_is_the_generated_one():
    assert build() == TEMPLATE_DOC, "run `python -m infra.build_template` and commit infra/resources.json"


def test_template_and_models_declare_the_same_tables():
    assert set(TABLE_RESOURCES) == set(TABLES)


@pytest.mark.parametrize("suffix", sorted(TABLES))
def test_table_keys_indexes_and_ttl_match_the_models(suffix):
    _logical, props = TABLE_RESOURCES[suffix]
    model = _model_schema(suffix)
    assert _key_schema(props["KeySchema"]) == model["keys"]
    template_attrs = {a["AttributeName"]: a["AttributeType"] for a in props["AttributeDefinitions"]}
    assert template_attrs == model["attrs"]
    template_indexes = {
        gsi["IndexName"]: (_key_schema(gsi["KeySchema"]), gsi["Projection"]["ProjectionType"])
        for gsi in props.get("GlobalSecondaryIndexes", [])
    }
    assert template_indexes == model["indexes"]
    template_ttl = {props["TimeToLiveSpecification"]["AttributeName"]} if "TimeToLiveSpecification" in props else set()
    assert template_ttl == model["ttl"]
    assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert props["BillingMode"] == "PAY_PER_REQUEST"


def test_function_role_reaches_every_table_and_its_indexes_only():
    statements = TEMPLATE_DOC["Resources"]["TallyFunctionRole"]["Properties"]["Policies"][0]["PolicyDocument"]
    tables = next(s for s in statements["Statement"] if s["Sid"] == "Tables")
    granted = {r["Fn::GetAtt"][0] for r in tables["Resource"] if "Fn::GetAtt" in r}
    assert granted == {logical for logical, _ in TABLE_RESOURCES.values()}
    assert "dynamodb:Scan" not in tables["Action"] and "dynamodb:*" not in tables["Action"]


def test_provisioned_local_tables_match_the_models(aws, boto_session):
    """The local stack's tables (built from the template) answer DescribeTable like the models expect."""
    client = boto_session.client("dynamodb", region_name="us-east-1")
    for suffix, physical in TABLES.items():
        described = client.describe_table(TableName=physical)["Table"]
        model = _model_schema(suffix)
        assert _key_schema(described["KeySchema"]) == model["keys"]
        assert {g["IndexName"] for g in described.get("GlobalSecondaryIndexes", [])} == set(model["indexes"])
    assert aws["TALLY_RESOURCE_PREFIX"] == "tally-test-"


# --- the Stripe webhook function: its own least-privilege role and its API Gateway route ---


def test_stripe_webhook_role_reaches_only_what_the_webhook_needs():
    resources = TEMPLATE_DOC["Resources"]
    statements = resources["StripeWebhookRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    by_sid = {s["Sid"]: s for s in statements}
    assert set(by_sid) == {"Tables", "StripeCustomerIndex", "StripeSecret"}
    assert {r["Fn::GetAtt"][0] for r in by_sid["Tables"]["Resource"]} == {"BillingTable", "TenantsTable", "AuditTable",
                                                                       "WebhooksTable"}
    assert by_sid["Tables"]["Action"] == ["dynamodb:GetItem", "dynamodb:PutItem"]
    assert by_sid["StripeCustomerIndex"] == {"Sid": "StripeCustomerIndex", "Effect": "Allow",
                                             "Action": ["dynamodb:Query"],
                                             "Resource": {"Fn::Sub": "${TenantsTable.Arn}/index/stripe-customer-index"}}
    assert by_sid["StripeSecret"]["Resource"] == {"Ref": "StripeSecret"}
    assert not any(s.get("Action") in ("*", "dynamodb:*") for s in statements)
    assert resources["StripeWebhook"]["Properties"]["Role"] == {"Fn::GetAtt": ["StripeWebhookRole", "Arn"]}


def test_stripe_webhook_route_proxies_to_its_own_function():
    from app import app
    from chalicelib.api import stripe_webhook

    resources = TEMPLATE_DOC["Resources"]
    paths = resources["RestAPI"]["Properties"]["DefinitionBody"]["paths"]
    assert set(paths) == {stripe_webhook.PATH}
    integration = paths[stripe_webhook.PATH]["post"]["x-amazon-apigateway-integration"]
    assert integration["type"] == "aws_proxy" and integration["httpMethod"] == "POST"
    assert "${StripeWebhook.Arn}" in integration["uri"]["Fn::Sub"]
    permission = resources["StripeWebhookInvokePermission"]
    assert permission["Properties"]["FunctionName"] == {"Ref": "StripeWebhook"}
    assert permission["Properties"]["SourceArn"]["Fn::Sub"][0].endswith("/*/POST/stripe/webhook")
    assert stripe_webhook.FUNCTION in app.handler_map  # Chalice names its resource StripeWebhook
    assert stripe_webhook.PATH not in app.routes  # not a route of the API handler (and its role)
    config = json.loads((TEMPLATE.parent.parent / ".chalice" / "config.json").read_text())
    assert "iam_role_arn" in config["stages"]["prod"]["lambda_functions"][stripe_webhook.FUNCTION]
