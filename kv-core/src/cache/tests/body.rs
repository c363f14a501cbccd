//! The body state machine the adapters poll: chunks, the end, errors, held chunks.

use std::task::{Context, Waker};

use super::*;
use crate::testing::RemoteLike;

/// A recorder for a `max-age=60` response to `GET uri` (with this `Content-Length`).
async fn recording<St: Store>(
    cache: &Cache<St>,
    uri: &'static str,
    len: Option<&str>,
) -> Box<Recorder<St>> {
    let uri = Uri::from_static(uri);
    let Lookup::Forward(f) = cache
        .lookup(&request_of(&Method::GET, &uri, &HeaderMap::new()))
        .await
    else {
        panic!("a miss")
    };
    let mut list = vec![("cache-control", "max-age=60")];
    if let Some(len) = len {
        list.push(("content-length", len));
    }
    let mut resp = headers(&list);
    match f.response(StatusCode::OK, &mut resp).await {
        Outcome::Record(rec) => rec,
        other => panic!("storable: {other:?}"),
    }
}

async fn body_of<St: Store>(cache: &Cache<St>, uri: &'static str) -> Option<Bytes> {
    let uri = Uri::from_static(uri);
    match cache
        .lookup(&request_of(&Method::GET, &uri, &HeaderMap::new()))
        .await
    {
        Lookup::Hit { response, .. } => Some(response.body),
        Lookup::Forward(_) => None,
    }
}

#[tokio::test]
async fn chunks_then_the_end_store_the_body_on_a_local_store() {
    let h = harness();
    let mut body = BodyRecorder::new(
        Some(recording(&h.cache, "http://example.com/b", None).await),
        LastChunk::AfterStore,
    );
    let mut cx = Context::from_waker(Waker::noop());
    assert!(body.is_active());
    assert!(
        !body.chunk(b"hel", false, &mut cx),
        "a local store never holds a chunk"
    );
    assert!(!body.chunk(b"lo", false, &mut cx));
    body.end();
    assert!(body.poll_store(&mut cx).is_ready(), "stored at once");
    assert!(!body.is_active());
    assert_eq!(
        body_of(&h.cache, "http://example.com/b").await,
        Some(Bytes::from_static(b"hello"))
    );
}

#[tokio::test]
async fn the_last_announced_chunk_is_held_until_a_remote_store_has_the_entry() {
    let cache = Cache::builder(RemoteLike(MemoryStore::new()))
        .build()
        .expect("valid");
    let rec = recording(&cache, "http://example.com/r", Some("5")).await;
    let mut body = BodyRecorder::new(Some(rec), LastChunk::AfterStore);
    let mut cx = Context::from_waker(Waker::noop());
    assert!(!body.chunk(b"hel", false, &mut cx), "not complete yet");
    assert!(
        body.chunk(b"lo", false, &mut cx),
        "Content-Length reached: held until stored"
    );
    assert!(body.is_active(), "the write is under way");
    std::future::poll_fn(|cx| body.poll_store(cx)).await;
    assert!(!body.is_active());
    assert_eq!(
        body_of(&cache, "http://example.com/r").await,
        Some(Bytes::from_static(b"hello"))
    );
}

#[tokio::test]
async fn spawned_writes_release_the_last_chunk_at_once() {
    let cache = Cache::builder(RemoteLike(MemoryStore::new()))
        .build()
        .expect("valid");
    let rec = recording(&cache, "http://example.com/s", None).await;
    let mut body = BodyRecorder::new(Some(rec), LastChunk::Spawn);
    let mut cx = Context::from_waker(Waker::noop());
    assert!(
        !body.chunk(b"all", true, &mut cx),
        "the inner body ended: stored, chunk not held"
    );
    assert!(!body.is_active());
    // The write runs on the runtime (RemoteLike over memory: ready on its first poll).
    tokio::task::yield_now().await;
    assert_eq!(
        body_of(&cache, "http://example.com/s").await,
        Some(Bytes::from_static(b"all"))
    );
}

#[tokio::test]
async fn an_error_or_a_drop_stores_nothing_and_an_idle_recorder_passes_everything() {
    let h = harness();
    let mut cx = Context::from_waker(Waker::noop());
    let mut failed = BodyRecorder::new(
        Some(recording(&h.cache, "http://example.com/e", None).await),
        LastChunk::Spawn,
    );
    assert!(!failed.chunk(b"half", false, &mut cx));
    failed.error();
    failed.end();
    assert!(!failed.is_active());
    assert_eq!(
        body_of(&h.cache, "http://example.com/e").await,
        None,
        "a failed body is not stored"
    );
    let dropped = BodyRecorder::new(
        Some(recording(&h.cache, "http://example.com/d", None).await),
        LastChunk::Spawn,
    );
    drop(dropped);
    assert_eq!(
        body_of(&h.cache, "http://example.com/d").await,
        None,
        "an abandoned body is not stored"
    );
    let mut idle = BodyRecorder::none();
    assert!(!idle.is_active());
    assert!(!idle.chunk(b"x", true, &mut cx));
    assert!(idle.poll_store(&mut cx).is_ready());
}
