//! Certificates: the master's CA, the certificates it issues (server, admin,
//! agents), the agent's key and CSR, and reading identity and validity back
//! out of a certificate.
//!
//! Keys are ECDSA P-256. Private keys are returned as [`SecretString`] so
//! they cannot reach `Debug` output by accident; writing them to disk (0600)
//! is the binaries' job.

use crate::identity::Identity;
use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use secrecy::{ExposeSecret, SecretSlice, SecretString};
use std::net::IpAddr;
use time::{Duration, OffsetDateTime};

/// How far back a new certificate's validity starts, to absorb clock skew.
const BACKDATE: Duration = Duration::minutes(5);
/// Lifetime of a generated CA.
pub const CA_LIFETIME: Duration = Duration::days(3650);

/// Why a certificate could not be made or read.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("certificate signing request is invalid: {0}")]
    InvalidCsr(String),
    #[error("certificate is invalid: {0}")]
    InvalidCertificate(String),
    #[error("private key is invalid: {0}")]
    InvalidKey(String),
    #[error("name {name:?} cannot go into a certificate: {reason}")]
    InvalidName { name: String, reason: String },
    #[error("certificate generation failed: {0}")]
    Generation(#[from] rcgen::Error),
}

/// A certificate with its private key, both PEM.
pub struct CertifiedKeyPem {
    pub certificate_pem: String,
    pub key_pem: SecretString,
}

/// A certificate issued from a CSR (the key stays with the requester).
#[derive(Debug, Clone)]
pub struct IssuedCertificate {
    pub certificate_pem: String,
    pub serial_hex: String,
    pub not_after: OffsetDateTime,
}

/// What a certificate says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateInfo {
    pub serial_hex: String,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
    pub uri_sans: Vec<String>,
    /// DNS names and IP addresses (as text) among the subject alternative names.
    pub host_names: Vec<String>,
}

impl CertificateInfo {
    /// The DockFlare identity in the certificate's URI SANs, if any.
    pub fn identity(&self) -> Option<Identity> {
        self.uri_sans.iter().find_map(|uri| Identity::from_uri(uri))
    }
}

/// The master's certificate authority: signs server, admin and agent certificates.
pub struct CertificateAuthority {
    certificate_pem: String,
    certificate_der: Vec<u8>,
    issuer: Issuer<'static, KeyPair>,
    key_der: SecretSlice<u8>,
}

impl CertificateAuthority {
    /// Generates a new self-signed CA.
    pub fn generate(common_name: &str, now: OffsetDateTime) -> Result<(CertificateAuthority, SecretString), PkiError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        params.distinguished_name = distinguished_name(common_name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        params.not_before = now - BACKDATE;
        params.not_after = now + CA_LIFETIME;
        params.serial_number = Some(random_serial());
        let certificate = params.self_signed(&key)?;
        let key_pem = SecretString::from(key.serialize_pem());
        let ca = CertificateAuthority::load(&certificate.pem(), key_pem.expose_secret())?;
        Ok((ca, key_pem))
    }

    /// Loads a CA from its certificate and key (PEM).
    pub fn load(certificate_pem: &str, key_pem: &str) -> Result<CertificateAuthority, PkiError> {
        let key = KeyPair::from_pem(key_pem).map_err(|e| PkiError::InvalidKey(e.to_string()))?;
        let key_der = SecretSlice::from(key.serialize_der());
        let certificate_der = first_pem_der(certificate_pem)?;
        let issuer = Issuer::from_ca_cert_pem(certificate_pem, key)
            .map_err(|e| PkiError::InvalidCertificate(format!("CA certificate: {e}")))?;
        Ok(CertificateAuthority { certificate_pem: certificate_pem.to_string(), certificate_der, issuer, key_der })
    }

    /// The CA's private key (PKCS#8 DER): keying material for the keys the
    /// master derives from it (the command log's sealing key), which every
    /// master sharing this CA can therefore derive too.
    pub fn private_key_der(&self) -> &SecretSlice<u8> {
        &self.key_der
    }

    pub fn certificate_pem(&self) -> &str {
        &self.certificate_pem
    }

    pub fn certificate_der(&self) -> &[u8] {
        &self.certificate_der
    }

