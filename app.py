"""Tally API: composition only. Routes live in chalicelib/api, rules in services/domain."""

from chalice import Chalice

from chalicelib.api import (
    api_keys,
    audit,
    balance,
    billing,
    credits,
    meta,
    middleware,
    platform,
    session,
    tenant,
    verify,
)

# Resolved by CloudFormation (Chalice emits the queue ARN as Fn::Sub) and by the local job runner.
VERIFY_QUEUE = "${AWS::StackName}-verify"

app = Chalice(app_name="tally", configure_logs=False)  # chalicelib.log owns the "tally" logger
app.api.binary_types.append("application/zip")

for blueprint in (meta.bp, tenant.bp, session.bp, api_keys.bp, audit.bp, balance.bp, billing.bp, credits.bp,
                  verify.bp, platform.bp):
    app.register_blueprint(blueprint)

middleware.install(app)
middleware.install_method_not_allowed(app)


@app.on_sqs_message(queue=VERIFY_QUEUE, batch_size=10)
def process_verify_queue(event):
    """Verifier: seals accepted deltas into signed Merkle batches (see services/verification.py)."""
    from chalicelib.jobs import verifier

    verifier.handle_queue(event)


@app.schedule("rate(5 minutes)")
def sweep_unverified(event):
    """Backstop: verifies deltas the queue missed, from the sparse pending index."""
    from chalicelib.jobs import verifier

    verifier.handle_sweep(event)
