//! Build probe: which platform goro is built for, and which kernel features
//! the stack allocator may try. Emits:
//!  * `goro_linux` on Linux;
//!  * `goro_madv_guard` where `madvise(MADV_GUARD_INSTALL)` may exist (Linux;
//!    the runtime still falls back to `mprotect` if the running kernel
//!    refuses it);
//!  * `goro_frames_probed` where rustc probes large stack frames (inline
//!    stack probes: x86_64, x86, aarch64), so an overflowing frame of any
//!    size meets a stack's guard before it can write below it. Elsewhere
//!    (riscv64, arm, loongarch64: checked against rustc 1.95's target specs,
//!    `--print target-spec-json`, field `stack-probes`) only frames up to
//!    the guard's 64 KiB are caught; `goro::stack::FRAMES_PROBED` and the
//!    `goro::stack` docs say so.
//!
//! Fails with a clear message on targets corosensei or goro do not support.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(goro_linux)");
    println!("cargo::rustc-check-cfg=cfg(goro_madv_guard)");
    println!("cargo::rustc-check-cfg=cfg(goro_frames_probed)");
    println!("cargo::rustc-check-cfg=cfg(goro_loom)");
    println!("cargo::rerun-if-changed=build.rs");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    let family = std::env::var("CARGO_CFG_TARGET_FAMILY").unwrap_or_default();
    let arch_ok = matches!(arch.as_str(), "x86_64" | "aarch64" | "riscv64" | "arm" | "x86" | "loongarch64");
    if family != "unix" || !arch_ok {
        panic!(
            "goro supports Unix targets on x86_64, aarch64, riscv64, arm, x86 and loongarch64 \
             (what corosensei can switch stacks on, with mmap-based stacks); this target is {arch}-{os} ({family})"
        );
    }
    if os == "linux" || os == "android" {
        println!("cargo::rustc-cfg=goro_linux");
        println!("cargo::rustc-cfg=goro_madv_guard");
    }
    if matches!(arch.as_str(), "x86_64" | "x86" | "aarch64") {
        println!("cargo::rustc-cfg=goro_frames_probed");
    }
}
