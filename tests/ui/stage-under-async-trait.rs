use std::future::Future;
use std::pin::Pin;

use ctxpipe::{stage, Context, Error};

struct Handler;

impl Handler {
    // What `#[async_trait]` turns `async fn handle(&self, ctx: &Context) -> Result<u32, Error>`
    // into, before `#[stage]` (written below it) sees it.
    #[stage]
    fn handle<'life0, 'life1, 'async_trait>(
        &'life0 self,
        ctx: &'life1 Context,
    ) -> Pin<Box<dyn Future<Output = Result<u32, Error>> + Send + 'async_trait>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(async move {
            let _ = ctx;
            Ok(1)
        })
    }
}

fn main() {}
