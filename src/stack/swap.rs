// Design notes for maintainers.
//
// Owns: swapping a long-parked coroutine's stack out of memory and back
// (issue 18, part 1; the analysis is docs/idle-stacks.md). A parked
// coroutine's used stack, `[sp - margin, top)` (the margin: what a park's
// switch writes below the recorded `sp`, `MARGIN`), is usually one page of
// which under 2 KiB is live; swapped out, it is a heap copy of just those
// bytes, and the page is given back to the kernel.
//
// The record: one `SlotRecord` per slot (`overflow.rs` keeps them per
// region, found from any address in O(1)), holding the state, the saved
// length and the saved bytes. States:
//
//   RESIDENT -swap_out-> SWAPPING -> OUT -restore-> RESTORING -> RESIDENT
//
// Who moves it: only the coroutine's home thread swaps out (`swap_out`),
// between two resumes, so the coroutine itself cannot run meanwhile. Anyone
// may restore: the home before it resumes the coroutine (`swap_in`), and any
// thread that touches the stack while it is out, from the SIGSEGV handler
// (`on_fault`). Restorers race through one CAS, OUT -> RESTORING; the loser
// waits for RESIDENT. The saved bytes are freed only by the home
// (`swap_in`) or by `Stack::drop` (`release`), never in the handler (no
// allocator calls in signal context); they stay valid until then.
//
// Why no access is lost (the soundness argument; ARCHITECTURE.md, "Idle
// stacks", says the same for users). Every change of the range's contents
// happens inside a *closed window*: the pages are made inaccessible
// (`mprotect(PROT_NONE)`) first and reopened last, and goro itself copies
// through `/proc/self/mem` (the kernel's forced access, as a debugger's),
// which ignores the protection:
//  1. Swap-out closes the window, then copies the live bytes out. From the
//     close on, any access, read or write, by whoever makes it (a waker of
//     another worker claiming a channel op on this stack, a thread of
//     `std::thread::scope` holding a `&mut` into it, the coroutine's own
//     destructors under `force_unwind`), faults, and the handler waits for
//     SWAPPING to end. So no write falls between the copy and the release.
//  2. Still closed, `MADV_GUARD_INSTALL` drops the pages and leaves guard
//     markers; then the window reopens. From then on any access faults on
//     a marker: the handler wins OUT -> RESTORING and restores, or waits.
//  3. A restore closes the window, removes the markers (`MADV_GUARD_REMOVE`),
//     writes the bytes back, reopens, and only then publishes RESIDENT. The
//     window matters: between the removal and the write-back the pages are
//     fresh zero-fill memory, and a reader that came by then without a
//     fault (a second waker of a select) would read zeros. (The first
//     version kept reads allowed during the swap-out copy: a reader racing
//     the install's zap mapped the zero page, read a select's state as
//     "already won" and dropped the op: a lost wake, which
//     `tests/swap.rs::senders_racing_swap_outs_lose_nothing` caught.)
//  4. What the handler cannot catch: the kernel touching the parked stack
//     for another thread (a `read(2)` into a buffer there from a scoped
//     thread) gets `EFAULT` instead of faulting in user mode. So swapping
//     is off by default (`RuntimeBuilder::swap_parked_after`), and never
//     applies to a coroutine whose stack goro itself lends out: parked in
//     `goro::blocking`, `block_on`, or anywhere inside a `goro::scope`
//     (`CoInner::no_swap`).
//
//  5. A waker need not bring a stack back to hand it a value: under a
//     channel lock, every access to a queued op or selector goes through
//     `redirect`, which, for a stack that is OUT, counts itself an editor
//     of the record and returns the object's address in the saved copy;
//     the lock's release (`end_edits`) counts it out. Restorers wait for
//     the editors, so the copy they write back has every edit. Safe
//     because the copy is a byte image of the frames (same offsets, and
//     64-byte alignment for both), objects are only ever moved by bytes,
//     and all edits happen under the lock whose holder alone may touch
//     those objects (chan/imp.rs invariants 4 and 6). Anything that does
//     not go through `redirect` still faults and restores (notes 2, 3).
//
//  6. The sweep swaps a worker's parked stacks out in one call, and stacks
//     in adjacent slots (a run, at most `MAX_RUN`) share one closed window
//     and one `MADV_GUARD_INSTALL`: each `mprotect` takes the process's
//     mmap lock for writing and shoots down the TLBs of the other CPUs, and
//     with one window per stack the two workers of a 2-core box spent most
//     of a mass swap-out queued on that lock. The window then also covers
//     each slot's dead stack below its live bytes and the guards between
//     the slots: all of it belongs to the run's parked coroutines, every
//     record of the run is SWAPPING before the window closes, so a touch
//     anywhere in it waits as in note 1. The markers go over each slot's
//     whole usable range (the guards between already have theirs), and a
//     restore removes them from there (the slot's, known to every caller):
//     the dead
//     range comes back as zero-fill, all it ever held that counts.
//
//  7. One kind of address per stack per lock section. The first version
//     let `redirect` peek: it returned the real address of a stack that
//     was RESIDENT, or SWAPPING or RESTORING (a touch would fault and
//     wait), and the copy's once the stack was OUT. So a lock holder could
//     take a real address while the home was swapping the stack out, then,
//     the stack OUT, a copy address of the same stack (taking it EDITING),
//     and touch the real one: a fault on a stack it edits, which cannot be
//     restored under it, and goro aborted ("a channel-lock holder touched a
//     swapped stack it is editing"; `GORO_SWAP_PARKED_MS=1 workloads
//     sieve`, one run in two; `try_send_into`'s `r.claim(r.case)` derefs
//     the op twice). Now `redirect` *uses* the stack until the lock
//     section ends (`end_edits`): a RESIDENT stack is pinned (a swap-out
//     starts only from RESIDENT with no pins, by CAS), an OUT one gets an
//     editor (a restore starts only from OUT with no editors), and
//     SWAPPING or RESTORING is waited out (neither needs a lock, so the
//     wait ends). Editors of one copy do not exclude each other: each
//     touches only the objects of the channel whose lock it holds
//     (chan/imp.rs invariant 6), and a select's shared selector only
//     through atomics. So no lock holder waits for another, and none is
//     ever left with two kinds of address for one stack. The holder's own
//     stack (the one it runs on: its own op) is neither pinned nor looked
//     up (`on_own_stack`): only a parked coroutine's stack goes out, and
//     the holder parks only after its section ends.
//
//  8. Restores share windows too. After a mass wake-up (a `close` that
//     frees a million parked receivers) the coroutines queue on their
//     worker in the order they parked, which for stacks carved one after
//     another is slot order; one window and two `mprotect`s each made the
//     release take 5.4 s for 100 000 swapped stacks (2.3 s now). So before
//     it resumes a swapped coroutine, the worker also takes the `Swapped`
//     of the next ones queued there (`sched/worker.rs::swap_in`, after
//     moving its inbox's wake requests into its queue), and `swap_in_all`
//     claims each OUT record (OUT -> RESTORING, no editors), sorts them
//     and restores each run of adjacent slots inside one window: its
//     records are all RESTORING before it closes and turn RESIDENT only
//     after it reopens, so a touch anywhere in it waits as in note 3. The
//     markers come off each slot's own usable range, never the guards
//     between, all of a run's in one `process_madvise` where the kernel
//     takes it (`stack::advise_many`; one `madvise` per slot else).
//     Records it could not claim (being edited, or restored by a fault
//     meanwhile) go the one-by-one way. When such a coroutine ends, its
//     slot goes back cold, a batch of slots at a time (`release`, and
//     `stack` invariant 8).
//
// A closed window is a mapping split in three for its duration (at most one
// per thread at a time): if `vm.max_map_count` refuses it, a swap-out is
// skipped and a restore retries.
//
// Needs `MADV_GUARD_INSTALL` (Linux 6.13+): without it there are no
// markers that cost no mapping, and `enable` refuses.
//
// Lock order: none here (the records are atomics); `overflow::records`
// takes the region table's lock once per region, to make its records.

