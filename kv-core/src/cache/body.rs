//! [`BodyRecorder`]: the one state machine that copies a response body into the cache as
//! it streams to the client. The adapters' body types (kv-tower's `CacheBody`, kv-actix's)
//! only poll their inner body and report what went by.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;

use super::recorder::{Recorder, Storing};
use crate::{Step, Store};

/// A [`Recorder`] with its store type erased, so that a body type need not name it.
trait Sink: Send {
    fn push(&mut self, chunk: &[u8]);
    fn abandon(&mut self);
    fn is_recording(&self) -> bool;
    fn is_complete(&self) -> bool;
    fn finish(self: Box<Self>) -> Step<(), Storing>;
}

impl<St: Store> Sink for Recorder<St> {
    fn push(&mut self, chunk: &[u8]) {
        Recorder::push(self, chunk);
    }
    fn abandon(&mut self) {
        Recorder::abandon(self);
    }
    fn is_recording(&self) -> bool {
        Recorder::is_recording(self)
    }
    fn is_complete(&self) -> bool {
        Recorder::is_complete(self)
    }
    fn finish(self: Box<Self>) -> Step<(), Storing> {
        Recorder::finish_boxed(self)
    }
}

/// When the last chunk of a body goes out while its store write still waits (a remote
/// store).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LastChunk {
    /// Hand the write to the tokio runtime, when there is one, and send the chunk at once
    /// (the client is not kept waiting for the store; the next request may still miss).
    /// Without a runtime, as [`AfterStore`](LastChunk::AfterStore).
    Spawn,
    /// Send the chunk once the entry is stored, so that the next request finds it (for
    /// servers that stop polling a body after its announced length).
    AfterStore,
}

/// Copies a response body into the cache while it streams: push each chunk with
/// [`chunk`](BodyRecorder::chunk), report the end with [`end`](BodyRecorder::end) or a
/// failure with [`error`](BodyRecorder::error), and poll
/// [`poll_store`](BodyRecorder::poll_store) before the inner body (it drives a pending
/// write). A body that is dropped before its end stores nothing.
///
/// The entry is stored as soon as every announced byte went by (`Content-Length`, or the
/// inner body reporting its end), because a server may stop polling then; the end of an
/// unannounced body is held until the entry is stored, so that the next request finds it.
///
/// **Ranges.** When the cache answers a `Range` request from the whole response it
/// records, only a window of the body goes to the client: pass every data chunk through
/// [`emit`](BodyRecorder::emit) (what it returns is what to send), report
/// [`size`](BodyRecorder::size) as the body's length, and while
/// [`draining`](BodyRecorder::draining) keep reading the inner body (holding the last
/// chunk sent) so that the whole response is recorded before the client's body ends.
pub struct BodyRecorder {
    sink: Option<Box<dyn Sink>>,
    storing: Option<Storing>,
    last: LastChunk,
    /// The range window and the body bytes seen so far (boxed: the body type that holds
    /// this is moved on every response).
    window: Option<Box<Window>>,
}

#[derive(Debug)]
struct Window {
    start: u64,
    end: u64,
    pos: u64,
}

impl BodyRecorder {
    /// Records into `recorder` (`None`: a body that is not cached, passed through).
    pub fn new<St: Store>(recorder: Option<Box<Recorder<St>>>, last: LastChunk) -> Self {
        let window = recorder
            .as_ref()
            .and_then(|r| r.window)
            .map(|(start, end)| Box::new(Window { start, end, pos: 0 }));
        BodyRecorder {
            sink: recorder.map(|r| r as Box<dyn Sink>),
            storing: None,
            last,
            window,
        }
    }

    /// Nothing to record.
    pub fn none() -> Self {
        BodyRecorder {
            sink: None,
            storing: None,
            last: LastChunk::AfterStore,
            window: None,
        }
    }

    /// What to send of a data chunk: all of it, or the part inside the range window;
    /// `None` when nothing of it is sent.
    pub fn emit(&mut self, data: Bytes) -> Option<Bytes> {
        let Some(w) = self.window.as_mut() else {
            return Some(data);
        };
        let from = w.pos;
        w.pos = from.saturating_add(data.len() as u64);
        let a = w.start.max(from).min(w.pos) - from;
        let b = w.end.min(w.pos).max(from) - from;
        (a < b).then(|| data.slice(to_usize(a)..to_usize(b)))
    }

    /// The length of the body sent, when only a window of it is (a range); else the
    /// inner body's size stands.
    pub fn size(&self) -> Option<u64> {
        self.window.as_ref().map(|w| w.end - w.start)
    }

    /// Whether every byte of the window went by but the body is still being recorded:
    /// hold what is to be sent and keep reading the inner body to its end.
    pub fn draining(&self) -> bool {
        self.window.as_ref().is_some_and(|w| w.pos >= w.end) && self.sink.is_some()
    }

    /// Whether a copy or a write is still under way (a body is not at its end while it is).
    pub fn is_active(&self) -> bool {
        self.sink.is_some() || self.storing.is_some()
    }

    /// Drives a write that waits for the store: `Ready` when the body may go on (a held
    /// chunk may now be sent, a held end reported).
    pub fn poll_store(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if let Some(storing) = self.storing.as_mut() {
            if Pin::new(storing).poll(cx).is_pending() {
                return Poll::Pending;
            }
            self.storing = None;
        }
        Poll::Ready(())
    }

    /// A chunk of data went by; `inner_ended`: the inner body says it has ended (so this
    /// was its last chunk). `true` means: hold the chunk, and send it once
    /// [`poll_store`](BodyRecorder::poll_store) is `Ready`.
    pub fn chunk(&mut self, data: &[u8], inner_ended: bool, cx: &mut Context<'_>) -> bool {
        let Some(sink) = self.sink.as_mut() else {
            return false;
        };
        sink.push(data);
        if !sink.is_recording() {
            self.sink = None;
            return false;
        }
        if !(sink.is_complete() || inner_ended) {
            return false;
        }
        let Some(sink) = self.sink.take() else {
            return false;
        };
        let Step::Pending(mut storing) = sink.finish() else {
            return false;
        };
        if self.last == LastChunk::Spawn {
            if Pin::new(&mut storing).poll(cx).is_ready() {
                return false;
            }
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                drop(runtime.spawn(storing));
                return false;
            }
        }
        self.storing = Some(storing);
        true
    }

    /// The inner body ended: the entry is stored (hold the end until
    /// [`poll_store`](BodyRecorder::poll_store) is `Ready`).
    pub fn end(&mut self) {
        if let Some(sink) = self.sink.take()
            && let Step::Pending(storing) = sink.finish()
        {
            self.storing = Some(storing);
        }
    }

    /// The inner body failed: nothing is stored.
    pub fn error(&mut self) {
        if let Some(mut sink) = self.sink.take() {
            sink.abandon();
        }
    }
}

impl fmt::Debug for BodyRecorder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BodyRecorder")
            .field("recording", &self.sink.is_some())
            .field("storing", &self.storing.is_some())
            .field("last", &self.last)
            .finish()
    }
}

fn to_usize(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}
