//! Stack-overflow reports: a SIGSEGV/SIGBUS handler that recognises goro
//! stack guards (the `GUARD_SIZE` bytes at the start of every slot, faulted
//! anywhere, not just in their top page) and says which coroutine
//! overflowed, instead of a bare crash.
//!
//! Owns: the region table (every stack reservation: start, length, slot
//! length, and the swap records of its slots once asked for), written under
//! a lock but read lock-free by the handler; the directory that finds a
//! region from an address in O(1); and the handler itself.
//!
//! The handler runs on a per-worker alternate signal stack (the faulting
//! stack has no room left). It first lets `swap.rs` restore a parked stack
//! that was swapped out (a tripwire fault, not an overflow); otherwise it
//! only reads atomics and thread-locals and calls `write(2)` and
//! `abort(3)`: async-signal-safe. A fault that is not on a goro guard is
//! passed to the handler installed before ours (Rust's own main-thread
//! overflow report keeps working), or to the default action.
//!
//! Directory: one word per 64 MiB granule of the address space, holding up
//! to two region indices (+1). Regions are at least `RESERVATION` (64 MiB)
//! long and never overlap, so a granule meets at most two of them. It is
//! one `MAP_NORESERVE` mapping made at the first registration (only the
//! granules in use are ever committed); if that fails, lookups scan the
//! table as before.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Once;

use super::GUARD_SIZE;

/// The running coroutine as the overflow report names it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Running<'a> {
    pub(crate) id: u64,
    pub(crate) name: Option<&'a str>,
    pub(crate) stack_size: usize,
}

/// Calls its argument with the coroutine running on this thread, if any.
/// Must be async-signal-safe: it may only read thread-locals and memory the
/// running coroutine keeps alive.
pub(crate) type LabelHook = fn(&mut dyn FnMut(Running<'_>));

/// Registered once by the scheduler at worker start-up (`set_label_hook`):
/// the stack allocator names nothing above it. `OnceLock::get` is a single
/// Acquire load, fine in a signal handler.
static LABEL: std::sync::OnceLock<LabelHook> = std::sync::OnceLock::new();

/// Registers how the handler names the running coroutine (the first
/// registration wins; every worker registers the same function).
pub(crate) fn set_label_hook(hook: LabelHook) {
    let _ = LABEL.set(hook);
}

const MAX_REGIONS: usize = 1 << 16;
/// Per region: start, length, slot length, and its slots' swap records (a
/// leaked `[SlotRecord]`, 0 until `records` first asks for it).
static REGIONS: [[AtomicUsize; 4]; MAX_REGIONS] = [const { [const { AtomicUsize::new(0) }; 4] }; MAX_REGIONS];
static NREGIONS: AtomicUsize = AtomicUsize::new(0);
static REGISTER: parking_lot::Mutex<()> = parking_lot::Mutex::new(());

const GRANULE_SHIFT: u32 = 26; // 64 MiB, the smallest reservation
const DIR_LEN: usize = 1 << 22; // granules of a 48-bit address space
static DIR: std::sync::atomic::AtomicPtr<AtomicU64> = std::sync::atomic::AtomicPtr::new(std::ptr::null_mut());

/// Records a new reservation (called with its class lock held).
pub(crate) fn register_region(start: usize, len: usize, slot_len: usize) {
    debug_assert!(len >= 1 << GRANULE_SHIFT, "goro bug: a reservation below the directory's granule");
    let _g = REGISTER.lock();
    let n = NREGIONS.load(Ordering::Relaxed);
    if n >= MAX_REGIONS {
        return; // beyond the table: overflows there are reported as plain faults
    }
    REGIONS[n][0].store(start, Ordering::Relaxed);
    REGIONS[n][1].store(len, Ordering::Relaxed);
    REGIONS[n][2].store(slot_len, Ordering::Relaxed);
    // Release: a reader that sees the new count sees the entry.
    NREGIONS.store(n + 1, Ordering::Release);
    let mut dir = DIR.load(Ordering::Relaxed);
    if dir.is_null() {
        // SAFETY: a fresh anonymous mapping, zero-filled (every entry
        // empty); leaked on purpose (the directory lives as long as the
        // process, like the reservations it indexes).
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                DIR_LEN * 8,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return; // lookups scan the table
        }
        dir = p as *mut AtomicU64;
        DIR.store(dir, Ordering::Release);
    }
    for g in (start >> GRANULE_SHIFT)..=((start + len - 1) >> GRANULE_SHIFT) {
        if g >= DIR_LEN {
            break; // beyond 48 bits: found by the scan
        }
        // SAFETY: `g < DIR_LEN`, inside the directory mapping.
        let e = unsafe { &*dir.add(g) };
        let v = e.load(Ordering::Relaxed);
        let idx = n as u64 + 1;
        // At most two regions meet a granule (module doc), and writers hold
        // REGISTER: fill the free half.
        let v = if v & 0xffff_ffff == 0 { v | idx } else { v | (idx << 32) };
        e.store(v, Ordering::Release);
    }
}

/// Where an address lies in a goro stack reservation.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Loc {
    pub(crate) region: usize,
    pub(crate) slot: usize,
    pub(crate) slot_len: usize,
    /// The slot's index in its region.
    pub(crate) index: usize,
}