use std::cell::Cell;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering};

use super::overflow;
use super::{GUARD_SIZE, PAGE};

// A record's `state` word: the phase in its low bits, and above them how
// many channel-lock holders use the stack now (note 7): *pins* while
// RESIDENT (they hold its real address), *editors* while OUT (they hold
// addresses in its copy). Nobody joins in SWAPPING or RESTORING, and
// neither starts while anybody uses the stack.
const RESIDENT: u32 = 0;
const SWAPPING: u32 = 1;
const OUT: u32 = 2;
const RESTORING: u32 = 3;
const PHASE: u32 = 7;
/// One user (a pin or an editor), in the state word.
const USER: u32 = 8;

const MADV_GUARD_INSTALL: libc::c_int = 102;
const MADV_GUARD_REMOVE: libc::c_int = 103;

/// Bytes kept below the stack pointer recorded at the park, for the frames
/// the switch itself pushes below it (corosensei's suspend and the context
/// switch): at least `MIN_MARGIN`, more if `enable` was told the switch
/// goes deeper (a debug build). `tests/swap.rs` checks that nothing lives
/// below the margin (patterned stacks come back intact).
static MARGIN: AtomicUsize = AtomicUsize::new(MIN_MARGIN);
const MIN_MARGIN: usize = 256;

/// A parked stack using more than this is not swapped (it is deep: the copy
/// would save little against its cost).
const MAX_SAVED: usize = 3 * PAGE;
/// What a freed slot whose stack was swapped out gives back: at least
/// every page a saved copy can come back to.
pub(crate) const COLD_BYTES: usize = MAX_SAVED;

/// Swapping is on for some runtime of this process (and the kernel can).
static ENABLED: AtomicBool = AtomicBool::new(false);

static SWAPPED_OUT: AtomicU64 = AtomicU64::new(0);
static OUT_NOW: AtomicU64 = AtomicU64::new(0);
static FAULT_RESTORES: AtomicU64 = AtomicU64::new(0);
static EDITED: AtomicU64 = AtomicU64::new(0);
static SAVED_BYTES: AtomicU64 = AtomicU64::new(0);
/// Closed windows opened to swap stacks out (one per run, note 6).
static WINDOWS: AtomicU64 = AtomicU64::new(0);
/// Closed windows opened to bring stacks back (one per run, note 8).
static RESTORE_WINDOWS: AtomicU64 = AtomicU64::new(0);

/// One slot's swap state (module notes).
#[derive(Debug)]
pub(crate) struct SlotRecord {
    state: AtomicU32,
    /// Saved bytes: `[top - len, top)`.
    len: AtomicU32,
    buf: AtomicPtr<u8>,
    /// Swapped out at least once since the slot was last freed: its freed
    /// stack gives its top pages back (`release`).
    was_out: AtomicBool,
}

