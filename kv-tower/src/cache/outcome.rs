//! The response for what the cache decided: its own answer, or the inner service's
//! response passed on (its body copied when it is being stored).

use bytes::Bytes;
use http::Response;
use http_body::Body;
use kv_core::cache::{BodyRecorder, LastChunk, Outcome};
use kv_core::{Answer, Step, Store};

use super::CacheBody;
use super::body::RecordingBody;
use crate::body::KvBody;
use crate::response::answer;

/// A response from the cache.
pub(crate) fn served<B>(response: Answer) -> Response<CacheBody<B>> {
    answer(response)
}

/// The response for an outcome.
pub(crate) fn respond<St: Store, B>(
    mut head: http::response::Parts,
    body: B,
    outcome: Outcome<St>,
) -> Response<CacheBody<B>>
where
    B: Body<Data = Bytes>,
{
    match outcome {
        Outcome::Pass => Response::from_parts(head, pass(body, BodyRecorder::none())),
        Outcome::Record(recorder) => {
            if let Some(status) = recorder.status() {
                head.status = status;
            }
            // A body known to be empty (a 204, an empty body) may never be polled by the
            // server: store it now.
            if body.is_end_stream() || head.status == http::StatusCode::NO_CONTENT {
                if let Step::Pending(storing) = recorder.finish()
                    && let Ok(rt) = tokio::runtime::Handle::try_current()
                {
                    drop(rt.spawn(storing));
                }
                return Response::from_parts(head, pass(body, BodyRecorder::none()));
            }
            let recorder = BodyRecorder::new(Some(recorder), LastChunk::Spawn);
            Response::from_parts(head, pass(body, recorder))
        }
        Outcome::Replace(replacement) => served(replacement),
    }
}

/// The inner service's body through the cache, copied by `recorder`.
fn pass<B>(body: B, recorder: BodyRecorder) -> CacheBody<B> {
    KvBody::new(RecordingBody::new(body, recorder))
}
