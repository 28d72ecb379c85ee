//! What every REST route shares: the correlation id, the JSON error body, extractors whose
//! rejections are that body rather than axum's plain text, and `/health` with `/ready`.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use hubspoke_fsm::ErrorBody;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tracing::Instrument;

mod health;
pub use health::{health_routes, Check, Readiness};
#[cfg(any(test, feature = "test-support"))]
pub mod test_support;

pub const CORRELATION_ID: HeaderName = HeaderName::from_static("correlation_id");
const MAX_CORRELATION_ID_LEN: usize = 256;

/// The request's correlation id: the `correlation_id` header, or a new UUID.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CorrelationId(pub String);

impl CorrelationId {
    fn from_headers(headers: &axum::http::HeaderMap) -> Option<CorrelationId> {
        let value = headers.get(&CORRELATION_ID)?.to_str().ok()?.trim();
        // An empty or oversized id is useless in logs: replace it rather than refuse the call.
        (!value.is_empty() && value.len() <= MAX_CORRELATION_ID_LEN)
            .then(|| CorrelationId(value.to_string()))
    }

    fn new_random() -> CorrelationId {
        CorrelationId(uuid::Uuid::new_v4().to_string())
    }
}

impl<S: Send + Sync> FromRequestParts<S> for CorrelationId {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        if let Some(id) = parts.extensions.get::<CorrelationId>() {
            return Ok(id.clone());
        }
        Ok(CorrelationId::from_headers(&parts.headers).unwrap_or_else(CorrelationId::new_random))
    }
}

/// Middleware: fixes the request's correlation id once (an outer layer's id is kept), so the
/// handler, the error body and the response header agree; echoes it as the `correlation_id`
/// response header, and writes it into the body of an [`ApiError`].
pub async fn correlation_middleware(mut request: Request, next: Next) -> Response {
    let id = match request.extensions().get::<CorrelationId>() {
        Some(id) => id.clone(),
        None => {
            CorrelationId::from_headers(request.headers()).unwrap_or_else(CorrelationId::new_random)
        }
    };
    request.extensions_mut().insert(id.clone());
    // Every log line of the request carries its correlation id (and the flow id, where the
    // handler knows it, as a field of its own lines).
    let span = tracing::info_span!(
        "http",
        correlation_id = %id.0,
        method = %request.method(),
        path = %request.uri().path()
    );
    let mut response = next.run(request).instrument(span).await;
    if let Some(error) = response.extensions_mut().remove::<ApiError>() {
        response = error.render(&id.0);
    }
    if let Ok(value) = HeaderValue::from_str(&id.0) {
        response.headers_mut().insert(CORRELATION_ID, value);
    }
    response
}

/// An error answer: the status and the contract's JSON body. The correlation id in the body
/// is the request's, filled in by [`correlation_middleware`].
#[derive(Clone, Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub error_type: String,
    pub error_message: String,
    pub error_description: String,
}

#[derive(Serialize)]
struct ErrorJson<'a> {
    error_type: &'a str,
    error_message: &'a str,
    error_description: &'a str,
    correlation_id: &'a str,
}

impl ApiError {
    pub fn new(
        status: StatusCode,
        error_type: &str,
        error_message: impl Into<String>,
        error_description: impl Into<String>,
    ) -> Self {
        ApiError {
            status,
            error_type: error_type.to_string(),
            error_message: error_message.into(),
            error_description: error_description.into(),
        }
    }

    pub fn bad_request(description: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "bad-request",
            "Invalid request",
            description,
        )
    }

    pub fn not_found(message: &str, description: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", message, description)
    }

    /// An error the topology sent back; a status that is not an error status becomes 500.
    pub fn from_body(body: &ErrorBody) -> Self {
        let status = StatusCode::from_u16(body.status)
            .ok()
            .filter(|s| s.is_client_error() || s.is_server_error())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        Self::new(
            status,
            &body.error_type,
            body.error_message.clone(),
            body.error_description.clone(),
        )
    }

    fn render(&self, correlation_id: &str) -> Response {
        let body = ErrorJson {
            error_type: &self.error_type,
            error_message: &self.error_message,
            error_description: &self.error_description,
            correlation_id,
        };
        (self.status, Json(body)).into_response()
    }
}

impl IntoResponse for ApiError {
    /// The body as a router without [`correlation_middleware`] would send it (no id); the
    /// middleware renders it again, with the id, from the error kept in the extensions.
    fn into_response(self) -> Response {
        let mut response = self.render("");
        response.extensions_mut().insert(self);
        response
    }
}

/// A JSON request body. Reads the body whatever its content type (clients forget it) and
/// answers a malformed one with the contract's 400 body.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = body_bytes(request, state).await?;
        json(&bytes).map(JsonBody)
    }
}

/// A JSON request body that may be left out: an empty or blank body is `None`. Otherwise as
/// [`JsonBody`].
pub struct OptionalJsonBody<T>(pub Option<T>);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for OptionalJsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = body_bytes(request, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJsonBody(None));
        }
        json(&bytes).map(|value| OptionalJsonBody(Some(value)))
    }
}

/// The whole body; one that cannot be read (too large, broken) is the contract's error.
async fn body_bytes<S: Send + Sync>(
    request: Request,
    state: &S,
) -> Result<axum::body::Bytes, ApiError> {
    axum::body::Bytes::from_request(request, state)
        .await
        .map_err(|rejection| {
            ApiError::new(
                rejection.status(),
                "bad-request",
                "Invalid request",
                rejection.body_text(),
            )
        })
}

fn json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::bad_request(format!("malformed JSON body: {e}")))
}

/// Path parameters whose rejection is the contract's 400 body.
pub struct PathParams<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for PathParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(value)| PathParams(value))
            .map_err(|rejection| ApiError::bad_request(rejection.body_text()))
    }
}

/// Fallback for unknown routes: 404 with the JSON body.
pub async fn not_found_fallback(request: Request) -> ApiError {
    let description = format!("no route {} {}", request.method(), request.uri().path());
    ApiError::not_found("Not found", description)
}

/// Fallback for a known path with the wrong method: 405 with the JSON body.
pub async fn method_not_allowed_fallback(request: Request) -> ApiError {
    let description = format!(
        "{} is not supported on {}",
        request.method(),
        request.uri().path()
    );
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        "Method not allowed",
        description,
    )
}
