//! The one event stream every sink consumes (CLI, web app, store): the
//! [`Event`] enum lives in `quarry-types`, so sinks need not link the analyst.

pub use quarry_types::event::Event;
