"""httpx's ``verify`` from the ``tls_verify`` and ``ca_bundle`` keys, the same for sources and sinks."""

from __future__ import annotations

import ssl
from pathlib import Path

from deploy_fetcher.netlimits import tls_verify

#: A self-signed CA certificate made for these tests (its key was thrown away).
CA = Path(__file__).parent / "fixtures" / "tls" / "test-ca.pem"


def test_a_ca_bundle_is_what_is_trusted_while_verifying() -> None:
    """With tls_verify and a bundle, the bundle's CA (and only it) is trusted."""
    context = tls_verify(tls_verify=True, ca_bundle=CA)
    assert isinstance(context, ssl.SSLContext)
    subjects = [dict(rdn[0] for rdn in cert["subject"]) for cert in context.get_ca_certs()]
    assert [{"commonName": "deploy-fetcher test CA"}] == subjects
    assert ssl.CERT_REQUIRED == context.verify_mode


def test_without_verification_a_bundle_changes_nothing() -> None:
    """tls_verify false is false, bundle or not; no bundle keeps the system's trust."""
    assert (False, False, True) == (
        tls_verify(tls_verify=False, ca_bundle=CA),
        tls_verify(tls_verify=False, ca_bundle=None),
        tls_verify(tls_verify=True, ca_bundle=None),
    )
