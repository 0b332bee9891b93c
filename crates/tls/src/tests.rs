use super::test_pki::{TestCa, TestCert};
use super::*;
use rustls::{ClientConnection, ServerConnection};

/// Runs a whole handshake in memory; the first error either side raises.
fn handshake(client: ClientConfig, server: ServerConfig, name: &str) -> Result<(), rustls::Error> {
    let name = ServerName::try_from(name.to_string()).expect("server name");
    let mut c = ClientConnection::new(Arc::new(client), name)?;
    let mut s = ServerConnection::new(Arc::new(server))?;
    for _ in 0..20 {
        pump(&mut *c, &mut *s)?;
        pump(&mut *s, &mut *c)?;
        if !c.is_handshaking() && !s.is_handshaking() {
            return Ok(());
        }
    }
    panic!("handshake did not finish");
}

fn pump<A, B>(
    from: &mut rustls::ConnectionCommon<A>,
    to: &mut rustls::ConnectionCommon<B>,
) -> Result<(), rustls::Error> {
    let mut buf = Vec::new();
    while from.wants_write() {
        from.write_tls(&mut buf).expect("write to memory");
    }
    if !buf.is_empty() {
        to.read_tls(&mut buf.as_slice()).expect("read from memory");
        to.process_new_packets()?;
    }
    Ok(())
}

fn server(cert: &TestCert) -> (tempfile::TempDir, ServerConfig) {
    let dir = tempfile::tempdir().unwrap();
    let (c, k) = cert.write(dir.path(), "server");
    let config = server_config(&c, &k).expect("server config");
    (dir, config)
}

fn trusting(ca: &TestCa, verification: Verification) -> ClientConfig {
    let dir = tempfile::tempdir().unwrap();
    let anchors = Anchors::Public {
        extra_ca_files: vec![ca.write(dir.path(), "ca")],
    };
    client_config(&anchors, verification, None, &[b"http/1.1"]).expect("client config")
}

fn failure(r: Result<(), rustls::Error>, host: &str) -> String {
    let e = r.expect_err("the handshake must fail");
    HandshakeFailure { error: &e, host }.to_string()
}

#[test]
fn a_server_of_the_extra_ca_is_trusted() {
    let ca = TestCa::new("test CA");
    let (_d, srv) = server(&ca.issue(&["localhost", "127.0.0.1"]));
    handshake(trusting(&ca, Verification::Full), srv.clone(), "localhost").unwrap();
    handshake(trusting(&ca, Verification::Full), srv, "127.0.0.1").unwrap();
}

#[test]
fn handshake_failures_are_said_plainly() {
    let ca = TestCa::new("test CA");
    let other_ca = TestCa::new("someone else's CA");

    let (_d, srv) = server(&other_ca.issue(&["localhost"]));
    let r = handshake(trusting(&ca, Verification::Full), srv, "localhost");
    assert_eq!(
        failure(r, "localhost"),
        "TLS: certificate not trusted (unknown issuer)"
    );

    let (_d, srv) = server(&ca.issue(&["other.example"]));
    let r = handshake(trusting(&ca, Verification::Full), srv, "hooks.example.com");
    assert_eq!(
        failure(r, "hooks.example.com"),
        "TLS: certificate is for other.example, not hooks.example.com"
    );

    let (_d, srv) = server(&ca.issue_expired(&["localhost"]));
    let r = handshake(trusting(&ca, Verification::Full), srv, "localhost");
    assert_eq!(failure(r, "localhost"), "TLS: certificate expired");
}

#[test]
fn public_roots_alone_do_not_trust_a_private_ca() {
    let ca = TestCa::new("test CA");
    let (_d, srv) = server(&ca.issue(&["localhost"]));
    let public = Anchors::Public {
        extra_ca_files: vec![],
    };
    let client = client_config(&public, Verification::Full, None, &[]).unwrap();
    assert_eq!(
        failure(handshake(client, srv, "localhost"), "localhost"),
        "TLS: certificate not trusted (unknown issuer)"
    );
}

#[test]
fn chain_only_skips_the_name_but_not_the_chain() {
    let ca = TestCa::new("test CA");
    let (_d, srv) = server(&ca.issue(&["db.internal"]));
    handshake(trusting(&ca, Verification::ChainOnly), srv, "10.1.2.3").unwrap();

    let (_d, srv) = server(&TestCa::new("other").issue(&["db.internal"]));
    let r = handshake(trusting(&ca, Verification::ChainOnly), srv, "db.internal");
    assert_eq!(
        failure(r, "db.internal"),
        "TLS: certificate not trusted (unknown issuer)"
    );

    let (_d, srv) = server(&ca.issue_expired(&["db.internal"]));
    let r = handshake(trusting(&ca, Verification::ChainOnly), srv, "db.internal");
    assert_eq!(failure(r, "db.internal"), "TLS: certificate expired");
}

#[test]
fn encrypt_only_accepts_any_certificate() {
    let (_d, srv) = server(&TestCa::new("unknown").issue(&["x.example"]));
    let client = client_config(
        &Anchors::Public {
            extra_ca_files: vec![],
        },
        Verification::EncryptOnly,
        None,
        &[],
    )
    .unwrap();
    handshake(client, srv, "localhost").unwrap();
}

#[test]
fn only_anchors_trust_just_that_file() {
    let ca = TestCa::new("test CA");
    let dir = tempfile::tempdir().unwrap();
    let anchors = Anchors::Only(ca.write(dir.path(), "root"));
    assert_eq!(anchors.root_store().unwrap().len(), 1);
    let client = client_config(&anchors, Verification::Full, None, &[]).unwrap();
    let (_d, srv) = server(&ca.issue(&["localhost"]));
    handshake(client, srv, "localhost").unwrap();
}

#[test]
fn bad_files_are_named_errors() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "not a certificate\n").unwrap();
    let missing = dir.path().join("missing.pem");

    let e = Anchors::Only(empty.clone()).root_store().unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("{} holds no PEM certificate", empty.display())
    );
    let e = Anchors::Public {
        extra_ca_files: vec![missing.clone()],
    }
    .root_store()
    .unwrap_err();
    assert!(
        e.to_string()
            .starts_with(&format!("reading {}", missing.display())),
        "{e}"
    );

    let ca = TestCa::new("test CA");
    let (cert, _) = ca.issue(&["localhost"]).write(dir.path(), "a");
    let (_, other_key) = ca.issue(&["localhost"]).write(dir.path(), "b");
    let e = server_config(&cert, &other_key).unwrap_err();
    assert!(e.to_string().starts_with("certificate and key:"), "{e}");
    let e = server_config(&cert, &empty).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "{} holds no PEM private key (PKCS#8, PKCS#1 or SEC1)",
            empty.display()
        )
    );
}

#[test]
fn the_tls_error_is_found_inside_io_errors() {
    #[derive(Debug)]
    struct Outer(std::io::Error);
    impl fmt::Display for Outer {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("connect failed")
        }
    }
    impl StdError for Outer {
        fn source(&self) -> Option<&(dyn StdError + 'static)> {
            Some(&self.0)
        }
    }
    let io = std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer),
    );
    let io = std::io::Error::other(io);
    let outer = Outer(io);
    assert_eq!(
        find_tls_error(&outer),
        Some(&rustls::Error::InvalidCertificate(
            CertificateError::UnknownIssuer
        ))
    );
    let plain = Outer(std::io::Error::other("refused"));
    assert_eq!(find_tls_error(&plain), None);
}
