//! The pure core: no file, network or clock access. Time enters as a `today` argument.

pub mod answer_json;
pub mod auth;
pub mod catalog;
pub mod domain;
pub mod eval;
pub mod fr;
pub mod history;
pub mod inventory;
pub mod map;
pub mod packed;
pub mod pooling;
pub mod prices;
pub mod recommend;
pub mod scratch;
pub mod session;
pub mod shared;
pub mod simulate;
pub mod territory;
