"""Writes infra/resources.json, the merge template (run: python -m infra.build_template).

The JSON file is the checked-in source of truth: the deployment merges it into
Chalice's SAM output and the local stack creates moto resources from it. This
script only exists so the repetitive parts (tables, IAM) are written once.
"""

from __future__ import annotations

import json
from pathlib import Path

TEMPLATE_PATH = Path(__file__).with_name("resources.json")
SUB = "Fn::Sub"


KEYS_ONLY = {"ProjectionType": "KEYS_ONLY"}


def include(*attributes: str) -> dict:
    return {"ProjectionType": "INCLUDE", "NonKeyAttributes": list(attributes)}


def table(suffix: str, gsis: list[tuple] = (), ttl: str | None = None) -> dict:
    """``gsis``: (name, hash key, range key or None[, projection]); projection ALL unless given. An index
    on a hot write path projects keys (or a few fixed attributes) only, so updating the item does not
    rewrite the index entry."""
    attrs = {"pk": "S", "sk": "S"}
    indexes = []
    for name, hash_key, range_key, *projection in gsis:
        attrs[hash_key] = "S"
        schema = [{"AttributeName": hash_key, "KeyType": "HASH"}]
        if range_key:
            attrs[range_key] = "S"
            schema.append({"AttributeName": range_key, "KeyType": "RANGE"})
        indexes.append({"IndexName": name, "KeySchema": schema,
                        "Projection": projection[0] if projection else {"ProjectionType": "ALL"}})
    props = {
        "TableName": {SUB: "${AWS::StackName}-" + suffix},
        "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": [{"AttributeName": k, "AttributeType": v} for k, v in attrs.items()],
        "KeySchema": [
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
        "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
        "SSESpecification": {"SSEEnabled": True},
        "DeletionProtectionEnabled": True,
    }
    if indexes:
        props["GlobalSecondaryIndexes"] = indexes
    if ttl:
        props["TimeToLiveSpecification"] = {"AttributeName": ttl, "Enabled": True}
    return {"Type": "AWS::DynamoDB::Table", "DeletionPolicy": "Retain", "UpdateReplacePolicy": "Retain",
            "Properties": props}


def queue(suffix: str, dlq: str | None = None, visibility: int = 180) -> dict:
    props: dict = {
        "QueueName": {SUB: "${AWS::StackName}-" + suffix},
        "SqsManagedSseEnabled": True,
        "MessageRetentionPeriod": 1209600 if dlq is None else 345600,
        "VisibilityTimeout": visibility,
    }
    if dlq:
        props["RedrivePolicy"] = {"deadLetterTargetArn": {"Fn::GetAtt": [dlq, "Arn"]}, "maxReceiveCount": 5}
    return {"Type": "AWS::SQS::Queue", "Properties": props}


TABLES = {
    "TenantsTable": table("tenants", [
        ("directory-index", "directory_pk", "directory_sk"),
        ("block-index", "block_pk", "block_sk"),  # sparse: flagged tenants whose block is not yet recorded
        ("stripe-customer-index", "stripe_customer_id", None),  # sparse: tenants with a Stripe customer
    ], ttl="ttl"),
    "ApiKeysTable": table("api-keys", [("key-id-index", "key_id", None)]),
    "AuditTable": table("audit"),
    "CustomersTable": table("customers", [  # keys only: a delta's update of its customer never touches them
        ("customer-name-index", "list_pk", "name_key", KEYS_ONLY),
        ("customer-id-index", "list_pk", "customer_id", KEYS_ONLY),
    ]),
    "LedgerTable": table("ledger"),
    "UsageTable": table("usage"),
    "DeltasTable": table("deltas", [
        ("customer-seq-index", "customer_key", "seq_key"),
        ("pending-index", "pending_shard", "pending_since", include("tenant_id", "environment", "record_id")),
        ("root-index", "root_hex", None),
        ("checkpoint-period-index", "period_key", "period_sort"),
    ]),
    "IdempotencyTable": table("idempotency", ttl="ttl"),
    # Stripe events received, period closes and overage reports, the local Stripe stand-in's objects.
    "BillingTable": table("billing", ttl="ttl"),
    "WebhooksTable": table("webhooks", [
        ("endpoint-index", "endpoint_key", "event_id"),
        ("due-index", "due_shard", "due_at"),
    ], ttl="ttl"),
}

ERROR_TEMPLATE = (
    '{"statusCode": %d, "success": false, "error": {"code": "%s", "message": %s}}'
)


#: API Gateway answers these itself (before Lambda runs): type -> (status, code, message).
GATEWAY_ERRORS = {
    "MISSING_AUTHENTICATION_TOKEN": (404, "NOT_FOUND", '"No such route."'),
    "ACCESS_DENIED": (403, "FORBIDDEN", "$context.error.messageString"),
    "THROTTLED": (429, "RATE_LIMITED", "$context.error.messageString"),
    "QUOTA_EXCEEDED": (429, "RATE_LIMITED", "$context.error.messageString"),
    "REQUEST_TOO_LARGE": (413, "PAYLOAD_TOO_LARGE", "$context.error.messageString"),
    "UNSUPPORTED_MEDIA_TYPE": (415, "UNSUPPORTED_MEDIA_TYPE", "$context.error.messageString"),
    "INTEGRATION_TIMEOUT": (504, "TIMEOUT", "$context.error.messageString"),
    "DEFAULT_4XX": (400, "BAD_REQUEST", "$context.error.messageString"),
    "DEFAULT_5XX": (502, "BAD_GATEWAY", "$context.error.messageString"),
}


def gateway_responses() -> dict:
    """Give the gateway's own answers our envelope, status and request id."""
    return {
        kind: {
            "StatusCode": status,
            "ResponseParameters": {"Headers": {"X-Request-Id": "context.requestId"}},
            "ResponseTemplates": {"application/json": ERROR_TEMPLATE % (status, code, message)},
        }
        for kind, (status, code, message) in GATEWAY_ERRORS.items()
    }


def role() -> dict:
    table_arns = []
    for logical in TABLES:
        arn = {"Fn::GetAtt": [logical, "Arn"]}
        table_arns += [arn, {SUB: ["${Arn}/index/*", {"Arn": arn}]}]
    statements = [
        {
            "Sid": "Tables",
            "Effect": "Allow",
            "Action": [
                "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem",
                "dynamodb:Query", "dynamodb:BatchGetItem", "dynamodb:BatchWriteItem",
                "dynamodb:ConditionCheckItem",
            ],
            "Resource": table_arns,
        },
        {
            "Sid": "Artifacts",
            "Effect": "Allow",
            "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"],
            "Resource": {SUB: "${ArtifactsBucket.Arn}/*"},
        },
        {"Sid": "ArtifactsList", "Effect": "Allow", "Action": ["s3:ListBucket"],
         "Resource": {"Fn::GetAtt": ["ArtifactsBucket", "Arn"]}},
        {
            "Sid": "Queues",
            "Effect": "Allow",
            "Action": ["sqs:SendMessage", "sqs:ReceiveMessage", "sqs:DeleteMessage",
                       "sqs:ChangeMessageVisibility", "sqs:GetQueueAttributes"],
            "Resource": [{"Fn::GetAtt": [q, "Arn"]} for q in ("VerifyQueue", "WebhookQueue")],
        },
        {"Sid": "Secrets", "Effect": "Allow", "Action": ["secretsmanager:GetSecretValue"],
         "Resource": [{"Ref": "SigningKeySecret"}, {"Ref": "StripeSecret"}]},
    ]
    return _lambda_role("tally-data-access", statements)


