"""Credentials at rest: encrypted, bound to their instance, masked, rotatable."""

import io
import os
import pickle
import subprocess
import sys

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from spokestack.secrets import EncryptedSecret, SecretDecryptionError, decrypt, encrypt, master_keys
from spokestack.tenancy.models import Instance
from spokestack.tenancy.services import instance_set_erp

from ..conftest import ROOT

OLD_KEY = "old-master-key-0123456789abcdef0123456789"
NEW_KEY = "new-master-key-fedcba9876543210fedcba9876"


def _fresh(schema):
    return Instance.objects.get(schema_name=schema)


def _stored_token(schema):
    with connection.cursor() as cursor:
        cursor.execute("SELECT erp_api_key FROM public.tenancy_instance WHERE schema_name = %s", [schema])
        return cursor.fetchone()[0]


def test_a_secret_round_trips_in_its_own_instance_only():
    token = encrypt("sk-live-123", schema="tenant_a")
    assert "sk-live-123" not in token
    assert decrypt(token, schema="tenant_a") == "sk-live-123"
    with pytest.raises(SecretDecryptionError) as error:
        decrypt(token, schema="tenant_b")
    assert "sk-live-123" not in str(error.value)


def test_a_ciphertext_copied_to_another_instance_does_not_decrypt(db):
    a, b = _fresh("tenant_a"), _fresh("tenant_b")
    instance_set_erp(instance=a, base_url="https://erp.agency-a.example", api_key="key-of-a")
    assert _fresh("tenant_a").erp_api_key.reveal(schema="tenant_a") == "key-of-a"
    # An attacker with write access to B's row pastes A's ciphertext into it.
    Instance.objects.filter(pk=b.pk).update(erp_api_key=_fresh("tenant_a").erp_api_key)
    copied = _fresh("tenant_b")
    assert copied.erp_api_key.token == _stored_token("tenant_a")
    with pytest.raises(SecretDecryptionError):
        copied.erp_api_key.reveal(schema=copied.schema_name)


def test_the_column_holds_ciphertext_and_the_value_is_masked_everywhere(db):
    instance = instance_set_erp(instance=_fresh("tenant_a"), base_url="https://erp.example", api_key="plain-key-42")
    stored = _stored_token("tenant_a")
    assert stored.startswith("gAAAAA") and "plain-key-42" not in stored
    reloaded = _fresh("tenant_a")
    for shown in (repr(reloaded.erp_api_key), str(reloaded.erp_api_key), repr(reloaded.__dict__),
                  f"{reloaded.erp_api_key}", repr(pickle.loads(pickle.dumps(reloaded)).erp_api_key)):
        assert "plain-key-42" not in shown and stored not in shown
    assert str(instance.erp_api_key) == "••••••••"


def test_plaintext_cannot_be_saved_into_an_encrypted_field(db):
    instance = _fresh("tenant_a")
    instance.erp_api_key = "oops-plaintext"
    with pytest.raises(TypeError, match="EncryptedSecret"):
        instance.save(update_fields=["erp_api_key"])


def test_set_erp_keeps_or_clears_the_key(db):
    instance = instance_set_erp(instance=_fresh("tenant_a"), base_url="https://erp.example", api_key="k1")
    instance_set_erp(instance=instance, base_url="https://erp2.example")
    kept = _fresh("tenant_a")
    assert kept.erp_base_url == "https://erp2.example" and kept.erp_api_key.reveal(schema="tenant_a") == "k1"
    instance_set_erp(instance=kept, base_url="https://erp2.example", api_key="")
    assert not _fresh("tenant_a").erp_api_key


def test_without_configured_keys_outside_production_a_key_derives_from_secret_key(settings):
    settings.SPOKESTACK_SECRET_KEYS = []
    assert master_keys() == (f"derived-from-secret-key:{settings.SECRET_KEY}",)
    settings.SPOKESTACK_SECRET_KEYS = [NEW_KEY, OLD_KEY]
    assert master_keys() == (NEW_KEY, OLD_KEY)


def test_rotate_secrets_re_encrypts_every_secret_with_the_current_key(db, settings):
    settings.SPOKESTACK_SECRET_KEYS = [OLD_KEY]
    instance_set_erp(instance=_fresh("tenant_a"), base_url="https://erp.a.example", api_key="key-a")
    instance_set_erp(instance=_fresh("tenant_b"), base_url="https://erp.b.example", api_key="key-b")
    before = _stored_token("tenant_a"), _stored_token("tenant_b")

    settings.SPOKESTACK_SECRET_KEYS = [NEW_KEY, OLD_KEY]  # new key in front, old one still readable
    out = io.StringIO()
    call_command("rotate_secrets", stdout=out)
    assert "2 secret(s) re-encrypted" in out.getvalue()
    after = _stored_token("tenant_a"), _stored_token("tenant_b")
    assert after[0] != before[0] and after[1] != before[1]

    settings.SPOKESTACK_SECRET_KEYS = [NEW_KEY]  # the old key is gone: everything still reads
    assert _fresh("tenant_a").erp_api_key.reveal(schema="tenant_a") == "key-a"
    assert _fresh("tenant_b").erp_api_key.reveal(schema="tenant_b") == "key-b"
    assert "key-a" not in out.getvalue() and "key-b" not in out.getvalue()


def test_rotate_secrets_reports_and_keeps_what_no_key_can_read(db, settings):
    settings.SPOKESTACK_SECRET_KEYS = [OLD_KEY]
    instance_set_erp(instance=_fresh("tenant_a"), base_url="https://erp.a.example", api_key="key-a")
    before = _stored_token("tenant_a")
    settings.SPOKESTACK_SECRET_KEYS = [NEW_KEY]  # the old key was dropped too early
    err = io.StringIO()
    with pytest.raises(CommandError, match="1 could not be decrypted"):
        call_command("rotate_secrets", stderr=err)
    assert "tenancy.Instance" in err.getvalue() and "key-a" not in err.getvalue()
    assert _stored_token("tenant_a") == before


def test_production_settings_require_secret_keys():
    env = {**os.environ, "DJANGO_SECRET_KEY": "p" * 40, "SPOKESTACK_SECRET_KEYS": ""}
    result = subprocess.run([sys.executable, "-c", "import spokestack.settings.production"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "SPOKESTACK_SECRET_KEYS" in result.stderr


def test_an_empty_secret_is_falsy_and_masked_as_empty():
    assert not EncryptedSecret("") and str(EncryptedSecret("")) == ""


def test_without_a_schema_a_secret_binds_to_the_connections_instance(in_a):
    sealed = EncryptedSecret.seal("skill-token")  # what a skill in instance A stores
    assert sealed.reveal() == "skill-token" == sealed.reveal(schema="tenant_a")
    with pytest.raises(SecretDecryptionError):
        sealed.reveal(schema="tenant_b")
    connection.set_schema_to_public()
    with pytest.raises(ValueError, match="bound to an instance"):
        EncryptedSecret.seal("floating")