    /// A server certificate (and new key) for the given DNS names and IP addresses.
    pub fn issue_server(
        &self,
        names: &[String],
        lifetime: Duration,
        now: OffsetDateTime,
    ) -> Result<CertifiedKeyPem, PkiError> {
        let mut params = leaf_params(names.first().map(String::as_str).unwrap_or("dockflare-master"), lifetime, now);
        params.subject_alt_names = names.iter().map(|name| san_for_name(name)).collect::<Result<_, _>>()?;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.issue_with_new_key(params)
    }

    /// A client certificate (and new key) for an identity: the admin identity.
    pub fn issue_client(
        &self,
        identity: &Identity,
        lifetime: Duration,
        now: OffsetDateTime,
    ) -> Result<CertifiedKeyPem, PkiError> {
        let params = client_params(identity, lifetime, now)?;
        self.issue_with_new_key(params)
    }

    /// Signs a CSR for `identity`. Only the CSR's public key is used: the
    /// names and extensions in it are ignored, the master decides them.
    pub fn sign_csr(
        &self,
        csr_der: &[u8],
        identity: &Identity,
        lifetime: Duration,
        now: OffsetDateTime,
    ) -> Result<IssuedCertificate, PkiError> {
        let csr = CertificateSigningRequestParams::from_der(&csr_der.into())
            .map_err(|e| PkiError::InvalidCsr(e.to_string()))?;
        let params = client_params(identity, lifetime, now)?;
        let certificate = params.signed_by(&csr.public_key, &self.issuer)?;
        let info = describe_certificate(certificate.der())?;
        Ok(IssuedCertificate {
            certificate_pem: certificate.pem(),
            serial_hex: info.serial_hex,
            not_after: info.not_after,
        })
    }

    fn issue_with_new_key(&self, params: CertificateParams) -> Result<CertifiedKeyPem, PkiError> {
        let key = KeyPair::generate()?;
        let certificate = params.signed_by(&key, &self.issuer)?;
        Ok(CertifiedKeyPem { certificate_pem: certificate.pem(), key_pem: SecretString::from(key.serialize_pem()) })
    }
}

/// A new private key and a CSR for it, as an agent makes at enrollment and renewal.
pub fn new_key_and_csr(common_name: &str) -> Result<(SecretString, Vec<u8>), PkiError> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::default();
    params.distinguished_name = distinguished_name(common_name);
    let csr = params.serialize_request(&key)?;
    Ok((SecretString::from(key.serialize_pem()), csr.der().to_vec()))
}

/// Reads serial, validity and URI SANs from a DER certificate.
pub fn describe_certificate(der: &[u8]) -> Result<CertificateInfo, PkiError> {
    use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};
    let (_, cert) = X509Certificate::from_der(der).map_err(|e| PkiError::InvalidCertificate(e.to_string()))?;
    let mut uri_sans = Vec::new();
    let mut host_names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                GeneralName::URI(uri) => uri_sans.push((*uri).to_string()),
                GeneralName::DNSName(dns) => host_names.push((*dns).to_string()),
                GeneralName::IPAddress(bytes) => {
                    let ip = match bytes.len() {
                        4 => <[u8; 4]>::try_from(*bytes).ok().map(IpAddr::from),
                        16 => <[u8; 16]>::try_from(*bytes).ok().map(IpAddr::from),
                        _ => None,
                    };
                    host_names.extend(ip.map(|ip| ip.to_string()));
                }
                _ => {}
            }
        }
    }
    Ok(CertificateInfo {
        serial_hex: hex::encode(cert.raw_serial()),
        not_before: cert.validity().not_before.to_datetime(),
        not_after: cert.validity().not_after.to_datetime(),
        uri_sans,
        host_names,
    })
}

/// Whether `der` carries a valid signature by the certificate `issuer_der`.
pub fn is_issued_by(der: &[u8], issuer_der: &[u8]) -> bool {
    use x509_parser::prelude::{FromDer, X509Certificate};
    let (Ok((_, cert)), Ok((_, issuer))) = (X509Certificate::from_der(der), X509Certificate::from_der(issuer_der))
    else {
        return false;
    };
    cert.verify_signature(Some(issuer.public_key())).is_ok()
}

/// Every certificate in a PEM text, as DER.
pub fn pem_certificates_der(pem_text: &str) -> Result<Vec<Vec<u8>>, PkiError> {
    let blocks = pem::parse_many(pem_text).map_err(|e| PkiError::InvalidCertificate(e.to_string()))?;
    let ders: Vec<Vec<u8>> =
        blocks.into_iter().filter(|b| b.tag() == "CERTIFICATE").map(|b| b.into_contents()).collect();
    if ders.is_empty() {
        return Err(PkiError::InvalidCertificate("no CERTIFICATE block in PEM".into()));
    }
    Ok(ders)
}