impl SlotRecord {
    pub(crate) const fn new() -> SlotRecord {
        SlotRecord {
            state: AtomicU32::new(RESIDENT),
            len: AtomicU32::new(0),
            buf: AtomicPtr::new(std::ptr::null_mut()),
            was_out: AtomicBool::new(false),
        }
    }
}

/// A swapped-out stack, as its home keeps it (`CoInner::swapped`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Swapped {
    rec: &'static SlotRecord,
    /// The slot's usable range (its guard markers, note 6).
    usable: usize,
    top: usize,
}

/// Turns swapping on for the process, if the kernel has guard markers.
/// `switch_depth` is how far below the recorded stack pointer a park's
/// switch writes (`coroutine::suspend_depth`): the swap-out keeps that much.
pub(crate) fn enable(switch_depth: usize) -> io::Result<()> {
    if !cfg!(goro_madv_guard) || super::FORCE_MPROTECT.load(Ordering::Relaxed) {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "goro: swapping parked stacks needs MADV_GUARD_INSTALL (Linux 6.13 or later)",
        ));
    }
    if MEM_FD.load(Ordering::Acquire) < 0 {
        let fd =
            std::fs::OpenOptions::new().read(true).write(true).open("/proc/self/mem").map_err(|e| {
                io::Error::new(e.kind(), format!("goro: swapping parked stacks needs /proc/self/mem: {e}"))
            })?;
        let fd = std::os::fd::IntoRawFd::into_raw_fd(fd);
        if MEM_FD.compare_exchange(-1, fd, Ordering::AcqRel, Ordering::Acquire).is_err() {
            // SAFETY: our own fd, just opened, used by nobody else.
            unsafe { libc::close(fd) };
        }
    }
    let margin = switch_depth.max(MIN_MARGIN).next_multiple_of(COPY_ALIGN);
    MARGIN.fetch_max(margin, Ordering::SeqCst);
    ENABLED.store(true, Ordering::Release);
    Ok(())
}

/// Whether stacks are swapped: asked on every channel hand-off and unlock,
/// from code inlined into the user's crate, so inlined itself (a call
/// across crates for one load cost pingpong 5%).
#[inline]
pub(crate) fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Counters: stacks swapped out so far and now, swapped back by their home,
/// restored by a fault, and the bytes held in saved copies now.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct SwapStats {
    pub(crate) swapped_out: u64,
    pub(crate) out_now: u64,
    pub(crate) fault_restores: u64,
    pub(crate) edits: u64,
    pub(crate) saved_bytes: u64,
    pub(crate) windows: u64,
    pub(crate) restore_windows: u64,
}

pub(crate) fn stats() -> SwapStats {
    SwapStats {
        swapped_out: SWAPPED_OUT.load(Ordering::Relaxed),
        out_now: OUT_NOW.load(Ordering::Relaxed),
        fault_restores: FAULT_RESTORES.load(Ordering::Relaxed),
        edits: EDITED.load(Ordering::Relaxed),
        saved_bytes: SAVED_BYTES.load(Ordering::Relaxed),
        windows: WINDOWS.load(Ordering::Relaxed),
        restore_windows: RESTORE_WINDOWS.load(Ordering::Relaxed),
    }
}

fn page_floor(a: usize) -> usize {
    a & !(PAGE - 1)
}

/// One stack of a `swap_out` batch, validated, its copy allocated.
struct Prep {
    /// Its place in the caller's list.
    at: usize,
    rec: &'static SlotRecord,
    /// Start of the slot's usable range (the markers go from here: note 6).
    usable: usize,
    slot: usize,
    slot_len: usize,
    region: usize,
    lo: usize,
    top: usize,
    buf: *mut u8,
    len: usize,
}

/// Swaps out the stacks of parked coroutines whose stack pointers at their
/// parks were `sps`, setting `out[i]` for each one swapped. Home thread
/// only, between two resumes of each coroutine (module notes). A stack not
/// swapped (not on a goro stack, too deep, or a system call failed) stays
/// resident, nothing changed. Stacks in adjacent slots share one closed
/// window (note 6).
pub(crate) fn swap_out(sps: &[usize], out: &mut [Option<Swapped>]) {
    let mut preps: Vec<Prep> = sps.iter().enumerate().filter_map(|(at, &sp)| prepare(at, sp)).collect();
    preps.sort_unstable_by_key(|p| p.slot);
    let max_run = if MPROTECT_GUARDS.load(Ordering::SeqCst) { 1 } else { MAX_RUN };
    let adjacent = |a: &Prep, b: &Prep| b.region == a.region && b.slot == a.slot + a.slot_len;
    for_each_run(&preps, max_run, adjacent, |run| swap_out_run(run, out));
}

/// Hands `f` each run of `items` (sorted by address) whose neighbours are
/// `adjacent`, at most `max_run` long: the stacks that share a window.
fn for_each_run<T>(items: &[T], max_run: usize, adjacent: impl Fn(&T, &T) -> bool, mut f: impl FnMut(&[T])) {
    let mut i = 0;
    while i < items.len() {
        let mut j = i + 1;
        while j < items.len() && j - i < max_run && adjacent(&items[j - 1], &items[j]) {
            j += 1;
        }
        f(&items[i..j]);
        i = j;
    }
}

