"""Tally API: composition only. Routes live in chalicelib/api, rules in services/domain."""

from chalice import Chalice

from chalicelib.api import api_keys, audit, balance, billing, credits, meta, middleware, platform, session, tenant

app = Chalice(app_name="tally", configure_logs=False)  # chalicelib.log owns the "tally" logger
app.api.binary_types.append("application/zip")

for blueprint in (meta.bp, tenant.bp, session.bp, api_keys.bp, audit.bp, balance.bp, billing.bp, credits.bp,
                  platform.bp):
    app.register_blueprint(blueprint)

middleware.install(app)
middleware.install_method_not_allowed(app)
