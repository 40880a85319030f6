// Design note (not part of the rendered docs).
//
// Owns: a `Node` per cancelable context, shared by `Arc` among the
// `Context` clones, its `CancelFn` and (weakly) its parent's children map
// and its deadline timer's closure. A node owns the only `Sender` of its
// `done` channel, its deadline `Timer` (if any) and weak references to its
// registered children. `background()` is a static node with a `never()`
// channel that nothing registers in.
//
// Invariants:
//  * `State::err` goes from `None` to `Some` once; at that moment (under
//    the node's lock) the sender, the timer and the children map are taken
//    out, so a done node holds no timer, no sender and no children.
//  * A child registers in its nearest cancelable ancestor under that
//    ancestor's lock; if the ancestor is already done the child is
//    cancelled with the ancestor's error instead. So a cancel that takes
//    the children map sees every child registered before it.
//  * Cancel marks the whole subtree first, then closes the channels
//    deepest first: a closed `done()` implies every descendant is done.
//  * A child cancelled on its own unregisters from its parent (by id), so
//    long-lived parents do not accumulate children.
//  * Parent links are weak, children links are weak: no reference cycles
//    and no recursive drops along deep chains. The cancel walk is an
//    explicit work list (no recursion), so a deep chain cannot overflow a
//    coroutine stack.
//
// Lock order: a node's `state` lock is a leaf. We never hold two node
// locks at once: registration locks only the parent; cancel locks the
// node, takes what it needs, unlocks, then closes the channel, stops the
// timer, walks the children (each locked alone) and finally locks the
// parent alone to unregister. No lock is held while closing a channel
// (which wakes parked coroutines) or stopping a timer.

//! Go's `context` package without values: a tree of cancellation signals
//! with deadlines.
//!
//! Start from [`background()`], derive children with
//! [`with_cancel`](Context::with_cancel), [`with_timeout`](Context::with_timeout)
//! or [`with_deadline`](Context::with_deadline), hand them to the coroutines
//! doing the work, and wait on [`done()`](Context::done) in a
//! [`select!`](crate::select) next to the work's own channels. Cancelling a
//! context cancels every context derived from it; a child's deadline is the
//! earlier of its own and its parent's.
//!
//! ```
//! use std::time::Duration;
//! use goro::context::{self, ContextError};
//!
//! goro::run(|| {
//!     // Long enough for the producer to start on a loaded machine.
//!     let (ctx, _cancel) = context::background().with_timeout(Duration::from_millis(300));
//!     let (tx, rx) = goro::chan::<u32>(0);
//!     let worker = ctx.clone();
//!     goro::go(move || {
//!         // A slow producer that stops when its context is done.
//!         for i in 0.. {
//!             goro::select! {
//!                 send(tx, i) -> _ => goro::time::sleep(Duration::from_millis(5)),
//!                 recv(worker.done()) -> _ => return,
//!             }
//!         }
//!     });
//!     let mut got = 0;
//!     loop {
//!         goro::select! {
//!             recv(rx) -> v => { v.unwrap(); got += 1; },
//!             recv(ctx.done()) -> _ => break,
//!         }
//!     }
//!     assert!(got >= 1);
//!     assert_eq!(ctx.err(), Some(ContextError::DeadlineExceeded));
//! });
//! ```
//!
//! Porting notes:
//!  * Go's `ctx, cancel := context.WithCancel(parent); defer cancel()` is
//!    `let (ctx, _cancel) = parent.with_cancel();`: dropping the
//!    [`CancelFn`] cancels. So `let (ctx, _) = ...` (a `_` pattern drops at
//!    once) gives a context that is already cancelled; bind it to a name.
//!  * [`done()`](Context::done) is a channel that is closed when the context
//!    is done: `recv(ctx.done()) -> _ => ..` in a select, or
//!    `ctx.done().recv()` to wait (it returns `Err(RecvError)` then).
//!  * Deadlines run on `goro::time::after_func` timers of the runtime that
//!    created the context (the global default runtime on a plain thread); a
//!    deadline set in a runtime that has since shut down does not fire.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::time::Timer;
use crate::{Receiver, Sender};

