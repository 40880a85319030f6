// Design notes for maintainers.
//
// Owns: `CoRef`, the counted pointer to a coroutine's control block
// (`CoInner`), and the memory those blocks live in.
//
// Why not `Arc<CoInner>` from the global allocator: every spawn allocates
// a block on the spawner's thread and every exit frees one on the
// coroutine's home. Under glibc each thread allocates from its own arena,
// and a thread arena grows one page at a time with an `mprotect`, which
// takes the process's mmap lock for writing; every page fault of every
// other worker (each fresh stack is one) waits on that lock, and the
// spawner waits on their faults. A free from another thread takes the
// arena's lock. Measured on this project's 2-core box (`strace -c -f`, a
// loop spawning 200 000 coroutines that park): 21 600 `mprotect`s, and
// the spawn loop ran 5-6 times faster with every thread on glibc's main
// arena (`GLIBC_TUNABLES=glibc.malloc.arena_max=1`, which grows by 128 KiB
// at a time). Blocks of one size need none of that.
//
// Layout: a `Block` is the count and the `CoInner`. Blocks are carved from
// chunks of `CHUNK` bytes taken from the global allocator (large enough
// that glibc maps each with one `mmap`), `BATCH` at a time. Chunks are
// never given back: the memory of freed blocks is reused by later
// coroutines, so a program keeps the memory of its peak of live
// coroutines' blocks (336 bytes each), as an allocator's arena would.
//
// Free blocks: each thread keeps a cache, a LIFO list threaded through the
// free blocks' first word (the most recently freed block, still in cache,
// is the next one handed out). A cache that grows past `2 * BATCH` moves
// `BATCH` blocks to the shared pool; an empty cache takes a batch from the
// pool, else carves a new batch. So a spawner fed by workers' frees takes
// one lock per `BATCH` spawns, and a block freed on one thread is reused
// on another through the pool.
//
// Invariants:
//  1. A block is in exactly one place: live (count > 0, owned by its
//     `CoRef`s), in one thread's cache, or in one batch of the pool.
//  2. A free block is read and written only through its first word (the
//     list link), and only by the thread whose cache, or the pool lock
//     holder whose batch, holds it.
//  3. The count follows `Arc`'s rules: a clone adds Relaxed, a drop
//     subtracts Release, and the one that reaches 0 fences Acquire before
//     dropping the `CoInner`, so every use through any other reference
//     happens before the drop. There are no weak references.
//  4. A thread whose cache is gone (a `CoRef` dropped by a thread-local
//     destructor after the cache's own) frees straight into the pool.
//
// Lock order: `POOL` is a leaf; nothing is taken under it, and the
// `CoInner` is dropped before any cache or pool is touched.

use std::alloc::Layout;
use std::cell::Cell;
use std::marker::PhantomData;
use std::mem::{offset_of, size_of};
use std::ops::Deref;
use std::ptr::{self, NonNull};
use std::sync::atomic::{self, AtomicUsize, Ordering};

use parking_lot::Mutex;

use super::CoInner;

/// Blocks handed between a thread's cache and the pool at a time.
const BATCH: usize = 64;
/// Bytes of blocks carved from the global allocator at a time.
const CHUNK: usize = 1 << 20;

#[repr(C)]
struct Block {
    count: AtomicUsize,
    inner: CoInner,
}

/// A free block, seen through its first word (invariant 2).
struct Free {
    next: *mut Free,
}

const _: () = assert!(size_of::<Block>() >= size_of::<Free>());
const _: () = assert!(std::mem::align_of::<Block>() >= std::mem::align_of::<Free>());

/// A counted reference to a coroutine control block: `Arc<CoInner>`'s
/// shape, with the block from this module's slab (module note).
pub(crate) struct CoRef {
    ptr: NonNull<Block>,
    _owns: PhantomData<Block>,
}

// SAFETY: a `CoRef` gives shared access to a `CoInner`, which is `Send +
// Sync` (its own impls argue why), and its count is atomic; that is what
// `Arc<CoInner>: Send + Sync` rests on too.
unsafe impl Send for CoRef {}
// SAFETY: as above.
unsafe impl Sync for CoRef {}

impl CoRef {
    /// A new block holding `inner`, counted once. Inlined, and the fields
    /// written one by one: the spawner's `CoInner` is then copied into the
    /// block once, where a call and a `Block` built on the stack copied it
    /// twice (`callgrind`, skynet 100 000: 245 M -> 237 M instructions).
    #[inline(always)]
    pub(crate) fn new(inner: CoInner) -> CoRef {
        let ptr = alloc();
        // SAFETY: `alloc` returns a free block, now ours alone (invariant
        // 1): properly aligned memory for one `Block`, not read as a `Free`
        // any more.
        unsafe {
            let b = ptr.as_ptr();
            (&raw mut (*b).count).write(AtomicUsize::new(1));
            (&raw mut (*b).inner).write(inner);
        }
        CoRef { ptr, _owns: PhantomData }
    }

