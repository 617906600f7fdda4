//! Parentheses and braces a `.await` needs are not linted once it is a checkpoint.
#![deny(warnings, unused_parens, unused_braces)]

use ctxpipe::{stage, Error};

async fn num(n: u32) -> u32 {
    n
}

#[stage]
async fn delimited(flag: bool, mut rx: tokio::sync::oneshot::Receiver<u32>) -> Result<u32, Error> {
    let a = (if flag { num(1) } else { num(2) }).await;
    let b = { num(3) }.await;
    let c = (async { 4 }).await;
    let d = (&mut rx).await.unwrap_or(0);
    Ok(a + b + c + d)
}

fn main() {
    let _ = delimited;
}
