// Design notes for maintainers (the user docs are the `//!` block below).
//
// Owns: `Stack` (one coroutine's stack, implementing corosensei's `Stack`),
// the slab of reservations behind it, and the stack counters.
//
// Layout: stacks come in power-of-two *classes* (16 KiB .. 1 GiB of usable
// space). A class carves its slots from `MAP_NORESERVE` reservations of at
// least 64 MiB, so a million stacks need a few thousand mappings, not a
// million (`vm.max_map_count` is 65 530 on a stock Linux). Each slot is
// `[guard (GUARD_SIZE)][usable stack]`; the stack grows down from the top.
//
// Invariants:
//  1. Every slot's guard is installed before any code runs on the slot
//     (once, or twice where a batch and the slot's own install race:
//     invariant 7), with `madvise(MADV_GUARD_INSTALL)` (Linux 6.13+: no extra
//     mapping, no memory, whatever its size) or, if the kernel refuses,
//     `mprotect(PROT_NONE)` over the same 64 KiB. The fallback splits the
//     mapping in two per slot, so it caps out near 32 000 live stacks; its
//     cost is per slot, not per byte (a `PROT_NONE` range is one mapping
//     and is never committed), so the fallback keeps the full 64 KiB too:
//     the only price of the larger guard is 60 KiB more address space per
//     slot (one 16 KiB stack takes 80 KiB of address space, 80 GB for a
//     million; on 32-bit targets it caps out near 40 000 stacks). A freshly
//     carved slot comes with a `PendingGuard`: the system call is made by
//     the worker that first runs the coroutine (off the spawner's path, in
//     parallel across workers), or when the unstarted coroutine is dropped.
//  2. A `Stack` knows whether its guard is installed (`guarded`). Only a
//     guarded slot ever reaches a free list: dropping an unguarded `Stack`
//     (its install failed) sets the slot aside for good (its memory is
//     given back, its address space never reused). So every slot in a free
//     list has its guard, and a recycled slot needs no system call.
//  3. Memory is committed by the kernel as the stack is touched; an idle
//     coroutine costs the one or two pages it used.
//  4. Freed slots go to a per-thread LIFO cache (hot pages are reused first),
//     overflowing into a global list. A slot whose stack went deeper than
//     `KEEP` bytes gets everything below the top `KEEP` bytes given back
//     (`MADV_DONTNEED`) when it is freed, so one deep call does not pin
//     memory forever. "Went deeper" is whether the probe page at that depth
//     is resident, asked with `mincore` (a stack that never reached it left
//     it unmapped). Not read: reading an unmapped page is a page fault that
//     maps the zero page, about as dear as the stack's own first fault, and
//     a million short-lived coroutines paid it once each. Nor one `mincore`
//     per slot: each call takes the mmap lock and a page for its result,
//     and that was half the time a million coroutines took to end. A
//     thread gathers its freed never-probed slots of up to
//     `PROBE_BATCH_MAX` (`LocalCache::unprobed`, at most `PROBE_BATCH` of
//     them and `PROBE_BYTES` of stack, none handed out meanwhile) and asks
//     about all of them with a `mincore` per run of neighbouring slots
//     (within `PROBE_SPAN`, no two more than `PROBE_GAP` apart: the kernel
//     walks every page of the range, and across a wide gap that costs more
//     than another call), before it needs a slot it has not got, or when
//     its worker runs out of work (`flush_idle`): the give-back of a deep
//     recursion's segments is done off the path of whatever runs next, as
//     Go's scavenger returns memory in the background. After that first
//     time a slot's probe page is mapped and a read tells.
//  5. Reservations are never unmapped (slots are recycled), so a guard
//     address stays a guard for the life of the process; the overflow
//     handler relies on that.
//  6. A class's reservations double in size, from 64 MiB up to 4 GiB: each
//     `mmap` takes the process's mmap lock for writing, which stalls every
//     page fault and `madvise` of the other workers, and a million default
//     stacks (320 KiB slots) took about 5 000 of them at a fixed 64 MiB;
//     now about 80. Address space is cheap (`MAP_NORESERVE`, 128 TiB).
//
//  7. Guards are installed a batch at a time where the kernel allows it:
//     `carve` groups a reservation's slots into batches of `GUARD_BATCH`,
//     and the first worker to start any slot of a batch installs the guards
//     of the whole batch with one `process_madvise(MADV_GUARD_INSTALL)` on
//     `PIDFD_SELF` (recent kernels; 6.18 here), uncarved slots of the batch
//     included (they are ours, and nothing runs on them before `carve`
//     hands them out). A slot carved after its batch was installed comes
//     without a `PendingGuard`, like a recycled one. Installing a guard is
//     idempotent, so a worker that finds the batch's install busy or failed
//     installs its own slot's guard alone, as before; where the call is
//     refused (older kernels) or a test hook is on, every slot does. One
//     call instead of 64 saved 0.5 us of the 1.5 us a guard cost per fresh
//     slot (KVM guest, C model), and 2.4 s of 11 s in `workloads idle`:
//     fewer takings of the mmap lock that page faults wait on.
//  8. A freed slot whose stack was swapped out (`swap.rs`) goes back
//     *cold*: the top pages a saved copy came back to are given back
//     (`MADV_DONTNEED`) before the slot is reused, so a mass wake-up of
//     long-parked coroutines does not leave a page each in the free lists.
//     Each thread gathers such slots (`LocalCache::cold`, at most
//     `COLD_BATCH`) and gives them back with one `process_madvise`, then
//     recycles them; a slot is never handed out while it waits there. One
//     call per slot flushed the TLBs of the other workers once per slot (an
//     IPI each, dear on a VM): the wake-up of 300 000 swapped coroutines in
//     `workloads idle` took 7.4-8.1 s that way, 3.8-4.3 s batched (with
//     `swap.rs` note 8's marker removal batched the same way).
//
// Lock order: a class lock, then the overflow region table's lock
// (`carve` registers a new reservation under its class lock); nothing else
// is taken under either.