    /// The control block's address, as `Arc::as_ptr`.
    pub(crate) fn as_ptr(this: &CoRef) -> *const CoInner {
        // SAFETY: `ptr` is a live block; taking a field's address reads
        // nothing.
        unsafe { &raw const (*this.ptr.as_ptr()).inner }
    }

    /// A reference from a block's address, as `Arc::from_raw`.
    ///
    /// # Safety
    ///
    /// `p` came from `as_ptr` of a `CoRef`, and the caller owns one count
    /// of that block that no `CoRef` holds (one left with a parked state,
    /// or added by `increment_strong_count`).
    pub(crate) unsafe fn from_raw(p: *const CoInner) -> CoRef {
        // SAFETY: `p` points at the `inner` field of a live block (the
        // caller's contract), so stepping back by its offset stays inside
        // that block and gives its start.
        let block = unsafe { p.byte_sub(offset_of!(Block, inner)) } as *mut Block;
        // SAFETY: derived from a non-null block pointer.
        CoRef { ptr: unsafe { NonNull::new_unchecked(block) }, _owns: PhantomData }
    }

    /// Adds one count to the block at `p`, as `Arc::increment_strong_count`.
    ///
    /// # Safety
    ///
    /// `p` came from `as_ptr` of a `CoRef`, and the block is
    /// alive for the call (someone holds a count).
    pub(crate) unsafe fn increment_strong_count(p: *const CoInner) {
        // SAFETY: the caller's contract: a live block; the clone adds the
        // count and forgetting both leaves it added.
        let this = std::mem::ManuallyDrop::new(unsafe { CoRef::from_raw(p) });
        std::mem::forget(CoRef::clone(&this));
    }

    /// Drops one count of the block at `p`, as `Arc::decrement_strong_count`.
    ///
    /// # Safety
    ///
    /// `p` came from `as_ptr` of a `CoRef`, and the caller owns the count
    /// it drops.
    pub(crate) unsafe fn decrement_strong_count(p: *const CoInner) {
        // SAFETY: the caller's contract.
        drop(unsafe { CoRef::from_raw(p) });
    }

    fn block(&self) -> &Block {
        // SAFETY: this reference holds a count, so the block is live and
        // initialised (invariant 1).
        unsafe { self.ptr.as_ref() }
    }
}

impl Clone for CoRef {
    fn clone(&self) -> CoRef {
        // Relaxed: a new reference is made from an existing one, which
        // already orders everything it needs (invariant 3, as `Arc`).
        let old = self.block().count.fetch_add(1, Ordering::Relaxed);
        if old > isize::MAX as usize {
            // Billions of leaked references: wrapping would free a live
            // block. `Arc` aborts here too.
            std::process::abort();
        }
        CoRef { ptr: self.ptr, _owns: PhantomData }
    }
}

impl Drop for CoRef {
    fn drop(&mut self) {
        if self.block().count.fetch_sub(1, Ordering::Release) != 1 {
            return;
        }
        // Invariant 3: every other reference's last use happens before this.
        atomic::fence(Ordering::Acquire);
        // SAFETY: the count reached 0, so this was the last reference: the
        // `CoInner` is ours to drop, once, and the block to free after.
        unsafe {
            ptr::drop_in_place(&raw mut (*self.ptr.as_ptr()).inner);
            free(self.ptr);
        }
    }
}

impl Deref for CoRef {
    type Target = CoInner;
    fn deref(&self) -> &CoInner {
        &self.block().inner
    }
}

/// A list of free blocks, linked through their first word.
struct List {
    head: *mut Free,
    len: usize,
}

impl List {
    const EMPTY: List = List { head: ptr::null_mut(), len: 0 };

    /// # Safety
    ///
    /// `b` is a free block owned by whoever owns this list (invariant 2).
    unsafe fn push(&mut self, b: *mut Free) {
        // SAFETY: the caller's contract: `b` is ours and at least a `Free`.
        unsafe { b.write(Free { next: self.head }) };
        self.head = b;
        self.len += 1;
    }

    fn pop(&mut self) -> Option<*mut Free> {
        let b = self.head;
        if b.is_null() {
            return None;
        }
        // SAFETY: a non-null head is a free block of this list (invariant
        // 2), whose first word is its link.
        self.head = unsafe { (*b).next };
        self.len -= 1;
        Some(b)
    }

    /// Splits off the first `n` blocks (`n <= len`).
    fn split_off(&mut self, n: usize) -> List {
        debug_assert!(n > 0 && n <= self.len);
        let head = self.head;
        let mut last = head;
        for _ in 1..n {
            // SAFETY: the first `n` nodes exist (`n <= len`), each a free
            // block of this list.
            last = unsafe { (*last).next };
        }
        // SAFETY: `last` is the n-th node, a free block of this list.
        unsafe {
            self.head = (*last).next;
            (*last).next = ptr::null_mut();
        }
        self.len -= n;
        List { head, len: n }
    }
}

