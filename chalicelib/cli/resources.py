"""Create the local stack's AWS resources from ``infra/resources.json``.

The deployment template is the one definition of tables, bucket, queues,
secrets and parameters; this module reads it and makes the same resources in
moto (or any endpoint the boto3 clients point at). Idempotent.
"""

from __future__ import annotations

import contextlib
import json
import re
import secrets
from pathlib import Path
from typing import Any

PROJECT_DIR = Path(__file__).resolve().parents[2]
TEMPLATE = PROJECT_DIR / "infra" / "resources.json"
ACCOUNT_ID = "123456789012"


def load_template(path: Path = TEMPLATE) -> dict:
    return json.loads(path.read_text())


class Resolver:
    """Resolves the intrinsic functions the template uses, for a local stack."""

    def __init__(self, template: dict, stack_name: str, region: str, parameters: dict[str, str]) -> None:
        self.template = template
        self.stack = stack_name
        self.region = region
        self.parameters = parameters
        self.physical: dict[str, dict[str, str]] = {}  # logical id → {"Ref": ..., "Arn": ...}

    def sub(self, text: str, extra: dict[str, str] | None = None) -> str:
        values = {
            "AWS::StackName": self.stack,
            "AWS::Region": self.region,
            "AWS::AccountId": ACCOUNT_ID,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            **(extra or {}),
        }

        def replace(match: re.Match) -> str:
            name = match.group(1)
            if name in values:
                return values[name]
            if "." in name:
                logical, attr = name.split(".", 1)
                return self.physical[logical][attr]
            return self.ref(name)

        return re.sub(r"\$\{([^}]+)\}", replace, text)

    def ref(self, name: str) -> str:
        if name in self.parameters:
            return self.parameters[name]
        if name in self.template.get("Parameters", {}):
            return str(self.template["Parameters"][name].get("Default", ""))
        return self.physical[name]["Ref"]

    def resolve(self, value: Any) -> Any:
        if isinstance(value, dict):
            if "Fn::Sub" in value:
                arg = value["Fn::Sub"]
                if isinstance(arg, list):
                    text, extra = arg
                    return self.sub(text, {k: self.resolve(v) for k, v in extra.items()})
                return self.sub(arg)
            if "Ref" in value:
                return self.ref(value["Ref"])
            if "Fn::GetAtt" in value:
                logical, attr = value["Fn::GetAtt"]
                return self.physical[logical][attr]
            return {k: self.resolve(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        return value


def _by_type(template: dict, kind: str) -> list[tuple[str, dict]]:
    return [(name, res) for name, res in template["Resources"].items() if res.get("Type") == kind]


def provision(session: Any, *, stack_name: str, region: str, parameters: dict[str, str] | None = None,
              template: dict | None = None) -> dict[str, str]:
    """Create every table, bucket, queue, secret and parameter; return the functions' env vars."""
    template = template or load_template()
    r = Resolver(template, stack_name, region, parameters or {})
    ddb = session.client("dynamodb", region_name=region)
    s3 = session.client("s3", region_name=region)
    sqs = session.client("sqs", region_name=region)
    sm = session.client("secretsmanager", region_name=region)
    ssm = session.client("ssm", region_name=region)

    existing_tables = set(ddb.list_tables()["TableNames"])
    for logical, res in _by_type(template, "AWS::DynamoDB::Table"):
        props = r.resolve(res["Properties"])
        name = props["TableName"]
        r.physical[logical] = {"Ref": name, "Arn": f"arn:aws:dynamodb:{region}:{ACCOUNT_ID}:table/{name}"}
        if name in existing_tables:
            continue
        args = {k: props[k] for k in ("TableName", "AttributeDefinitions", "KeySchema", "BillingMode")}
        if props.get("GlobalSecondaryIndexes"):
            args["GlobalSecondaryIndexes"] = props["GlobalSecondaryIndexes"]
        ddb.create_table(**args)
        if props.get("TimeToLiveSpecification"):
            ddb.update_time_to_live(TableName=name, TimeToLiveSpecification=props["TimeToLiveSpecification"])

    for logical, res in _by_type(template, "AWS::S3::Bucket"):
        props = r.resolve(res["Properties"])
        name = props.get("BucketName") or f"{stack_name}-{logical.lower()}"
        r.physical[logical] = {"Ref": name, "Arn": f"arn:aws:s3:::{name}"}
        with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
            s3.create_bucket(Bucket=name)
        rules = []
        for rule in props.get("LifecycleConfiguration", {}).get("Rules", []):
            api_rule: dict[str, Any] = {"ID": rule["Id"], "Status": rule["Status"],
                                        "Filter": {"Prefix": rule.get("Prefix", "")}}
            if "ExpirationInDays" in rule:
                api_rule["Expiration"] = {"Days": rule["ExpirationInDays"]}
            if "AbortIncompleteMultipartUpload" in rule:
                api_rule["AbortIncompleteMultipartUpload"] = rule["AbortIncompleteMultipartUpload"]
            rules.append(api_rule)
        if rules:
            s3.put_bucket_lifecycle_configuration(Bucket=name, LifecycleConfiguration={"Rules": rules})

    queues = _by_type(template, "AWS::SQS::Queue")
    # Dead-letter queues first: the others reference their ARNs.
    queues.sort(key=lambda item: "RedrivePolicy" in item[1]["Properties"])
    for logical, res in queues:
        props = r.resolve(res["Properties"])
        attributes = {k: str(v) for k, v in props.items()
                      if k in ("VisibilityTimeout", "MessageRetentionPeriod")}
        if "RedrivePolicy" in props:
            attributes["RedrivePolicy"] = json.dumps(props["RedrivePolicy"])
        url = sqs.create_queue(QueueName=props["QueueName"], Attributes=attributes)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        r.physical[logical] = {"Ref": url, "Arn": arn, "QueueName": props["QueueName"]}

    for logical, res in _by_type(template, "AWS::SecretsManager::Secret"):
        props = r.resolve(res["Properties"])
        name = props["Name"]
        try:
            arn = sm.describe_secret(SecretId=name)["ARN"]
        except sm.exceptions.ResourceNotFoundException:
            value = props.get("SecretString") or secrets.token_urlsafe(48)
            # The Stripe secret: no API key locally (the stand-in bills), but a webhook secret to sign with.
            value = value.replace('"webhook_secret": ""', f'"webhook_secret": "whsec_{secrets.token_hex(24)}"')
            arn = sm.create_secret(Name=name, SecretString=value)["ARN"]
        r.physical[logical] = {"Ref": arn, "Arn": arn}

    for logical, res in _by_type(template, "AWS::SSM::Parameter"):
        props = r.resolve(res["Properties"])
        try:
            ssm.get_parameter(Name=props["Name"])
        except ssm.exceptions.ParameterNotFound:
            ssm.put_parameter(Name=props["Name"], Value=props["Value"], Type=props["Type"])
        r.physical[logical] = {"Ref": props["Name"]}

    variables = template.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {})
    return {name: str(r.resolve(value)) for name, value in variables.items()}