//! Coroutine stacks: how big they are, what guards them, and how to grow one.
//!
//! Every coroutine runs on its own stack, reserved (not committed) at
//! [`DEFAULT_STACK_SIZE`] unless its [`Builder`](crate::Builder) or
//! [`RuntimeBuilder`](crate::RuntimeBuilder) asks for another size; memory is
//! committed only as the stack is touched, so an idle coroutine costs a page or
//! two. [`remaining`] tells how much stack is left below the caller, and
//! [`maybe_grow`] runs a closure on a fresh segment when little is left, so a
//! deep recursion is bounded only by memory, as in Go:
//!
//! ```
//! fn depth(n: u64) -> u64 {
//!     // Before each level, make sure 32 KiB are left; else go on in a new 1 MiB segment.
//!     goro::stack::maybe_grow(32 * 1024, 1 << 20, || if n == 0 { 0 } else { 1 + depth(n - 1) })
//! }
//! let big = goro::Builder::new().stack_size(64 * 1024).spawn(|| depth(200_000)).unwrap();
//! assert_eq!(big.join().unwrap(), 200_000);
//! ```
//!
//! # Guarantees
//!
//! Below every coroutine stack and every [`maybe_grow`] segment lies a guard
//! of [`GUARD_SIZE`] bytes (64 KiB) that no code can read or write. Each
//! stack still has at least the `stack_size` it was asked for: the guard is
//! reserved beside it, not carved out of it. A fault anywhere in a guard
//! aborts the process with a message naming the coroutine, its stack size
//! and how to raise it. What that catches depends on how code grows its
//! frames:
//!
//!  * **Frames up to 64 KiB, on every target**: a function whose frame is
//!    smaller than the guard cannot step over it, whatever order it touches
//!    the frame in (C built without `-fstack-clash-protection` included).
//!  * **Frames of any size, where Rust probes large frames** (x86_64, x86
//!    and aarch64: [`FRAMES_PROBED`] is true): rustc touches a large frame
//!    page by page from the top, so it meets the guard first. C and other
//!    languages get the same only if built with stack-clash protection.
//!  * **On riscv64, arm and loongarch64** rustc does not probe frames
//!    ([`FRAMES_PROBED`] is false): a single frame larger than 64 KiB (a big
//!    local array) that overflows may write past the guard into whatever
//!    lies below it (another coroutine's stack) without a fault. Keep large
//!    buffers on the heap there.
//!
//! A coroutine whose guard cannot be installed at all (kernels before 6.13
//! when `vm.max_map_count` runs out) does not run: its
//! `join` returns an error saying what to do, and its slot is set aside for
//! good, never given to another coroutine.

pub(crate) mod overflow;
mod segment;
pub(crate) mod swap;

use std::cell::RefCell;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

pub use segment::{maybe_grow, remaining};

/// Smallest usable stack (requests are rounded up to it).
///
/// ```
/// // A tiny request still gets a usable stack.
/// let h = goro::Builder::new().stack_size(1).spawn(|| 1).unwrap();
/// assert_eq!(h.join().unwrap(), 1);
/// assert_eq!(goro::stack::MIN_STACK_SIZE, 16 * 1024);
/// ```
pub const MIN_STACK_SIZE: usize = 16 * 1024;
/// Default reservation for a spawned coroutine.
///
/// ```
/// assert_eq!(goro::stack::DEFAULT_STACK_SIZE, 256 * 1024);
/// // Ask for more where a coroutine recurses deeply:
/// let h = goro::Builder::new().stack_size(4 * goro::stack::DEFAULT_STACK_SIZE).spawn(|| ()).unwrap();
/// h.join().unwrap();
/// ```
pub const DEFAULT_STACK_SIZE: usize = 256 * 1024;
/// Default reservation for the main coroutine of `run`.
///
/// ```
/// let rt = goro::Runtime::builder()
///     .main_stack_size(2 * goro::stack::DEFAULT_MAIN_STACK_SIZE)
///     .build()
///     .unwrap();
/// assert_eq!(rt.run(|| 1).unwrap(), 1);
/// ```
pub const DEFAULT_MAIN_STACK_SIZE: usize = 8 * 1024 * 1024;

/// Bytes of guard below every coroutine stack and segment (module docs,
/// "Guarantees"): 64 KiB, the largest frame GCC assumes may skip a guard on
/// aarch64. Reserved beside the usable stack, never taken out of it.
///
/// ```
/// // Keep single stack frames (big local arrays) well below the guard.
/// let buf = vec![0u8; 4 * goro::stack::GUARD_SIZE]; // large buffers on the heap
/// assert_eq!(buf.len(), 256 * 1024);
/// ```
pub const GUARD_SIZE: usize = 64 * 1024;

