//! Runs every sequential self-test of the kernel model.

#[test]
fn selftests() {
    let mut failed = Vec::new();
    for (name, f) in mmcheck_kernel::selftest::SELFTESTS {
        if let Err(e) = f() {
            failed.push(format!("{name}: {e}"));
        }
    }
    assert!(failed.is_empty(), "{failed:#?}");
}