fn in_region(i: usize, addr: usize) -> Option<Loc> {
    let start = REGIONS[i][0].load(Ordering::Relaxed);
    let len = REGIONS[i][1].load(Ordering::Relaxed);
    if addr >= start && addr < start + len {
        let slot_len = REGIONS[i][2].load(Ordering::Relaxed);
        let index = (addr - start) / slot_len;
        return Some(Loc { region: i, slot: start + index * slot_len, slot_len, index });
    }
    None
}

/// The slot containing `addr`, if it is in a goro stack reservation.
/// Lock-free and async-signal-safe: the directory, else a scan of the
/// table, newest regions first (most lookups hit them).
pub(crate) fn locate(addr: usize) -> Option<Loc> {
    let dir = DIR.load(Ordering::Acquire);
    let g = addr >> GRANULE_SHIFT;
    if !dir.is_null() && g < DIR_LEN {
        // SAFETY: `g < DIR_LEN`, inside the directory mapping.
        let v = unsafe { &*dir.add(g) }.load(Ordering::Acquire);
        for idx in [v & 0xffff_ffff, v >> 32] {
            if idx != 0 {
                if let Some(l) = in_region(idx as usize - 1, addr) {
                    return Some(l);
                }
            }
        }
        return None;
    }
    let n = NREGIONS.load(Ordering::Acquire);
    (0..n).rev().find_map(|i| in_region(i, addr))
}

/// The slot (start, slot length) containing `addr`, if it is in a goro stack
/// reservation.
pub(crate) fn slot_of(addr: usize) -> Option<(usize, usize)> {
    locate(addr).map(|l| (l.slot, l.slot_len))
}

/// The swap records of `loc`'s region, made (zeroed: every slot resident)
/// on first use. Not for the signal handler: it allocates.
pub(crate) fn records(loc: &Loc) -> Option<&'static [super::swap::SlotRecord]> {
    let col = &REGIONS[loc.region][3];
    let len = REGIONS[loc.region][1].load(Ordering::Relaxed) / loc.slot_len;
    let mut p = col.load(Ordering::Acquire);
    if p == 0 {
        let _g = REGISTER.lock();
        p = col.load(Ordering::Acquire);
        if p == 0 {
            let v: Box<[super::swap::SlotRecord]> = (0..len).map(|_| super::swap::SlotRecord::new()).collect();
            p = Box::leak(v).as_ptr() as usize;
            col.store(p, Ordering::Release);
        }
    }
    // SAFETY: `p` is a leaked slice of `len` records, never freed.
    Some(unsafe { std::slice::from_raw_parts(p as *const super::swap::SlotRecord, len) })
}

/// The swap record of `loc`'s slot if its region has records (async-signal-
/// safe: no allocation).
pub(crate) fn record_if_any(loc: &Loc) -> Option<&'static super::swap::SlotRecord> {
    let p = REGIONS[loc.region][3].load(Ordering::Acquire);
    if p == 0 {
        return None;
    }
    // SAFETY: as in `records`; `index` is below the region's slot count.
    Some(unsafe { &*(p as *const super::swap::SlotRecord).add(loc.index) })
}

static INSTALL: Once = Once::new();
static mut OLD_SEGV: std::mem::MaybeUninit<libc::sigaction> = std::mem::MaybeUninit::zeroed();
static mut OLD_BUS: std::mem::MaybeUninit<libc::sigaction> = std::mem::MaybeUninit::zeroed();

