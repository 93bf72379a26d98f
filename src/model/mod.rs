//! Plain types shared by every module: instants and durations, events, SLO and
//! calendar definitions, business calendars. No I/O, no async.

pub mod calendar;
pub mod event;
pub mod interval;
pub mod slo;
pub mod time;
