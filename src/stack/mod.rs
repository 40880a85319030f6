//! Coroutine stacks: carved from large reservations, reused LIFO.
//!
//! Owns: [`Stack`] (one coroutine's stack, implementing corosensei's `Stack`),
//! the slab of reservations behind it, and the stack counters.
//!
//! Layout: stacks come in power-of-two *classes* (16 KiB .. 1 GiB of usable
//! space). A class carves its slots from `MAP_NORESERVE` reservations of at
//! least 64 MiB, so a million stacks need a few thousand mappings, not a
//! million (`vm.max_map_count` is 65 530 on a stock Linux). Each slot is
//! `[guard page][usable stack]`; the stack grows down from the top.
//!
//! Invariants:
//!  1. Every slot's guard page is installed once, before any code runs on
//!     the slot, with `madvise(MADV_GUARD_INSTALL)` (Linux 6.13+: no extra
//!     mapping) or, if the kernel refuses, `mprotect(PROT_NONE)` (which
//!     splits the mapping in two per slot, so the fallback caps out near
//!     32 000 live stacks). A freshly carved slot comes with a
//!     [`PendingGuard`]: the system call is made by the worker that first
//!     runs the coroutine (off the spawner's path, in parallel across
//!     workers), or when the unstarted coroutine is dropped. So every slot
//!     in a free list has its guard.
//!  2. Memory is committed by the kernel as the stack is touched; an idle
//!     coroutine costs the one or two pages it used.
//!  3. Freed slots go to a per-thread LIFO cache (hot pages are reused first),
//!     overflowing into a global list. A slot whose stack went deeper than
//!     `KEEP` bytes gets everything below the top `KEEP` bytes given back
//!     (`MADV_DONTNEED`) when it is freed, so one deep call does not pin
//!     memory forever. "Went deeper" is read off a probe page at that depth:
//!     a stack that never reached it left it all zero.
//!  4. Reservations are never unmapped (slots are recycled), so a guard-page
//!     address stays a guard page for the life of the process; the overflow
//!     handler relies on that.

pub(crate) mod overflow;
mod segment;

use std::cell::RefCell;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

pub use segment::{maybe_grow, remaining};

/// Smallest usable stack (requests are rounded up to it).
pub const MIN_STACK_SIZE: usize = 16 * 1024;
/// Default reservation for a spawned coroutine.
pub const DEFAULT_STACK_SIZE: usize = 256 * 1024;
/// Default reservation for the main coroutine of `run`.
pub const DEFAULT_MAIN_STACK_SIZE: usize = 8 * 1024 * 1024;

const PAGE: usize = 4096;
const MIN_CLASS: u32 = 14; // 16 KiB
const MAX_CLASS: u32 = 30; // 1 GiB
const NCLASSES: usize = (MAX_CLASS - MIN_CLASS + 1) as usize;
const RESERVATION: usize = 64 << 20;
/// Pages at the top of a stack that stay committed across reuse.
const KEEP: usize = 32 * 1024;
/// Slots a thread keeps per class before returning them to the global list.
const CACHE: usize = 256;

static IN_USE: AtomicU64 = AtomicU64::new(0);
static RESERVED: AtomicU64 = AtomicU64::new(0);
static DEEP_RECLAIMS: AtomicU64 = AtomicU64::new(0);

/// One class's carving state and free list.
struct Class {
    /// Next uncarved slot and the end of the current reservation.
    next: usize,
    end: usize,
    free: Vec<usize>,
}

static CLASSES: [Mutex<Class>; NCLASSES] =
    [const { Mutex::new(Class { next: 0, end: 0, free: Vec::new() }) }; NCLASSES];

thread_local! {
    static LOCAL: RefCell<LocalCache> = const { RefCell::new(LocalCache { free: [const { Vec::new() }; NCLASSES] }) };
}

struct LocalCache {
    free: [Vec<usize>; NCLASSES],
}

impl Drop for LocalCache {
    fn drop(&mut self) {
        for (c, v) in self.free.iter_mut().enumerate() {
            if !v.is_empty() {
                CLASSES[c].lock().free.append(v);
            }
        }
    }
}

fn class_of(size: usize) -> io::Result<u32> {
    let size = size.max(MIN_STACK_SIZE);
    let bits = usize::BITS - (size - 1).leading_zeros();
    if bits > MAX_CLASS {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("goro: stack size {size} is above the maximum of {} bytes", 1usize << MAX_CLASS),
        ));
    }
    Ok(bits.max(MIN_CLASS))
}

/// A coroutine stack: a slot of the slab. Dropping it recycles the slot.
pub(crate) struct Stack {
    /// Start of the slot (its guard page).
    slot: usize,
    class: u32,
}

/// A freshly carved slot's guard page, not installed yet (invariant 1).
/// Whoever holds it must `install` it before code runs deeper than the top
/// page of the stack, and before the stack is freed.
#[must_use = "a stack's guard page must be installed"]
#[derive(Debug)]
pub(crate) struct PendingGuard(usize);

impl PendingGuard {
    pub(crate) fn install(self) -> io::Result<()> {
        install_guard(self.0)
    }
}

impl Stack {
    /// A stack with at least `size` usable bytes (rounded up to a power of
    /// two, at least [`MIN_STACK_SIZE`]), and its guard page if that is
    /// still to be installed (a fresh slot; a recycled one has it).
    pub(crate) fn new(size: usize) -> io::Result<(Stack, Option<PendingGuard>)> {
        let class = class_of(size)?;
        let ci = (class - MIN_CLASS) as usize;
        let cached = LOCAL.try_with(|l| l.borrow_mut().free[ci].pop()).ok().flatten();
        let (slot, guard) = match cached {
            Some(s) => (s, None),
            None => carve(class)?,
        };
        IN_USE.fetch_add(1, Ordering::Relaxed);
        Ok((Stack { slot, class }, guard))
    }