/// Installs the handler (once per process) and an alternate signal stack for
/// the calling thread (a worker).
pub(crate) fn install_for_thread() {
    const ALT: usize = 64 * 1024;
    // SAFETY: a fresh private mapping for this thread's alternate signal
    // stack; it is deliberately leaked (worker threads live as long as their
    // runtime, and a signal may arrive until the very end).
    unsafe {
        let p = libc::mmap(
            std::ptr::null_mut(),
            ALT,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        if p != libc::MAP_FAILED {
            let ss = libc::stack_t { ss_sp: p, ss_flags: 0, ss_size: ALT };
            libc::sigaltstack(&ss, std::ptr::null_mut());
        }
    }
    INSTALL.call_once(|| {
        // SAFETY: installing a signal handler; the old actions are saved in
        // statics written only here, before our handler can run.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = handler as *const () as usize;
            sa.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(libc::SIGSEGV, &sa, (*std::ptr::addr_of_mut!(OLD_SEGV)).as_mut_ptr());
            libc::sigaction(libc::SIGBUS, &sa, (*std::ptr::addr_of_mut!(OLD_BUS)).as_mut_ptr());
        }
    });
}

/// Appends `s` to `buf` at `*n` (no allocation: signal context).
fn put(buf: &mut [u8; 512], n: &mut usize, s: &[u8]) {
    for &b in s {
        if *n < buf.len() {
            buf[*n] = b;
            *n += 1;
        }
    }
}

fn put_num(buf: &mut [u8; 512], n: &mut usize, mut v: u64) {
    let mut d = [0u8; 20];
    let mut i = d.len();
    loop {
        i -= 1;
        d[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    put(buf, n, &d[i..]);
}

extern "C" fn handler(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo for SIGSEGV/SIGBUS.
    let addr = unsafe { (*info).si_addr() } as usize;
    // A parked stack that was swapped out, touched: restored, and the
    // access is retried when we return.
    if super::swap::on_fault(addr) {
        return;
    }
    if let Some((slot, _)) = slot_of(addr) {
        // Anywhere in the guard (the first GUARD_SIZE bytes of the slot): a
        // frame larger than a page may skip its top pages.
        if addr < slot + GUARD_SIZE {
            let mut buf = [0u8; 512];
            let mut n = 0;
            put(&mut buf, &mut n, b"\ngoro: coroutine ");
            let mut named = false;
            if let Some(label) = LABEL.get() {
                label(&mut |l: Running<'_>| {
                    named = true;
                    put(&mut buf, &mut n, b"#");
                    put_num(&mut buf, &mut n, l.id);
                    if let Some(name) = l.name {
                        put(&mut buf, &mut n, b" \"");
                        put(&mut buf, &mut n, name.as_bytes());
                        put(&mut buf, &mut n, b"\"");
                    }
                    put(&mut buf, &mut n, b" has overflowed its stack (stack size ");
                    put_num(&mut buf, &mut n, l.stack_size as u64);
                    put(&mut buf, &mut n, b" bytes)");
                });
            }
            if !named {
                put(&mut buf, &mut n, b"stack segment has overflowed");
            }
            put(
                &mut buf,
                &mut n,
                b"\ngoro: raise it with goro::Builder::stack_size or RuntimeBuilder::stack_size, \
or grow on demand with goro::stack::maybe_grow\n",
            );
            // SAFETY: write(2) and abort(3) are async-signal-safe.
            unsafe {
                libc::write(2, buf.as_ptr() as *const libc::c_void, n);
                libc::abort();
            }
        }
    }
    // Not ours: chain to the previous handler.
    // SAFETY: the saved actions were written once before our handler was
    // installed; calling or restoring them is what the previous owner
    // expects.
    unsafe {
        let old = if sig == libc::SIGBUS { &*std::ptr::addr_of!(OLD_BUS) } else { &*std::ptr::addr_of!(OLD_SEGV) };
        let old = old.assume_init_ref();
        if old.sa_sigaction == libc::SIG_DFL || old.sa_sigaction == libc::SIG_IGN {
            // Restore the default and return: the fault repeats and the
            // default action (core dump / kill by signal) happens.
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = libc::SIG_DFL;
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        } else if old.sa_flags & libc::SA_SIGINFO != 0 {
            let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                std::mem::transmute(old.sa_sigaction);
            f(sig, info, ctx);
        } else {
            let f: extern "C" fn(libc::c_int) = std::mem::transmute(old.sa_sigaction);
            f(sig);
        }
    }
}
