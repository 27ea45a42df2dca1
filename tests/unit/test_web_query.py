"""The API's query parameters are parsed strictly: a lenient parser leaks other tenants' data."""

from __future__ import annotations

from multidict import MultiDict

from service.web.routes import tenant_param

KNOWN = {"demo", "acme"}


def test_one_known_tenant_or_none() -> None:
    assert tenant_param(MultiDict(), KNOWN) == (None, None)
    assert tenant_param(MultiDict([("tenant", "acme")]), KNOWN) == ("acme", None)


def test_a_repeated_tenant_is_refused_not_the_first_taken() -> None:
    # Behind a proxy that appends the caller's tenant, "first wins" served the one the caller chose.
    tenant, error = tenant_param(MultiDict([("tenant", "demo"), ("tenant", "acme")]), KNOWN)
    assert tenant is None and error is not None and error.startswith("tenant:") and "2 times" in error


def test_an_unknown_or_misspelt_parameter_is_named_not_ignored() -> None:
    # Ignored, ?Tenant=acme answered with every tenant's machines.
    tenant, error = tenant_param(MultiDict([("Tenant", "acme")]), KNOWN)
    assert tenant is None and error is not None and error.startswith("Tenant: unknown query parameter")


def test_an_unknown_or_malformed_tenant_is_named() -> None:
    for bad in ("nope", "", "a b", "x" * 65):
        tenant, error = tenant_param(MultiDict([("tenant", bad)]), KNOWN)
        assert tenant is None and error is not None and error.startswith("tenant:"), bad