/// At most this many slots share a window: a party that touches one of
/// them waits for the whole run's copies (a few microseconds each).
const MAX_RUN: usize = 64;
/// Whether `advise_many` takes `MADV_GUARD_REMOVE` here.
static REMOVES_WORK: AtomicBool = AtomicBool::new(true);

/// Some stack guard is a `PROT_NONE` protection rather than a marker (its
/// `MADV_GUARD_INSTALL` failed and `install_guard` fell back): a window
/// spanning it would reopen it read-write, so from then on every stack
/// gets a window of its own, inside its own usable range (note 6).
static MPROTECT_GUARDS: AtomicBool = AtomicBool::new(false);

pub(crate) fn note_mprotect_guard() {
    MPROTECT_GUARDS.store(true, Ordering::SeqCst);
}

fn prepare(at: usize, sp: usize) -> Option<Prep> {
    let loc = overflow::locate(sp)?;
    let top = loc.slot + loc.slot_len;
    let lo = sp.checked_sub(MARGIN.load(Ordering::Relaxed))? & !(COPY_ALIGN - 1);
    if lo < loc.slot + GUARD_SIZE || top - lo > MAX_SAVED {
        return None;
    }
    let rec = &overflow::records(&loc)?[loc.index];
    if !rec.buf.load(Ordering::Relaxed).is_null() {
        return None; // a copy not freed yet (cannot happen: `swap_in` frees it)
    }
    // Note 7: only a RESIDENT stack nobody has pinned starts swapping, and
    // from here nobody pins it (lock holders wait for OUT). SeqCst: before
    // the window closes, so whoever faults in it finds SWAPPING.
    if rec.state.compare_exchange(RESIDENT, SWAPPING, Ordering::SeqCst, Ordering::Relaxed).is_err() {
        return None; // pinned by a lock holder
    }
    let len = top - lo;
    let Some(buf) = alloc_copy(len) else {
        rec.state.store(RESIDENT, Ordering::SeqCst);
        return None;
    };
    // Read only once OUT (published by its Release store) or later.
    rec.len.store(len as u32, Ordering::Relaxed);
    rec.buf.store(buf, Ordering::Relaxed);
    Some(Prep {
        at,
        rec,
        usable: loc.slot + GUARD_SIZE,
        slot: loc.slot,
        slot_len: loc.slot_len,
        region: loc.region,
        lo,
        top,
        buf,
        len,
    })
}

/// Swaps out `run`, stacks in adjacent slots, inside one closed window.
fn swap_out_run(run: &[Prep], out: &mut [Option<Swapped>]) {
    let undo = |p: &Prep| {
        p.rec.buf.store(std::ptr::null_mut(), Ordering::Relaxed);
        p.rec.len.store(0, Ordering::Relaxed);
        p.rec.state.store(RESIDENT, Ordering::SeqCst);
        // SAFETY: `buf` came from `alloc_copy(len)` in `prepare`, and nobody
        // else frees it (module notes).
        unsafe { free_copy_raw(p.buf, p.len) };
    };
    // Every record of the run is SWAPPING already (`prepare`).
    // The window: from the first slot's live bytes to the last one's top.
    // Everything in it belongs to these parked coroutines (their dead
    // stack below the live bytes, and the guards between them), so a touch
    // anywhere in it finds a SWAPPING record and waits.
    let (wlo, whi) = (page_floor(run[0].lo), run[run.len() - 1].top);
    WINDOWS.fetch_add(1, Ordering::Relaxed);
    if !close_window(wlo, whi - wlo) {
        run.iter().for_each(undo);
        return;
    }
    // Note 1: from here every access to the window faults and waits.
    let copied: Vec<bool> = run.iter().map(|p| mem_io(false, p.lo, p.buf, p.len)).collect();
    let marked: Vec<bool> = if copied.iter().all(|&c| c) {
        // One install for the run (note 6): each slot's whole usable range,
        // and the guards between them, which have their markers already.
        let (mlo, mhi) = (run[0].usable, run[run.len() - 1].top);
        // SAFETY: (note 2) our own ranges, inaccessible to everyone now;
        // their live bytes are in the copies, and from here any access
        // faults into `on_fault`, which puts them back.
        let ok = unsafe { libc::madvise(mlo as *mut libc::c_void, mhi - mlo, MADV_GUARD_INSTALL) == 0 };
        if !ok {
            // It may have failed part way over several page tables, its
            // zaps done: put every copy back before giving up (still
            // closed, so nobody saw the gap).
            for p in run {
                // SAFETY: as above; removing markers where there are none
                // changes nothing, and the bytes written are the ones read.
                let back =
                    unsafe { libc::madvise(p.usable as *mut libc::c_void, p.top - p.usable, MADV_GUARD_REMOVE) == 0 }
                        && mem_io(true, p.lo, p.buf, p.len);
                if !back {
                    fatal(b"goro: cannot put back a stack whose swap-out failed\n");
                }
            }
        }
        vec![ok; run.len()]
    } else {
        run.iter()
            .zip(&copied)
            .map(|(p, &c)| {
                // SAFETY: as above, one slot at a time.
                c && unsafe { libc::madvise(p.usable as *mut libc::c_void, p.top - p.usable, MADV_GUARD_INSTALL) == 0 }
            })
            .collect()
    };
    open_window(wlo, whi - wlo);
    for (p, &ok) in run.iter().zip(&marked) {
        if !ok {
            // Untouched (the install zaps only once it can mark: a failed
            // one leaves the pages), or the copy failed: nothing was lost.
            undo(p);
            continue;
        }
        SWAPPED_OUT.fetch_add(1, Ordering::Relaxed);
        OUT_NOW.fetch_add(1, Ordering::Relaxed);
        p.rec.was_out.store(true, Ordering::Relaxed);
        SAVED_BYTES.fetch_add(p.len as u64, Ordering::Relaxed);
        // Release: a restorer that sees OUT sees `len` and `buf`.
        p.rec.state.store(OUT, Ordering::Release);
        out[p.at] = Some(Swapped { rec: p.rec, usable: p.usable, top: p.top });
    }
}

