//! The code that `#[stage]` and `#[ctx_value]` generate, written out by hand.
//!
//! The original code is quoted below; after it comes its expansion, formatted. `__private` is
//! the hidden module that only generated code names, `ctx` resolves where the user wrote it,
//! and the `__`-prefixed names are hygienic temporaries that cannot clash with the user's.
//! Run it with `cargo run --example stage-expanded`.

// Original code, as users write it:
//
// #[ctx_value]
// #[derive(Debug)]
// pub struct UserId(pub u64);
//
// /// Loads a user's profile; the avatar gets at most 50ms of it.
// #[stage]
// pub async fn load_profile(
//     #[ctx_value] user: &UserId,
//     #[ctx_value] locale: Option<&Locale>,
//     db: &Db,
// ) -> Result<Profile, AppError> {
//     let row = db.query(user.0).await?;
//     let (hurried, _cancel) = ctx.with_timeout(Duration::from_millis(50));
//     let avatar = fetch_avatar(&hurried, &row.avatar_url).await.ok();
//     #[uninterruptible]
//     db.log_access(user.0).await;
//     Ok(Profile { name: row.name, avatar, locale: locale.map(|locale| locale.0) })
// }

use std::time::Duration;

use ctxpipe::{ctx_value, Context, Error};

// #[ctx_value]
#[derive(Debug)]
pub struct UserId(pub u64);
const _: () = {
    impl UserId {
        // Each field must be `Send + Sync`; an error points at the field's type.
        #[allow(dead_code)]
        fn __ctxpipe_assert_fields() {
            ::ctxpipe::__private::assert_field_send::<u64>();
            ::ctxpipe::__private::assert_field_sync::<u64>();
        }
    }
    #[automatically_derived]
    impl ::ctxpipe::__private::CtxValue for UserId where
        for<'__ctx_value> UserId: ::core::marker::Send + ::core::marker::Sync + '__ctx_value
    {
    }
    impl UserId
    where
        for<'__ctx_value> UserId: ::core::marker::Send + ::core::marker::Sync + '__ctx_value,
    {
        #[doc = "The `UserId` carried by `ctx` or by its nearest ancestor that has one, if any: a lookup by type, as cheap at any depth."]
        #[inline]
        pub fn from_ctx(ctx: &::ctxpipe::__private::Context) -> ::core::option::Option<&Self> {
            ::ctxpipe::__private::from_ctx::<Self>(ctx)
        }
    }
};

