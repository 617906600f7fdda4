//! Random operation sequences on a context tree, checked after every step against a plain
//! reference model of Go's semantics: errors, causes, deadlines, values and attached children.

use std::time::Duration;

use ctxpipe::{CancelHandle, Cause, Context, Error};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::Config;
use tokio::time::Instant;

#[derive(Debug, PartialEq)]
struct A(u8);

#[derive(Debug, PartialEq)]
struct B(u8);

#[derive(Clone, Copy, Debug)]
enum Timeout {
    Millis(u64),
    Max,
}

#[derive(Clone, Copy, Debug)]
enum Value {
    A(u8),
    B(u8),
}

/// One step. An `Index` picks among the nodes the step applies to (held contexts, or held
/// cancel handles); a step with nothing to apply to does nothing.
#[derive(Clone, Debug)]
enum Op {
    WithCancel(Index),
    WithTimeout(Index, Timeout),
    /// A deadline this many milliseconds from now (negative: in the past).
    WithDeadline(Index, i64),
    WithValue(Index, Value),
    WithoutCancel(Index),
    Cancel(Index),
    CancelWith(Index, u8),
    /// Moves paused time on; when the flag is false, nothing looks at the tree before the next
    /// step, so deadlines that passed are still unnoticed when it runs.
    Advance(u64, bool),
    DropAll(Index),
    DropCancelHandle(Index),
}

fn timeout() -> impl Strategy<Value = Timeout> {
    prop_oneof![
        1 => Just(Timeout::Millis(0)),
        6 => (1u64..60).prop_map(Timeout::Millis),
        1 => Just(Timeout::Max),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    prop_oneof![(0u8..4).prop_map(Value::A), (0u8..4).prop_map(Value::B)]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => any::<Index>().prop_map(Op::WithCancel),
        3 => (any::<Index>(), timeout()).prop_map(|(i, t)| Op::WithTimeout(i, t)),
        1 => (any::<Index>(), -5i64..60).prop_map(|(i, d)| Op::WithDeadline(i, d)),
        2 => (any::<Index>(), value()).prop_map(|(i, v)| Op::WithValue(i, v)),
        1 => any::<Index>().prop_map(Op::WithoutCancel),
        2 => any::<Index>().prop_map(Op::Cancel),
        2 => (any::<Index>(), any::<u8>()).prop_map(|(i, c)| Op::CancelWith(i, c)),
        3 => (0u64..40, any::<bool>()).prop_map(|(ms, look)| Op::Advance(ms, look)),
        2 => any::<Index>().prop_map(Op::DropAll),
        1 => any::<Index>().prop_map(Op::DropCancelHandle),
    ]
}

/// The model of one cancellation node (background, `without_cancel`, or a cancel/deadline
/// layer). Value layers share their parent's cell.
#[derive(Debug)]
struct Cell {
    /// Never cancelled (background, `without_cancel`): children do not attach.
    never: bool,
    /// The cell this one was attached to when it was made (it holds that cell alive).
    parent: Option<usize>,
    /// Still listed among the parent's children (any cancel that reaches it unlists it).
    listed: bool,
    /// The effective deadline: the earlier of its own and its parent's.
    deadline: Option<Instant>,
    /// The error and the text of the cause, once done.
    done: Option<(Error, String)>,
}

/// The model of one context handed out by an operation.
#[derive(Debug)]
struct Node {
    cell: usize,
    a: Option<u8>,
    b: Option<u8>,
    holds_context: bool,
    holds_handle: bool,
}

#[derive(Debug)]
struct Model {
    now: Instant,
    cells: Vec<Cell>,
    nodes: Vec<Node>,
}

impl Model {
    fn new(now: Instant) -> Model {
        Model {
            now,
            cells: vec![Cell {
                never: true,
                parent: None,
                listed: false,
                deadline: None,
                done: None,
            }],
            nodes: vec![Node {
                cell: 0,
                a: None,
                b: None,
                holds_context: true,
                holds_handle: false,
            }],
        }
    }

    /// A cancel/deadline child of node `n` with its own deadline `own`.
    fn child(&mut self, n: usize, own: Option<Instant>) {
        let parent = &self.nodes[n];
        let (p, a, b) = (parent.cell, parent.a, parent.b);
        let pc = &self.cells[p];
        let deadline = match (own, pc.deadline) {
            (Some(own), Some(inherited)) => Some(own.min(inherited)),
            (own, inherited) => own.or(inherited),
        };
        let expired = deadline.is_some_and(|d| d <= self.now);
        let cell = if let Some(done) = pc.done.clone() {
            // Born done with the parent's error and cause, and not attached.
            Cell {
                never: false,
                parent: None,
                listed: false,
                deadline,
                done: Some(done),
            }
        } else if pc.never || expired {
            Cell {
                never: false,
                parent: None,
                listed: false,
                deadline,
                done: expired.then(deadline_exceeded),
            }
        } else {
            Cell {
                never: false,
                parent: Some(p),
                listed: true,
                deadline,
                done: None,
            }
        };
        self.cells.push(cell);
        self.nodes.push(Node {
            cell: self.cells.len() - 1,
            a,
            b,
            holds_context: true,
            holds_handle: true,
        });
    }

