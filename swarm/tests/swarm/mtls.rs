//! Mutual TLS over real QUIC endpoints on loopback: only certificates from the fleet CA
//! get through, in either direction.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use fleetcache_swarm::{ALPN, FleetCa, NodeIdentity};
use quinn::crypto::rustls::QuicClientConfig;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use crate::support::identity;

/// Generous bound for a loopback handshake; a hang fails the test instead of blocking it.
const DEADLINE: Duration = Duration::from_secs(10);

/// A server endpoint that accepts one connection, echoes one bi-stream, and returns
/// how the accept went.
fn spawn_server(
    identity: &NodeIdentity,
) -> Result<(SocketAddr, tokio::task::JoinHandle<Result<()>>)> {
    let endpoint = quinn::Endpoint::server(
        identity.quic_server_config()?,
        (Ipv4Addr::LOCALHOST, 0).into(),
    )?;
    let addr = endpoint.local_addr()?;
    let task = tokio::spawn(async move {
        let incoming = endpoint.accept().await.context("endpoint closed")?;
        let conn = incoming.await?;
        let alpn = conn.handshake_data().and_then(|d| {
            d.downcast::<quinn::crypto::rustls::HandshakeData>()
                .ok()
                .and_then(|d| d.protocol)
        });
        assert_eq!(alpn.as_deref(), Some(ALPN));
        let (mut send, mut recv) = conn.accept_bi().await?;
        let msg = recv.read_to_end(1024).await?;
        send.write_all(&msg).await?;
        send.finish()?;
        // Keep the connection until the client has read the echo and closed.
        conn.closed().await;
        Ok(())
    });
    Ok((addr, task))
}

/// Connects with `config` and echoes a message over one bi-stream.
async fn echo(config: quinn::ClientConfig, addr: SocketAddr) -> Result<Vec<u8>> {
    let mut endpoint = quinn::Endpoint::client((Ipv4Addr::LOCALHOST, 0).into())?;
    endpoint.set_default_client_config(config);
    let conn = endpoint.connect(addr, "node-server")?.await?;
    let (mut send, mut recv) = conn.open_bi().await?;
    send.write_all(b"hello fleet").await?;
    send.finish()?;
    let reply = recv.read_to_end(1024).await?;
    conn.close(0u32.into(), b"done");
    endpoint.wait_idle().await;
    Ok(reply)
}

/// Runs a client against a server and returns (client result, server result).
async fn exchange(
    server: &NodeIdentity,
    client: quinn::ClientConfig,
) -> Result<(Result<Vec<u8>>, Result<()>)> {
    let (addr, server_task) = spawn_server(server)?;
    let client_result = tokio::time::timeout(DEADLINE, echo(client, addr))
        .await
        .context("client timed out")?;
    let server_result = tokio::time::timeout(DEADLINE, server_task)
        .await
        .context("server timed out")??;
    Ok((client_result, server_result))
}

#[tokio::test]
async fn same_ca_handshakes_and_echoes() -> Result<()> {
    let ca = FleetCa::generate("fleet")?;
    let server = identity(&ca, "node-server");
    let client = identity(&ca, "node-client");
    let (client_result, server_result) = exchange(&server, client.quic_client_config()?).await?;
    assert_eq!(client_result?, b"hello fleet");
    server_result?;
    Ok(())
}

#[tokio::test]
async fn client_from_another_ca_is_refused() -> Result<()> {
    let ca = FleetCa::generate("fleet")?;
    let rogue_ca = FleetCa::generate("rogue")?;
    let server = identity(&ca, "node-server");
    let rogue = identity(&rogue_ca, "node-client");
    // The rogue client must trust the real fleet CA to get as far as sending its
    // certificate; that isolates the server's check of the client certificate.
    let config = client_config_trusting(&ca, Some(&rogue))?;
    let (client_result, server_result) = exchange(&server, config).await?;
    expect_refused(client_result, server_result)
}

#[tokio::test]
async fn client_without_cert_is_refused() -> Result<()> {
    let ca = FleetCa::generate("fleet")?;
    let server = identity(&ca, "node-server");
    let config = client_config_trusting(&ca, None)?;
    let (client_result, server_result) = exchange(&server, config).await?;
    expect_refused(client_result, server_result)
}