/// `/proc/self/mem`, opened by `enable`: reads and writes our own memory
/// whatever its protection (the kernel's `FOLL_FORCE`), which is how the
/// closed window is copied from and into.
static MEM_FD: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(-1);

/// Copies `len` bytes between `addr` (in a closed window) and `buf`
/// through `/proc/self/mem`: `write` false reads `addr` into `buf`.
/// Async-signal-safe (system calls only).
fn mem_io(write: bool, addr: usize, buf: *mut u8, len: usize) -> bool {
    let fd = MEM_FD.load(Ordering::Relaxed);
    let mut done = 0;
    while done < len {
        // SAFETY: `buf` holds `len` bytes (callers' contract); the kernel
        // checks `addr` (our own mapping) and fails rather than fault.
        let n = unsafe {
            let (b, at) = (buf.add(done) as *mut libc::c_void, (addr + done) as libc::off64_t);
            if write {
                libc::pwrite64(fd, b, len - done, at)
            } else {
                libc::pread64(fd, b, len - done, at)
            }
        };
        if n <= 0 {
            // SAFETY: reading errno has no preconditions.
            if n < 0 && unsafe { *libc::__errno_location() } == libc::EINTR {
                continue;
            }
            return false;
        }
        done += n as usize;
    }
    true
}

/// Makes `[plo, plo + plen)` inaccessible (note 1). False if the kernel
/// refused (it may need a mapping more: `vm.max_map_count`).
fn close_window(plo: usize, plen: usize) -> bool {
    // SAFETY: inside a slot's usable range (callers check), mapped by us;
    // no access is lost: every one faults into `on_fault` and waits.
    unsafe { libc::mprotect(plo as *mut libc::c_void, plen, libc::PROT_NONE) == 0 }
}

/// Reopens a closed window (read-write, as every stack is).
fn open_window(plo: usize, plen: usize) {
    // SAFETY: as in `close_window`; guard markers are not protections,
    // they stay. It only merges the mapping split by `close_window`.
    if unsafe { libc::mprotect(plo as *mut libc::c_void, plen, libc::PROT_READ | libc::PROT_WRITE) } != 0 {
        fatal(b"goro: cannot reopen a swapped stack (mprotect failed)\n");
    }
}

/// Brings a swapped stack back (if no fault did already) and frees its
/// saved copy. Home thread, before it resumes the coroutine.
pub(crate) fn swap_in(s: Swapped) {
    restore_or_wait(s.rec, s.usable, s.top);
    free_copy(s.rec);
}

/// [`swap_in`] for several stacks at once (note 8): those in adjacent
/// slots come back inside one closed window. Home thread, before it
/// resumes any of their coroutines.
pub(crate) fn swap_in_all(list: &mut [Swapped]) {
    if list.len() < 2 || MPROTECT_GUARDS.load(Ordering::SeqCst) {
        list.iter().for_each(|s| swap_in(*s));
        return;
    }
    // Claim what is OUT with no editors now (note 7); the rest (restored by
    // a fault meanwhile, or being edited) goes the one-by-one way below.
    let claimed =
        |s: &Swapped| s.rec.state.compare_exchange(OUT, RESTORING, Ordering::Acquire, Ordering::Acquire).is_ok();
    let (mut mine, others): (Vec<Swapped>, Vec<Swapped>) = list.iter().partition(|s| claimed(s));
    mine.sort_unstable_by_key(|s| s.usable);
    for_each_run(&mine, MAX_RUN, |a, b| b.usable - GUARD_SIZE == a.top, restore_run);
    for s in &others {
        restore_or_wait(s.rec, s.usable, s.top);
    }
    list.iter().for_each(|s| free_copy(s.rec));
}

