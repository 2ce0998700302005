//! Types that validate: problem types, countries, the service registry and
//! reports. Nothing here does I/O.

pub mod anomaly;
pub mod country;
pub mod problem;
pub mod registry;
pub mod report;
pub mod status;
pub mod time;

pub use anomaly::{Anomaly, AnomalyStatus, Share};
pub use country::Country;
pub use problem::Problem;
pub use registry::{Category, Company, Registry, RegistryError, Service};
pub use report::{NetworkKey, RawReport, ReportError, ReporterKey};
pub use status::Status;
