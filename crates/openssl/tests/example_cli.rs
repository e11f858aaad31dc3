//! The example server's command line, as a new user meets it.

use std::path::PathBuf;
use std::process::Command;

/// The example binary `cargo test` built beside this test.
fn example() -> PathBuf {
    let mut dir = std::env::current_exe().unwrap();
    dir.pop(); // the test binary
    dir.pop(); // deps
    dir.join("examples").join("openssl-server")
}

#[test]
fn help_prints_the_usage_and_succeeds() {
    let out = Command::new(example()).arg("--help").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("usage: openssl-server"), "{text}");
    assert!(text.contains("--connections N"), "{text}");
}

#[test]
fn a_bad_argument_is_a_readable_error() {
    for bad in [&["--bogus"][..], &["--port", "99999"], &["--cache", "nope"]] {
        let out = Command::new(example()).args(bad).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{bad:?}");
        let text = String::from_utf8(out.stderr).unwrap();
        assert!(text.starts_with("openssl-server: "), "{bad:?}: {text}");
        assert!(text.contains("usage: openssl-server"), "{bad:?}: {text}");
        assert!(!text.contains("Error: \""), "debug form: {text}");
    }
}