/// We took every record of `run` OUT -> RESTORING (one stack, or stacks
/// in adjacent slots: note 8): markers off, bytes back, RESIDENT, all
/// inside one closed window, so that nobody sees a fresh page before its
/// bytes are back (a reader meeting it empty would read zeros: note 3).
/// Async-signal-safe (system calls only).
fn restore_run(run: &[Swapped]) {
    let lo_of = |s: &Swapped| s.top - s.rec.len.load(Ordering::Relaxed) as usize;
    let (wlo, whi) = (page_floor(lo_of(&run[0])), run[run.len() - 1].top);
    // A closed window needs a mapping more for a moment: if the kernel
    // refuses one, go one stack at a time, and wait for others to close
    // theirs.
    let mut tries = 0;
    while !close_window(wlo, whi - wlo) {
        if run.len() > 1 {
            run.iter().for_each(|s| restore_run(std::slice::from_ref(s)));
            return;
        }
        tries += 1;
        if tries == 10_000 {
            fatal(b"goro: cannot restore a swapped stack (mprotect failed: vm.max_map_count reached?)\n");
        }
        // SAFETY: sched_yield has no preconditions.
        unsafe { libc::sched_yield() };
    }
    RESTORE_WINDOWS.fetch_add(1, Ordering::Relaxed);
    // Each slot's own usable range (not the guards between the slots: they
    // keep their markers), in one call where the kernel allows it.
    // SAFETY: see below, for all of them at once.
    let removed = run.len() > 1 && unsafe { remove_markers(run) };
    for s in run {
        let (len, buf) = (s.rec.len.load(Ordering::Relaxed) as usize, s.rec.buf.load(Ordering::Relaxed));
        // SAFETY: the slot's own usable range, closed, its record RESTORING
        // (ours); removing the markers makes it fresh zero-fill memory that
        // nobody can touch until the window opens. Below the live bytes the
        // markers cover the dead stack (note 6): zero-fill is all it ever
        // held that counts. (Removing them twice, after a batch that failed
        // part way, changes nothing.)
        if !removed && unsafe { libc::madvise(s.usable as *mut libc::c_void, s.top - s.usable, MADV_GUARD_REMOVE) } != 0
        {
            fatal(b"goro: cannot restore a swapped stack (MADV_GUARD_REMOVE failed)\n");
        }
        // `buf` holds the `len` saved bytes (freed only once RESIDENT,
        // module notes).
        if !mem_io(true, s.top - len, buf, len) {
            fatal(b"goro: cannot restore a swapped stack (writing /proc/self/mem failed)\n");
        }
    }
    open_window(wlo, whi - wlo);
    for s in run {
        s.rec.state.store(RESIDENT, Ordering::Release);
    }
}

/// `MADV_GUARD_REMOVE` over the usable range of every slot of `run`, in one
/// `process_madvise`; false if that did not cover them all. Out of line, and
/// only for runs of several slots: a fault handler's restore (one slot) may
/// run on a plain thread's small alternate signal stack (std's, a few KiB),
/// where this array (1 KiB, more in an unoptimised build) overflowed it.
///
/// # Safety
///
/// As for `restore_run`'s per-slot removal: the run is ours to restore and
/// inside a closed window.
#[inline(never)]
unsafe fn remove_markers(run: &[Swapped]) -> bool {
    let mut ranges = [libc::iovec { iov_base: std::ptr::null_mut(), iov_len: 0 }; MAX_RUN];
    for (r, s) in ranges.iter_mut().zip(run) {
        *r = libc::iovec { iov_base: s.usable as *mut libc::c_void, iov_len: s.top - s.usable };
    }
    // SAFETY: the caller's contract, for each range.
    unsafe { super::advise_many(&ranges[..run.len()], MADV_GUARD_REMOVE, &REMOVES_WORK) }
}

fn free_copy(rec: &SlotRecord) {
    let buf = rec.buf.swap(std::ptr::null_mut(), Ordering::Relaxed);
    if !buf.is_null() {
        let len = rec.len.swap(0, Ordering::Relaxed) as usize;
        SAVED_BYTES.fetch_sub(len as u64, Ordering::Relaxed);
        OUT_NOW.fetch_sub(1, Ordering::Relaxed);
        // SAFETY: `buf` came from `alloc_copy(len)` in `swap_out`; the
        // record is RESIDENT, so no restorer or editor reads it any more,
        // and we took it out of the record (only the home and `release`
        // free, never both: `release` runs when the stack is dropped, after
        // the home's last `swap_in`).
        unsafe { free_copy_raw(buf, len) };
    }
}

/// The stack of `slot` is being freed: if it still has a swap record
/// entry, put the slot back to plain resident memory. (A swapped stack
/// is restored before its coroutine runs again, and a coroutine's stack is
/// freed only after it ran to its end, or after `force_unwind` ran on it,
/// which faults it back; this only frees the copy.) True if the stack was
/// ever swapped out since its slot was last freed: the caller then gives
/// back the slot's top `COLD_BYTES` before reusing it.
pub(crate) fn release(slot: usize) -> bool {
    if !enabled() {
        return false;
    }
    let Some(loc) = overflow::locate(slot) else { return false };
    let Some(rec) = overflow::record_if_any(&loc) else { return false };
    if !rec.was_out.load(Ordering::Relaxed) {
        return false;
    }
    let top = loc.slot + loc.slot_len;
    restore_or_wait(rec, loc.slot + GUARD_SIZE, top);
    free_copy(rec);
    rec.was_out.store(false, Ordering::Relaxed);
    // A stack that was swapped out belonged to a long-parked coroutine:
    // its slot goes back cold, so a mass wake-up of parked coroutines
    // (each restored, run and finished) does not leave a page each behind
    // in the free lists. The caller gives back its top `COLD_BYTES`, a
    // batch of slots at a time (`stack` invariant 8).
    true
}

/// Makes the record RESIDENT: restores the bytes if it is OUT, waits if
/// another thread is restoring. Never called while SWAPPING by the home.
fn restore_or_wait(rec: &'static SlotRecord, usable: usize, top: usize) {
    loop {
        match rec.state.load(Ordering::Acquire) {
            w if w & PHASE == RESIDENT => return,
            // OUT with no editors (note 7): restore it.
            OUT => {
                if rec.state.compare_exchange(OUT, RESTORING, Ordering::Acquire, Ordering::Acquire).is_ok() {
                    restore_run(&[Swapped { rec, usable, top }]);
                    return;
                }
            }
            _ => {
                // SAFETY: sched_yield has no preconditions.
                unsafe { libc::sched_yield() };
            }
        }
    }
}

