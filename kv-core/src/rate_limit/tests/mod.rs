use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::StatusCode;

use super::parse_rate_limit_header;
use super::*;

mod admit;
mod algorithms;
mod policies;
use crate::clock::ManualClock;
use crate::{Answer, MemoryStore, Ttl};

fn request(peer: &str) -> http::Request<()> {
    let mut r = http::Request::builder()
        .uri("/api")
        .body(())
        .expect("request");
    r.extensions_mut()
        .insert(peer.parse::<SocketAddr>().expect("addr"));
    r
}

/// A header of an allowed verdict (`Headers`) or of a rejection (`Answer::headers`).
fn header<'a>(headers: &'a impl HeaderList, name: &str) -> Option<&'a str> {
    headers.find(name)
}

trait HeaderList {
    fn find(&self, name: &str) -> Option<&str>;
}

impl HeaderList for Headers {
    fn find(&self, name: &str) -> Option<&str> {
        self.iter()
            .find(|(n, _)| n.as_str() == name)
            .and_then(|(_, v)| v.to_str().ok())
    }
}

impl HeaderList for http::HeaderMap {
    fn find(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(|v| v.to_str().ok())
    }
}

fn setup(policy: Policy) -> (RateLimiter<MemoryStore>, ManualClock) {
    let clock = ManualClock::new();
    let store = MemoryStore::with_clock(clock.clone());
    let limiter = RateLimiter::builder(store)
        .policy(policy)
        .clock(clock.clone())
        .build()
        .expect("limiter");
    (limiter, clock)
}