/// Whether rustc probes large stack frames on this target (x86_64, x86,
/// aarch64), so that an overflowing Rust frame of any size meets the guard
/// first. Where false (riscv64, arm, loongarch64) only frames up to
/// [`GUARD_SIZE`] are sure to (module docs, "Guarantees").
///
/// ```
/// // Where large frames are not probed, a local over GUARD_SIZE could skip the
/// // guard: put it on the heap instead.
/// let table: Vec<u64> = if goro::stack::FRAMES_PROBED {
///     [7u64; 1024].to_vec() // 8 KiB on the stack is fine everywhere anyway
/// } else {
///     vec![7u64; 1024]
/// };
/// assert_eq!(table.len(), 1024);
/// ```
pub const FRAMES_PROBED: bool = cfg!(goro_frames_probed);

const PAGE: usize = 4096;
const MIN_CLASS: u32 = 14; // 16 KiB
const MAX_CLASS: u32 = 30; // 1 GiB
const NCLASSES: usize = (MAX_CLASS - MIN_CLASS + 1) as usize;
const RESERVATION: usize = 64 << 20;
/// A class's reservations double up to `RESERVATION << MAX_GROWTH` (4 GiB
/// on 64-bit targets; 32-bit ones keep to 64 MiB).
const MAX_GROWTH: u32 = if usize::BITS == 64 { 6 } else { 0 };
/// Pages at the top of a stack that stay committed across reuse.
const KEEP: usize = 32 * 1024;
/// Slots a thread keeps per class before returning them to the global list.
const CACHE: usize = 256;

/// Stacks in use: changed on every spawn and exit by every worker, so
/// sharded (`shard.rs`).
static IN_USE: crate::shard::Counter = crate::shard::Counter::new();
static RESERVED: AtomicU64 = AtomicU64::new(0);
static DEEP_RECLAIMS: AtomicU64 = AtomicU64::new(0);
/// `mincore` calls made to probe freed slots (invariant 4).
static PROBE_CALLS: AtomicU64 = AtomicU64::new(0);
/// Pages those calls asked about.
static PROBE_PAGES: AtomicU64 = AtomicU64::new(0);
/// Slots given back cold, and the system calls that did it (invariant 8).
static COLD_SLOTS: AtomicU64 = AtomicU64::new(0);
static COLD_CALLS: AtomicU64 = AtomicU64::new(0);
/// Slots set aside because their guard could not be installed (invariant 2).
static UNGUARDED: AtomicU64 = AtomicU64::new(0);

/// Fault injection for tests: guard installs that are to fail, and whether
/// to skip `MADV_GUARD_INSTALL` (to exercise the `mprotect` fallback on a
/// new kernel). Read only on the install path (fresh slots), never on the
/// spawn or free path of a recycled slot.
static FAIL_INSTALLS: AtomicU32 = AtomicU32::new(0);
static FORCE_MPROTECT: AtomicBool = AtomicBool::new(false);

/// Testing hook, not API: the next `n` guard installs in this process fail
/// as if the kernel had refused another mapping (`ENOMEM`).
#[doc(hidden)]
pub fn __fail_next_guard_installs(n: u32) {
    FAIL_INSTALLS.store(n, Ordering::Relaxed);
}

/// Testing hook, not API: install guards with `mprotect` even where
/// `MADV_GUARD_INSTALL` works (the pre-6.13 fallback).
#[doc(hidden)]
pub fn __force_mprotect_guards(on: bool) {
    FORCE_MPROTECT.store(on, Ordering::Relaxed);
}

/// Testing hook, not API: system calls made so far to install stack guards
/// (one per batch of slots where batches work, invariant 7; one per slot
/// else).
#[doc(hidden)]
pub fn __guard_install_calls() -> u64 {
    GUARD_CALLS.load(Ordering::Relaxed)
}

/// Testing hook, not API: whether guards are still installed a batch at a
/// time (invariant 7: false once the kernel refused).
#[doc(hidden)]
pub fn __guard_batches_work() -> bool {
    BATCHES_WORK.load(Ordering::Relaxed)
}

/// Testing hook, not API: slots set aside so far because their guard could
/// not be installed.
#[doc(hidden)]
pub fn __unguarded_slots() -> u64 {
    UNGUARDED.load(Ordering::Relaxed)
}

/// Testing hook, not API: (slots, system calls) so far that gave back the
/// top pages of freed slots whose stacks had been swapped out (invariant 8).
#[doc(hidden)]
pub fn __cold_give_backs() -> (u64, u64) {
    (COLD_SLOTS.load(Ordering::Relaxed), COLD_CALLS.load(Ordering::Relaxed))
}

/// Testing hook, not API: slots whose pages below the kept top were given
/// back when freed (invariant 4) so far.
#[doc(hidden)]
pub fn __deep_reclaims() -> u64 {
    DEEP_RECLAIMS.load(Ordering::Relaxed)
}

/// Testing hook, not API: (calls, pages) so far of the `mincore`s that
/// probe freed slots never probed before (invariant 4); the kernel walks
/// the page table entry of every page asked about.
#[doc(hidden)]
pub fn __probes() -> (u64, u64) {
    (PROBE_CALLS.load(Ordering::Relaxed), PROBE_PAGES.load(Ordering::Relaxed))
}

/// What `join` returns (as the panic payload) for a coroutine that did not
/// run because its stack's guard could not be installed.
pub(crate) const NO_GUARD_HELP: &str = "goro: this coroutine did not run: the guard below its stack could not be \
installed (the kernel refused another memory mapping; goro printed the error). Before Linux 6.13 every \
coroutine stack's guard costs a memory mapping, and vm.max_map_count (65530 by default) caps live \
coroutines near 32000. Raise it (sysctl -w vm.max_map_count=1048576), keep fewer coroutines alive at \
once, or run on Linux 6.13 or later (MADV_GUARD_INSTALL: no mapping per stack). The stack was set aside, \
never reused without a guard.";

