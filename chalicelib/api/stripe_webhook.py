"""``POST /stripe/webhook`` in the OpenAPI document.

The operation is served by its own Lambda function (``stripe_webhook`` in app.py, handler in
chalicelib/jobs/stripe_webhook.py), not by a Chalice route: API Gateway (infra/build_template.py)
and the local gateway (cli/local_gateway.py) send it there. It is recorded here so the served
document still lists every path the API answers.
"""

from __future__ import annotations

from chalicelib.api.inputs import Param
from chalicelib.api.routing import OPERATIONS, Auth, Operation

PATH = "/stripe/webhook"
METHOD = "POST"
FUNCTION = "stripe_webhook"  # the app's Lambda function serving it

STRIPE_SIGNATURE = Param(
    "Stripe-Signature", "header",
    "`t={unix time},v1={hex HMAC-SHA256 of \"{t}.{raw body}\" with the endpoint's signing secret}`; older than "
    "300 s or not matching: 400, nothing stored.", {"type": "string"}, required=True, arg=None)

OPERATION = Operation(
    path=PATH,
    method=METHOD,
    auth=Auth.NONE,
    summary="Receive a Stripe event",
    tags=("Stripe",),
    responses={200: "StripeEventReceived"},
    operation_id="stripe_webhook",
    description=(
        "Stripe's webhook endpoint. The `Stripe-Signature` is verified on the raw body; each event id is "
        "processed exactly once (a repeat answers 200 with `duplicate: true`). Handled types: "
        "`checkout.session.completed`, `customer.subscription.created|updated|deleted`, `invoice.paid`, "
        "`invoice.payment_failed`; other types are recorded and ignored. 503 when the event's tenant is not "
        "known yet: Stripe retries, and the event is applied then."
    ),
    request_body="StripeEvent",
    params=(STRIPE_SIGNATURE,),
    errors=(400, 503),
)
if OPERATION not in OPERATIONS:
    OPERATIONS.append(OPERATION)
