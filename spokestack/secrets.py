"""Credentials at rest (skill auth, ERP API keys): encrypted, bound to one instance, write-only.

* Fernet tokens under MultiFernet: `SPOKESTACK_SECRET_KEYS` lists master keys, current
  first; older keys still decrypt until `manage.py rotate_secrets` re-encrypts everything
  with the current one and they can be dropped. Outside production, with no keys set, one
  key is derived from SECRET_KEY (production settings require the variable).
* Bound to the instance: the Fernet key is derived per instance with HKDF over the master
  key and the instance's schema name, so a ciphertext copied into another instance's row
  (or another instance's schema) does not decrypt there.
* Write-only: the stored value is an `EncryptedSecret`, whose repr and str are masked; the
  plaintext exists only for the duration of `reveal()`, at the moment a request is sent.
"""

from __future__ import annotations

import base64
import functools
from dataclasses import dataclass, field
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.apps import apps
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import connection, models, transaction

MASK = "••••••••"
_SALT = b"spokestack.secrets.v1"


class SecretDecryptionError(Exception):
    """A stored secret cannot be decrypted for this instance: copied from another instance,
    or encrypted with a key that is no longer configured. The message never holds the value."""

    def __init__(self, message: str = "The stored secret cannot be decrypted for this instance; enter it again.") -> None:
        super().__init__(message)
        self.message = message


def master_keys() -> tuple[str, ...]:
    keys = tuple(k for k in getattr(settings, "SPOKESTACK_SECRET_KEYS", ()) if k)
    if keys:
        return keys
    if not settings.SECRET_KEY:
        raise ImproperlyConfigured("Set SPOKESTACK_SECRET_KEYS (or at least SECRET_KEY outside production).")
    return (f"derived-from-secret-key:{settings.SECRET_KEY}",)


@functools.lru_cache(maxsize=512)
def _fernet_for(keys: tuple[str, ...], schema: str) -> MultiFernet:
    fernets = []
    for key in keys:
        derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=_SALT,
                       info=b"instance:" + schema.encode()).derive(key.encode())
        fernets.append(Fernet(base64.urlsafe_b64encode(derived)))
    return MultiFernet(fernets)


def _fernet(schema: str | None) -> MultiFernet:
    return _fernet_for(master_keys(), _binding(schema))


def _binding(schema: str | None) -> str:
    """The schema a secret is bound to: the one given, else the instance the connection is in."""
    if schema:
        return schema
    from django_tenants.utils import get_public_schema_name

    if connection.schema_name in ("", get_public_schema_name()):
        raise ValueError("a secret must be bound to an instance: pass schema= or set the connection to the instance")
    return connection.schema_name


def encrypt(plaintext: str, *, schema: str | None = None) -> str:
    """The Fernet token for `plaintext`, readable only in instance `schema` (default: the
    instance the database connection is set to)."""
    return _fernet(schema).encrypt(plaintext.encode()).decode("ascii")


def decrypt(token: str, *, schema: str | None = None) -> str:
    try:
        return _fernet(schema).decrypt(token.encode("ascii")).decode()
    except (InvalidToken, UnicodeError, ValueError):
        raise SecretDecryptionError() from None


def rotate(token: str, *, schema: str | None = None) -> str:
    """The same secret re-encrypted with the current key (raises if no key can read it)."""
    try:
        return _fernet(schema).rotate(token.encode("ascii")).decode("ascii")
    except (InvalidToken, UnicodeError, ValueError):
        raise SecretDecryptionError() from None


class EncryptedSecret:
    """A stored credential: the ciphertext, masked wherever it could be displayed.

    `EncryptedSecret.seal("tok", schema=...)` encrypts; `secret.reveal(schema=...)` returns
    the plaintext and is meant to be called only where the request is built.
    """

    __slots__ = ("token",)

    def __init__(self, token: str) -> None:
        self.token = token

    @classmethod
    def seal(cls, plaintext: str, *, schema: str | None = None) -> EncryptedSecret:
        return cls(encrypt(plaintext, schema=schema))

    def reveal(self, *, schema: str | None = None) -> str:
        return decrypt(self.token, schema=schema)

    def __bool__(self) -> bool:
        return bool(self.token)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, EncryptedSecret) and other.token == self.token

    def __hash__(self) -> int:
        return hash(self.token)

    def __repr__(self) -> str:
        return f"EncryptedSecret({MASK if self.token else ''!r})"

    def __str__(self) -> str:
        return MASK if self.token else ""

    def __reduce__(self):  # pickling keeps only the ciphertext, like the database does
        return (EncryptedSecret, (self.token,))