def _lambda_role(policy_name: str, statements: list[dict]) -> dict:
    return {
        "Type": "AWS::IAM::Role",
        "Properties": {
            "AssumeRolePolicyDocument": {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
                               "Action": "sts:AssumeRole"}],
            },
            "ManagedPolicyArns": [
                {SUB: "arn:${AWS::Partition}:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"}
            ],
            "Policies": [{"PolicyName": policy_name,
                          "PolicyDocument": {"Version": "2012-10-17", "Statement": statements}}],
        },
    }


#: The Stripe webhook function's tables: events and invoice states (billing), the tenant it updates
#: (tenants, found by customer through one index), the audit entry it writes, and the outbox item of the
#: ``tenant.dashboard_unblocked`` event when ``invoice.paid`` lifts a recorded block (webhooks). Nothing else.
STRIPE_WEBHOOK_TABLES = ("BillingTable", "TenantsTable", "AuditTable", "WebhooksTable")
STRIPE_WEBHOOK_PATH = "/stripe/webhook"


def stripe_webhook_role() -> dict:
    """Least privilege for the function Stripe can reach: no queue, bucket, signing key or other table."""
    return _lambda_role("tally-stripe-webhook", [
        {"Sid": "Tables", "Effect": "Allow", "Action": ["dynamodb:GetItem", "dynamodb:PutItem"],
         "Resource": [{"Fn::GetAtt": [logical, "Arn"]} for logical in STRIPE_WEBHOOK_TABLES]},
        {"Sid": "StripeCustomerIndex", "Effect": "Allow", "Action": ["dynamodb:Query"],
         "Resource": {SUB: "${TenantsTable.Arn}/index/stripe-customer-index"}},
        {"Sid": "StripeSecret", "Effect": "Allow", "Action": ["secretsmanager:GetSecretValue"],
         "Resource": {"Ref": "StripeSecret"}},
    ])


