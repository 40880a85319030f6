// Design notes for maintainers.
//
// Owns: `List`, the intrusive doubly linked list behind every wait queue
// (a channel's `sendq`/`recvq`, `chan/imp.rs`; a lock's queue,
// `sync/waitq.rs`). The nodes are the waiting parties' own records (an
// `Op`, a `Slot`), which live in their frames and stay put while queued,
// so queueing allocates nothing and a node leaves from anywhere in O(1),
// as Go's `waitq` of sudogs.
//
// Invariants:
//  1. A node is in at most one list at a time (`Links::queued`), and its
//     links are touched only by the holder of that list's lock (the
//     caller's contract on every method; `Node::links` says how to reach
//     them: a channel's go through `on_stack`, for swapped stacks).
//  2. A queued node is alive: its owner takes it out (`remove`, under the
//     lock) before it frees it, or someone popped it first.
//  3. Leaving, by a pop or a `remove`, clears the node's links.
//
// Names no other goro module (layer 0).

/// A node's neighbours in its list, and whether it is in one.
pub(crate) struct Links<N> {
    prev: *const N,
    next: *const N,
    queued: bool,
}

impl<N> Links<N> {
    pub(crate) const NONE: Links<N> = Links { prev: std::ptr::null(), next: std::ptr::null(), queued: false };
}

/// A type whose values can be linked into a [`List`].
///
/// # Safety
///
/// `links` returns the links of the node at `p`, one `Links` per node,
/// wherever they are now.
pub(crate) unsafe trait Node: Sized {
    /// The links of the node at `p`.
    ///
    /// # Safety
    ///
    /// `p` is alive (invariant 2) and the caller holds the lock of the list
    /// it is in or is being linked into (invariant 1); the reference is used
    /// before the next call.
    unsafe fn links<'a>(p: *const Self) -> &'a mut Links<Self>;
}

/// An intrusive doubly linked list of `N`s, first in line first.
pub(crate) struct List<N> {
    head: *const N,
    tail: *const N,
}

impl<N: Node> List<N> {
    pub(crate) const fn new() -> List<N> {
        List { head: std::ptr::null(), tail: std::ptr::null() }
    }

    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.head.is_null()
    }

    /// The first node (null: none).
    #[inline]
    pub(crate) fn head(&self) -> *const N {
        self.head
    }

    /// The last node (null: none).
    #[inline]
    pub(crate) fn tail(&self) -> *const N {
        self.tail
    }

    /// The node after queued node `p` (null: none).
    ///
    /// # Safety
    ///
    /// `Node::links`'s contract for `p`, queued here.
    #[inline]
    pub(crate) unsafe fn next(p: *const N) -> *const N {
        // SAFETY: the contract.
        unsafe { N::links(p) }.next
    }

    /// Links `p` last.
    ///
    /// # Safety
    ///
    /// `Node::links`'s contract for `p` (not queued anywhere) and for every
    /// node queued here.
    #[inline]
    pub(crate) unsafe fn push_back(&mut self, p: *const N) {
        // SAFETY: the contract.
        unsafe { self.link(p, self.tail, std::ptr::null()) }
    }

    /// Links `p` first.
    ///
    /// # Safety
    ///
    /// As for `push_back`.
    #[inline]
    pub(crate) unsafe fn push_front(&mut self, p: *const N) {
        // SAFETY: the contract.
        unsafe { self.link(p, std::ptr::null(), self.head) }
    }

    /// Links `p` between neighbours `prev` and `next` (null: an end).
    ///
    /// # Safety
    ///
    /// As for `push_back`, `prev` and `next` queued here and adjacent.
    #[inline]
    unsafe fn link(&mut self, p: *const N, prev: *const N, next: *const N) {
        // SAFETY: (all) the callers' contract.
        let l = unsafe { N::links(p) };
        debug_assert!(!l.queued, "goro bug: a node queued twice");
        *l = Links { prev, next, queued: true };
        // SAFETY: the neighbours are queued here (the callers' contract).
        unsafe {
            self.set_next(prev, p);
            self.set_prev(next, p);
        }
    }

    /// Takes the first node off (invariant 3).
    ///
    /// # Safety
    ///
    /// `Node::links`'s contract for every node queued here.
    #[inline]
    pub(crate) unsafe fn pop_front(&mut self) -> Option<std::ptr::NonNull<N>> {
        let p = std::ptr::NonNull::new(self.head as *mut N)?;
        // SAFETY: the contract; the head is queued here.
        unsafe { self.unlink(p.as_ptr()) };
        Some(p)
    }

    /// Takes `p` off wherever it is, if it is queued (invariant 3); returns
    /// its neighbours then (null: an end).
    ///
    /// # Safety
    ///
    /// `Node::links`'s contract for `p` (queued here, or nowhere) and for
    /// every node queued here.
    #[inline]
    pub(crate) unsafe fn remove(&mut self, p: *const N) -> Option<(*const N, *const N)> {
        // SAFETY: the contract.
        if !unsafe { N::links(p) }.queued {
            return None;
        }
        // SAFETY: as above.
        Some(unsafe { self.unlink(p) })
    }

    /// Unlinks queued node `p`; returns its neighbours.
    ///
    /// # Safety
    ///
    /// As for `remove`, `p` queued here.
    #[inline]
    unsafe fn unlink(&mut self, p: *const N) -> (*const N, *const N) {
        // SAFETY: (all) the callers' contract.
        let Links { prev, next, .. } = std::mem::replace(unsafe { N::links(p) }, Links::NONE);
        // A node queued elsewhere (a caller passing the wrong list) would
        // corrupt this one: its ends must be ours.
        debug_assert!(!prev.is_null() || self.head == p, "goro bug: a node removed from a list it is not in");
        debug_assert!(!next.is_null() || self.tail == p, "goro bug: a node removed from a list it is not in");
        // SAFETY: the neighbours are queued here (the callers' contract).
        unsafe {
            self.set_next(prev, next);
            self.set_prev(next, prev);
        }
        (prev, next)
    }

    /// Makes `to` follow `prev` (null `prev`: the head).
    ///
    /// # Safety
    ///
    /// `Node::links`'s contract for `prev`.
    #[inline]
    unsafe fn set_next(&mut self, prev: *const N, to: *const N) {
        if prev.is_null() {
            self.head = to;
        } else {
            // SAFETY: the callers' contract: `prev` is queued here.
            unsafe { N::links(prev) }.next = to;
        }
    }

    /// Makes `to` precede `next` (null `next`: the tail).
    ///
    /// # Safety
    ///
    /// `Node::links`'s contract for `next`.
    #[inline]
    unsafe fn set_prev(&mut self, next: *const N, to: *const N) {
        if next.is_null() {
            self.tail = to;
        } else {
            // SAFETY: the callers' contract: `next` is queued here.
            unsafe { N::links(next) }.prev = to;
        }
    }
}
