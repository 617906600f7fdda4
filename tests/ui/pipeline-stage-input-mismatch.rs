use ctxpipe::{pipeline, stage, Error};

struct Record {
    name: String,
}

#[stage]
async fn parse(line: &'static str) -> Result<Record, Error> {
    Ok(Record { name: line.to_owned() })
}

#[stage]
async fn shout(word: String) -> Result<String, Error> {
    Ok(word.to_uppercase())
}

// `shout` takes a `String`, but `parse` produces a `Record`.
async fn run() -> Result<Vec<String>, Error> {
    pipeline! {
        from ["a", "bb"]
        => parse
        => shout
        => collect
    }
    .await
}

fn main() {
    let _ = run;
    let _ = |record: Record| record.name;
}