/// The user's preferred language (left as written: the macro itself is used here).
#[ctx_value]
#[derive(Debug)]
pub struct Locale(pub &'static str);

// #[stage]
/// Loads a user's profile; the avatar gets at most 50ms of it.
pub async fn load_profile(
    ctx: &::ctxpipe::__private::Context,
    db: &Db,
) -> Result<Profile, AppError> {
    // The trait of the identity call `().__stage_await(..)` (below).
    #[allow(unused_imports)]
    use ::ctxpipe::__private::StageAwait as _;
    // On entry: a done context ends the stage before any of its body.
    if let ::core::option::Option::Some(__error) = ::ctxpipe::__private::entry(ctx) {
        return ::ctxpipe::__private::stage_error(__error);
    }
    // One registration with the context, shared by the checkpoints on it. Every checkpoint
    // here races the stage's own `ctx`, which the stage borrows: so does this, taking no
    // reference count. (A stage that may shadow `ctx`, or owns its context, gets
    // `__private::watch(ctx)`, which owns a handle and can move to a shadowing context.)
    #[allow(unused_mut, unused_variables)]
    let mut __watch = ::ctxpipe::__private::home_watch(ctx);
    // Then the `#[ctx_value]` parameters, in declaration order.
    let user: &UserId = match ::ctxpipe::__private::value::<UserId>(ctx) {
        ::core::option::Option::Some(__value) => __value,
        ::core::option::Option::None => {
            return ::ctxpipe::__private::stage_error(::ctxpipe::__private::missing::<UserId>())
        }
    };
    let locale: Option<&Locale> = ::ctxpipe::__private::value::<Locale>(ctx);
    // Each await is a checkpoint on the `ctx` in scope where it is written. This body never
    // binds `ctx` again, so that is the stage's own, which `__watch` watches:
    // `__private::watched` needs nothing else. (In a body that may shadow `ctx`, each
    // checkpoint is `__private::checkpoint(future, &ctx, &mut __watch)`, and `__watch` moves
    // to the `ctx` in scope when it differs.) The identity call `().__stage_await(..)` only
    // gives the expression the spans of the user's own tokens, so that lints and the user's
    // edition apply to it as to the await it replaces.
    let row = ().__stage_await(
        match ::ctxpipe::__private::watched(db.query(user.0), &mut __watch).await {
            ::core::result::Result::Ok(__value) => __value,
            ::core::result::Result::Err(__error) => {
                return ::ctxpipe::__private::stage_error(__error)
            }
        },
    )?;
    // A child context bounds only the calls made with it (shadowing `ctx` instead would
    // bound this checkpoint and all the later ones too).
    let (hurried, _cancel) = ctx.with_timeout(Duration::from_millis(50));
    let avatar = ()
        .__stage_await(
            match ::ctxpipe::__private::watched(
                fetch_avatar(&hurried, &row.avatar_url),
                &mut __watch,
            )
            .await
            {
                ::core::result::Result::Ok(__value) => __value,
                ::core::result::Result::Err(__error) => {
                    return ::ctxpipe::__private::stage_error(__error)
                }
            },
        )
        .ok();
    // #[uninterruptible]: a plain await.
    db.log_access(user.0).await;
    Ok(Profile {
        name: row.name,
        avatar,
        locale: locale.map(|locale| locale.0),
    })
}

#[derive(Debug)]
pub struct Profile {
    pub name: String,
    pub avatar: Option<String>,
    pub locale: Option<&'static str>,
}

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Context(#[from] Error),
    #[error("no user {0}")]
    NoSuchUser(u64),
}

pub struct Row {
    name: String,
    avatar_url: String,
}

pub struct Db;

impl Db {
    async fn query(&self, id: u64) -> Result<Row, AppError> {
        tokio::time::sleep(Duration::from_millis(10)).await;
        match id {
            0 => Err(AppError::NoSuchUser(id)),
            _ => Ok(Row {
                name: format!("user {id}"),
                avatar_url: format!("https://avatars.example/{id}"),
            }),
        }
    }

    async fn log_access(&self, id: u64) {
        tokio::time::sleep(Duration::from_millis(5)).await;
        println!("  access to user {id} logged");
    }
}

/// A slow avatar service: it takes longer than the 50ms the profile gives it.
async fn fetch_avatar(ctx: &Context, url: &str) -> Result<String, Error> {
    ctx.run(tokio::time::sleep(Duration::from_millis(80)))
        .await?;
    Ok(format!("{url}.png"))
}

#[tokio::main(flavor = "current_thread", start_paused = true)]
async fn main() -> Result<(), AppError> {
    let ctx = Context::background()
        .with_value(UserId(7))
        .with_value(Locale("fr"));
    println!("user from the context: {:?}", UserId::from_ctx(&ctx));

    let profile = load_profile(&ctx, &Db).await?;
    println!("profile: {profile:?}");
    assert_eq!(profile.avatar, None, "the avatar call ran out of its 50ms");
    assert_eq!(profile.locale, Some("fr"));

    let (cancelled, cancel) = ctx.with_cancel();
    cancel.cancel();
    let err = load_profile(&cancelled, &Db).await.unwrap_err();
    println!("on a cancelled context: {err}");
    assert!(matches!(err, AppError::Context(Error::Canceled)));

    let err = load_profile(&Context::background(), &Db).await.unwrap_err();
    println!("without a user: {err}");
    assert!(matches!(err, AppError::Context(Error::MissingValue { .. })));
    Ok(())
}
