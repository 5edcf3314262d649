//! A `HPX_AGAS` set in the launcher's environment is passed on unchanged.
//!
//! This test crate has a single test, because it changes the process environment.

mod common;

#[test]
fn user_agas_address_is_kept() {
    std::env::set_var("HPX_AGAS", "127.0.0.1:4242");
    let o = common::run(&["-l", "2", "--no-prefix", "sh", "-c", "echo $HPX_AGAS"]);
    assert_eq!(o.result.expect("job runs"), 0);
    assert_eq!(o.out.text(), "127.0.0.1:4242\n127.0.0.1:4242\n");
}
