"""The local Stripe stand-in's hosted pages: Checkout and the Customer Portal (adapters/stripe_local.py).

They exist only while the stand-in bills (no Stripe API key): otherwise every route answers 404. As on
Stripe's hosted pages, the session id in the URL is the capability, so no login is asked; the forms
post to the same origin and cross-site posts are refused (the dashboard's origin check). What a page
does goes through the stand-in, whose signed events reach ``POST /stripe/webhook`` like Stripe's.
"""

from __future__ import annotations

from typing import Any

from chalice import Blueprint, Response

from chalicelib import bootstrap
from chalicelib.api.auth import check_same_origin
from chalicelib.api.inputs import path_param
from chalicelib.api.routing import Auth, Ctx, route
from chalicelib.domain.errors import BillingProviderError, ConflictError, NotFoundError

bp = Blueprint(__name__)
TAGS = ("Local Stripe stand-in",)
HTML = {"media": {"text/html": {"type": "string"}}}
CHECKOUT = path_param("session", "The Checkout session id (cs_…) from the URL the dashboard returned.")
PORTAL = path_param("session", "The Customer Portal session id (bps_…) from the URL the dashboard returned.")
TIER = path_param("tier", "One of pilot, starter, growth, scale.",
                  {"type": "string", "enum": ["pilot", "starter", "growth", "scale"]})


def _pages() -> Any:
    """The page templates, loaded on the first page view: `import app` (every cold start) skips them."""
    from chalicelib.api import local_stripe_html

    return local_stripe_html


def _available(ctx: Ctx) -> None:
    """Route guard: 404 before any input is looked at where the stand-in is off (nothing is revealed)."""
    _stand_in()


def _stand_in() -> Any:
    """The stand-in, or 404 when a Stripe API key is configured (real Stripe hosts these pages) or the stage is
    a deployed one (the pages never exist where money is real)."""
    if not bootstrap.stand_in_allowed() or bootstrap.stripe_config().api_key:
        raise NotFoundError("Not found.")
    from chalicelib.adapters.stripe_local import LocalStripe

    provider = bootstrap.billing_provider()
    if not isinstance(provider, LocalStripe):
        raise NotFoundError("Not found.")
    return provider


@route(bp, "/local-stripe/checkout/{session}", "GET", auth=Auth.NONE, summary="Local Checkout page",
       tags=TAGS, responses={200: HTML}, params=(CHECKOUT,), errors=(404,), guard=_available)
def local_checkout_page(ctx: Ctx, session: str) -> Response:
    """The stand-in's Checkout page (HTML): the plan, its price and a Pay button. Only without a Stripe key."""
    stand_in = _stand_in()
    return _pages().checkout(stand_in.checkout_page(session), action=f"/local-stripe/checkout/{session}/complete")


@route(bp, "/local-stripe/checkout/{session}/complete", "POST", auth=Auth.NONE, summary="Pay on the local Checkout",
       tags=TAGS, responses={200: HTML, 409: HTML}, params=(CHECKOUT,), errors=(403, 404), guard=_available)
def local_checkout_complete(ctx: Ctx, session: str) -> Response:
    """Completes the Checkout session as a successful payment (the Pay button's form post): the subscription
    starts and `checkout.session.completed`, `customer.subscription.created` and `invoice.paid` are sent
    to `POST /stripe/webhook`. A confirmation page links back to the success URL. Same-origin posts only."""
    stand_in = _stand_in()
    check_same_origin(ctx.request)
    try:
        outcome = stand_in.complete_checkout(session)
    except ConflictError as exc:
        return _pages().error_page("Checkout expired", exc.message, 409)
    return _pages().checkout(stand_in.checkout_page(session), action="", outcome=outcome)


@route(bp, "/local-stripe/portal/{session}", "GET", auth=Auth.NONE, summary="Local Customer Portal page",
       tags=TAGS, responses={200: HTML}, params=(PORTAL,), errors=(404,), guard=_available)
def local_portal_page(ctx: Ctx, session: str) -> Response:
    """The stand-in's Customer Portal (HTML): current plan and period end, plan changes, cancellation at
    period end, paying an open invoice, and the way back to Tally. Only without a Stripe key."""
    stand_in = _stand_in()
    return _pages().portal(stand_in.portal_page(session), base=f"/local-stripe/portal/{session}")


def _portal_action(ctx: Ctx, session: str, act: Any) -> Response:
    stand_in = _stand_in()
    check_same_origin(ctx.request)
    base = f"/local-stripe/portal/{session}"
    try:
        outcome = act(stand_in)
    except (ConflictError, BillingProviderError) as exc:
        return _pages().error_page("Billing", exc.message, 409, base)
    return _pages().portal(stand_in.portal_page(session), base=base, outcome=outcome)


@route(bp, "/local-stripe/portal/{session}/plan/{tier}", "POST", auth=Auth.NONE,
       summary="Change plan on the local Customer Portal", tags=TAGS, responses={200: HTML, 409: HTML},
       params=(PORTAL, TIER), errors=(400, 403, 404), guard=_available)
def local_portal_change_plan(ctx: Ctx, session: str, tier: str) -> Response:
    """Switches the subscription to `tier` at once, invoicing the prorated difference
    (`customer.subscription.updated`, `invoice.paid`). Same-origin posts only."""
    return _portal_action(ctx, session, lambda stand_in: stand_in.portal_change_plan(session, tier))


@route(bp, "/local-stripe/portal/{session}/cancel", "POST", auth=Auth.NONE,
       summary="Cancel at period end on the local Customer Portal", tags=TAGS, responses={200: HTML, 409: HTML},
       params=(PORTAL,), errors=(403, 404), guard=_available)
def local_portal_cancel(ctx: Ctx, session: str) -> Response:
    """Schedules the subscription's cancellation at the end of its period (`customer.subscription.updated`).
    Same-origin posts only."""
    return _portal_action(ctx, session, lambda stand_in: stand_in.portal_cancel(session))


@route(bp, "/local-stripe/portal/{session}/pay", "POST", auth=Auth.NONE,
       summary="Pay open invoices on the local Customer Portal", tags=TAGS, responses={200: HTML, 409: HTML},
       params=(PORTAL,), errors=(403, 404), guard=_available)
def local_portal_pay(ctx: Ctx, session: str) -> Response:
    """Pays the customer's open invoices (`invoice.paid`; a past-due subscription becomes active,
    `customer.subscription.updated`). Same-origin posts only."""
    return _portal_action(ctx, session, lambda stand_in: stand_in.portal_pay(session))