/// One class's carving state and free list.
struct Class {
    /// Next uncarved slot and the end of the current reservation.
    next: usize,
    end: usize,
    free: Vec<usize>,
    /// Reservations made so far (each doubles the last, invariant 6).
    reservations: u32,
    /// The batch of slots being carved (invariant 7).
    batch: Option<Arc<GuardBatch>>,
}

static CLASSES: [Mutex<Class>; NCLASSES] =
    [const { Mutex::new(Class { next: 0, end: 0, free: Vec::new(), reservations: 0, batch: None }) }; NCLASSES];

/// Slots whose guards one system call installs (invariant 7).
const GUARD_BATCH: usize = 64;

/// A batch of consecutive slots of one reservation whose guards are installed
/// together (invariant 7).
#[derive(Debug)]
pub(crate) struct GuardBatch {
    first: usize,
    slot_len: usize,
    count: usize,
    /// `BATCH_PENDING`, `BATCH_BUSY`, `BATCH_DONE` or `BATCH_FAILED`.
    state: AtomicU8,
}

const BATCH_PENDING: u8 = 0;
const BATCH_BUSY: u8 = 1;
const BATCH_DONE: u8 = 2;
const BATCH_FAILED: u8 = 3;

/// Whether batches are tried at all: cleared for good by the first refusal.
static BATCHES_WORK: AtomicBool = AtomicBool::new(cfg!(goro_madv_guard));
/// Guard-installing system calls made so far (a testing hook reads it).
static GUARD_CALLS: AtomicU64 = AtomicU64::new(0);

impl GuardBatch {
    /// Just past its last slot.
    fn end(&self) -> usize {
        self.first + self.count * self.slot_len
    }

    fn installed(&self) -> bool {
        self.state.load(Ordering::Acquire) == BATCH_DONE
    }

    /// Makes sure every guard of the batch is installed; false if that is not
    /// known (another thread is at it, or the kernel refused), and the
    /// caller must install its own slot's guard.
    fn install(&self) -> bool {
        match self.state.load(Ordering::Acquire) {
            BATCH_DONE => return true,
            BATCH_PENDING => {}
            _ => return false,
        }
        if self.state.compare_exchange(BATCH_PENDING, BATCH_BUSY, Ordering::Acquire, Ordering::Acquire).is_err() {
            return self.installed();
        }
        let ok = install_guards(self.first, self.slot_len, self.count);
        self.state.store(if ok { BATCH_DONE } else { BATCH_FAILED }, Ordering::Release);
        ok
    }
}

/// Neither test hook is on (they exercise the one-slot paths).
fn hooks_off() -> bool {
    FAIL_INSTALLS.load(Ordering::Relaxed) == 0 && !FORCE_MPROTECT.load(Ordering::Relaxed)
}

/// Installs the guards of `count` slots of `slot_len` bytes from `first`
/// with one `process_madvise`; false (and batches are off for good) if the
/// kernel refuses.
fn install_guards(first: usize, slot_len: usize, count: usize) -> bool {
    const MADV_GUARD_INSTALL: libc::c_int = 102;
    let iov: [libc::iovec; GUARD_BATCH] = std::array::from_fn(|i| libc::iovec {
        iov_base: (first + i.min(count - 1) * slot_len) as *mut libc::c_void,
        iov_len: GUARD_SIZE,
    });
    GUARD_CALLS.fetch_add(1, Ordering::Relaxed);
    // SAFETY: the `count` ranges are the guards of slots of one reservation
    // of ours: either never run on, or guards already (invariant 7); none
    // holds anything.
    unsafe { advise_many(&iov[..count], MADV_GUARD_INSTALL, &BATCHES_WORK) }
}

/// One `process_madvise(PIDFD_SELF, ranges, advice)`: the advice over
/// several ranges of our own address space in one system call, under one
/// taking of the mmap lock and with one TLB flush for all of them (Linux
/// 6.13+ takes any advice for the calling process). False if it did not
/// cover them all; then the caller advises range by range. `works` says
/// whether to try at all: a kernel that refuses the call itself (too old,
/// or not this advice) refuses every time, so the first refusal clears it.
/// Async-signal-safe (one system call; `errno` read directly).
///
/// # Safety
///
/// As for `madvise(advice)` over each range: they are ours, and what the
/// advice does to their contents is what the caller wants.
pub(super) unsafe fn advise_many(ranges: &[libc::iovec], advice: libc::c_int, works: &AtomicBool) -> bool {
    if !works.load(Ordering::Relaxed) {
        return false;
    }
    #[cfg(goro_madv_guard)]
    {
        /// The calling process, for pidfd-taking calls (recent kernels).
        const PIDFD_SELF_THREAD_GROUP: libc::c_int = -10001;
        let want: usize = ranges.iter().map(|r| r.iov_len).sum();
        // SAFETY: the caller's contract covers the advice; `ranges`
        // outlives the call, which only reads it.
        let r = unsafe {
            libc::syscall(libc::SYS_process_madvise, PIDFD_SELF_THREAD_GROUP, ranges.as_ptr(), ranges.len(), advice, 0)
        };
        if r >= 0 && r as usize == want {
            return true;
        }
        // SAFETY: reading errno has no preconditions.
        let errno = unsafe { *libc::__errno_location() };
        // Anything else (no memory for page tables, a partial run) fails
        // only this call.
        if r < 0 && matches!(errno, libc::ENOSYS | libc::EINVAL | libc::EBADF | libc::EPERM | libc::ESRCH) {
            works.store(false, Ordering::Relaxed);
        }
        false
    }
    #[cfg(not(goro_madv_guard))]
    {
        let _ = (ranges, advice);
        false
    }
}

