//! `#[stage]` stacked with other attribute macros: `#[tracing::instrument]` below it sees the
//! expanded function (with its `ctx` parameter) and wraps the whole stage: the entry check, the
//! `#[ctx_value]` lookups and the checkpoints.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use ctxpipe::{ctx_value, stage, Context, Error};
use tracing::span::{Attributes, Id};
use tracing::Subscriber;
use tracing_subscriber::layer::{Context as LayerContext, SubscriberExt};
use tracing_subscriber::Layer;

#[ctx_value]
struct Tenant(&'static str);

/// Loads an order for the current tenant.
#[stage]
#[tracing::instrument(skip(ctx), fields(tenant = tracing::field::Empty), err)]
async fn load_order(#[ctx_value] tenant: &Tenant, id: u32) -> Result<u32, Error> {
    // `instrument` sees the expanded signature: `ctx` and `id`, not the `#[ctx_value]`s,
    // which are bound inside the body.
    tracing::Span::current().record("tenant", tenant.0);
    tokio::time::sleep(Duration::from_secs(1)).await;
    Ok(id * 2)
}

/// Records the spans created (name and fields) and the fields recorded later.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<String>>>, Arc<Mutex<Vec<String>>>);

impl<S: Subscriber> Layer<S> for Recorder {
    fn on_new_span(&self, attrs: &Attributes<'_>, _: &Id, _: LayerContext<'_, S>) {
        let mut fields = String::new();
        attrs.record(
            &mut |field: &tracing::field::Field, value: &dyn std::fmt::Debug| {
                fields.push_str(&format!(" {}={value:?}", field.name()));
            },
        );
        self.0
            .lock()
            .unwrap()
            .push(format!("{}{fields}", attrs.metadata().name()));
    }

    fn on_record(&self, _: &Id, values: &tracing::span::Record<'_>, _: LayerContext<'_, S>) {
        let mut fields = Vec::new();
        values.record(
            &mut |field: &tracing::field::Field, value: &dyn std::fmt::Debug| {
                fields.push(format!("{}={value:?}", field.name()));
            },
        );
        self.1.lock().unwrap().extend(fields);
    }
}

#[tokio::test(start_paused = true)]
async fn instrument_wraps_the_stage() {
    let recorder = Recorder::default();
    let subscriber = tracing_subscriber::registry().with(recorder.clone());
    let _guard = tracing::subscriber::set_default(subscriber);

    let ctx = Context::background().with_value(Tenant("acme"));
    assert_eq!(load_order(&ctx, 21).await, Ok(42));

    let (short, _cancel) = ctx.with_timeout(Duration::from_millis(10));
    assert_eq!(
        load_order(&short, 1).await,
        Err(Error::DeadlineExceeded),
        "the checkpoints still work inside the instrumented body"
    );
    let spans = recorder.0.lock().unwrap().clone();
    assert_eq!(spans, ["load_order id=21", "load_order id=1"]);
    let recorded = recorder.1.lock().unwrap().clone();
    assert_eq!(recorded, ["tenant=\"acme\"", "tenant=\"acme\""]);
}