class EncryptedSecretField(models.TextField):
    """A column holding a Fernet token; the Python value is an `EncryptedSecret` (or None).

    `bound_to` names the attribute of the row that holds the instance's schema (e.g.
    "schema_name" on Instance itself); without it the row lives in an instance schema and
    is bound to that schema (`connection.schema_name`). Plain strings are refused on save,
    so plaintext can never reach the column by accident.
    """

    def __init__(self, *args: Any, bound_to: str | None = None, **kwargs: Any) -> None:
        self.bound_to = bound_to
        kwargs.setdefault("blank", True)
        kwargs.setdefault("default", "")
        kwargs.setdefault("editable", False)  # forms take the plaintext in their own write-only field
        super().__init__(*args, **kwargs)

    def deconstruct(self):
        name, path, args, kwargs = super().deconstruct()
        if self.bound_to:
            kwargs["bound_to"] = self.bound_to
        return name, path, args, kwargs

    def schema_for(self, obj: models.Model) -> str:
        return getattr(obj, self.bound_to) if self.bound_to else connection.schema_name

    def from_db_value(self, value, expression, connection_):
        return EncryptedSecret(value) if value else EncryptedSecret("")

    def to_python(self, value):
        if isinstance(value, EncryptedSecret) or value is None:
            return value
        return EncryptedSecret(value) if value == "" else value

    def get_prep_value(self, value):
        if value is None or value == "":
            return "" if not self.null else None
        if isinstance(value, EncryptedSecret):
            return value.token
        raise TypeError(f"{self.name} stores only EncryptedSecret values: seal the plaintext with "
                        "EncryptedSecret.seal(value, schema=...) first.")

    def value_to_string(self, obj):  # dumpdata keeps the ciphertext, never the plaintext
        value = self.value_from_object(obj)
        return value.token if isinstance(value, EncryptedSecret) else ""


# --- rotation ---------------------------------------------------------------------------


@dataclass
class RotationReport:
    rotated: int = 0
    schemas: int = 0
    failed: list[str] = field(default_factory=list)  # "app.Model pk=… field (schema)": never the value


def _secret_models() -> list[tuple[type[models.Model], list[EncryptedSecretField]]]:
    found = []
    for model in apps.get_models():
        fields = [f for f in model._meta.concrete_fields if isinstance(f, EncryptedSecretField)]
        if fields:
            found.append((model, fields))
    return found


def _rotate_model(model: type[models.Model], fields: list[EncryptedSecretField], schema: str,
                  report: RotationReport) -> None:
    extra = {f.bound_to for f in fields if f.bound_to}
    with transaction.atomic():
        rows = model._base_manager.select_for_update().only("pk", *[f.name for f in fields], *extra)
        for obj in rows.iterator():
            updates = {}
            for f in fields:
                value = getattr(obj, f.attname)
                if not value:
                    continue
                try:
                    updates[f.attname] = EncryptedSecret(rotate(value.token, schema=f.schema_for(obj)))
                except SecretDecryptionError:
                    report.failed.append(f"{model._meta.label} pk={obj.pk} {f.name} ({schema})")
            if updates:
                model._base_manager.filter(pk=obj.pk).update(**updates)
                report.rotated += len(updates)


def secrets_rotate() -> RotationReport:
    """Re-encrypt every stored secret, in the public schema and in every instance schema,
    with the current (first) key. Rows that no configured key can read are reported, not
    changed, so a wrong key list never destroys anything."""
    from django_tenants.utils import get_public_schema_name, get_tenant_model, schema_context

    public = get_public_schema_name()
    shared_apps, tenant_apps = set(settings.SHARED_APPS), set(settings.TENANT_APPS)
    targets = _secret_models()
    report = RotationReport()
    with schema_context(public):
        schemas = list(get_tenant_model().objects.exclude(schema_name=public).order_by("schema_name")
                       .values_list("schema_name", flat=True))
        for model, fields in targets:
            if model._meta.app_config.name in shared_apps:
                _rotate_model(model, fields, public, report)
    report.schemas = 1
    tenant_targets = [(m, f) for m, f in targets if m._meta.app_config.name in tenant_apps]
    for schema in schemas:
        with schema_context(schema):
            for model, fields in tenant_targets:
                _rotate_model(model, fields, schema, report)
        report.schemas += 1
    return report