/// Saved copies start at a 64-byte boundary of the stack and of the heap,
/// so an object edited in place in the copy (note 5) keeps its alignment.
const COPY_ALIGN: usize = 64;

fn alloc_copy(len: usize) -> Option<*mut u8> {
    let layout = std::alloc::Layout::from_size_align(len, COPY_ALIGN).ok()?;
    // SAFETY: `len` > 0 (the range holds at least the margin).
    let p = unsafe { std::alloc::alloc(layout) };
    (!p.is_null()).then_some(p)
}

/// # Safety
///
/// `buf` came from `alloc_copy(len)` and is freed once.
unsafe fn free_copy_raw(buf: *mut u8, len: usize) {
    // SAFETY: the layout `alloc_copy` used (it succeeded, so it is valid).
    unsafe { std::alloc::dealloc(buf, std::alloc::Layout::from_size_align_unchecked(len, COPY_ALIGN)) };
}

thread_local! {
    /// Stacks this thread uses in its lock section (notes 5, 7): (lo, top,
    /// buf, record) of each copy it edits (its live bytes `lo..top` are at
    /// `buf`), (lo, top, 0, record) of each resident stack it pinned (its
    /// usable range); and how many. `const`, no destructor: readable from
    /// the signal handler.
    static EDITS: Cell<[Edit; MAX_EDITS]> = const { Cell::new([(0, 0, 0, 0); MAX_EDITS]) };
    static NEDITS: Cell<usize> = const { Cell::new(0) };
}
const MAX_EDITS: usize = 8;
type Edit = (usize, usize, usize, usize);

/// Runs `f` on this thread's first `n` entries of `EDITS`, read in place
/// (a `Cell` of the whole array would copy all of it at each read: a lock
/// section redirects every access to a queued party, 14 per `pingpong`
/// round trip).
#[inline]
fn with_edits<R>(n: usize, f: impl FnOnce(&[Cell<Edit>]) -> R) -> R {
    EDITS.with(|e| {
        let all: &Cell<[Edit]> = e;
        f(&all.as_slice_of_cells()[..n])
    })
}

/// Where a channel-lock holder should access the object at `addr` (of
/// alignment at most `COPY_ALIGN`): `addr` itself, or, if `addr` lies in a
/// stack that is swapped out, the same object in the saved copy, which
/// this thread then edits (note 5) until `end_edits` (the lock's release).
/// Either way the stack stays as it is until then (note 7: a resident one
/// is pinned, a swapped one keeps its copy), so every address this returns
/// for one stack in one lock section is of the same kind. So a hand-off to a swapped-out coroutine costs no fault, no system
/// call and no page: the coroutine finds the result when its copy comes
/// back. Callers check `enabled()` first.
#[inline(never)]
pub(crate) fn redirect(addr: usize) -> usize {
    if on_own_stack(addr) {
        return addr;
    }
    let n = NEDITS.with(Cell::get);
    // A stack this section already uses (the usual case: a queue's links
    // and a party's op are reached one access at a time): no lookup.
    let hit = with_edits(n, |edits| {
        edits.iter().find_map(|e| {
            let (lo, top, buf, _) = e.get();
            (addr >= lo && addr < top).then(|| if buf == 0 { addr } else { buf + (addr - lo) })
        })
    });
    if let Some(at) = hit {
        return at;
    }
    let Some(loc) = overflow::locate(addr) else { return addr };
    if addr < loc.slot + GUARD_SIZE {
        return addr;
    }
    // Made if its region has none yet: a stack reached here is always
    // pinned or edited, even the first one swapped in its region. (Taken
    // unpinned, a real address could meet a copy address of the same stack
    // later in the section, if the region's first swap-out came between:
    // note 7's abort.)
    let Some(rec) = overflow::records(&loc).map(|r| &r[loc.index]) else { return addr };
    let me = rec as *const SlotRecord as usize;
    if uses(n, me) {
        // Ours already: pinned (resident), or a copy we edit (`addr` below
        // its live bytes: not an object of a parked party).
        return addr;
    }
    if n == MAX_EDITS {
        // A lock section touching this many parked stacks at once does not
        // happen (a close counts each party out as it goes, `fail_ops`);
        // if it did, a real address unpinned is still safe: a touch of a
        // stack swapped meanwhile faults, and the handler restores it (we
        // hold no use of it to wait for).
        return addr;
    }
    loop {
        let w = rec.state.load(Ordering::Acquire);
        if !matches!(w & PHASE, RESIDENT | OUT) {
            // SWAPPING or RESTORING: system calls away from done, with no
            // lock to wait for; yield, as the handler's waits do, so that a
            // home sharing our core gets to finish (a swap-out holds its
            // whole batch SWAPPING while it prepares it).
            // SAFETY: sched_yield has no preconditions.
            unsafe { libc::sched_yield() };
            continue;
        }
        if rec.state.compare_exchange_weak(w, w + USER, Ordering::Acquire, Ordering::Relaxed).is_err() {
            continue;
        }
        // A user now (note 7): the phase, and an OUT record's copy, stay as
        // they are until `end_edits`.
        let (entry, at) = if w & PHASE == RESIDENT {
            ((loc.slot + GUARD_SIZE, loc.slot + loc.slot_len, 0, me), addr)
        } else {
            EDITED.fetch_add(1, Ordering::Relaxed);
            let top = loc.slot + loc.slot_len;
            let lo = top - rec.len.load(Ordering::Relaxed) as usize;
            let buf = rec.buf.load(Ordering::Relaxed) as usize;
            ((lo, top, buf, me), if addr < lo { addr } else { buf + (addr - lo) })
        };
        with_edits(n + 1, |edits| edits[n].set(entry));
        NEDITS.with(|c| c.set(n + 1));
        return at;
    }
}

