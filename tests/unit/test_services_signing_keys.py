"""Key ids derived from keys, and the signing-key registry's rules (over the in-memory unit of work)."""

from __future__ import annotations

import base64
from datetime import timedelta

import pytest

from chalicelib.adapters.signing import Signer, key_view
from chalicelib.domain.signing_keys import KEY_ID_PATTERN, KeyIdCollisionError, KeyStatus, SigningKey, key_id_of
from chalicelib.services import signing_keys
from tests.fakes import FakeStore, FakeUnitOfWork
from tests.unit.builders import NOW

A, B, C = Signer(b"\x01" * 32), Signer(b"\x02" * 32), Signer(b"\x03" * 32)


def test_a_key_id_is_the_rfc_7638_thumbprint_of_the_key():
    # RFC 8037, appendix A.3: the thumbprint of the Ed25519 key of appendix A.2.
    raw = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
    assert key_id_of(raw) == "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
    assert A.key_id == key_id_of(A.public_key.raw) and KEY_ID_PATTERN.fullmatch(A.key_id)
    assert len({A.key_id, B.key_id, C.key_id}) == 3  # another secret, another id
    assert Signer(b"\x01" * 32).key_id == A.key_id  # the same secret, the same id: stable across restarts
    with pytest.raises(ValueError):
        key_id_of(b"\x00" * 31)


def test_the_published_view_keeps_its_shape():
    view = key_view(A.key_id, A.public_key.raw, KeyStatus.RETIRED)
    assert view == {"keyId": A.key_id, "algorithm": "Ed25519", "publicKey": base64.b64encode(A.public_key.raw).decode(),
                    "publicKeyPem": view["publicKeyPem"], "status": "retired"}
    from cryptography.hazmat.primitives import serialization

    loaded = serialization.load_pem_public_key(view["publicKeyPem"].encode())
    assert loaded.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw) == A.public_key.raw


def test_registering_writes_once_per_key_and_then_only_reads(uow):
    entry = signing_keys.register(uow, A.key_id, A.public_key.raw, now=NOW)
    assert entry == SigningKey(A.key_id, A.public_key.raw, NOW) and uow.committed == [1]
    again = signing_keys.register(uow, A.key_id, A.public_key.raw, now=NOW + timedelta(days=1))
    assert again == entry and uow.committed == [1]  # a later cold start: first seen stays, nothing written


def test_a_concurrent_registration_is_read_back():
    store = FakeStore()
    first, second = FakeUnitOfWork(store), FakeUnitOfWork(store)
    reads = iter([None])  # the second cold start looked before the first one wrote
    real_get = second.signing_keys.get
    second.signing_keys.get = lambda key_id: next(reads, None) or real_get(key_id)
    signing_keys.register(first, A.key_id, A.public_key.raw, now=NOW)
    entry = signing_keys.register(second, A.key_id, A.public_key.raw, now=NOW + timedelta(seconds=1))
    assert entry.first_seen_at == NOW and second.committed == []  # its put conflicted; it read what was there


def test_an_id_registered_with_another_key_refuses_to_sign(uow):
    uow.signing_keys.add(SigningKey(A.key_id, B.public_key.raw, NOW))  # impossible by hashing; guarded anyway
    uow.commit()
    with pytest.raises(KeyIdCollisionError):
        signing_keys.register(uow, A.key_id, A.public_key.raw, now=NOW)
    with pytest.raises(ValueError):
        signing_keys.register(uow, "k1", A.public_key.raw, now=NOW)  # ids are derived, never chosen


def test_lookups_find_current_and_retired_keys_and_nothing_else(uow):
    signing_keys.register(uow, A.key_id, A.public_key.raw, now=NOW)
    assert signing_keys.public_key(uow, A.key_id) == A.public_key.raw
    assert signing_keys.public_key(uow, B.key_id, current=B) == B.public_key.raw  # its own key, without a read
    assert signing_keys.public_key(uow, A.key_id, current=B) == A.public_key.raw
    assert signing_keys.public_key(uow, C.key_id, current=B) is None
    assert signing_keys.public_key(uow, "k1") is None


def test_every_key_is_published_the_active_one_first(uow):
    for offset, signer in enumerate((A, B, C)):
        signing_keys.register(uow, signer.key_id, signer.public_key.raw, now=NOW + timedelta(days=offset))
    listed = signing_keys.published(uow, active_key_id=B.key_id)
    assert [(k.key_id, status) for k, status in listed] == [
        (B.key_id, KeyStatus.ACTIVE), (C.key_id, KeyStatus.RETIRED), (A.key_id, KeyStatus.RETIRED)]
