//! A parser of the `RateLimit` / `RateLimit-Policy` fields we emit (feature `test-util`):
//! for tests that read them back as a client would.

/// Parses a `RateLimit` or `RateLimit-Policy` header value as a Structured Field list:
/// `[(name, [(param, integer)])]`. Panics when the value is not a list of string items
/// with integer parameters, as a test should.
#[allow(clippy::expect_used)] // test support: a malformed field panics, as a test should.
pub fn parse_rate_limit_header(value: &str) -> Vec<(String, Vec<(String, i64)>)> {
    let list: sfv::List = sfv::Parser::new(value)
        .parse()
        .expect("a Structured Field list");
    list.into_iter()
        .map(|entry| match entry {
            sfv::ListEntry::Item(item) => {
                let name = item
                    .bare_item
                    .as_string()
                    .expect("a string item")
                    .as_str()
                    .to_owned();
                let params = item
                    .params
                    .iter()
                    .map(|(k, v)| {
                        (
                            k.as_str().to_owned(),
                            i64::from(v.as_integer().expect("an integer parameter")),
                        )
                    })
                    .collect();
                (name, params)
            }
            sfv::ListEntry::InnerList(_) => panic!("unexpected inner list in {value:?}"),
        })
        .collect()
}
