//! Segmented growth: `maybe_grow` runs a closure on a fresh segment chained
//! to the current stack when the current one is nearly full (stacker's
//! shape), so recursion that calls it at each level is bounded only by
//! memory. Segments are ordinary slab stacks (`Stack`), so they have a
//! guard too, and go back to the pool when the closure returns or unwinds.
//!
//! `remaining()` needs the bounds of the stack the caller runs on. They are
//! cached per thread (`BOUNDS`); a stack pointer outside the cached range
//! (another coroutine, a segment, the thread's own stack) triggers one
//! lookup: the slab's region table for coroutine stacks and segments, or
//! `pthread_getattr_np` for a thread's own stack.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

use super::{Stack, GUARD_SIZE, PAGE};

pub(crate) static SEGMENTS: AtomicU64 = AtomicU64::new(0);
/// Committed-memory estimate per segment in use (the statistic is a guess;
/// RSS is the truth).
pub(crate) const SEGMENT_COMMIT_ESTIMATE: u64 = 64 * 1024;

thread_local! {
    /// (lowest usable address, top) of the stack last seen on this thread.
    static BOUNDS: Cell<(usize, usize)> = const { Cell::new((0, 0)) };
    /// The thread's own stack bounds, once looked up.
    static THREAD: Cell<(usize, usize)> = const { Cell::new((0, 0)) };
}

#[inline(always)]
fn sp() -> usize {
    let x = 0u8;
    std::hint::black_box(&x) as *const u8 as usize
}

fn thread_bounds() -> (usize, usize) {
    let b = THREAD.with(|t| t.get());
    if b.1 != 0 {
        return b;
    }
    let mut lo = 0usize;
    let mut size = 0usize;
    // SAFETY: standard pthread attribute query on the calling thread; the
    // attr object is initialized by pthread_getattr_np and destroyed after.
    unsafe {
        let mut attr: libc::pthread_attr_t = std::mem::zeroed();
        if libc::pthread_getattr_np(libc::pthread_self(), &mut attr) == 0 {
            let mut addr: *mut libc::c_void = std::ptr::null_mut();
            if libc::pthread_attr_getstack(&attr, &mut addr, &mut size) == 0 {
                lo = addr as usize;
            }
            libc::pthread_attr_destroy(&mut attr);
        }
    }
    // Keep one guard page's worth of margin at the bottom.
    let b = if size == 0 { (0, usize::MAX) } else { (lo + PAGE, lo + size) };
    THREAD.with(|t| t.set(b));
    b
}

fn bounds_of(sp: usize) -> (usize, usize) {
    if let Some((slot, slot_len)) = super::overflow::slot_of(sp) {
        return (slot + GUARD_SIZE, slot + slot_len);
    }
    thread_bounds()
}

/// Bytes left on the current stack (segment) below the caller's frame.
///
/// In a coroutine: of its stack or current segment; on a plain thread: of
/// the thread's stack.
///
/// ```
/// let left = goro::run(goro::stack::remaining);
/// // The main coroutine of `run` has an 8 MiB stack by default.
/// assert!(left > 1 << 20 && left <= goro::stack::DEFAULT_MAIN_STACK_SIZE);
/// let small = goro::Builder::new().stack_size(64 * 1024).spawn(goro::stack::remaining).unwrap();
/// assert!(small.join().unwrap() <= 64 * 1024);
/// ```
#[inline]
pub fn remaining() -> usize {
    let sp = sp();
    let (lo, hi) = BOUNDS.with(|b| b.get());
    if sp >= lo && sp < hi {
        return sp - lo;
    }
    let b = bounds_of(sp);
    BOUNDS.with(|c| c.set(b));
    sp.saturating_sub(b.0)
}

/// Runs `f` here if at least `red_zone` bytes of stack remain, else on a new
/// segment of `segment_size` bytes chained to this stack (stacker's shape).
/// Calling it at each level of a deep recursion makes the depth bounded only
/// by memory, as in Go.
///
/// ```
/// fn depth(n: u64) -> u64 {
///     goro::stack::maybe_grow(32 * 1024, 1 << 20, || if n == 0 { 0 } else { 1 + depth(n - 1) })
/// }
/// assert_eq!(goro::run(|| depth(100_000)), 100_000);
/// ```
///
/// # Panics
///
/// If a segment cannot be reserved. A panic in `f` unwinds through the
/// segment into the caller, and the segment is freed.
#[inline]
pub fn maybe_grow<R, F: FnOnce() -> R>(red_zone: usize, segment_size: usize, f: F) -> R {
    if remaining() >= red_zone {
        f()
    } else {
        grow(segment_size, f)
    }
}

#[cold]
fn grow<R, F: FnOnce() -> R>(segment_size: usize, f: F) -> R {
    let seg = match Stack::new_guarded(segment_size.max(red_zone_floor())) {
        Ok(s) => s,
        Err(e) => panic!("goro::stack::maybe_grow: cannot reserve a stack segment: {e}"),
    };
    SEGMENTS.fetch_add(1, Ordering::Relaxed);
    struct Restore((usize, usize));
    impl Drop for Restore {
        fn drop(&mut self) {
            BOUNDS.with(|b| b.set(self.0));
            SEGMENTS.fetch_sub(1, Ordering::Relaxed);
        }
    }
    let _restore = Restore(BOUNDS.with(|b| b.get()));
    BOUNDS.with(|b| b.set((seg.slot + GUARD_SIZE, seg.top())));
    let view = SegmentView { top: seg.top(), limit: seg.slot };
    let r = corosensei::on_stack(view, f);
    drop(seg);
    r
}

fn red_zone_floor() -> usize {
    super::MIN_STACK_SIZE
}

/// A borrowed view of a segment for `corosensei::on_stack`.
struct SegmentView {
    top: usize,
    limit: usize,
}

// SAFETY: the view describes a live slab slot (`grow` keeps the owning
// `Stack` alive until `on_stack` returns): `limit` is the start of its
// installed guard (`new_guarded`) and
// `top` its page-aligned top, with at least MIN_STACK_SIZE usable bytes.
unsafe impl corosensei::stack::Stack for SegmentView {
    fn base(&self) -> corosensei::stack::StackPointer {
        corosensei::stack::StackPointer::new(self.top).expect("segment top is not null")
    }
    fn limit(&self) -> corosensei::stack::StackPointer {
        corosensei::stack::StackPointer::new(self.limit).expect("segment limit is not null")
    }
}
