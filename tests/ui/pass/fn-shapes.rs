//! Every function shape `#[stage]` supports compiles, and so do their callers.
#![deny(warnings)]

use std::fmt::Debug;
use std::sync::Arc;

use ctxpipe::{ctx_value, stage, Context, CtxValue, Error};

#[ctx_value]
#[derive(Debug)]
struct UserId(u64);

/// A free function with docs, a `#[ctx_value]` and a plain parameter.
#[stage]
#[must_use = "a stage does nothing unless awaited"]
pub async fn free(#[ctx_value] user: &UserId, n: u32) -> Result<u64, Error> {
    tokio::task::yield_now().await;
    Ok(user.0 + u64::from(n))
}

#[stage]
pub(crate) async fn restricted() -> Result<(), Error> {
    Ok(())
}

#[stage]
async fn optional(#[ctx_value] user: Option<&UserId>) -> Result<Option<u64>, Error> {
    Ok(user.map(|user| user.0))
}

#[stage]
async fn generic<'a, T, U: Debug + ?Sized>(items: &'a [T], tag: &U) -> Result<&'a T, Error>
where
    T: Sync + Debug,
{
    tokio::task::yield_now().await;
    let _ = format!("{tag:?}");
    items.first().ok_or(Error::Canceled)
}

#[stage]
async fn elided(s: &str) -> Result<&str, Error> {
    tokio::task::yield_now().await;
    Ok(s.trim())
}

#[stage]
async fn borrowed_value(#[ctx_value] user: &UserId) -> Result<&u64, Error> {
    Ok(&user.0)
}

#[stage]
async fn impl_trait(
    items: impl IntoIterator<Item = u32>,
    name: impl Into<String>,
) -> Result<u32, Error> {
    let _name: String = name.into();
    tokio::task::yield_now().await;
    Ok(items.into_iter().sum())
}

#[stage]
async fn declared_owned(parent: Context) -> Result<bool, Error> {
    tokio::task::yield_now().await;
    Ok(parent.is_done())
}

#[stage]
async fn declared_ref(n: u8, cx: &ctxpipe::Context) -> Result<u8, Error> {
    tokio::task::yield_now().await;
    let _ = cx;
    Ok(n)
}

#[stage(ctx = c)]
async fn renamed() -> Result<bool, Error> {
    tokio::task::yield_now().await;
    Ok(c.is_done())
}

#[stage]
async fn aliased() -> std::io::Result<()> {
    tokio::task::yield_now().await;
    Ok(())
}

/// # Safety
///
/// Nothing to uphold; `unsafe` is kept on the stage.
#[stage]
#[inline]
#[allow(unused_mut)]
async unsafe fn unsafe_stage(mut n: u8) -> Result<u8, Error> {
    Ok(n)
}

#[stage]
async fn destructured(#[ctx_value] UserId(id): &UserId, (a, b): (u8, u8)) -> Result<u64, Error> {
    Ok(*id + u64::from(a + b))
}

#[ctx_value]
#[derive(Clone, Copy)]
struct Count(u32);

impl From<Count> for u64 {
    fn from(count: Count) -> u64 {
        u64::from(count.0)
    }
}

#[stage]
async fn generic_value<T: CtxValue + Copy + Into<u64>>(
    #[ctx_value] value: &T,
) -> Result<u64, Error> {
    Ok((*value).into())
}

#[stage]
async fn inner_attributes() -> Result<(), Error> {
    #![allow(clippy::let_unit_value)]
    let unit = tokio::task::yield_now().await;
    Ok(unit)
}

#[stage]
async fn returns_self_alias() -> Result<Service, Box<dyn std::error::Error + Send + Sync>> {
    tokio::task::yield_now().await;
    Ok(Service { hits: 0 })
}

/// `ctx` shadowed by each kind of handle to a context the checkpoints accept: anything that
/// dereferences to one.
#[stage]
async fn shadowed_by_handles() -> Result<u32, Error> {
    let (child, _cancel) = ctx.with_cancel();
    let ctx = &&child;
    tokio::task::yield_now().await;
    let ctx = Arc::new(ctx.with_value(Count(1)));
    tokio::task::yield_now().await;
    let ctx = Box::new((*ctx).clone());
    tokio::task::yield_now().await;
    let ctx: Context = *ctx;
    tokio::task::yield_now().await;
    let ctx = std::rc::Rc::new(ctx);
    tokio::task::yield_now().await;
    let ctx = Request((*ctx).clone());
    tokio::task::yield_now().await;
    let shared = tokio::sync::Mutex::new(ctx.0.clone());
    let ctx = shared.lock().await;
    tokio::task::yield_now().await;
    Ok(ctx.value::<Count>().map_or(0, |count| count.0))
}

/// A type of the user's own that dereferences to a context.
struct Request(Context);

