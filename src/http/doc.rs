//! The pieces of the OpenAPI document that many operations share: the
//! problem+json body, the error answers, the path and paging parameters.
//! Each handler's `#[utoipa::path]` names the ones it answers with; the
//! document itself is assembled in `web/docs.rs` from the route table.

use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, Schema, SchemaType, Type};
use utoipa::{IntoParams, IntoResponses, ToSchema};

use super::Code;

/// An RFC 9457 problem detail.
// As `ApiError` writes it.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Problem {
    r#type: String,
    title: String,
    status: u16,
    /// For invalid_parameter answers of the anomaly feed: the query parameter at fault
    #[schema(value_type = String, required = false)]
    parameter: Option<String>,
    #[schema(schema_with = code_schema)]
    code: Code,
    detail: String,
}

/// `Problem.code`: every code of the table, and no other.
fn code_schema() -> RefOr<Schema> {
    one_of(Code::ALL.iter().map(|c| c.as_str()))
}

/// A string that is one of `values`.
pub fn one_of<'a>(values: impl IntoIterator<Item = &'a str>) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(SchemaType::Type(Type::String))
        .enum_values(Some(values))
        .into()
}

/// Writes the error answers for the document: `Name / NamePage, status,
/// "description";`, the first as the API answers (problem+json), the
/// second, where a page answers it too, as the pages do.
macro_rules! problems {
    ($($name:ident $(/ $page:ident)?, $status:literal, $description:expr;)+) => {
        $(
            #[derive(IntoResponses)]
            #[response(status = $status, description = $description, content_type = "application/problem+json")]
            #[allow(dead_code)]
            pub struct $name(Problem);

            $(
                #[derive(IntoResponses)]
                #[response(status = $status, description = concat!($description, " (as a page)"), content_type = "text/html")]
                #[allow(dead_code)]
                pub struct $page(String);
            )?
        )+
    };
}

problems! {
    BadRequest / BadRequestPage, 400, "Invalid parameter or body (`invalid_parameter`, `malformed_body`, `invalid_idempotency_key`)";
    ServiceNotFound / ServiceNotFoundPage, 404, "No such service (`service_not_found`)";
    CompanyNotFound / CompanyNotFoundPage, 404, "No such company (`company_not_found`)";
    FilterNotFound / FilterNotFoundPage, 404, "No such service or company (`service_not_found`, `company_not_found`)";
    AnomalyNotFound, 404, "No such anomaly (`anomaly_not_found`)";
    PayloadTooLarge, 413, "Body larger than the limit (`payload_too_large`)";
    UnsupportedMediaType, 415, "Content-Type not accepted (`unsupported_media_type`)";
}

/// 503's description, as the API and the pages answer it.
macro_rules! unavailable {
    () => {
        "The store cannot answer, or the server is overloaded (`store_unavailable`, `overloaded`, `too_many_streams`); retry after Retry-After"
    };
}

#[derive(IntoResponses)]
#[response(
    status = 503,
    description = unavailable!(),
    content_type = "application/problem+json",
    headers(("Retry-After" = u64, description = "Seconds to wait before retrying"))
)]
#[allow(dead_code)]
pub struct Unavailable(Problem);

#[derive(IntoResponses)]
#[response(
    status = 503,
    description = concat!(unavailable!(), " (as a page)"),
    content_type = "text/html",
    headers(("Retry-After" = u64, description = "Seconds to wait before retrying"))
)]
#[allow(dead_code)]
pub struct UnavailablePage(String);

/// A page
#[derive(IntoResponses)]
#[response(status = 200, content_type = "text/html")]
#[allow(dead_code)]
pub struct Html(String);

/// An Atom feed
#[derive(IntoResponses)]
#[response(status = 200, content_type = "application/atom+xml")]
#[allow(dead_code)]
pub struct Atom(String);

/// Not modified (If-None-Match matched the ETag)
#[derive(IntoResponses)]
#[response(status = 304)]
pub struct NotModified;

/// A service in the path.
#[derive(IntoParams)]
#[into_params(names("id"), parameter_in = Path)]
#[allow(dead_code)]
pub struct ServiceId(
    /// Service id or alias, any case
    #[param(example = "whatsapp")]
    String,
);

/// A company in the path.
#[derive(IntoParams)]
#[into_params(names("id"), parameter_in = Path)]
#[allow(dead_code)]
pub struct CompanyId(#[param(example = "meta")] String);
