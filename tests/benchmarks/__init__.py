"""Benchmarks (`make bench`): see __main__.py."""


def fresh_instance(*, schema: str, host: str, name: str):
    """A newly provisioned instance for one benchmark (an earlier run's of the same schema is
    dropped first), with the public instance the platform needs; returns the ProvisionedInstance."""
    from spokestack.tenancy.models import Domain, Instance
    from spokestack.tenancy.services import instance_provision

    public, _ = Instance.objects.get_or_create(schema_name="public", defaults={"name": "Platform"})
    Domain.objects.get_or_create(domain="localhost", defaults={"tenant": public})
    existing = Instance.objects.filter(schema_name=schema).first()
    if existing is not None:
        existing.delete(force_drop=True)
    return instance_provision(name=name, domain=host, admin_email="admin@bench.example", schema_name=schema,
                              tier="enterprise")
