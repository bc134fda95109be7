"""HTML of the local Stripe stand-in's hosted pages (Checkout and Customer Portal), built from its views.

Self-contained (inline CSS, no scripts, no external assets), every value escaped. The session id in the
URL is the capability (as on Stripe's hosted pages), so the pages send no referrer, cannot be framed
and are not cached.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from html import escape
from typing import Any

from chalice import Response

from chalicelib.domain.plans import PLANS
from chalicelib.domain.subscriptions import SELF_SERVE_TIERS

HEADERS = {
    "Content-Type": "text/html; charset=utf-8",
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
                               "frame-ancestors 'none'; base-uri 'none'",
}

_STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;background:#f6f8fa;color:#1a1f36}
main{max-width:34rem;margin:2rem auto;padding:2rem;background:#fff;border-radius:8px;
box-shadow:0 1px 3px rgba(0,0,0,.12)}
h1{font-size:1.4rem;margin-top:0}h2{font-size:1.1rem;margin-top:1.6rem}
.banner{background:#fff4d6;border:1px solid #e8c35a;padding:.5rem .75rem;border-radius:4px;font-size:.9rem}
.notice{background:#e6f4ea;border:1px solid #5cb176;padding:.5rem .75rem;border-radius:4px}
.error{background:#fdecea;border:1px solid #e0786a;padding:.5rem .75rem;border-radius:4px}
.price{font-size:2rem;font-weight:600}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.35rem 1rem}dt{color:#566}dd{margin:0}
button{font:inherit;padding:.55rem 1.1rem;border-radius:4px;border:1px solid #4f46e5;background:#4f46e5;
color:#fff;cursor:pointer}button.secondary{background:#fff;color:#4f46e5}button.danger{background:#fff;
color:#b42318;border-color:#b42318}button:focus-visible,a:focus-visible{outline:3px solid #f59e0b;outline-offset:2px}
form{display:inline-block;margin:.25rem .4rem .25rem 0}ul.events{font-family:ui-monospace,monospace;font-size:.8rem}
a{color:#4f46e5}table{border-collapse:collapse;width:100%}td,th{text-align:left;padding:.3rem;
border-bottom:1px solid #e3e8ee}
"""


def page(title: str, body: str, status: int = 200) -> Response:
    html = (f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<title>{escape(title)} · Local Stripe</title><style>{_STYLE}</style></head>'
            f'<body><main><p class="banner" role="note">Local Stripe stand-in: no real payment is made. '
            f'Every change is sent to Tally as a signed Stripe webhook.</p>{body}</main></body></html>\n')
    return Response(body=html, status_code=status, headers=dict(HEADERS))


def error_page(title: str, message: str, status: int, back: str | None = None) -> Response:
    link = f'<p><a href="{escape(back)}">Back</a></p>' if back else ""
    return page(title, f'<h1>{escape(title)}</h1><p class="error" role="alert">{escape(message)}</p>{link}',
                status)


def usd(cents: int) -> str:
    sign = "-" if cents < 0 else ""
    return f"{sign}${abs(cents) // 100:,}.{abs(cents) % 100:02d}"


def _day(moment: datetime | int | None) -> str:
    if moment is None:
        return "—"
    if isinstance(moment, int):
        moment = datetime.fromtimestamp(moment, UTC)
    return f"{moment:%B} {moment.day}, {moment.year}"


def _events(events: Iterable[Any]) -> str:
    items = "".join(f"<li>{escape(event.describe())}</li>" for event in events)
    return f'<h2>Webhook events</h2><ul class="events">{items}</ul>' if items else ""


def _form(action: str, label: str, css: str = "") -> str:
    css_attr = f' class="{css}"' if css else ""
    return (f'<form method="post" action="{escape(action)}">'
            f'<button type="submit"{css_attr}>{escape(label)}</button></form>')