#[tokio::test]
async fn server_from_another_ca_is_refused_by_the_client() -> Result<()> {
    let ca = FleetCa::generate("fleet")?;
    let rogue_ca = FleetCa::generate("rogue")?;
    let rogue_server = identity(&rogue_ca, "node-server");
    let client = identity(&ca, "node-client");
    let (client_result, server_result) =
        exchange(&rogue_server, client.quic_client_config()?).await?;
    let err = client_result
        .err()
        .context("client accepted a server from another CA")?;
    assert!(
        format!("{err:#}").to_lowercase().contains("certificate"),
        "{err:#}"
    );
    if server_result.is_ok() {
        bail!("server saw a completed exchange");
    }
    Ok(())
}

/// A client config that trusts `ca` and presents `cert`'s certificate, or none.
fn client_config_trusting(
    ca: &FleetCa,
    cert: Option<&NodeIdentity>,
) -> Result<quinn::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_slice(ca.cert_pem().as_bytes())?)?;
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13])?
    .with_root_certificates(roots);
    let mut crypto = match cert {
        None => builder.with_no_client_auth(),
        Some(identity) => {
            // Reuse the identity's own client auth by taking its config's resolver.
            let own = identity.client_config()?;
            builder.with_client_cert_resolver(own.client_auth_cert_resolver.clone())
        }
    };
    crypto.alpn_protocols = vec![ALPN.to_vec()];
    Ok(quinn::ClientConfig::new(Arc::new(
        QuicClientConfig::try_from(crypto)?,
    )))
}

/// The server must refuse the handshake; the client then cannot complete an exchange
/// (in TLS 1.3 the client may believe the handshake done before the server's verdict).
fn expect_refused(client_result: Result<Vec<u8>>, server_result: Result<()>) -> Result<()> {
    let err = server_result.err().context("server accepted the client")?;
    let err = format!("{err:#}");
    assert!(err.to_lowercase().contains("certificate"), "{err}");
    if let Ok(reply) = client_result {
        bail!("client completed an exchange: {reply:?}");
    }
    Ok(())
}

/// An identity issued by `issuer` whose `ca.pem` trusts every CA in `trusted`.
fn identity_trusting(issuer: &FleetCa, name: &str, trusted: &[&FleetCa]) -> Result<NodeIdentity> {
    let dir = tempfile::TempDir::new()?;
    let node = dir.path().join("node");
    issuer.issue_node(name)?.save(&node)?;
    let bundle: String = trusted.iter().map(|ca| ca.cert_pem().to_owned()).collect();
    std::fs::write(node.join("ca.pem"), bundle)?;
    Ok(NodeIdentity::load(&node)?)
}

/// Moving a fleet to a new CA without splitting it: every node first trusts both
/// CAs, then gets a certificate from the new one, then drops the old. Nodes with
/// old and new certificates talk to each other throughout; a node that trusts
/// only the new CA refuses one still presenting an old certificate.
#[tokio::test]
async fn a_ca_bundle_lets_old_and_new_certificates_meet() -> Result<()> {
    let old = FleetCa::generate("fleet 2025")?;
    let new = FleetCa::generate("fleet 2026")?;
    let both = [&old, &new];
    // The echo client dials the name `node-server`: each server carries it.
    let old_server = identity_trusting(&old, "node-server", &both)?;
    let new_server = identity_trusting(&new, "node-server", &both)?;
    let old_client = identity_trusting(&old, "node-client", &both)?;
    let new_client = identity_trusting(&new, "node-client", &both)?;
    for (server, client) in [(&old_server, &new_client), (&new_server, &old_client)] {
        let (client, server) = exchange(server, client.quic_client_config()?).await?;
        assert_eq!(client?, b"hello fleet");
        server?;
    }

    let done = identity_trusting(&new, "node-client", &[&new])?;
    let (client, server) = exchange(&old_server, done.quic_client_config()?).await?;
    expect_refused(client, server)
}
