//! Node identity: the name a node's fleet certificate was issued for.
//!
//! Addresses are a poor identity for a fleet member: one node can be a DNS name to one
//! peer, an IP to another, an IPv4-mapped IPv6 address or a NAT's address to a third.
//! Ranking peers by address lets nodes disagree about who owns a key. The node name in
//! the certificate is the same whoever looks at it and however they reached the node,
//! and the fleet CA's signature binds it to the key that completed the handshake.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, DnsName};
use x509_parser::extensions::GeneralName;

use crate::certs::FLEET_SERVER_NAME;

/// A fleet member's stable name: the DNS subject alternative name of its fleet
/// certificate that is not the shared [`FLEET_SERVER_NAME`], in lower case without a
/// trailing dot (DNS names compare that way). Cheap to clone.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeName(Arc<str>);

/// Why a name, or a certificate, does not give a usable node name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// The name is not a DNS name (empty, bad characters, an IP address), or it is the
    /// name every member shares.
    #[error("{0:?} is not a usable node name: it must be a DNS name such as `node-1`")]
    Invalid(String),
    /// The certificate is not X.509 that can be read, or its subject alternative names
    /// extension is malformed.
    #[error("the certificate cannot be read: {0}")]
    Unreadable(String),
    /// The certificate carries no DNS name besides the shared member name.
    #[error("the certificate names no node (no DNS name besides {FLEET_SERVER_NAME})")]
    Missing,
    /// The certificate carries more than one node name, so it identifies no single node.
    #[error("the certificate names several nodes: {0:?}")]
    Ambiguous(Vec<String>),
    /// The connection has no certificate chain (it cannot happen after the fleet's
    /// mutual TLS handshake, but it is a refusal rather than an assumption).
    #[error("the connection presented no certificate")]
    NoCertificate,
}

impl NodeName {
    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The node name a fleet certificate (DER) was issued for.
    pub(crate) fn from_certificate(der: &[u8]) -> Result<NodeName, NameError> {
        let (_, cert) = x509_parser::parse_x509_certificate(der)
            .map_err(|e| NameError::Unreadable(e.to_string()))?;
        let san = cert
            .subject_alternative_name()
            .map_err(|e| NameError::Unreadable(e.to_string()))?
            .ok_or(NameError::Missing)?;
        let mut names: Vec<NodeName> = Vec::new();
        for general in &san.value.general_names {
            let GeneralName::DNSName(dns) = general else {
                continue;
            };
            if dns
                .trim_end_matches('.')
                .eq_ignore_ascii_case(FLEET_SERVER_NAME)
            {
                continue;
            }
            // Any other DNS name must be a node name: a certificate with a name we cannot
            // read is not one a fleet CA issued through `issue_node`, so it is refused
            // rather than guessed at.
            let name = dns.parse::<NodeName>()?;
            if !names.contains(&name) {
                names.push(name);
            }
        }
        match names.len() {
            0 => Err(NameError::Missing),
            1 => Ok(names.remove(0)),
            _ => Err(NameError::Ambiguous(
                names.iter().map(|n| n.as_str().to_owned()).collect(),
            )),
        }
    }

    /// The node name of the peer at the other end of an authenticated connection: the
    /// leaf of the certificate chain it presented in the handshake.
    pub(crate) fn of_peer(connection: &quinn::Connection) -> Result<NodeName, NameError> {
        let chain = connection
            .peer_identity()
            .and_then(|id| id.downcast::<Vec<CertificateDer<'static>>>().ok())
            .ok_or(NameError::NoCertificate)?;
        let leaf = chain.first().ok_or(NameError::NoCertificate)?;
        NodeName::from_certificate(leaf)
    }
}

/// Parses a node name as [`crate::FleetCa::issue_node`] accepts it, in its canonical
/// form (lower case, no trailing dot).
impl FromStr for NodeName {
    type Err = NameError;

    fn from_str(name: &str) -> Result<NodeName, NameError> {
        let invalid = || NameError::Invalid(name.to_owned());
        // A peer's certificate is dialled by FLEET_SERVER_NAME and checked against an
        // address by nobody, so an IP here would only confuse; DNS names only.
        if name.parse::<std::net::IpAddr>().is_ok() {
            return Err(invalid());
        }
        let dns = DnsName::try_from(name).map_err(|_| invalid())?;
        let canonical = dns.to_lowercase_owned();
        let canonical: &str = canonical.as_ref();
        // Every member carries the shared name: it names no one in particular.
        if canonical == FLEET_SERVER_NAME {
            return Err(invalid());
        }
        Ok(NodeName(canonical.into()))
    }
}

impl fmt::Display for NodeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for NodeName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::certs::FleetCa;

    #[test]
    fn names_are_dns_names_in_canonical_form() {
        let name: NodeName = "Node-1.Fleet.".parse().unwrap();
        assert_eq!(name.as_str(), "node-1.fleet");
        assert_eq!(name, "node-1.fleet".parse().unwrap());
        for bad in [
            "",
            "has space",
            "127.0.0.1",
            "::1",
            "a..b",
            "-a",
            "a\0b",
            FLEET_SERVER_NAME,
            "MEMBER.fleetcache.invalid",
        ] {
            assert!(
                matches!(bad.parse::<NodeName>(), Err(NameError::Invalid(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn the_node_name_comes_from_the_certificate() {
        let ca = FleetCa::generate("fleet").unwrap();
        let identity = ca.issue_node("Node-7").unwrap().identity().unwrap();
        let name = NodeName::from_certificate(identity.cert_der()).unwrap();
        assert_eq!(name.as_str(), "node-7");
        assert_eq!(identity.name(), &name);
    }

    #[test]
    fn certificates_without_one_node_name_are_refused() {
        let ca = FleetCa::generate("fleet").unwrap();
        let only_shared = ca.issue_test_cert(&[FLEET_SERVER_NAME]).unwrap();
        assert_eq!(
            NodeName::from_certificate(only_shared.cert.der()),
            Err(NameError::Missing)
        );
        let none = ca.issue_test_cert(&[]).unwrap();
        assert_eq!(
            NodeName::from_certificate(none.cert.der()),
            Err(NameError::Missing)
        );
        let two = ca.issue_test_cert(&["a", FLEET_SERVER_NAME, "b"]).unwrap();
        assert!(matches!(
            NodeName::from_certificate(two.cert.der()),
            Err(NameError::Ambiguous(names)) if names == ["a", "b"]
        ));
        // The same name twice, in two spellings, is still one node.
        let twice = ca.issue_test_cert(&["a", "A"]).unwrap();
        assert_eq!(
            NodeName::from_certificate(twice.cert.der())
                .unwrap()
                .as_str(),
            "a"
        );
        for garbage in [&b""[..], b"\x30\x03\x02\x01\x01", &[0xff; 64]] {
            assert!(matches!(
                NodeName::from_certificate(garbage),
                Err(NameError::Unreadable(_))
            ));
        }
    }
}
