//! `GORO_WORKERS` handling (its own test binary: it sets the environment).

#[test]
fn bad_goro_workers_is_a_clear_error() {
    std::env::set_var("GORO_WORKERS", "zero");
    let e = goro::Runtime::builder().build().unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
    assert!(e.to_string().contains("GORO_WORKERS"), "{e}");
    let p = std::panic::catch_unwind(|| goro::run(|| 1)).unwrap_err();
    let msg = p.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(msg.contains("GORO_WORKERS=\"zero\""), "{msg}");
    std::env::set_var("GORO_WORKERS", "0");
    assert!(goro::Runtime::builder().build().is_err());
    std::env::set_var("GORO_WORKERS", "3");
    let rt = goro::Runtime::builder().build().unwrap();
    assert_eq!(rt.run(|| 1).unwrap(), 1);
    std::env::remove_var("GORO_WORKERS");
}