thread_local! {
    static LOCAL: RefCell<LocalCache> =
        const { RefCell::new(LocalCache { free: [const { Vec::new() }; NCLASSES], cold: Vec::new(), unprobed: Vec::new(), unprobed_bytes: 0, residency: Vec::new() }) };
}

struct LocalCache {
    free: [Vec<usize>; NCLASSES],
    /// Freed slots whose top pages go back to the kernel before they are
    /// reused (invariant 8): (free-list entry, class index).
    cold: Vec<(usize, usize)>,
    /// Freed slots never probed yet (invariant 4), probed a batch at a
    /// time, and their usable bytes.
    unprobed: Vec<Unprobed>,
    unprobed_bytes: usize,
    /// `mincore`'s answer for one run of them (`PROBE_SPAN / PAGE` bytes,
    /// allocated once: a drop may run on a nearly full stack).
    residency: Vec<u8>,
}

/// A freed slot whose stack has not been probed yet (invariant 4).
struct Unprobed {
    slot: usize,
    /// Its class index.
    ci: usize,
    /// Its usable top.
    top: usize,
    /// It goes back cold after the probe (invariant 8).
    cold: bool,
}

impl Unprobed {
    fn probe_page(&self) -> usize {
        self.top - KEEP - PAGE
    }
}

/// Never-probed freed slots a thread gathers before it probes them all
/// (invariant 4), and the most stack they may span: a deep stack waits
/// there with its pages until the batch is full, the thread needs a slot,
/// or its worker idles (64 default slots make 16 MiB; 64 one-MiB segments
/// of `maybe_grow`, 64 MiB). Stacks over `PROBE_BATCH_MAX` (a run's 8 MiB
/// main stack, say) are probed alone at once: few, and each could hold
/// much. (At 16 MiB, a recursion through twenty 1 MiB segments gave back
/// sixteen of them on its way out: 16 % of `workloads deep`.)
const PROBE_BATCH: usize = 64;
const PROBE_BYTES: usize = 64 << 20;
const PROBE_BATCH_MAX: usize = 1 << 20;
/// The most address space one `mincore` of a probe batch covers (one byte
/// of answer per page): 16 MiB, some fifty default slots.
const PROBE_SPAN: usize = 16 << 20;
/// The widest gap between two probe pages one `mincore` spans; a wider one
/// starts another call. A call costs about 1.2 us and each page it walks
/// 9.5 ns more (KVM guest, C model: one page 1 199 ns, 160 pages 2 726 ns,
/// 4 096 pages 39 260 ns), so bridging 128 pages costs what a call does.
/// Neighbouring default slots are 80 pages apart; slots freed far apart
/// (10 000 coroutines ending in any order over 3 GB of slots) are asked
/// one by one, as the walk across the gaps would cost more than the calls.
const PROBE_GAP: usize = 128 * PAGE;

/// Slots a thread gathers before it gives their top pages back in one
/// system call (invariant 8).
const COLD_BATCH: usize = 64;

/// Whether `advise_many` takes `MADV_DONTNEED` here.
static COLD_BATCHES_WORK: AtomicBool = AtomicBool::new(cfg!(goro_madv_guard));

impl LocalCache {
    /// A freed slot, to this thread's list of its class, or the global one.
    fn recycle(&mut self, entry: usize, ci: usize) {
        if self.free[ci].len() < CACHE {
            self.free[ci].push(entry);
        } else {
            CLASSES[ci].lock().free.push(entry);
        }
    }

    /// Probes every slot in `unprobed` (invariant 4): one `mincore` per run
    /// of slots whose probe pages lie within `PROBE_SPAN`, then gives a deep
    /// one's lower pages back, and recycles them all (cold ones through
    /// `cold`).
    fn flush_unprobed(&mut self) {
        if self.unprobed.is_empty() {
            return;
        }
        let mut batch = std::mem::take(&mut self.unprobed);
        self.unprobed_bytes = 0;
        batch.sort_unstable_by_key(|u| u.slot);
        self.residency.resize(PROBE_SPAN / PAGE, 0);
        let mut i = 0;
        while i < batch.len() {
            let lo = batch[i].probe_page();
            let mut j = i + 1;
            while j < batch.len()
                && batch[j].probe_page() - batch[j - 1].probe_page() <= PROBE_GAP
                && batch[j].probe_page() + PAGE - lo <= PROBE_SPAN
            {
                j += 1;
            }
            let len = batch[j - 1].probe_page() + PAGE - lo;
            PROBE_CALLS.fetch_add(1, Ordering::Relaxed);
            PROBE_PAGES.fetch_add((len / PAGE) as u64, Ordering::Relaxed);
            // SAFETY: `lo` is page aligned; `mincore` only reads the page
            // tables and writes one byte per page of `len` (at most
            // `PROBE_SPAN / PAGE`, the buffer's length). A range that is
            // not all mapped (it spans two reservations) fails with
            // `ENOMEM`, and each slot is then asked alone.
            let r = unsafe { libc::mincore(lo as *mut libc::c_void, len, self.residency.as_mut_ptr()) };
            for u in &batch[i..j] {
                let deep = if r == 0 {
                    self.residency[(u.probe_page() - lo) / PAGE] & 1 != 0
                } else {
                    probe_resident(u.probe_page())
                };
                if deep {
                    // SAFETY: a freed slot of ours: its bytes are dead.
                    unsafe { give_back_deep(u.slot, u.top) };
                }
                // Probed: its probe page is read from now on.
                let entry = u.slot | PROBE_SEEN;
                if u.cold {
                    self.cold.push((entry, u.ci));
                } else {
                    self.recycle(entry, u.ci);
                }
            }
            i = j;
        }
        if self.cold.len() >= COLD_BATCH {
            self.flush_cold();
        }
    }