    fn with_value(&mut self, n: usize, value: Value) {
        let parent = &self.nodes[n];
        let mut node = Node {
            cell: parent.cell,
            a: parent.a,
            b: parent.b,
            holds_context: true,
            holds_handle: false,
        };
        match value {
            Value::A(v) => node.a = Some(v),
            Value::B(v) => node.b = Some(v),
        }
        self.nodes.push(node);
    }

    fn without_cancel(&mut self, n: usize) {
        let parent = &self.nodes[n];
        let (a, b) = (parent.a, parent.b);
        self.cells.push(Cell {
            never: true,
            parent: None,
            listed: false,
            deadline: None,
            done: None,
        });
        self.nodes.push(Node {
            cell: self.cells.len() - 1,
            a,
            b,
            holds_context: true,
            holds_handle: false,
        });
    }

    /// Cancels cell `c` and its attached open descendants; the first cancel wins.
    fn cancel(&mut self, c: usize, done: (Error, String)) {
        if self.cells[c].never || self.cells[c].done.is_some() {
            return;
        }
        self.cells[c].done = Some(done.clone());
        // A cancelled context leaves its parent at once, as in Go.
        self.cells[c].listed = false;
        let children: Vec<usize> = (0..self.cells.len())
            .filter(|&q| self.cells[q].parent == Some(c) && self.cells[q].listed)
            .collect();
        for q in children {
            self.cells[q].listed = false;
            self.cancel(q, done.clone());
        }
    }

    fn advance(&mut self, by: Duration) {
        self.now += by;
        // Parents come before their children in `cells`, so an owner expires first.
        for c in 0..self.cells.len() {
            let cell = &self.cells[c];
            if cell.done.is_none() && cell.deadline.is_some_and(|d| d <= self.now) {
                self.cancel(c, deadline_exceeded());
            }
        }
    }

    /// Cells kept alive by a held context or handle, or by a live attached child.
    fn alive_cells(&self) -> Vec<bool> {
        let mut alive = vec![false; self.cells.len()];
        for node in &self.nodes {
            if node.holds_context || node.holds_handle {
                alive[node.cell] = true;
            }
        }
        for q in (0..self.cells.len()).rev() {
            if let (true, Some(p)) = (alive[q], self.cells[q].parent) {
                alive[p] = true;
            }
        }
        alive
    }

    fn live_children(&self, c: usize, alive: &[bool]) -> usize {
        (0..self.cells.len())
            .filter(|&q| self.cells[q].parent == Some(c) && self.cells[q].listed && alive[q])
            .count()
    }
}

fn deadline_exceeded() -> (Error, String) {
    (Error::DeadlineExceeded, Error::DeadlineExceeded.to_string())
}

/// The real contexts, in the same order as the model's nodes.
#[derive(Default)]
struct Real {
    contexts: Vec<Option<Context>>,
    handles: Vec<Option<CancelHandle>>,
}

impl Real {
    fn push(&mut self, ctx: Context, handle: Option<CancelHandle>) {
        self.contexts.push(Some(ctx));
        self.handles.push(handle);
    }

    fn ctx(&self, n: usize) -> &Context {
        self.contexts[n]
            .as_ref()
            .expect("the model only picks held contexts")
    }
}

/// Picks among the nodes for which `eligible` holds.
fn pick(model: &Model, index: &Index, eligible: impl Fn(&Node) -> bool) -> Option<usize> {
    let candidates: Vec<usize> = (0..model.nodes.len())
        .filter(|&n| eligible(&model.nodes[n]))
        .collect();
    (!candidates.is_empty()).then(|| candidates[index.index(candidates.len())])
}