def checkout(view: dict[str, Any], *, action: str, outcome: Any = None) -> Response:
    """The Checkout page: the plan and its price, a Pay button; once paid, a link back to Tally."""
    session, tier = view["session"], view["tier"]
    plan = PLANS[tier]
    name = f"Tally {tier.title()}"
    summary = (f'<p class="price">{usd(view["monthly_cents"])} <small>per month</small></p>'
               f'<dl><dt>Plan</dt><dd>{escape(name)}</dd>'
               f'<dt>Included</dt><dd>{plan.monthly_allotment:,} deltas per month</dd>'
               f'<dt>Overage</dt><dd>{escape(plan.overage_rate_label or "none")}</dd>'
               f'<dt>Billing</dt><dd>monthly, on the 1st (UTC)</dd></dl>')
    status = session["status"]
    if status == "complete":
        back = _return_url(session)
        note = escape(outcome.summary) if outcome is not None else "This Checkout session is complete."
        body = (f'<h1>Payment complete</h1><p class="notice" role="status">{note}</p>{summary}'
                f'<p><a href="{escape(back)}">Return to Tally</a></p>'
                f'{_events(outcome.events if outcome is not None else ())}')
        return page("Payment complete", body)
    if status != "open":
        return error_page("Checkout expired", "This Checkout session has expired; start a new one from Tally.",
                          200, session.get("cancel_url"))
    due = (f'<dl><dt>Due today</dt><dd>{usd(view["due_now_cents"])} '
           f'(the rest of this month, until {escape(_day(view["period_end"]))})</dd>'
           f'<dt>Email</dt><dd>{escape(session.get("customer_email") or "—")}</dd></dl>')
    body = (f'<h1>Subscribe to {escape(name)}</h1>{summary}{due}'
            f'{_form(action, "Pay " + usd(view["due_now_cents"]) + " and subscribe")}'
            f'<p><a href="{escape(session["cancel_url"])}">Cancel and return to Tally</a></p>')
    return page(f"Subscribe to {name}", body)


def portal(view: dict[str, Any], *, base: str, outcome: Any = None) -> Response:
    """The Customer Portal: current plan and period end, plan changes, cancellation, open invoices."""
    portal_session, subscription = view["portal"], view["subscription"]
    notice = (f'<p class="notice" role="status">{escape(outcome.summary)}</p>{_events(outcome.events)}'
              if outcome is not None else "")
    back = f'<p><a href="{escape(portal_session["return_url"])}">Return to Tally</a></p>'
    email = view["customer"].get("email")
    head = f'<h1>Billing</h1>{notice}<p>Customer {escape(view["customer"]["id"])}'
    head += f" ({escape(email)})</p>" if email else "</p>"
    if subscription is None:
        return page("Billing", f"{head}<p>No active subscription.</p>{_invoices(view)}{back}")
    tier = view["tier"]
    cancel = subscription["cancel_at_period_end"]
    price = usd(PLANS[tier].price_usd * 100) if tier in PLANS else "—"
    status = subscription["status"].replace("_", " ")
    details = (f'<h2>Current plan</h2><dl><dt>Plan</dt><dd>Tally {escape((tier or "unknown").title())} '
               f'({price} per month)</dd><dt>Status</dt><dd>{escape(status)}</dd>'
               f'<dt>{"Ends" if cancel else "Renews"}</dt><dd>{escape(_day(view["period_end"]))}</dd></dl>')
    actions = ""
    if view["open_invoices"]:
        due = sum(invoice["amount_remaining"] for invoice in view["open_invoices"])
        actions += (f'<h2>Payment due</h2><p class="error" role="alert">{usd(due)} is unpaid.</p>'
                    f'{_form(base + "/pay", "Pay " + usd(due) + " now")}')
    if subscription["status"] != "canceled":
        changes = "".join(
            _form(f"{base}/plan/{other}", f"Switch to {other.title()} ({usd(PLANS[other].price_usd * 100)}/mo)",
                  "secondary") for other in SELF_SERVE_TIERS if other != tier)
        actions += f"<h2>Change plan</h2><p>Takes effect now; the difference is charged pro rata.</p>{changes}"
        if not cancel:
            actions += ("<h2>Cancel</h2><p>Your plan stays until the end of the period, then reverts to Free.</p>"
                        + _form(f"{base}/cancel", "Cancel at period end", "danger"))
    return page("Billing", f"{head}{details}{actions}{_invoices(view)}{back}")


def _invoices(view: dict[str, Any]) -> str:
    rows = "".join(f"<tr><td>{escape(_day(invoice['created']))}</td><td>{escape(invoice['number'])}</td>"
                   f"<td>{usd(invoice['amount_due'])}</td><td>{escape(invoice['status'])}</td></tr>"
                   for invoice in view["invoices"])
    if not rows:
        return ""
    return ('<h2>Invoices</h2><table><thead><tr><th scope="col">Date</th><th scope="col">Number</th>'
            f'<th scope="col">Amount</th><th scope="col">Status</th></tr></thead><tbody>{rows}</tbody></table>')


def _return_url(session: dict[str, Any]) -> str:
    """Stripe fills ``{CHECKOUT_SESSION_ID}`` in the success URL."""
    return str(session["success_url"]).replace("{CHECKOUT_SESSION_ID}", session["id"])
