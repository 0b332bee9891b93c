//! The binary's own commands, run as a user would. (Referencing CARGO_BIN_EXE also makes
//! `cargo test --workspace` build the binary that the end-to-end process tests start.)

use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_prospect-events"))
}

#[test]
fn keys_create_list_revoke_and_migrate() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/sub/dir/x.db", dir.path().display());
    let out = bin()
        .args([
            "keys",
            "create",
            "--tenant",
            "con_cli",
            "--partner",
            "p1",
            "--database-url",
            &url,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key = String::from_utf8(out.stdout).unwrap();
    let key = key.trim();
    assert_eq!(key.lines().count(), 1, "the key is the only line on stdout");
    assert!(key.starts_with("pe_") && key.len() == 51);

    let out = bin()
        .args(["keys", "list", "--database-url", &url])
        .output()
        .unwrap();
    let listing = String::from_utf8(out.stdout).unwrap();
    assert!(
        listing.contains(&key[..11]) && listing.contains("con_cli") && listing.contains("active")
    );
    assert!(!listing.contains(key), "the full key is never shown again");

    let out = bin()
        .args(["keys", "revoke", &key[..11], "--database-url", &url])
        .output()
        .unwrap();
    assert!(out.status.success());
    let out = bin()
        .args(["keys", "list", "--database-url", &url])
        .output()
        .unwrap();
    assert!(String::from_utf8(out.stdout).unwrap().contains("revoked"));
    // Nothing left to revoke → exit 1.
    let out = bin()
        .args(["keys", "revoke", &key[..11], "--database-url", &url])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));

    let out = bin()
        .args(["migrate", "--database-url", &url])
        .output()
        .unwrap();
    assert!(out.status.success());
}

#[test]
fn bad_configuration_fails_fast_with_exit_1() {
    let out = bin()
        .args([
            "serve",
            "--listen",
            "not-an-address",
            "--database-url",
            "sqlite:///tmp/x.db",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--listen"));
    let out = bin()
        .args(["serve", "--database-url", "mysql://x"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    // Usage errors are 1 too (2 means "some lines rejected" for ingest).
    let out = bin().args(["ingest"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let out = bin().args(["--version"]).output().unwrap();
    assert!(out.status.success());
}
