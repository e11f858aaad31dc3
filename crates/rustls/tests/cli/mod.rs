//! The example servers' command-line checks, shared by tlscache-rustls's
//! and tlscache-openssl's `tests/example_cli.rs`.

use std::path::PathBuf;
use std::process::Command;

/// The example binary `name` that `cargo test` built beside this test.
fn example(name: &str) -> PathBuf {
    let mut dir = std::env::current_exe().unwrap();
    dir.pop(); // the test binary
    dir.pop(); // deps
    dir.join("examples").join(name)
}

/// `--help` prints the usage on stdout and succeeds.
pub fn help_prints_the_usage_and_succeeds(name: &str) {
    let out = Command::new(example(name)).arg("--help").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with(&format!("usage: {name}")), "{text}");
    assert!(text.contains("--connections N"), "{text}");
}

/// A bad argument exits 2 with `NAME: reason` and the usage on stderr,
/// never Rust's debug form.
pub fn a_bad_argument_is_a_readable_error(name: &str) {
    for bad in [&["--bogus"][..], &["--port", "99999"], &["--cache", "nope"]] {
        let out = Command::new(example(name)).args(bad).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{bad:?}");
        let text = String::from_utf8(out.stderr).unwrap();
        assert!(text.starts_with(&format!("{name}: ")), "{bad:?}: {text}");
        assert!(text.contains(&format!("usage: {name}")), "{bad:?}: {text}");
        assert!(!text.contains("Error: \""), "debug form: {text}");
    }
}
