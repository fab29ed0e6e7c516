//! HTTP plumbing shared by the public and admin listeners.

pub(crate) mod body;
pub(crate) mod conditional;
mod framing;
pub(crate) mod http3;
pub(crate) mod range;
pub(crate) mod representation;
pub(crate) mod server;
pub(crate) mod tls;

use http::header::{CONTENT_TYPE, HeaderValue};
use http::{Response, StatusCode};

use crate::error::RequestError;
use body::ResponseBody;

/// Hands the request's observer to the response body, which records the
/// request in the metrics when it finishes or is dropped.
pub(crate) fn observed(
    response: Response<ResponseBody>,
    mut observer: crate::metrics::ResponseObserver,
    cache: &'static str,
    source: &'static str,
) -> Response<ResponseBody> {
    observer.set_outcome(response.status().as_u16(), cache, source);
    let (parts, body) = response.into_parts();
    Response::from_parts(parts, body.observed(observer))
}

/// A short plain-text response, the shape of every error we send.
pub(crate) fn text_response(status: StatusCode, message: &str) -> Response<ResponseBody> {
    let mut response = Response::new(ResponseBody::full(format!("{message}\n")));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// The response for a request that failed, with the headers its status needs.
pub(crate) fn error_response(err: &RequestError) -> Response<ResponseBody> {
    let mut response = text_response(err.status(), &err.to_string());
    let headers = response.headers_mut();
    match err {
        RequestError::MethodNotAllowed { allow } => {
            headers.insert(http::header::ALLOW, HeaderValue::from_static(allow));
        }
        // A request we could not make sense of leaves the connection in an
        // unknown state: close it rather than parse what follows.
        RequestError::BadRequest(_) => {
            headers.insert(http::header::CONNECTION, HeaderValue::from_static("close"));
        }
        RequestError::Unauthorized => {
            headers.insert(
                http::header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer"),
            );
        }
        _ => {}
    }
    response
}

/// A JSON response from any serialisable value.
pub(crate) fn json_response(
    status: StatusCode,
    value: &impl serde::Serialize,
) -> Response<ResponseBody> {
    let mut body = serde_json::to_vec_pretty(value).unwrap_or_else(|_| b"{}".to_vec());
    body.push(b'\n');
    let mut response = Response::new(ResponseBody::full(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}
