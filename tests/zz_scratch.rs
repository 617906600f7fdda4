use ctxpipe::{Context, Error};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[tokio::test(start_paused = true)]
async fn unobserved_deadline_then_cancel() {
    let (ctx, cancel) = Context::background().with_timeout(Duration::from_secs(1));
    tokio::time::advance(Duration::from_secs(2)).await;
    cancel.cancel();
    assert_eq!(ctx.err(), Some(Error::DeadlineExceeded));
}

#[test]
fn concurrent_cancel() {
    let mut fails = 0;
    for _ in 0..20 {
        let (root, root_cancel) = Context::background().with_cancel();
        let (mid, mid_cancel) = root.with_cancel();
        let kids: Vec<_> = (0..100_000).map(|_| mid.with_cancel()).collect();
        let m2 = mid.clone();
        let t = std::thread::spawn(move || mid_cancel.cancel());
        while !m2.is_done() {
            std::hint::spin_loop();
        }
        root_cancel.cancel();
        let first_open = kids.iter().filter(|(k, _)| !k.is_done()).count();
        t.join().unwrap();
        if first_open > 0 {
            fails += 1;
            eprintln!("open after root cancel returned: {first_open}");
        }
    }
    assert_eq!(fails, 0);
}

struct Flag(Arc<AtomicBool>);
impl Drop for Flag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

#[test]
fn background_after_func_leak() {
    let dropped = Arc::new(AtomicBool::new(false));
    let flag = Flag(dropped.clone());
    let af = Context::background().after_func(move || drop(flag));
    drop(af);
    assert!(dropped.load(Ordering::SeqCst), "closure kept forever");
}

#[test]
fn runtime_shutdown_before_timer_polled() {
    let (ctx, _c) = Context::background().with_timeout(Duration::from_millis(50));
    {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut d = std::pin::pin!(ctx.done());
            assert!(futures::poll!(d.as_mut()).is_pending());
        });
    }
    let (tx, rx) = std::sync::mpsc::channel();
    let c2 = ctx.clone();
    std::thread::spawn(move || {
        futures::executor::block_on(c2.done());
        let _ = tx.send(());
    });
    assert!(
        rx.recv_timeout(Duration::from_secs(3)).is_ok(),
        "done() hangs"
    );
}

#[test]
fn runtime_without_time() {
    let (ctx, _c) = Context::background().with_timeout(Duration::from_millis(50));
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(ctx.done());
        let _ = tx.send(());
    });
    assert!(
        rx.recv_timeout(Duration::from_secs(3)).is_ok(),
        "done() hangs without time driver"
    );
}