/// Why a context is done: what [`Context::err`] returns.
///
/// ```
/// use goro::context::ContextError;
/// assert_eq!(ContextError::Canceled.to_string(), "context canceled");
/// assert_eq!(ContextError::DeadlineExceeded.to_string(), "context deadline exceeded");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ContextError {
    /// Cancelled through a [`CancelFn`] (Go's `context.Canceled`).
    Canceled,
    /// Its deadline passed (Go's `context.DeadlineExceeded`).
    DeadlineExceeded,
}

impl fmt::Display for ContextError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ContextError::Canceled => "context canceled",
            ContextError::DeadlineExceeded => "context deadline exceeded",
        })
    }
}

impl std::error::Error for ContextError {}

struct State {
    err: Option<ContextError>,
    /// The only sender of `Node::rx`; closed (and dropped) when done.
    tx: Option<Sender<()>>,
    /// Registered children by id. Weak: a child is owned by its handles.
    children: HashMap<u64, Weak<Node>>,
    /// Dead weak entries (children dropped without cancel, e.g. a forgotten
    /// `CancelFn`) are pruned when the map reaches this size.
    prune_at: usize,
    timer: Option<Timer>,
}

struct Node {
    id: u64,
    rx: Receiver<()>,
    deadline: Option<Instant>,
    /// The nearest cancelable ancestor this node is registered in.
    parent: Option<Weak<Node>>,
    /// `None` for `background()`, which is never done.
    state: Option<Mutex<State>>,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A cancellation signal, with an optional deadline, that coroutines
/// doing work for one request can share (Go's `context.Context`, without
/// values). Clones share the same context; cloning is an `Arc` clone.
///
/// ```
/// use goro::context::{self, ContextError};
///
/// let (parent, cancel) = context::background().with_cancel();
/// let (child, _child_cancel) = parent.with_cancel();
/// assert_eq!(child.err(), None);
/// cancel.cancel();
/// assert_eq!(child.err(), Some(ContextError::Canceled));
/// assert!(child.done().recv().is_err()); // closed: does not block
/// ```
#[derive(Clone)]
pub struct Context {
    node: Arc<Node>,
}

/// Cancels its context (and every context derived from it) when
/// [`cancel`](CancelFn::cancel) is called or when it is dropped, whichever
/// comes first (Go's `defer cancel()`). Cancelling twice does nothing.
///
/// ```
/// use goro::context::{self, ContextError};
///
/// let (ctx, cancel) = context::background().with_cancel();
/// drop(cancel);
/// assert_eq!(ctx.err(), Some(ContextError::Canceled));
/// ```
#[must_use = "dropping a CancelFn cancels its context at once"]
pub struct CancelFn {
    node: Arc<Node>,
}

/// The root context: never done, no deadline (Go's `context.Background()`).
///
/// ```
/// let bg = goro::context::background();
/// assert_eq!(bg.err(), None);
/// assert_eq!(bg.deadline(), None);
/// assert!(bg.done().try_recv().is_err()); // never ready
/// ```
pub fn background() -> Context {
    static BG: OnceLock<Context> = OnceLock::new();
    BG.get_or_init(|| Context {
        node: Arc::new(Node { id: 0, rx: crate::never(), deadline: None, parent: None, state: None }),
    })
    .clone()
}

impl Context {
    /// A child that is done when `cancel` is called (or the `CancelFn` is
    /// dropped) or when this context is done, whichever comes first.
    ///
    /// ```
    /// let root = goro::context::background();
    /// let (ctx, cancel) = root.with_cancel();
    /// assert!(ctx.err().is_none());
    /// cancel.cancel();
    /// assert!(ctx.err().is_some());
    /// assert!(root.err().is_none()); // a child never cancels its parent
    /// ```
    pub fn with_cancel(&self) -> (Context, CancelFn) {
        self.child(self.node.deadline)
    }