/// Encodes DER certificates as PEM.
pub fn der_to_pem(der: &[u8]) -> String {
    pem::encode(&pem::Pem::new("CERTIFICATE", der.to_vec()))
}

fn first_pem_der(pem_text: &str) -> Result<Vec<u8>, PkiError> {
    pem_certificates_der(pem_text)?
        .into_iter()
        .next()
        .ok_or_else(|| PkiError::InvalidCertificate("no certificate".into()))
}

fn client_params(identity: &Identity, lifetime: Duration, now: OffsetDateTime) -> Result<CertificateParams, PkiError> {
    let common_name = match identity {
        Identity::Agent(id) => format!("dockflare-agent {id}"),
        Identity::Admin { name, role } => format!("dockflare-{role} {name}"),
    };
    let mut params = leaf_params(&common_name, lifetime, now);
    let uri = identity.to_uri();
    let ia5 =
        uri.clone().try_into().map_err(|e: rcgen::Error| PkiError::InvalidName { name: uri, reason: e.to_string() })?;
    params.subject_alt_names = vec![SanType::URI(ia5)];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    Ok(params)
}

fn leaf_params(common_name: &str, lifetime: Duration, now: OffsetDateTime) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = distinguished_name(common_name);
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.not_before = now - BACKDATE;
    params.not_after = now + lifetime;
    params.serial_number = Some(random_serial());
    params.use_authority_key_identifier_extension = true;
    params
}

fn distinguished_name(common_name: &str) -> DistinguishedName {
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, common_name);
    name
}

fn san_for_name(name: &str) -> Result<SanType, PkiError> {
    if let Ok(ip) = name.parse::<IpAddr>() {
        return Ok(SanType::IpAddress(ip));
    }
    name.to_string()
        .try_into()
        .map(SanType::DnsName)
        .map_err(|e: rcgen::Error| PkiError::InvalidName { name: name.to_string(), reason: e.to_string() })
}

fn random_serial() -> SerialNumber {
    let mut bytes: [u8; 16] = rand::random();
    bytes[0] &= 0x7f; // positive
    bytes[0] |= 0x01; // no leading zero byte, so the encoded length is stable
    SerialNumber::from_slice(&bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::AgentId;

    fn now() -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }

    #[test]
    fn agent_certificate_from_csr_carries_the_masters_identity_choice() {
        let (ca, _) = CertificateAuthority::generate("test CA", now()).expect("ca");
        let (_key, csr) = new_key_and_csr("whatever the agent asks for").expect("csr");
        let agent = Identity::Agent(AgentId::generate());
        let issued = ca.sign_csr(&csr, &agent, Duration::hours(1), now()).expect("signed");
        let der = first_pem_der(&issued.certificate_pem).expect("der");
        let info = describe_certificate(&der).expect("info");
        assert_eq!(info.identity(), Some(agent));
        assert_eq!(info.serial_hex, issued.serial_hex);
        assert!(info.not_after > now() + Duration::minutes(59));
        assert!(info.not_after < now() + Duration::minutes(61));
    }

    #[test]
    fn garbage_csr_is_rejected_with_a_reason() {
        let (ca, _) = CertificateAuthority::generate("test CA", now()).expect("ca");
        let err = ca
            .sign_csr(
                b"not a csr",
                &Identity::Admin { name: "x".into(), role: crate::identity::Role::Admin },
                Duration::hours(1),
                now(),
            )
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.starts_with("certificate signing request is invalid"), "{err}");
    }

    #[test]
    fn a_ca_reloads_from_its_pem_files() {
        let (ca, key) = CertificateAuthority::generate("test CA", now()).expect("ca");
        let reloaded = CertificateAuthority::load(ca.certificate_pem(), key.expose_secret()).expect("load");
        assert_eq!(reloaded.certificate_der(), ca.certificate_der());
        let server =
            reloaded.issue_server(&["localhost".into(), "127.0.0.1".into()], Duration::days(1), now()).expect("server");
        assert!(server.certificate_pem.contains("BEGIN CERTIFICATE"));
    }
}
