"""CLI output shapes: the same JSON the API answers with."""

from __future__ import annotations

from chalicelib.api.views import key_view, tenant_view
from chalicelib.domain.access import ApiKey
from chalicelib.domain.clock import iso_ms
from chalicelib.domain.tenants import Tenant


def api_key_with_secret(key: ApiKey, full_key: str) -> dict:
    return {**key_view(key), "fullKey": full_key}


def tenant_record(tenant: Tenant) -> dict:
    return {
        **tenant_view(tenant),
        "plan": tenant.plan,
        "stripeCustomerId": tenant.stripe_customer_id,
        "subdomain": tenant.subdomain,
        "hasUnpaidInvoicesAt": iso_ms(tenant.has_unpaid_invoices_at),
    }
