//! `select!`: crossbeam-channel's syntax, Go's semantics.
//!
//! The macro munches its cases into a list, binds one typed case value per
//! case (each binding gets its own hygiene context, so they never clash),
//! runs `select::select_cases` over them, turns each case into its output
//! (ending every borrow of the channels), and only then runs the chosen arm.
//! So an arm may reassign the channel variables (Go's `a = nil` is
//! `a = goro::never()`).

/// Waits on several channel operations and runs the arm of the one that
/// completes (among ready ones, chosen uniformly at random, like Go).
///
/// ```
/// use std::time::Duration;
/// let (tx, rx) = goro::chan::<i32>(1);
/// let (tx2, rx2) = goro::chan::<&str>(1);
/// tx.send(1).unwrap();
/// goro::select! {
///     recv(rx) -> v => assert_eq!(v, Ok(1)),
///     recv(rx2) -> _ => unreachable!(),
/// }
/// goro::select! {
///     send(tx2, "hi") -> res => res.unwrap(),
///     default => unreachable!(),
/// }
/// goro::select! {
///     recv(rx) -> _ => unreachable!(),
///     default(Duration::from_millis(5)) => {}
/// }
/// drop(tx2);
/// ```
///
/// Cases: `recv(rx) -> res => body`, `send(tx, value) -> res => body`, and at
/// most one `default => body` or `default(timeout) => body`. A closed
/// channel's receive is ready and yields `Err(RecvError)`. Without `default`
/// and with no ready case, the select parks until one is ready; with no cases
/// at all it parks forever (Go's `select {}`).
#[macro_export]
macro_rules! select {
    ($($tokens:tt)*) => {
        $crate::__select_munch!(() () $($tokens)*)
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __select_munch {
    // recv with a block body
    (($($cases:tt)*) ($($def:tt)*) recv($r:expr) -> $res:pat => $body:block, $($rest:tt)*) => {
        $crate::__select_munch!(($($cases)* [case recv ($r) ($res) ($body)]) ($($def)*) $($rest)*)
    };
    (($($cases:tt)*) ($($def:tt)*) recv($r:expr) -> $res:pat => $body:block $($rest:tt)*) => {
        $crate::__select_munch!(($($cases)* [case recv ($r) ($res) ($body)]) ($($def)*) $($rest)*)
    };
    // recv with an expression body
    (($($cases:tt)*) ($($def:tt)*) recv($r:expr) -> $res:pat => $body:expr, $($rest:tt)*) => {
        $crate::__select_munch!(($($cases)* [case recv ($r) ($res) ($body)]) ($($def)*) $($rest)*)
    };
    (($($cases:tt)*) ($($def:tt)*) recv($r:expr) -> $res:pat => $body:expr) => {
        $crate::__select_munch!(($($cases)* [case recv ($r) ($res) ($body)]) ($($def)*))
    };
    // send
    (($($cases:tt)*) ($($def:tt)*) send($s:expr, $v:expr) -> $res:pat => $body:block, $($rest:tt)*) => {
        $crate::__select_munch!(($($cases)* [case send ($s, $v) ($res) ($body)]) ($($def)*) $($rest)*)
    };
    (($($cases:tt)*) ($($def:tt)*) send($s:expr, $v:expr) -> $res:pat => $body:block $($rest:tt)*) => {
        $crate::__select_munch!(($($cases)* [case send ($s, $v) ($res) ($body)]) ($($def)*) $($rest)*)
    };
    (($($cases:tt)*) ($($def:tt)*) send($s:expr, $v:expr) -> $res:pat => $body:expr, $($rest:tt)*) => {
        $crate::__select_munch!(($($cases)* [case send ($s, $v) ($res) ($body)]) ($($def)*) $($rest)*)
    };
    (($($cases:tt)*) ($($def:tt)*) send($s:expr, $v:expr) -> $res:pat => $body:expr) => {
        $crate::__select_munch!(($($cases)* [case send ($s, $v) ($res) ($body)]) ($($def)*))
    };
    // default
    (($($cases:tt)*) () default => $body:block, $($rest:tt)*) => {
        $crate::__select_munch!(($($cases)*) ((try) $body) $($rest)*)
    };
    (($($cases:tt)*) () default => $body:block $($rest:tt)*) => {
        $crate::__select_munch!(($($cases)*) ((try) $body) $($rest)*)
    };
    (($($cases:tt)*) () default => $body:expr $(, $($rest:tt)*)?) => {
        $crate::__select_munch!(($($cases)*) ((try) $body) $($($rest)*)?)
    };
    (($($cases:tt)*) () default($d:expr) => $body:block, $($rest:tt)*) => {
        $crate::__select_munch!(($($cases)*) ((timeout $d) $body) $($rest)*)
    };
    (($($cases:tt)*) () default($d:expr) => $body:block $($rest:tt)*) => {
        $crate::__select_munch!(($($cases)*) ((timeout $d) $body) $($rest)*)
    };
    (($($cases:tt)*) () default($d:expr) => $body:expr $(, $($rest:tt)*)?) => {
        $crate::__select_munch!(($($cases)*) ((timeout $d) $body) $($($rest)*)?)
    };
    // done
    (($($cases:tt)*) ($($def:tt)*)) => {
        $crate::__select_emit!(() ($($cases)*) ($($def)*))
    };
}

/// Gives each case a binding with its own hygiene context, then binds.
#[doc(hidden)]
#[macro_export]
macro_rules! __select_emit {
    (($($bound:tt)*) ([case $kind:ident $args:tt $res:tt $body:tt] $($more:tt)*) $def:tt) => {
        $crate::__select_emit!(($($bound)* [__case $kind $args $res $body]) ($($more)*) $def)
    };
    (($($bound:tt)*) () $def:tt) => {
        $crate::__select_bind!(($($bound)*) ($($bound)*) $def)
    };
}

/// Evaluates each case's channel (and value) once, in order, as the
/// scrutinee of a `match`: a temporary there (`recv(after(d))`,
/// `recv(ctx.done())`) lives until the end of that `match`, that is for
/// the whole select, where a `let` would drop it at once (E0716). The
/// `ref` binding borrows a place (`recv(rx)`) without moving it; the
/// borrow ends when the case is turned into its output, before any arm.
#[doc(hidden)]
#[macro_export]
macro_rules! __select_bind {
    (([$c:ident recv ($r:expr) $res:tt $body:tt] $($more:tt)*) $all:tt $def:tt) => {
        match $r {
            ref __goro_rx => {
                let mut $c = $crate::__private::recv_case(__goro_rx);
                $crate::__select_bind!(($($more)*) $all $def)
            }
        }
    };
    (([$c:ident send ($s:expr, $v:expr) $res:tt $body:tt] $($more:tt)*) $all:tt $def:tt) => {
        match $s {
            ref __goro_tx => match $v {
                __goro_v => {
                    let mut $c = $crate::__private::send_case(__goro_tx, __goro_v);
                    $crate::__select_bind!(($($more)*) $all $def)
                }
            },
        }
    };
    (() ($([$c:ident $kind:ident $args:tt $res:tt $body:tt])*) $def:tt) => {{
        let __mode = $crate::__select_mode!($def);
        let _ = $crate::__private::select(&mut [$( $c.erased() ),*], __mode);
        $( let $c = $c.into_output(); )*
        $crate::__select_dispatch!(($([$c $res $body])*) $def)
    }};
}

#[doc(hidden)]
#[macro_export]
macro_rules! __select_mode {
    (()) => {
        $crate::__private::Mode::Block
    };
    (((try) $body:tt)) => {
        $crate::__private::Mode::Try
    };
    (((timeout $d:expr) $body:tt)) => {
        $crate::__private::Mode::timeout($d)
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __select_dispatch {
    (([$c:ident ($res:pat) ($body:expr)] $($more:tt)*) $def:tt) => {
        if let ::std::option::Option::Some(__out) = $c {
            #[allow(unreachable_patterns, clippy::match_single_binding)]
            match __out {
                $res => $body,
            }
        } else {
            $crate::__select_dispatch!(($($more)*) $def)
        }
    };
    (() ()) => {
        unreachable!("goro::select!: a blocking select returned no case")
    };
    (() ($mode:tt $body:expr)) => {
        $body
    };
}