def stripe_webhook_route() -> dict:
    """``POST /stripe/webhook`` on the REST API, proxied to the function (merged into Chalice's swagger)."""
    return {STRIPE_WEBHOOK_PATH: {"post": {
        "consumes": ["*/*"],
        "produces": ["application/json"],
        "responses": {"200": {"description": "200 response", "schema": {"$ref": "#/definitions/Empty"}}},
        "x-amazon-apigateway-integration": {
            "type": "aws_proxy",
            "httpMethod": "POST",
            "uri": {SUB: "arn:${AWS::Partition}:apigateway:${AWS::Region}:lambda:path/2015-03-31/functions/"
                         "${StripeWebhook.Arn}/invocations"},
            "passthroughBehavior": "when_no_match",
            "responses": {"default": {"statusCode": "200"}},
        },
    }}}


def build() -> dict:
    resources: dict = dict(TABLES)
    resources["ArtifactsBucket"] = {
        "Type": "AWS::S3::Bucket",
        "DeletionPolicy": "Retain",
        "UpdateReplacePolicy": "Retain",
        "Properties": {
            "BucketEncryption": {"ServerSideEncryptionConfiguration": [
                {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]},
            "PublicAccessBlockConfiguration": {"BlockPublicAcls": True, "BlockPublicPolicy": True,
                                               "IgnorePublicAcls": True, "RestrictPublicBuckets": True},
            "OwnershipControls": {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]},
            "VersioningConfiguration": {"Status": "Enabled"},
            "LifecycleConfiguration": {"Rules": [
                {"Id": "expire-exports", "Status": "Enabled", "Prefix": "exports/", "ExpirationInDays": 7,
                 "NoncurrentVersionExpiration": {"NoncurrentDays": 1}},
                {"Id": "expire-shared-packages", "Status": "Enabled", "Prefix": "packages/",
                 "ExpirationInDays": 90, "NoncurrentVersionExpiration": {"NoncurrentDays": 1}},
                {"Id": "abort-multipart", "Status": "Enabled",
                 "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1}},
            ]},
        },
    }
    resources["ArtifactsBucketPolicy"] = {
        "Type": "AWS::S3::BucketPolicy",
        "Properties": {
            "Bucket": {"Ref": "ArtifactsBucket"},
            "PolicyDocument": {"Version": "2012-10-17", "Statement": [{
                "Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
                "Resource": [{"Fn::GetAtt": ["ArtifactsBucket", "Arn"]}, {SUB: "${ArtifactsBucket.Arn}/*"}],
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            }]},
        },
    }
    resources["VerifyDeadLetterQueue"] = queue("verify-dlq")
    resources["VerifyQueue"] = queue("verify", dlq="VerifyDeadLetterQueue")
    resources["WebhookDeadLetterQueue"] = queue("webhooks-dlq")
    resources["WebhookQueue"] = queue("webhooks", dlq="WebhookDeadLetterQueue")
    resources["SigningKeySecret"] = {
        "Type": "AWS::SecretsManager::Secret",
        # Losing the signing key would orphan every published signature: keep it on stack deletion. Its key
        # id is derived from the key (no parameter); a new secret is a rotation to a new id, and the old
        # key stays published from the signing-key registry (tenants table).
        "DeletionPolicy": "Retain",
        "UpdateReplacePolicy": "Retain",
        "Properties": {
            "Name": {SUB: "${AWS::StackName}/signing-key"},
            "Description": "Seed of the platform's Ed25519 signing key (SHA-256 of this string).",
            "GenerateSecretString": {"PasswordLength": 64, "ExcludePunctuation": True},
        },
    }
    resources["StripeSecret"] = {
        "Type": "AWS::SecretsManager::Secret",
        "Properties": {
            "Name": {SUB: "${AWS::StackName}/stripe"},
            "Description": "Stripe API key and webhook signing secret (set by the operator).",
            "SecretString": '{"api_key": "", "webhook_secret": ""}',
        },
    }
    resources["TallyFunctionRole"] = role()
    role_arn = {"Fn::GetAtt": ["TallyFunctionRole", "Arn"]}
    resources["APIHandler"] = {"Properties": {"Role": role_arn}}
    resources["SweepUnverified"] = {"Properties": {"Role": role_arn}}
    # The decorator names its queue `${AWS::StackName}-verify`: Chalice's Fn::Sub resolves it to VerifyQueue.
    # The ARN is a plain string to CloudFormation, so order the queue first explicitly.
    resources["ProcessVerifyQueue"] = {"DependsOn": ["VerifyQueue"], "Properties": {"Role": role_arn, "Timeout": 120}}
    resources["ProcessWebhookQueue"] = {"DependsOn": ["WebhookQueue"], "Properties": {"Role": role_arn, "Timeout": 120}}
    resources["DeliverDueWebhooks"] = {"Properties": {"Role": role_arn, "Timeout": 120}}
    resources["MissingPaymentBlocks"] = {"Properties": {"Role": role_arn, "Timeout": 120}}
    # The rollover spends its invocation's time less a margin, then the next scheduled run carries on.
    resources["PeriodRollover"] = {"Properties": {"Role": role_arn, "Timeout": 900, "MemorySize": 1024}}
    resources["StripeWebhookRole"] = stripe_webhook_role()
    resources["StripeWebhook"] = {"Properties": {"Role": {"Fn::GetAtt": ["StripeWebhookRole", "Arn"]}}}
    resources["StripeWebhookInvokePermission"] = {
        "Type": "AWS::Lambda::Permission",
        "Properties": {
            "FunctionName": {"Ref": "StripeWebhook"},
            "Action": "lambda:InvokeFunction",
            "Principal": "apigateway.amazonaws.com",
            "SourceArn": {SUB: ["arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:${RestAPIId}"
                                "/*/POST" + STRIPE_WEBHOOK_PATH, {"RestAPIId": {"Ref": "RestAPI"}}]},
        },
    }
    resources["RestAPI"] = {"Properties": {"GatewayResponses": gateway_responses(),
                                           "DefinitionBody": {"paths": stripe_webhook_route()}}}
    return {
        "Parameters": {
            "JwtIssuer": {"Type": "String", "Description": "Expected `iss` (Cognito user pool URL)."},
            "JwtAudience": {"Type": "String", "Description": "Expected `aud` (app client id)."},
            "JwksUrl": {"Type": "String", "Description": "JWKS URL of the identity provider."},
            "PublicBaseUrl": {"Type": "String", "Description": "Public URL of the API (custom domain)."},
            "AllowedOrigins": {"Type": "String", "Default": "",
                               "Description": "Comma-separated dashboard origins for cookie writes."},
        },
        "Globals": {
            "Function": {
                "Environment": {
                    "Variables": {
                        "TALLY_RESOURCE_PREFIX": {SUB: "${AWS::StackName}-"},
                        "TALLY_BUCKET": {"Ref": "ArtifactsBucket"},
                        "TALLY_VERIFY_QUEUE_URL": {"Ref": "VerifyQueue"},
                        "TALLY_WEBHOOK_QUEUE_URL": {"Ref": "WebhookQueue"},
                        "TALLY_SIGNING_SECRET_ID": {"Ref": "SigningKeySecret"},
                        "TALLY_STRIPE_SECRET_ID": {"Ref": "StripeSecret"},
                        "TALLY_JWT_ISSUER": {"Ref": "JwtIssuer"},
                        "TALLY_JWT_AUDIENCE": {"Ref": "JwtAudience"},
                        "TALLY_JWT_JWKS_URL": {"Ref": "JwksUrl"},
                        "TALLY_PUBLIC_BASE_URL": {"Ref": "PublicBaseUrl"},
                        "TALLY_ALLOWED_ORIGINS": {"Ref": "AllowedOrigins"},
                    }
                }
            }
        },
        "Resources": resources,
        "Outputs": {
            "ArtifactsBucketName": {"Value": {"Ref": "ArtifactsBucket"}},
            "VerifyQueueUrl": {"Value": {"Ref": "VerifyQueue"}},
            "StripeWebhookURL": {"Description": "Register this endpoint in Stripe (Developers > Webhooks).",
                                 "Value": {SUB: "https://${RestAPI}.execute-api.${AWS::Region}.${AWS::URLSuffix}"
                                                "/api" + STRIPE_WEBHOOK_PATH}},
        },
    }


def main() -> None:
    TEMPLATE_PATH.write_text(json.dumps(build(), indent=2) + "\n")
    print(f"wrote {TEMPLATE_PATH}")


if __name__ == "__main__":
    main()