    /// Gives back the top `swap::COLD_BYTES` of every slot in `cold`, then
    /// recycles them (invariant 8).
    fn flush_cold(&mut self) {
        if self.cold.is_empty() {
            return;
        }
        let cold = std::mem::take(&mut self.cold);
        let ranges: Vec<libc::iovec> = cold
            .iter()
            .map(|&(entry, ci)| cold_range((entry & !PROBE_BITS) + GUARD_SIZE + (1 << (ci + MIN_CLASS as usize))))
            .collect();
        COLD_SLOTS.fetch_add(ranges.len() as u64, Ordering::Relaxed);
        COLD_CALLS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the top pages of freed slots of ours: nothing runs on them
        // (their stacks were dropped), and nothing is handed out before this
        // returns; their bytes are dead.
        if !unsafe { advise_many(&ranges, libc::MADV_DONTNEED, &COLD_BATCHES_WORK) } {
            for r in &ranges {
                // SAFETY: as above, one range at a time.
                unsafe { give_back(r) };
            }
        }
        for (entry, ci) in cold {
            self.recycle(entry, ci);
        }
    }
}

/// The top pages of the slot whose stack top is `top` that a freed slot
/// gives back cold (invariant 8).
fn cold_range(top: usize) -> libc::iovec {
    libc::iovec { iov_base: (top - swap::COLD_BYTES) as *mut libc::c_void, iov_len: swap::COLD_BYTES }
}

/// `madvise(MADV_DONTNEED)` over `r`, one system call.
///
/// # Safety
///
/// `r` is ours and its bytes are dead.
unsafe fn give_back(r: &libc::iovec) {
    COLD_CALLS.fetch_add(1, Ordering::Relaxed);
    // SAFETY: the caller's contract.
    unsafe { libc::madvise(r.iov_base, r.iov_len, libc::MADV_DONTNEED) };
}

/// Whether the page at `probe` (page aligned, inside a mapped slot of
/// ours) is resident: one `mincore`. An error (none is expected) counts as
/// resident, so the memory is given back anyway.
fn probe_resident(probe: usize) -> bool {
    let mut resident = 0u8;
    PROBE_CALLS.fetch_add(1, Ordering::Relaxed);
    PROBE_PAGES.fetch_add(1, Ordering::Relaxed);
    // SAFETY: `mincore` only reads the page tables and writes one byte (one
    // page) into `resident`.
    let r = unsafe { libc::mincore(probe as *mut libc::c_void, PAGE, &mut resident) };
    r != 0 || resident & 1 != 0
}

/// Gives back everything of the slot at `slot` (usable top `top`) below
/// its kept top (invariant 4).
///
/// # Safety
///
/// The slot is ours and freed: its bytes are dead.
unsafe fn give_back_deep(slot: usize, top: usize) {
    let lo = slot + GUARD_SIZE;
    // SAFETY: the caller's contract; `lo..top - KEEP` is inside the slot's
    // usable range, mapped.
    unsafe { libc::madvise(lo as *mut libc::c_void, top - KEEP - lo, libc::MADV_DONTNEED) };
    DEEP_RECLAIMS.fetch_add(1, Ordering::Relaxed);
}

