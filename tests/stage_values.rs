//! `#[ctx_value]`: typed accessors, values that arrive as parameters by type at any depth,
//! missing values and optional ones.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use ctxpipe::{ctx_value, stage, Context, CtxValue, Error};

#[ctx_value]
#[derive(Debug, PartialEq)]
pub struct UserId(u64);

#[ctx_value]
#[derive(Debug, PartialEq)]
struct Tenant {
    name: String,
}

#[ctx_value]
#[derive(Debug, PartialEq)]
enum Role {
    Admin,
    Reader { since: u32 },
}

#[ctx_value]
#[derive(Debug, PartialEq)]
struct Tagged<T>(T);

#[test]
fn ctx_value_generates_a_typed_accessor() {
    let ctx = Context::background()
        .with_value(UserId(7))
        .with_value(Role::Reader { since: 3 })
        .with_value(Tagged(5u8));
    assert_eq!(UserId::from_ctx(&ctx), Some(&UserId(7)));
    assert_eq!(Role::from_ctx(&ctx), Some(&Role::Reader { since: 3 }));
    assert_eq!(Tagged::<u8>::from_ctx(&ctx), Some(&Tagged(5)));
    assert_eq!(Tagged::<u16>::from_ctx(&ctx), None);
    assert_eq!(Tenant::from_ctx(&ctx), None);
    // The trait is implemented too, for generic code.
    fn through_trait<T: CtxValue>(ctx: &Context) -> Option<&T> {
        T::from_ctx(ctx)
    }
    assert_eq!(through_trait::<UserId>(&ctx), Some(&UserId(7)));
    let _ = Role::Admin;
}

#[stage]
async fn describe(
    #[ctx_value] user: &UserId,
    #[ctx_value] tenant: &Tenant,
    #[ctx_value] role: Option<&Role>,
    #[ctx_value] tag: Option<&Tagged<u8>>,
    entered: &AtomicBool,
) -> Result<String, Error> {
    entered.store(true, Ordering::SeqCst);
    tokio::task::yield_now().await;
    Ok(format!("{}@{} {role:?} {tag:?}", user.0, tenant.name))
}

fn deep(mut ctx: Context, layers: usize) -> Context {
    for layer in 0..layers {
        ctx = if layer % 2 == 0 {
            ctx.with_cancel().0
        } else {
            ctx.with_value(layer as u32)
        };
    }
    ctx
}

#[tokio::test]
async fn values_arrive_as_parameters_by_type_at_any_depth() {
    let entered = AtomicBool::new(false);
    let root = Context::background()
        .with_value(UserId(7))
        .with_value(Tenant {
            name: "acme".into(),
        });
    let ctx = deep(root, 100).with_value(Role::Admin);
    assert_eq!(
        describe(&ctx, &entered).await.unwrap(),
        "7@acme Some(Admin) None"
    );
    let ctx = deep(ctx, 3).with_value(Tagged(1u8));
    assert_eq!(
        describe(&ctx, &entered).await.unwrap(),
        "7@acme Some(Admin) Some(Tagged(1))"
    );
}

#[tokio::test]
async fn a_missing_value_ends_the_stage_before_its_body() {
    let entered = AtomicBool::new(false);
    // Neither `UserId` nor `Tenant`: the first declared one is reported.
    let err = describe(&Context::background(), &entered)
        .await
        .unwrap_err();
    match err {
        Error::MissingValue { type_name } => assert!(type_name.ends_with("UserId"), "{type_name}"),
        other => panic!("expected MissingValue, got {other:?}"),
    }
    let only_user = Context::background().with_value(UserId(1));
    assert!(matches!(
        describe(&only_user, &entered).await,
        Err(Error::MissingValue { type_name }) if type_name.ends_with("Tenant")
    ));
    assert!(!entered.load(Ordering::SeqCst));
}

#[tokio::test]
async fn a_done_context_is_reported_before_missing_values() {
    let entered = AtomicBool::new(false);
    let (ctx, cancel) = Context::background().with_cancel();
    cancel.cancel();
    assert_eq!(describe(&ctx, &entered).await, Err(Error::Canceled));
}

#[stage]
async fn optional_only(#[ctx_value] user: Option<&UserId>) -> Result<Option<u64>, Error> {
    Ok(user.map(|user| user.0))
}

#[tokio::test]
async fn optional_values_are_none_when_missing() {
    assert_eq!(optional_only(&Context::background()).await, Ok(None));
    let ctx = Context::background().with_value(UserId(3));
    assert_eq!(optional_only(&ctx).await, Ok(Some(3)));
}

#[stage]
async fn borrowing(#[ctx_value] tenant: &Tenant) -> Result<&str, Error> {
    tokio::time::sleep(Duration::from_millis(1)).await;
    Ok(&tenant.name)
}

#[tokio::test(start_paused = true)]
async fn a_stage_can_return_a_borrow_of_a_value() {
    let ctx = Context::background().with_value(Tenant {
        name: "acme".into(),
    });
    assert_eq!(borrowing(&ctx).await, Ok("acme"));
}

/// A manual implementation is as good as the attribute.
struct Manual(u8);
impl CtxValue for Manual {}

#[stage]
async fn manual(#[ctx_value] value: &Manual) -> Result<u8, Error> {
    Ok(value.0)
}

#[tokio::test]
async fn manual_ctx_value_impls_work_as_parameters() {
    let ctx = Context::background().with_value(Manual(9));
    assert_eq!(manual(&ctx).await, Ok(9));
}
