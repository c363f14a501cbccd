//! Engine tests without any web framework: a counting store over `MemoryStore`, a manual
//! clock, headers built by hand.

use std::time::Duration;

use http::{HeaderMap, HeaderValue, StatusCode, header};

use super::*;

mod changes;
mod cookies;
mod lifecycle;
mod recycle;
mod users;
mod v2;
use crate::Step;
use crate::clock::ManualClock;
use crate::testing::{CountingStore, UnavailableStore};
use crate::{MemoryStore, Store, Ttl};

const IDLE: Duration = Duration::from_secs(10 * 60);
const ABSOLUTE: Duration = Duration::from_secs(60 * 60);

struct Fixture {
    clock: ManualClock,
    store: CountingStore<MemoryStore>,
    sessions: SessionManager,
}

fn fixture() -> Fixture {
    fixture_with(|b| b)
}

fn fixture_with(f: impl FnOnce(SessionManagerBuilder) -> SessionManagerBuilder) -> Fixture {
    let clock = ManualClock::new();
    let store = CountingStore::new(MemoryStore::with_clock(clock.clone()));
    let builder = SessionManager::builder(store.clone())
        .clock(clock.clone())
        .idle_timeout(IDLE)
        .absolute_timeout(ABSOLUTE);
    let sessions = f(builder).build().expect("valid config");
    Fixture {
        clock,
        store,
        sessions,
    }
}

/// A request carrying these headers, as an adapter hands it to the engine.
fn with_headers(headers: &HeaderMap) -> http::Request<()> {
    let mut request = http::Request::new(());
    *request.headers_mut() = headers.clone();
    request
}

/// The `Cookie` header a browser sends back after `set_cookie`.
fn cookie_from(set_cookie: &HeaderValue) -> HeaderMap {
    let text = set_cookie.to_str().expect("ascii");
    let pair = text.split(';').next().expect("pair").to_owned();
    let mut headers = HeaderMap::new();
    headers.insert(header::COOKIE, HeaderValue::try_from(pair).expect("value"));
    headers
}

fn cookie_value(set_cookie: &HeaderValue) -> String {
    let text = set_cookie.to_str().expect("ascii");
    let pair = text.split(';').next().expect("pair");
    pair.split_once('=').expect("=").1.to_owned()
}

impl Fixture {
    /// A new session holding `key = value`; the browser's `Cookie` header for it.
    async fn new_session(&self, key: &str, value: &str) -> HeaderMap {
        let s = self.sessions.start(&with_headers(&HeaderMap::new()));
        s.insert(key, value).await.expect("insert");
        let set = s
            .end(StatusCode::OK)
            .await
            .expect("finish")
            .expect("cookie");
        cookie_from(&set)
    }

    async fn read(&self, cookie: &HeaderMap, key: &str) -> Option<String> {
        let s = self.sessions.start(&with_headers(cookie));
        let v = s.get::<String>(key).await.expect("get");
        s.end(StatusCode::OK).await.expect("finish");
        v
    }

    fn record_count(&self) -> usize {
        self.store.inner().len()
    }
}

/// The `Cookie` header's pair, shaped like a `Set-Cookie` value for `cookie_value`.
fn cookie_header_as_set(cookie: &HeaderMap) -> HeaderValue {
    cookie.get(header::COOKIE).expect("cookie").clone()
}