impl Drop for LocalCache {
    fn drop(&mut self) {
        self.flush_unprobed();
        self.flush_cold();
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

/// A coroutine stack: a slot of the slab. Dropping it recycles the slot if
/// its guard is installed, else sets it aside (invariant 2).
pub(crate) struct Stack {
    /// Start of the slot (its guard).
    slot: usize,
    class: u32,
    /// Its guard is installed (invariant 2).
    guarded: bool,
    /// How the next free asks whether the stack went deep (invariant 4):
    /// `PROBE_FRESH`, `PROBE_SEEN` or `PROBE_MAPPED`. Kept across reuse in
    /// the low bits of the free lists' entries (slots are page aligned).
    /// A byte, so that `top` fits in the control block's budget.
    probe: u8,
    /// The usable top, `slot + GUARD_SIZE + size()`: corosensei asks for it
    /// (`base`) at every resume.
    top: usize,
}

/// A slot never freed yet: its probe page is unmapped unless the stack
/// reached it, so ask `mincore` (a read would fault it in).
const PROBE_FRESH: usize = 0;
/// Freed once and shallow: read the probe page this time (one fault maps
/// the zero page), so that later frees of this often reused slot are a
/// plain load instead of a system call each.
const PROBE_SEEN: usize = 1;
/// The probe page is mapped (zero page, or zeros the stack wrote): a load
/// tells whether the stack reached it.
const PROBE_MAPPED: usize = 2;
const PROBE_BITS: usize = 3;

/// A freshly carved slot's guard, not installed yet (invariant 1).
/// Whoever holds it must `install` it before code runs deeper than the top
/// page of the stack; a stack freed without it is set aside (invariant 2).
#[must_use = "a stack's guard must be installed"]
#[derive(Debug)]
pub(crate) struct PendingGuard {
    slot: usize,
    /// The batch the slot belongs to, if batches are on (invariant 7).
    batch: Option<Arc<GuardBatch>>,
}

impl PendingGuard {
    /// Installs the guard of `stack` (the stack this guard came with) and
    /// marks it guarded, so it may be recycled.
    pub(crate) fn install(self, stack: &mut Stack) -> io::Result<()> {
        debug_assert_eq!(self.slot, stack.slot, "goro bug: a guard installed for another stack");
        // The test hooks exercise the one-slot paths, batches or not.
        if !(hooks_off() && self.batch.is_some_and(|b| b.install())) {
            install_guard(self.slot)?;
        }
        stack.guarded = true;
        Ok(())
    }
}

impl Stack {
    /// A stack with at least `size` usable bytes (rounded up to a power of
    /// two, at least [`MIN_STACK_SIZE`]), and its guard if that is still to
    /// be installed (a fresh slot; a recycled one has it).
    pub(crate) fn new(size: usize) -> io::Result<(Stack, Option<PendingGuard>)> {
        let class = class_of(size)?;
        let ci = (class - MIN_CLASS) as usize;
        let cached = LOCAL
            .try_with(|l| {
                let mut l = l.borrow_mut();
                if l.free[ci].is_empty() && !l.unprobed.is_empty() {
                    // Freed slots waiting for their probe come before a
                    // fresh one (invariant 4).
                    l.flush_unprobed();
                }
                l.free[ci].pop()
            })
            .ok()
            .flatten();
        let (entry, guard) = match cached {
            Some(s) => (s, None),
            None => carve(class)?,
        };
        IN_USE.add(1);
        let guarded = guard.is_none();
        let (slot, probe) = (entry & !PROBE_BITS, entry & PROBE_BITS);
        let top = slot + GUARD_SIZE + (1 << class);
        Ok((Stack { slot, class, guarded, probe: probe as u8, top }, guard))
    }

    /// A stack whose guard is installed before it is returned. If that
    /// fails the fresh stack is dropped, so set aside (invariant 2).
    pub(crate) fn new_guarded(size: usize) -> io::Result<Stack> {
        let (mut stack, guard) = Stack::new(size)?;
        if let Some(g) = guard {
            g.install(&mut stack)?;
        }
        Ok(stack)
    }

    /// Usable bytes.
    pub(crate) fn size(&self) -> usize {
        1 << self.class
    }

    fn top(&self) -> usize {
        self.top
    }
}

fn carve(class: u32) -> io::Result<(usize, Option<PendingGuard>)> {
    let ci = (class - MIN_CLASS) as usize;
    let slot_len = GUARD_SIZE + (1usize << class);
    let mut c = CLASSES[ci].lock();
    if let Some(s) = c.free.pop() {
        return Ok((s, None));
    }
    if c.next + slot_len > c.end {
        // Each reservation of a class doubles the last, up to
        // `RESERVATION << MAX_GROWTH` (invariant 6); if the address space
        // refuses a large one (`ulimit -v`), fall back to the smallest.
        let small = RESERVATION.max(slot_len * 4);
        // Classes whose slots are already large (a 4 GiB first reservation
        // for 1 GiB stacks) do not grow.
        let mut len = (small << c.reservations.min(MAX_GROWTH)).min(RESERVATION << MAX_GROWTH).max(small);
        let mut p = reserve(len);
        if p == libc::MAP_FAILED && len > small {
            len = small;
            p = reserve(len);
        }
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
        c.reservations += 1;
        // A batch never spans two reservations (invariant 7).
        c.batch = None;
    }
    let slot = c.next;
    c.next += slot_len;
    if !BATCHES_WORK.load(Ordering::Relaxed) {
        return Ok((slot, Some(PendingGuard { slot, batch: None })));
    }
    if c.batch.as_ref().is_none_or(|b| slot >= b.end()) {
        let count = GUARD_BATCH.min((c.end - slot) / slot_len);
        c.batch = Some(Arc::new(GuardBatch { first: slot, slot_len, count, state: AtomicU8::new(BATCH_PENDING) }));
    }
    let batch = c.batch.clone();
    drop(c);
    if batch.as_ref().is_some_and(|b| b.installed()) && hooks_off() {
        return Ok((slot, None));
    }
    Ok((slot, Some(PendingGuard { slot, batch })))
}

/// A fresh `MAP_NORESERVE` range of `len` bytes for stack slots, or
/// `MAP_FAILED`.
fn reserve(len: usize) -> *mut libc::c_void {
    // SAFETY: a fresh anonymous private mapping; no existing memory is
    // touched. The caller checks for failure.
    unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    }
}

/// Invariant 1: makes the `GUARD_SIZE` bytes at `slot` inaccessible.
fn install_guard(slot: usize) -> io::Result<()> {
    if FAIL_INSTALLS.load(Ordering::Relaxed) != 0
        && FAIL_INSTALLS.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1)).is_ok()
    {
        return Err(guard_error(io::Error::from_raw_os_error(libc::ENOMEM)));
    }
    GUARD_CALLS.fetch_add(1, Ordering::Relaxed);
    #[cfg(goro_madv_guard)]
    if !FORCE_MPROTECT.load(Ordering::Relaxed) {
        const MADV_GUARD_INSTALL: libc::c_int = 102;
        // SAFETY: `slot` starts a slot we carved from our own reservation and
        // nobody has run on yet; its first GUARD_SIZE bytes hold nothing.
        if unsafe { libc::madvise(slot as *mut libc::c_void, GUARD_SIZE, MADV_GUARD_INSTALL) } == 0 {
            return Ok(());
        }
    }
    // SAFETY: as above; PROT_NONE on our own unused range.
    if unsafe { libc::mprotect(slot as *mut libc::c_void, GUARD_SIZE, libc::PROT_NONE) } != 0 {
        return Err(guard_error(io::Error::last_os_error()));
    }
    // A protection, not a marker: a swap window over it would reopen it
    // (swap.rs note 6), so swapping stops sharing windows.
    swap::note_mprotect_guard();
    Ok(())
}