async fn apply(op: &Op, model: &mut Model, real: &mut Real) {
    let held = |node: &Node| node.holds_context;
    let cancellable = |node: &Node| node.holds_handle;
    match op {
        Op::WithCancel(i) => {
            if let Some(n) = pick(model, i, held) {
                let (ctx, handle) = real.ctx(n).with_cancel();
                real.push(ctx, Some(handle));
                model.child(n, None);
            }
        }
        Op::WithTimeout(i, timeout) => {
            if let Some(n) = pick(model, i, held) {
                let (duration, own) = match *timeout {
                    Timeout::Millis(ms) => {
                        let d = Duration::from_millis(ms);
                        (d, Some(model.now + d))
                    }
                    Timeout::Max => (Duration::MAX, None),
                };
                let (ctx, handle) = real.ctx(n).with_timeout(duration);
                real.push(ctx, Some(handle));
                model.child(n, own);
            }
        }
        Op::WithDeadline(i, offset) => {
            if let Some(n) = pick(model, i, held) {
                let magnitude = Duration::from_millis(offset.unsigned_abs());
                let at = if *offset < 0 {
                    model.now - magnitude
                } else {
                    model.now + magnitude
                };
                let (ctx, handle) = real.ctx(n).with_deadline(at);
                real.push(ctx, Some(handle));
                model.child(n, Some(at));
            }
        }
        Op::WithValue(i, value) => {
            if let Some(n) = pick(model, i, held) {
                let ctx = match *value {
                    Value::A(v) => real.ctx(n).with_value(A(v)),
                    Value::B(v) => real.ctx(n).with_value(B(v)),
                };
                real.push(ctx, None);
                model.with_value(n, *value);
            }
        }
        Op::WithoutCancel(i) => {
            if let Some(n) = pick(model, i, held) {
                let ctx = real.ctx(n).without_cancel();
                real.push(ctx, None);
                model.without_cancel(n);
            }
        }
        Op::Cancel(i) => {
            if let Some(n) = pick(model, i, cancellable) {
                real.handles[n]
                    .as_ref()
                    .expect("the model only picks held handles")
                    .cancel();
                let cell = model.nodes[n].cell;
                model.cancel(cell, (Error::Canceled, Error::Canceled.to_string()));
            }
        }
        Op::CancelWith(i, cause) => {
            if let Some(n) = pick(model, i, cancellable) {
                let text = format!("cause #{cause}");
                real.handles[n]
                    .as_ref()
                    .expect("the model only picks held handles")
                    .cancel_with(Cause::msg(text.clone()));
                let cell = model.nodes[n].cell;
                model.cancel(cell, (Error::Canceled, text));
            }
        }
        Op::Advance(ms, _) => {
            let by = Duration::from_millis(*ms);
            tokio::time::advance(by).await;
            model.advance(by);
        }
        Op::DropAll(i) => {
            if let Some(n) = pick(model, i, |node| n_is_not_root(node) && held(node)) {
                real.contexts[n] = None;
                real.handles[n] = None;
                model.nodes[n].holds_context = false;
                model.nodes[n].holds_handle = false;
            }
        }
        Op::DropCancelHandle(i) => {
            if let Some(n) = pick(model, i, cancellable) {
                real.handles[n] = None;
                model.nodes[n].holds_handle = false;
            }
        }
    }
}

/// Node 0 is `Context::background()`, kept for the whole run.
fn n_is_not_root(node: &Node) -> bool {
    node.cell != 0
}

/// Compares every observable of every held context with the model.
fn check(step: usize, op: &Op, model: &Model, real: &Real) {
    assert_eq!(Instant::now(), model.now, "step {step} ({op:?}): clock");
    // Errors first: a deadline that passed is noticed when looked at, and only a noticed
    // expiry unlists the children, which the counts below rely on.
    for (n, node) in model.nodes.iter().enumerate() {
        let Some(ctx) = real.contexts[n].as_ref() else {
            continue;
        };
        let cell = &model.cells[node.cell];
        let want_err = cell.done.as_ref().map(|(err, _)| err.clone());
        let want_cause = cell.done.as_ref().map(|(_, cause)| cause.as_str());
        let at = format!("step {step} ({op:?}), node {n}");
        assert_eq!(ctx.err(), want_err, "{at}: err()");
        assert_eq!(ctx.is_done(), want_err.is_some(), "{at}: is_done()");
        let cause = ctx.cause().map(|c| c.to_string());
        assert_eq!(cause.as_deref(), want_cause, "{at}: cause()");
        assert_eq!(ctx.deadline(), cell.deadline, "{at}: deadline()");
        assert_eq!(ctx.value::<A>().map(|v| v.0), node.a, "{at}: value::<A>()");
        assert_eq!(ctx.value::<B>().map(|v| v.0), node.b, "{at}: value::<B>()");
        if let Some(handle) = real.handles[n].as_ref() {
            assert_eq!(
                handle.is_done(),
                want_err.is_some(),
                "{at}: CancelHandle::is_done()"
            );
        }
    }
    let alive = model.alive_cells();
    for (n, node) in model.nodes.iter().enumerate() {
        let Some(ctx) = real.contexts[n].as_ref() else {
            continue;
        };
        assert_eq!(
            ctx.__live_children(),
            model.live_children(node.cell, &alive),
            "step {step} ({op:?}), node {n}: __live_children()"
        );
    }
}

fn run(ops: &[Op]) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a paused current-thread runtime builds");
    runtime.block_on(async {
        let mut model = Model::new(Instant::now());
        let mut real = Real::default();
        real.push(Context::background(), None);
        for (step, op) in ops.iter().enumerate() {
            apply(op, &mut model, &mut real).await;
            if !matches!(op, Op::Advance(_, false)) {
                check(step, op, &model, &real);
            }
        }
    });
}

proptest! {
    #![proptest_config(Config {
        cases: 256,
        failure_persistence: None,
        ..Config::default()
    })]

    #[test]
    fn the_tree_behaves_like_the_model(ops in prop::collection::vec(op(), 1..64)) {
        run(&ops);
    }
}
