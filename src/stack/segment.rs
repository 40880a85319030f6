//! Segmented growth: `maybe_grow` runs a closure on a fresh segment chained
//! to the current stack when the current one is nearly full (stacker's
//! shape), so recursion that calls it at each level is bounded only by
//! memory. Segments are ordinary slab stacks (`Stack`), so they have a
//! guard too, and go back to the pool when the closure returns or unwinds.
//!
//! Owns: the per-thread bounds cache (`BOUNDS`), the thread's own stack
//! bounds (`THREAD`), and one hot segment per thread (`HOT`).
//!
//! Hot path: `maybe_grow` reads the stack pointer (one instruction) and
//! compares it with the cached bounds of the stack it runs on: no call, no
//! lookup. The bounds are cached per thread; a stack pointer outside them
//! (another coroutine, a segment, the thread's own stack) takes one cold
//! lookup: the slab's region table for coroutine stacks and segments, or
//! `pthread_getattr_np` for a thread's own stack. The cache is always
//! right when it hits: a slab address belongs to the same slot for the life
//! of the process (reservations are never unmapped, a region's slot length
//! never changes), and a thread's own stack does not move while it runs.
//!
//! Segment switch: a segment that returns is kept, committed pages and all,
//! as its thread's *hot* segment (one per thread, segments of at most
//! `HOT_MAX` bytes), so recursion that keeps crossing the same segment
//! boundary takes no system call and no page fault: the next growth on that
//! thread reuses it. Every slab slot, hot or recycled, already has its guard
//! (invariant 2 of `stack`), so only a freshly carved slot pays the guard's
//! `madvise`. A hot segment pins at most `HOT_MAX` bytes per thread; any
//! other segment goes back to the slab on return (its deep pages given back,
//! `stack` invariant 4).

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

use super::{Stack, GUARD_SIZE, PAGE};

pub(crate) static SEGMENTS: AtomicU64 = AtomicU64::new(0);
/// Committed-memory estimate per segment in use (the statistic is a guess;
/// RSS is the truth).
pub(crate) const SEGMENT_COMMIT_ESTIMATE: u64 = 64 * 1024;
/// Largest segment a thread keeps hot (committed) after it returns.
const HOT_MAX: usize = 1 << 20;

thread_local! {
    /// (lowest usable address, top) of the stack last seen on this thread.
    static BOUNDS: Cell<(usize, usize)> = const { Cell::new((0, 0)) };
    /// The thread's own stack bounds, once looked up.
    static THREAD: Cell<(usize, usize)> = const { Cell::new((0, 0)) };
    /// The last segment that returned on this thread, if it is small enough
    /// to keep (module docs, "Segment switch").
    static HOT: Cell<Option<Stack>> = const { Cell::new(None) };
}

/// The stack pointer (or, where there is no inline asm for it, the address
/// of a local: within a frame of it).
#[inline(always)]
fn sp() -> usize {
    #[cfg(target_arch = "x86_64")]
    {
        let sp: usize;
        // SAFETY: copies the stack pointer register into a general register;
        // reads no memory, touches no stack, keeps the flags.
        unsafe { std::arch::asm!("mov {}, rsp", out(reg) sp, options(nomem, nostack, preserves_flags)) };
        sp
    }
    #[cfg(target_arch = "aarch64")]
    {
        let sp: usize;
        // SAFETY: as above (aarch64's `mov xN, sp`).
        unsafe { std::arch::asm!("mov {}, sp", out(reg) sp, options(nomem, nostack, preserves_flags)) };
        sp
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        let x = 0u8;
        std::hint::black_box(&x) as *const u8 as usize
    }
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

/// Looks up and caches the bounds of the stack `sp` is on; returns the
/// bytes left below `sp`.
#[cold]
#[inline(never)]
fn refresh(sp: usize) -> usize {
    let b = bounds_of(sp);
    BOUNDS.with(|c| c.set(b));
    sp.saturating_sub(b.0)
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
    refresh(sp)
}

/// Runs `f` here if at least `red_zone` bytes of stack remain, else on a new
/// segment of `segment_size` bytes chained to this stack (stacker's shape).
/// Calling it at each level of a deep recursion makes the depth bounded only
/// by memory, as in Go. When no segment is needed it costs a read of the
/// stack pointer and two compares with bounds cached per thread.
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
#[inline(always)]
pub fn maybe_grow<R, F: FnOnce() -> R>(red_zone: usize, segment_size: usize, f: F) -> R {
    let sp = sp();
    let (lo, hi) = BOUNDS.with(|b| b.get());
    if sp < hi && sp >= lo.saturating_add(red_zone) {
        return f();
    }
    if refresh(sp) >= red_zone {
        f()
    } else {
        grow(segment_size, f)
    }
}

/// A segment for `size` usable bytes: this thread's hot one if its class
/// fits, else one from the slab (guard installed).
fn take_segment(size: usize) -> Stack {
    if let Some(s) = HOT.try_with(|h| h.take()).ok().flatten() {
        if super::class_of(size).is_ok_and(|c| c == s.class) {
            return s;
        }
        drop(s);
    }
    match Stack::new_guarded(size) {
        Ok(s) => s,
        Err(e) => panic!("goro::stack::maybe_grow: cannot reserve a stack segment: {e}"),
    }
}

/// A returned segment: kept hot if small enough and the hot place is free,
/// else back to the slab.
fn put_segment(s: Stack) {
    if s.size() > HOT_MAX {
        return drop(s);
    }
    // `try_with`: during thread exit the hot place may be gone; then the
    // segment goes back to the slab.
    let _ = HOT.try_with(|h| {
        let old = h.replace(Some(s));
        drop(old);
    });
}

#[cold]
#[inline(never)]
fn grow<R, F: FnOnce() -> R>(segment_size: usize, f: F) -> R {
    struct Restore {
        bounds: (usize, usize),
        seg: Option<Stack>,
    }
    impl Drop for Restore {
        fn drop(&mut self) {
            BOUNDS.with(|b| b.set(self.bounds));
            SEGMENTS.fetch_sub(1, Ordering::Relaxed);
            if let Some(s) = self.seg.take() {
                put_segment(s);
            }
        }
    }
    let seg = take_segment(segment_size.max(red_zone_floor()));
    SEGMENTS.fetch_add(1, Ordering::Relaxed);
    let view = SegmentView { top: seg.top(), limit: seg.slot };
    let restore = Restore { bounds: BOUNDS.with(|b| b.get()), seg: Some(seg) };
    BOUNDS.with(|b| b.set((view.limit + GUARD_SIZE, view.top)));
    let r = corosensei::on_stack(view, f);
    drop(restore);
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
// `Stack` alive, in its `Restore`, until `on_stack` returns or unwinds):
// `limit` is the start of its installed guard (every slot `take_segment`
// returns is guarded: `new_guarded`, or a hot segment that was) and `top`
// its page-aligned top, with at least MIN_STACK_SIZE usable bytes.
unsafe impl corosensei::stack::Stack for SegmentView {
    fn base(&self) -> corosensei::stack::StackPointer {
        corosensei::stack::StackPointer::new(self.top).expect("segment top is not null")
    }
    fn limit(&self) -> corosensei::stack::StackPointer {
        corosensei::stack::StackPointer::new(self.limit).expect("segment limit is not null")
    }
}
