"""Dashboard JWT verification (and issuing, for local development only).

PyJWT and cryptography load on first use, keeping them off the cold-start path
of Balance API requests. The algorithm allow-list decides the key *family*
before anything is verified, so an HS256 token can never be checked against an
RSA public key and ``alg: none`` is never accepted.
"""

from __future__ import annotations

import time
from typing import Any

from chalicelib.domain.errors import AuthenticationError
from chalicelib.settings import Settings

_HMAC = {"HS256", "HS384", "HS512"}
_ASYMMETRIC = {"RS256", "RS384", "RS512", "ES256", "ES384", "PS256", "EdDSA"}


class JwtVerifier:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        unknown = set(settings.jwt_algorithms) - _HMAC - _ASYMMETRIC
        if unknown:
            raise RuntimeError(f"unsupported JWT algorithms configured: {sorted(unknown)}")
        self._jwks_client: Any = None

    def _key_for(self, alg: str, token: str) -> Any:
        settings = self._settings
        if alg in _HMAC:
            if not settings.jwt_secret:
                raise AuthenticationError("HMAC tokens are not accepted here.", code="INVALID_TOKEN")
            return settings.jwt_secret
        if settings.jwt_public_key:
            return settings.jwt_public_key
        if settings.jwt_jwks_url:
            import jwt

            if self._jwks_client is None:
                self._jwks_client = jwt.PyJWKClient(settings.jwt_jwks_url, cache_keys=True, lifespan=3600)
            try:
                return self._jwks_client.get_signing_key_from_jwt(token).key
            except jwt.PyJWKClientError as exc:
                raise AuthenticationError("The token's signing key is unknown.", code="INVALID_TOKEN") from exc
        raise AuthenticationError("No verification key is configured for this token.", code="INVALID_TOKEN")

    def verify(self, token: str) -> dict[str, Any]:
        """Return the claims of a valid token or raise :class:`AuthenticationError`."""
        import jwt

        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError as exc:
            raise AuthenticationError("The bearer token is malformed.", code="INVALID_TOKEN") from exc
        alg = header.get("alg")
        if alg not in self._settings.jwt_algorithms:
            raise AuthenticationError("The token's algorithm is not allowed.", code="INVALID_TOKEN")
        key = self._key_for(alg, token)
        try:
            return jwt.decode(
                token,
                key,
                algorithms=[alg],
                audience=self._settings.jwt_audience,
                issuer=self._settings.jwt_issuer,
                leeway=self._settings.jwt_leeway_seconds,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise AuthenticationError("The token has expired.", code="TOKEN_EXPIRED") from exc
        except jwt.InvalidTokenError as exc:
            raise AuthenticationError(f"The token is not valid: {exc}", code="INVALID_TOKEN") from exc

    def issue(self, *, tenant_id: str, user_id: str, role: str, ttl_seconds: int = 3600) -> str:
        """Mint an HS256 token the way the local identity provider would (dev tooling only)."""
        import jwt

        settings = self._settings
        if not settings.jwt_secret:
            raise RuntimeError("issuing tokens needs TALLY_JWT_SECRET (local HS256 only)")
        now = int(time.time())
        claims = {
            "sub": user_id,
            settings.jwt_tenant_claim: tenant_id,
            settings.jwt_role_claim: role,
            "iss": settings.jwt_issuer,
            "aud": settings.jwt_audience,
            "iat": now,
            "exp": now + ttl_seconds,
        }
        return jwt.encode(claims, settings.jwt_secret, algorithm="HS256")