    /// A stack whose guard is installed before it is returned.
    pub(crate) fn new_guarded(size: usize) -> io::Result<Stack> {
        let (stack, guard) = Stack::new(size)?;
        if let Some(g) = guard {
            g.install()?;
        }
        Ok(stack)
    }

    /// Usable bytes.
    pub(crate) fn size(&self) -> usize {
        1 << self.class
    }

    fn top(&self) -> usize {
        self.slot + PAGE + self.size()
    }
}

fn carve(class: u32) -> io::Result<(usize, Option<PendingGuard>)> {
    let ci = (class - MIN_CLASS) as usize;
    let slot_len = PAGE + (1usize << class);
    let mut c = CLASSES[ci].lock();
    if let Some(s) = c.free.pop() {
        return Ok((s, None));
    }
    if c.next + slot_len > c.end {
        let len = RESERVATION.max(slot_len * 4);
        // SAFETY: a fresh anonymous private mapping; no existing memory is
        // touched. Failure is checked below.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            let e = io::Error::last_os_error();
            return Err(io::Error::new(
                e.kind(),
                format!("goro: cannot reserve {len} bytes for coroutine stacks: {e}"),
            ));
        }
        overflow::register_region(p as usize, len, slot_len);
        RESERVED.fetch_add(len as u64, Ordering::Relaxed);
        c.next = p as usize;
        c.end = p as usize + len;
    }
    let slot = c.next;
    c.next += slot_len;
    drop(c);
    Ok((slot, Some(PendingGuard(slot))))
}

/// Invariant 1.
fn install_guard(page: usize) -> io::Result<()> {
    #[cfg(goro_madv_guard)]
    {
        const MADV_GUARD_INSTALL: libc::c_int = 102;
        // SAFETY: `page` is the first page of a slot we just carved from our
        // own reservation; nothing lives there.
        if unsafe { libc::madvise(page as *mut libc::c_void, PAGE, MADV_GUARD_INSTALL) } == 0 {
            return Ok(());
        }
    }
    // SAFETY: as above; PROT_NONE on our own unused page.
    if unsafe { libc::mprotect(page as *mut libc::c_void, PAGE, libc::PROT_NONE) } != 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(e.kind(), format!("goro: cannot install a stack guard page: {e}")));
    }
    Ok(())
}

impl Drop for Stack {
    fn drop(&mut self) {
        IN_USE.fetch_sub(1, Ordering::Relaxed);
        let size = self.size();
        if size > KEEP {
            // Invariant 3: probe the page just below the kept top.
            let probe = self.top() - KEEP - PAGE;
            // SAFETY: `probe` is inside this slot's usable range (size > KEEP),
            // which is mapped read-write; the coroutine that used it is gone.
            // Volatile so the reads are not elided.
            let deep = (0..4).any(|k| unsafe { std::ptr::read_volatile((probe + k * 1024) as *const u64) } != 0);
            if deep {
                let lo = self.slot + PAGE;
                // SAFETY: our own usable range below the kept top; its
                // contents are dead.
                unsafe { libc::madvise(lo as *mut libc::c_void, self.top() - KEEP - lo, libc::MADV_DONTNEED) };
                DEEP_RECLAIMS.fetch_add(1, Ordering::Relaxed);
            }
        }
        let ci = (self.class - MIN_CLASS) as usize;
        let slot = self.slot;
        let kept = LOCAL
            .try_with(|l| {
                let mut l = l.borrow_mut();
                if l.free[ci].len() < CACHE {
                    l.free[ci].push(slot);
                    true
                } else {
                    false
                }
            })
            .unwrap_or(false);
        if !kept {
            CLASSES[ci].lock().free.push(slot);
        }
    }
}

// SAFETY: `limit` is the slot's guard page (invariant 1), below `base` by
// at least MIN_STACK_SIZE usable bytes; base is page aligned (so 16-byte
// aligned). The slot is exclusively ours until dropped.
unsafe impl corosensei::stack::Stack for Stack {
    fn base(&self) -> corosensei::stack::StackPointer {
        corosensei::stack::StackPointer::new(self.top()).expect("stack top is not null")
    }
    fn limit(&self) -> corosensei::stack::StackPointer {
        corosensei::stack::StackPointer::new(self.slot).expect("stack slot is not null")
    }
}

/// Called by a worker thread when it starts.
pub(crate) fn worker_started() {
    overflow::install_for_thread();
}

/// Called by a worker thread before it exits.
pub(crate) fn worker_exiting() {}

/// Stack counters (process-wide).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct StackStats {
    pub(crate) in_use: u64,
    pub(crate) reserved: u64,
    pub(crate) committed: u64,
    pub(crate) segments: u64,
}

/// Counters. `committed` is an estimate: one page per stack in use plus
/// the pages of the segments in use (exact figures: the process RSS).
pub(crate) fn stats() -> StackStats {
    let in_use = IN_USE.load(Ordering::Relaxed);
    let segments = segment::SEGMENTS.load(Ordering::Relaxed);
    StackStats {
        in_use,
        reserved: RESERVED.load(Ordering::Relaxed),
        committed: in_use * PAGE as u64 + segments * segment::SEGMENT_COMMIT_ESTIMATE,
        segments,
    }
}