    /// A child that is also done (with [`ContextError::DeadlineExceeded`])
    /// once `d` has passed. Its deadline is the earlier of `now + d` and
    /// this context's deadline.
    ///
    /// ```
    /// use std::time::Duration;
    /// use goro::context::{self, ContextError};
    ///
    /// let (ctx, _cancel) = context::background().with_timeout(Duration::from_millis(5));
    /// assert!(ctx.done().recv().is_err()); // closed once the deadline passes
    /// assert_eq!(ctx.err(), Some(ContextError::DeadlineExceeded));
    /// ```
    pub fn with_timeout(&self, d: Duration) -> (Context, CancelFn) {
        match Instant::now().checked_add(d) {
            Some(at) => self.with_deadline(at),
            // Beyond `Instant`'s range: never comes.
            None => self.with_cancel(),
        }
    }

    /// A child that is also done (with [`ContextError::DeadlineExceeded`])
    /// at `at`. Its deadline is the earlier of `at` and this context's; if
    /// this context's comes first, no timer is armed (this context's own
    /// deadline cancels the child). A deadline already past gives a child
    /// that is done at once.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use goro::context;
    ///
    /// let soon = Instant::now() + Duration::from_secs(1);
    /// let (parent, _c1) = context::background().with_deadline(soon);
    /// let (child, _c2) = parent.with_deadline(soon + Duration::from_secs(60));
    /// assert_eq!(child.deadline(), Some(soon)); // the parent's is earlier
    /// ```
    pub fn with_deadline(&self, at: Instant) -> (Context, CancelFn) {
        if let Some(cur) = self.node.deadline {
            if cur <= at {
                return self.child(Some(cur));
            }
        }
        let (ctx, cancel) = self.child(Some(at));
        let now = Instant::now();
        if ctx.err().is_some() {
            return (ctx, cancel); // the parent is done: no timer
        }
        if at <= now {
            cancel_node(&ctx.node, ContextError::DeadlineExceeded, true);
            return (ctx, cancel);
        }
        let weak = Arc::downgrade(&ctx.node);
        let timer = crate::time::after_func(at - now, move || {
            if let Some(node) = weak.upgrade() {
                cancel_node(&node, ContextError::DeadlineExceeded, true);
            }
        });
        let st = ctx.node.state.as_ref().expect("a child is cancelable");
        let mut g = st.lock();
        let late = if g.err.is_none() {
            g.timer = Some(timer);
            None
        } else {
            Some(timer)
        };
        drop(g);
        // Done already (the parent was cancelled, or the timer fired):
        // free the timer now.
        if let Some(t) = late {
            t.stop();
        }
        (ctx, cancel)
    }

    /// A channel that is closed when this context is done, so a receive on
    /// it is ready from then on (it yields `Err(RecvError)`). Use it in a
    /// select: `recv(ctx.done()) -> _ => ..`. For [`background()`] it is
    /// never ready. Once it is closed, every context derived from this one
    /// is done too (descendants' channels are closed first).
    ///
    /// ```
    /// use std::time::Duration;
    /// let (ctx, cancel) = goro::context::background().with_cancel();
    /// let (_tx, work) = goro::chan::<i32>(0);
    /// goro::time::after_func(Duration::from_millis(5), move || cancel.cancel());
    /// goro::select! {
    ///     recv(work) -> _ => unreachable!(),
    ///     recv(ctx.done()) -> r => assert!(r.is_err()),
    /// }
    /// ```
    pub fn done(&self) -> &Receiver<()> {
        &self.node.rx
    }

    /// `None` while the context is not done; then why it is done (and that
    /// never changes again).
    ///
    /// ```
    /// use goro::context::{self, ContextError};
    /// let (ctx, cancel) = context::background().with_cancel();
    /// assert_eq!(ctx.err(), None);
    /// drop(cancel);
    /// assert_eq!(ctx.err(), Some(ContextError::Canceled));
    /// ```
    pub fn err(&self) -> Option<ContextError> {
        self.node.state.as_ref().and_then(|s| s.lock().err)
    }

    /// When this context will be done at the latest, if it has a deadline:
    /// the earliest of its own and its ancestors' deadlines.
    ///
    /// ```
    /// use std::time::Duration;
    /// let bg = goro::context::background();
    /// assert_eq!(bg.deadline(), None);
    /// let (ctx, _cancel) = bg.with_timeout(Duration::from_secs(5));
    /// assert!(ctx.deadline().is_some());
    /// ```
    pub fn deadline(&self) -> Option<Instant> {
        self.node.deadline
    }

