"""Tally API: composition only. Routes live in chalicelib/api, rules in services/domain."""

from chalice import Chalice, Cron

from chalicelib.api import (
    api_keys,
    audit,
    balance,
    balance_records,
    billing,
    credits,
    customers,
    local_stripe,
    meta,
    middleware,
    platform,
    session,
    stripe_webhook,
    tenant,
    verify,
    webhooks,
)

# Resolved by CloudFormation (Chalice emits the queue ARN as Fn::Sub) and by the local job runner.
VERIFY_QUEUE = "${AWS::StackName}-verify"
WEBHOOK_QUEUE = "${AWS::StackName}-webhooks"

app = Chalice(app_name="tally", configure_logs=False)  # chalicelib.log owns the "tally" logger
app.api.binary_types.append("application/zip")
app.api.binary_types.append("application/pdf")

for blueprint in (meta.bp, tenant.bp, session.bp, api_keys.bp, audit.bp, balance.bp, balance_records.bp, billing.bp,
                  credits.bp, customers.bp, verify.bp, webhooks.bp, platform.bp, local_stripe.bp):
    app.register_blueprint(blueprint)

middleware.install(app)
middleware.install_method_not_allowed(app)


@app.on_sqs_message(queue=VERIFY_QUEUE, batch_size=10, maximum_batching_window_in_seconds=1)
def process_verify_queue(event):
    """Verifier: seals accepted deltas into signed Merkle batches (see services/verification.py). The batching
    window lets a quiet second's deltas share one seal (one signature, one chain step) instead of one each."""
    from chalicelib.jobs import verifier

    verifier.handle_queue(event)


@app.schedule("rate(5 minutes)")
def sweep_unverified(event):
    """Backstop: verifies deltas the queue missed, from the sparse pending index."""
    from chalicelib.jobs import verifier

    verifier.handle_sweep(event)


@app.on_sqs_message(queue=WEBHOOK_QUEUE, batch_size=10)
def process_webhook_queue(event):
    """Webhook sender: fans events out to endpoints and attempts signed deliveries (services/webhooks.py)."""
    from chalicelib.jobs import webhooks

    webhooks.handle_queue(event)


@app.schedule("rate(1 minute)")
def deliver_due_webhooks(event):
    """Backstop and retries: outbox items nobody fanned out, deliveries whose next attempt is due."""
    from chalicelib.jobs import webhooks

    webhooks.handle_sweep(event)


@app.lambda_function(name=stripe_webhook.FUNCTION)
def receive_stripe_webhook(event, context):
    """Stripe webhook: API Gateway routes POST /stripe/webhook here (its own function and least-privilege role,
    infra/build_template.py); verifies, records and applies each event once (services/stripe_webhooks.py)."""
    from chalicelib.jobs import stripe_webhook as job

    return job.handle(event, context)


@app.schedule("rate(1 hour)")
def missing_payment_blocks(event):
    """Records each dashboard block whose missing-payment limit date has passed (audit entry and webhook);
    reads compute the block from the current time, so it holds before this runs."""
    from chalicelib.jobs import scheduled

    scheduled.missing_payment_blocks(event, getattr(event, "context", None))


@app.schedule(Cron("5/15", "*", "*", "*", "?", "*"))
def period_rollover(event):
    """Closes last UTC month: first run 00:05 on the 1st, then every 15 minutes, each carrying on where the
    last stopped, all month long (a month held up by Stripe or the verifier is finished when they are back;
    a finished month costs one read)."""
    from chalicelib.jobs import scheduled

    scheduled.period_rollover(event, getattr(event, "context", None))
