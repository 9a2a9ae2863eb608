"""Content Credentials made in the tests: a throwaway CA and signer, and images signed with c2pa-python.

None of the public C2PA test files declares an AI generator, so the tests sign their own: an image "created" by a
trained model, and an "opened" manifest signed over it with the AI-declared one as its ingredient.
"""
from __future__ import annotations

import datetime
import io
from functools import lru_cache

IPTC = "http://cv.iptc.org/newscodes/digitalsourcetype/"


@lru_cache(maxsize=1)
def signer_material() -> tuple[bytes, bytes]:
    """(certificate chain PEM, private key PEM) of a leaf signed by a throwaway CA, as C2PA requires."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    def name(common: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common),
                          x509.NameAttribute(NameOID.ORGANIZATION_NAME, f"{common} Org")])

    def certificate(subject: str, issuer: x509.Name, key, issuer_key, ca: bool) -> x509.Certificate:
        now = datetime.datetime.now(datetime.timezone.utc)
        usage = dict(digital_signature=not ca, content_commitment=False, key_encipherment=False,
                     data_encipherment=False, key_agreement=False, key_cert_sign=ca, crl_sign=ca,
                     encipher_only=False, decipher_only=False)
        builder = (x509.CertificateBuilder().subject_name(name(subject)).issuer_name(issuer)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=30))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
                   .add_extension(x509.KeyUsage(**usage), critical=True)
                   .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
                   .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
                                  critical=False))
        if not ca:
            builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]),
                                            critical=False)
        return builder.sign(issuer_key, hashes.SHA256())

    ca_key, leaf_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = certificate("Test CA", name("Test CA"), ca_key, ca_key, ca=True)
    leaf = certificate("Test Generator", ca.subject, leaf_key, ca_key, ca=False)
    chain = leaf.public_bytes(serialization.Encoding.PEM) + ca.public_bytes(serialization.Encoding.PEM)
    key = leaf_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())
    return chain, key


def _signer():
    import c2pa

    chain, key = signer_material()
    return c2pa.Signer.from_info(c2pa.C2paSignerInfo(b"es256", chain, key, None))


PARENT_LABEL = "parent"


def actions_manifest(action: str, source_type: str | None = None, agent: str | None = None) -> dict:
    entry = {"action": action}
    if action == "c2pa.opened":  # an opened asset names the ingredient it opened
        entry["parameters"] = {"ingredientIds": [PARENT_LABEL]}
    if source_type:
        entry["digitalSourceType"] = IPTC + source_type
    if agent:
        entry["softwareAgent"] = {"name": agent}
    return {"claim_generator_info": [{"name": "test-pipeline", "version": "1.0"}], "title": "image.jpg",
            "format": "image/jpeg", "assertions": [{"label": "c2pa.actions", "data": {"actions": [entry]}}]}


def sign_jpeg(jpeg: bytes, manifest: dict, ingredient: bytes | None = None) -> bytes:
    """`jpeg` with `manifest` embedded and signed; `ingredient`, a signed JPEG, is added as its parent."""
    import c2pa

    out = io.BytesIO()
    with c2pa.Builder(manifest) as builder:
        if ingredient is not None:
            builder.add_ingredient({"title": "parent.jpg", "relationship": "parentOf", "label": PARENT_LABEL},
                                   "image/jpeg", io.BytesIO(ingredient))
        with _signer() as signer:
            builder.sign(signer, "image/jpeg", io.BytesIO(jpeg), out)
    return out.getvalue()


def ai_created_jpeg(jpeg: bytes, source_type: str = "trainedAlgorithmicMedia",
                    agent: str = "Test Diffusion 1.0") -> bytes:
    """`jpeg` signed as created by a generator."""
    return sign_jpeg(jpeg, actions_manifest("c2pa.created", source_type, agent))
