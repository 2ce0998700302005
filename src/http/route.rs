//! A route as the server registers it and as the OpenAPI document shows
//! it, from one source: the handler's `#[utoipa::path]` gives the method,
//! the path and the operation, and the registration uses that same method
//! and path. The route tables ([`super::table`], `web::table`) are then the
//! one list of what the server answers: the app registers them, the
//! document is built from them, the tests read them.

use actix_web::guard::Guard;
use actix_web::http::Method;
use actix_web::{FromRequest, Handler, Responder, web};
use utoipa::openapi::path::{HttpMethod, Operation};

/// One route: where, how, and what the document says of it.
pub struct Route {
    pub method: HttpMethod,
    /// The path template, as actix-web and OpenAPI both write it
    /// (`/api/v1/services/{id}`).
    pub path: String,
    pub operation: Operation,
    route: actix_web::Route,
}

/// A documented route that has no handler yet: [`Documented::to`] gives it one.
pub struct Documented {
    method: HttpMethod,
    path: String,
    operation: Operation,
    route: actix_web::Route,
}

impl Route {
    /// The route `P` (a handler's `#[utoipa::path]`, `handler::__path_name`)
    /// documents; one method a route.
    pub fn of<P>() -> Documented
    where
        P: utoipa::Path + for<'t> utoipa::__dev::Tags<'t>,
    {
        let method = P::methods().into_iter().next().unwrap_or(HttpMethod::Get);
        let mut operation = P::operation();
        // utoipa keeps an operation's `tag` apart (its `OpenApi` derive adds
        // it, through this same trait); the document's sections need it.
        let tags: Vec<String> = P::tags().into_iter().map(String::from).collect();
        operation.tags = Some(tags).filter(|t| !t.is_empty());
        Documented {
            route: web::method(actix_method(&method)),
            method,
            path: P::path(),
            operation,
        }
    }

    /// Adds it to `cfg`. As `ServiceConfig::route`, a guard of the route
    /// guards its whole resource: a request the guard refuses goes on to the
    /// next route of the path.
    pub fn register(self, cfg: &mut web::ServiceConfig) {
        cfg.route(&self.path, self.route);
    }

    /// `GET`, as an `Allow` header names it.
    pub fn method_name(&self) -> String {
        actix_method(&self.method).to_string()
    }

    /// `get /api/v1/services`, as the tests name routes.
    pub fn name(&self) -> String {
        let method = self.method_name().to_lowercase();
        format!("{method} {}", self.path)
    }
}

impl Documented {
    /// Only requests `guard` admits.
    pub fn guard(mut self, guard: impl Guard + 'static) -> Self {
        self.route = self.route.guard(guard);
        self
    }

    /// Answered by `handler`.
    pub fn to<F, Args>(self, handler: F) -> Route
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        Route {
            method: self.method,
            path: self.path,
            operation: self.operation,
            route: self.route.to(handler),
        }
    }
}

fn actix_method(method: &HttpMethod) -> Method {
    match method {
        HttpMethod::Get => Method::GET,
        HttpMethod::Post => Method::POST,
        HttpMethod::Put => Method::PUT,
        HttpMethod::Delete => Method::DELETE,
        HttpMethod::Options => Method::OPTIONS,
        HttpMethod::Head => Method::HEAD,
        HttpMethod::Patch => Method::PATCH,
        HttpMethod::Trace => Method::TRACE,
    }
}