/// Free batches, and the chunk new blocks are carved from.
struct Pool {
    batches: Vec<List>,
    carve: usize,
    carve_end: usize,
}

// SAFETY: the pool's lists and chunk are plain memory owned by whoever
// holds the lock (invariant 2); the raw pointers carry no thread affinity.
unsafe impl Send for Pool {}

static POOL: Mutex<Pool> = Mutex::new(Pool { batches: Vec::new(), carve: 0, carve_end: 0 });

impl Pool {
    /// A batch of free blocks: a freed one if any, else `BATCH` new ones.
    fn take(&mut self) -> List {
        if let Some(b) = self.batches.pop() {
            return b;
        }
        let size = size_of::<Block>();
        if self.carve_end - self.carve < size * BATCH {
            let layout = Layout::from_size_align(CHUNK, std::mem::align_of::<Block>().max(64))
                .expect("goro: block chunk layout");
            // SAFETY: `layout` has a non-zero size.
            let p = unsafe { std::alloc::alloc(layout) };
            if p.is_null() {
                std::alloc::handle_alloc_error(layout);
            }
            // The tail of the old chunk (under one batch) is left unused.
            self.carve = p as usize;
            self.carve_end = p as usize + CHUNK;
        }
        let mut list = List::EMPTY;
        for _ in 0..BATCH {
            // SAFETY: `carve..carve + size` lies in a chunk nobody else
            // uses (it is carved once, under the lock), aligned for a
            // `Block` (chunk start aligned, `size` a multiple of the
            // alignment); as a free block it is this list's.
            unsafe { list.push(self.carve as *mut Free) };
            self.carve += size;
        }
        list
    }
}

/// This thread's free blocks.
struct Cache {
    list: Cell<List>,
}

impl Drop for Cache {
    fn drop(&mut self) {
        let list = self.list.replace(List::EMPTY);
        if list.len > 0 {
            POOL.lock().batches.push(list);
        }
    }
}

thread_local! {
    static CACHE: Cache = const { Cache { list: Cell::new(List::EMPTY) } };
}

fn alloc() -> NonNull<Block> {
    let b = CACHE
        .try_with(|c| {
            let mut list = c.list.replace(List::EMPTY);
            if list.len == 0 {
                list = POOL.lock().take();
            }
            let b = list.pop();
            c.list.set(list);
            b
        })
        .ok()
        .flatten()
        // No cache (thread exiting): one block from the pool.
        .unwrap_or_else(|| {
            let mut pool = POOL.lock();
            let mut list = pool.take();
            let b = list.pop();
            if list.len > 0 {
                pool.batches.push(list);
            }
            b.expect("goro bug: a fresh batch is never empty")
        });
    // SAFETY: blocks are carved from non-null chunks.
    unsafe { NonNull::new_unchecked(b as *mut Block) }
}

/// # Safety
///
/// `b` is a block whose count reached 0 and whose `CoInner` was dropped:
/// free memory nobody else will touch (invariant 1).
unsafe fn free(b: NonNull<Block>) {
    let b = b.as_ptr() as *mut Free;
    // Unoptimised builds (the test suite's second run) fill a freed block
    // past its link with a pattern, so a use after free reads nonsense
    // states and trips an assertion instead of passing quietly.
    #[cfg(debug_assertions)]
    // SAFETY: the caller's contract: the whole block is free memory of ours.
    unsafe {
        ptr::write_bytes((b as *mut u8).add(size_of::<Free>()), 0xA5, size_of::<Block>() - size_of::<Free>())
    };
    let cached = CACHE.try_with(|c| {
        let mut list = c.list.replace(List::EMPTY);
        // SAFETY: the caller's contract; the cache is this thread's.
        unsafe { list.push(b) };
        let spill = (list.len > 2 * BATCH).then(|| list.split_off(BATCH));
        c.list.set(list);
        if let Some(spill) = spill {
            POOL.lock().batches.push(spill);
        }
    });
    if cached.is_err() {
        // Invariant 4.
        let mut one = List::EMPTY;
        // SAFETY: the caller's contract.
        unsafe { one.push(b) };
        POOL.lock().batches.push(one);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_splits_off_its_first_blocks_in_order() {
        let mut blocks: Vec<Free> = (0..5).map(|_| Free { next: ptr::null_mut() }).collect();
        let mut list = List::EMPTY;
        for b in blocks.iter_mut() {
            // SAFETY: each element is ours and a `Free`.
            unsafe { list.push(b) };
        }
        let first: Vec<*mut Free> = {
            let mut l = list.split_off(2);
            assert_eq!(l.len, 2);
            std::iter::from_fn(|| l.pop()).collect()
        };
        assert_eq!(first, vec![&raw mut blocks[4], &raw mut blocks[3]]);
        assert_eq!(list.len, 3);
        let rest: Vec<*mut Free> = std::iter::from_fn(|| list.pop()).collect();
        assert_eq!(rest, vec![&raw mut blocks[2], &raw mut blocks[1], &raw mut blocks[0]]);
        assert_eq!(list.len, 0);
    }
}