thread_local! {
    /// The usable range of the goro stack this thread last ran on (0, 0:
    /// none, a plain thread's), for `on_own_stack`. `const`, no destructor.
    static OWN: Cell<(usize, usize)> = const { Cell::new((0, 0)) };
}

/// Whether `addr` lies in the stack this thread is running on. That stack
/// needs no pin: only a parked coroutine's stack is ever swapped out, and
/// the caller, in a lock section, parks only after it ends. (The caller's
/// own op is reached that way at every park: half the lookups of a
/// hand-off.) The range is found again, once, after each switch to
/// another stack: the one containing a local of this frame.
#[inline]
fn on_own_stack(addr: usize) -> bool {
    let here = std::hint::black_box(0u8);
    let sp = &here as *const u8 as usize;
    let (mut lo, mut top) = OWN.with(Cell::get);
    if sp < lo || sp >= top {
        (lo, top) = match overflow::locate(sp) {
            Some(l) if sp >= l.slot + GUARD_SIZE => (l.slot + GUARD_SIZE, l.slot + l.slot_len),
            _ => (0, 0),
        };
        OWN.with(|c| c.set((lo, top)));
    }
    addr >= lo && addr < top
}

/// The channel lock is being released: this thread stops using every stack
/// it pinned or edited under it (note 7; Release: the next restorer sees
/// the edits).
#[inline(never)]
pub(crate) fn end_edits() {
    let n = NEDITS.with(Cell::get);
    if n == 0 {
        return;
    }
    with_edits(n, |edits| {
        for e in edits {
            // SAFETY: records are leaked, never freed (overflow.rs).
            let rec = unsafe { &*(e.get().3 as *const SlotRecord) };
            // Release: the next restorer (or swapper) sees our edits.
            rec.state.fetch_sub(USER, Ordering::Release);
        }
    });
    NEDITS.with(|c| c.set(0));
}

/// Whether this thread uses `rec`'s stack now, pinned or editing (a fault
/// on that stack by one of its users would wait for itself).
fn editing(rec: &SlotRecord) -> bool {
    let n = NEDITS.try_with(Cell::get).unwrap_or(0);
    n > 0 && uses(n, rec as *const SlotRecord as usize)
}

/// Whether one of this thread's first `n` edit entries is for the record at
/// `rec` (pinned or edited in this lock section).
fn uses(n: usize, rec: usize) -> bool {
    with_edits(n, |edits| edits.iter().any(|e| e.get().3 == rec))
}

fn fatal(msg: &[u8]) -> ! {
    // SAFETY: write(2) and abort(3) are async-signal-safe.
    unsafe {
        libc::write(2, msg.as_ptr() as *const libc::c_void, msg.len());
        libc::abort();
    }
}

thread_local! {
    /// The last address this thread faulted on in a slot found resident,
    /// and how many times in a row: a bound, so a fault that is not a
    /// swap's (a goro bug) cannot loop for ever.
    static RETRY_AT: std::cell::Cell<(usize, u32)> = const { std::cell::Cell::new((0, 0)) };
}

/// The SIGSEGV handler's first question: is `addr` in the usable range of
/// a swapped (or swapping) stack? Then restore it (or wait for whoever
/// does) and return true: the faulting access is retried. Async-signal-
/// safe: atomics, `const` thread-locals without destructors, system calls.
pub(crate) fn on_fault(addr: usize) -> bool {
    if !ENABLED.load(Ordering::Acquire) {
        return false;
    }
    let Some(loc) = overflow::locate(addr) else { return false };
    if addr < loc.slot + GUARD_SIZE {
        return false; // the real guard: an overflow
    }
    let Some(rec) = overflow::record_if_any(&loc) else { return false };
    let top = loc.slot + loc.slot_len;
    loop {
        let w = rec.state.load(Ordering::Acquire);
        match w & PHASE {
            OUT if w == OUT => {
                if rec.state.compare_exchange(OUT, RESTORING, Ordering::Acquire, Ordering::Acquire).is_ok() {
                    restore_run(&[Swapped { rec, usable: loc.slot + GUARD_SIZE, top }]);
                    FAULT_RESTORES.fetch_add(1, Ordering::Relaxed);
                    return true;
                }
            }
            // OUT with editors (note 7: wait for them), SWAPPING, RESTORING.
            OUT | SWAPPING | RESTORING => {
                if editing(rec) {
                    fatal(b"goro bug: a channel-lock holder touched a swapped stack it is editing the copy of\n");
                }
                // SAFETY: sched_yield has no preconditions.
                unsafe { libc::sched_yield() };
            }
            _ => {
                // Restored between our fault and now: retry the access. A
                // thousand of these in a row is not a race any more.
                let n = RETRY_AT.try_with(|r| {
                    let (at, n) = r.get();
                    let n = if at == addr { n + 1 } else { 1 };
                    r.set((addr, n));
                    n
                });
                return n.is_ok_and(|n| n < 1000);
            }
        }
    }
}
