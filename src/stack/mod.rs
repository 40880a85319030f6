//! Coroutine stacks (placeholder: one mmap per stack; replaced by the slab
//! allocator). Interface used by the scheduler:
//!
//! * `Stack::new(size) -> io::Result<Stack>`: a stack with at least `size`
//!   usable bytes (rounded up to pages, at least `MIN_STACK_SIZE`) and a guard
//!   page below it. Dropping it returns the memory.
//! * `Stack` implements `corosensei::stack::Stack`.

use std::io;

/// Smallest usable stack (rounded up to it).
pub const MIN_STACK_SIZE: usize = 16 * 1024;
/// Default reservation for a spawned coroutine.
pub const DEFAULT_STACK_SIZE: usize = 256 * 1024;
/// Default reservation for the main coroutine of `run`.
pub const DEFAULT_MAIN_STACK_SIZE: usize = 8 * 1024 * 1024;

pub(crate) struct Stack {
    inner: corosensei::stack::DefaultStack,
    size: usize,
}

impl Stack {
    pub(crate) fn new(size: usize) -> io::Result<Stack> {
        let size = size.max(MIN_STACK_SIZE);
        Ok(Stack { inner: corosensei::stack::DefaultStack::new(size)?, size })
    }
    pub(crate) fn size(&self) -> usize {
        self.size
    }
}

// SAFETY: forwards to corosensei's DefaultStack, which has a guard page and at
// least `size` usable bytes.
unsafe impl corosensei::stack::Stack for Stack {
    fn base(&self) -> corosensei::stack::StackPointer {
        self.inner.base()
    }
    fn limit(&self) -> corosensei::stack::StackPointer {
        self.inner.limit()
    }
}

/// Called by a worker thread when it starts (per-worker stack cache).
pub(crate) fn worker_started() {}
/// Called by a worker thread before it exits (flush its stack cache).
pub(crate) fn worker_exiting() {}

/// Stack counters (process-wide).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct StackStats {
    pub(crate) in_use: u64,
    pub(crate) reserved: u64,
    pub(crate) committed: u64,
}

pub(crate) fn stats() -> StackStats {
    StackStats::default()
}