    /// A new cancelable child with `deadline`, registered in the nearest
    /// cancelable ancestor (this node, unless it is `background()`).
    fn child(&self, deadline: Option<Instant>) -> (Context, CancelFn) {
        let (tx, rx) = crate::chan::<()>(0);
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let parent = self.node.state.as_ref().map(|_| Arc::downgrade(&self.node));
        let state = State { err: None, tx: Some(tx), children: HashMap::new(), prune_at: 16, timer: None };
        let node = Arc::new(Node { id, rx, deadline, parent, state: Some(Mutex::new(state)) });
        if let Some(pst) = &self.node.state {
            let mut p = pst.lock();
            match p.err {
                Some(err) => {
                    drop(p);
                    cancel_node(&node, err, false);
                }
                None => {
                    if p.children.len() >= p.prune_at {
                        p.children.retain(|_, w| w.strong_count() > 0);
                        p.prune_at = (p.children.len() * 2).max(16);
                    }
                    p.children.insert(id, Arc::downgrade(&node));
                }
            }
        }
        (Context { node: node.clone() }, CancelFn { node })
    }
}

/// Marks `node` and its whole subtree done with `err` (unless already
/// done), closing their channels and stopping their timers; with `unlink`,
/// unregisters `node` from its parent.
///
/// Two phases: first every node of the subtree gets its error (each locked
/// alone, in turn) and `node` leaves its parent, then the channels are
/// closed, deepest first. So whoever sees a context's `done()` closed sees
/// every descendant done too, and the context unregistered.
fn cancel_node(node: &Arc<Node>, err: ContextError, unlink: bool) {
    let mut work = vec![node.clone()];
    let mut closes = Vec::new();
    let mut timers = Vec::new();
    let mut first = true;
    while let Some(n) = work.pop() {
        let Some(st) = &n.state else { continue };
        let mut g = st.lock();
        if g.err.is_some() {
            // Done already: its subtree was (or is being) cancelled by
            // whoever got there first, who also unlinked it if needed.
            if first {
                return;
            }
            continue;
        }
        g.err = Some(err);
        closes.extend(g.tx.take());
        timers.extend(g.timer.take());
        let children = std::mem::take(&mut g.children);
        drop(g);
        work.extend(children.into_values().filter_map(|w| w.upgrade()));
        first = false;
    }
    if unlink {
        if let Some(parent) = node.parent.as_ref().and_then(Weak::upgrade) {
            if let Some(pst) = &parent.state {
                pst.lock().children.remove(&node.id);
            }
        }
    }
    // `closes` lists parents before their descendants: close in reverse.
    for tx in closes.iter().rev() {
        tx.close();
    }
    for t in timers {
        t.stop();
    }
}

impl CancelFn {
    /// Cancels the context and all contexts derived from it, with
    /// [`ContextError::Canceled`]; does nothing if it is done already.
    /// Unregisters it from its parent, so a long-lived parent does not
    /// keep it.
    ///
    /// ```
    /// let (ctx, cancel) = goro::context::background().with_cancel();
    /// cancel.cancel();
    /// cancel.cancel(); // no effect
    /// assert!(ctx.done().is_closed());
    /// ```
    pub fn cancel(&self) {
        cancel_node(&self.node, ContextError::Canceled, true);
    }
}

impl Drop for CancelFn {
    fn drop(&mut self) {
        self.cancel();
    }
}

impl Default for Context {
    /// [`background()`].
    fn default() -> Self {
        background()
    }
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.node.state.is_none() {
            return f.write_str("context.Background");
        }
        // `children`: contexts registered here and not yet cancelled (a
        // leak check for long-lived parents).
        let (err, children) = match &self.node.state {
            Some(st) => {
                let g = st.lock();
                (g.err, g.children.len())
            }
            None => (None, 0),
        };
        f.debug_struct("Context")
            .field("err", &err)
            .field("deadline", &self.node.deadline)
            .field("children", &children)
            .finish()
    }
}

impl fmt::Debug for CancelFn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CancelFn").field("done", &Context { node: self.node.clone() }.err().is_some()).finish()
    }
}
