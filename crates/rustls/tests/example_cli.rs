//! The example server's command line, as a new user meets it.

mod cli;

#[test]
fn help_prints_the_usage_and_succeeds() {
    cli::help_prints_the_usage_and_succeeds("rustls-server");
}

#[test]
fn a_bad_argument_is_a_readable_error() {
    cli::a_bad_argument_is_a_readable_error("rustls-server");
}