fn guard_error(e: io::Error) -> io::Error {
    let help = if e.raw_os_error() == Some(libc::ENOMEM) {
        " (this kernel lacks MADV_GUARD_INSTALL, so each stack guard costs a memory mapping, and \
vm.max_map_count is reached: raise it with sysctl -w vm.max_map_count=1048576, keep fewer coroutines \
alive at once, or run on Linux 6.13 or later)"
    } else {
        ""
    };
    io::Error::new(e.kind(), format!("goro: cannot install a stack guard: {e}{help}"))
}

impl Drop for Stack {
    fn drop(&mut self) {
        IN_USE.add(-1);
        // A stack swapped out while parked (swap.rs) frees its saved copy,
        // and its slot goes back cold (invariant 8).
        let cold = swap::release(self.slot);
        if !self.guarded {
            // Invariant 2: never recycle a slot without a guard. Give its
            // memory back and forget it; its address space stays reserved.
            // SAFETY: this slot's usable range, mapped read-write and ours;
            // whatever ran on it is gone, and nothing will run on it again.
            unsafe { libc::madvise((self.slot + GUARD_SIZE) as *mut libc::c_void, self.size(), libc::MADV_DONTNEED) };
            UNGUARDED.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let size = self.size();
        let ci = (self.class - MIN_CLASS) as usize;
        if size > KEEP && size <= PROBE_BATCH_MAX && usize::from(self.probe) == PROBE_FRESH {
            // Invariant 4: probed with its thread's next batch.
            let u = Unprobed { slot: self.slot, ci, top: self.top(), cold };
            let gathered = LOCAL.try_with(|l| {
                let mut l = l.borrow_mut();
                l.unprobed.push(u);
                l.unprobed_bytes += size;
                if l.unprobed.len() >= PROBE_BATCH || l.unprobed_bytes >= PROBE_BYTES {
                    l.flush_unprobed();
                }
            });
            if gathered.is_ok() {
                return;
            }
        }
        if size > KEEP {
            // Invariant 4: did the stack reach the page just below the kept top?
            let probe = self.top() - KEEP - PAGE;
            let deep = if usize::from(self.probe) == PROBE_FRESH {
                // A big stack, or this thread's cache is gone (thread exit).
                probe_resident(probe)
            } else {
                // The stack grows down into the probe page from its top: any
                // nonzero word among its top 64 means the stack got there.
                let words = (probe + PAGE - 64 * 8) as *const u64;
                (0..64).any(|i| {
                    // SAFETY: the 64 words are inside the probe page, in this
                    // slot's usable range, mapped read-write (a never-touched
                    // page reads as zeros) and aligned; the coroutine that
                    // used it is gone, so nothing writes it now.
                    let w = unsafe { words.add(i).read_volatile() };
                    w != 0
                })
            };
            let next = match (deep, usize::from(self.probe)) {
                // Given back below: unmapped again, so read it (once) next time.
                (true, _) => PROBE_SEEN,
                (false, PROBE_FRESH) => PROBE_SEEN,
                (false, _) => PROBE_MAPPED,
            };
            self.probe = next as u8;
            if deep {
                // SAFETY: our own slot, freed: its contents are dead.
                unsafe { give_back_deep(self.slot, self.top()) };
            }
        }
        let entry = self.slot | usize::from(self.probe);
        let recycled = LOCAL.try_with(|l| {
            let mut l = l.borrow_mut();
            if cold {
                l.cold.push((entry, ci));
                if l.cold.len() >= COLD_BATCH {
                    l.flush_cold();
                }
            } else {
                l.recycle(entry, ci);
            }
        });
        if recycled.is_err() {
            // This thread's cache is gone (thread exit): one slot, alone.
            if cold {
                COLD_SLOTS.fetch_add(1, Ordering::Relaxed);
                // SAFETY: as in `LocalCache::flush_cold`, for this slot.
                unsafe { give_back(&cold_range(self.top())) };
            }
            CLASSES[ci].lock().free.push(entry);
        }
    }
}

// SAFETY: `limit` is the start of the slot's guard (invariant 1; corosensei
// wants the limit to include guard pages), below `base` by GUARD_SIZE plus
// at least MIN_STACK_SIZE usable bytes; both are page aligned (so 16-byte
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

/// Called by a worker that ran out of work, before it sleeps: probes the
/// freed slots it gathered (invariant 4), giving a deep one's pages back
/// now that nothing waits for this thread.
pub(crate) fn flush_idle() {
    let _ = LOCAL.try_with(|l| l.borrow_mut().flush_unprobed());
}

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
    let in_use = IN_USE.sum();
    let segments = segment::SEGMENTS.load(Ordering::Relaxed);
    StackStats {
        in_use,
        reserved: RESERVED.load(Ordering::Relaxed),
        committed: in_use * PAGE as u64 + segments * segment::SEGMENT_COMMIT_ESTIMATE,
        segments,
    }
}