impl std::ops::Deref for Request {
    type Target = Context;

    fn deref(&self) -> &Context {
        &self.0
    }
}

#[stage(crate = ::ctxpipe)]
#[tracing::instrument(skip(ctx), level = "debug")]
pub async fn instrumented(n: u32) -> Result<u32, Error> {
    tokio::task::yield_now().await;
    Ok(n)
}

struct Service {
    hits: u32,
}

impl Service {
    #[stage]
    async fn by_ref(&self, #[ctx_value] user: &UserId) -> Result<u64, Error> {
        tokio::task::yield_now().await;
        Ok(user.0 + u64::from(self.hits))
    }

    #[stage]
    async fn by_mut(&mut self) -> Result<u32, Error> {
        tokio::task::yield_now().await;
        self.hits += 1;
        Ok(self.hits)
    }

    #[stage]
    async fn by_arc(self: Arc<Self>) -> Result<u32, Error> {
        tokio::task::yield_now().await;
        Ok(self.hits)
    }

    #[stage]
    async fn by_value(self) -> Result<u32, Error> {
        Ok(self.hits)
    }

    #[stage]
    async fn name(&self) -> Result<&str, Error> {
        Ok("service")
    }
}

trait Fetch {
    #[allow(async_fn_in_trait)]
    async fn fetch(&self, ctx: &Context, id: u32) -> Result<u32, Error>;
}

impl Fetch for Service {
    #[stage]
    async fn fetch(&self, id: u32) -> Result<u32, Error> {
        tokio::task::yield_now().await;
        Ok(id + self.hits)
    }
}

/// A stage written by a `macro_rules!` macro from its caller's name and body: the body sees
/// `ctx`, and its awaits are checkpoints.
macro_rules! counted_stage {
    ($name:ident, $body:block) => {
        #[stage]
        async fn $name() -> Result<u32, Error> $body
    };
}

counted_stage!(from_macro, {
    let open = u32::from(!ctx.is_done());
    tokio::task::yield_now().await;
    Ok(1 + open)
});

/// Methods of an impl with its own lifetime, borrowing their output from an elided input.
struct Parser<'a> {
    source: &'a str,
}

impl<'a> Parser<'a> {
    #[stage]
    async fn rest(&self, skip: usize) -> Result<&'a str, Error> {
        tokio::task::yield_now().await;
        Ok(self.source.get(skip..).unwrap_or(""))
    }

    #[stage]
    async fn first_word(input: &str) -> Result<&str, Error> {
        tokio::task::yield_now().await;
        Ok(input.split(' ').next().unwrap_or(""))
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let ctx = Context::background().with_value(UserId(7));
    assert_eq!(free(&ctx, 1).await?, 8);
    restricted(&ctx).await?;
    assert_eq!(optional(&ctx).await?, Some(7));
    assert_eq!(*generic(&ctx, &[1, 2], "tag").await?, 1);
    assert_eq!(elided(&ctx, " x ").await?, "x");
    assert_eq!(*borrowed_value(&ctx).await?, 7);
    assert_eq!(impl_trait(&ctx, [1, 2], "n").await?, 3);
    assert!(!declared_owned(ctx.clone()).await?);
    assert_eq!(declared_ref(3, &ctx).await?, 3);
    assert!(!renamed(&ctx).await?);
    aliased(&ctx).await.map_err(|_| Error::Canceled)?;
    // SAFETY: `unsafe_stage` has no requirements.
    assert_eq!(unsafe { unsafe_stage(&ctx, 1) }.await?, 1);
    assert_eq!(destructured(&ctx, (1, 2)).await?, 10);
    let counted = ctx.with_value(Count(5));
    assert_eq!(generic_value::<Count>(&counted).await?, 5);
    inner_attributes(&ctx).await?;
    assert_eq!(shadowed_by_handles(&ctx).await?, 1);
    assert_eq!(
        returns_self_alias(&ctx)
            .await
            .map_err(|_| Error::Canceled)?
            .hits,
        0
    );
    let mut service = Service { hits: 1 };
    assert_eq!(service.by_ref(&ctx).await?, 8);
    assert_eq!(service.by_mut(&ctx).await?, 2);
    assert_eq!(service.name(&ctx).await?, "service");
    assert_eq!(service.fetch(&ctx, 1).await?, 3);
    assert_eq!(Arc::new(Service { hits: 5 }).by_arc(&ctx).await?, 5);
    assert_eq!(service.by_value(&ctx).await?, 2);
    assert_eq!(instrumented(&ctx, 4).await?, 4);
    assert_eq!(from_macro(&ctx).await?, 2);
    let parser = Parser { source: "ab cd" };
    assert_eq!(parser.rest(&ctx, 3).await?, "cd");
    assert_eq!(Parser::first_word(&ctx, parser.source).await?, "ab");
    Ok(())
}
